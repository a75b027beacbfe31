"""Forwarding with no intercept: bridged and routed traffic leaves as it must
and nothing reaches a mediation device."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import ARP, Ether

from ptf_tests.base import MD_A, MD_B, OTHER, PEER, ROUTER_MAC, SUBJECT, P4tapTest, routed, tcp4, tcp6, udp6, vlan_tagged


class BridgedUnchanged(P4tapTest):
    def runTest(self) -> None:
        for pkt, frm, to in ((tcp4(SUBJECT, PEER), SUBJECT, PEER), (tcp6(PEER, SUBJECT), PEER, SUBJECT),
                             (udp6(OTHER, PEER), OTHER, PEER), (vlan_tagged(tcp4(SUBJECT, OTHER), 100), SUBJECT, OTHER)):
            self.send(frm.port, pkt)
            self.expect_exactly({to.port: [bytes(pkt)]})


class RoutedRewritesOnlyWhatRoutingMust(P4tapTest):
    def runTest(self) -> None:
        v4 = tcp4(SUBJECT, PEER, routed_to_router=True, ip_ttl=17)
        self.send(SUBJECT.port, v4)
        self.expect_exactly({PEER.port: [routed(v4, PEER)]})
        # IPv4 options are skipped correctly and the checksum stays right.
        opts = Ether(src=SUBJECT.mac, dst=ROUTER_MAC) / IP(src=SUBJECT.ipv4, dst=PEER.ipv4, ttl=9,
                                                           options=b"\x94\x04\x00\x00" * 3) / TCP(dport=22)
        self.send(SUBJECT.port, opts)
        self.expect_exactly({PEER.port: [routed(Ether(bytes(opts)), PEER)]})
        v6 = tcp6(SUBJECT, PEER, ipv6_hlim=5)
        v6[Ether].dst = ROUTER_MAC
        self.send(SUBJECT.port, v6)
        self.expect_exactly({PEER.port: [routed(v6, PEER)]})


class TtlExpiryDrops(P4tapTest):
    def runTest(self) -> None:
        self.send(SUBJECT.port, tcp4(SUBJECT, PEER, routed_to_router=True, ip_ttl=1))
        v6 = tcp6(SUBJECT, PEER, ipv6_hlim=1)
        v6[Ether].dst = ROUTER_MAC
        self.send(SUBJECT.port, v6)
        self.expect_nothing_else()


class BroadcastFloodsExceptIngress(P4tapTest):
    def runTest(self) -> None:
        arp = Ether(src=SUBJECT.mac, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=SUBJECT.ipv4, pdst=PEER.ipv4)
        self.send(SUBJECT.port, arp)
        self.expect_exactly({p.port: [bytes(arp)] for p in (PEER, OTHER, MD_A, MD_B)})
