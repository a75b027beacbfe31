"""Undetectability on every path through the pipeline: a tapped packet is
forwarded, ETS conditioning included, exactly as it would be untapped.

SUBJECT's port (1) is ETS-untrusted, PEER's (2) trusted. The subject sends
EF (with ECN bits) to the peer, bridged and routed, IPv4 and IPv6, as a
non-first fragment and with TTL 1, while intercepts select it on one side,
on both sides for one mediation set (merged: one clone) and on both sides
for different mediations (the second copy made by a resubmitted pass). On
every path the forwarded packet has its mark reset (RFC 4190 §4.4.1) and
each MD gets one copy of the packet as sent, mark intact.
"""

from __future__ import annotations

from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

from controller.model import Stream
from ptf_tests.base import MD_A, MD_B, OTHER, PEER, SUBJECT, ip_filter, mediation, pcli_copy, routed, udp4, udp6
from ptf_tests.ets import EF_TOS, EtsTest, remarked

A, B = 601, 602


def subject_to_peer(version: int, routed_: bool, tos: int, **kw):
    """The subject's EF packet to the peer: bridged, or sent to the router."""
    pkt = udp4(SUBJECT, PEER, ip_tos=tos, **kw) if version == 4 else udp6(SUBJECT, PEER, ipv6_tc=tos, **kw)
    if routed_:
        pkt[Ether].dst = "02:00:00:00:00:fe"
    return pkt


def as_forwarded(pkt, version: int, routed_: bool) -> bytes:
    """What the peer receives: routed if sent to the router, mark reset to the default class (ECN kept)."""
    out = Ether(routed(pkt, PEER)) if routed_ else pkt.copy()
    ecn = (pkt[IP].tos if version == 4 else pkt["IPv6"].tc) & 3
    return remarked(out, ecn)


# Intercept sets, by the path they send SUBJECT -> PEER down.
def one_side(version: int) -> list[Stream]:
    return [Stream(A, 1, ip_filter(version, src=SUBJECT.ipv4 if version == 4 else SUBJECT.ipv6), True)]


def merged(version: int) -> list[Stream]:
    # Source side {A}, destination side {A, B}: they share A, so one clone of the union.
    src, dst = (SUBJECT.ipv4, PEER.ipv4) if version == 4 else (SUBJECT.ipv6, PEER.ipv6)
    return [Stream(A, 1, ip_filter(version, src=src), True), Stream(A, 2, ip_filter(version, dst=dst), True),
            Stream(B, 1, ip_filter(version, dst=dst), True)]


def resubmitted(version: int) -> list[Stream]:
    # Source side {A}, destination side {B}: one clone, then a resubmitted pass for the other.
    src, dst = (SUBJECT.ipv4, PEER.ipv4) if version == 4 else (SUBJECT.ipv6, PEER.ipv6)
    return [Stream(A, 1, ip_filter(version, src=src), True), Stream(B, 1, ip_filter(version, dst=dst), True)]


class MarksResetOnEveryInterceptPath(EtsTest):
    def runTest(self) -> None:
        self.install_ets()
        for path, streams, mds in (("one side", one_side, (A,)), ("merged", merged, (A, B)),
                                   ("resubmitted", resubmitted, (A, B))):
            for version in (4, 6):
                self.provision([mediation(A, MD_A), mediation(B, MD_B)], streams(version))
                for routed_ in (False, True):
                    for tos in (EF_TOS, EF_TOS | 1, EF_TOS | 3):
                        pkt = subject_to_peer(version, routed_, tos)
                        self.send(SUBJECT.port, pkt)
                        copies = {MD_A.port if c == A else MD_B.port: [pcli_copy(pkt, c, MD_A if c == A else MD_B)]
                                  for c in mds}
                        with self.subTest(path=path, version=version, routed=routed_, tos=tos):
                            self.expect_exactly({PEER.port: [as_forwarded(pkt, version, routed_)], **copies})


class FragmentsAndTtlOneOnTheResubmittedPath(EtsTest):
    """A non-first fragment (no ports) is remarked like any packet; a routed
    packet with TTL 1 is dropped as it would be untapped, and still copied."""

    def runTest(self) -> None:
        self.install_ets()
        self.provision([mediation(A, MD_A), mediation(B, MD_B)], resubmitted(4))
        frag = subject_to_peer(4, False, EF_TOS | 2, ip_id=7)
        frag[IP].frag, frag[IP].flags = 100, 0
        frag = Ether(bytes(frag))
        self.send(SUBJECT.port, frag)
        self.expect_exactly({PEER.port: [as_forwarded(frag, 4, False)],
                             MD_A.port: [pcli_copy(frag, A, MD_A)], MD_B.port: [pcli_copy(frag, B, MD_B)]})
        for version in (4, 6):
            self.provision([mediation(A, MD_A), mediation(B, MD_B)], resubmitted(version))
            ttl = {"ip_ttl": 1} if version == 4 else {"ipv6_hlim": 1}
            dying = subject_to_peer(version, True, EF_TOS, **ttl)
            self.send(SUBJECT.port, dying)
            self.expect_exactly({MD_A.port: [pcli_copy(dying, A, MD_A)], MD_B.port: [pcli_copy(dying, B, MD_B)]})


class FloodedOnTheResubmittedPath(EtsTest):
    """A flooded packet whose copies need a resubmitted pass is flooded as
    untapped: remarked, to every port but the one it came from."""

    def runTest(self) -> None:
        self.install_ets()
        self.provision([mediation(A, MD_A), mediation(B, MD_B)],
                       [Stream(A, 1, ip_filter(4, src=SUBJECT.ipv4), True),
                        Stream(B, 1, ip_filter(4, dst=PEER.ipv4), True)])
        pkt = subject_to_peer(4, False, EF_TOS | 1)
        pkt[Ether].dst = "ff:ff:ff:ff:ff:ff"
        self.send(SUBJECT.port, pkt)
        flooded = remarked(pkt, 1)
        self.expect_exactly({PEER.port: [flooded], OTHER.port: [flooded],
                             # Each MD's copy leaves before the flooded packet: its clone was made first.
                             MD_A.port: [pcli_copy(pkt, A, MD_A), flooded],
                             MD_B.port: [pcli_copy(pkt, B, MD_B), flooded]})
