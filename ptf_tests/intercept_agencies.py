"""Several intercepts at once: each agency gets its own copy, with its own
CCCID, exactly once, and nothing of another agency's."""

from __future__ import annotations

from controller.model import Stream
from ptf_tests.base import (MD_A, MD_B, OTHER, PEER, SUBJECT, P4tapTest, ip_filter, mediation, pcli_copy, tcp4, udp4,
                            udp6)


class TwoAgenciesOneSubject(P4tapTest):
    def runTest(self) -> None:
        self.provision(
            [mediation(301, MD_A, port=7001), mediation(302, MD_B, port=7002)],
            [Stream(301, 1, ip_filter(src=SUBJECT.ipv4), True), Stream(301, 2, ip_filter(dst=SUBJECT.ipv4), True),
             Stream(302, 1, ip_filter(src=SUBJECT.ipv4), True), Stream(302, 2, ip_filter(dst=SUBJECT.ipv4), True)],
        )
        for src, dst, pkt in ((SUBJECT, PEER, tcp4(SUBJECT, PEER)), (PEER, SUBJECT, udp4(PEER, SUBJECT))):
            self.send(src.port, pkt)
            self.expect_exactly({dst.port: [bytes(pkt)],
                                 MD_A.port: [pcli_copy(pkt, 301, MD_A, port=7001)],
                                 MD_B.port: [pcli_copy(pkt, 302, MD_B, port=7002)]})


class TwoAgenciesDifferentScopes(P4tapTest):
    """Agency B taps only the subject's SIP; A taps everything. A narrow tap
    neither hides nor widens the other."""

    def runTest(self) -> None:
        self.provision(
            [mediation(311, MD_A), mediation(312, MD_B)],
            [Stream(311, 1, ip_filter(src=SUBJECT.ipv4), True),
             Stream(312, 1, ip_filter(src=SUBJECT.ipv4, protocol=17, dst_port_min=5060, dst_port_max=5060), True)],
        )
        sip, web = udp4(SUBJECT, PEER, dport=5060), tcp4(SUBJECT, PEER, dport=80)
        self.send(SUBJECT.port, sip)
        self.expect_exactly({PEER.port: [bytes(sip)], MD_A.port: [pcli_copy(sip, 311, MD_A)],
                             MD_B.port: [pcli_copy(sip, 312, MD_B)]})
        self.send(SUBJECT.port, web)
        self.expect_exactly({PEER.port: [bytes(web)], MD_A.port: [pcli_copy(web, 311, MD_A)]})


class OverlappingTapsOfOneAgencyDeliverOnce(P4tapTest):
    def runTest(self) -> None:
        self.provision(
            [mediation(321, MD_A)],
            [Stream(321, 1, ip_filter(src="192.0.2.0/24"), True),
             Stream(321, 2, ip_filter(src=SUBJECT.ipv4, protocol=6), True),
             Stream(321, 3, ip_filter(dst=PEER.ipv4), True)],
        )
        pkt = tcp4(SUBJECT, PEER)  # matches all three streams, source and destination side
        self.send(SUBJECT.port, pkt)
        self.expect_exactly({PEER.port: [bytes(pkt)], MD_A.port: [pcli_copy(pkt, 321, MD_A)]})
        other = udp4(OTHER, PEER)  # matches streams 1 and 3
        self.send(OTHER.port, other)
        self.expect_exactly({PEER.port: [bytes(other)], MD_A.port: [pcli_copy(other, 321, MD_A)]})


class SubjectToSubjectOfTwoAgencies(P4tapTest):
    """A's subject talks to B's subject: the packet matches a source-side
    filter of A and a destination-side filter of B (two clones, via resubmit),
    and is still forwarded exactly once."""

    def runTest(self) -> None:
        self.provision(
            [mediation(331, MD_A), mediation(332, MD_B)],
            [Stream(331, 1, ip_filter(src=SUBJECT.ipv4), True), Stream(331, 2, ip_filter(dst=SUBJECT.ipv4), True),
             Stream(332, 1, ip_filter(src=OTHER.ipv4), True), Stream(332, 2, ip_filter(dst=OTHER.ipv4), True)],
        )
        for src, dst in ((SUBJECT, OTHER), (OTHER, SUBJECT)):
            pkt = tcp4(src, dst)
            self.send(src.port, pkt)
            self.expect_exactly({dst.port: [bytes(pkt)], MD_A.port: [pcli_copy(pkt, 331, MD_A)],
                                 MD_B.port: [pcli_copy(pkt, 332, MD_B)]})


class OneAgencyBothSubjectsAndASharedAgency(P4tapTest):
    """A taps both ends of a call, B taps one: A gets one copy, B one copy
    (the merge path: both sides share mediation A)."""

    def runTest(self) -> None:
        self.provision(
            [mediation(341, MD_A, version=6), mediation(342, MD_B)],
            [Stream(341, 1, ip_filter(6, src=SUBJECT.ipv6), True), Stream(341, 2, ip_filter(6, dst=OTHER.ipv6), True),
             Stream(342, 1, ip_filter(6, dst=OTHER.ipv6), True)],
        )
        pkt = udp6(SUBJECT, OTHER)
        self.send(SUBJECT.port, pkt)
        self.expect_exactly({OTHER.port: [bytes(pkt)], MD_A.port: [pcli_copy(pkt, 341, MD_A, version=6)],
                             MD_B.port: [pcli_copy(pkt, 342, MD_B)]})


class DisabledStreamCopiesNothing(P4tapTest):
    def runTest(self) -> None:
        self.provision([mediation(351, MD_A)], [Stream(351, 1, ip_filter(src=SUBJECT.ipv4), False)])
        pkt = tcp4(SUBJECT, PEER)
        self.send(SUBJECT.port, pkt)
        self.expect_exactly({PEER.port: [bytes(pkt)]})
