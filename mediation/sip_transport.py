"""SIP messages out of copied IP packets: IP reassembly, TCP streams (issue 15).

Why its own module: the signalling tap copies IP packets, not SIP messages.
A SIP INVITE with a rich SDP is often larger than the path MTU and travels
as IP fragments over UDP; over TCP one message may span segments and one
segment may carry several messages, segments may repeat (retransmissions)
or come out of order. `SignallingStreams.feed` takes one copied IP packet
and returns the whole SIP payloads it completes, with their 5-tuple.

Headers are read by scapy (IPv4, IPv6 and its fragment header, UDP, TCP);
what scapy has no incremental form of is written here: fragment sets kept
until complete (scapy's defragment wants the whole list at once) and the
TCP byte stream per direction, cut into messages by sip_parse.split_stream.
Every buffer is bounded and expires, so junk or a flood costs bounded
memory, and what is dropped is counted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment

from mediation.sip_parse import MAX_MESSAGE, SipError, resync, split_stream

FRAGMENT_TTL = 30.0     # seconds a fragment set may stay incomplete (Linux ipfrag_time)
STREAM_TTL = 3600.0     # seconds a TCP flow may stay idle before its state is dropped
MAX_FRAGMENT_SETS = 1024
MAX_STREAMS = 4096
MAX_PENDING = 64        # out-of-order TCP segments kept per flow
_HALF = 1 << 31


@dataclass(frozen=True)
class SipPayload:
    """One whole SIP message and the flow it came on."""

    transport: str      # "udp" or "tcp"
    src: str
    sport: int
    dst: str
    dport: int
    data: bytes
    time: float


@dataclass
class _Fragments:
    first_seen: float
    parts: dict[int, bytes] = field(default_factory=dict)   # byte offset -> data
    total: int | None = None                                # known once the last fragment came
    next_header: int | None = None

    def complete(self) -> bytes | None:
        if self.total is None:
            return None
        out, at = bytearray(), 0
        for offset in sorted(self.parts):
            if offset > at:
                return None
            out += self.parts[offset][at - offset:]
            at = max(at, offset + len(self.parts[offset]))
        return bytes(out[:self.total]) if at >= self.total else None


@dataclass
class _Stream:
    last_seen: float
    next_seq: int | None = None
    buffer: bytes = b""
    pending: dict[int, bytes] = field(default_factory=dict)


def _after(a: int, b: int) -> int:
    """How far sequence number a is past b, modulo 2**32 (negative: before)."""
    d = (a - b) & 0xFFFFFFFF
    return d - (1 << 32) if d >= _HALF else d


@dataclass
class SignallingStreams:
    """Reassembly state of all the signalling flows the MD is copied."""

    fragments: dict[tuple, _Fragments] = field(default_factory=dict)
    streams: dict[tuple, _Stream] = field(default_factory=dict)
    dropped: int = 0    # packets, fragment sets or streams given up (junk, overflow, expiry)

    def feed(self, packet: bytes, now: float) -> list[SipPayload]:
        """The SIP payloads one copied IP packet (from its first header byte) completes."""
        if not packet:
            return []
        version = packet[0] >> 4
        try:
            if version == 4:
                return self._ipv4(packet, now)
            if version == 6:
                return self._ipv6(packet, now)
        except Exception:  # scapy raises struct.error, IndexError, ...: a truncated copy is junk, counted
            pass
        self.dropped += 1
        return []

    def expire(self, now: float) -> None:
        """Forget fragment sets and idle streams past their time."""
        for key in [k for k, f in self.fragments.items() if now - f.first_seen > FRAGMENT_TTL]:
            del self.fragments[key]
            self.dropped += 1
        for key in [k for k, s in self.streams.items() if now - s.last_seen > STREAM_TTL]:
            del self.streams[key]

    def _ipv4(self, packet: bytes, now: float) -> list[SipPayload]:
        ip = IP(packet)
        body = packet[ip.ihl * 4:ip.len]
        if ip.flags.MF or ip.frag:
            whole = self._defragment(("4", ip.src, ip.dst, ip.id, ip.proto), ip.frag * 8, bool(ip.flags.MF),
                                     body, ip.proto, now)
            if whole is None:
                return []
            body = whole[0]
        return self._transport(ip.proto, ip.src, ip.dst, body, now)

    def _ipv6(self, packet: bytes, now: float) -> list[SipPayload]:
        ip = IPv6(packet)
        frag = ip.getlayer(IPv6ExtHdrFragment)
        if frag is None:
            upper = ip.payload
            while upper.name.startswith("IPv6 Extension"):   # hop-by-hop, routing, destination options
                upper = upper.payload
            proto = {UDP: 17, TCP: 6}.get(type(upper))
            if proto is None:
                return []
            return self._transport(proto, ip.src, ip.dst, bytes(upper), now)
        whole = self._defragment(("6", ip.src, ip.dst, frag.id), frag.offset * 8, bool(frag.m),
                                 bytes(frag.payload), frag.nh, now)
        if whole is None:
            return []
        return self._transport(whole[1], ip.src, ip.dst, whole[0], now)

    def _defragment(self, key: tuple, offset: int, more: bool, data: bytes, next_header: int,
                    now: float) -> tuple[bytes, int] | None:
        """The whole datagram and its protocol once every fragment of key came."""
        held = self.fragments.get(key)
        if held is None:
            if len(self.fragments) >= MAX_FRAGMENT_SETS:
                self.dropped += 1
                return None
            held = self.fragments[key] = _Fragments(now)
        if offset == 0:
            held.next_header = next_header
        held.parts[offset] = data
        if not more:
            held.total = offset + len(data)
        if held.total is not None and held.total > MAX_MESSAGE + 8:
            del self.fragments[key]
            raise SipError("reassembled datagram too large")
        whole = held.complete()
        if whole is None or held.next_header is None:
            return None
        del self.fragments[key]
        return whole, held.next_header

    def _transport(self, proto: int, src: str, dst: str, body: bytes, now: float) -> list[SipPayload]:
        if proto == 17:
            udp = UDP(body)
            data = body[8:udp.len] if udp.len and udp.len >= 8 else body[8:]
            if not data.strip(b"\r\n\x00"):
                return []   # keep-alive
            return [SipPayload("udp", src, udp.sport, dst, udp.dport, data, now)]
        if proto == 6:
            return self._tcp(TCP(body), src, dst, body, now)
        return []

    def _tcp(self, seg: TCP, src: str, dst: str, body: bytes, now: float) -> list[SipPayload]:
        key = (src, seg.sport, dst, seg.dport)
        data = body[seg.dataofs * 4:]
        flags = seg.flags
        stream = self.streams.get(key)
        if flags.R:
            self.streams.pop(key, None)
            return []
        if stream is None:
            if len(self.streams) >= MAX_STREAMS:
                self.dropped += 1
                return []
            stream = self.streams[key] = _Stream(now)
        stream.last_seen = now
        seq = seg.seq
        if flags.S:
            stream.next_seq, stream.buffer, stream.pending = (seq + 1) & 0xFFFFFFFF, b"", {}
            seq = (seq + 1) & 0xFFFFFFFF
        if data:
            if stream.next_seq is None:
                stream.next_seq = seq   # joined mid-stream: resync finds the next message
            self._accept(stream, seq, data)
        messages: list[bytes] = []
        while True:
            try:
                found, stream.buffer = split_stream(stream.buffer)
            except SipError:   # joined mid-message, or one that cannot be framed: on to the next start line
                self.dropped += 1
                stream.buffer = resync(stream.buffer)
                continue
            messages += found
            break
        if flags.F:
            self.streams.pop(key, None)
        return [SipPayload("tcp", src, seg.sport, dst, seg.dport, m, now) for m in messages]

    def _accept(self, stream: _Stream, seq: int, data: bytes) -> None:
        ahead = _after(seq, stream.next_seq)
        if ahead > 0:
            if len(stream.pending) < MAX_PENDING:
                stream.pending[seq] = data
            return
        fresh = data[-ahead:] if ahead < 0 else data
        if ahead < 0 and -ahead >= len(data):
            return   # a retransmission of what we have
        stream.buffer += fresh
        stream.next_seq = (stream.next_seq + len(fresh)) & 0xFFFFFFFF
        while stream.pending:
            due = [s for s in stream.pending if _after(s, stream.next_seq) <= 0]
            if not due:
                break
            for s in due:
                self._accept(stream, s, stream.pending.pop(s))
