"""Benchmark: forwarding rate of p4tap's softswitch against bmv2.

The same pipelines, state and traffic through both targets in one run: the
minimal L2 program (bench/p4src/l2_minimal.p4), p4tap with untapped traffic,
and p4tap with every packet tapped (each frame is forwarded and an
encapsulated copy goes to the mediation device's port; the rate counts the
forwarded frames).  Per configuration both targets run side by side on their
own veths and are sampled alternately, closed loop (bench/rate.py: 32 frames
in flight, one more sent for each that comes out), so whatever else loads
the shared machine weighs on both alike.  The median of ``--repeats``
samples is reported, with the ratio softswitch / bmv2 and the machine's load
average before and after.

Goal (issue 7): the softswitch at >= 0.25x bmv2.

    sudo .venv/bin/python -m bench.softswitch_rate [--packets N] [--repeats R] [--record]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from bench import record
from bench.rate import RateSample, measure, median_pps
from bench.tap_scale import IN_MAC, MD, OUT_MAC, install
from bmv2_topo.bmv2_switch import Bmv2Switch, target_skip_reason
from bmv2_topo.veth import veth_pairs
from controller.model import InetAddressType, IpFilter, Mediation, Stream
from controller.pipeline import P4TAP

SUBJECT = ipaddress.ip_address("192.0.2.10")
TARGETS = ("bmv2", "softswitch")


def frames(kind: str) -> list[bytes]:
    """64 distinct 64-byte UDP frames from port 1's host to port 2's host."""
    out = []
    for i in range(64):
        src = str(SUBJECT) if kind == "tapped" else f"203.0.113.{10 + i}"
        out.append(bytes(Ether(src=IN_MAC, dst=OUT_MAC) / IP(src=src, dst=f"198.51.100.{1 + i}") /
                         UDP(sport=5000 + i, dport=9) / (b"\x00" * 18)))
    return out


def subject_tap() -> tuple[list[Mediation], list[Stream]]:
    """One tap on everything SUBJECT sends: every "tapped" frame is copied."""
    mediation = Mediation(1, MD, 7000, timeout=datetime.now(UTC) + timedelta(hours=2))
    stream = Stream(1, 1, IpFilter(InetAddressType.IPV4, src_address=SUBJECT, src_length=32), True)
    return [mediation], [stream]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=20000, help="frames sent per sample (default 20000)")
    parser.add_argument("--repeats", type=int, default=5, help="samples per configuration; the median is reported")
    parser.add_argument("--record", action="store_true", help="append the results to BENCHMARKS.md")
    args = parser.parse_args(argv)
    for t in TARGETS:
        reason = target_skip_reason(t)
        if reason:
            print(f"{t}: {reason}: nothing to compare", file=sys.stderr)
            return 2
    if os.geteuid() != 0:
        print("needs root (veth pairs)", file=sys.stderr)
        return 2
    if not P4TAP.exists():
        print("compiled pipeline missing: make p4", file=sys.stderr)
        return 2

    configs = [("l2_minimal", False), ("p4tap", False), ("p4tap", True)]
    results: dict[tuple[str, bool, str], tuple[float, list[RateSample]]] = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for program, tapped in configs:
            kind = "tapped" if tapped else "untapped"
            samples: dict[str, list[RateSample]] = {t: [] for t in TARGETS}
            with ExitStack() as stack:
                hosts = {}
                for i, target in enumerate(TARGETS):
                    pairs = stack.enter_context(veth_pairs([1, 2, 3], prefix=f"p4sb{i}"))
                    sw = Bmv2Switch(ports={p.port: p.switch_end for p in pairs}, target=target, name=target,
                                    log_file=Path(tmp) / f"{program}-{kind}-{target}.log")
                    sw.start(timeout=30)
                    stack.callback(sw.stop)
                    install(program, sw.grpc_address, *(subject_tap() if tapped else ([], [])))
                    hosts[target] = {p.port: p.host_end for p in pairs}
                for r in range(args.repeats):
                    for target in TARGETS:
                        sample = measure(hosts[target][1], hosts[target][2], frames(kind), args.packets)
                        samples[target].append(sample)
                        print(f"-- {program}, {kind}, {target}: sample {r + 1}/{args.repeats}: {sample.pps:,.0f} "
                              f"pkt/s ({sample.received}/{sample.sent} out)", flush=True)
            for target in TARGETS:
                results[(program, tapped, target)] = (median_pps(samples[target]), samples[target])
    load_after = os.getloadavg()

    lines = ["| program | traffic | bmv2 median pkt/s | softswitch median pkt/s | softswitch / bmv2 |",
             "|---|---|---:|---:|---:|"]
    for program, tapped in configs:
        b = results[(program, tapped, "bmv2")][0]
        s = results[(program, tapped, "softswitch")][0]
        traffic = "every packet tapped (forwarded + 1 copy)" if tapped else "untapped"
        lines.append(f"| {program} | {traffic} | {b:,.0f} | {s:,.0f} | {s / b:.2f}x |" if b else
                     f"| {program} | {traffic} | 0 | {s:,.0f} | - |")
    table = "\n".join(lines)
    print(table)
    load = record.load_line(load_before, load_after)
    print(load)
    if args.record:
        record.append(
            "softswitch_rate: p4tap's softswitch against bmv2",
            f"sudo .venv/bin/python -m bench.softswitch_rate --packets {args.packets} --repeats {args.repeats} --record",
            f"{args.packets:,} 64-byte UDP frames per sample, closed loop with 32 frames in flight (bench/rate.py); "
            f"rate = forwarded frames out / time; median of {args.repeats} samples; per configuration both targets "
            "run side by side on their own veths (same pipeline, state and frames, log level warn) and are "
            "sampled alternately.",
            table,
            notes=("goal (issue 7): softswitch >= 0.25x bmv2.",
                   ("the sender is one Python process; for l2_minimal both targets run near its limit, so that "
                    "ratio only says both keep up."),
                   f"machine load: {load}.",
                   "samples (pkt/s): " + "; ".join(
                       f"{p} {'tapped' if t else 'untapped'} {tg}: "
                       + ", ".join(f"{x.pps:,.0f}" for x in results[(p, t, tg)][1])
                       for p, t in configs for tg in TARGETS)),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
