"""The demo's two networks, as host specs (for bmv2_topo/netns.py or
mininet_topo.py) and per switch the forwarding the controller installs.

`single`: one access switch s1.

    subject 192.0.2.10  --- port 1 ┐
    peer    192.0.2.20  --- port 2 ├ s1 (bmv2)
    other   192.0.2.30  --- port 3 │
    md      203.0.113.10 -- port 4 ┘
    md (mgmt0 198.51.100.10) ===== iap (mgmt0 198.51.100.1): controller + SNMPv3 agent

`multihomed`: the subject reaches two access switches, a and b, each tapped.
The peer and the MD are on both; the subject's traffic to 192.0.2.20 takes
switch a, to 192.0.2.21 (the peer's address on b) switch b. Its address,
192.0.2.10, is the same on both paths, so one intercept, placed on both
switches, covers both. The MD receives copies from a (tap source
203.0.113.1) and from b (203.0.113.2) on the same address.

The MD's management link to the IAP host bypasses the switches, as the
SNMP interface (d) and the content interface (f) are separate in RFC 3924.

`radius`: `single` with a NAS and a RADIUS server on ports 5 and 6; the MD
taps the server's signalling and derives the subject's intercept from it.
The subject holds a second address (192.0.2.11), her second device's
session, tapped beside the first while both sessions last.
`voip`: `single` whose peer is the SIP service too (a second address for
the other subscriber's call); the MD derives the call media taps from SIP.
The IAP process reaches its switches over P4Runtime on a unix socket.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from bmv2_topo.netns import HostSpec, Iface
from controller.topology import L2Entry, NextHop, Route, SwitchTopology

ROUTER_MAC = "02:00:00:00:0d:fe"
SUBJECT, PEER, PEER_B, OTHER = "192.0.2.10", "192.0.2.20", "192.0.2.21", "192.0.2.30"
SUBJECT_B = "192.0.2.11"  # the radius variant: the subscriber's second session at once (another device)
NAS, AAA = "192.0.2.40", "192.0.2.50"  # the radius variant's access server and RADIUS server
MD_ADDRESS, MD_PORT = "203.0.113.10", 7000
IAP_MGMT, MD_MGMT = "198.51.100.1", "198.51.100.10"
SNMP_PORT, INFORM_PORT = 161, 162
MD_MTU = 9000  # copies of full-size packets are bigger than 1500


@dataclass(frozen=True)
class SwitchPlan:
    name: str
    tap_source: str
    ports: dict[int, tuple[str, str]]  # port -> (host, interface)
    md_port: int


@dataclass(frozen=True)
class Layout:
    name: str
    hosts: tuple[HostSpec, ...]
    switches: tuple[SwitchPlan, ...]
    rtp_to: str  # where the subject's RTP flow goes (the path it takes)
    tcp_to: str  # where its TCP transfer goes
    peer_addresses: tuple[str, ...] = (PEER,)
    subject_addresses: tuple[str, ...] = (SUBJECT,)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def host(self, name: str) -> HostSpec:
        return next(h for h in self.hosts if h.name == name)

    def mac(self, host: str, iface: str) -> str:
        return next(i.mac for i in self.host(host).all_ifaces() if i.name == iface)

    def topology(self, plan: SwitchPlan) -> SwitchTopology:
        """The switch's forwarding: L2 by the hosts' MACs, and a route to the MD for the copies."""
        l2 = tuple(L2Entry(self.mac(host, iface), port) for port, (host, iface) in sorted(plan.ports.items()))
        md_host, md_iface = plan.ports[plan.md_port]
        route = Route(0, ipaddress.ip_network(f"{MD_ADDRESS}/32"),
                      NextHop(plan.md_port, ROUTER_MAC, self.mac(md_host, md_iface)))
        return SwitchTopology(ports={p: p for p in plan.ports}, l2=l2, routes=(route,),
                              tap_sources={4: ipaddress.ip_address(plan.tap_source)}, tap_source_port=49152)


def _iap_host() -> HostSpec:
    return HostSpec("iap", ifaces=(Iface("mgmt0", "02:00:00:00:0d:a1", (f"{IAP_MGMT}/24",), peer=("md", "mgmt0")),))


def _md_mgmt() -> Iface:
    return Iface("mgmt0", "02:00:00:00:0d:a2", (f"{MD_MGMT}/24",), peer=("iap", "mgmt0"))


def single() -> Layout:
    hosts = (
        HostSpec("subject", 1, "02:00:00:00:0d:01", (f"{SUBJECT}/24",)),
        HostSpec("peer", 2, "02:00:00:00:0d:02", (f"{PEER}/24",)),
        HostSpec("other", 3, "02:00:00:00:0d:03", (f"{OTHER}/24",)),
        HostSpec("md", 4, "02:00:00:00:0d:04", (f"{MD_ADDRESS}/24",), mtu=MD_MTU, ifaces=(_md_mgmt(),)),
        _iap_host(),
    )
    s1 = SwitchPlan("s1", "203.0.113.1", {1: ("subject", "eth0"), 2: ("peer", "eth0"), 3: ("other", "eth0"),
                                           4: ("md", "eth0")}, md_port=4)
    return Layout("single", hosts, (s1,), rtp_to=PEER, tcp_to=PEER)


def multihomed() -> Layout:
    hosts = (
        HostSpec("subject", 1, "02:00:00:00:0d:01", (f"{SUBJECT}/24",), switch="a",
                 ifaces=(Iface("eth1", "02:00:00:00:0e:01", (f"{SUBJECT}/32",), switch="b", port=1),),
                 routes=(f"{PEER_B}/32 dev eth1 src {SUBJECT}",)),
        HostSpec("peer", 2, "02:00:00:00:0d:02", (f"{PEER}/24",), switch="a",
                 ifaces=(Iface("eth1", "02:00:00:00:0e:02", (f"{PEER_B}/32",), switch="b", port=2),),
                 routes=(f"{SUBJECT}/32 dev eth1 src {PEER_B} table 100",), rules=(f"from {PEER_B} lookup 100",)),
        HostSpec("other", 3, "02:00:00:00:0d:03", (f"{OTHER}/24",), switch="a"),
        HostSpec("md", 4, "02:00:00:00:0d:04", (f"{MD_ADDRESS}/24",), mtu=MD_MTU, switch="a",
                 ifaces=(Iface("eth1", "02:00:00:00:0e:04", (), mtu=MD_MTU, switch="b", port=4), _md_mgmt())),
        _iap_host(),
    )
    a = SwitchPlan("a", "203.0.113.1", {1: ("subject", "eth0"), 2: ("peer", "eth0"), 3: ("other", "eth0"),
                                         4: ("md", "eth0")}, md_port=4)
    b = SwitchPlan("b", "203.0.113.2", {1: ("subject", "eth1"), 2: ("peer", "eth1"), 4: ("md", "eth1")}, md_port=4)
    return Layout("multihomed", hosts, (a, b), rtp_to=PEER, tcp_to=PEER_B, peer_addresses=(PEER, PEER_B),
                  notes=("RTP takes switch a, TCP switch b",))


def radius() -> Layout:
    """`single` with a NAS (port 5) and the operator's RADIUS server (port 6):
    the MD learns the subject's address from the accounting between them."""
    base = single()
    subject = HostSpec("subject", 1, "02:00:00:00:0d:01", (f"{SUBJECT}/24", f"{SUBJECT_B}/24"))
    hosts = tuple(subject if h.name == "subject" else h for h in base.hosts) + (
        HostSpec("nas", 5, "02:00:00:00:0d:05", (f"{NAS}/24",)),
        HostSpec("aaa", 6, "02:00:00:00:0d:06", (f"{AAA}/24",)))
    s1 = SwitchPlan("s1", "203.0.113.1", {**base.switches[0].ports, 5: ("nas", "eth0"), 6: ("aaa", "eth0")}, md_port=4)
    return Layout("radius", hosts, (s1,), rtp_to=PEER, tcp_to=PEER, subject_addresses=(SUBJECT, SUBJECT_B),
                  notes=(f"the subject's address comes from RADIUS accounting ({NAS} to {AAA})",))


def voip() -> Layout:
    """`single` whose peer is also the operator's SIP service, on a second
    address besides (192.0.2.21, where the other subscriber calls): the MD
    derives the subject's call media taps from the SIP signalling."""
    base = single()
    hosts = tuple(HostSpec("peer", 2, "02:00:00:00:0d:02", (f"{PEER}/24", f"{PEER_B}/24")) if h.name == "peer" else h
                  for h in base.hosts)
    return Layout("voip", hosts, base.switches, rtp_to=PEER, tcp_to=PEER,
                  notes=(f"the subject's call media come from SIP signalling (SIP service {PEER} and {PEER_B})",))


LAYOUTS = {"single": single, "multihomed": multihomed, "radius": radius, "voip": voip}
