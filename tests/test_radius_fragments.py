"""RADIUS in IP fragments through the real RadiusHandler, DerivedTaps and a recording keeper: a large
Access-Accept (EAP) or Accounting-Request (many Class attributes), encoded by pyrad, cut by scapy's
fragment() / fragment6() as a NAS or server on a small MTU does, copied one fragment at a time.
On the old handler each fragment was decoded alone: the target's address was never tapped."""

from __future__ import annotations

import io
import random

import pytest
from pyrad.dictionary import Dictionary
from pyrad.packet import AcctPacket, AuthPacket
from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6

from mediation import ip_reassembly
from mediation.radius_iri import DICTIONARY, IdentityTarget
from tests.test_radius_handler import both_ways, keeper_handler

NAS4, SERVER4 = "192.0.2.40", "192.0.2.50"
NAS6, SERVER6 = "2001:db8::40", "2001:db8::50"
SECRET = b"s3cret"


def _dictionary() -> Dictionary:
    """The MD's dictionary and the bulky attributes a real server adds (the MD decodes them as unknown)."""
    extra = "ATTRIBUTE\tClass\t\t25\toctets\nATTRIBUTE\tEAP-Message\t\t79\toctets\n"
    return Dictionary(io.StringIO(DICTIONARY.read_text() + extra))


def access_accept(user: str, **address: str) -> bytes:
    """An Access-Accept ending an EAP-TLS exchange: about 3 kB, more than one frame of 1500 (or 1280)."""
    request = AuthPacket(dict=_dictionary(), secret=SECRET, User_Name=user)
    request.RequestPacket()
    reply = request.CreateReply()
    reply.code = 2
    reply["User-Name"] = user
    for key, value in address.items():
        reply[key.replace("_", "-")] = value
    reply["EAP-Message"] = [bytes([n]) * 250 for n in range(12)]
    return reply.ReplyPacket()


def accounting_start(user: str, session: str, **address: str) -> bytes:
    """An Accounting-Request Start carrying the Class attributes of its Access-Accept: about 3 kB."""
    start = AcctPacket(dict=_dictionary(), secret=SECRET)
    start["User-Name"], start["Acct-Status-Type"], start["Acct-Session-Id"] = user, "Start", session
    for key, value in address.items():
        start[key.replace("_", "-")] = value
    start["Class"] = [bytes([n]) * 250 for n in range(12)]
    return start.RequestPacket()


def fragments(radius: bytes, version: int, to_server: bool, ident: int = 7) -> list[bytes]:
    """The message as the signalling tap copies it: in IP fragments, each copied alone."""
    assert len(radius) > 2800
    ports = dict(sport=40000, dport=1813) if to_server else dict(sport=1812, dport=40000)
    if version == 4:
        src, dst = (NAS4, SERVER4) if to_server else (SERVER4, NAS4)
        out = [bytes(f) for f in fragment(IP(src=src, dst=dst, id=ident) / UDP(**ports) / radius, 1480)]
        assert all(UDP not in IP(f) for f in out[1:]), "no UDP header after the first fragment"
    else:
        src, dst = (NAS6, SERVER6) if to_server else (SERVER6, NAS6)
        out = [bytes(f) for f in fragment6(IPv6(src=src, dst=dst) / IPv6ExtHdrFragment(id=ident) / UDP(**ports)
                                           / radius, 1280)]
    assert len(out) >= 3
    return out


ALICE_AT = {4: dict(Framed_IP_Address="192.0.2.10"), 6: dict(Framed_IPv6_Prefix="2001:db8:7::/64")}
TAPPED = {4: "192.0.2.10/32", 6: "2001:db8:7::/64"}


@pytest.mark.parametrize("version", [4, 6])
def test_a_fragmented_access_accept_taps_the_target(version):
    radius, keeper, records = keeper_handler([IdentityTarget(4242, radius_username="alice")])
    for n, copy in enumerate(fragments(access_accept("alice", **ALICE_AT[version]), version, to_server=False)):
        radius.handle(1.0 + n / 1000, copy)
    assert keeper.held == {4242: both_ways(TAPPED[version])}
    assert [(r.kind, r.addresses, r.peer) for r in records] == [
        ("access-accept", (TAPPED[version],), SERVER4 if version == 4 else SERVER6)]
    summary = radius.summary()
    assert (summary["messages"], summary["not_radius"], summary["reassembled"], summary["fragment_sets_held"]) == \
        (1, 0, 1, 0)


@pytest.mark.parametrize("version", [4, 6])
def test_a_fragmented_accounting_start_out_of_order_taps_the_target(version):
    radius, keeper, records = keeper_handler([IdentityTarget(4242, radius_username="alice")])
    copies = fragments(accounting_start("alice", "s1", **ALICE_AT[version]), version, to_server=True)
    random.Random(version).shuffle(copies)
    copies.insert(1, copies[0])   # and one copied twice: an exact duplicate is ignored
    for copy in copies:
        radius.handle(1.0, copy)
    assert keeper.held == {4242: both_ways(TAPPED[version])}
    assert [(r.kind, r.session, r.addresses) for r in records] == [("session-start", "s1", (TAPPED[version],))]


def test_a_fragmented_message_of_a_non_target_is_made_whole_then_dropped():
    radius, keeper, records = keeper_handler([IdentityTarget(4242, radius_username="alice")])
    for copy in fragments(accounting_start("bob", "b1", Framed_IP_Address="192.0.2.30"), 4, to_server=True):
        radius.handle(1.0, copy)
    summary = radius.summary()
    assert keeper.held == {} and records == []
    assert (summary["messages"], summary["discarded_non_target"], summary["fragment_sets_held"]) == (1, 1, 0), \
        "decoded, found no target's, dropped: nothing of it held"


@pytest.mark.parametrize("version", [4, 6])
def test_a_set_missing_a_fragment_decodes_nothing_and_is_given_up_after_its_ttl(version):
    radius, keeper, records = keeper_handler([IdentityTarget(4242, radius_username="alice")])
    *copies, late = fragments(access_accept("alice", **ALICE_AT[version]), version, to_server=False)
    for copy in copies:
        radius.handle(1.0, copy)
    assert keeper.held == {} and records == [] and radius.summary()["fragment_sets_held"] == 1
    # past the TTL the set is given up (counted): the missing fragment coming late completes nothing
    radius.handle(1.0 + ip_reassembly.FRAGMENT_TTL + 1, late)
    summary = radius.summary()
    assert keeper.held == {} and records == []
    assert (summary["fragment_sets_given_up"], summary["fragment_sets_held"], summary["messages"]) == (1, 1, 0)


def test_the_servers_other_udp_in_fragments_is_made_whole_counted_and_dropped():
    """The tap takes the server's UDP on any port now: a large datagram of something else (syslog here)
    is made whole, found not RADIUS, counted; one larger than any RADIUS message is given up unread;
    nothing of either held, asked or emitted."""
    radius, keeper, records = keeper_handler([IdentityTarget(4242, radius_username="alice")])
    for ident, lines in ((3, 150), (4, 200)):   # 3.3 kB, then 4.4 kB: more than RADIUS's 4096 octets
        syslog = IP(src=SERVER4, dst="192.0.2.60", id=ident) / UDP(sport=40001, dport=514) / (
            b"<134>alice 192.0.2.10 " * lines)
        for copy in fragment(syslog, 1480):
            radius.handle(1.0, bytes(copy))
    summary = radius.summary()
    assert keeper.held == {} and keeper.asked == [] and records == []
    assert (summary["not_radius"], summary["messages"], summary["reassembled"], summary["fragment_sets_given_up"],
            summary["fragment_sets_held"]) == (1, 0, 1, 1, 0)
