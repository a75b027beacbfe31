"""Benchmark: CPU instructions bmv2 spends per forwarded packet, by program.

The packet rates of bench/tap_scale.py move with whatever else the machine
runs. Instructions do not: simple_switch_grpc runs under valgrind's callgrind,
its counters are zeroed once the pipeline and taps are installed, N frames
go through (closed loop, bench/rate.py), and the instructions executed in
that window are divided by the frames that came out. Repeats agree to a few
hundred instructions, so this is where a change to p4src/ shows what it
costs, and where the cost goes: the table is split into the parser, the
match-action pipelines, and the debug strings that a stock bmv2 build
formats for every table lookup and parser state even when logging is off.

Same programs, state and frames as bench/tap_scale.py (1,000 taps rather
than 10,000: installing under valgrind is slow, and the gate lookup does not
grow with the number of taps, which tap_scale shows).

    sudo .venv/bin/python -m bench.pipeline_cost [--packets N] [--repeats R] [--record]

Needs valgrind (Debian package `valgrind`).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench import preflight, record
from bench.rate import measure
from bench.tap_scale import frames, install, intercepts
from bmv2_topo.bmv2_switch import Bmv2Switch
from bmv2_topo.veth import veth_pairs

# Inclusive costs read off callgrind, by what they are.
PHASES = {
    "parser": ("bm::Parser::parse(",),
    "match-action": ("bm::Pipeline::apply(",),
    "debug strings": ("key_to_string_with_names", "dump_entry_string_", "bm::Packet::get_unique_id"),
}


@dataclass(frozen=True)
class Cost:
    frames: int
    instructions: int
    phases: dict[str, int]

    @property
    def per_frame(self) -> float:
        return self.instructions / self.frames


def _callgrind(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], capture_output=True, check=True, timeout=120)


def _read_dump(out_dir: Path) -> tuple[int, dict[str, int]]:
    """Total instructions and per-phase inclusive costs of the newest dump."""
    dumps = [p for p in out_dir.glob("callgrind.out*") if p.stat().st_size]
    newest = max(dumps, key=lambda p: p.stat().st_mtime)
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(newest)],
                          capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"^\s*([\d,]+) .*PROGRAM TOTALS", text, re.M).group(1).replace(",", ""))
    phases = {}
    for phase, needles in PHASES.items():
        phases[phase] = sum(int(m.group(1).replace(",", "")) for needle in needles
                            for m in re.finditer(rf"^\s*([\d,]+) \(.*?{re.escape(needle)}", text, re.M))
    for dump in dumps:
        dump.unlink()
    return total, phases


def cost(program: str, taps: int, kind: str, packets: int) -> Cost:
    """Instructions per frame for one configuration, on a fresh bmv2."""
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        out_dir = Path(tmp)
        pairs = stack.enter_context(veth_pairs([1, 2, 3], prefix="p4bc"))
        bmv2 = Bmv2Switch(ports={p.port: p.switch_end for p in pairs}, log_file=out_dir / "bmv2.log",
                          wrapper=("valgrind", "--tool=callgrind", f"--callgrind-out-file={out_dir}/callgrind.out"))
        bmv2.start(timeout=180)
        stack.callback(bmv2.stop)
        install(program, bmv2.grpc_address, *intercepts(taps))
        hosts = {p.port: p.host_end for p in pairs}
        sample = frames(kind)
        measure(hosts[1], hosts[2], sample, 200, window=4, idle_timeout=5)  # warm up caches and threads
        pid = bmv2._proc.pid
        _callgrind(pid, "-z")
        out = measure(hosts[1], hosts[2], sample, packets, window=4, idle_timeout=5)
        _callgrind(pid, "-d")
        time.sleep(0.5)
        total, phases = _read_dump(out_dir)
        if out.received < packets:
            raise RuntimeError(f"{program}: only {out.received} of {packets} frames came out")
        return Cost(out.received, total, phases)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=2000, help="frames per sample (default 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="samples per configuration; the median is reported")
    parser.add_argument("--taps", type=int, default=1000, help="installed taps in the tapped configurations")
    parser.add_argument("--record", action="store_true", help="append the results to BENCHMARKS.md")
    args = parser.parse_args(argv)
    if preflight.check(tools=("valgrind", "callgrind_control", "callgrind_annotate")):
        return 2

    configs = [("l2_minimal", 0, "untapped"), ("p4tap", 0, "untapped"), ("p4tap", args.taps, "untapped"),
               ("p4tap", args.taps, "subject")]
    costs: list[list[Cost]] = [[] for _ in configs]
    for r in range(args.repeats):
        for i, (program, taps, kind) in enumerate(configs):
            c = cost(program, taps, kind, args.packets)
            costs[i].append(c)
            print(f"   round {r + 1}/{args.repeats} {program} {taps:,} taps ({kind}): "
                  f"{c.per_frame:,.0f} instructions/frame", flush=True)

    def median(i: int, phase: str | None = None) -> float:
        if phase is None:
            return statistics.median(c.per_frame for c in costs[i])
        return statistics.median(c.phases[phase] / c.frames for c in costs[i])

    base = median(0)
    traffic = {"untapped": "untapped", "subject": "tapped subject, no filter match"}
    lines = ["| program | taps | traffic | instructions/frame | parser | match-action | debug strings (all phases) "
             "| samples | l2_minimal / this |",
             "|---|---:|---|---:|---:|---:|---:|---|---:|"]
    for i, (program, taps, kind) in enumerate(configs):
        samples = ", ".join(f"{c.per_frame:,.0f}" for c in costs[i])
        lines.append(f"| {program} | {taps:,} | {traffic[kind]} | {median(i):,.0f} | {median(i, 'parser'):,.0f} "
                     f"| {median(i, 'match-action'):,.0f} | {median(i, 'debug strings'):,.0f} | {samples} "
                     f"| {base / median(i):.2f}x |")
    table = "\n".join(lines)
    print(table)
    if args.record:
        record.append(
            "pipeline_cost: bmv2 instructions per forwarded frame",
            f"sudo .venv/bin/python -m bench.pipeline_cost --packets {args.packets} --repeats {args.repeats} "
            f"--taps {args.taps} --record",
            f"simple_switch_grpc under valgrind --tool=callgrind; counters zeroed after install and warm-up, then "
            f"{args.packets:,} 64-byte UDP frames in a closed loop (4 in flight); instructions of the whole process "
            f"in that window / frames out; median of {args.repeats}. 'debug strings' counts bmv2's per-lookup key "
            "and entry strings and packet ids (inside match-action and parser); the last column is the rate a "
            "CPU-bound switch would reach relative to l2_minimal.",
            table,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
