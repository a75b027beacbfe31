"""Plan objects as P4Runtime entities of the p4tap pipeline.

The one place that knows the pipeline's table, field and action names (they
follow p4src/: control instance path, then table). Everything above speaks in
plan objects; everything below in protobuf.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from p4.v1 import p4runtime_pb2 as p4r

from controller import ets
from controller.pipeline import Pipeline, decode, encode, mac_to_int
from controller.plan import CloneSession, EncapEntry, FilterEntry, GateEntry, InterceptPlan, MergeEntry, Side
from controller.regions import Span, Ternary
from controller.topology import SwitchTopology

INGRESS = "P4tapIngress"
EGRESS = "P4tapEgress"
CLASSIFIER = f"{INGRESS}.intercept_classifier"
GATES = f"{INGRESS}.intercept_gates"

# Field name and width, in the order the filter tables declare them.
FILTER_TERNARY_FIELDS = ("ingress_port", "src_addr", "dst_addr", "protocol", "tos", "flow_label", "l4_valid")
FILTER_RANGE_FIELDS = ("src_port", "dst_port")


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


def ets_table(family: int) -> str:
    return f"{ETS}.ipv{family}_marks"


class EntryBuilder:
    """Builds TableEntry, CloneSessionEntry and MulticastGroupEntry messages."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    # -- generic pieces -------------------------------------------------

    def _bits(self, table: str, field: str) -> int:
        return self.pipeline.match_field(table, field).bitwidth

    def exact(self, table: str, field: str, value: int) -> p4r.FieldMatch:
        mf = self.pipeline.match_field(table, field)
        return p4r.FieldMatch(field_id=mf.id, exact=p4r.FieldMatch.Exact(value=encode(value, mf.bitwidth)))

    def lpm(self, table: str, field: str, value: int, prefix_len: int) -> p4r.FieldMatch | None:
        if prefix_len == 0:
            return None  # P4Runtime: a don't-care field is omitted
        mf = self.pipeline.match_field(table, field)
        return p4r.FieldMatch(
            field_id=mf.id, lpm=p4r.FieldMatch.LPM(value=encode(value, mf.bitwidth), prefix_len=prefix_len)
        )

    def ternary(self, table: str, field: str, t: Ternary) -> p4r.FieldMatch | None:
        if t.wildcard:
            return None
        mf = self.pipeline.match_field(table, field)
        return p4r.FieldMatch(
            field_id=mf.id,
            ternary=p4r.FieldMatch.Ternary(value=encode(t.value, mf.bitwidth), mask=encode(t.mask, mf.bitwidth)),
        )

    def range(self, table: str, field: str, span: Span) -> p4r.FieldMatch | None:
        mf = self.pipeline.match_field(table, field)
        if (span.lo, span.hi) == (0, (1 << mf.bitwidth) - 1):
            return None
        return p4r.FieldMatch(
            field_id=mf.id,
            range=p4r.FieldMatch.Range(low=encode(span.lo, mf.bitwidth), high=encode(span.hi, mf.bitwidth)),
        )

    def action(self, name: str, **params: int) -> p4r.TableAction:
        action = p4r.Action(action_id=self.pipeline.action_id(name))
        for param_name, value in params.items():
            p = self.pipeline.param(name, param_name)
            action.params.add(param_id=p.id, value=encode(value, p.bitwidth))
        return p4r.TableAction(action=action)

    def table_entry(
        self, table: str, match: Iterable[p4r.FieldMatch | None], action: p4r.TableAction, priority: int = 0
    ) -> p4r.TableEntry:
        return p4r.TableEntry(
            table_id=self.pipeline.table_id(table),
            match=[m for m in match if m is not None],
            action=action,
            priority=priority,
        )

    # -- intercept plan -------------------------------------------------

    def gate(self, g: GateEntry) -> p4r.TableEntry:
        table = gate_table(g.family, g.side)
        return self.table_entry(
            table,
            [self.lpm(table, "addr", int(g.prefix.network_address), g.prefix.prefixlen)],
            self.action(f"{gate_control(g.family, g.side)}.open_gate"),
        )

    def filter(self, f: FilterEntry) -> p4r.TableEntry:
        r = f.region
        table = filter_table(r.family, f.side)
        fields = FILTER_TERNARY_FIELDS if r.family == 6 else tuple(x for x in FILTER_TERNARY_FIELDS if x != "flow_label")
        match = [self.exact(table, "vrf", r.vrf)]
        match += [self.ternary(table, name, getattr(r, name)) for name in fields]
        match += [self.range(table, name, getattr(r, name)) for name in FILTER_RANGE_FIELDS]
        return self.table_entry(
            table, match, self.action(f"{side_control(r.family, f.side)}.match_session", id=f.session_id), f.priority
        )

    def merge(self, m: MergeEntry) -> p4r.TableEntry:
        return self.table_entry(
            MERGE_TABLE,
            [self.exact(MERGE_TABLE, "src_session", m.src_session), self.exact(MERGE_TABLE, "dst_session", m.dst_session)],
            self.action(INTERCEPT_ACTION, session=m.session_id),
        )

    def encap(self, e: EncapEntry) -> p4r.TableEntry:
        version = e.dst_address.version
        return self.table_entry(
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
            ),
        )

    @staticmethod
    def clone_session(s: CloneSession) -> p4r.PacketReplicationEngineEntry:
        # bmv2 requires class_of_service 0 and packet_length_bytes 0.
        entry = p4r.CloneSessionEntry(session_id=s.session_id)
        for replica in sorted(s.replicas):
            entry.replicas.add(egress_port=replica.port, instance=replica.rid)
        return p4r.PacketReplicationEngineEntry(clone_session_entry=entry)

    def intercept_entities(self, plan: InterceptPlan) -> list[p4r.Entity]:
        """All entities of a plan, in a safe insertion order: what a rule
        points at (encapsulation, sessions) exists before the rule does."""
        entities = [p4r.Entity(table_entry=self.encap(e)) for e in sorted(plan.encaps, key=lambda e: e.rid)]
        entities += [
            p4r.Entity(packet_replication_engine_entry=self.clone_session(s))
            for s in sorted(plan.sessions, key=lambda s: s.session_id)
        ]
        entities += [p4r.Entity(table_entry=self.merge(m)) for m in sorted(plan.merges)]
        entities += [
            p4r.Entity(table_entry=self.filter(f))
            for f in sorted(plan.filters, key=lambda f: (f.side.value, f.region, f.priority))
        ]
        entities += [p4r.Entity(table_entry=self.gate(g)) for g in sorted(plan.gates, key=lambda g: (g.family, g.side.value, int(g.prefix.network_address), g.prefix.prefixlen))]
        return entities

    # -- forwarding -----------------------------------------------------

    def forwarding_entities(self, topo: SwitchTopology) -> list[p4r.Entity]:
        """Ports' VRFs, router MACs, L2 entries, flooding and routes."""
        out: list[p4r.Entity] = []
        port_vrf = f"{VRF}.port_vrf"
        for port, vrf in sorted(topo.port_vrfs.items()):
            out.append(p4r.Entity(table_entry=self.table_entry(
                port_vrf, [self.exact(port_vrf, "ingress_port", port)], self.action(f"{VRF}.set_vrf", vrf=vrf))))
        port_vlan_vrf = f"{VRF}.port_vlan_vrf"
        for (port, vid), vrf in sorted(topo.vlan_vrfs.items()):
            out.append(p4r.Entity(table_entry=self.table_entry(
                port_vlan_vrf, [self.exact(port_vlan_vrf, "ingress_port", port), self.exact(port_vlan_vrf, "vid", vid)],
                self.action(f"{VRF}.set_vrf", vrf=vrf))))
        l2 = f"{BRIDGING}.l2_table"
        for mac in topo.router_macs:
            out.append(p4r.Entity(table_entry=self.table_entry(
                l2, [self.exact(l2, "dst_addr", mac_to_int(mac))], self.action(f"{BRIDGING}.to_router"))))
        for entry in topo.l2:
            out.append(p4r.Entity(table_entry=self.table_entry(
                l2, [self.exact(l2, "dst_addr", mac_to_int(entry.mac))],
                self.action(f"{BRIDGING}.l2_forward", port=entry.port))))
        if topo.flood is not None:
            group = p4r.MulticastGroupEntry(multicast_group_id=topo.flood.group_id)
            for port in topo.flood.ports:
                group.replicas.add(egress_port=port, instance=0)
            out.append(p4r.Entity(packet_replication_engine_entry=p4r.PacketReplicationEngineEntry(
                multicast_group_entry=group)))
            out.append(p4r.Entity(table_entry=self.table_entry(
                l2, [self.exact(l2, "dst_addr", 0xFFFFFFFFFFFF)],
                self.action(f"{BRIDGING}.l2_flood", group=topo.flood.group_id))))
        for route in topo.routes:
            version = route.prefix.version
            table = f"{ROUTING}.ipv{version}_routes"
            out.append(p4r.Entity(table_entry=self.table_entry(
                table,
                [self.exact(table, "vrf", route.vrf),
                 self.lpm(table, "dst_addr", int(route.prefix.network_address), route.prefix.prefixlen)],
                self.action(f"{ROUTING}.route_v{version}", port=route.next_hop.port,
                            src_mac=mac_to_int(route.next_hop.src_mac), dst_mac=mac_to_int(route.next_hop.dst_mac)))))
        if topo.ets is not None:
            out += [p4r.Entity(table_entry=e) for e in self.ets_entries(topo.ets)]
        return out

    # -- ETS (RFC 4190) -------------------------------------------------

    def ets_entries(self, cfg: ets.EtsConfig) -> list[p4r.TableEntry]:
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
                    action = self.action(f"{ETS}.ets_capped", priority=mark.priority)
                else:
                    action = self.action(f"{ETS}.ets_preemptive", priority=mark.priority)
                out.append(self.table_entry(table, match, action))
        return out

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


def rank(pipeline: Pipeline) -> "Callable[[p4r.Entity], int]":
    """Orders entity kinds from "pointed at" (0) to "points" (4), for
    make-before-break updates (see controller.reconcile)."""
    by_table: dict[int, int] = {pipeline.table_id(ENCAP_TABLE): 0, pipeline.table_id(MERGE_TABLE): 2}
    for family in (4, 6):
        for side in Side:
            by_table[pipeline.table_id(filter_table(family, side))] = 3
            by_table[pipeline.table_id(gate_table(family, side))] = 4

    def of(entity: p4r.Entity) -> int:
        if entity.HasField("packet_replication_engine_entry"):
            return 1 if entity.packet_replication_engine_entry.HasField("clone_session_entry") else 0
        return by_table.get(entity.table_entry.table_id, 3)

    return of


def inserts(entities: Iterable[p4r.Entity]) -> list[p4r.Update]:
    return [p4r.Update(type=p4r.Update.INSERT, entity=e) for e in entities]


def deletes(entities: Iterable[p4r.Entity]) -> list[p4r.Update]:
    return [p4r.Update(type=p4r.Update.DELETE, entity=e) for e in reversed(list(entities))]
