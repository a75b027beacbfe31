"""Write-ahead audit records of changes to the intent, and what a restart finds.

The audit log must never lag the intent (issue 13): an intercept the store
holds must be named by the audit log even if the controller died the moment
after committing it. So every change is announced first: an intent record
("provision-intent", "remove-intent", "expire-intent", with the content ids,
the requester and a digest of exactly what is to be stored) is appended and
fsync-ed before the store is touched; the outcome record that follows (the
existing "provision", "remove", "expire", "refuse") names it by `intent_seq`.

Changes are serialised by the controller's lock, so after a crash at most the
newest intent record has no outcome. `recover` finds it at start-up, reads the
store to tell whether the intent was committed (the store commits a change in
one transaction, so it holds all of it or none), and appends a "recover"
record saying what it found; reconcile then makes the switches follow the
store, and what a switch refuses is recorded by the controller as refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from controller import codec
from controller.audit import AuditLog, canonical
from controller.store import Intent, IntentStore

__all__ = ["INTENT_ACTIONS", "announce", "intent_detail", "intent_digest", "recover"]

INTENT_ACTIONS = frozenset({"provision-intent", "remove-intent", "expire-intent"})


def intent_digest(intents: Iterable[Intent]) -> str:
    """SHA-256 of intercepts as the store will hold them (streams by index,
    switches once each, in order): equal for the request and its read-back."""
    body = [[codec.intercept_to_dict(m, sorted(s, key=lambda x: x.index)), list(dict.fromkeys(sw))]
            for m, s, sw in intents]
    return hashlib.sha256(canonical(body)).hexdigest()


def _closes_or_opens(record: dict[str, Any]) -> bool:
    return record["action"] in INTENT_ACTIONS or "intent_seq" in record["detail"]


def _content_ids(detail: dict[str, Any]) -> list[int]:
    return list(detail["content_ids"]) if "content_ids" in detail else [detail["content_id"]]


def recover(audit: AuditLog, store: IntentStore) -> dict[str, Any] | None:
    """If the newest change was announced but never concluded, record what
    the store says became of it; returns that "recover" record, or None."""
    last = audit.last(_closes_or_opens)
    if last is None or last["action"] not in INTENT_ACTIONS:
        return None
    detail = last["detail"]
    ids = _content_ids(detail)
    held = store.get_many(ids)
    op = last["action"].removesuffix("-intent")
    if op == "provision":
        committed = intent_digest(held[i] for i in ids if i in held) == detail["digest"] and len(held) == len(ids)
        found = ("the intent store holds it as intended; its outcome was never recorded and the requester never "
                 "told; start-up reconcile installs it (what a switch refuses is recorded as refused)"
                 if committed else
                 "the intent store does not hold it: it was never committed (or was rolled back); reconcile "
                 "removes whatever part reached a switch")
    else:
        committed = not held
        found = (f"the intent store no longer holds it: the {op} was committed; reconcile removes it from the "
                 "switches" if committed else
                 f"the intent store still holds {sorted(held)}: the {op} was never committed")
    return audit.append("controller", "recover", intent_seq=last["seq"], op=op, content_ids=ids,
                        committed=committed, found=found)


def announce(audit: AuditLog, actor: str, op: str, intents: Sequence[Intent] = (),
             content_ids: Sequence[int] = ()) -> int:
    """Append (and fsync) the intent record of a change; returns its seq, which
    the outcome record carries as `intent_seq`."""
    return audit.append(actor, f"{op}-intent", **intent_detail(intents, content_ids))["seq"]


def intent_detail(intents: Sequence[Intent] = (), content_ids: Sequence[int] = ()) -> dict[str, Any]:
    """The detail of a change's intent record: what is put (digest, switches,
    and for one intercept its MD, timeout and streams) or which are removed."""
    detail: dict[str, Any] = {}
    if intents:
        ids = [m.content_id for m, _, _ in intents]
        detail["digest"] = intent_digest(intents)
        detail["switches"] = sorted({name for _, _, sw in intents for name in sw})
        if len(intents) == 1:
            m = intents[0][0]
            detail.update(content_id=m.content_id, md=f"{m.dest_address}:{m.dest_port}",
                          timeout=m.timeout.isoformat() if m.timeout else None,
                          streams=[s.index for s in intents[0][1] if s.enabled])
        else:
            detail["content_ids"] = ids
    else:
        ids = list(content_ids)
        detail.update({"content_id": ids[0]} if len(ids) == 1 else {"content_ids": ids})
    return detail
