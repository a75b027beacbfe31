"""The audit records of each change to the intent: announced, then concluded.

The audit log never lags the intent: a change is announced (its write-ahead
intent record, controller.recovery) before the store is touched, and
concluded by an outcome record once it is done or undone. The disk may be
full at either step, and each case has its own rule, kept here in one place:

* an announcement the log cannot take stops the change (the caller rolls
  back and says so), except an expiry's (`late_ok`): past its Timeout nothing
  may be delivered, so its record is owed and the change goes ahead;
* an outcome the log cannot take is owed, kept in memory and written ahead
  of the next intent record (which cannot be written without it), or found by
  `recover` at the next start if the controller stops first;
* a refused request changes nothing, so it is not owed: the requester is
  told the refusal could not be audited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from controller import crashpoints
from controller.audit import AuditError, AuditLog
from controller.recovery import announce, intent_detail
from controller.store import Intent

__all__ = ["ChangeRecords"]

log = logging.getLogger("p4tap.controller")


class ChangeRecords:
    """Write-ahead and outcome records of changes, and the outcomes still owed."""

    def __init__(self, audit: AuditLog, clock: Callable[[], datetime]) -> None:
        self.audit = audit
        self.clock = clock
        # Outcome records of finished changes the audit log could not take yet
        # (a full disk): written ahead of the next change's intent record, which
        # cannot be written without them, or found by `recover` at the next start.
        self.owed: list[tuple[str, str, dict]] = []

    def announce(self, actor: str, op: str, put: Sequence[Intent] = (), content_ids: Sequence[int] = (),
                 late_ok: bool = False) -> int:
        """The write-ahead audit record of a change, its seq returned; if it
        cannot be written, AuditError or OSError, and nothing may change.

        `late_ok` (an expiry: past its Timeout nothing may be delivered, full
        disk or not): the record is owed instead, written ahead of anything
        else once the log has room, with `late` saying why."""
        try:
            if self.owed:  # the log must conclude the changes before this one first
                self.audit.append_many(self.owed)
                self.owed = []
            seq = announce(self.audit, actor, op, put, content_ids)
        except (AuditError, OSError) as error:
            if not late_ok:
                raise
            for owed in self.owed:  # outcomes of earlier changes stay ahead of this one
                self.audit.owe(owed[0], owed[1], **owed[2])
            self.owed = []
            seq = self.audit.owe(actor, f"{op}-intent", **intent_detail(put, content_ids),
                                 late=f"the audit log could not take it at {self.clock().isoformat()}: {error}")
            log.error("%s of %s carried out though the audit log cannot record it yet (%s): its record (seq %d) "
                      "is written once there is room", op, ", ".join(map(str, content_ids)), error, seq)
        crashpoints.reached("before-store")
        return seq

    def conclude(self, actor: str, action: str, **detail) -> None:
        """Append the outcome record of an announced change. Never raises: the
        change is done (or undone) whatever the disk says, and the requester
        must hear which; an outcome the log cannot take now (ENOSPC) is owed,
        kept in memory and written ahead of the next intent record, or, if the
        controller stops first, found by `recover` at the next start (the
        change's intent record is then the newest without an outcome)."""
        self.owed.append((actor, action, detail))
        try:
            self.audit.append_many(self.owed)
        except (AuditError, OSError) as error:
            log.error("audit log cannot record the outcome of change %s (%s): %s; owed until it can",
                      detail.get("intent_seq"), action, error)
            return
        self.owed = []

    def refusal(self, actor: str, reason: str, **detail) -> str | None:
        """Audit a refused request; None if recorded, else a note for the
        requester saying it could not be (a refusal changes nothing, so it is
        not owed like an outcome; the requester is told instead)."""
        try:
            self.audit.append(actor, "refuse", **detail, reason=reason)
        except (AuditError, OSError) as error:
            log.error("audit log cannot record a refusal (%s): %s", reason, error)
            return f"the refusal could not be audited: {error}"
        return None

    def flush(self) -> None:
        """At stop: write what is owed if the log now has room; else the next
        start's `recover` records it."""
        if not self.owed:
            return
        try:
            self.audit.append_many(self.owed)
            self.owed = []
        except (AuditError, OSError) as error:
            log.error("stopping with %d outcome record(s) unwritten (%s); the next start recovers them",
                      len(self.owed), error)
