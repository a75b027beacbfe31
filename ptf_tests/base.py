"""Base class of p4tap's PTF suites: one P4Runtime session to the switch under
test, the test network's forwarding state, and builders of the exact packets
a mediation device must receive.

Runs inside `ptf` (see tests/test_ptf.py, which starts bmv2 on veth pairs and
passes `grpc_addr` and `device_id` as PTF test parameters). The pipeline is
pushed by that harness; every test starts from empty intercept state and the
forwarding state below.

Test network (documentation addresses only):

    port 1  subject        02:00:00:00:00:01  192.0.2.10    2001:db8:1::10
    port 2  peer           02:00:00:00:00:02  198.51.100.20 2001:db8:2::20
    port 3  other sub.     02:00:00:00:00:03  192.0.2.30    2001:db8:1::30
    port 4  MD of agency A 02:00:00:00:00:04  203.0.113.10  2001:db8:ff::10
    port 5  MD of agency B 02:00:00:00:00:05  203.0.113.20  2001:db8:ff::20

The switch bridges between the hosts' MACs and routes for frames sent to its
router MAC.
"""

from __future__ import annotations

import ipaddress
import struct
import textwrap
import time
from datetime import datetime, timedelta, timezone

import ptf.testutils as tu
from p4protos import p4runtime_pb2 as p4r
from ptf.base_tests import BaseTest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Packet

from controller.entries import EntryBuilder, deletes, inserts
from controller.model import InetAddressType, IpFilter, Mediation, Stream
from controller.pipeline import Pipeline
from controller.plan import IdAllocator, InterceptPlan, plan_intercepts
from controller.switch import SwitchConnection
from controller.topology import FloodGroup, L2Entry, NextHop, Route, SwitchTopology

ROUTER_MAC = "02:00:00:00:00:fe"
TAP_SRC_V4 = ipaddress.ip_address("203.0.113.1")
TAP_SRC_V6 = ipaddress.ip_address("2001:db8:ff::1")
TAP_SRC_PORT = 49152


class Host:
    def __init__(self, port: int, mac: str, ipv4: str, ipv6: str) -> None:
        self.port, self.mac = port, mac
        self.ipv4, self.ipv6 = ipv4, ipv6


SUBJECT = Host(1, "02:00:00:00:00:01", "192.0.2.10", "2001:db8:1::10")
PEER = Host(2, "02:00:00:00:00:02", "198.51.100.20", "2001:db8:2::20")
OTHER = Host(3, "02:00:00:00:00:03", "192.0.2.30", "2001:db8:1::30")
MD_A = Host(4, "02:00:00:00:00:04", "203.0.113.10", "2001:db8:ff::10")
MD_B = Host(5, "02:00:00:00:00:05", "203.0.113.20", "2001:db8:ff::20")
HOSTS = (SUBJECT, PEER, OTHER, MD_A, MD_B)
PORTS = [h.port for h in HOSTS]


def lab_controller_toml(grpc_address: str, control_socket: str = "control.sock", ipv6_route: bool = False,
                        switch_extra: str = "") -> str:
    """A `p4tap controller run` config for this lab's switch s1 (state under
    `state/` beside it): its ports, the hosts' MACs and the route to MD A,
    and `switch_extra` lines added to the switch table."""
    routes = [f'{{ prefix = "{MD_A.ipv4}/32", port = {MD_A.port}, src_mac = "{ROUTER_MAC}", dst_mac = "{MD_A.mac}" }}']
    if ipv6_route:
        routes.append(f'{{ prefix = "{MD_A.ipv6}/128", port = {MD_A.port}, src_mac = "{ROUTER_MAC}", '
                      f'dst_mac = "{MD_A.mac}" }}')
    return textwrap.dedent(f"""
        [controller]
        state_dir = "state"
        control_socket = "{control_socket}"

        [[switch]]
        name = "s1"
        address = "{grpc_address}"
        tap_source_ipv4 = "203.0.113.1"
        tap_source_ipv6 = "2001:db8:ff::1"
        tap_source_port = 49152
        router_macs = ["{ROUTER_MAC}"]
        ports = [{", ".join(f"{{ port = {p}, ifindex = {p} }}" for p in PORTS)}]
        l2 = [{", ".join(f'{{ mac = "02:00:00:00:00:0{p}", port = {p} }}' for p in PORTS)}]
        routes = [ {", ".join(routes)} ]
    """) + (switch_extra + "\n" if switch_extra else "")


def lab_topology() -> SwitchTopology:
    routes = []
    for h in HOSTS:
        hop = NextHop(h.port, ROUTER_MAC, h.mac)
        routes.append(Route(0, ipaddress.ip_network(f"{h.ipv4}/32"), hop))
        routes.append(Route(0, ipaddress.ip_network(f"{h.ipv6}/128"), hop))
    return SwitchTopology(
        ports={p: p for p in PORTS},
        vrfs={"": 0, "blue": 9},
        router_macs=(ROUTER_MAC,),
        l2=tuple(L2Entry(h.mac, h.port) for h in HOSTS),
        flood=FloodGroup(1, tuple(PORTS)),
        routes=tuple(routes),
        tap_sources={4: TAP_SRC_V4, 6: TAP_SRC_V6},
        tap_source_port=TAP_SRC_PORT,
    )


def lifetime(seconds: int = 3600) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


def mediation(content_id: int, md: Host, version: int = 4, port: int = 7000, dscp: int = 34) -> Mediation:
    address = ipaddress.ip_address(md.ipv4 if version == 4 else md.ipv6)
    return Mediation(content_id, address, port, dscp=dscp, timeout=lifetime())


def ip_filter(version: int = 4, src: str | None = None, dst: str | None = None, **kw) -> IpFilter:
    """A citapStreamEntry; `src`/`dst` as "address/length" (length defaults to a host)."""

    def split(prefix: str | None):
        if prefix is None:
            return None, 0
        net = ipaddress.ip_network(prefix, strict=False)
        return ipaddress.ip_address(prefix.split("/")[0]), net.prefixlen

    (sa, sl), (da, dl) = split(src), split(dst)
    addr_type = InetAddressType.IPV4 if version == 4 else InetAddressType.IPV6
    return IpFilter(addr_type, dst_address=da, dst_length=dl, src_address=sa, src_length=sl, **kw)


def pcli_copy(original: Packet, content_id: int, md: Host, version: int = 4, port: int = 7000,
              dscp: int = 34) -> bytes:
    """The exact frame a mediation device must receive for `original`.

    Outer Ethernet from the switch to the MD, outer IP with the mediation's
    DSCP, UDP to the MD's port, the 4-byte CCCID, then the original IP packet
    from its first byte (no L2, no VLAN tag, no Ethernet padding).
    """
    inner = Ether(bytes(original))  # as on the wire: lengths and checksums filled in
    while not isinstance(inner, (IP, IPv6)):
        inner = inner.payload
    inner_bytes = bytes(inner)
    if isinstance(inner, IP):
        inner_bytes = inner_bytes[: inner.len]
    else:
        inner_bytes = inner_bytes[: 40 + inner.plen]
    payload = struct.pack("!I", content_id) + inner_bytes
    if version == 4:
        outer = IP(src=str(TAP_SRC_V4), dst=md.ipv4, tos=dscp << 2, id=0, flags="DF", ttl=64)
    else:
        outer = IPv6(src=str(TAP_SRC_V6), dst=md.ipv6, tc=dscp << 2, fl=0, hlim=64)
    return bytes(Ether(src=ROUTER_MAC, dst=md.mac) / outer / UDP(sport=TAP_SRC_PORT, dport=port) / payload)


def routed(pkt: Packet, to: Host) -> bytes:
    """`pkt` as the switch routes it toward `to`: MACs rewritten, TTL/hop limit less one."""
    out = pkt.copy()
    out[Ether].src, out[Ether].dst = ROUTER_MAC, to.mac
    if IP in out:
        out[IP].ttl -= 1
        del out[IP].chksum
    else:
        out[IPv6].hlim -= 1
    return bytes(out)


_last_election = 0


def next_election_id() -> tuple[int, int]:
    """A higher election id than any test case before, in this process or an
    earlier one (microseconds of the clock): each case becomes primary at
    once, even while the switch has not yet noticed that the previous case's
    stream ended, which on a busy machine it may not have (a reused id is
    then refused as "Election id already exists")."""
    global _last_election
    _last_election = max(_last_election + 1, time.time_ns() // 1000)
    return (0, _last_election)


class P4tapTest(BaseTest):
    """A P4Runtime session with empty intercept state and the test forwarding."""

    def setUp(self) -> None:
        BaseTest.setUp(self)
        self.dataplane = tu.ptf.dataplane_instance
        self.dataplane.flush()
        grpc_addr = tu.test_param_get("grpc_addr")
        device_id = int(tu.test_param_get("device_id", 0))
        self.pipeline = Pipeline.load()
        self.builder = EntryBuilder(self.pipeline)
        self.switch = SwitchConnection(grpc_addr, device_id=device_id, election_id=next_election_id())
        self.switch.connect()
        try:
            self.topology = lab_topology()
            self.ids = IdAllocator()
            self.installed: list[p4r.Entity] = []
            self.mediations: list[Mediation] = []
            self.streams: list[Stream] = []
            self.clear_switch()
            self.switch.write(inserts(self.builder.forwarding_entities(self.topology)))
        except BaseException:
            # unittest skips tearDown when setUp fails: release the primary role here.
            self.switch.close()
            raise

    def tearDown(self) -> None:
        try:
            self.clear_switch()
        finally:
            self.switch.close()
            BaseTest.tearDown(self)

    def clear_switch(self) -> None:
        """Delete every table entry, clone session and multicast group."""
        entities = []
        for entry in self.switch.read_table_entries():
            if entry.is_default_action:
                continue
            entry.ClearField("counter_data")
            entities.append(p4r.Entity(table_entry=entry))
        for session in self.switch.read_clone_sessions():
            entities.append(p4r.Entity(packet_replication_engine_entry=p4r.PacketReplicationEngineEntry(
                clone_session_entry=session)))
        for group in self.switch.read_multicast_groups():
            entities.append(p4r.Entity(packet_replication_engine_entry=p4r.PacketReplicationEngineEntry(
                multicast_group_entry=group)))
        if entities:
            self.switch.write([p4r.Update(type=p4r.Update.DELETE, entity=e) for e in entities])
        self.installed = []

    # -- intercepts -------------------------------------------------------

    def provision(self, mediations: list[Mediation], streams: list[Stream]) -> InterceptPlan:
        """Replace the switch's intercept state with the plan for these intercepts."""
        if self.installed:
            self.switch.write(deletes(self.installed))
        self.mediations, self.streams = list(mediations), list(streams)
        plan = plan_intercepts(mediations, streams, self.topology, self.ids, datetime.now(timezone.utc))
        self.installed = self.builder.intercept_entities(plan)
        self.switch.write(inserts(self.installed))
        return plan

    # -- traffic ----------------------------------------------------------

    def send(self, port: int, pkt: Packet | bytes) -> None:
        tu.send_packet(self, port, bytes(pkt))

    def expect(self, pkt: Packet | bytes, port: int) -> None:
        tu.verify_packet(self, bytes(pkt), port)

    def expect_nothing_else(self) -> None:
        tu.verify_no_other_packets(self)

    def expect_exactly(self, expected: dict[int, list[bytes]]) -> None:
        """Exactly these frames on these ports (order within a port kept), nothing else."""
        for port, frames in expected.items():
            for frame in frames:
                tu.verify_packet(self, frame, port)
        tu.verify_no_other_packets(self)


def tcp4(src: Host, dst: Host, routed_to_router: bool = False, sport: int = 40000, dport: int = 80, **ip_kw) -> Packet:
    return tu.simple_tcp_packet(
        eth_src=src.mac, eth_dst=ROUTER_MAC if routed_to_router else dst.mac,
        ip_src=src.ipv4, ip_dst=dst.ipv4, tcp_sport=sport, tcp_dport=dport, **ip_kw,
    )


def udp4(src: Host, dst: Host, sport: int = 40000, dport: int = 5060, **ip_kw) -> Packet:
    return tu.simple_udp_packet(eth_src=src.mac, eth_dst=dst.mac, ip_src=src.ipv4, ip_dst=dst.ipv4,
                                udp_sport=sport, udp_dport=dport, **ip_kw)


def tcp6(src: Host, dst: Host, sport: int = 40000, dport: int = 443, **kw) -> Packet:
    return tu.simple_tcpv6_packet(eth_src=src.mac, eth_dst=dst.mac, ipv6_src=src.ipv6, ipv6_dst=dst.ipv6,
                                  tcp_sport=sport, tcp_dport=dport, **kw)


def udp6(src: Host, dst: Host, sport: int = 40000, dport: int = 5060, **kw) -> Packet:
    return tu.simple_udpv6_packet(eth_src=src.mac, eth_dst=dst.mac, ipv6_src=src.ipv6, ipv6_dst=dst.ipv6,
                                  udp_sport=sport, udp_dport=dport, **kw)


def vlan_tagged(pkt: Packet, vid: int) -> Packet:
    eth = pkt[Ether]
    return Ether(src=eth.src, dst=eth.dst) / Dot1Q(vlan=vid, type=eth.type) / eth.payload
