"""Watching over the demo's processes: progress lines with the elapsed
time, long-running children with their output in a log file (stopped with
SIGTERM, then SIGKILL, always reaped), and a watch that notices a switch
dying mid-run, says so at once, and sees it restarted and reconciled.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from bmv2_topo.keeper import Outage, SwitchKeeper
from controller.pipeline import REPO_ROOT

CUT_MARGIN = 0.1  # seconds before a switch's death whose packets may have been in it, unprocessed
DETECT = 0.05  # seconds within which the keeper sees a death (Popen.wait's polling)
POLL = 0.2  # seconds between looks at the IAP's audit log
RECONCILE_LIMIT = 60.0  # seconds for the IAP to bring a restarted switch back


class Progress:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, message: str, mark: str = "==>") -> None:
        print(f"[{time.monotonic() - self.started:5.1f}s] {mark} {message}", flush=True)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Child:
    """A long-running process in a host, its output in a log file; stopped
    with SIGTERM (then SIGKILL) and always reaped."""

    def __init__(self, host, name: str, argv: list[str], log: Path) -> None:
        self.name, self.log = name, log
        self._out = open(log, "wb")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
                   PYTHONUNBUFFERED="1")
        self.proc = host.popen(*argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self._out,
                               stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return self.proc.returncode

    def failure(self) -> str:
        return f"{self.name} exited with status {self.proc.returncode}; the end of {self.log}:\n{_tail(self.log)}"


class SwitchWatch:
    """Hears from the keeper (bmv2_topo.keeper) of a switch that dies while
    the demo runs and says so at once (the run is judged up to that moment);
    then of its restart, and waits for the IAP to have reconciled it (its
    audit log's switch-up record), so the demo ends on a network that works."""

    def __init__(self, keeper: SwitchKeeper, progress: Progress, audit_path: Path) -> None:
        self.keeper, self.progress, self.audit_path = keeper, progress, audit_path
        self.died: list[str] = []
        self.cut_at: float | None = None
        self.event = threading.Event()
        keeper.on_outage(self._heard)

    def _heard(self, outage: Outage) -> None:
        if outage.restarted_at is None:
            message = f"switch {outage.switch} (pid {outage.pid}) stopped during the run ({outage.how})"
            # seen within DETECT of its death; a little more for packets it held unprocessed
            self.cut_at = min(self.cut_at or outage.died_at, outage.died_at - DETECT - CUT_MARGIN)
            self.died.append(message)
            self.progress(message + ": the run is cut short; the keeper restarts it", mark="!!")
            self.event.set()
        else:
            self.progress(f"switch {outage.switch} running again (pid {outage.new_pid}) after {outage.seconds:.1f} s; "
                          "the IAP pushes the pipeline and reconciles its intercepts", mark="   ")

    def wait_reconciled(self, limit: float = RECONCILE_LIMIT) -> None:
        """After an outage: until the IAP audited every dead switch back up
        (reconciled), or `limit` seconds. Says which."""
        names = {o.switch for o in self.keeper.outages}
        deadline = time.monotonic() + limit
        while names:
            back = {r["detail"].get("switch") for r in _records(self.audit_path) if r.get("action") == "switch-up"}
            for record in _records(self.audit_path):
                if record.get("action") == "switch-up" and record["detail"].get("switch") in names:
                    d = record["detail"]
                    self.progress(f"IAP: switch {d['switch']} back in service after {d['seconds']:.1f} s without "
                                  f"its stream; reconciled ({d['inserted']} entries reinstalled)", mark="   ")
            names -= back
            if not names or time.monotonic() > deadline:
                break
            time.sleep(POLL)
        if names:
            self.progress(f"after {limit:.0f}s the IAP has not reconciled {', '.join(sorted(names))}; see its log",
                          mark="!!")

    def stop(self) -> None:
        """Nothing to stop: the keeper owns the thread (kept for the demo's ExitStack)."""


def _records(path: Path) -> list[dict]:
    """The audit log's records (JSON lines); a line being written is skipped."""
    out = []
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
