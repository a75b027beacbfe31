"""One switch under the controller: its connection, plan, and what it holds.

A change to intercepts goes through a switch in these steps, each O(what
changed) however many taps the switch carries:

1. `stage`: the incremental planner re-plans what the change touches, and
   the changed plan items become entities (built only for new items; the
   entities of the current plan are kept by item) and a diff against
   `believed`, the switch's entities as of the last write or read, checked
   against what the switch can hold (controller.capacity: InterceptError,
   before anything is committed, if it cannot);
2. `apply`: the diff is written make-before-break, and undone on the switch
   if a write fails part-way;
3. `commit` once every switch of the change took it, or `rollback` (after
   `undo` on the switches that did) to put plan, ids, entities and counters
   back as they were.

All in-memory state changed on the way is recorded in one journal per
switch. `reconcile` re-plans from scratch and compares with a full read of
the switch; it also clears `stale`, which marks a switch whose contents may
differ from its plan (a rollback that could not be written, a deferred
expiry) until then.

What is not this switch's state lives beside it, and is still importable
from here: its config (controller.switch_config), the questions asked of the
switch before trusting it (controller.switch_link) and the counter reads
(controller.switch_counters, StreamCounters).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from p4protos import p4runtime_pb2 as p4r

from controller import crashpoints, ets
from controller.capacity import Capacity, slot_of
from controller.clock import probe
from controller.entries import EntryBuilder, clone_session_limit, rank
from controller.incremental import Intercept, IncrementalPlanner
from controller.model import InterceptError, Stream, StreamKey
from controller.pipeline import Pipeline
from controller.plan import (MAX_SESSION_ID, EncapEntry, FilterEntry, IdAllocator, InterceptPlan, PlanItem,
                             plan_intercepts)
from controller.reconcile import Diff, EntityKey, EntityUpdate, diff, inverse, ordered_updates
from controller.store import Intent
from controller.switch import NotPrimaryError, SwitchConnection, SwitchError, SwitchUnavailableError, WriteError
from controller.switch_config import SwitchConfig
from controller.switch_counters import StreamCounters, encap_drops, ets_class_counts, filter_counts
from controller.switch_link import read_owned, running_cookie, verify_pipeline
from controller.wire import WireEntity

log = logging.getLogger("p4tap.controller")

APPLY_BATCH = 2000  # updates per Write request


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class SwitchChange:
    """One switch's part of a change, from staging to commit."""

    diff: Diff
    # Filter entries the diff deletes, by key: their counts are banked first.
    retiring: dict[EntityKey, FilterEntry] = field(default_factory=dict)
    applied: list[EntityUpdate] = field(default_factory=list)
    before: dict[EntityKey, WireEntity | None] = field(default_factory=dict)


def _streams(streams: Iterable[Stream]) -> tuple[Stream, ...]:
    """An intercept's streams in one order (by index), to compare intents."""
    return tuple(sorted(streams, key=lambda s: s.index))


@dataclass
class ManagedSwitch:
    """One switch: its connection, its plan and id allocator, and what it holds."""

    config: SwitchConfig
    pipeline: Pipeline
    ids: IdAllocator = field(default_factory=IdAllocator)
    conn: SwitchConnection | None = None
    believed: dict[EntityKey, WireEntity] = field(default_factory=dict)
    retired: dict[StreamKey, StreamCounters] = field(default_factory=dict)
    stale: bool = True  # contents may differ from the plan until the next reconcile
    undo_failures: int = 0  # undos that could not be written (each also sets `stale`)
    now: Callable[[], datetime] = _utcnow  # the controller's clock, which Timeouts are read on

    def __post_init__(self) -> None:
        self.builder = EntryBuilder(self.pipeline)
        self.ids.max_session_id = min(clone_session_limit(self.pipeline),  # learned from P4Info, per target
                                      self.config.max_clone_session_id or MAX_SESSION_ID)
        self.rank = rank(self.pipeline)
        self.owned_tables = {t.preamble.id for t in self.pipeline.p4info.tables}
        self.planner = IncrementalPlanner(self.config.topology, self.ids)
        self.journal = self.planner.journal  # one record of every in-memory change
        self.forwarding = self.builder.forwarding_wire(self.config.topology)
        self.built: dict[PlanItem, WireEntity] = {}  # the entity of each item of the plan
        self.filters: dict[EntityKey, FilterEntry] = {}  # which streams each filter entry counts for
        #: The intercepts (by content id) the plan and `built` were made from, kept
        #: through every committed change: reconcile re-plans only when they differ.
        self.planned_from: dict[int, Intercept] | None = None
        self._planned_topology = self.config.topology
        self._encoded_on: object | None = None  # the switch clock `built`'s expiries are on
        self.capacity = Capacity.of(self.pipeline, self.config.replication_groups)  # follows `believed`

    @property
    def name(self) -> str:
        return self.config.name

    # -- connection ---------------------------------------------------------

    def connect(self, timeout: float = 10.0) -> None:
        """Become primary and make sure the switch runs our pipeline.

        A pipeline with another cookie (or none: a restarted switch) is
        replaced, which empties the switch; reconcile then fills it.
        """
        if self.conn is not None:
            self.conn.close()
        cfg = self.config
        self.conn = SwitchConnection(cfg.address, device_id=cfg.device_id, election_id=cfg.election_id,
                                     tls=cfg.tls, allow_plaintext=cfg.allow_plaintext, name=cfg.name)
        self.conn.connect(timeout=timeout)
        self.capacity = Capacity.of(self.pipeline, cfg.replication_groups)  # what was learned may be stale now
        if not self.conn.is_primary:
            raise NotPrimaryError(f"{cfg.name}: another controller is primary for device {cfg.device_id}")
        running = running_cookie(self.conn)
        if running != self.pipeline.cookie:
            log.info("%s: pushing pipeline (running cookie %s)", cfg.name, running)
            self.conn.set_pipeline(self.pipeline.p4info, self.pipeline.device_config, cookie=self.pipeline.cookie)
            self.believed = {}
            self.stale = True
            self.verify_pipeline()
        self.measure_clock()

    def measure_clock(self) -> None:
        """Probe the switch clock (again: a restarted switch restarted it) and
        start a lease on it. Encapsulation entries built from now on carry
        expiries on this clock; until a reconcile or renewal writes them,
        those on the switch keep the ones they had. Without an answer the
        switch is not written at all (require_connection)."""
        assert self.conn is not None
        self.builder.clock = None
        clock = probe(self.conn, self.pipeline, self.now, self.name)
        self.builder.lease(clock, clock.read_by + min(self.config.lease, clock.horizon / 2))
        log.info("%s: switch clock at tick %d (%d ns a tick, probe round trip %.1f ms); lease until %s", self.name,
                 clock.tick, clock.tick_ns, clock.round_trip / timedelta(milliseconds=1),
                 self.builder.lease_end.isoformat(timespec="seconds"))

    def lease_due(self, now: datetime) -> bool:
        """Half the lease is gone: time to renew it."""
        end = self.builder.lease_end
        return end is not None and end - now < self.config.lease / 2

    def renew_lease(self) -> int:
        """Re-measure the clock, extend the lease and rewrite every
        encapsulation entry whose expiry moved. Returns how many were written."""
        self.require_connection()
        try:
            self.measure_clock()
        except SwitchError:
            self.stale = True  # no clock now: the watch loop connects again, which probes again
            raise
        j = self.journal
        d = Diff()
        for item in [i for i in self.built if isinstance(i, EncapEntry)]:
            entity = self.builder.encode(item)
            j.set(self.built, item, entity)
            held = self.believed.get(entity.key)
            if held is not None and held.data != entity.data:
                d.modifies.append(entity)
        self._encoded_on = self.builder.clock
        try:
            self.apply(SwitchChange(d))
        except SwitchError:
            self.rollback()
            self.stale = True
            raise
        self.commit()
        return len(d.modifies)

    def verify_pipeline(self) -> None:
        """Prove the pipeline just pushed is usable (controller.switch_link)."""
        assert self.conn is not None
        verify_pipeline(self.conn, self.pipeline, self.name, self.config.address, self.config.device_id)

    def require_connection(self, writing: bool = True) -> SwitchConnection:
        """The connection, if up; to write, also the switch's clock (every
        encapsulation entry's expiry is written on it)."""
        if self.conn is None or not self.conn.connected:
            raise SwitchUnavailableError(f"{self.name}: not connected to {self.config.address}",
                                         address=self.config.address, device_id=self.config.device_id)
        if writing and self.builder.clock is None:
            raise SwitchUnavailableError(f"{self.name}: its clock is not known, so no expiry can be written to it",
                                         address=self.config.address, device_id=self.config.device_id)
        return self.conn

    def read_actual(self) -> list[WireEntity]:
        """What the switch holds of ours, read now (controller.switch_link)."""
        return read_owned(self.require_connection(writing=False), self.owned_tables)

    # -- planning from scratch (reconcile, and tests' reference) ---------------

    def plan(self, intents: Iterable[Intent], now: datetime, ids: IdAllocator | None = None) -> InterceptPlan:
        """A from-scratch plan of the intents placed on this switch, on a copy
        of its ids unless `ids` is given: a dry run that changes nothing."""
        mine = [(m, s) for m, s, switches in intents if self.name in switches]
        ids = ids if ids is not None else IdAllocator(self.ids.replica_ids, self.ids.session_ids, self.ids.max_session_id)
        return plan_intercepts([m for m, _ in mine], [st for _, s in mine for st in s], self.config.topology, ids, now)

    def desired(self, plan: InterceptPlan) -> list[WireEntity]:
        return self.forwarding + self.builder.intercept_wire(plan)

    def reconcile(self, intents: Iterable[Intent], now: datetime, read: bool = True) -> Diff:
        """Re-plan from the stored intent and make the switch hold exactly that:
        read it, delete what is not ours or has expired, install what is missing.

        `read=False` trusts `believed` instead of reading the switch: for the
        tries of finding what a switch accepts, right after a full read."""
        self.stale = True
        old_filters = self.filters
        mine = {m.content_id: (m, _streams(s)) for m, s, switches in intents if self.name in switches}
        if not self._plan_holds(mine, now):
            self.planned_from = None
            self.planner.rebuild(mine.values(), now)
            self.built = {item: self.builder.encode(item) for item in self.planner.items()}
            self.filters = {e.key: item for item, e in self.built.items() if isinstance(item, FilterEntry)}
            self.planned_from, self._planned_topology = mine, self.config.topology
        elif self._encoded_on is not self.builder.clock:
            # The plan holds but the clock moved (a restarted switch restarts
            # it): expiries kept from the old clock would let copies run past
            # their Timeout, so the encapsulation entries are encoded again.
            for item in [i for i in self.built if isinstance(i, EncapEntry)]:
                self.built[item] = self.builder.encode(item)
        self._encoded_on = self.builder.clock
        if read:
            actual = self.read_actual()
            self.believed = {e.key: e for e in actual}
            self.capacity.recount(actual)
        else:
            actual = list(self.believed.values())
        change = SwitchChange(diff(self.forwarding + list(self.built.values()), actual))
        change.retiring = {e.key: old_filters[e.key] for e in change.diff.deletes if e.key in old_filters}
        try:
            self.capacity.check(self.name, change.diff.inserts, change.diff.deletes, what="the intent")
            if change.diff:
                self.retire_counters(change)
                self.apply(change)
        except (SwitchError, InterceptError):
            self.rollback()
            raise
        self.commit()
        self.stale = False
        return change.diff

    def _plan_holds(self, mine: Mapping[int, Intercept], now: datetime) -> bool:
        """Whether the plan in hand is the one a rebuild from `mine` would
        make: same intercepts and topology as it was made from, and none of
        them expired since. Then reconcile skips re-planning and re-encoding,
        which after a switch restart is most of the time its intercepts are
        blind (bench/restore.py)."""
        return (self.planned_from is not None and self._planned_topology is self.config.topology
                and mine == self.planned_from
                and not any(m.expired(now) for cid, (m, _) in mine.items() if cid in self.planner.wanted))

    def held_intercepts(self) -> set[int]:
        """Content ids with a filter entry of the current plan on the switch
        (as last read or written): the intercepts that are tapping now."""
        return {key.content_id for entity_key, entry in self.filters.items() if entity_key in self.believed
                for key in entry.streams}

    # -- incremental changes ------------------------------------------------

    def stage(self, changes: Mapping[int, Intercept | None], now: datetime) -> SwitchChange:
        """Plan a change (InterceptError: nothing changed) and diff it against
        `believed`. Open until `commit` or `rollback`."""
        planned = self.planner.update(changes, now)
        j = self.journal
        if self.planned_from is not None:
            for content_id, intercept in changes.items():
                if intercept is None:
                    j.pop(self.planned_from, content_id)
                else:
                    j.set(self.planned_from, content_id, (intercept[0], _streams(intercept[1])))
        gone: dict[EntityKey, FilterEntry | None] = {}
        for item in planned.removed:
            entity = j.pop(self.built, item)
            gone[entity.key] = j.pop(self.filters, entity.key) if isinstance(item, FilterEntry) else None
        d = Diff()
        kept: set[EntityKey] = set()
        for item in planned.added:
            entity = self.builder.encode(item)
            j.set(self.built, item, entity)
            if isinstance(item, FilterEntry):
                j.set(self.filters, entity.key, item)
            kept.add(entity.key)
            held = self.believed.get(entity.key)
            if held is None:
                d.inserts.append(entity)
            elif held.data != entity.data:
                d.modifies.append(entity)
        change = SwitchChange(d)
        for key, entry in gone.items():
            if key not in kept and key in self.believed:
                d.deletes.append(self.believed[key])
                if entry is not None:
                    change.retiring[key] = entry
        try:
            self.capacity.check(self.name, d.inserts, d.deletes, what=f"intercept {', '.join(map(str, changes))}"
                                if len(changes) <= 5 else f"the batch of {len(changes)} intercepts")
        except InterceptError:
            self.rollback()
            raise
        return change

    def apply(self, change: SwitchChange, batch_size: int = APPLY_BATCH) -> None:
        """Write a change's diff; on failure undo what was written and raise."""
        if not change.diff:
            return
        conn = self.require_connection()
        updates = ordered_updates(change.diff, self.rank)
        change.before = {u.entity.key: self.believed.get(u.entity.key) for u in updates}
        try:
            for start in range(0, len(updates), batch_size):
                batch = updates[start:start + batch_size]
                try:
                    conn.write_encoded([u.encode() for u in batch])
                except WriteError as error:
                    failed = {index for index, _, _ in error.errors}
                    change.applied += [u for i, u in enumerate(batch) if i not in failed]
                    self.capacity.learn_from_refusal(self.name, [batch[i] for i in failed if i < len(batch)],
                                                     change.applied, self.believed)
                    raise
                change.applied += batch
                if start + batch_size < len(updates):
                    crashpoints.reached("mid-write")
        except SwitchError:
            self.undo(change)
            raise
        used = self.capacity.used
        for u in change.applied:
            slot = slot_of(u.entity)
            if u.type == p4r.Update.DELETE:
                if self.journal.pop(self.believed, u.entity.key) is not None:
                    self.journal.set(used, slot, used.get(slot, 0) - 1)
            else:
                if u.entity.key not in self.believed:
                    self.journal.set(used, slot, used.get(slot, 0) + 1)
                self.journal.set(self.believed, u.entity.key, u.entity)

    def undo(self, change: SwitchChange) -> None:
        """Best-effort reversal on the switch of what `apply` wrote, newest
        first; what cannot be undone is left to reconcile (the switch is marked stale)."""
        reverse = [inverse(u, change.before).encode() for u in reversed(change.applied)]
        change.applied = []
        try:
            if reverse:
                self.require_connection().write_encoded(reverse)
        except SwitchError as error:
            log.error("%s: rollback incomplete (%s); reconcile will correct it", self.name, error)
            self.stale = True
            self.undo_failures += 1

    def commit(self) -> None:
        self.journal.commit()

    def rollback(self) -> None:
        """Put plan, ids, entities and banked counters back as before the change."""
        self.journal.rollback()

    # -- counters -----------------------------------------------------------

    def retire_counters(self, change: SwitchChange) -> None:
        """Before filter entries go away, bank their counts for their streams,
        so that the MIB's counters never run backwards."""
        if not change.retiring or self.conn is None:
            return
        for key, counts in filter_counts(self.conn, self.believed, change.retiring).items():
            for stream in change.retiring[key].streams:
                self.journal.set(self.retired, stream, self.retired.get(stream, StreamCounters()) + counts)

    def stream_counters(self, content_id: int, stream_keys: Iterable[StreamKey]) -> dict[StreamKey, StreamCounters]:
        wanted = set(stream_keys)
        out = {k: self.retired.get(k, StreamCounters()) for k in wanted}
        mine = [key for key, entry in self.filters.items() if entry.streams & wanted]
        assert self.conn is not None
        found = filter_counts(self.conn, self.believed, mine)
        for key in mine:
            counts = found.get(key)
            if counts is None:  # planned and believed written, but not on the switch: show it, repair it
                self.stale = True
                counts = StreamCounters(held=False)
            for stream in self.filters[key].streams & wanted:
                out[stream] += counts
        rid = self.ids.replica_ids.get(content_id)
        if rid is not None:
            dropped = encap_drops(self.conn, self.pipeline, rid)
            out = {k: StreamCounters(c.packets, c.octets, dropped, c.held) for k, c in out.items()}
        return out

    # -- ETS (RFC 4190) -----------------------------------------------------

    def set_ets(self, cfg: ets.EtsConfig | None) -> None:
        """New ETS settings: they live in the forwarding entities, which the
        next reconcile carries to the switch."""
        self.config.topology = dataclasses.replace(self.config.topology, ets=cfg)
        self.forwarding = self.builder.forwarding_wire(self.config.topology)

    def apply_ets_meters(self) -> None:
        """Set every trusted port's ETS cap (meters lose their rates when the
        pipeline is pushed, and MODIFY is idempotent, so this runs on every
        reconcile)."""
        cfg = self.config.topology.ets
        if cfg is not None and cfg.trusted_ports:
            conn = self.require_connection()
            conn.write([p4r.Update(type=p4r.Update.MODIFY, entity=e) for e in self.builder.ets_meters(cfg)])

    def ets_counters(self) -> dict[str, tuple[int, int]]:
        """(packets, bytes) per ETS class since the entries were installed."""
        cfg = self.config.topology.ets
        if cfg is None:
            return {}
        return ets_class_counts(self.require_connection(writing=False), self.pipeline, self.builder, cfg)
