"""Intent a switch refuses: finding what it accepts, and recording the rest.

Reconcile is not all or nothing: a switch that cannot hold all of the intent
(more clone sessions than its replication engine holds, say, committed
before a crash let the switch say so) still gets all it can, and the
controller always comes up and keeps serving. What it refuses is marked
refused per intercept and switch, in the audit log (first) and the store,
and tried again at every reconcile of that switch. Kept apart from the
controller (controller.service) because finding what fits is a search over
one switch's reconciles, and the record is the audit's and store's business,
neither the change path's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from controller.audit import AuditLog
from controller.managed_switch import Intent, ManagedSwitch
from controller.model import InterceptError
from controller.reconcile import Diff
from controller.store import IntentStore
from controller.switch import WriteError

__all__ = ["REASON_MAX", "Refusals", "by_intercept", "load_refusals", "reason", "reconcile_what_fits",
           "record_refusals"]

log = logging.getLogger("p4tap.controller")

Refusals = dict[int, str]  # content id -> why a switch refused it
REASON_MAX = 300  # characters of a switch's refusal kept per intercept


def load_refusals(store: IntentStore, names: Iterable[str]) -> dict[str, Refusals]:
    """Per switch, the intercepts it refused as of the last reconcile before
    a restart: still refused (and shown so) until a reconcile says otherwise."""
    by_switch: dict[str, Refusals] = {name: {} for name in names}
    for content_id, switches in store.refusals().items():
        for name, why in switches.items():
            by_switch.setdefault(name, {})[content_id] = why
    return by_switch


def by_intercept(by_switch: Mapping[str, Refusals]) -> dict[int, dict[str, str]]:
    """The same refusals the other way round: content id -> switch -> reason."""
    out: dict[int, dict[str, str]] = {}
    for name, refused in by_switch.items():
        for content_id, why in refused.items():
            out.setdefault(content_id, {})[name] = why
    return out


def reason(error: Exception) -> str:
    """A switch's refusal as kept per intercept: said to be the switch's, and bounded."""
    text = f"refused by the switch: {error}" if isinstance(error, WriteError) else str(error)
    return text if len(text) <= REASON_MAX else text[:REASON_MAX - 3] + "..."


def reconcile_what_fits(switch: ManagedSwitch, intents: Sequence[Intent], now: datetime) -> tuple[Diff, Refusals]:
    """The switch refused the whole intent: install the longest prefix it
    accepts, found by bisection (each try a full reconcile, so about
    log2(n) of them), then offer each later intercept on its own as a small
    incremental change, keeping those it accepts. The order puts the
    intercepts the switch already holds first (then by content id), so
    that finding room never takes a working tap off the switch.

    Returns the diff that was finally written and the refused intercepts
    with the switch's reason. A switch that refuses even no intercept
    (its forwarding entries) raises."""
    held = switch.held_intercepts()  # from the failed try's plan and read-back: keep these in place
    undo_failures = switch.undo_failures  # tries trust `believed`, which a failed undo falsifies
    ordered = sorted(intents, key=lambda i: (i[0].content_id not in held, i[0].content_id))
    fits, fails = 0, len(ordered)  # prefix `fits` is accepted, prefix `fails` is not
    holds: int | None = None  # the prefix the switch and its plan hold now (None: a refused one)
    result = Diff()
    while fails - fits > 1:
        middle = (fits + fails) // 2
        try:
            result, holds, fits = switch.reconcile(ordered[:middle], now, read=False), middle, middle
        except (WriteError, InterceptError):
            holds, fails = None, middle
    if holds != fits:
        result = switch.reconcile(ordered[:fits], now, read=False)  # raises if even that is refused
    refused: Refusals = {}
    for mediation, streams, _ in ordered[fits:]:  # each tried alone, so each gets its own reason
        try:
            change = switch.stage({mediation.content_id: (mediation, streams)}, now)
            switch.apply(change)
        except (WriteError, InterceptError) as refusal:
            switch.rollback()
            refused[mediation.content_id] = reason(refusal)
            continue
        switch.commit()
        result.inserts += change.diff.inserts
        result.modifies += change.diff.modifies
    switch.stale = switch.undo_failures != undo_failures  # if so, the watch loop reads and tries again
    return result, refused


def record_refusals(audit: AuditLog, store: IntentStore, by_switch: dict[str, Refusals], name: str,
                    refused: Refusals, actor: str) -> None:
    """Audit (first) and store which intercepts `name` refuses now, where
    that changed; `by_switch` (the controller's view) follows."""
    before = by_switch.get(name, {})
    if refused == before:
        return
    newly = {c: r for c, r in refused.items() if before.get(c) != r}
    accepted = sorted(set(before) - set(refused))
    if newly:
        by_reason: dict[str, list[int]] = {}
        for content_id, why in sorted(newly.items()):
            by_reason.setdefault(why, []).append(content_id)
        audit.append(actor, "switch-refuse", switch=name, content_ids=sorted(newly),
                     reasons=[{"reason": r, "content_ids": ids} for r, ids in by_reason.items()])
        log.error("%s: refuses %d intercept(s) of the intent (%s): %s", name, len(newly),
                  ", ".join(map(str, sorted(newly)[:10])) + (" ..." if len(newly) > 10 else ""),
                  next(iter(by_reason)))
    if accepted:
        audit.append(actor, "switch-accept", switch=name, content_ids=accepted)
    store.set_refusals(name, refused)
    by_switch[name] = dict(refused)
