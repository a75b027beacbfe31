"""SIP messages out of copied IP packets: UDP datagrams, TCP streams (issue 15).

Why its own module: the signalling tap copies IP packets, not SIP messages.
A SIP INVITE with a rich SDP is often larger than the path MTU and travels
as IP fragments over UDP (mediation/ip_reassembly.py makes the datagram
whole, as it does for RADIUS); over TCP one message may span segments and
one segment may carry several messages, segments may repeat
(retransmissions) or come out of order. `SignallingStreams.feed` takes one
copied IP packet and returns the whole SIP payloads it completes, with
their 5-tuple.

UDP and TCP headers are read by scapy; what scapy has no incremental form
of is written here: the TCP byte stream per direction, cut into messages by
sip_parse.split_stream. Every buffer is bounded and expires, so junk or a
flood costs bounded memory, and what is dropped is counted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from scapy.layers.inet import TCP, UDP

from mediation.ip_reassembly import Reassembly
from mediation.sip_parse import SipError, resync, split_stream

STREAM_TTL = 3600.0     # seconds a TCP flow may stay idle before its state is dropped
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

    reassembly: Reassembly = field(default_factory=Reassembly)
    streams: dict[tuple, _Stream] = field(default_factory=dict)
    lost: int = 0       # datagrams and streams given up here (not UDP or TCP, junk, overflow)

    @property
    def dropped(self) -> int:
        """Packets, fragment sets or streams given up (junk, overflow, expiry), reassembly's included."""
        counts = self.reassembly.summary()
        return self.lost + counts["not_ip"] + sum(counts["fragment_sets_given_up"].values())

    def feed(self, packet: bytes, now: float) -> list[SipPayload]:
        """The SIP payloads one copied IP packet (from its first header byte) completes."""
        if not packet:
            return []
        datagram = self.reassembly.feed(packet, now)
        if datagram is None:
            return []
        try:
            return self._transport(datagram.protocol, datagram.src, datagram.dst, datagram.payload, now)
        except Exception:  # scapy raises struct.error, IndexError, ...: a truncated segment is junk, counted
            self.lost += 1
            return []

    def expire(self, now: float) -> None:
        """Forget fragment sets and idle streams past their time."""
        self.reassembly.expire(now)
        for key in [k for k, s in self.streams.items() if now - s.last_seen > STREAM_TTL]:
            del self.streams[key]

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
                self.lost += 1
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
                self.lost += 1
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
