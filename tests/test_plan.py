"""Unit tests of the planner: intercepts in, pipeline state out (no switch).

The randomized test replays the pipeline's lookup rules (per side: gate, then
highest-priority filter; then merge, else one clone per side) in Python and
checks completeness, minimality and once-per-MD delivery against the filters
themselves, for many random tap sets and packets.
"""

from __future__ import annotations

import ipaddress
import random
from datetime import datetime, timedelta, timezone

import pytest

from controller.model import InetAddressType, InterceptError, IpFilter, Mediation, Stream, Transport
from controller.plan import IdAllocator, Side, plan_intercepts, regions_of, side_of
from controller.regions import Region, Ternary
from controller.topology import FloodGroup, NextHop, Route, SwitchTopology

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
LATER = NOW + timedelta(hours=1)
MD_V4 = ipaddress.ip_address("203.0.113.10")
FLOOD = 1  # the flood group's multicast group
DROP = 511  # egress_spec of a dropped packet


def topology() -> SwitchTopology:
    return SwitchTopology(
        ports={1: 1, 2: 2, 3: 3, 4: 4},
        vrfs={"": 0, "red": 7},
        flood=FloodGroup(FLOOD, (1, 2, 3)),
        routes=(
            Route(0, ipaddress.ip_network("203.0.113.0/24"), NextHop(4, "02:00:00:00:00:04", "02:00:00:00:01:04")),
            Route(0, ipaddress.ip_network("2001:db8:ff::/48"), NextHop(4, "02:00:00:00:00:04", "02:00:00:00:01:04")),
        ),
        tap_sources={4: ipaddress.ip_address("203.0.113.1"), 6: ipaddress.ip_address("2001:db8:ff::1")},
        tap_source_port=4999,
    )


def mediation(content_id: int, port: int = 7000, **kw) -> Mediation:
    return Mediation(content_id, MD_V4 + content_id, port, timeout=LATER, **kw)


def v4(src: str | None = None, dst: str | None = None, **kw) -> IpFilter:
    def split(p):
        if p is None:
            return None, 0
        net = ipaddress.ip_network(p, strict=False)
        return net.network_address, net.prefixlen

    (sa, sl), (da, dl) = split(src), split(dst)
    return IpFilter(InetAddressType.IPV4, dst_address=da, dst_length=dl, src_address=sa, src_length=sl, **kw)


def plan(mediations, streams):
    return plan_intercepts(mediations, streams, topology(), IdAllocator(), NOW)


def delivered(p, packet: dict[str, int]) -> list[int]:
    """Content ids receiving a copy of `packet`, as the pipeline decides it."""
    sessions = {s.session_id: s for s in p.sessions}
    rid_to_cid = {e.rid: e.content_id for e in p.encaps}

    def side_session(side: Side) -> int:
        addr = packet["src_addr" if side == Side.SRC else "dst_addr"]
        bits = 32 if packet["family"] == 4 else 128
        gate_open = any(
            g.side == side and g.family == packet["family"]
            and Ternary.prefix(int(g.prefix.network_address), g.prefix.prefixlen, bits).matches(addr)
            for g in p.gates
        )
        if not gate_open:
            return 0
        hits = [f for f in p.filters if f.side == side and f.region.matches(packet)]
        if not hits:
            return 0
        best = max(f.priority for f in hits)
        top = [f for f in hits if f.priority == best]
        assert len(top) == 1, "two entries of equal priority match: the pipeline's choice would be arbitrary"
        return top[0].session_id

    src, dst = side_session(Side.SRC), side_session(Side.DST)
    clones = []
    if src and dst and src != dst:
        merge = [m for m in p.merges if (m.src_session, m.dst_session) == (src, dst)]
        clones = [merge[0].session_id] if merge else [src, dst]
    elif src or dst:
        clones = [src or dst]
    return sorted(rid_to_cid[r.rid] for c in clones for r in sessions[c].replicas)


def packet(src: str, dst: str, proto: int = 6, sport: int = 1234, dport: int = 80, tos: int = 0, port: int = 1,
           out: int = DROP, mcast_grp: int = 0):
    """A packet's filter key: arrived on `port`, sent out of `out` (or flooded to `mcast_grp`)."""
    return {
        "family": 4, "vrf": 0, "ingress_port": port, "egress_port": 0 if mcast_grp else out, "mcast_grp": mcast_grp,
        "src_addr": int(ipaddress.ip_address(src)), "dst_addr": int(ipaddress.ip_address(dst)),
        "protocol": proto, "tos": tos, "flow_label": 0, "l4_valid": 1 if proto in (6, 17) else 0,
        "src_port": sport if proto in (6, 17) else 0, "dst_port": dport if proto in (6, 17) else 0,
    }


def test_single_subject_both_directions():
    p = plan([mediation(1)], [Stream(1, 1, v4(src="192.0.2.10/32"), True), Stream(1, 2, v4(dst="192.0.2.10/32"), True)])
    assert delivered(p, packet("192.0.2.10", "198.51.100.1")) == [1]
    assert delivered(p, packet("198.51.100.1", "192.0.2.10")) == [1]
    assert delivered(p, packet("192.0.2.10", "192.0.2.10")) == [1]  # both sides, one copy
    assert delivered(p, packet("198.51.100.1", "198.51.100.2")) == []
    assert {g.side for g in p.gates} == {Side.SRC, Side.DST}


def test_two_agencies_one_subject_get_one_copy_each_with_own_cccid():
    streams = [Stream(c, 1, v4(src="192.0.2.10/32"), True) for c in (1, 2)]
    p = plan([mediation(1), mediation(2, port=7001)], streams)
    assert delivered(p, packet("192.0.2.10", "198.51.100.1")) == [1, 2]
    (session,) = p.sessions
    assert len(session.replicas) == 2
    assert {e.content_id: e.dst_port for e in p.encaps} == {1: 7000, 2: 7001}


def test_subject_to_subject_reaches_both_agencies_without_pairwise_entries():
    n = 50
    meds = [mediation(i) for i in range(1, n + 1)]
    streams = []
    for i in range(1, n + 1):
        streams += [Stream(i, 1, v4(src=f"192.0.2.{i}/32"), True), Stream(i, 2, v4(dst=f"192.0.2.{i}/32"), True)]
    p = plan(meds, streams)
    assert len(p.filters) == 2 * n  # linear, not n^2
    assert delivered(p, packet("192.0.2.3", "192.0.2.7")) == [3, 7]
    assert delivered(p, packet("192.0.2.3", "192.0.2.3")) == [3]


def test_overlapping_filters_of_one_agency_deliver_once():
    p = plan([mediation(1)], [
        Stream(1, 1, v4(src="192.0.2.0/24"), True),
        Stream(1, 2, v4(src="192.0.2.10/32", protocol=17), True),
    ])
    assert delivered(p, packet("192.0.2.10", "198.51.100.1", proto=17)) == [1]
    assert delivered(p, packet("192.0.2.99", "198.51.100.1", proto=6)) == [1]


def test_narrow_tap_does_not_hide_a_wide_one():
    p = plan([mediation(1), mediation(2)], [
        Stream(1, 1, v4(src="192.0.2.0/24"), True),
        Stream(2, 1, v4(src="192.0.2.10/32", protocol=17, dst_port_min=5060, dst_port_max=5060), True),
    ])
    assert delivered(p, packet("192.0.2.10", "198.51.100.1", proto=17, dport=5060)) == [1, 2]
    assert delivered(p, packet("192.0.2.10", "198.51.100.1", proto=17, dport=5061)) == [1]
    assert delivered(p, packet("192.0.2.11", "198.51.100.1", proto=17, dport=5060)) == [1]


def test_disabled_streams_and_inactive_or_expired_mediations_install_nothing():
    streams = [Stream(1, 1, v4(src="192.0.2.10/32"), False), Stream(2, 1, v4(src="192.0.2.11/32"), True),
               Stream(3, 1, v4(src="192.0.2.12/32"), True)]
    expired = Mediation(3, MD_V4, 7000, timeout=NOW - timedelta(seconds=1))
    p = plan([mediation(1), mediation(2, active=False), expired], streams)
    assert not p.filters and not p.gates and not p.sessions and not p.encaps


def test_mediation_without_lifetime_has_no_end_and_a_lifetime_ends_exactly():
    m = Mediation(1, MD_V4, 7000, timeout=NOW)
    assert m.expired(NOW) and not m.expired(NOW - timedelta(microseconds=1))


@pytest.mark.parametrize("kwargs, message", [
    (dict(tos_byte=0x10, tos_mask=0x0F), "outside citapStreamTosByteMask"),
    (dict(dst_port_min=10, dst_port_max=9), "exceeds"),
    (dict(src_address=ipaddress.ip_address("2001:db8::1"), src_length=128), "128 is outside 0..32"),
    (dict(src_address=ipaddress.ip_address("2001:db8::1"), src_length=32), "not an IPv4 address"),
    (dict(flow_id=5), "flow label"),
    (dict(protocol=256), "outside -1..255"),
    (dict(addr_type=InetAddressType.DNS), r"only ipv4\(1\) or ipv6\(2\)"),
    (dict(src_length=8), "without an address"),
])
def test_impossible_filters_are_refused_with_the_reason(kwargs, message):
    with pytest.raises(InterceptError, match=message):
        IpFilter(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(transport=Transport.TCP), "only udp"),
    (dict(dscp=64), "cTap2MediationDscp"),
    (dict(content_id=0), "ContentId"),
])
def test_impossible_mediations_are_refused(kwargs, message):
    args = dict(content_id=1, dest_address=MD_V4, dest_port=7000) | kwargs
    with pytest.raises(InterceptError, match=message):
        Mediation(**args)


def test_unknown_port_vrf_or_unroutable_md_refused_naming_the_row():
    with pytest.raises(InterceptError, match=r"stream 1\.1: no switch port has ifIndex 9"):
        plan([mediation(1)], [Stream(1, 1, v4(src="192.0.2.1/32", interface=9), True)])
    with pytest.raises(InterceptError, match="unknown VRF 'blue'"):
        plan([mediation(1)], [Stream(1, 1, v4(src="192.0.2.1/32", vrf="blue"), True)])
    far = Mediation(1, ipaddress.ip_address("198.51.100.9"), 7000, timeout=LATER)
    with pytest.raises(InterceptError, match="mediation 1: no route to mediation device 198.51.100.9"):
        plan([far], [Stream(1, 1, v4(src="192.0.2.1/32"), True)])


def test_wildcards_follow_the_mib():
    topo = topology()
    (everything,) = regions_of(v4(), topo)
    assert everything == Region(4, 0)
    assert side_of(v4()) == Side.SRC and side_of(v4(dst="192.0.2.0/24")) == Side.DST
    (proto0,) = regions_of(v4(protocol=0), topo)
    assert proto0.protocol == Ternary(0, 0xFF)  # 0 is a protocol, not a wildcard
    (ports,) = regions_of(v4(dst_port_min=1, dst_port_max=1023), topo)
    assert ports.l4_valid == Ternary(1, 1) and everything.l4_valid == Ternary(0, 0)
    (red,) = regions_of(v4(vrf="red"), topo)
    assert red.vrf == 7


def test_an_interface_is_what_it_receives_and_what_it_transmits():
    """citapStreamInterface: received on it, sent out of it, or flooded out of it."""
    topo = topology()
    received, sent, flooded = regions_of(v4(interface=2), topo)
    assert received.ingress_port == Ternary(2, 0x1FF) and received.egress_port == received.mcast_grp == Ternary(0, 0)
    assert sent.egress_port == Ternary(2, 0x1FF) and sent.mcast_grp == Ternary(0, 0xFFFF)
    assert flooded.mcast_grp == Ternary(FLOOD, 0xFFFF) and flooded.egress_port == Ternary(0, 0)
    assert len(regions_of(v4(interface=4), topo)) == 2  # port 4 is not in the flood group

    p = plan([mediation(1), mediation(2)], [Stream(1, 1, v4(interface=2), True),
                                            Stream(2, 1, v4(src="192.0.2.10/32"), True)])
    assert delivered(p, packet("198.51.100.1", "192.0.2.1", port=2, out=1)) == [1]  # received
    assert delivered(p, packet("198.51.100.1", "192.0.2.1", port=1, out=2)) == [1]  # transmitted
    assert delivered(p, packet("198.51.100.1", "192.0.2.1", port=2, out=2)) == [1]  # both: one copy
    assert delivered(p, packet("198.51.100.1", "192.0.2.1", port=1, mcast_grp=FLOOD)) == [1]  # flooded out of 2
    assert delivered(p, packet("198.51.100.1", "192.0.2.1", port=1, out=3)) == []
    assert delivered(p, packet("198.51.100.1", "192.0.2.1", port=1)) == []  # dropped
    assert delivered(p, packet("192.0.2.10", "192.0.2.1", port=3, out=2)) == [1, 2]
    assert delivered(p, packet("192.0.2.10", "192.0.2.1", port=3, mcast_grp=FLOOD)) == [1, 2]


def selected(f: IpFilter, pkt: dict[str, int], topo: SwitchTopology) -> bool:
    return any(region.matches(pkt) for region in regions_of(f, topo))


def test_ids_are_stable_across_replans():
    ids = IdAllocator()
    s1 = [Stream(1, 1, v4(src="192.0.2.1/32"), True)]
    first = plan_intercepts([mediation(1)], s1, topology(), ids, NOW)
    second = plan_intercepts([mediation(1), mediation(2)], s1 + [Stream(2, 1, v4(src="192.0.2.2/32"), True)],
                             topology(), ids, NOW)
    assert first.filters <= second.filters and first.sessions <= second.sessions


PREFIXES = ["192.0.2.0/24", "192.0.2.0/25", "192.0.2.128/25", "192.0.2.7/32", "192.0.2.200/32", None]


def random_filter(rng: random.Random) -> IpFilter:
    lo = rng.choice([0, 0, 80, 1000, 5060])
    hi = rng.choice([lo, 65535, lo + 100])
    tos_mask = rng.choice([0, 0, 0xFC, 0xFF])
    return v4(
        src=rng.choice(PREFIXES), dst=rng.choice(PREFIXES),
        protocol=rng.choice([-1, -1, 6, 17, 0]),
        dst_port_min=lo, dst_port_max=min(hi, 65535),
        tos_byte=rng.choice([0, 0xB8, 0x88]) & tos_mask, tos_mask=tos_mask,
        interface=rng.choice([0, 0, 1, 2]),
    )


def random_packet(rng: random.Random) -> dict[str, int]:
    octet = lambda: rng.choice([7, 200, 1, 130, 64])  # noqa: E731
    net = lambda: rng.choice(["192.0.2", "198.51.100"])  # noqa: E731
    return packet(
        f"{net()}.{octet()}", f"{net()}.{octet()}", proto=rng.choice([6, 17, 1, 0]),
        dport=rng.choice([80, 1000, 1050, 5060, 9999]), tos=rng.choice([0, 0xB8, 0x88, 0xB9]),
        port=rng.choice([1, 2, 3]), out=rng.choice([1, 2, 3, 4, DROP]), mcast_grp=rng.choice([0, 0, 0, FLOOD]),
    )


@pytest.mark.parametrize("seed", range(40))
def test_random_taps_every_mediation_once_nothing_else(seed):
    rng = random.Random(seed)
    meds = [mediation(c) for c in range(1, rng.randint(2, 5))]
    streams = [Stream(m.content_id, i, random_filter(rng), True) for m in meds for i in range(1, rng.randint(2, 4))]
    p = plan(meds, streams)
    topo = topology()
    for _ in range(300):
        pkt = random_packet(rng)
        want = sorted({s.content_id for s in streams if selected(s.filter, pkt, topo)})
        assert delivered(p, pkt) == want, (pkt, streams)
