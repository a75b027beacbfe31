"""Whole IP datagrams out of copied IP packets: IPv4 and IPv6 fragment
reassembly for the IRI function's signalling handlers (issue 15).

Why its own module: a signalling tap copies IP packets, and a large
signalling message travels as IP fragments, of which only the first carries
the UDP header: a SIP INVITE with a rich SDP, an EAP Access-Accept or an
Accounting-Request with many attributes over an IPv6 link of the minimum
MTU (1280). The SIP transport (mediation/sip_transport.py) and the RADIUS
handler (mediation/radius_handler.py) both need the whole datagram; one
reassembler serves both. `Reassembly.feed` takes one copied packet and
answers the datagram it is or completes, or None.

Headers are read by scapy; what scapy has no incremental form of is written
here (its defragment wants the whole list at once, the copies come one by
one): fragment sets are kept until whole. The copies are of anyone's
traffic, so hostile input is expected and costs bounded memory, each loss
counted and none raised:

- a fragment overlapping another (an exact duplicate is only ignored) gives
  up its whole set, as RFC 5722 requires for IPv6 and Linux does for IPv4:
  the receiving host discards it too, so the MD never decodes a message
  whose overlap the endpoint would have read otherwise (an evasion trick);
- a set that never completes is given up after `ttl` (Linux's ipfrag_time);
- a fragment past `max_payload` (a huge offset) gives up its set;
- more than `max_sets` sets, or more than `max_bytes` held, and a new
  fragment is refused and its set given up (Linux's ipfrag_high_thresh).

What is held stays in memory only, never written: a non-target's fragments
are forgotten when whole (the handler then drops the message) or at `ttl`.
"""
from __future__ import annotations

from bisect import bisect
from collections import Counter
from dataclasses import dataclass, field

from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment

FRAGMENT_TTL = 30.0     # seconds a fragment set may stay incomplete (Linux ipfrag_time)
MAX_SETS = 1024         # fragment sets held at once
MAX_BYTES = 4 << 20     # bytes held at once, PART_COST per fragment included (Linux ipfrag_high_thresh)
MAX_PAYLOAD = 65535     # the largest datagram's payload after its IP header
PART_COST = 64          # what one held fragment costs beyond its data (bookkeeping), counted in max_bytes


@dataclass(frozen=True)
class Datagram:
    """One whole IP datagram: its addresses, the upper layer's protocol and bytes."""

    src: str
    dst: str
    protocol: int       # the IP protocol number of the upper layer (17 UDP, 6 TCP)
    payload: bytes      # from the upper layer's first header byte
    fragments: int = 1  # how many fragments it came in (1: whole)


@dataclass
class _FragmentSet:
    first_seen: float
    starts: list[int] = field(default_factory=list)        # byte offsets held, sorted
    parts: dict[int, bytes] = field(default_factory=dict)  # byte offset -> data
    have: int = 0                # bytes held (no overlaps: the sum of the parts)
    total: int | None = None     # known once the last fragment came
    protocol: int | None = None  # from the fragment at offset 0

    def add(self, offset: int, data: bytes, more: bool, protocol: int) -> bool:
        """Hold one fragment; False if it overlaps one held or contradicts the set's end (give the set up)."""
        end = offset + len(data)
        if self.parts.get(offset) == data and (more or self.total == end):
            return True     # an exact duplicate (a retransmission, or the tap seeing it twice)
        if (not more and (self.total not in (None, end) or (self.starts and self._end() > end))) \
                or (self.total is not None and end > self.total):
            return False
        i = bisect(self.starts, offset)
        if (i and self.starts[i - 1] + len(self.parts[self.starts[i - 1]]) > offset) \
                or (i < len(self.starts) and end > self.starts[i]) or offset in self.parts:
            return False
        self.starts.insert(i, offset)
        self.parts[offset] = data
        self.have += len(data)
        if not more:
            self.total = end
        if offset == 0:
            self.protocol = protocol
        return True

    def _end(self) -> int:
        last = self.starts[-1]
        return last + len(self.parts[last])

    def whole(self) -> bytes | None:
        if self.total is None or self.have != self.total or self.protocol is None:
            return None
        return b"".join(self.parts[s] for s in self.starts)


@dataclass
class Reassembly:
    """The fragment sets of all the copies one handler is fed, bounded and expiring."""

    ttl: float = FRAGMENT_TTL
    max_sets: int = MAX_SETS
    max_bytes: int = MAX_BYTES
    max_payload: int = MAX_PAYLOAD
    sets: dict[tuple, _FragmentSet] = field(default_factory=dict)  # in arrival order: the oldest first
    held_bytes: int = 0
    not_ip: int = 0     # copies that are no readable IP packet (truncated, bad header, a bad fragment)
    reassembled: int = 0  # datagrams made whole from fragments
    given_up: Counter = field(default_factory=Counter)   # fragment sets given up, by why

    def feed(self, packet: bytes, now: float) -> Datagram | None:
        """The datagram this copied IP packet (from its first header byte) is or completes; None if it is
        a fragment of an incomplete set, or junk (counted)."""
        self.expire(now)
        try:
            version = packet[0] >> 4 if packet else 0
            if version == 4:
                return self._ipv4(packet, now)
            if version == 6:
                return self._ipv6(packet, now)
        except Exception:  # scapy raises struct.error, IndexError, ...: a truncated copy is junk, counted
            pass
        self.not_ip += 1
        return None

    def expire(self, now: float) -> None:
        """Give up the sets older than ttl (the oldest are first: stop at the first young one)."""
        while self.sets:
            key, held = next(iter(self.sets.items()))
            if now - held.first_seen <= self.ttl:
                break
            self._give_up(key, "expired")

    def summary(self) -> dict[str, object]:
        return {"fragment_sets": len(self.sets), "fragment_bytes": self.held_bytes, "not_ip": self.not_ip,
                "reassembled": self.reassembled, "fragment_sets_given_up": dict(self.given_up)}

    def _ipv4(self, packet: bytes, now: float) -> Datagram | None:
        ip = IP(packet)
        if ip.ihl < 5 or not ip.ihl * 4 <= ip.len <= len(packet):
            raise ValueError("bad IPv4 header or a truncated copy")
        body = packet[ip.ihl * 4:ip.len]
        if not (ip.flags.MF or ip.frag):
            return Datagram(ip.src, ip.dst, ip.proto, body)
        found = self._fragment(("4", ip.src, ip.dst, ip.id, ip.proto), ip.frag * 8, bool(ip.flags.MF), body,
                               ip.proto, now)
        return None if found is None else Datagram(ip.src, ip.dst, ip.proto, found[0], found[2])

    def _ipv6(self, packet: bytes, now: float) -> Datagram | None:
        ip = IPv6(packet)
        if not 0 < ip.plen <= len(packet) - 40:
            raise ValueError("a jumbogram or a truncated copy")
        frag = ip.getlayer(IPv6ExtHdrFragment)
        if frag is None:
            return _upper_layer(ip)
        if frag.offset == 0 and not frag.m:   # an atomic fragment (RFC 6946): a datagram of its own
            return _upper_layer(_ipv6_of(ip, frag.nh, bytes(frag.payload)))
        found = self._fragment(("6", ip.src, ip.dst, frag.id), frag.offset * 8, bool(frag.m), bytes(frag.payload),
                               frag.nh, now)
        if found is None:
            return None
        # what followed the fragment header may begin with extension headers of its own
        whole = _upper_layer(_ipv6_of(ip, found[1], found[0]))
        return Datagram(whole.src, whole.dst, whole.protocol, whole.payload, found[2])

    def _fragment(self, key: tuple, offset: int, more: bool, data: bytes, protocol: int,
                  now: float) -> tuple[bytes, int, int] | None:
        """(the whole payload, its protocol, how many fragments) once the set of key is complete."""
        if more and (not data or len(data) % 8):
            raise ValueError("a fragment but the last of a length not a multiple of 8")
        held = self.sets.get(key)
        if offset + len(data) > self.max_payload:
            return self._give_up(key, "too large")
        if held is None:
            if len(self.sets) >= self.max_sets:
                return self._give_up(key, "too many sets")
            held = self.sets[key] = _FragmentSet(now)
        if self.held_bytes + len(data) + PART_COST > self.max_bytes:
            return self._give_up(key, "no room")
        before = self._cost(held)
        if not held.add(offset, data, more, protocol):
            return self._give_up(key, "overlap")
        self.held_bytes += self._cost(held) - before
        whole = held.whole()
        if whole is None:
            return None
        self._forget(key)
        self.reassembled += 1
        return whole, held.protocol, len(held.starts)

    def _give_up(self, key: tuple, why: str) -> None:
        """Forget key's set if held; count the loss (a set, or the fragment that would have begun one)."""
        if key in self.sets:
            self._forget(key)
        self.given_up[why] += 1
        return None

    def _forget(self, key: tuple) -> None:
        self.held_bytes -= self._cost(self.sets.pop(key))

    @staticmethod
    def _cost(held: _FragmentSet) -> int:
        return held.have + PART_COST * len(held.starts)


def _upper_layer(ip: IPv6) -> Datagram:
    """The upper layer past any extension headers (hop-by-hop, routing, destination options)."""
    layer = ip
    while layer.payload.name.startswith("IPv6 Extension"):
        layer = layer.payload
    return Datagram(ip.src, ip.dst, layer.nh, bytes(layer.payload))


def _ipv6_of(ip: IPv6, next_header: int, body: bytes) -> IPv6:
    """An unfragmented IPv6 packet of ip's addresses carrying body, to read its headers as any other."""
    return IPv6(bytes(IPv6(src=ip.src, dst=ip.dst, nh=next_header, plen=len(body))) + body)
