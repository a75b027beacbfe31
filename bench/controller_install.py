"""Benchmark: installing taps through the controller versus raw P4Runtime writes.

For each N (default 1,000 and 10,000 taps, bench/tap_scale.py's taps: one
mediation and one UDP filter on a subject each), in the same run, each
sample on a fresh bmv2 with the forwarding state already installed:

- controller: `Controller.provision_many` of the N intercepts (validation,
  incremental plan, entity encoding, intent store and audit log on disk,
  make-before-break write); with --per-tap, also `Controller.provision` once
  per tap (every tap its own durable store commit, audit record and write);
- raw: the very same entities (those the controller installed in an unclocked
  capture run, as p4runtime protobuf Update messages built before the clock)
  written in batched Write RPCs over the p4runtime protos (WriteRequest,
  generated stub): what any client of the protos pays;
- switch floor: the same updates serialized before the clock, so only
  putting the requests together, the RPCs and bmv2's work are timed.

Samples alternate between the paths (their order flips every round), the
median of --repeats samples is reported. Goal (issue 3): controller
(provision_many) no more than 1.5x raw.

    .venv/bin/python -m bench.controller_install [--taps N ...] [--repeats R] [--per-tap N ...] [--record]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from p4protos import p4runtime_pb2 as p4r

from bench import preflight, record
from bench.tap_scale import intercepts, topology
from bmv2_topo.bmv2_switch import Bmv2Switch
from controller.entries import EntryBuilder, inserts
from controller.managed_switch import APPLY_BATCH
from controller.pipeline import Pipeline
from controller.reconcile import Diff, ordered_updates
from controller.service import Controller, SwitchConfig
from controller.switch import SwitchConnection

LABELS = {
    "controller": "controller, `provision_many`",
    "per-tap": "controller, `provision` per tap",
    "raw": "raw P4Runtime writes (protos, batched)",
    "floor": "switch floor (updates serialized before the clock)",
}


@dataclass
class Workload:
    """N taps, and the entities the controller installs for them."""

    taps: list
    updates: list[p4r.Update] = field(default_factory=list)


def fresh_switch(workdir: Path) -> Bmv2Switch:
    bmv2 = Bmv2Switch(ports={}, log_file=workdir / "bmv2.log")
    bmv2.start()
    return bmv2


def installed(conn: SwitchConnection) -> int:
    return len(conn.read_table_entries()) + len(conn.read_clone_sessions()) + len(conn.read_multicast_groups())


def through_controller(work: Workload, workdir: Path, per_tap: bool = False) -> tuple[float, int]:
    """Seconds to provision every tap, and the entities the switch then holds."""
    bmv2 = fresh_switch(workdir)
    try:
        with Controller([SwitchConfig("s1", bmv2.grpc_address, topology())], workdir / "intent.db",
                        workdir / "audit.jsonl") as c:
            c.start()  # pipeline and forwarding state: not timed
            started = time.perf_counter()
            if per_tap:
                for mediation, streams in work.taps:
                    c.provision(mediation, streams, actor="bench")
            else:
                c.provision_many(work.taps, actor="bench")
            seconds = time.perf_counter() - started
            if not work.updates:  # the capture run: keep what the controller installed
                switch = c.switches["s1"]
                ordered = ordered_updates(Diff(inserts=list(switch.built.values())), switch.rank)
                work.updates = [p4r.Update(type=u.type, entity=u.entity.entity) for u in ordered]
            return seconds, installed(c.switches["s1"].conn)
    finally:
        bmv2.stop()


def raw(work: Workload, workdir: Path, serialized: bool = False) -> tuple[float, int]:
    """Seconds to write the captured entities in batched Write RPCs (`serialized`:
    the updates already serialized, so that only putting requests together and
    the RPCs are timed)."""
    pipeline = Pipeline.load()
    bmv2 = fresh_switch(workdir)
    try:
        with SwitchConnection(bmv2.grpc_address) as conn:
            conn.set_pipeline(pipeline.p4info, pipeline.device_config, cookie=pipeline.cookie)
            conn.write(inserts(EntryBuilder(pipeline).forwarding_entities(topology())))
            batches = [work.updates[i:i + APPLY_BATCH] for i in range(0, len(work.updates), APPLY_BATCH)]
            if serialized:
                blobs = [[u.SerializeToString() for u in batch] for batch in batches]
                started = time.perf_counter()
                for blob in blobs:
                    conn.write_encoded(blob)
            else:
                started = time.perf_counter()
                for batch in batches:
                    conn.write(batch)  # a WriteRequest with the updates, through the generated stub
            return time.perf_counter() - started, installed(conn)
    finally:
        bmv2.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--taps", type=int, nargs="+", default=[1000, 10000], help="tap counts (default 1000 10000)")
    parser.add_argument("--repeats", type=int, default=3, help="samples per path and count; the median is reported")
    parser.add_argument("--per-tap", type=int, nargs="*", default=[1000],
                        help="tap counts also provisioned one `provision` call per tap (default 1000; none: skip)")
    parser.add_argument("--record", action="store_true", help="append the results to BENCHMARKS.md")
    args = parser.parse_args(argv)
    if preflight.check(root=False, pipeline=True):
        return 2

    load_before = os.getloadavg()
    samples: dict[tuple[int, str], list[float]] = {}
    entities: dict[tuple[int, str], set[int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = itertools.count()

        def sample(n: int, path: str, measure: Callable[[Path], tuple[float, int]]) -> None:
            workdir = Path(tmp) / f"run{next(runs)}"
            workdir.mkdir()
            seconds, count = measure(workdir)
            samples.setdefault((n, path), []).append(seconds)
            entities.setdefault((n, path), set()).add(count)
            print(f"   {n:,} taps, {path}: {seconds:.2f} s ({count:,} entities on the switch)", flush=True)

        for n in args.taps:
            mediations, streams = intercepts(n)
            work = Workload([(m, [s]) for m, s in zip(mediations, streams)])
            print(f"-- {n:,} taps: capture run (not counted)", flush=True)
            capture = Path(tmp) / f"capture{n}"
            capture.mkdir()
            through_controller(work, capture)
            paths = {"controller": lambda d, w=work: through_controller(w, d),
                     "raw": lambda d, w=work: raw(w, d),
                     "floor": lambda d, w=work: raw(w, d, serialized=True)}
            if n in args.per_tap:
                paths["per-tap"] = lambda d, w=work: through_controller(w, d, per_tap=True)
            for r in range(args.repeats):
                for path in (list(paths) if r % 2 == 0 else list(reversed(paths))):
                    sample(n, path, paths[path])
    load_after = os.getloadavg()

    lines = ["| taps | path | median | samples (s) | vs raw |", "|---:|---|---:|---|---:|"]
    ratios = []
    for n in args.taps:
        base = statistics.median(samples[(n, "raw")])
        for path in ("controller", "per-tap", "raw", "floor"):
            if (n, path) not in samples:
                continue
            if len(entities[(n, path)]) != 1 or entities[(n, path)] != entities[(n, "raw")]:
                raise RuntimeError(f"{n} taps, {path}: the switch held {entities[(n, path)]} entities, "
                                   f"raw {entities[(n, 'raw')]}")
            med = statistics.median(samples[(n, path)])
            ratio = f"**{med / base:.2f}x**" if path == "controller" else f"{med / base:.2f}x"
            if path == "controller":
                ratios.append((n, med / base))
            lines.append(f"| {n:,} | {LABELS[path]} | {med:.2f} s | "
                         f"{', '.join(f'{t:.2f}' for t in samples[(n, path)])} | {ratio} |")
    lines += ["", "controller (`provision_many`) / raw: " + ", ".join(f"**{r:.2f}x** at {n:,} taps" for n, r in ratios)
              + " (goal: no more than 1.5x)."]
    table = "\n".join(lines)
    print(table)
    load = record.load_line(load_before, load_after)
    print(load)
    if args.record:
        per_tap = " ".join(map(str, args.per_tap))
        record.append(
            f"controller_install: {' and '.join(f'{n:,}' for n in args.taps)} taps through the controller vs raw "
            "P4Runtime writes, on bmv2",
            f".venv/bin/python -m bench.controller_install --taps {' '.join(map(str, args.taps))} "
            f"--repeats {args.repeats} {f'--per-tap {per_tap}'.strip()} --record",
            "each sample on a fresh bmv2 with pipeline and forwarding state installed before the clock; controller: "
            "fresh intent store and audit log, `provision_many` of all taps (or `provision` per tap); raw: the "
            "entities the controller installed (captured in an unclocked run, prebuilt as p4runtime Update "
            f"messages) in WriteRequests of {APPLY_BATCH:,} updates through the generated stub; switch floor: the "
            "same updates serialized before the clock, written as bytes; every sample checked to leave the same number of entities "
            f"on the switch; paths alternate, order flipped each round; median of {args.repeats} samples.",
            table,
            notes=(load,),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
