"""Waiting in a daemon's main thread for SIGINT or SIGTERM.

A signal sent to the process may be delivered to any of its threads, gRPC's
own among them. Python's C-level handler then only notes it; the Python
handler runs when the main thread next executes bytecode, which a main thread
blocked in an untimed `Event.wait()` never does: such a daemon ignores its
SIGTERM for good (seen under load: a controller that outlived its test by
ten minutes). Waiting in short slices lets the main thread run the handler
within one slice, wherever the signal landed.

The handlers go in before the daemon starts anything others can see (its
control socket, its SNMP port): a supervisor that stops it the moment it
looks ready must meet the handler, not the default action that kills it
mid-step with SIGTERM's exit status (seen once in CI, between the control
socket appearing and the wait beginning).
"""

from __future__ import annotations

import signal
import threading

SLICE = 0.25  # seconds: how late a stop may be noticed


class StopSignal:
    """SIGINT/SIGTERM noted from construction on; `wait()` blocks until one came."""

    def __init__(self, signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
        self._received: list[int] = []
        self._done = threading.Event()
        for sig in signals:
            signal.signal(sig, self._handler)

    def _handler(self, signum: int, _frame) -> None:
        self._received.append(signum)
        self._done.set()

    def wait(self) -> int:
        """Block until a stop signal arrived (perhaps before this call); its number."""
        while not self._done.wait(SLICE):
            pass
        return self._received[0]
