"""IP fragment reassembly on hostile input: overlaps, sets that never complete, too many sets, huge offsets,
mangled copies. Memory stays bounded, every loss is counted, nothing raises (the whole-message cases run
through the SIP and RADIUS handlers: tests/test_sip_transport.py, tests/test_radius_fragments.py)."""

from __future__ import annotations

import random

from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, fragment6

from mediation.ip_reassembly import PART_COST, Reassembly

A, B = "192.0.2.40", "192.0.2.50"
DATA = bytes(range(256)) * 12


def v4_fragments(ident: int = 1, data: bytes = DATA) -> list[bytes]:
    return [bytes(f) for f in fragment(IP(src=A, dst=B, id=ident) / UDP(sport=40000, dport=1813) / data, 1000)]


def raw_fragment(ident: int, offset: int, data: bytes, more: bool) -> bytes:
    """One IPv4 fragment made by hand, as an attacker would (offset in bytes, a multiple of 8)."""
    return bytes(IP(src=A, dst=B, id=ident, proto=17, frag=offset // 8, flags="MF" if more else 0) / data)


def held_cost(r: Reassembly) -> int:
    return sum(len(d) + PART_COST for s in r.sets.values() for d in s.parts.values())


def test_whole_in_any_order_and_nothing_held_after():
    r = Reassembly()
    copies = v4_fragments()
    got = [r.feed(c, 1.0) for c in copies[:0:-1] + copies[1:2] + copies[:1]]   # the last first, one twice
    *pending, whole = got
    assert pending == [None] * len(copies)
    assert (whole.src, whole.protocol, whole.payload[8:], whole.fragments) == (A, 17, DATA, len(copies))
    assert r.sets == {} and r.held_bytes == 0 and not r.given_up
    r.feed(copies[1], 2.0)   # a copy of it later still: a set of its own, that never completes and expires
    r.expire(40.0)
    assert r.sets == {} and r.held_bytes == 0 and r.given_up == {"expired": 1}


def test_an_overlapping_fragment_gives_up_its_set_even_when_the_rest_comes():
    """A second copy of bytes 8..15 saying something else: the target's host drops the set (RFC 5722, Linux
    for IPv4), so the MD must not decode either reading."""
    r = Reassembly()
    assert r.feed(raw_fragment(9, 0, b"A" * 16, more=True), 1.0) is None
    assert r.feed(raw_fragment(9, 8, b"B" * 16, more=True), 1.0) is None
    assert r.given_up == {"overlap": 1} and r.sets == {} and r.held_bytes == 0
    assert r.feed(raw_fragment(9, 24, b"C" * 8, more=False), 1.0) is None, "the rest begins a set that never ends"
    assert r.feed(raw_fragment(9, 0, b"A" * 16, more=True), 1.0) is None
    assert r.feed(raw_fragment(9, 0, b"A" * 16 + b"X" * 8, more=True), 1.0) is None   # same offset, longer
    assert r.given_up == {"overlap": 2}


def test_a_second_end_that_contradicts_the_first_gives_up_the_set():
    r = Reassembly()
    r.feed(raw_fragment(3, 16, b"E" * 8, more=False), 1.0)
    r.feed(raw_fragment(3, 8, b"F" * 24, more=False), 1.0)
    assert r.given_up == {"overlap": 1} and r.sets == {}


def test_sets_that_never_complete_are_bounded_in_number_and_expire():
    r = Reassembly(max_sets=50, ttl=30.0)
    for ident in range(80):
        r.feed(v4_fragments(ident)[0], 1.0)
    assert len(r.sets) == 50 and r.given_up == {"too many sets": 30}
    assert r.held_bytes == held_cost(r) <= 50 * (1000 + PART_COST)
    r.feed(b"\x45junk", 40.0)   # any copy past the TTL: the old sets go first
    assert r.sets == {} and r.held_bytes == 0 and r.given_up == {"too many sets": 30, "expired": 50}
    assert r.feed(v4_fragments(999)[0], 41.0) is None and len(r.sets) == 1, "room again"


def test_the_bytes_held_are_bounded():
    r = Reassembly(max_bytes=20_000)
    for ident in range(100):
        for copy in v4_fragments(ident)[:-1]:
            r.feed(copy, 1.0)
        assert r.held_bytes == held_cost(r) <= 20_000
    assert r.given_up["no room"] > 0 and len(r.sets) < 100


def test_a_huge_offset_gives_up_and_holds_nothing():
    r = Reassembly(max_payload=4104)   # the RADIUS handler's bound: a RADIUS message is at most 4096 octets
    assert r.feed(raw_fragment(5, 0, b"A" * 1000, more=True), 1.0) is None
    assert r.feed(raw_fragment(5, 4200, b"Z" * 8, more=False), 1.0) is None
    assert r.feed(raw_fragment(6, 65528, b"Z" * 1000, more=False), 1.0) is None
    assert r.given_up == {"too large": 2} and r.sets == {} and r.held_bytes == 0


def test_mangled_copies_are_counted_never_raised():
    """Every fragment of three messages with random bytes flipped or cut short, fed in random order."""
    rng = random.Random(15)
    copies = [c for ident in range(3) for c in v4_fragments(ident)]
    copies += [bytes(f) for f in fragment6(IPv6(src="2001:db8::40", dst="2001:db8::50") / IPv6ExtHdrFragment(id=4)
                                           / UDP(sport=1, dport=1813) / DATA, 1280)]
    r = Reassembly(max_sets=20, max_bytes=50_000)
    for _ in range(3000):
        copy = bytearray(rng.choice(copies))
        for _ in range(rng.randint(0, 4)):
            copy[rng.randrange(len(copy))] = rng.randrange(256)
        copy = bytes(copy[:rng.randint(0, len(copy))] if rng.random() < 0.2 else copy)
        r.feed(copy, rng.uniform(0, 100))
        assert len(r.sets) <= 20 and r.held_bytes == held_cost(r) <= 50_000
    assert r.not_ip > 0 and sum(r.given_up.values()) > 0


def test_ipv6_extension_headers_after_the_fragment_header_and_an_atomic_fragment():
    r = Reassembly()
    packet = (IPv6(src="2001:db8::40", dst="2001:db8::50") / IPv6ExtHdrFragment(id=8) / IPv6ExtHdrDestOpt()
              / UDP(sport=40000, dport=1813) / DATA)
    got = [r.feed(bytes(f), 1.0) for f in fragment6(packet, 1280)]
    whole = got[-1]
    assert (whole.protocol, whole.payload[8:]) == (17, DATA)
    atomic = IPv6(src="2001:db8::40", dst="2001:db8::50") / IPv6ExtHdrFragment(id=9) / UDP(dport=1813) / b"hi"
    one = r.feed(bytes(atomic), 1.0)
    assert (one.protocol, one.payload[8:]) == (17, b"hi") and r.sets == {}
