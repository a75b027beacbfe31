"""SIP out of copied IP packets: UDP, IPv4/IPv6 fragments, TCP streams."""
import random

import pytest

pytest.importorskip("sipmessage")
from scapy.layers.inet import IP, TCP, UDP, fragment  # noqa: E402
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6  # noqa: E402

from mediation import ip_reassembly  # noqa: E402
from mediation.sip_transport import SignallingStreams  # noqa: E402
from tests.sip_support import sdp, sipp_call, variant  # noqa: E402

A, B = "192.0.2.10", "198.51.100.20"


def _big_invite() -> bytes:
    """sipp's INVITE with an SDP too big for one 1500-byte frame (many codecs, ICE candidates)."""
    extra = "".join(f"a=candidate:{i} 1 UDP 2130706431 192.0.2.10 {7000 + i} typ host\r\n" for i in range(60))
    return variant(sipp_call()[0], body=sdp(A, 6000, extra))


def test_udp_datagram_is_one_message():
    s = SignallingStreams()
    invite = sipp_call()[0]
    (got,) = s.feed(bytes(IP(src=A, dst=B) / UDP(sport=5060, dport=5060) / invite), 1.0)
    assert (got.transport, got.src, got.sport, got.dst, got.dport, got.data) == ("udp", A, 5060, B, 5060, invite)


def test_ipv4_fragments_in_any_order_with_duplicates():
    invite = _big_invite()
    assert len(invite) > 3000
    frags = [bytes(f) for f in fragment(IP(src=A, dst=B, id=77) / UDP(sport=5060, dport=5060) / invite, 1400)]
    assert len(frags) >= 3
    s = SignallingStreams()
    order = [frags[-1], frags[1], frags[1]] + frags[2:-1] + [frags[0]]   # last first, a duplicate, first last
    results = [s.feed(f, 1.0) for f in order]
    assert results[:-1] == [[]] * (len(order) - 1)                       # nothing until the set is whole
    assert [p.data for p in results[-1]] == [invite] and not s.reassembly.sets


def test_ipv6_fragments_reassembled():
    invite = _big_invite()
    pkt = IPv6(src="2001:db8::a", dst="2001:db8::b") / IPv6ExtHdrFragment(id=5) / UDP(sport=5060, dport=5060) / invite
    frags = [bytes(f) for f in fragment6(pkt, 1280)]
    assert len(frags) >= 3
    random.Random(1).shuffle(frags)
    s = SignallingStreams()
    got = [p for f in frags for p in s.feed(f, 1.0)]
    assert [(p.src, p.data) for p in got] == [("2001:db8::a", invite)]


def test_incomplete_fragments_expire():
    frags = [bytes(f) for f in fragment(IP(src=A, dst=B, id=9) / UDP(sport=5060, dport=5060) / _big_invite(), 1400)]
    s = SignallingStreams()
    assert s.feed(frags[0], 1.0) == [] and len(s.reassembly.sets) == 1
    s.expire(1.0 + ip_reassembly.FRAGMENT_TTL + 1)
    assert not s.reassembly.sets and s.dropped == 1


def _segments(stream: bytes, isn: int, size: int) -> list[bytes]:
    syn = bytes(IP(src=A, dst=B) / TCP(sport=40000, dport=5060, flags="S", seq=isn))
    out = [syn]
    for at in range(0, len(stream), size):
        seq = (isn + 1 + at) & 0xFFFFFFFF
        out.append(bytes(IP(src=A, dst=B) / TCP(sport=40000, dport=5060, flags="PA", seq=seq) / stream[at:at + size]))
    return out


@pytest.mark.parametrize("isn", [1000, 0xFFFFFF00])   # the second wraps the sequence space mid-stream
def test_tcp_segmented_reordered_retransmitted(isn):
    messages = sipp_call("tcp")
    stream = b"".join(messages[i] for i in (0, 3, 4))       # the caller's side: INVITE, ACK, BYE
    segs = _segments(stream, isn, 97)
    shuffled = [segs[0]] + segs[1:][::-1] + segs[3:6]       # all out of order, then some again
    s = SignallingStreams()
    got = [p.data for seg in shuffled for p in s.feed(seg, 1.0)]
    assert got == [messages[0], messages[3], messages[4]]


def test_tcp_several_messages_in_one_segment_and_keepalives():
    messages = sipp_call("tcp")
    s = SignallingStreams()
    segs = _segments(b"\r\n\r\n" + messages[0] + b"\r\n\r\n" + messages[3], 5, 10000)
    assert [p.data for seg in segs for p in s.feed(seg, 1.0)] == [messages[0], messages[3]]


def test_junk_counted_never_raised():
    s = SignallingStreams()
    for junk in (b"", b"\x45", b"\x60\x00", b"\xff" * 40,
                 bytes(IP(src=A, dst=B) / TCP(sport=1, dport=5060, flags="PA", seq=1) / b"NOT SIP AT ALL\r\n\r\n")):
        assert s.feed(junk, 1.0) == []
    assert s.dropped >= 3


def test_ipv6_udp_and_tcp_unfragmented():
    invite = sipp_call()[0]
    s = SignallingStreams()
    (got,) = s.feed(bytes(IPv6(src="2001:db8::a", dst="2001:db8::b") / UDP(sport=5060, dport=5070) / invite), 1.0)
    assert (got.src, got.dport, got.data) == ("2001:db8::a", 5070, invite)
    seg = IPv6(src="2001:db8::a", dst="2001:db8::b") / TCP(sport=40000, dport=5060, flags="PA", seq=7) / invite
    assert [p.data for p in s.feed(bytes(seg), 1.0)] == [invite]


def test_tcp_tap_joined_mid_message_resynchronises_on_the_next():
    """The signalling tap came while the INVITE was on its way: its tail is
    skipped, the ACK and BYE after it are read, junk between them too."""
    messages = sipp_call("tcp")
    invite, ack, bye = messages[0], messages[3], messages[4]
    stream = invite[200:] + ack + b"GARBAGE LINE\r\nmore\r\n\r\n" + bye
    s = SignallingStreams()
    got = []
    for at in range(0, len(stream), 50):
        seg = IP(src=A, dst=B) / TCP(sport=40000, dport=5060, flags="PA", seq=1000 + at) / stream[at:at + 50]
        got += [p.data for p in s.feed(bytes(seg), 1.0)]
    assert got == [ack, bye] and s.dropped >= 2
