"""The audit trail of the intent: which audited change last touched each
intercept, by the audit log and by the intent store, and where they disagree.

The audit log must never lag the intent. Write-ahead records make that so
while the controller runs (controller.recovery), but `verify` of the log
alone cannot see a log that lost records at its end, a store restored
or written by something that bypassed the log, or a store that was lost.
So every change marks the intercepts it puts or removes with the seq of its
write-ahead record, in the store's transaction (`intent_marks`), and:

- `lagging` finds the intercepts whose mark names no intent record of the log
  naming them: changes the log has no record of (`p4tap audit verify`);
- `held_by_log` replays the log's committed changes, for a start that finds
  its store new while the log says intercepts were held: intent that could
  not be kept across the restart (the controller audits it and the agent
  sends ciscoTap2Switchover, so the mediation devices provision again).

A store upgraded from before the marks has none for its older intercepts:
those are not checked (the log itself still verifies as before).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from controller.audit import AuditLog
from controller.recovery import INTENT_ACTIONS, announce
from controller.store import IntentStore

__all__ = ["Behind", "Committed", "Lag", "committed_by_log", "held_by_log", "lagging", "record_lost_intent",
           "store_behind_log"]

log = logging.getLogger("p4tap.controller")


class TrailError(Exception):
    """The store could not be read for the check; the message says why."""


@dataclass
class Lag:
    """What the store holds that the log does not account for."""

    content_ids: list[int] = field(default_factory=list)  # every intercept with a problem, sorted
    problems: list[str] = field(default_factory=list)  # one line each

    @property
    def ok(self) -> bool:
        return not self.content_ids


def _records(log_path: Path) -> Iterator[dict[str, Any]]:
    """The log's well-formed records in order (what is damaged is `verify`'s to report)."""
    with open(log_path, "rb") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("detail"), dict) and \
                    isinstance(record.get("seq"), int):
                yield record


def _ids(detail: dict[str, Any]) -> list[int]:
    ids = detail.get("content_ids", [detail.get("content_id")])
    return [i for i in ids if isinstance(i, int)] if isinstance(ids, list) else []


def _marks(store_path: Path) -> dict[int, tuple[int | None, bool]]:
    """content id -> (intent seq, present), read-only: the check must not change what it checks."""
    try:
        db = sqlite3.connect(f"{store_path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise TrailError(f"cannot open intent store {store_path}: {error}") from error
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "intent_marks" not in tables:  # written before the marks: nothing to compare
            return {}
        return {c: (s, bool(p)) for c, s, p in db.execute("SELECT content_id, intent_seq, present FROM intent_marks")}
    except sqlite3.Error as error:
        raise TrailError(f"cannot read intent store {store_path}: {error}") from error
    finally:
        db.close()


def lagging(log_path: Path, store_path: Path) -> Lag:
    """The intercepts whose last change in the store has no intent record in
    the log naming them (the log lags the intent), each with why."""
    marks = _marks(store_path)
    named: dict[int, tuple[str, set[int]]] = {}  # intent seq -> (action, content ids)
    last_seq = 0
    for record in _records(log_path):
        last_seq = max(last_seq, record["seq"])
        if record.get("action") in INTENT_ACTIONS:
            named[record["seq"]] = (record["action"], set(_ids(record["detail"])))
    lag = Lag()
    for content_id, (seq, present) in sorted(marks.items()):
        what = "holds" if present else "removed"
        if seq is None:
            why = f"the store {what} it with no audit record (written around the controller)"
        elif seq not in named:
            why = (f"the store {what} it under intent seq {seq}, beyond the log's last record ({last_seq}): "
                   "the log lost records at its end" if seq > last_seq else
                   f"the store {what} it under intent seq {seq}, which is no intent record of the log")
        elif content_id not in named[seq][1]:
            why = f"the store {what} it under intent seq {seq}, whose {named[seq][0]} record does not name it"
        else:
            continue
        lag.content_ids.append(content_id)
        lag.problems.append(f"intercept {content_id}: {why}")
    return lag


@dataclass(frozen=True)
class Committed:
    """The log's last committed change of one intercept."""

    op: str               # provision, remove or expire; or lost (an intent-lost record)
    seq: int              # its intent record's seq: what the store marks the intercept with
    timeout: str | None   # a provision's Timeout, where its record gives one (one intercept per record)


def committed_by_log(log_path: Path) -> dict[int, Committed]:
    """Per intercept, the last change the log says was committed: an outcome
    of provision, remove or expire, or a recover saying committed."""
    pending: dict[int, tuple[str, list[int], str | None]] = {}  # intent seq -> (op, ids, timeout)
    last: dict[int, Committed] = {}
    for record in _records(log_path):
        action, detail = record.get("action"), record["detail"]
        if action in INTENT_ACTIONS:
            pending[record["seq"]] = (action.removesuffix("-intent"), _ids(detail), detail.get("timeout"))
            continue
        if action == "intent-lost":  # already said: the store no longer holds them, until provisioned again
            for content_id in _ids(detail):
                last[content_id] = Committed("lost", record["seq"], None)
            continue
        seq = detail.get("intent_seq")
        intent = pending.pop(seq, None) if "intent_seq" in detail else None
        if intent is None:
            continue
        committed = detail.get("committed") is True if action == "recover" else action in ("provision", "remove",
                                                                                          "expire")
        if not committed:
            continue
        op, ids, timeout = intent
        for content_id in ids:
            last[content_id] = Committed(op, seq, timeout if op == "provision" and len(ids) == 1 else None)
    return last


def _held(change: Committed, now: datetime) -> bool:
    return change.op == "provision" and (change.timeout is None or datetime.fromisoformat(change.timeout) > now)


def held_by_log(log_path: Path, now: datetime) -> list[int]:
    """The intercepts the log says the store holds: the last committed change
    of each was a provision whose timeout, where the record gives one, is
    still ahead of `now`."""
    return sorted(c for c, change in committed_by_log(log_path).items() if _held(change, now))


@dataclass
class Behind:
    """Where the store is older than the log: restored from a backup, say."""

    outdated: list[int] = field(default_factory=list)  # held in a version a later committed change replaced
    missing: list[int] = field(default_factory=list)   # held by the log, absent from a store that never saw them


def store_behind_log(committed: dict[int, Committed], store_path: Path, held_now: set[int],
                     now: datetime) -> Behind:
    """The intercepts whose version in the store (by its mark) predates the
    log's last committed change of them (`committed`, committed_by_log), and
    those the log holds that the store has no trace of. Unaudited changes
    (no seq) are `lagging`'s to report, not this; so are stores written
    before the marks (none to compare)."""
    marks = _marks(store_path)
    behind = Behind()
    if not marks and held_now:
        return behind  # written before the marks (or never written): the lost-store check covers a new one
    for content_id, change in sorted(committed.items()):
        older = content_id in marks and marks[content_id][0] is not None and marks[content_id][0] < change.seq
        if content_id in held_now:
            if older:
                behind.outdated.append(content_id)
        elif (older or content_id not in marks) and _held(change, now):
            behind.missing.append(content_id)
    return behind


def record_lost_intent(audit: AuditLog, store: IntentStore, now: datetime) -> list[int]:
    """The intent is durable: an IAP restart keeps every intercept (README,
    "Intercepts across an IAP restart"). The exceptions are audited and
    their intercepts returned, for the SNMP agent to send ciscoTap2Switchover
    so the mediation devices provision them again:

    - a store this start created while the log records intercepts as held
      (`intent-lost`);
    - a store older than the log (put back from a backup): what it holds in
      a version the log says was since removed or replaced is removed first,
      as an audited change (`remove`, with why), so a withdrawn authorisation
      never comes back with the file; what the log holds and the old store
      lacks, or held in an older version, is then `intent-lost`.
    """
    committed = committed_by_log(audit.path)  # the log read once, before the removal below is on it
    held_by_log_now = {c for c, change in committed.items() if _held(change, now)}
    if store.created:
        lost = sorted(held_by_log_now)
        reason = "the intent store was new at start; the audit log records these as held"
    else:
        held_now = {m.content_id for m, _, _ in store.all()}
        behind = store_behind_log(committed, store.path, held_now, now)
        if behind.outdated:
            _remove_outdated(audit, store, behind.outdated)
        lost = sorted(set(behind.missing) | (set(behind.outdated) & held_by_log_now))
        reason = "the intent store is older than the audit log (restored from a backup?): it lacked these"
    if lost:
        log.error("the audit log records %d intercept(s) as held that the intent store %s did not keep (%s): the "
                  "mediation devices must provision them again", len(lost), store.path,
                  ", ".join(map(str, lost[:10])) + (" ..." if len(lost) > 10 else ""))
        audit.append("controller", "intent-lost", content_ids=lost, reason=reason)
    return lost


def _remove_outdated(audit: AuditLog, store: IntentStore, content_ids: list[int]) -> None:
    log.error("the intent store %s holds %d intercept(s) in a version the audit log says was since removed or "
              "replaced (%s): removed before anything is installed", store.path, len(content_ids),
              ", ".join(map(str, content_ids[:10])) + (" ..." if len(content_ids) > 10 else ""))
    seq = announce(audit, "controller", "remove", content_ids=content_ids)
    store.change(remove=content_ids, intent_seq=seq)
    audit.append("controller", "remove", intent_seq=seq, content_ids=content_ids,
                 reason="the intent store held an older version than the audit log's last committed change")
