"""Stable small ids for the plan: a replica id per mediation, a clone
session id per set of replicas.

The planner (controller/plan.py) is pure, but its ids must outlive any one
plan: the controller keeps the allocator across plans and persists it with
its intent (controller/store), so that re-planning after a change leaves
untouched intercepts' entries as they are, and a rollback puts the ids back
through the journal. That state, its limits and the changes the store saves
live here, apart from the planning that asks for ids; the store reads and
writes them without the planner. Every name is still importable from
controller.plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from controller.journal import Journal
from controller.model import InterceptError

__all__ = ["MAX_REPLICA_ID", "MAX_SESSION_ID", "IdAllocator", "IdChanges", "Replica"]

MAX_REPLICA_ID = 65535  # egress_rid is 16 bits; 0 is a normal packet
MAX_SESSION_ID = 32767  # bmv2 clone sessions 1..32767; a pipeline may allow fewer (entries.clone_session_limit)


@dataclass(frozen=True, order=True)
class Replica:
    """One copy of a clone session: out of `port`, tagged `rid` (egress_rid)."""

    port: int
    rid: int



class IdAllocator:
    """Stable small ids: a replica id per mediation, a session id per replica set.

    Kept by the controller across plans (and persisted with its intent), so
    re-planning after a change leaves untouched intercepts' entries as they are.
    Ids are given out lowest-free-first in O(1) amortised (a plan of 10,000
    taps allocates 20,000 of them). With a `journal`, every change can be
    rolled back; `changed` names the ids changed since `take_changes`, so the
    store saves only those.
    """

    def __init__(
        self,
        replica_ids: Mapping[int, int] | None = None,
        session_ids: Mapping[frozenset[Replica], int] | None = None,
        max_session_id: int = MAX_SESSION_ID,
    ) -> None:
        # The highest clone session id the switch's pipeline can name (Tofino's
        # mirror ids are 10 bits, 8 on Tofino 2): past it a plan is refused
        # here, with nothing changed, rather than failing when encoded.
        self.max_session_id = max_session_id
        self.replica_ids: dict[int, int] = dict(replica_ids or {})
        self.session_ids: dict[frozenset[Replica], int] = dict(session_ids or {})
        self.content_of: dict[int, int] = {rid: c for c, rid in self.replica_ids.items()}
        self.replicas_of: dict[int, frozenset[Replica]] = {sid: r for r, sid in self.session_ids.items()}
        self.journal: Journal | None = None
        self.changed_replicas: set[int] = set()
        self.changed_sessions: set[frozenset[Replica]] = set()
        self._free_replica = 1  # no id below these is free
        self._free_session = 1

    def _set(self, mapping: dict, key: object, value: object) -> None:
        if self.journal is None:
            mapping[key] = value
        else:
            self.journal.set(mapping, key, value)

    def _pop(self, mapping: dict, key: object) -> None:
        if self.journal is None:
            mapping.pop(key, None)
        else:
            self.journal.pop(mapping, key)

    def _next_free(self, used: Mapping[int, object], floor: str, limit: int, what: str) -> int:
        candidate = getattr(self, floor)
        while candidate in used:
            candidate += 1
        if candidate > limit:
            raise InterceptError(f"out of {what} ids (at most {limit})")
        self._set_floor(floor, candidate + 1)
        return candidate

    def _lower_floor(self, floor: str, freed: int) -> None:
        if freed < getattr(self, floor):
            self._set_floor(floor, freed)

    def _set_floor(self, floor: str, value: int) -> None:
        if self.journal is None:
            setattr(self, floor, value)
        else:
            self.journal.setattr(self, floor, value)

    def replica(self, content_id: int) -> int:
        rid = self.replica_ids.get(content_id)
        if rid is None:
            rid = self._next_free(self.content_of, "_free_replica", MAX_REPLICA_ID, "replica")
            self._set(self.replica_ids, content_id, rid)
            self._set(self.content_of, rid, content_id)
            self.changed_replicas.add(content_id)
        return rid

    def session(self, replicas: frozenset[Replica]) -> int:
        sid = self.session_ids.get(replicas)
        if sid is not None and sid > self.max_session_id:
            # Kept from a pipeline with wider mirror ids (the switch changed
            # target): the old id cannot be written here, so give a new one.
            self.forget_session(replicas)
            sid = None
        if sid is None:
            sid = self._next_free(self.replicas_of, "_free_session", self.max_session_id, "clone session")
            self._set(self.session_ids, replicas, sid)
            self._set(self.replicas_of, sid, replicas)
            self.changed_sessions.add(replicas)
        return sid

    def members(self, session_id: int) -> frozenset[int]:
        """The mediations (content ids) a clone session copies to."""
        return frozenset(self.content_of[r.rid] for r in self.replicas_of[session_id])

    def forget_replica(self, content_id: int) -> None:
        self._forget(self.replica_ids, self.content_of, content_id, "_free_replica", self.changed_replicas)

    def forget_session(self, replicas: frozenset[Replica]) -> None:
        self._forget(self.session_ids, self.replicas_of, replicas, "_free_session", self.changed_sessions)

    def _forget(self, ids: dict, keys: dict[int, object], key: object, floor: str, changed: set) -> None:
        """Free `key`'s id (if it has one) in `ids` and its reverse map `keys`, for reuse."""
        given = ids.get(key)
        if given is not None:
            self._pop(ids, key)
            self._pop(keys, given)
            self._lower_floor(floor, given)
            changed.add(key)

    def retain(self, content_ids: Iterable[int], sessions: Iterable[frozenset[Replica]]) -> None:
        """Forget ids no longer in use, so they can be given out again."""
        keep_c, keep_s = set(content_ids), set(sessions)
        for content_id in [c for c in self.replica_ids if c not in keep_c]:
            self.forget_replica(content_id)
        for replicas in [s for s in self.session_ids if s not in keep_s]:
            self.forget_session(replicas)

    def current(self, changes: IdChanges) -> IdChanges:
        """The present value of the ids `changes` names (after a rollback: their old values)."""
        return IdChanges({c: self.replica_ids.get(c) for c in changes.replicas},
                         {s: self.session_ids.get(s) for s in changes.sessions})

    def take_changes(self) -> IdChanges:
        """The current value (None: forgotten) of every id changed since the last call."""
        changes = IdChanges({c: self.replica_ids.get(c) for c in self.changed_replicas},
                            {s: self.session_ids.get(s) for s in self.changed_sessions})
        self.changed_replicas, self.changed_sessions = set(), set()
        return changes


@dataclass(frozen=True)
class IdChanges:
    """Ids given out (value) or forgotten (None) since the allocator was last saved."""

    replicas: Mapping[int, int | None]
    sessions: Mapping[frozenset[Replica], int | None]

