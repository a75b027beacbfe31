"""Incremental planning: a change to some intercepts re-plans only what they touch.

`plan_intercepts` plans a switch from scratch, which costs O(all taps) per
change: with thousands of taps, provisioning one more spent nearly all its
time re-planning the others. Yet the plan falls apart into independent
pieces: a side's filter regions form overlap groups (regions of different
groups share no packet), a group's entries depend only on its regions and
their mediations, merges depend only on one mediation's sessions, gates on
one region, encapsulations on one mediation. `IncrementalPlanner` keeps those
pieces and, for changed intercepts, re-plans only the groups their old and
new regions are in or overlap (a new filter can join groups; a removed one
can split one), the merges of every mediation in those groups, and the
changed mediations' gates and encapsulations. The result is the same plan as
`plan_intercepts` over all the intercepts with the same id allocator, which
tests/test_incremental.py checks on random sequences of changes.

Every change is recorded in a journal, so the caller can roll it back when a
switch refuses it, or commit it once every switch took it. Ids freed by a
change are forgotten only at its end, so no id is reused within one change:
a switch never sees a session id mean two replica sets in one write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from controller.journal import Journal
from controller.model import Mediation, Stream, StreamKey
from controller.overlap import PrefixIndex, overlap_groups
from controller.plan import (CloneSession, EncapEntry, FilterEntry, GateEntry, IdAllocator, InterceptPlan, MergeEntry,
                             PlanItem, Side, address_field, encap_of, gate_of, group_filters, mediation_merges,
                             route_of, session_for, stream_regions)
from controller.regions import Region
from controller.topology import NextHop, SwitchTopology

Intercept = tuple[Mediation, Sequence[Stream]]


@dataclass(frozen=True)
class Group:
    """One overlap group of a side and the filter entries planned for it."""

    side: Side
    regions: frozenset[Region]
    filters: tuple[FilterEntry, ...]


@dataclass(frozen=True)
class Wanted:
    """What one intercept asks of the planner: nothing unless live and with an enabled stream."""

    mediation: Mediation
    next_hop: NextHop
    streams: Mapping[StreamKey, tuple[Side, tuple[Region, ...]]]


@dataclass
class PlanChange:
    """Plan items to remove and to add. A filter entry whose streams alone
    changed appears in both, so that counter attribution follows it."""

    removed: list[PlanItem] = field(default_factory=list)
    added: list[PlanItem] = field(default_factory=list)


class IncrementalPlanner:
    """One switch's plan, kept in pieces and changed in place."""

    def __init__(self, topology: SwitchTopology, ids: IdAllocator) -> None:
        self.topology = topology
        self.journal = Journal()
        self.ids = ids
        self._clear()

    @property
    def ids(self) -> IdAllocator:
        return self._ids

    @ids.setter
    def ids(self, ids: IdAllocator) -> None:
        ids.journal = self.journal
        self._ids = ids

    def _clear(self) -> None:
        self.wanted: dict[int, Wanted] = {}
        self.next_hops: dict[int, NextHop] = {}
        self.encaps: dict[int, EncapEntry] = {}
        self.bases: dict[Side, dict[Region, frozenset[StreamKey]]] = {side: {} for side in Side}
        self.index = {side: PrefixIndex(address_field(side)) for side in Side}
        self.group_of: dict[Side, dict[Region, int]] = {side: {} for side in Side}
        self.groups: dict[int, Group] = {}
        self.group_count = 0
        # side -> mediation -> session id -> number of that mediation's filter entries naming it
        self.sessions_of: dict[Side, dict[int, dict[int, int]]] = {side: {} for side in Side}
        self.merges_of: dict[int, frozenset[MergeEntry]] = {}
        self.merge_refs: dict[MergeEntry, int] = {}  # mediations needing each merge entry
        self.gate_refs: dict[GateEntry, int] = {}  # base regions opening each gate
        self.session_refs: dict[int, int] = {}  # filter and merge entries naming each session
        self._sessions_in_use_before: dict[int, bool] = {}  # for the change under way

    # -- the plan -----------------------------------------------------------

    def plan(self) -> InterceptPlan:
        return InterceptPlan(
            gates=frozenset(self.gate_refs),
            filters=frozenset(f for group in self.groups.values() for f in group.filters),
            merges=frozenset(self.merge_refs),
            sessions=frozenset(self._session(sid) for sid in self.session_refs),
            encaps=frozenset(self.encaps.values()),
        )

    def items(self) -> list[PlanItem]:
        plan = self.plan()
        return [*plan.encaps, *plan.sessions, *plan.merges, *plan.filters, *plan.gates]

    def _session(self, session_id: int) -> CloneSession:
        return CloneSession(session_id, self.ids.replicas_of[session_id])

    # -- changes ------------------------------------------------------------

    def rebuild(self, intercepts: Iterable[Intercept], now: datetime) -> None:
        """Plan from scratch (after a restart, for reconcile): ids in use are kept, the rest forgotten."""
        self.journal.commit()
        before = dict(vars(self))
        self._clear()
        try:
            self.update({m.content_id: (m, s) for m, s in intercepts}, now)
        except BaseException:
            vars(self).update(before)  # an intent that cannot be planned leaves the old plan in place
            raise
        self.ids.retain(self.wanted, [self.ids.replicas_of[sid] for sid in self.session_refs])
        self.journal.commit()

    def update(self, changes: Mapping[int, Intercept | None], now: datetime) -> PlanChange:
        """Replace (with None: remove) these intercepts. Raises InterceptError,
        naming the stream or mediation, with nothing changed. The change stays
        open, undoable, until `commit` or `rollback`."""
        self._sessions_in_use_before = {}
        try:
            return self._update(changes, now)
        except BaseException:
            self.rollback()
            raise

    def commit(self) -> None:
        self.journal.commit()

    def rollback(self) -> None:
        self.journal.rollback()

    def _want(self, intercept: Intercept | None, now: datetime) -> Wanted | None:
        if intercept is None:
            return None
        mediation, streams = intercept
        if not mediation.active or mediation.expired(now):
            return None
        planned = {s.key: stream_regions(s, self.topology) for s in streams if s.enabled}
        if not planned:
            return None
        return Wanted(mediation, route_of(mediation, self.topology), planned)

    def _update(self, changes: Mapping[int, Intercept | None], now: datetime) -> PlanChange:
        wanted = {cid: self._want(intercept, now) for cid, intercept in changes.items()}  # may raise
        change = PlanChange()

        # Regions the changed intercepts had or want, each with its new streams.
        touched: dict[Side, dict[Region, set[StreamKey]]] = {side: {} for side in Side}
        for cid, want in wanted.items():
            old = self.wanted.get(cid)
            for side, regions in old.streams.values() if old else ():
                for region in regions:
                    touched[side].setdefault(region, set())
            for key, (side, regions) in want.streams.items() if want else ():
                for region in regions:
                    touched[side].setdefault(region, set()).add(key)

        # Groups to re-plan: those of touched regions, and those a new region overlaps.
        stale: dict[Side, set[int]] = {side: set() for side in Side}
        for side, regions in touched.items():
            for region in regions:
                group = self.group_of[side].get(region)
                if group is not None:
                    stale[side].add(group)
                else:
                    stale[side].update(self.group_of[side][b] for b in self.index[side].overlapping(region))

        self._replace_mediations(wanted, change)
        for side, regions in touched.items():
            for region, new_keys in regions.items():
                kept = {k for k in self.bases[side].get(region, ()) if k.content_id not in wanted}
                self._set_base(side, region, frozenset(kept | new_keys), change)
        moved: set[int] = set()  # mediations whose sessions may have moved: their merges are re-planned
        for side in Side:
            moved |= self._replan_groups(side, stale[side], touched[side], change)
        for cid in moved:
            self._replan_merges(cid, change)

        # Ids freed by this change are forgotten only now, so none is reused within it.
        for sid, was_used in self._sessions_in_use_before.items():
            if was_used and sid not in self.session_refs:
                session = self._session(sid)
                change.removed.append(session)
                self.ids.forget_session(session.replicas)
            elif sid in self.session_refs and not was_used:
                change.added.append(self._session(sid))
        for cid, want in wanted.items():
            if want is None:
                self.ids.forget_replica(cid)
        return change

    def _replace_mediations(self, wanted: Mapping[int, Wanted | None], change: PlanChange) -> None:
        j = self.journal
        for cid, want in wanted.items():
            old = self.encaps.get(cid)
            if want is None:
                j.pop(self.wanted, cid)
                j.pop(self.next_hops, cid)
                j.pop(self.encaps, cid)
                new = None
            else:
                j.set(self.wanted, cid, want)
                j.set(self.next_hops, cid, want.next_hop)
                new = encap_of(want.mediation, want.next_hop, self.ids.replica(cid), self.topology)
                j.set(self.encaps, cid, new)
            if old != new:
                change.removed += [old] if old else []
                change.added += [new] if new else []

    def _set_base(self, side: Side, region: Region, keys: frozenset[StreamKey], change: PlanChange) -> None:
        j, bases, index = self.journal, self.bases[side], self.index[side]
        had = region in bases
        if keys:
            j.set(bases, region, keys)
            if not had:
                index.add(region)
                j.on_rollback(lambda: index.remove(region))
                self._count(self.gate_refs, gate_of(side, region), +1, change)
        elif had:
            j.pop(bases, region)
            index.remove(region)
            j.on_rollback(lambda: index.add(region))
            self._count(self.gate_refs, gate_of(side, region), -1, change)

    def _replan_groups(self, side: Side, stale: set[int], touched: Mapping[Region, set[StreamKey]],
                       change: PlanChange) -> set[int]:
        """Re-plan these groups and the touched regions; returns the mediations
        whose sessions on this side may have changed."""
        j, bases = self.journal, self.bases[side]
        regions = {r for g in stale for r in self.groups[g].regions if r in bases}
        regions |= {r for r in touched if r in bases}
        old: dict[FilterEntry, frozenset[StreamKey]] = {}
        for number in stale:
            group = j.pop(self.groups, number)
            for region in group.regions:
                j.pop(self.group_of[side], region)
            old.update((f, f.streams) for f in group.filters)
        new: dict[FilterEntry, frozenset[StreamKey]] = {}
        session = session_for(self.ids, self.next_hops)
        for members in overlap_groups(list(regions), address_field(side)):
            filters = tuple(group_filters(side, members, bases, session))
            number = self.group_count
            j.setattr(self, "group_count", number + 1)
            j.set(self.groups, number, Group(side, frozenset(members), filters))
            for region in members:
                j.set(self.group_of[side], region, number)
            new.update((f, f.streams) for f in filters)

        moved: set[int] = set()
        for entries, step in ((old, -1), (new, +1)):
            for f, streams in entries.items():
                self._use_session(f.session_id, step)
                for cid in {k.content_id for k in streams}:
                    moved.add(cid)
                    self._count_mediation_session(side, cid, f.session_id, step)
        change.removed += [f for f, streams in old.items() if new.get(f) != streams]
        change.added += [f for f, streams in new.items() if old.get(f) != streams]
        return moved

    def _count_mediation_session(self, side: Side, cid: int, session_id: int, step: int) -> None:
        by_mediation = self.sessions_of[side]
        counts = by_mediation.get(cid)
        if counts is None:
            counts = {}
            self.journal.set(by_mediation, cid, counts)
        self._count(counts, session_id, step)
        if not counts:
            self.journal.pop(by_mediation, cid)

    def _replan_merges(self, cid: int, change: PlanChange) -> None:
        src = self.sessions_of[Side.SRC].get(cid, {})
        dst = self.sessions_of[Side.DST].get(cid, {})
        new = frozenset(mediation_merges(src, dst, self.ids, session_for(self.ids, self.next_hops)))
        old = self.merges_of.get(cid, frozenset())
        if new == old:
            return
        if new:
            self.journal.set(self.merges_of, cid, new)
        else:
            self.journal.pop(self.merges_of, cid)
        for merge, step in [(m, -1) for m in old - new] + [(m, +1) for m in new - old]:
            if self._count(self.merge_refs, merge, step, change):
                self._use_session(merge.session_id, step)

    def _use_session(self, session_id: int, step: int) -> None:
        self._sessions_in_use_before.setdefault(session_id, session_id in self.session_refs)
        self._count(self.session_refs, session_id, step)

    def _count(self, counts: dict, key: object, step: int, change: PlanChange | None = None) -> bool:
        """Add `step` to a reference count; True (and, given `change`, the key
        listed as added or removed) when the key comes into or goes out of use."""
        before = counts.get(key, 0)
        after = before + step
        if after:
            self.journal.set(counts, key, after)
        else:
            self.journal.pop(counts, key)
        flipped = (before == 0) != (after == 0)
        if flipped and change is not None:
            (change.added if after else change.removed).append(key)
        return flipped
