"""Plan objects as P4Runtime entities of the p4tap pipeline.

The one place that knows the pipeline's table, field and action names (they
follow p4src/: control instance path, then table). Everything above speaks in
plan objects; everything below in P4Runtime entities, as wire bytes
(controller.wire) or, on request, protobuf messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from p4protos import p4runtime_pb2 as p4r

from controller import ets, wire
from controller.clock import SwitchClock
from controller.pipeline import Pipeline, decode, mac_to_int
from controller.plan import (MAX_SESSION_ID, CloneSession, EncapEntry, FilterEntry, GateEntry, InterceptPlan, MergeEntry,
                             PlanItem, Side)
from controller.regions import Span, Ternary
from controller.topology import SwitchTopology
from controller.wire import WireEntity

INGRESS = "P4tapIngress"
EGRESS = "P4tapEgress"
CLASSIFIER = f"{INGRESS}.intercept_classifier"
GATES = f"{INGRESS}.intercept_gates"

# Field name and width, in the order the filter tables declare them.
FILTER_TERNARY_FIELDS = ("ingress_port", "egress_port", "mcast_grp", "src_addr", "dst_addr", "protocol", "tos",
                         "flow_label", "l4_valid")
FILTER_TERNARY_FIELDS_V4 = tuple(name for name in FILTER_TERNARY_FIELDS if name != "flow_label")
FILTER_RANGE_FIELDS = ("src_port", "dst_port")
# The last tick of a builder that knows no switch clock (PTF suites, the
# demo's and benchmarks' hand-written entries): half the tick space, so a
# copy leaves while the switch's clock is below it (bmv2: 25 days from its
# start). The controller always knows the clock (EntryBuilder.lease).
UNCLOCKED_LAST_TICK = (1 << 31) - 1


def side_control(family: int, side: Side) -> str:
    """The control instance holding one side's filter table."""
    return f"{CLASSIFIER}.ipv{family}_{side.value}"


def gate_control(family: int, side: Side) -> str:
    """The control instance holding one side's gate (ahead of the VRF lookup)."""
    return f"{GATES}.ipv{family}_{side.value}_gate"


def gate_table(family: int, side: Side) -> str:
    return f"{gate_control(family, side)}.gate"


def filter_table(family: int, side: Side) -> str:
    return f"{side_control(family, side)}.filter"


MERGE_TABLE = f"{CLASSIFIER}.merge"
INTERCEPT_ACTION = f"{CLASSIFIER}.intercept"
ENCAP_TABLE = f"{EGRESS}.intercept_encap.intercept_encap"
ENCAP_DROPS_COUNTER = f"{EGRESS}.intercept_encap.intercept_drops"
BRIDGING = f"{INGRESS}.bridging"
ROUTING = f"{INGRESS}.routing"
VRF = f"{INGRESS}.vrf_classifier"
ETS = f"{INGRESS}.ets_conditioner"
ETS_METER = f"{ETS}.ets_cap"
ETS_DEMOTED_COUNTER = f"{ETS}.ets_demoted"


def clone_session_limit(pipeline: Pipeline) -> int:
    """The highest clone session id the pipeline can carry, from its P4Info:
    the narrowest of the fields naming a session (the intercept action's
    `session`, which is the mirror id on Tofino: 10 bits, 8 on Tofino 2; the
    merge table's keys), and never beyond bmv2's 32767."""
    widths = [pipeline.param(INTERCEPT_ACTION, "session").bitwidth,
              *(pipeline.match_field(MERGE_TABLE, f).bitwidth for f in ("src_session", "dst_session"))]
    return min(MAX_SESSION_ID, (1 << min(widths)) - 1)


def ets_table(family: int) -> str:
    return f"{ETS}.ipv{family}_marks"


Match = tuple[int, bytes]  # (field id, encoded FieldMatch); None where a field is a wildcard


class EntryBuilder:
    """Builds the pipeline's entities: plan items and forwarding state.

    `encode` and the `*_wire` methods give `WireEntity`s (the controller's
    form, see controller.wire); `intercept_entities`, `forwarding_entities`
    and `table_entry` give protobuf messages for the PTF suites, the demo and
    the benchmarks. P4Info look-ups are cached: the controller encodes tens
    of thousands of entries per switch.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        # The switch's clock and lease end: every encapsulation entry's last
        # tick is min(Timeout, lease end) on that clock (controller.clock).
        self.clock: SwitchClock | None = None
        self.lease_end: datetime | None = None
        self._ids: dict[tuple[str, ...], int] = {}
        self._fields: dict[tuple[str, str], tuple[int, int]] = {}
        self._params: dict[tuple[str, str], tuple[int, int]] = {}

    # -- P4Info, cached -------------------------------------------------

    def table_id(self, table: str) -> int:
        key = ("table", table)
        if key not in self._ids:
            self._ids[key] = self.pipeline.table_id(table)
        return self._ids[key]

    def action_id(self, action: str) -> int:
        key = ("action", action)
        if key not in self._ids:
            self._ids[key] = self.pipeline.action_id(action)
        return self._ids[key]

    def _field(self, table: str, field: str) -> tuple[int, int]:
        """(id, bitwidth) of a table's match field."""
        found = self._fields.get((table, field))
        if found is None:
            mf = self.pipeline.match_field(table, field)
            found = self._fields[(table, field)] = (mf.id, mf.bitwidth)
        return found

    def _param(self, action: str, param: str) -> tuple[int, int]:
        found = self._params.get((action, param))
        if found is None:
            p = self.pipeline.param(action, param)
            found = self._params[(action, param)] = (p.id, p.bitwidth)
        return found

    # -- generic pieces -------------------------------------------------

    def exact(self, table: str, field: str, number: int) -> Match:
        fid, bits = self._field(table, field)
        return fid, wire.exact(fid, wire.value(number, bits))

    def lpm(self, table: str, field: str, number: int, prefix_len: int) -> Match | None:
        if prefix_len == 0:
            return None  # P4Runtime: a don't-care field is omitted
        fid, bits = self._field(table, field)
        return fid, wire.lpm(fid, wire.value(number, bits), prefix_len)

    def ternary(self, table: str, field: str, t: Ternary) -> Match | None:
        if t.wildcard:
            return None
        fid, bits = self._field(table, field)
        return fid, wire.ternary(fid, wire.value(t.value, bits), wire.value(t.mask, bits))

    def range(self, table: str, field: str, span: Span) -> Match | None:
        fid, bits = self._field(table, field)
        if (span.lo, span.hi) == (0, (1 << bits) - 1):
            return None
        return fid, wire.range_(fid, wire.value(span.lo, bits), wire.value(span.hi, bits))

    def action(self, name: str, **params: int) -> bytes:
        encoded = []
        for param_name, number in params.items():
            pid, bits = self._param(name, param_name)
            encoded.append((pid, wire.value(number, bits)))
        return wire.action(self.action_id(name), encoded)

    def table_entry_wire(self, table: str, match: Iterable[Match | None], action: bytes,
                         priority: int = 0) -> WireEntity:
        return wire.table_entry(self.table_id(table), [m for m in match if m is not None], action, priority)

    def table_entry(self, table: str, match: Iterable[Match | None], action: bytes,
                    priority: int = 0) -> p4r.TableEntry:
        return self.table_entry_wire(table, match, action, priority).entity.table_entry

    # -- intercept plan -------------------------------------------------

    def encode(self, item: PlanItem) -> WireEntity:
        """The entity that carries one plan item out."""
        return self._encoders[type(item)](self, item)

    def _gate(self, g: GateEntry) -> WireEntity:
        table = gate_table(g.family, g.side)
        return self.table_entry_wire(
            table,
            [self.lpm(table, "addr", int(g.prefix.network_address), g.prefix.prefixlen)],
            self.action(f"{gate_control(g.family, g.side)}.open_gate"),
        )

    def _filter(self, f: FilterEntry) -> WireEntity:
        r = f.region
        table = filter_table(r.family, f.side)
        fields = FILTER_TERNARY_FIELDS if r.family == 6 else FILTER_TERNARY_FIELDS_V4
        match = [self.exact(table, "vrf", r.vrf)]
        match += [self.ternary(table, name, getattr(r, name)) for name in fields]
        match += [self.range(table, name, getattr(r, name)) for name in FILTER_RANGE_FIELDS]
        return self.table_entry_wire(
            table, match, self.action(f"{side_control(r.family, f.side)}.match_session", id=f.session_id), f.priority
        )

    def _merge(self, m: MergeEntry) -> WireEntity:
        return self.table_entry_wire(
            MERGE_TABLE,
            [self.exact(MERGE_TABLE, "src_session", m.src_session), self.exact(MERGE_TABLE, "dst_session", m.dst_session)],
            self.action(INTERCEPT_ACTION, session=m.session_id),
        )

    def lease(self, clock: SwitchClock, lease_end: datetime) -> None:
        """Encode expiries on `clock`, none later than `lease_end`."""
        self.clock, self.lease_end = clock, lease_end

    def last_tick(self, timeout: datetime | None) -> int:
        """The switch tick after which a mediation's copies are dropped."""
        if self.clock is None or self.lease_end is None:
            return UNCLOCKED_LAST_TICK
        return self.clock.last_tick(self.lease_end if timeout is None else min(timeout, self.lease_end))

    def _encap(self, e: EncapEntry) -> WireEntity:
        version = e.dst_address.version
        return self.table_entry_wire(
            ENCAP_TABLE,
            [self.exact(ENCAP_TABLE, "replica", e.rid)],
            self.action(
                f"{EGRESS}.intercept_encap.encap_ipv{version}",
                cccid=e.content_id,
                src_mac=mac_to_int(e.next_hop.src_mac),
                dst_mac=mac_to_int(e.next_hop.dst_mac),
                src_addr=int(e.src_address),
                dst_addr=int(e.dst_address),
                src_port=e.src_port,
                dst_port=e.dst_port,
                dscp=e.dscp,
                last_tick=self.last_tick(e.timeout),
            ),
        )

    def _clone_session(self, s: CloneSession) -> WireEntity:
        # bmv2 requires class_of_service 0 and packet_length_bytes 0.
        return wire.clone_session(s.session_id, [(r.port, r.rid) for r in s.replicas])

    _encoders: dict[type, Callable[[EntryBuilder, PlanItem], WireEntity]] = {
        GateEntry: _gate, FilterEntry: _filter, MergeEntry: _merge, EncapEntry: _encap, CloneSession: _clone_session,
    }

    def intercept_wire(self, plan: InterceptPlan) -> list[WireEntity]:
        """All entities of a plan, in a safe insertion order: what a rule
        points at (encapsulation, sessions) exists before the rule does."""
        items: list[PlanItem] = [*sorted(plan.encaps, key=lambda e: e.rid),
                                 *sorted(plan.sessions, key=lambda s: s.session_id),
                                 *sorted(plan.merges),
                                 *sorted(plan.filters, key=lambda f: (f.side.value, f.region, f.priority)),
                                 *sorted(plan.gates, key=lambda g: (g.family, g.side.value,
                                                                    int(g.prefix.network_address), g.prefix.prefixlen))]
        return [self.encode(item) for item in items]

    def intercept_entities(self, plan: InterceptPlan) -> list[p4r.Entity]:
        return [w.entity for w in self.intercept_wire(plan)]

    # -- forwarding -----------------------------------------------------

    def forwarding_wire(self, topo: SwitchTopology) -> list[WireEntity]:
        """Ports' VRFs, router MACs, L2 entries, flooding and routes."""
        out: list[WireEntity] = []
        port_vrf = f"{VRF}.port_vrf"
        for port, vrf in sorted(topo.port_vrfs.items()):
            out.append(self.table_entry_wire(
                port_vrf, [self.exact(port_vrf, "ingress_port", port)], self.action(f"{VRF}.set_vrf", vrf=vrf)))
        port_vlan_vrf = f"{VRF}.port_vlan_vrf"
        for (port, vid), vrf in sorted(topo.vlan_vrfs.items()):
            out.append(self.table_entry_wire(
                port_vlan_vrf, [self.exact(port_vlan_vrf, "ingress_port", port), self.exact(port_vlan_vrf, "vid", vid)],
                self.action(f"{VRF}.set_vrf", vrf=vrf)))
        l2 = f"{BRIDGING}.l2_table"
        for mac in topo.router_macs:
            out.append(self.table_entry_wire(
                l2, [self.exact(l2, "dst_addr", mac_to_int(mac))], self.action(f"{BRIDGING}.to_router")))
        for entry in topo.l2:
            out.append(self.table_entry_wire(
                l2, [self.exact(l2, "dst_addr", mac_to_int(entry.mac))],
                self.action(f"{BRIDGING}.l2_forward", port=entry.port)))
        if topo.flood is not None:
            out.append(wire.multicast_group(topo.flood.group_id, [(port, 0) for port in topo.flood.ports]))
            out.append(self.table_entry_wire(
                l2, [self.exact(l2, "dst_addr", 0xFFFFFFFFFFFF)],
                self.action(f"{BRIDGING}.l2_flood", group=topo.flood.group_id)))
        for route in topo.routes:
            version = route.prefix.version
            table = f"{ROUTING}.ipv{version}_routes"
            out.append(self.table_entry_wire(
                table,
                [self.exact(table, "vrf", route.vrf),
                 self.lpm(table, "dst_addr", int(route.prefix.network_address), route.prefix.prefixlen)],
                self.action(f"{ROUTING}.route_v{version}", port=route.next_hop.port,
                            src_mac=mac_to_int(route.next_hop.src_mac), dst_mac=mac_to_int(route.next_hop.dst_mac))))
        if topo.ets is not None:
            out += self.ets_wire(topo.ets)
        return out

    def forwarding_entities(self, topo: SwitchTopology) -> list[p4r.Entity]:
        return [w.entity for w in self.forwarding_wire(topo)]

    # -- ETS (RFC 4190) -------------------------------------------------

    def ets_wire(self, cfg: ets.EtsConfig) -> list[WireEntity]:
        """One entry per (port, ETS TOS byte) and address family."""
        out = []
        for mark in ets.marks(cfg):
            for family in (4, 6):
                table = ets_table(family)
                match = [self.exact(table, "ingress_port", mark.port), self.exact(table, "tos", mark.tos)]
                if mark.new_tos is not None and family == 4:
                    action = self.action(f"{ETS}.reset_ipv4", tos=mark.new_tos,
                                         csum_delta=ets.csum_delta(mark.tos, mark.new_tos))
                elif mark.new_tos is not None:
                    action = self.action(f"{ETS}.reset_ipv6", traffic_class=mark.new_tos)
                elif mark.capped:
                    action = self.action(f"{ETS}.ets_capped_ipv{family}", priority=mark.priority)
                else:
                    action = self.action(f"{ETS}.ets_preemptive_ipv{family}", priority=mark.priority)
                out.append(self.table_entry_wire(table, match, action))
        return out

    def ets_entries(self, cfg: ets.EtsConfig) -> list[p4r.TableEntry]:
        return [w.entity.table_entry for w in self.ets_wire(cfg)]

    def ets_meters(self, cfg: ets.EtsConfig) -> list[p4r.Entity]:
        """The cap of every trusted port (both rates at the cap: anything over
        it is not green). Meters always exist: these are MODIFY updates."""
        meter_id = self.pipeline.meter_id(ETS_METER)
        config = p4r.MeterConfig(cir=cfg.rate_bytes, cburst=cfg.burst_bytes, pir=cfg.rate_bytes, pburst=cfg.burst_bytes)
        return [p4r.Entity(meter_entry=p4r.MeterEntry(meter_id=meter_id, index=p4r.Index(index=port), config=config))
                for port in sorted(cfg.trusted_ports)]

    def ets_class_counters(self, cfg: ets.EtsConfig, entries: Iterable[p4r.TableEntry],
                           demoted: Iterable[p4r.CounterEntry]) -> dict[str, tuple[int, int]]:
        """(packets, bytes) per class from the ETS tables' entries (read with
        their direct counters) and the per-port demotion counter."""
        totals = {k: [0, 0] for k in (ets.MEDIA, ets.SIGNALLING, ets.RESET, ets.DEMOTED)}
        tables = {self.pipeline.table_id(ets_table(f)): ets_table(f) for f in (4, 6)}
        for te in entries:
            if te.table_id not in tables:
                continue
            fields = {self.pipeline.match_field(tables[te.table_id], n).id: n for n in ("ingress_port", "tos")}
            key = {fields[m.field_id]: decode(m.exact.value) for m in te.match}
            klass = ets.class_of(cfg, key["ingress_port"], key["tos"])
            totals[klass][0] += te.counter_data.packet_count
            totals[klass][1] += te.counter_data.byte_count
        for c in demoted:
            totals[ets.DEMOTED][0] += c.data.packet_count
            totals[ets.DEMOTED][1] += c.data.byte_count
        return {k: (v[0], v[1]) for k, v in totals.items()}



def rank(pipeline: Pipeline) -> Callable[[WireEntity], int]:
    """Orders entity kinds from "pointed at" (0) to "points" (4), for
    make-before-break updates (see controller.reconcile)."""
    by_table: dict[int, int] = {pipeline.table_id(ENCAP_TABLE): 0, pipeline.table_id(MERGE_TABLE): 2}
    for family in (4, 6):
        for side in Side:
            by_table[pipeline.table_id(filter_table(family, side))] = 3
            by_table[pipeline.table_id(gate_table(family, side))] = 4
    by_kind = {"clone": 1, "mcast": 0}

    def of(entity: WireEntity) -> int:
        kind = entity.key[0]
        return by_table.get(entity.key[1], 3) if kind == "table" else by_kind[kind]

    return of


def inserts(entities: Iterable[p4r.Entity]) -> list[p4r.Update]:
    return [p4r.Update(type=p4r.Update.INSERT, entity=e) for e in entities]


def deletes(entities: Iterable[p4r.Entity]) -> list[p4r.Update]:
    return [p4r.Update(type=p4r.Update.DELETE, entity=e) for e in reversed(list(entities))]
