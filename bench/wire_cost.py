"""Benchmark: does controller/wire.py (entities encoded straight to bytes)
still pay for itself on a C-backed protobuf?

wire.py was written when the p4runtime wheels held the project on protobuf
3.20's pure-Python messages. For N taps (bench/tap_scale.py's), in one
process, alternating, with no switch involved:

- build, wire: `EntryBuilder.intercept_wire` of the plan (what reconcile and
  provisioning build), then every update put into WriteRequest bytes in
  batches of APPLY_BATCH, as `ManagedSwitch.apply` sends them;
- build, protobuf: the same entities built as p4runtime messages (the same
  EntryBuilder with wire.py's encoders swapped for ones that fill messages,
  each entity's identity and canonical bytes then taken from the message, as
  reconcile compares them), WriteRequests built and serialized by protobuf;
- read back: a ReadResponse holding every entity parsed and each entity
  turned into the controller's form (`from_entity`: canonical copy, identity,
  deterministic serialization), as after a read of the switch.

Run it under each protobuf to compare them (the figures are per process:
`google.protobuf` says which implementation it runs).

    .venv/bin/python -m bench.wire_cost [--taps N] [--repeats R] [--record]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from types import SimpleNamespace

import google.protobuf
from google.protobuf.internal import api_implementation
from p4protos import p4runtime_pb2 as p4r

from bench import record
from bench.tap_scale import intercepts, topology
from controller import entries, wire
from controller.entries import EntryBuilder
from controller.managed_switch import APPLY_BATCH
from controller.pipeline import Pipeline
from controller.plan import IdAllocator, plan_intercepts
from controller.wire import WireEntity, from_entity

HEADER = p4r.WriteRequest(device_id=0, election_id=p4r.Uint128(low=1))


def _entity(message: p4r.Entity, key: tuple) -> WireEntity:
    built = WireEntity(key, message.SerializeToString(deterministic=True))
    built.__dict__["entity"] = message  # the message itself, as a protobuf-built controller would keep it
    return built


def _table_entry(table_id: int, matches: Sequence[tuple[int, p4r.FieldMatch]], table_action: p4r.TableAction,
                 priority: int = 0) -> WireEntity:
    ordered = [m for _, m in sorted(matches, key=lambda fm: fm[0])]
    message = p4r.Entity(table_entry=p4r.TableEntry(table_id=table_id, match=ordered, action=table_action,
                                                    priority=priority))
    key = ("table", table_id, tuple(sorted(m.SerializeToString(deterministic=True) for m in ordered)), priority)
    return _entity(message, key)


def _replicas(replicas: Iterable[tuple[int, int]]) -> list[p4r.Replica]:
    return [p4r.Replica(egress_port=port, instance=instance) for port, instance in sorted(replicas)]


#: wire.py's encoders, filling p4runtime messages instead.
PROTOBUF = SimpleNamespace(
    value=wire.value,
    exact=lambda fid, v: p4r.FieldMatch(field_id=fid, exact=p4r.FieldMatch.Exact(value=v)),
    lpm=lambda fid, v, n: p4r.FieldMatch(field_id=fid, lpm=p4r.FieldMatch.LPM(value=v, prefix_len=n)),
    ternary=lambda fid, v, m: p4r.FieldMatch(field_id=fid, ternary=p4r.FieldMatch.Ternary(value=v, mask=m)),
    range_=lambda fid, lo, hi: p4r.FieldMatch(field_id=fid, range=p4r.FieldMatch.Range(low=lo, high=hi)),
    action=lambda aid, params: p4r.TableAction(action=p4r.Action(
        action_id=aid, params=[p4r.Action.Param(param_id=p, value=v) for p, v in sorted(params)])),
    table_entry=_table_entry,
    clone_session=lambda sid, replicas: _entity(p4r.Entity(packet_replication_engine_entry=p4r.PacketReplicationEngineEntry(
        clone_session_entry=p4r.CloneSessionEntry(session_id=sid, replicas=_replicas(replicas)))), ("clone", sid)),
    multicast_group=lambda gid, replicas: _entity(p4r.Entity(packet_replication_engine_entry=p4r.PacketReplicationEngineEntry(
        multicast_group_entry=p4r.MulticastGroupEntry(multicast_group_id=gid, replicas=_replicas(replicas)))), ("mcast", gid)),
)


def build_wire(builder: EntryBuilder, plan) -> list[bytes]:
    built = builder.intercept_wire(plan)
    return [wire.write_request(HEADER, [wire.update(p4r.Update.INSERT, e) for e in built[i:i + APPLY_BATCH]])
            for i in range(0, len(built), APPLY_BATCH)]


def build_protobuf(builder: EntryBuilder, plan) -> list[bytes]:
    entries.wire = PROTOBUF
    try:
        built = builder.intercept_wire(plan)
    finally:
        entries.wire = wire
    out = []
    for i in range(0, len(built), APPLY_BATCH):
        request = p4r.WriteRequest()
        request.CopyFrom(HEADER)
        request.updates.extend(p4r.Update(type=p4r.Update.INSERT, entity=e.entity) for e in built[i:i + APPLY_BATCH])
        out.append(request.SerializeToString())
    return out


def read_back(response: bytes) -> list[WireEntity]:
    return [from_entity(e) for e in p4r.ReadResponse.FromString(response).entities]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--taps", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--record", action="store_true", help="append the results to BENCHMARKS.md")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    builder = EntryBuilder(Pipeline.load())
    mediations, streams = intercepts(args.taps)
    now = datetime.now(timezone.utc)
    plan = plan_intercepts(mediations, streams, topology(), IdAllocator(), now)
    reference = build_wire(builder, plan)
    if [p4r.WriteRequest.FromString(b) for b in build_protobuf(builder, plan)] != \
            [p4r.WriteRequest.FromString(b) for b in reference]:
        raise RuntimeError("the two builds disagree")
    response = p4r.ReadResponse(entities=[u.entity for b in reference for u in p4r.WriteRequest.FromString(b).updates])
    data = response.SerializeToString()
    paths: dict[str, Callable[[], object]] = {
        "build + WriteRequests, wire.py": lambda: build_wire(builder, plan),
        "build + WriteRequests, protobuf messages": lambda: build_protobuf(builder, plan),
        "read back (parse + from_entity)": lambda: read_back(data),
    }
    samples: dict[str, list[float]] = {p: [] for p in paths}
    for r in range(args.repeats):
        for path in (list(paths) if r % 2 == 0 else list(reversed(paths))):
            started = time.perf_counter()
            paths[path]()
            samples[path].append(time.perf_counter() - started)
    version = f"protobuf {google.protobuf.__version__} ({api_implementation.Type()})"
    lines = [f"| {version}: path | median, {args.taps:,} taps | samples (s) |", "|---|---:|---|"]
    lines += [f"| {path} | {statistics.median(times):.3f} s | {', '.join(f'{t:.3f}' for t in times)} |"
              for path, times in samples.items()]
    table = "\n".join(lines)
    print(table)
    load = record.load_line(load_before, os.getloadavg())
    print(load)
    if args.record:
        record.append(
            f"wire_cost: controller/wire.py against p4runtime messages, {version}",
            f".venv/bin/python -m bench.wire_cost --taps {args.taps} --repeats {args.repeats} --record",
            f"{args.taps:,} taps planned once ({len(response.entities):,} entities), no switch; build: "
            "`EntryBuilder.intercept_wire` plus every update into WriteRequest bytes of "
            f"{APPLY_BATCH:,}, with wire.py's encoders or with encoders filling p4runtime messages (both checked to "
            "give the same WriteRequests); read back: one ReadResponse of every entity parsed and each turned into "
            f"the controller's form; paths alternate; median of {args.repeats} samples.",
            table, notes=(load,))
    return 0


if __name__ == "__main__":
    sys.exit(main())
