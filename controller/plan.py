"""From intercepts to the switch state that carries them out. Pure: no I/O.

The planner turns the active mediations and enabled streams into the
entries of p4tap's pipeline (see p4src/include/intercept.p4):

* every filter becomes a `Region` on one *side* (source or destination);
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

Ids are stable across plans (see `IdAllocator`), so that a change to one
intercept changes only that intercept's entries.
"""

from __future__ import annotations

import enum
import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from controller.model import Interface, InterceptError, IpFilter, IPAddress, Mediation, Stream, StreamKey
from controller.regions import ANY, ANY_PORT, Region, Span, Ternary
from controller.topology import IPNetwork, NextHop, SwitchTopology

PORT_BITS = 9
MAX_REPLICA_ID = 65535  # egress_rid is 16 bits; 0 is a normal packet
MAX_SESSION_ID = 32767  # bmv2 clone sessions 1..32767
MAX_REGIONS_PER_OVERLAP = 4096


class Side(enum.Enum):
    SRC = "src"
    DST = "dst"


@dataclass(frozen=True, order=True)
class Replica:
    """One copy of a clone session: out of `port`, tagged `rid` (egress_rid)."""

    port: int
    rid: int


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


class IdAllocator:
    """Stable small ids: a replica id per mediation, a session id per replica set.

    Kept by the controller across plans (and persisted with its intent), so
    re-planning after a change leaves untouched intercepts' entries as they are.
    """

    def __init__(
        self,
        replica_ids: Mapping[int, int] | None = None,
        session_ids: Mapping[frozenset[Replica], int] | None = None,
    ) -> None:
        self.replica_ids: dict[int, int] = dict(replica_ids or {})
        self.session_ids: dict[frozenset[Replica], int] = dict(session_ids or {})

    @staticmethod
    def _next_free(used: Iterable[int], limit: int, what: str) -> int:
        taken = set(used)
        for candidate in range(1, limit + 1):
            if candidate not in taken:
                return candidate
        raise InterceptError(f"out of {what} ids (at most {limit})")

    def replica(self, content_id: int) -> int:
        if content_id not in self.replica_ids:
            self.replica_ids[content_id] = self._next_free(self.replica_ids.values(), MAX_REPLICA_ID, "replica")
        return self.replica_ids[content_id]

    def session(self, replicas: frozenset[Replica]) -> int:
        if replicas not in self.session_ids:
            self.session_ids[replicas] = self._next_free(self.session_ids.values(), MAX_SESSION_ID, "clone session")
        return self.session_ids[replicas]

    def retain(self, content_ids: Iterable[int], sessions: Iterable[frozenset[Replica]]) -> None:
        """Forget ids no longer in use, so they can be given out again."""
        keep_c, keep_s = set(content_ids), set(sessions)
        self.replica_ids = {c: r for c, r in self.replica_ids.items() if c in keep_c}
        self.session_ids = {s: i for s, i in self.session_ids.items() if s in keep_s}


def side_of(f: IpFilter) -> Side:
    """The side whose gate a filter opens: its source prefix if it has one."""
    if f.src_length > 0 or f.dst_length == 0:
        return Side.SRC
    return Side.DST


def region_of(f: IpFilter, topology: SwitchTopology) -> Region:
    """The packets a citapStreamEntry matches, as one filter-table region."""
    if f.interface == Interface.VOIP:
        raise InterceptError("citapStreamInterface -2 (VoIP session) is not supported by this tap")
    if f.interface == Interface.ROUTED:
        raise InterceptError(
            "citapStreamInterface -1 (the interface routing picks) is not supported: use 0 (any) or an ifIndex"
        )
    bits = f.address_bits
    ports_narrowed = (f.src_port_min, f.src_port_max) != (0, 65535) or (f.dst_port_min, f.dst_port_max) != (0, 65535)
    src, dst = f.prefix("src"), f.prefix("dst")
    return Region(
        family=f.family,
        vrf=topology.vrf_id(f.vrf),
        ingress_port=ANY if f.interface == Interface.ANY else Ternary.exact(topology.ingress_port(f.interface), PORT_BITS),
        src_addr=Ternary.prefix(int(src.network_address), src.prefixlen, bits),
        dst_addr=Ternary.prefix(int(dst.network_address), dst.prefixlen, bits),
        protocol=ANY if f.protocol == -1 else Ternary.exact(f.protocol, 8),
        tos=Ternary(f.tos_byte, f.tos_mask),
        flow_label=ANY if f.flow_id == -1 else Ternary.exact(f.flow_id, 20),
        # A narrowed port range says nothing about packets without ports.
        l4_valid=Ternary.exact(1, 1) if ports_narrowed else ANY,
        src_port=Span(f.src_port_min, f.src_port_max) if ports_narrowed else ANY_PORT,
        dst_port=Span(f.dst_port_min, f.dst_port_max) if ports_narrowed else ANY_PORT,
    )


def _side_prefix(region: Region, side: Side) -> tuple[int, int]:
    """(value, length) of the region's address prefix on `side`."""
    t = region.src_addr if side == Side.SRC else region.dst_addr
    return t.value, bin(t.mask).count("1")


def _overlap_groups(bases: list[Region], side: Side) -> list[list[Region]]:
    """Partition a side's base regions into groups that overlap transitively.

    Two regions can only overlap when their side prefixes are nested, so for
    each region only its prefix's ancestors are looked up: O(n * address bits),
    not O(n^2), which keeps 10,000 taps cheap to plan.
    """
    parent = list(range(len(bases)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_prefix: dict[tuple[int, int, int, int], list[int]] = defaultdict(list)
    lengths: dict[tuple[int, int], set[int]] = defaultdict(set)
    for i, region in enumerate(bases):
        value, length = _side_prefix(region, side)
        by_prefix[(region.family, region.vrf, length, value)].append(i)
        lengths[(region.family, region.vrf)].add(length)
    for i, region in enumerate(bases):
        value, length = _side_prefix(region, side)
        bits = 32 if region.family == 4 else 128
        for shorter in sorted(lengths[(region.family, region.vrf)]):
            if shorter > length:
                break
            ancestor = Ternary.prefix(value, shorter, bits).value
            for j in by_prefix.get((region.family, region.vrf, shorter, ancestor), ()):
                if j != i and find(i) != find(j) and region.intersect(bases[j]) is not None:
                    parent[find(i)] = find(j)
    groups: dict[int, list[Region]] = defaultdict(list)
    for i, region in enumerate(bases):
        groups[find(i)].append(region)
    return list(groups.values())


def _closure(group: list[Region]) -> set[Region]:
    """All non-empty intersections of the group's regions."""
    result = set(group)
    frontier = list(result)
    while frontier:
        fresh = []
        for region in frontier:
            for base in group:
                both = region.intersect(base)
                if both is not None and both not in result:
                    result.add(both)
                    fresh.append(both)
        if len(result) > MAX_REGIONS_PER_OVERLAP:
            raise InterceptError(
                f"{len(group)} overlapping filters need more than {MAX_REGIONS_PER_OVERLAP} entries: "
                "narrow the filters"
            )
        frontier = fresh
    return result


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
    switch cannot carry out; nothing is partially planned.
    """
    live = {m.content_id: m for m in mediations if m.active and not m.expired(now)}

    # Base regions per side, each with the streams that asked for it.
    bases: dict[Side, dict[Region, set[StreamKey]]] = {Side.SRC: defaultdict(set), Side.DST: defaultdict(set)}
    for stream in streams:
        if not stream.enabled or stream.content_id not in live:
            continue
        try:
            region = region_of(stream.filter, topology)
        except InterceptError as error:
            raise InterceptError(f"stream {stream.key}: {error}") from None
        bases[side_of(stream.filter)][region].add(stream.key)

    next_hops: dict[int, NextHop] = {}
    for content_id in sorted({k.content_id for side in bases.values() for keys in side.values() for k in keys}):
        mediation = live[content_id]
        try:
            next_hops[content_id] = topology.route_to(mediation.dest_address, mediation.src_interface)
            topology.tap_source(mediation.dest_address.version)
        except InterceptError as error:
            raise InterceptError(f"mediation {content_id}: {error}") from None

    session_members: dict[int, frozenset[int]] = {}

    def session_for(content_ids: frozenset[int]) -> int:
        replicas = frozenset(Replica(next_hops[c].port, ids.replica(c)) for c in content_ids)
        session_id = ids.session(replicas)
        session_members[session_id] = content_ids
        return session_id

    gates: set[GateEntry] = set()
    filters: set[FilterEntry] = set()
    sessions_by_mediation: dict[Side, dict[int, set[int]]] = {Side.SRC: defaultdict(set), Side.DST: defaultdict(set)}
    for side, side_bases in bases.items():
        for region in side_bases:
            value, length = _side_prefix(region, side)
            network_type = ipaddress.IPv4Network if region.family == 4 else ipaddress.IPv6Network
            network = network_type((value, length))
            gates.add(GateEntry(region.family, side, network))
        for group in _overlap_groups(sorted(side_bases), side):
            for region in _closure(group):
                covering = [base for base in group if base.contains(region)]
                keys = frozenset().union(*(side_bases[base] for base in covering))
                members = frozenset(k.content_id for k in keys)
                session_id = session_for(members)
                filters.add(FilterEntry(side, region, len(covering), session_id, keys))
                for content_id in members:
                    sessions_by_mediation[side][content_id].add(session_id)

    merges: set[MergeEntry] = set()
    for content_id, src_sessions in sessions_by_mediation[Side.SRC].items():
        for src_session in src_sessions:
            for dst_session in sessions_by_mediation[Side.DST].get(content_id, ()):
                if src_session != dst_session:
                    union = session_members[src_session] | session_members[dst_session]
                    merges.add(MergeEntry(src_session, dst_session, session_for(union)))

    sessions = frozenset(
        CloneSession(sid, frozenset(Replica(next_hops[c].port, ids.replica(c)) for c in members))
        for sid, members in session_members.items()
    )
    encaps = frozenset(
        EncapEntry(
            rid=ids.replica(content_id),
            content_id=content_id,
            next_hop=next_hop,
            src_address=topology.tap_source(live[content_id].dest_address.version),
            dst_address=live[content_id].dest_address,
            src_port=topology.tap_source_port,
            dst_port=live[content_id].dest_port,
            dscp=live[content_id].dscp,
        )
        for content_id, next_hop in next_hops.items()
    )
    ids.retain(next_hops, (s.replicas for s in sessions))
    return InterceptPlan(frozenset(gates), frozenset(filters), frozenset(merges), sessions, encaps)
