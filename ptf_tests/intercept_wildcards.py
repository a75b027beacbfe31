"""Each citapStreamTable wildcard behaves as CISCO-IP-TAP-MIB says.

Every case provisions one filter, then sends packets that must and must not
be copied; forwarding is checked on every packet too.
"""

from __future__ import annotations

from scapy.layers.inet import IP
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from controller.entries import inserts
from controller.model import Stream
from ptf_tests.base import (MD_A, OTHER, PEER, SUBJECT, Host, P4tapTest, ip_filter, mediation, pcli_copy, tcp4, tcp6,
                            udp4, udp6, vlan_tagged)


class WildcardCase(P4tapTest):
    content_id = 200

    def check(self, filters, copied: list[tuple[Host, Host, Packet]], not_copied: list[tuple[Host, Host, Packet]]):
        streams = [Stream(self.content_id, i, f, True) for i, f in enumerate(filters, start=1)]
        self.provision([mediation(self.content_id, MD_A)], streams)
        for src, dst, pkt in copied:
            self.send(src.port, pkt)
            self.expect_exactly({dst.port: [bytes(pkt)], MD_A.port: [pcli_copy(pkt, self.content_id, MD_A)]})
        for src, dst, pkt in not_copied:
            self.send(src.port, pkt)
            self.expect_exactly({dst.port: [bytes(pkt)]})


def proto_packet(src: Host, dst: Host, proto: int) -> Packet:
    return Ether(src=src.mac, dst=dst.mac) / IP(src=src.ipv4, dst=dst.ipv4, proto=proto) / (b"\x00" * 26)


class PrefixLengthZeroMatchesAll(WildcardCase):
    def runTest(self) -> None:
        # Source wildcard (length 0), destination the peer: anyone to the peer.
        self.check([ip_filter(dst=PEER.ipv4)],
                   copied=[(SUBJECT, PEER, tcp4(SUBJECT, PEER)), (OTHER, PEER, udp4(OTHER, PEER))],
                   not_copied=[(PEER, SUBJECT, tcp4(PEER, SUBJECT))])


class BothPrefixesZeroMatchEveryIpv4Packet(WildcardCase):
    def runTest(self) -> None:
        self.check([ip_filter(protocol=17, dst_port_min=5060, dst_port_max=5060)],
                   copied=[(OTHER, PEER, udp4(OTHER, PEER)), (PEER, SUBJECT, udp4(PEER, SUBJECT))],
                   not_copied=[(OTHER, PEER, udp4(OTHER, PEER, dport=5061)), (OTHER, PEER, udp6(OTHER, PEER))])


class ShortPrefixCoversSubnet(WildcardCase):
    def runTest(self) -> None:
        self.check([ip_filter(src="192.0.2.0/27")],
                   copied=[(SUBJECT, PEER, tcp4(SUBJECT, PEER)), (OTHER, PEER, tcp4(OTHER, PEER))],
                   not_copied=[(PEER, SUBJECT, tcp4(PEER, SUBJECT))])


class ProtocolAnyVersusZero(WildcardCase):
    def runTest(self) -> None:
        # -1: every protocol, including ones without ports.
        self.check([ip_filter(src=SUBJECT.ipv4, protocol=-1)],
                   copied=[(SUBJECT, PEER, proto_packet(SUBJECT, PEER, 47)), (SUBJECT, PEER, proto_packet(SUBJECT, PEER, 0)),
                           (SUBJECT, PEER, udp4(SUBJECT, PEER))],
                   not_copied=[])


class ProtocolZeroIsProtocolZero(WildcardCase):
    content_id = 201

    def runTest(self) -> None:
        self.check([ip_filter(src=SUBJECT.ipv4, protocol=0)],
                   copied=[(SUBJECT, PEER, proto_packet(SUBJECT, PEER, 0))],
                   not_copied=[(SUBJECT, PEER, proto_packet(SUBJECT, PEER, 47)), (SUBJECT, PEER, tcp4(SUBJECT, PEER))])


class PortRangesDefaultAndNarrowed(WildcardCase):
    def runTest(self) -> None:
        f = ip_filter(src=SUBJECT.ipv4, protocol=6, dst_port_min=80, dst_port_max=443, src_port_min=1024,
                      src_port_max=65535)
        self.check([f],
                   copied=[(SUBJECT, PEER, tcp4(SUBJECT, PEER, sport=1024, dport=80)),
                           (SUBJECT, PEER, tcp4(SUBJECT, PEER, sport=65535, dport=443))],
                   not_copied=[(SUBJECT, PEER, tcp4(SUBJECT, PEER, dport=79)), (SUBJECT, PEER, tcp4(SUBJECT, PEER, dport=444)),
                               (SUBJECT, PEER, tcp4(SUBJECT, PEER, sport=1023, dport=80)),
                               (SUBJECT, PEER, udp4(SUBJECT, PEER, dport=80))])


class NarrowedPortsNeverMatchPortlessPackets(WildcardCase):
    def runTest(self) -> None:
        self.check([ip_filter(src=SUBJECT.ipv4, dst_port_min=0, dst_port_max=1023)],
                   copied=[(SUBJECT, PEER, tcp4(SUBJECT, PEER, dport=22))],
                   not_copied=[(SUBJECT, PEER, proto_packet(SUBJECT, PEER, 47)),
                               # a non-first fragment carries no ports
                               (SUBJECT, PEER, Ether(src=SUBJECT.mac, dst=PEER.mac) / IP(
                                   src=SUBJECT.ipv4, dst=PEER.ipv4, proto=6, frag=100) / (b"\x00" * 30))])


class TosByteAndMask(WildcardCase):
    def runTest(self) -> None:
        # DSCP EF (46 -> 0xb8) whatever the ECN bits.
        self.check([ip_filter(src=SUBJECT.ipv4, tos_byte=0xB8, tos_mask=0xFC)],
                   copied=[(SUBJECT, PEER, tcp4(SUBJECT, PEER, ip_tos=0xB8)), (SUBJECT, PEER, tcp4(SUBJECT, PEER, ip_tos=0xBB))],
                   not_copied=[(SUBJECT, PEER, tcp4(SUBJECT, PEER, ip_tos=0x88)), (SUBJECT, PEER, tcp4(SUBJECT, PEER))])


class Ipv6TrafficClassAndFlowLabel(WildcardCase):
    def runTest(self) -> None:
        self.check([ip_filter(6, src=SUBJECT.ipv6, tos_byte=0xB8, tos_mask=0xFC, flow_id=0x12345)],
                   copied=[(SUBJECT, PEER, tcp6(SUBJECT, PEER, ipv6_tc=0xB8, ipv6_fl=0x12345))],
                   not_copied=[(SUBJECT, PEER, tcp6(SUBJECT, PEER, ipv6_tc=0xB8, ipv6_fl=0x12346)),
                               (SUBJECT, PEER, tcp6(SUBJECT, PEER, ipv6_tc=0x00, ipv6_fl=0x12345))])


class FlowLabelMinusOneMatchesAll(WildcardCase):
    def runTest(self) -> None:
        self.check([ip_filter(6, dst=PEER.ipv6, flow_id=-1)],
                   copied=[(SUBJECT, PEER, tcp6(SUBJECT, PEER, ipv6_fl=7)), (OTHER, PEER, udp6(OTHER, PEER))],
                   not_copied=[(PEER, SUBJECT, tcp6(PEER, SUBJECT))])


class InterfaceZeroIsAnyElseThatPort(WildcardCase):
    def runTest(self) -> None:
        # Only what arrives on (or leaves by) the subject's port, to the peer.
        self.check([ip_filter(dst=PEER.ipv4, interface=SUBJECT.port)],
                   copied=[(SUBJECT, PEER, tcp4(SUBJECT, PEER))],
                   not_copied=[(OTHER, PEER, tcp4(OTHER, PEER))])


class Ipv6FilterIgnoresIpv4(WildcardCase):
    def runTest(self) -> None:
        self.check([ip_filter(6, src="2001:db8:1::/64")],
                   copied=[(SUBJECT, PEER, udp6(SUBJECT, PEER)), (OTHER, PEER, tcp6(OTHER, PEER))],
                   not_copied=[(SUBJECT, PEER, tcp4(SUBJECT, PEER))])


class VrfScopesAFilter(WildcardCase):
    """citapStreamVRF: a filter applies only in its routing context. Port 3,
    and VLAN 100 on port 1, are in VRF "blue"; the filter is in "blue"."""

    def runTest(self) -> None:
        self.topology.port_vrfs = {OTHER.port: 9}
        self.topology.vlan_vrfs = {(SUBJECT.port, 100): 9}
        self.clear_switch()
        self.switch.write(inserts(self.builder.forwarding_entities(self.topology)))
        self.check([ip_filter(dst=PEER.ipv4, vrf="blue")],
                   copied=[(OTHER, PEER, tcp4(OTHER, PEER)), (SUBJECT, PEER, vlan_tagged(tcp4(SUBJECT, PEER), 100))],
                   not_copied=[(SUBJECT, PEER, tcp4(SUBJECT, PEER)),
                               (SUBJECT, PEER, vlan_tagged(tcp4(SUBJECT, PEER), 101))])
