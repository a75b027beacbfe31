"""Watching over the demo's processes: progress lines with the elapsed
time, long-running children with their output in a log file (stopped with
SIGTERM, then SIGKILL, always reaped), and a watch that notices a switch
dying mid-run and says so at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from bmv2_topo.bmv2_switch import Bmv2Switch
from controller.pipeline import REPO_ROOT

CUT_MARGIN = 0.1  # seconds before a switch's death whose packets may have been in it, unprocessed
POLL = 0.2  # seconds between looks at the switches


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
    """Notices a switch that dies while the demo runs, and says so at once."""

    def __init__(self, switches: dict[str, Bmv2Switch], progress: Progress) -> None:
        self.switches, self.progress = switches, progress
        self.died: list[str] = []
        self.cut_at: float | None = None
        self.event = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="switch-watch", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        seen: set[str] = set()
        while not self._stop.wait(POLL):
            for name, switch in self.switches.items():
                if name not in seen and not switch.alive:
                    seen.add(name)
                    code = switch.returncode
                    how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
                    message = f"switch {name} (pid {switch.pid}) stopped during the run ({how})"
                    # it stopped within the last poll interval; a little more for packets it held unprocessed
                    self.cut_at = min(self.cut_at or time.time(), time.time() - POLL - CUT_MARGIN)
                    self.died.append(message)
                    self.progress(message + ": the run is cut short", mark="!!")
                    self.event.set()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
