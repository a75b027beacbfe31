"""Benchmark: the MD's share of "taps within 100 ms of the signalling" (issue 15).

From the copied IP packet of a target call's 200 OK to the media tap change
the call machine answers (mediation/sip_transport -> sip_parse -> sip_calls):
p50 and p99 over many calls, with `--live` other target calls in progress
and as many non-target calls' INVITEs discarded between them. The baseline,
timed in the same run on the same bytes, is the kept SIP grammar alone
(`sipmessage.Message.parse` of that 200 OK): the ratio says what the
transport, SDP and call state add to what any SIP-reading MD must pay.

The messages are the real sipp call of tests/fixtures/sip/sipp_udp_call/,
each call given its own Call-ID, tags and media ports. What the keeper then
spends provisioning the tap over SNMPv3 is bench.snmp_provisioning's.

    .venv/bin/python -m bench.sip_calls [--calls N] [--live L] [--repeats R] [--record]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import sipmessage
from scapy.layers.inet import IP, UDP

from bench import record
from controller.pipeline import REPO_ROOT
from mediation.sip_calls import SipCalls, SipTarget
from mediation.sip_parse import parse
from mediation.sip_transport import SignallingStreams
from tests.sip_support import variant

CALL = REPO_ROOT / "tests" / "fixtures" / "sip" / "sipp_udp_call"
TARGET = SipTarget(7, "bob", "example.test")


def call_messages(n: int, caller: str = "alice", callee: str = "bob", caller_at: str = "127.0.0.1",
                  callee_at: str = "127.0.0.2", media_port: int | None = None, callee_media: str | None = None
                  ) -> list[bytes]:
    """The real sipp call's six messages (INVITE, 180, 200, ACK, BYE, 200) as call n's:
    its own Call-ID, tags, parties, addresses and media port (both offer and
    answer; by default 10000 + 2n), the answer's media at `callee_media`
    (default the callee's signalling address), Content-Length kept right."""
    port = 10000 + 2 * (n % 20000) if media_port is None else media_port
    out = []
    for path in sorted(CALL.glob("*.sip")):
        raw = (path.read_bytes().replace(b"1-31322@127.0.0.1", b"%d-bench@%s" % (n, caller_at.encode()))
               .replace(b"SIPpTag091", b"SIPpTag09%d" % n).replace(b"SIPpTag011", b"SIPpTag01%d" % n)
               .replace(b"m=audio 6000", b"m=audio %d" % port)
               .replace(b"IN IP4 127.0.0.2", b"IN IP4 " + (callee_media or callee_at).encode())
               .replace(b"127.0.0.1", caller_at.encode()).replace(b"127.0.0.2", callee_at.encode())
               .replace(b"sip:alice@", b"sip:%s@" % caller.encode()).replace(b"alice <", b"%s <" % caller.encode())
               .replace(b"sip:bob@", b"sip:%s@" % callee.encode()))
        _, _, body = raw.partition(b"\r\n\r\n")
        out.append(variant(raw, body=body) if body else raw)
    return out


def _packets(n: int, callee: bytes) -> list[bytes]:
    """Call n's INVITE and 200 OK as IP packets: own Call-ID, tags, ports."""
    invite, _, ok = call_messages(n, callee=callee.decode(), caller_at="192.0.2.10", callee_at="198.51.100.20")[:3]
    return [bytes(IP(src=src, dst=dst) / UDP(sport=5060, dport=5060) / raw)
            for raw, (src, dst) in ((invite, ("192.0.2.10", "198.51.100.20")), (ok, ("198.51.100.20", "192.0.2.10")))]


def sample(calls: int, live: int) -> tuple[list[float], list[float]]:
    """(seconds from 200 OK packet to tap change, seconds for sipmessage alone) per call."""
    streams, machine, now = SignallingStreams(), SipCalls(), 0.0
    for n in range(live):                       # calls in progress around the measured ones
        for pkt in _packets(n, b"bob"):
            for payload in streams.feed(pkt, now):
                machine.handle(parse(payload.data), [TARGET], now)
    ours, baseline = [], []
    for n in range(live, live + calls):
        invite, ok = _packets(n, b"bob")
        other_invite, _ = _packets(n + 1_000_000, b"dave")
        for pkt in (other_invite, invite):
            for payload in streams.feed(pkt, now):
                machine.handle(parse(payload.data), [TARGET], now)
        start = time.perf_counter()
        changes = [c for p in streams.feed(ok, now) for c in machine.handle(parse(p.data), [TARGET], now).changes]
        ours.append(time.perf_counter() - start)
        assert [c.op for c in changes] == ["provision"], changes
        body = ok[28:]
        start = time.perf_counter()
        sipmessage.Message.parse(body)
        baseline.append(time.perf_counter() - start)
    return ours, baseline


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="measured calls per sample (default 2000)")
    parser.add_argument("--live", type=int, default=1000, help="target calls in progress besides (default 1000)")
    parser.add_argument("--repeats", type=int, default=5, help="samples; the median of each figure is reported")
    parser.add_argument("--record", action="store_true", help="append the results to BENCHMARKS.md")
    args = parser.parse_args(argv)
    rows, load_before = [], os.getloadavg()
    for r in range(args.repeats):
        ours, base = sample(args.calls, args.live)
        rows.append((_pct(ours, 0.5), _pct(ours, 0.99), _pct(base, 0.5), _pct(base, 0.99)))
        print(f"   sample {r + 1}/{args.repeats}: 200 OK -> tap change p50 {rows[-1][0] * 1e6:.0f} us, "
              f"p99 {rows[-1][1] * 1e6:.0f} us; sipmessage alone p50 {rows[-1][2] * 1e6:.0f} us", flush=True)
    med = [statistics.median(r[i] for r in rows) for i in range(4)]
    table = "\n".join([
        "| path | p50 | p99 | samples p50 (us) | p50 / sipmessage alone |",
        "|---|---:|---:|---|---:|",
        f"| copied 200 OK packet -> media tap change (transport, SIP, SDP, call state) | {med[0] * 1e6:.0f} us "
        f"| {med[1] * 1e6:.0f} us | {', '.join(f'{r[0] * 1e6:.0f}' for r in rows)} | {med[0] / med[2]:.2f}x |",
        f"| baseline: `sipmessage.Message.parse` of the same 200 OK | {med[2] * 1e6:.0f} us | {med[3] * 1e6:.0f} us "
        f"| {', '.join(f'{r[2] * 1e6:.0f}' for r in rows)} | 1.00x |",
    ])
    print(table)
    if args.record:
        record.append(
            "sip_calls: the MD's time from a 200 OK to the media tap change",
            f".venv/bin/python -m bench.sip_calls --calls {args.calls} --live {args.live} "
            f"--repeats {args.repeats} --record",
            f"{args.calls:,} target calls per sample (the real sipp call, each with its own Call-ID, tags and media "
            f"port), {args.live:,} other target calls in progress and one non-target INVITE discarded before each; "
            f"timed with perf_counter around one 200 OK packet through SignallingStreams.feed, sip_parse.parse and "
            f"SipCalls.handle; p50 and p99 per sample, median of {args.repeats} samples; the baseline is timed in "
            "the same loop on the same bytes. The 100 ms goal covers this plus the keeper's SNMPv3 provisioning "
            "(bench.snmp_provisioning) and the switch's write.",
            table,
            notes=(record.load_line(load_before, os.getloadavg())
                   + "; a p99 far above the p50 is this Python process descheduled or collecting garbage",),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
