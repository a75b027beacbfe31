"""Waiting in a daemon's main thread for SIGINT or SIGTERM.

A signal sent to the process may be delivered to any of its threads, gRPC's
own among them. Python's C-level handler then only notes it; the Python
handler runs when the main thread next executes bytecode, which a main thread
blocked in an untimed `Event.wait()` never does: such a daemon ignores its
SIGTERM for good (seen under load: a controller that outlived its test by
ten minutes). Waiting in short slices lets the main thread run the handler
within one slice, wherever the signal landed.
"""

from __future__ import annotations

import signal
import threading

SLICE = 0.25  # seconds: how late a stop may be noticed


def wait_for_stop(signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)) -> int:
    """Install handlers for `signals`, block until one arrives, return its number."""
    received: list[int] = []
    done = threading.Event()

    def handler(signum: int, _frame) -> None:
        received.append(signum)
        done.set()

    for sig in signals:
        signal.signal(sig, handler)
    while not done.wait(SLICE):
        pass
    return received[0]
