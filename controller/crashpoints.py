"""A test hook: die by SIGKILL at a named step of a change, on purpose.

The fault-injection tests (tests/test_controller_crash.py) must kill the
controller exactly between two steps of a provision (audit record written,
intent committed, part of the switch written, ...) to prove that a restart
always recovers. A timer cannot hit those boundaries reliably, so the
controller calls `reached(step)` at each of them; when $P4TAP_CRASH_AT names
that step the process SIGKILLs itself there, as abruptly as a power cut
(no finally blocks, no flush, no exit handlers).

Unset (always, outside tests) it costs one comparison per step. The variable
is read once, when this module is imported, and is a TEST HOOK ONLY: never
set it on a production controller.
"""

from __future__ import annotations

import os
import signal

__all__ = ["CRASH_ENV", "STEPS", "reached"]

CRASH_ENV = "P4TAP_CRASH_AT"

#: The step boundaries of one change, in the order a provision passes them.
STEPS = (
    "before-store",  # the write-ahead audit record is on disk, the intent store not yet changed
    "after-store",   # the intent store committed, nothing written to the switches
    "mid-write",     # after the first Write RPC of a change that takes several
    "after-write",   # every switch written, the outcome not yet audited
    "after-audit",   # the outcome audited, the caller not yet answered
)

_armed = os.environ.get(CRASH_ENV, "").strip() or None
if _armed is not None and _armed not in STEPS:
    raise SystemExit(f"p4tap: ${CRASH_ENV}={_armed!r} is not a step ({', '.join(STEPS)}); "
                     "it is a test hook: unset it")


def reached(step: str) -> None:
    """Step `step` of a change is done: die here if the test hook says so."""
    if step == _armed:
        os.kill(os.getpid(), signal.SIGKILL)
