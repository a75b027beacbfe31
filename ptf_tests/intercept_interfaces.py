"""Interface filters (citapStreamInterface: "the interface over which traffic
to be intercepted is received or transmitted", CISCO-IP-TAP-MIB) select what
the interface receives and what the switch sends out of it: bridged, routed
and flooded, IPv4 and IPv6. A packet that arrives on the interface and
leaves by it again is still one copy per mediation.
"""

from __future__ import annotations

from scapy.layers.l2 import Ether

from controller.model import Stream
from ptf_tests.base import (MD_A, MD_B, OTHER, PEER, ROUTER_MAC, SUBJECT, P4tapTest, ip_filter, mediation, pcli_copy,
                            routed, tcp4, tcp6, udp4, udp6)

C = 701


def on_subject_port(version: int, **kw) -> Stream:
    return Stream(C, 1, ip_filter(version, interface=SUBJECT.port, **kw), True)


class ReceivedAndTransmitted(P4tapTest):
    def runTest(self) -> None:
        for version, tcp, udp in ((4, tcp4, udp4), (6, tcp6, udp6)):
            self.provision([mediation(C, MD_A)], [on_subject_port(version)])
            # Received on the subject's port.
            out = tcp(SUBJECT, PEER)
            self.send(SUBJECT.port, out)
            self.expect_exactly({PEER.port: [bytes(out)], MD_A.port: [pcli_copy(out, C, MD_A)]})
            # Transmitted on it: bridged from another port.
            back = udp(PEER, SUBJECT)
            self.send(PEER.port, back)
            self.expect_exactly({SUBJECT.port: [bytes(back)], MD_A.port: [pcli_copy(back, C, MD_A)]})
            # Neither received nor transmitted on it.
            other = udp(PEER, OTHER)
            self.send(PEER.port, other)
            self.expect_exactly({OTHER.port: [bytes(other)]})


class RoutedOutOfTheInterface(P4tapTest):
    def runTest(self) -> None:
        for version, udp in ((4, udp4), (6, udp6)):
            self.provision([mediation(C, MD_A)], [on_subject_port(version, protocol=17)])
            pkt = udp(PEER, SUBJECT)
            pkt[Ether].dst = ROUTER_MAC
            self.send(PEER.port, pkt)
            self.expect_exactly({SUBJECT.port: [routed(pkt, SUBJECT)], MD_A.port: [pcli_copy(pkt, C, MD_A)]})
            # Routed elsewhere: not transmitted on the interface.
            away = udp(PEER, OTHER)
            away[Ether].dst = ROUTER_MAC
            self.send(PEER.port, away)
            self.expect_exactly({OTHER.port: [routed(away, OTHER)]})


class HairpinIsOneCopy(P4tapTest):
    """In on the interface and out on it again: one copy per MD, for one
    mediation and for two with filters on the same interface."""

    def runTest(self) -> None:
        self.provision([mediation(C, MD_A), mediation(C + 1, MD_B)],
                       [on_subject_port(4), Stream(C + 1, 1, ip_filter(4, interface=SUBJECT.port, protocol=6), True)])
        pkt = tcp4(SUBJECT, SUBJECT)  # to its own MAC: bridged back out of port 1
        self.send(SUBJECT.port, pkt)
        self.expect_exactly({SUBJECT.port: [bytes(pkt)], MD_A.port: [pcli_copy(pkt, C, MD_A)],
                             MD_B.port: [pcli_copy(pkt, C + 1, MD_B)]})


class FloodedOutOfTheInterface(P4tapTest):
    """A flooded packet is transmitted on every port of the flood group but
    the one it came in on: an interface filter on any of them selects it."""

    def runTest(self) -> None:
        self.provision([mediation(C, MD_A)], [on_subject_port(4)])
        for sender in (PEER, SUBJECT):
            pkt = udp4(sender, PEER)
            pkt[Ether].dst = "ff:ff:ff:ff:ff:ff"
            self.send(sender.port, pkt)
            others = [h for h in (SUBJECT, PEER, OTHER, MD_B) if h.port != sender.port]
            expected = {h.port: [bytes(pkt)] for h in others}
            # The copy's clone is made before the flood's replicas.
            expected[MD_A.port] = [pcli_copy(pkt, C, MD_A), bytes(pkt)]
            self.expect_exactly(expected)


class AddressAndInterfaceTogether(P4tapTest):
    """An interface filter with an address: both must hold. The peer's
    traffic to the subject leaves by the subject's port; the peer's traffic
    to OTHER does not, although it comes from the same address."""

    def runTest(self) -> None:
        self.provision([mediation(C, MD_A)], [on_subject_port(4, src=PEER.ipv4)])
        to_subject, to_other = udp4(PEER, SUBJECT), udp4(PEER, OTHER)
        self.send(PEER.port, to_subject)
        self.expect_exactly({SUBJECT.port: [bytes(to_subject)], MD_A.port: [pcli_copy(to_subject, C, MD_A)]})
        self.send(PEER.port, to_other)
        self.expect_exactly({OTHER.port: [bytes(to_other)]})
