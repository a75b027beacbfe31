"""One intercept: matching IPv4 and IPv6 traffic is forwarded byte-identical
and its mediation device receives one exact pcli copy per packet."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from controller.model import Stream
from ptf_tests.base import (MD_A, OTHER, PEER, SUBJECT, P4tapTest, ip_filter, mediation, pcli_copy, routed, tcp4, tcp6,
                            udp4, udp6, vlan_tagged)


def subject_streams(content_id: int, version: int = 4) -> list[Stream]:
    """What a real MD sets for "all of this subject's traffic": two streams."""
    address = SUBJECT.ipv4 if version == 4 else SUBJECT.ipv6
    return [Stream(content_id, 1, ip_filter(version, src=address), True),
            Stream(content_id, 2, ip_filter(version, dst=address), True)]


class Ipv4BothDirections(P4tapTest):
    def runTest(self) -> None:
        self.provision([mediation(101, MD_A)], subject_streams(101))
        out, back = tcp4(SUBJECT, PEER), udp4(PEER, SUBJECT)
        self.send(SUBJECT.port, out)
        self.expect_exactly({PEER.port: [bytes(out)], MD_A.port: [pcli_copy(out, 101, MD_A)]})
        self.send(PEER.port, back)
        self.expect_exactly({SUBJECT.port: [bytes(back)], MD_A.port: [pcli_copy(back, 101, MD_A)]})
        # The other subscriber's traffic is not copied.
        other = tcp4(OTHER, PEER)
        self.send(OTHER.port, other)
        self.expect_exactly({PEER.port: [bytes(other)]})


class Ipv6BothDirectionsToIpv6Md(P4tapTest):
    def runTest(self) -> None:
        self.provision([mediation(102, MD_A, version=6, port=7002, dscp=46)], subject_streams(102, version=6))
        for pkt, src, dst in ((tcp6(SUBJECT, PEER), SUBJECT, PEER), (udp6(PEER, SUBJECT), PEER, SUBJECT)):
            self.send(src.port, pkt)
            self.expect_exactly({dst.port: [bytes(pkt)],
                                 MD_A.port: [pcli_copy(pkt, 102, MD_A, version=6, port=7002, dscp=46)]})
        other = tcp6(OTHER, PEER)
        self.send(OTHER.port, other)
        self.expect_exactly({PEER.port: [bytes(other)]})


class Ipv6TrafficToIpv4Md(P4tapTest):
    def runTest(self) -> None:
        self.provision([mediation(103, MD_A)], subject_streams(103, version=6))
        pkt = tcp6(SUBJECT, PEER)
        self.send(SUBJECT.port, pkt)
        self.expect_exactly({PEER.port: [bytes(pkt)], MD_A.port: [pcli_copy(pkt, 103, MD_A)]})


class ForwardedBytesSameWithOrWithoutTap(P4tapTest):
    """Undetectability: the subject's and peer's packets do not change."""

    def runTest(self) -> None:
        packets = [tcp4(SUBJECT, PEER), tcp4(SUBJECT, PEER, routed_to_router=True), udp6(SUBJECT, PEER),
                   vlan_tagged(udp4(SUBJECT, PEER), 7)]
        seen = {}
        for tapped in (False, True):
            if tapped:
                self.provision([mediation(104, MD_A)], subject_streams(104) + [
                    Stream(104, 3, ip_filter(6, src=SUBJECT.ipv6), True)])
            for i, pkt in enumerate(packets):
                self.send(SUBJECT.port, pkt)
                result = self.dataplane.poll(port_number=PEER.port, timeout=2, exp_pkt=None)
                self.assertIsNotNone(result.packet, f"packet {i} not forwarded")
                seen.setdefault(i, []).append(bytes(result.packet))
                if tapped:
                    self.expect(pcli_copy(pkt, 104, MD_A), MD_A.port)
            self.expect_nothing_else()
        for i, (untapped, tapped) in seen.items():
            self.assertEqual(untapped, tapped, f"packet {i} forwarded differently when tapped")


class CopyIsThePacketAsSent(P4tapTest):
    """Routed, VLAN-tagged, padded, with IP options: the copy carries the
    subject's IP packet exactly as it arrived, without L2 or padding."""

    def runTest(self) -> None:
        self.provision([mediation(105, MD_A)], subject_streams(105))
        routed_pkt = tcp4(SUBJECT, PEER, routed_to_router=True, ip_ttl=33)
        self.send(SUBJECT.port, routed_pkt)
        self.expect_exactly({PEER.port: [routed(routed_pkt, PEER)], MD_A.port: [pcli_copy(routed_pkt, 105, MD_A)]})

        tagged = vlan_tagged(tcp4(SUBJECT, PEER), 42)
        self.send(SUBJECT.port, tagged)
        self.expect_exactly({PEER.port: [bytes(tagged)], MD_A.port: [pcli_copy(tagged, 105, MD_A)]})

        short = Ether(src=SUBJECT.mac, dst=PEER.mac) / IP(src=SUBJECT.ipv4, dst=PEER.ipv4, proto=6) / TCP(dport=9)
        padded = Ether(bytes(short) + b"\xaa" * 6)  # trailing bytes beyond IP's total length
        self.send(SUBJECT.port, padded)
        self.expect_exactly({PEER.port: [bytes(padded)], MD_A.port: [pcli_copy(short, 105, MD_A)]})

        with_options = Ether(src=SUBJECT.mac, dst=PEER.mac) / IP(
            src=SUBJECT.ipv4, dst=PEER.ipv4, options=b"\x94\x04\x00\x00" * 2) / TCP(dport=25) / Raw(b"x" * 33)
        self.send(SUBJECT.port, with_options)
        self.expect_exactly({PEER.port: [bytes(with_options)], MD_A.port: [pcli_copy(with_options, 105, MD_A)]})

        big = Ether(src=SUBJECT.mac, dst=PEER.mac) / IP(src=SUBJECT.ipv4, dst=PEER.ipv4) / TCP() / Raw(b"\x5a" * 1400)
        self.send(SUBJECT.port, big)
        self.expect_exactly({PEER.port: [bytes(big)], MD_A.port: [pcli_copy(big, 105, MD_A)]})
