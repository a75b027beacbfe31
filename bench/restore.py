"""Benchmark: how long intercepts are blind after a switch restart.

A restarted switch is empty: every second until the controller has put every
intercept's entries back is content lost. In the same run, alternating:

- controller: bmv2 with N taps installed through the controller (bench/tap_scale.py's
  taps) is killed (SIGKILL, like a crash) and restarted on the same address;
  clocked from the restarted switch answering (its gRPC port accepts) to the
  controller telling that the switch holds the intent again (its switch-state
  listener, called once reconcile has written everything: reconnect, pipeline
  push, re-plan, read-back, diff, writes);
- switch floor: another bmv2 killed and restarted the same way; clocked from
  its answering to the last write acknowledged, of a client that connects on a
  fresh stream, pushes the pipeline and writes the very same updates (those the
  controller installed, forwarding included), serialized into WriteRequests
  before the clock.

Every sample is checked to leave the same number of entities on the switch.
Goal (issue 17): controller no more than 1.5x the floor.

    .venv/bin/python -m bench.restore [--taps N] [--repeats R] [--record]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from p4protos import p4runtime_pb2 as p4r

from bench import preflight, record
from bench.controller_install import installed
from bench.tap_scale import intercepts, topology
from bmv2_topo.bmv2_switch import Bmv2Switch
from controller.managed_switch import APPLY_BATCH
from controller.pipeline import Pipeline
from controller.reconcile import Diff, ordered_updates
from controller.service import Controller, SwitchConfig
from controller.switch import SwitchConnection

REACTION_LIMIT = 120.0  # seconds a restore may take before the sample is called failed


def requests(controller: Controller) -> list[bytes]:
    """The switch's whole contents as the controller installed them, as
    serialized WriteRequests of APPLY_BATCH updates (device 0, election id 1)."""
    switch = controller.switches["s1"]
    entities = list(switch.forwarding) + list(switch.built.values())
    updates = [p4r.Update(type=u.type, entity=u.entity.entity)
               for u in ordered_updates(Diff(inserts=entities), switch.rank)]
    return [p4r.WriteRequest(device_id=0, election_id=p4r.Uint128(low=1), updates=updates[i:i + APPLY_BATCH])
            .SerializeToString() for i in range(0, len(updates), APPLY_BATCH)]


def controller_restore(bmv2: Bmv2Switch, back: threading.Event) -> float:
    """Kill and restart the switch; seconds from it answering to the controller's 'up'."""
    back.clear()
    bmv2.kill()
    bmv2.restart()
    answering = time.perf_counter()
    if not back.wait(REACTION_LIMIT):
        raise RuntimeError(f"the controller did not restore the switch within {REACTION_LIMIT:.0f} s")
    return time.perf_counter() - answering


def floor_restore(bmv2: Bmv2Switch, pipeline: Pipeline, blobs: list[bytes]) -> tuple[float, int]:
    """Kill and restart the switch; seconds from it answering to the last raw write done."""
    bmv2.kill()
    bmv2.restart()
    answering = time.perf_counter()
    with SwitchConnection(bmv2.grpc_address, election_id=(0, 1)) as conn:
        conn.set_pipeline(pipeline.p4info, pipeline.device_config, cookie=pipeline.cookie)
        write = conn._channel.unary_unary("/p4.v1.P4Runtime/Write", request_serializer=None,
                                          response_deserializer=p4r.WriteResponse.FromString)
        for blob in blobs:
            write(blob, timeout=60)
        seconds = time.perf_counter() - answering
        return seconds, installed(conn)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--taps", type=int, default=10000, help="intercepts installed (default 10000)")
    parser.add_argument("--repeats", type=int, default=5, help="restarts per path; the median is reported")
    parser.add_argument("--record", action="store_true", help="append the results to BENCHMARKS.md")
    args = parser.parse_args(argv)
    if preflight.check(root=False, pipeline=True):
        return 2
    for name in ("p4tap", "controller"):  # each restart is an outage the controller logs loudly, ids and all
        logging.getLogger(name).setLevel(logging.CRITICAL)
    load_before = os.getloadavg()
    pipeline = Pipeline.load()
    mediations, streams = intercepts(args.taps)
    samples: dict[str, list[float]] = {"controller": [], "floor": []}
    counts: dict[str, set[int]] = {"controller": set(), "floor": set()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tapped = Bmv2Switch(ports={}, log_file=work / "tapped.log").start()
        bare = Bmv2Switch(ports={}, log_file=work / "bare.log").start()
        back = threading.Event()
        try:
            with Controller([SwitchConfig("s1", tapped.grpc_address, topology())], work / "intent.db",
                            work / "audit.jsonl") as c:
                c.on_switch_state(lambda name, up: up and back.set())
                c.start()
                c.provision_many([(m, [s]) for m, s in zip(mediations, streams)], actor="bench")
                blobs = requests(c)
                expected = installed(c.switches["s1"].conn)
                print(f"-- {args.taps:,} taps installed: {expected:,} entities, "
                      f"{len(blobs)} WriteRequests of up to {APPLY_BATCH:,} updates", flush=True)
                for r in range(args.repeats):
                    for path in (("controller", "floor") if r % 2 == 0 else ("floor", "controller")):
                        if path == "controller":
                            seconds = controller_restore(tapped, back)
                            with c.lock:
                                count = installed(c.switches["s1"].conn)
                        else:
                            seconds, count = floor_restore(bare, pipeline, blobs)
                        samples[path].append(seconds)
                        counts[path].add(count)
                        print(f"   {path}: {seconds:.2f} s ({count:,} entities)", flush=True)
        finally:
            tapped.stop()
            bare.stop()
    load_after = os.getloadavg()
    for path, seen in counts.items():
        if seen != {expected}:
            raise RuntimeError(f"{path}: the switch held {sorted(seen)} entities after a restore, not {expected}")
    floor = statistics.median(samples["floor"])
    ctl = statistics.median(samples["controller"])
    table = "\n".join([
        f"| path | median, {args.taps:,} taps | samples (s) | vs floor |", "|---|---:|---|---:|",
        f"| controller: restart noticed, reconnect, pipeline, reconcile | {ctl:.2f} s | "
        f"{', '.join(f'{t:.2f}' for t in samples['controller'])} | **{ctl / floor:.2f}x** |",
        f"| switch floor: fresh stream, pipeline, the same updates pre-serialized | {floor:.2f} s | "
        f"{', '.join(f'{t:.2f}' for t in samples['floor'])} | 1.00x |",
        "", f"controller / floor: **{ctl / floor:.2f}x** (goal: no more than 1.5x).",
    ])
    print(table)
    load = record.load_line(load_before, load_after)
    print(load)
    if args.record:
        record.append(
            f"restore: {args.taps:,} intercepts back after a switch restart, controller vs switch floor, on bmv2",
            f".venv/bin/python -m bench.restore --taps {args.taps} --repeats {args.repeats} --record",
            f"{args.taps:,} taps provisioned once through the controller ({expected:,} entities with forwarding); "
            "each sample SIGKILLs a bmv2 and restarts it on the same address, clocked from its gRPC port accepting; "
            "controller: until its switch-state listener says the switch holds the intent again; floor: another "
            "bmv2, a client on a fresh stream pushing the pipeline and writing the same updates serialized into "
            f"WriteRequests of {APPLY_BATCH:,} before the clock; entity count checked after every sample; paths "
            f"alternate, order flipped each round; median of {args.repeats} samples.",
            table, notes=(load,))
    return 0


if __name__ == "__main__":
    sys.exit(main())
