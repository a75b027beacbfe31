"""Keep switch processes running: a switch that dies is restarted on the same
ports and the same P4Runtime address, and the outage is logged and counted.

Why here and not in the controller: the controller only speaks P4Runtime and
cannot start a process on the switch's host; whoever started the switch
(the demo, a test, a bench) owns the process and is the one that can bring it
back. A restarted switch is empty (no pipeline, no entries): the controller's
watch loop notices the lost stream, reconnects, pushes the pipeline and
reconciles the stored intent (controller.switch_watch, `SwitchWatch.run`),
where an intercept whose Timeout passed meanwhile is never planned again.

Each switch has one thread blocked in the process's wait(), so a death is seen
the moment it happens; a switch its owner stops
(`Bmv2Switch.stop`) is not restarted.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bmv2_topo.bmv2_switch import Bmv2Error, Bmv2Switch

__all__ = ["Outage", "SwitchKeeper", "describe_exit"]

log = logging.getLogger("p4tap.keeper")

FIRST_RETRY = 0.5  # seconds before trying again a restart that failed; doubled up to MAX_RETRY
MAX_RETRY = 10.0
STOP_CHECK = 0.5  # seconds between looks at the keeper's own stop while the switch runs (a death is seen at once)


def describe_exit(code: int | None) -> str:
    """'killed by signal 11 (SIGSEGV)' or 'exit status 1', for a Popen return code."""
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


@dataclass(frozen=True)
class Outage:
    """One death of a switch process and its restart."""

    switch: str
    number: int  # 1 for the switch's first outage
    pid: int | None
    returncode: int | None
    died_at: float  # time.time() when the death was seen
    restarted_at: float | None = None  # None: not (yet) running again
    new_pid: int | None = None

    @property
    def how(self) -> str:
        return describe_exit(self.returncode)

    @property
    def seconds(self) -> float | None:
        """How long the switch was not running (until its gRPC server listened again)."""
        return None if self.restarted_at is None else self.restarted_at - self.died_at


OutageListener = Callable[[Outage], None]


class SwitchKeeper:
    """Restarts the given switches whenever their process dies.

    `before_restart(outage)` runs on the keeper's thread between the death and
    the restart (a test holds the switch down there, e.g. until an intercept's
    Timeout has passed); `on_outage` listeners hear of each death and of each
    restart. Stop the keeper before the switches (an ExitStack does, when the
    keeper is entered after them)."""

    def __init__(self, switches: Mapping[str, Bmv2Switch],
                 before_restart: OutageListener | None = None,
                 start_timeout: float = 15.0) -> None:
        self.switches = dict(switches)
        self.before_restart = before_restart
        self.start_timeout = start_timeout
        self.outages: list[Outage] = []  # every death, updated in place once restarted
        self._listeners: list[OutageListener] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._by_name: dict[str, threading.Thread] = {}

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> SwitchKeeper:
        for name, switch in self.switches.items():
            if not switch.alive:
                raise Bmv2Error(f"keeper: switch {name} is not running: start it first")
            thread = threading.Thread(target=self._keep, args=(name, switch), name=f"keeper-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
            self._by_name[name] = thread
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop restarting (a restart in progress is finished first)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def __enter__(self) -> SwitchKeeper:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def on_outage(self, listener: OutageListener) -> None:
        self._listeners.append(listener)

    # -- what happened --------------------------------------------------------------

    def count(self, name: str) -> int:
        """How many times `name` died while kept."""
        with self._cond:
            return sum(1 for o in self.outages if o.switch == name)

    def restarts(self, name: str) -> int:
        with self._cond:
            return sum(1 for o in self.outages if o.switch == name and o.restarted_at is not None)

    def wait_restarted(self, name: str, count: int = 1, timeout: float | None = None) -> bool:
        """Until `name` has come back from `count` deaths; False on timeout or stop."""
        with self._cond:
            return self._cond.wait_for(lambda: self._stop.is_set() or self.restarts(name) >= count, timeout) \
                and self.restarts(name) >= count

    def wait_let_go(self, name: str, timeout: float | None = None) -> bool:
        """Until the keeper stopped watching `name` of its own accord (its
        owner stopped it); False on timeout."""
        thread = self._by_name[name]
        thread.join(timeout)
        return not thread.is_alive()

    def wait_died(self, name: str, count: int = 1, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._stop.is_set() or self.count(name) >= count, timeout) \
                and self.count(name) >= count

    # -- the thread -------------------------------------------------------------------

    def _keep(self, name: str, switch: Bmv2Switch) -> None:
        while not self._stop.is_set():
            pid = switch.pid
            code = switch.wait(timeout=STOP_CHECK)
            if self._stop.is_set() or switch.stopped:
                return
            if code is None and switch.alive:
                continue
            with self._cond:
                outage = Outage(name, self.count(name) + 1, pid, code, time.time())
                self.outages.append(outage)
                self._cond.notify_all()
            log.error("switch %s (pid %s) died (%s): outage %d; restarting it on the same ports and address %s",
                      name, pid, outage.how, outage.number, switch.grpc_address)
            self._tell(outage)
            if self.before_restart is not None:
                try:
                    self.before_restart(outage)
                except Exception:  # a hook's fault must not leave the switch down
                    log.exception("keeper: before_restart hook failed for %s", name)
            restarted = self._restart(name, switch, outage)
            if restarted is None:
                return
            log.warning("switch %s running again (pid %s) after %.1f s down; the controller pushes the pipeline "
                        "and reconciles", name, restarted.new_pid, restarted.seconds or 0.0)
            self._tell(restarted)

    def _restart(self, name: str, switch: Bmv2Switch, outage: Outage) -> Outage | None:
        """Start the switch again, retrying with backoff; None if the keeper was stopped first."""
        delay = FIRST_RETRY
        while not self._stop.is_set():
            try:
                switch.restart(timeout=self.start_timeout)
            except Bmv2Error as error:
                log.error("switch %s could not be restarted (%s); trying again in %.1f s", name,
                          str(error).splitlines()[0], delay)
                self._stop.wait(delay)
                delay = min(delay * 2, MAX_RETRY)
                continue
            restarted = Outage(outage.switch, outage.number, outage.pid, outage.returncode, outage.died_at,
                               time.time(), switch.pid)
            with self._cond:
                self.outages[self.outages.index(outage)] = restarted
                self._cond.notify_all()
            return restarted
        return None

    def _tell(self, outage: Outage) -> None:
        for listener in self._listeners:
            try:
                listener(outage)
            except Exception:
                log.exception("keeper: outage listener failed")
