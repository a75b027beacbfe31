"""Benchmark: does traffic nobody taps pay for installed taps?

Forwarding rate of non-targeted IPv4 traffic through bmv2 running p4tap with
0, 100, 1,000 and 10,000 installed taps, and through a minimal L2 program
(bench/p4src/l2_minimal.p4), all in one run on the same build. Also the
rate of traffic from a tapped subject that no filter matches (it passes the
gate and pays the filter scan), to show where the cost does go.

Goal (issue 2): with 10,000 taps >= 0.95x the rate with 0 taps, and >= 0.8x
the minimal program.

    sudo .venv/bin/python -m bench.tap_scale [--packets N] [--repeats R] [--record]
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path

from p4protos import p4runtime_pb2 as p4r
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from bench import preflight, record
from bench.rate import RateSample, measure, median_pps
from bmv2_topo.bmv2_switch import Bmv2Switch
from bmv2_topo.veth import veth_pairs
from controller.entries import EntryBuilder, inserts
from controller.model import InetAddressType, IpFilter, Mediation, Stream
from controller.pipeline import P4TAP, Pipeline, artifacts, mac_to_int
from controller.plan import IdAllocator, plan_intercepts
from controller.switch import SwitchConnection
from controller.topology import L2Entry, NextHop, Route, SwitchTopology

IN_MAC, OUT_MAC, MD_MAC, ROUTER_MAC = "02:00:00:00:0b:01", "02:00:00:00:0b:02", "02:00:00:00:0b:03", "02:00:00:00:0b:fe"
MD = ipaddress.ip_address("203.0.113.250")
# Subjects: 192.0.2.0/24 and 198.51.100.0/24; untapped traffic: within 203.0.113.0/25.
SUBJECTS = [ipaddress.ip_address("192.0.2.0") + i for i in range(256)] + \
           [ipaddress.ip_address("198.51.100.0") + i for i in range(256)]


def topology() -> SwitchTopology:
    return SwitchTopology(
        ports={1: 1, 2: 2, 3: 3},
        l2=(L2Entry(IN_MAC, 1), L2Entry(OUT_MAC, 2)),
        routes=(Route(0, ipaddress.ip_network(f"{MD}/32"), NextHop(3, ROUTER_MAC, MD_MAC)),),
        tap_sources={4: ipaddress.ip_address("203.0.113.1")},
        tap_source_port=49152,
    )


def intercepts(n: int) -> tuple[list[Mediation], list[Stream]]:
    """n taps: one mediation each, one stream on a subject and a SIP-ish port."""
    timeout = datetime.now(timezone.utc) + timedelta(hours=2)
    mediations, streams = [], []
    for i in range(n):
        subject = SUBJECTS[i % len(SUBJECTS)]
        port = 10000 + i // len(SUBJECTS)
        mediations.append(Mediation(i + 1, MD, 7000, timeout=timeout))
        streams.append(Stream(i + 1, 1, IpFilter(InetAddressType.IPV4, src_address=subject, src_length=32,
                                                 protocol=17, dst_port_min=port, dst_port_max=port), True))
    return mediations, streams


def frames(kind: str) -> list[bytes]:
    """64 distinct UDP frames from port 1's host to port 2's host."""
    out = []
    for i in range(64):
        if kind == "untapped":
            src, dst = f"203.0.113.{10 + i}", f"203.0.113.{100 + i % 20}"
        else:  # from a tapped subject, to a port no filter names
            src, dst = str(SUBJECTS[i]), "203.0.113.100"
        out.append(bytes(Ether(src=IN_MAC, dst=OUT_MAC) / IP(src=src, dst=dst) / UDP(sport=5000 + i, dport=9) / (b"\x00" * 18)))
    return out


def install(program: str, address: str, mediations: list[Mediation] = (), streams: list[Stream] = ()) -> float:
    """Push the program, its forwarding state and (p4tap only) these taps;
    returns seconds spent planning and writing the taps."""
    pipeline = Pipeline.load(P4TAP if program == "p4tap" else artifacts(program))
    builder = EntryBuilder(pipeline)
    with SwitchConnection(address) as conn:
        conn.set_pipeline(pipeline.p4info, pipeline.device_config)
        if program != "p4tap":
            table, action = "MinimalIngress.l2_table", "MinimalIngress.l2_forward"
            entry = builder.table_entry(table, [builder.exact(table, "dst_addr", mac_to_int(OUT_MAC))],
                                        builder.action(action, port=2))
            conn.write(inserts([p4r.Entity(table_entry=entry)]))
            return 0.0
        topo = topology()
        conn.write(inserts(builder.forwarding_entities(topo)))
        if not streams:
            return 0.0
        started = time.perf_counter()
        plan = plan_intercepts(list(mediations), list(streams), topo, IdAllocator(), datetime.now(timezone.utc))
        conn.write_batched(inserts(builder.intercept_entities(plan)))
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=10000, help="frames per sample (default 10000)")
    parser.add_argument("--repeats", type=int, default=5, help="samples per configuration; the median is reported")
    parser.add_argument("--taps", type=int, nargs="+", default=[0, 100, 1000, 10000])
    parser.add_argument("--record", action="store_true", help="append the results to BENCHMARKS.md")
    args = parser.parse_args(argv)
    if preflight.check():
        return 2

    configs = [("l2_minimal", 0, "untapped")] + [("p4tap", n, "untapped") for n in args.taps]
    configs.append(("p4tap", max(args.taps), "tapped subject, no filter match"))
    # Every configuration runs at once on its own veths and samples are taken
    # round-robin, so whatever else loads the machine weighs on all alike.
    samples: list[list[RateSample]] = [[] for _ in configs]
    installs: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        hosts, switches = [], []
        for i, (program, taps, kind) in enumerate(configs):
            pairs = stack.enter_context(veth_pairs([1, 2, 3], prefix=f"p4b{i}"))
            bmv2 = Bmv2Switch(ports={p.port: p.switch_end for p in pairs}, log_file=Path(tmp) / f"{i}.log")
            bmv2.start()
            stack.callback(bmv2.stop)
            print(f"-- {program}, {taps:,} taps ({kind}): installing", flush=True)
            installs.append(install(program, bmv2.grpc_address, *intercepts(taps)))
            hosts.append({p.port: p.host_end for p in pairs})
            switches.append(bmv2)
        for r in range(args.repeats):
            for i, (program, taps, kind) in enumerate(configs):
                sample = measure(hosts[i][1], hosts[i][2], frames("untapped" if kind == "untapped" else "subject"),
                                 args.packets)
                samples[i].append(sample)
                print(f"   round {r + 1}/{args.repeats} {program} {taps:,} ({kind}): {sample.pps:,.0f} pkt/s "
                      f"({sample.received}/{sample.sent} out)", flush=True)
    results = [(program, taps, kind, median_pps(samples[i]), samples[i], installs[i])
               for i, (program, taps, kind) in enumerate(configs)]

    baseline = results[0][3]
    zero = next((r[3] for r in results if r[0] == "p4tap" and r[1] == 0 and r[2] == "untapped"), None)
    lines = ["| program | taps | traffic | median pkt/s | vs l2_minimal | vs 0 taps | taps installed in |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for program, taps, kind, pps, _, install_s in results:
        vs_zero = f"{pps / zero:.2f}x" if zero and program == "p4tap" else "-"
        installed = f"{install_s:.1f} s" if install_s else "-"
        lines.append(f"| {program} | {taps:,} | {kind} | {pps:,.0f} | {pps / baseline:.2f}x | {vs_zero} | {installed} |")
    table = "\n".join(lines)
    print(table)
    if args.record:
        record.append(
            "tap_scale: non-targeted forwarding rate vs installed taps",
            f"sudo .venv/bin/python -m bench.tap_scale --packets {args.packets} --repeats {args.repeats} --record",
            f"{args.packets:,} 64-byte UDP frames per sample, closed loop with 32 frames in flight (bench/rate.py); "
            f"rate = frames out / time; median of {args.repeats} samples; one bmv2 per configuration, all running, "
            "sampled round-robin.",
            table,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
