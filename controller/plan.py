"""From intercepts to the switch state that carries them out. Pure: no I/O.

The planner turns the active mediations and enabled streams into the
entries of p4tap's pipeline (see p4src/include/intercept.p4):

* every filter becomes one or more `Region`s on one *side* (source or
  destination): an interface filter one for what arrives on the interface,
  one for what is sent out of it, and one for what is flooded out of it;
* overlapping regions of a side are closed under intersection, each
  intersection installed above its parts and naming the clone session of the
  union of their mediations, so a packet's best match on a side is exactly
  the set of mediations whose filters of that side match it;
* a gate prefix per filter lets the data plane skip a side's filter table
  for traffic nobody taps;
* a merge entry per (source set, destination set) pair sharing a mediation
  names the session of their union, so that mediation gets one copy;
* a clone session per distinct set of mediation devices, one replica per
  mediation, and one encapsulation entry per replica.

Ids are stable across plans (see `IdAllocator`, controller/plan_ids.py,
whose names are still importable from here), so that a change to one
intercept changes only that intercept's entries.
"""

from __future__ import annotations

import enum
import ipaddress
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from controller.model import Interface, InterceptError, IpFilter, IPAddress, Mediation, Stream, StreamKey
from controller.overlap import closure, overlap_groups, side_prefix
from controller.plan_ids import MAX_REPLICA_ID, MAX_SESSION_ID, IdAllocator, IdChanges, Replica
from controller.regions import ANY, ANY_PORT, Region, Span, Ternary
from controller.topology import IPNetwork, NextHop, SwitchTopology

__all__ = ["MCAST_GRP_BITS", "PORT_BITS", "CloneSession", "EncapEntry", "FilterEntry", "GateEntry", "InterceptPlan",
           "MergeEntry", "PlanItem", "SessionFor", "Side", "address_field", "encap_of", "gate_of", "group_filters",
           "mediation_merges", "plan_intercepts", "regions_of", "route_of", "session_for", "side_of", "stream_regions",
           # the ids and their limits: controller.plan_ids
           "MAX_REPLICA_ID", "MAX_SESSION_ID", "IdAllocator", "IdChanges", "Replica"]

PORT_BITS = 9
MCAST_GRP_BITS = 16


class Side(enum.Enum):
    SRC = "src"
    DST = "dst"


@dataclass(frozen=True, order=True)
class GateEntry:
    """Opens one side's filters to addresses in `prefix`, in every VRF: the
    gate runs before the VRF lookup, so untapped traffic never pays for it."""
    family: int
    side: Side
    prefix: IPNetwork


@dataclass(frozen=True)
class FilterEntry:
    side: Side
    region: Region
    priority: int
    session_id: int
    # Which streams' packets this entry counts: for counter attribution only.
    streams: frozenset[StreamKey] = field(default=frozenset(), compare=False, hash=False)


@dataclass(frozen=True, order=True)
class MergeEntry:
    src_session: int
    dst_session: int
    session_id: int


@dataclass(frozen=True)
class CloneSession:
    session_id: int
    replicas: frozenset[Replica]


@dataclass(frozen=True)
class EncapEntry:
    rid: int
    content_id: int
    next_hop: NextHop
    src_address: IPAddress
    dst_address: IPAddress
    src_port: int
    dst_port: int
    dscp: int
    # The mediation's Timeout: the data plane stops its copies by then
    # (with the switch's lease, entries.EntryBuilder turns it into switch ticks).
    timeout: datetime | None = None


@dataclass(frozen=True)
class InterceptPlan:
    gates: frozenset[GateEntry] = frozenset()
    filters: frozenset[FilterEntry] = frozenset()
    merges: frozenset[MergeEntry] = frozenset()
    sessions: frozenset[CloneSession] = frozenset()
    encaps: frozenset[EncapEntry] = frozenset()

    def summary(self) -> str:
        return (
            f"{len(self.gates)} gates, {len(self.filters)} filters, {len(self.merges)} merges, "
            f"{len(self.sessions)} clone sessions, {len(self.encaps)} encapsulations"
        )


PlanItem = GateEntry | FilterEntry | MergeEntry | CloneSession | EncapEntry


def side_of(f: IpFilter) -> Side:
    """The side whose gate a filter opens: its source prefix if it has one."""
    if f.src_length > 0 or f.dst_length == 0:
        return Side.SRC
    return Side.DST


def regions_of(f: IpFilter, topology: SwitchTopology) -> tuple[Region, ...]:
    """The packets a citapStreamEntry matches, as filter-table regions.

    citapStreamInterface is "the interface over which traffic to be
    intercepted is received or transmitted" (CISCO-IP-TAP-MIB), so a filter
    on port N is three regions: received on N; sent out of N alone
    (egress_spec N, no flood group); flooded, when N is in the flood group
    (a flooded packet leaves by every port of the group but its own ingress
    port, and one from N is received on N anyway). A packet in two of them
    (in on N and out on N) lies in their intersection, which the planner
    installs above both with the same mediations: still one copy per MD.
    """
    if f.interface == Interface.VOIP:
        raise InterceptError("citapStreamInterface -2 (VoIP session) is not supported by this tap")
    if f.interface == Interface.ROUTED:
        raise InterceptError(
            "citapStreamInterface -1 (the interface routing picks) is not supported: use 0 (any) or an ifIndex"
        )
    bits = f.address_bits
    ports_narrowed = (f.src_port_min, f.src_port_max) != (0, 65535) or (f.dst_port_min, f.dst_port_max) != (0, 65535)
    region = Region(
        family=f.family,
        vrf=topology.vrf_id(f.vrf),
        # Host bits beyond the prefix length are ignored, as IpFilter.prefix does.
        src_addr=Ternary.prefix(int(f.src_address or 0), f.src_length, bits),
        dst_addr=Ternary.prefix(int(f.dst_address or 0), f.dst_length, bits),
        protocol=ANY if f.protocol == -1 else Ternary.exact(f.protocol, 8),
        tos=Ternary(f.tos_byte, f.tos_mask),
        flow_label=ANY if f.flow_id == -1 else Ternary.exact(f.flow_id, 20),
        # A narrowed port range says nothing about packets without ports.
        l4_valid=Ternary.exact(1, 1) if ports_narrowed else ANY,
        src_port=Span(f.src_port_min, f.src_port_max) if ports_narrowed else ANY_PORT,
        dst_port=Span(f.dst_port_min, f.dst_port_max) if ports_narrowed else ANY_PORT,
    )
    if f.interface == Interface.ANY:
        return (region,)
    port = Ternary.exact(topology.ingress_port(f.interface), PORT_BITS)
    received = replace(region, ingress_port=port)
    sent = replace(region, egress_port=port, mcast_grp=Ternary.exact(0, MCAST_GRP_BITS))
    flood = topology.flood
    if flood is None or port.value not in flood.ports:
        return received, sent
    return received, sent, replace(region, mcast_grp=Ternary.exact(flood.group_id, MCAST_GRP_BITS))


def stream_regions(stream: Stream, topology: SwitchTopology) -> tuple[Side, tuple[Region, ...]]:
    """The side and regions a stream's filter is installed as, or an error naming the stream."""
    try:
        return side_of(stream.filter), regions_of(stream.filter, topology)
    except InterceptError as error:
        raise InterceptError(f"stream {stream.key}: {error}") from None


def route_of(mediation: Mediation, topology: SwitchTopology) -> NextHop:
    """Where the copies for a mediation leave the switch, or an error naming the mediation."""
    try:
        next_hop = topology.route_to(mediation.dest_address, mediation.src_interface)
        topology.tap_source(mediation.dest_address.version)
    except InterceptError as error:
        raise InterceptError(f"mediation {mediation.content_id}: {error}") from None
    return next_hop


def gate_of(side: Side, region: Region) -> GateEntry:
    value, length = side_prefix(region, address_field(side))
    network_type = ipaddress.IPv4Network if region.family == 4 else ipaddress.IPv6Network
    return GateEntry(region.family, side, network_type((value, length)))


def encap_of(mediation: Mediation, next_hop: NextHop, rid: int, topology: SwitchTopology) -> EncapEntry:
    return EncapEntry(
        rid=rid,
        content_id=mediation.content_id,
        next_hop=next_hop,
        src_address=topology.tap_source(mediation.dest_address.version),
        dst_address=mediation.dest_address,
        src_port=topology.tap_source_port,
        dst_port=mediation.dest_port,
        dscp=mediation.dscp,
        timeout=mediation.timeout,
    )


def address_field(side: Side) -> str:
    return "src_addr" if side == Side.SRC else "dst_addr"


SessionFor = Callable[[frozenset[int]], int]


def session_for(ids: IdAllocator, next_hops: Mapping[int, NextHop]) -> SessionFor:
    """The clone session id of a set of mediations: one replica each."""
    def session(content_ids: frozenset[int]) -> int:
        return ids.session(frozenset(Replica(next_hops[c].port, ids.replica(c)) for c in content_ids))
    return session


def group_filters(side: Side, group: list[Region], bases: Mapping[Region, frozenset[StreamKey]],
                  session: SessionFor) -> list[FilterEntry]:
    """One overlap group's filter entries: every intersection of its regions,
    above its parts, naming the session of every mediation whose filter covers it."""
    entries = []
    for region in closure(group):
        covering = [base for base in group if base.contains(region)]
        keys = frozenset().union(*(bases[base] for base in covering))
        entries.append(FilterEntry(side, region, len(covering), session(frozenset(k.content_id for k in keys)), keys))
    return entries


def mediation_merges(src_sessions: Iterable[int], dst_sessions: Iterable[int], ids: IdAllocator,
                     session: SessionFor) -> set[MergeEntry]:
    """Merge entries for one mediation: a packet matching one of its source-side
    sessions and one of its destination-side sessions gets the union's session."""
    dst = list(dst_sessions)
    return {MergeEntry(s, d, session(ids.members(s) | ids.members(d))) for s in src_sessions for d in dst if s != d}


def plan_intercepts(
    mediations: Iterable[Mediation],
    streams: Iterable[Stream],
    topology: SwitchTopology,
    ids: IdAllocator,
    now: datetime,
) -> InterceptPlan:
    """The complete intercept state one switch should hold at `now`.

    Only active, unexpired mediations and enabled streams of them count.
    Raises InterceptError, naming the stream or mediation, for anything the
    switch cannot carry out; nothing is partially planned. (The controller
    plans incrementally, controller.incremental, from the same pieces; this
    from-scratch composition is their reference.)
    """
    live = {m.content_id: m for m in mediations if m.active and not m.expired(now)}

    # Base regions per side, each with the streams that asked for it.
    bases: dict[Side, dict[Region, set[StreamKey]]] = {Side.SRC: defaultdict(set), Side.DST: defaultdict(set)}
    for stream in streams:
        if stream.enabled and stream.content_id in live:
            side, regions = stream_regions(stream, topology)
            for region in regions:
                bases[side][region].add(stream.key)

    content_ids = sorted({k.content_id for side in bases.values() for keys in side.values() for k in keys})
    next_hops = {content_id: route_of(live[content_id], topology) for content_id in content_ids}
    session = session_for(ids, next_hops)

    gates = {gate_of(side, region) for side, side_bases in bases.items() for region in side_bases}
    filters: list[FilterEntry] = []
    for side, side_bases in bases.items():
        frozen = {region: frozenset(keys) for region, keys in side_bases.items()}
        for group in overlap_groups(sorted(side_bases), address_field(side)):
            filters += group_filters(side, group, frozen, session)

    sessions_by_mediation: dict[Side, dict[int, set[int]]] = {Side.SRC: defaultdict(set), Side.DST: defaultdict(set)}
    for f in filters:
        for content_id in {k.content_id for k in f.streams}:
            sessions_by_mediation[f.side][content_id].add(f.session_id)
    merges: set[MergeEntry] = set()
    for content_id, src_sessions in sessions_by_mediation[Side.SRC].items():
        merges |= mediation_merges(src_sessions, sessions_by_mediation[Side.DST].get(content_id, ()), ids, session)

    used = {f.session_id for f in filters} | {m.session_id for m in merges}
    sessions = frozenset(CloneSession(sid, ids.replicas_of[sid]) for sid in used)
    encaps = frozenset(encap_of(live[c], hop, ids.replica(c), topology) for c, hop in next_hops.items())
    ids.retain(next_hops, (s.replicas for s in sessions))
    return InterceptPlan(frozenset(gates), frozenset(filters), frozenset(merges), sessions, encaps)
