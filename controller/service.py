"""The controller: owns every switch's intercept state and keeps it true.

Intent first: an intercept is validated (planned in a dry run), written to
the durable store, then carried to each of its switches as a small diff. If
any write fails part-way, every update already applied is undone and the
previous intent restored, so no tap is ever half installed. A controller
restart reads the intent back and reconciles; the data plane keeps tapping
meanwhile because nothing is removed on the way down.

Lifetime: a timer removes a mediation and its streams at its timeout (within
a second) and reports it to `on_expired` listeners (the SNMP agent turns it
into ciscoTap2MediationTimedOut). Expired intercepts are never planned, so a
switch that restarts gets back only what is still within its lifetime.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from p4.v1 import p4runtime_pb2 as p4r

from controller.audit import AuditLog
from controller import ets
from controller.entries import ENCAP_DROPS_COUNTER, ETS_DEMOTED_COUNTER, EntryBuilder, ets_table, filter_table, rank
from controller.model import InterceptError, Mediation, Stream, StreamKey
from controller.pipeline import Pipeline
from controller.plan import FilterEntry, IdAllocator, InterceptPlan, Side, plan_intercepts
from controller.reconcile import Diff, canonical, diff, inverse, key_of, ordered_updates
from controller.store import IntentStore
from controller.switch import (NotPrimaryError, SwitchConnection, SwitchError, SwitchUnavailableError, TlsConfig,
                               WriteError)
from controller.topology import SwitchTopology

log = logging.getLogger("p4tap.controller")

Intent = tuple[Mediation, list[Stream], list[str]]
ExpiryListener = Callable[[Mediation], None]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class ProvisionError(Exception):
    """An intercept could not be carried out; nothing of it remains installed."""


@dataclass
class SwitchConfig:
    name: str
    address: str
    topology: SwitchTopology
    device_id: int = 0
    election_id: tuple[int, int] = (0, 1)
    tls: TlsConfig | None = None
    allow_plaintext: bool | None = None


@dataclass
class StreamCounters:
    packets: int = 0
    octets: int = 0
    drops: int = 0


@dataclass
class ManagedSwitch:
    """One switch: its connection, its id allocator, and what it holds.

    `believed` mirrors the switch's entities as of the last successful write
    or read; diffs for provisioning are taken against it, full reads happen
    at reconcile time.
    """

    config: SwitchConfig
    pipeline: Pipeline
    ids: IdAllocator = field(default_factory=IdAllocator)
    conn: SwitchConnection | None = None
    believed: dict[tuple, p4r.Entity] = field(default_factory=dict)
    filters: dict[tuple, FilterEntry] = field(default_factory=dict)
    retired: dict[StreamKey, StreamCounters] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.builder = EntryBuilder(self.pipeline)
        self.rank = rank(self.pipeline)
        self.owned_tables = {t.preamble.id for t in self.pipeline.p4info.tables}

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
        if not self.conn.is_primary:
            raise NotPrimaryError(f"{cfg.name}: another controller is primary for device {cfg.device_id}")
        try:
            cookie = self.conn.get_pipeline(response_type=p4r.GetForwardingPipelineConfigRequest.COOKIE_ONLY)
            running = cookie.cookie.cookie if cookie is not None and cookie.HasField("cookie") else None
        except SwitchError:
            running = None
        if running != self.pipeline.cookie:
            log.info("%s: pushing pipeline (running cookie %s)", cfg.name, running)
            self.conn.set_pipeline(self.pipeline.p4info, self.pipeline.device_config, cookie=self.pipeline.cookie)
            self.believed = {}
            self.verify_pipeline()

    def verify_pipeline(self) -> None:
        """bmv2 acknowledges a pipeline push even when it cannot load the JSON
        (it only fails later, on every read): prove the pipeline is usable by
        reading one of its tables, and say so clearly when it is not."""
        assert self.conn is not None
        first_table = self.pipeline.p4info.tables[0].preamble
        try:
            self.conn.read_table_entries(first_table.id)
        except SwitchError as error:
            raise SwitchError(f"{self.name}: the switch accepted the pipeline but cannot use it "
                              f"(reading {first_table.name} fails: {error}); check the switch's log",
                              address=self.config.address, device_id=self.config.device_id) from error

    def read_actual(self) -> list[p4r.Entity]:
        self.require_connection()
        entities = [p4r.Entity(table_entry=te) for te in self.conn.read_table_entries()
                    if not te.is_default_action and te.table_id in self.owned_tables]
        entities += [p4r.Entity(packet_replication_engine_entry=p4r.PacketReplicationEngineEntry(clone_session_entry=c))
                     for c in self.conn.read_clone_sessions()]
        entities += [p4r.Entity(packet_replication_engine_entry=p4r.PacketReplicationEngineEntry(multicast_group_entry=g))
                     for g in self.conn.read_multicast_groups()]
        return [canonical(e) for e in entities]

    # -- desired state ------------------------------------------------------

    def plan(self, intents: Iterable[Intent], now: datetime, ids: IdAllocator | None = None) -> InterceptPlan:
        mine = [(m, s) for m, s, switches in intents if self.name in switches]
        return plan_intercepts([m for m, _ in mine], [st for _, s in mine for st in s], self.config.topology,
                               ids if ids is not None else self.ids, now)

    def desired(self, plan: InterceptPlan) -> list[p4r.Entity]:
        return [canonical(e) for e in
                self.builder.forwarding_entities(self.config.topology) + self.builder.intercept_entities(plan)]

    # -- writes -------------------------------------------------------------

    def require_connection(self) -> SwitchConnection:
        if self.conn is None or not self.conn.connected:
            raise SwitchUnavailableError(f"{self.name}: not connected to {self.config.address}",
                                         address=self.config.address, device_id=self.config.device_id)
        return self.conn

    def apply(self, d: Diff, batch_size: int = 2000) -> list[p4r.Update]:
        """Apply a diff; on failure undo what was applied and raise.

        Returns the applied updates (for a caller that must undo them later,
        when another switch of the same intercept fails)."""
        self.require_connection()
        updates = ordered_updates(d, self.rank)
        before = dict(self.believed)
        applied: list[p4r.Update] = []
        try:
            for start in range(0, len(updates), batch_size):
                batch = updates[start:start + batch_size]
                try:
                    self.conn.write(batch)
                except WriteError as error:
                    failed = {index for index, _, _ in error.errors}
                    applied += [u for i, u in enumerate(batch) if i not in failed]
                    raise
                applied += batch
        except SwitchError:
            self.undo(applied, before)
            raise
        self._remember(applied)
        return applied

    def undo(self, applied: Sequence[p4r.Update], before: dict[tuple, p4r.Entity]) -> None:
        """Best-effort reversal of `applied`, newest first; what cannot be
        undone is left for reconcile, which corrects it from the intent."""
        assert self.conn is not None
        reverse = [inverse(u, before) for u in reversed(applied)]
        try:
            if reverse:
                self.conn.write(reverse)
        except SwitchError as error:
            log.error("%s: rollback incomplete (%s); reconcile will correct it", self.name, error)
        self.believed = before

    def _remember(self, applied: Iterable[p4r.Update]) -> None:
        for u in applied:
            key = key_of(u.entity)
            if u.type == p4r.Update.DELETE:
                self.believed.pop(key, None)
            else:
                self.believed[key] = canonical(u.entity)

    def index_filters(self, plan: InterceptPlan) -> None:
        """Remember which filter entry counts for which streams."""
        self.filters = {key_of(canonical(p4r.Entity(table_entry=self.builder.filter(f)))): f for f in plan.filters}

    # -- counters -----------------------------------------------------------

    def retire_counters(self, d: Diff) -> None:
        """Before filter entries go away, bank their counts for their streams,
        so that the MIB's counters never run backwards."""
        doomed = {key_of(e) for e in d.deletes if e.HasField("table_entry") and key_of(e) in self.filters}
        if not doomed or self.conn is None:
            return
        for family in (4, 6):
            for side in Side:
                table_id = self.pipeline.table_id(filter_table(family, side))
                for te in self.conn.read_table_entries(table_id, with_counters=True):
                    key = key_of(canonical(p4r.Entity(table_entry=te)))
                    if key in doomed:
                        for stream in self.filters[key].streams:
                            banked = self.retired.setdefault(stream, StreamCounters())
                            banked.packets += te.counter_data.packet_count
                            banked.octets += te.counter_data.byte_count

    def stream_counters(self, content_id: int, stream_keys: Iterable[StreamKey]) -> dict[StreamKey, StreamCounters]:
        assert self.conn is not None
        out = {k: copy.copy(self.retired.get(k, StreamCounters())) for k in stream_keys}
        for family in (4, 6):
            for side in Side:
                table_id = self.pipeline.table_id(filter_table(family, side))
                for te in self.conn.read_table_entries(table_id, with_counters=True):
                    entry = self.filters.get(key_of(canonical(p4r.Entity(table_entry=te))))
                    if entry is None:
                        continue
                    for stream in entry.streams & out.keys():
                        out[stream].packets += te.counter_data.packet_count
                        out[stream].octets += te.counter_data.byte_count
        rid = self.ids.replica_ids.get(content_id)
        if rid is not None:
            drops = self.conn.read_counter(self.pipeline.counter_id(ENCAP_DROPS_COUNTER), index=rid)
            for stream in out.values():
                stream.drops = sum(c.data.packet_count for c in drops)
        return out

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
        conn = self.require_connection()
        entries = [te for f in (4, 6)
                   for te in conn.read_table_entries(self.pipeline.table_id(ets_table(f)), with_counters=True)]
        demoted = conn.read_counter(self.pipeline.counter_id(ETS_DEMOTED_COUNTER))
        return self.builder.ets_class_counters(cfg, entries, demoted)


class Controller:
    """Intercepts in, P4Runtime state out, on every configured switch."""

    def __init__(self, switches: Sequence[SwitchConfig], store_path: Path, audit_path: Path,
                 pipeline: Pipeline | None = None, clock: Callable[[], datetime] = utcnow) -> None:
        if not switches:
            raise ValueError("a controller needs at least one switch")
        self.pipeline = pipeline or Pipeline.load()
        self.store = IntentStore(store_path)
        self.audit = AuditLog(audit_path)
        self.clock = clock
        self.switches = {c.name: ManagedSwitch(c, self.pipeline, ids=self.store.load_ids(c.name)) for c in switches}
        self.lock = threading.RLock()
        self._expiry_listeners: list[ExpiryListener] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle ----------------------------------------------------------

    def start(self, connect_timeout: float = 10.0) -> None:
        """Connect to every switch, reconcile it with the intent, start timers."""
        with self.lock:
            self.expire_due()
            for switch in self.switches.values():
                switch.connect(timeout=connect_timeout)
                self.reconcile(switch.name)
        self._stop.clear()
        for target, name in ((self._lifetime_loop, "lifetime"), (self._watch_loop, "switch-watch")):
            thread = threading.Thread(target=target, name=f"p4tap-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop timers and close connections. The switches keep what they hold."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        for switch in self.switches.values():
            if switch.conn is not None:
                switch.conn.close()
        self.store.close()
        self.audit.close()

    def __enter__(self) -> Controller:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def on_expired(self, listener: ExpiryListener) -> None:
        self._expiry_listeners.append(listener)

    # -- the API ------------------------------------------------------------

    def intercepts(self) -> list[Intent]:
        return self.store.all()

    def provision(self, mediation: Mediation, streams: Sequence[Stream], actor: str,
                  switches: Sequence[str] | None = None) -> None:
        """Install (or replace) one intercept on its switches, all or nothing."""
        self.provision_many([(mediation, list(streams))], actor, switches)

    def provision_many(self, intercepts: Sequence[tuple[Mediation, list[Stream]]], actor: str,
                       switches: Sequence[str] | None = None) -> None:
        """Install several intercepts in one diff per switch (bulk provisioning)."""
        targets = list(switches) if switches else list(self.switches)
        with self.lock:
            try:
                self._check_new(intercepts, targets)
            except InterceptError as error:
                self.audit.append(actor, "refuse", content_ids=[m.content_id for m, _ in intercepts], reason=str(error))
                raise
            previous = {m.content_id: self.store.get(m.content_id) for m, _ in intercepts}
            self.store.put_intercepts([(m, s, targets) for m, s in intercepts])  # intent first, one transaction
            try:
                self._apply_intent(set(targets) | self._switches_of(previous))
            except SwitchError as error:
                for content_id, old in previous.items():
                    if old is None:
                        self.store.remove_intercept(content_id)
                self.store.put_intercepts([old for old in previous.values() if old is not None])
                self.audit.append(actor, "refuse", content_ids=list(previous), reason=f"switch: {error}")
                raise ProvisionError(f"intercept not installed, nothing changed: {error}") from error
            if len(intercepts) == 1:
                mediation, streams = intercepts[0]
                self.audit.append(actor, "provision", content_id=mediation.content_id, switches=targets,
                                  md=f"{mediation.dest_address}:{mediation.dest_port}",
                                  timeout=mediation.timeout.isoformat() if mediation.timeout else None,
                                  streams=[s.index for s in streams if s.enabled])
            else:
                self.audit.append(actor, "provision", content_ids=[m.content_id for m, _ in intercepts],
                                  switches=targets)
        self._wake.set()

    def remove(self, content_id: int, actor: str, action: str = "remove") -> bool:
        """Remove an intercept from the intent and its switches.

        A removal asked for by a person is all or nothing: if a switch cannot
        be changed, the intercept stays (and the caller is told). An expiry is
        not negotiable: the intent goes at once and a switch that cannot be
        reached now is corrected by reconcile when it comes back, where the
        expired intercept is never planned again.
        """
        with self.lock:
            old = self.store.get(content_id)
            if old is None:
                return False
            self.store.remove_intercept(content_id)
            try:
                self._apply_intent(set(old[2]))
            except SwitchError as error:
                if action == "expire":
                    log.warning("intercept %d expired; switch update deferred to reconcile: %s", content_id, error)
                else:
                    self.store.put_intercept(*old)
                    self.audit.append(actor, "refuse", content_id=content_id, reason=f"removal failed: {error}")
                    raise ProvisionError(f"intercept {content_id} still installed: {error}") from error
            self.audit.append(actor, action, content_id=content_id)
            return True

    def update_timeout(self, content_id: int, timeout: datetime, actor: str) -> None:
        """cTap2MediationTimeout may change while the row is active."""
        with self.lock:
            old = self.store.get(content_id)
            if old is None:
                raise InterceptError(f"no intercept {content_id}")
            mediation, streams, switches = old
            self.provision(dataclasses.replace(mediation, timeout=timeout), streams, actor, switches)

    def counters(self, content_id: int) -> dict[StreamKey, StreamCounters]:
        """InterceptedPackets / InterceptDrops per stream, summed over switches."""
        with self.lock:
            intent = self.store.get(content_id)
            if intent is None:
                return {}
            keys = [s.key for s in intent[1]]
            total = {k: StreamCounters() for k in keys}
            for name in intent[2]:
                switch = self.switches.get(name)
                if switch is None or switch.conn is None:
                    continue
                for key, c in switch.stream_counters(content_id, keys).items():
                    total[key].packets += c.packets
                    total[key].octets += c.octets
                    total[key].drops += c.drops
            return total

    # -- internals ----------------------------------------------------------

    @staticmethod
    def _switches_of(intents: dict[int, Intent | None]) -> set[str]:
        return {name for old in intents.values() if old is not None for name in old[2]}

    def _check_new(self, intercepts: Sequence[tuple[Mediation, list[Stream]]], targets: list[str]) -> None:
        unknown = [t for t in targets if t not in self.switches]
        if unknown:
            raise InterceptError(f"unknown switch {', '.join(unknown)}")
        now = self.clock()
        for mediation, streams in intercepts:
            if mediation.timeout is None:
                raise InterceptError(f"mediation {mediation.content_id}: no cTap2MediationTimeout given")
            if mediation.expired(now):
                raise InterceptError(f"mediation {mediation.content_id}: timeout {mediation.timeout} has passed")
            for stream in streams:
                if stream.content_id != mediation.content_id:
                    raise InterceptError(f"stream {stream.key} does not belong to mediation {mediation.content_id}")
        replaced = {m.content_id for m, _ in intercepts}
        intents = [i for i in self.store.all() if i[0].content_id not in replaced]
        intents += [(m, list(s), targets) for m, s in intercepts]
        for name in targets:
            switch = self.switches[name]
            switch.plan(intents, now, ids=IdAllocator(switch.ids.replica_ids, switch.ids.session_ids))

    def _apply_intent(self, names: set[str]) -> None:
        """Carry the stored intent to these switches; undo all of them if one fails."""
        now = self.clock()
        intents = self.store.all()
        done: list[tuple[ManagedSwitch, list[p4r.Update], dict, IdAllocator]] = []
        try:
            for name in sorted(names):
                switch = self.switches[name]
                before, ids_before = dict(switch.believed), IdAllocator(switch.ids.replica_ids, switch.ids.session_ids)
                plan = switch.plan(intents, now)
                d = diff(switch.desired(plan), switch.believed.values())
                switch.retire_counters(d)
                applied = switch.apply(d)
                switch.index_filters(plan)
                done.append((switch, applied, before, ids_before))
                self.store.save_ids(name, switch.ids)
        except SwitchError:
            for switch, applied, before, ids_before in reversed(done):
                switch.undo(applied, before)
                switch.ids = ids_before
                self.store.save_ids(switch.name, ids_before)
            raise

    def reconcile(self, name: str, actor: str = "controller") -> Diff:
        """Make one switch hold exactly the intent: read it, delete what is not
        ours or has expired, install what is missing. Every correction is audited."""
        with self.lock:
            switch = self.switches[name]
            plan = switch.plan(self.store.all(), self.clock())
            actual = switch.read_actual()
            switch.believed = {key_of(e): e for e in actual}
            d = diff(switch.desired(plan), actual)
            if d:
                switch.retire_counters(d)
                switch.apply(d)
                self.audit.append(actor, "reconcile", switch=name, inserted=len(d.inserts),
                                  modified=len(d.modifies), deleted=len(d.deletes))
                log.info("%s: reconciled: %s", name, d.summary())
            switch.index_filters(plan)
            switch.apply_ets_meters()
            self.store.save_ids(name, switch.ids)
            return d

    # -- ETS (RFC 4190) -----------------------------------------------------

    def set_ets(self, name: str, cfg: ets.EtsConfig | None, actor: str) -> Diff:
        """Replace one switch's ETS conditioning (None: none) and carry it to
        the switch. Runtime only: the config file stays the source at start.
        If the switch refuses, the previous settings are restored."""
        with self.lock:
            switch = self.switches.get(name)
            if switch is None:
                raise KeyError(f"no switch named {name!r}")
            old = switch.config.topology.ets
            switch.config.topology = dataclasses.replace(switch.config.topology, ets=cfg)
            try:
                d = self.reconcile(name, actor)
            except Exception:
                switch.config.topology = dataclasses.replace(switch.config.topology, ets=old)
                self.reconcile(name, actor)
                raise
            self.audit.append(actor, "ets", switch=name, config=None if cfg is None else repr(cfg))
            return d

    def ets_counters(self, name: str) -> dict[str, tuple[int, int]]:
        with self.lock:
            switch = self.switches.get(name)
            if switch is None:
                raise KeyError(f"no switch named {name!r}")
            return switch.ets_counters()

    def expire_due(self) -> list[Mediation]:
        """Remove every intercept whose timeout has passed; tell the listeners."""
        now = self.clock()
        expired = [m for m, _, _ in self.store.all() if m.expired(now)]
        for mediation in expired:
            self.remove(mediation.content_id, "controller", action="expire")
            for listener in self._expiry_listeners:
                try:
                    listener(mediation)
                except Exception:  # a listener's fault must not stop expiry
                    log.exception("expiry listener failed for %d", mediation.content_id)
        return expired

    def _next_timeout(self) -> float | None:
        timeouts = [m.timeout for m, _, _ in self.store.all() if m.timeout is not None]
        if not timeouts:
            return None
        return max(0.0, (min(timeouts) - self.clock()).total_seconds())

    def _lifetime_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            with self.lock:
                self.expire_due()
                wait = self._next_timeout()
            # Sleep until the next timeout, but never more than a second, so an
            # intercept stops delivering within 1 s of its timeout.
            self._wake.wait(timeout=1.0 if wait is None else min(max(wait, 0.01), 1.0))

    def _watch_loop(self) -> None:
        """Reconnect (with backoff) to switches that dropped, then reconcile."""
        backoff: dict[str, float] = {}
        while not self._stop.wait(0.25):
            for switch in self.switches.values():
                if switch.conn is not None and switch.conn.connected and switch.conn.is_primary:
                    backoff.pop(switch.name, None)
                    continue
                delay = backoff.get(switch.name, 0.25)
                try:
                    with self.lock:
                        switch.connect(timeout=2.0)
                        self.reconcile(switch.name)
                    log.info("%s: connection restored and reconciled", switch.name)
                    backoff.pop(switch.name, None)
                except (SwitchError, OSError) as error:
                    log.warning("%s: unavailable (%s); retrying in %.1fs", switch.name, error, delay)
                    backoff[switch.name] = min(delay * 2, 10.0)
                    self._stop.wait(delay)

