"""Which P4Runtime client patterns a switch's gRPC server survives (issue 27).

bmv2's `simple_switch_grpc` died under the IAP in grpc::Server::SyncRequest::Run
(a sync-server worker calling a null function). Each pattern below is a way
a client can load a sync server that p4tap's controller might (or once might)
use; each runs for `--seconds` against a fresh switch holding p4tap's pipeline
and the lab's forwarding entries, and the switch is then asked whether it is
still alive. The figures say which patterns a server must tolerate, and which
one, if any, brings this toolchain's bmv2 down.

    sudo .venv/bin/python -m bench.p4rt_patterns [--seconds 60] [--switch bmv2] [PATTERN ...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from p4protos import p4runtime_pb2 as p4r
from p4protos import p4runtime_pb2_grpc

from bmv2_topo.bmv2_switch import Bmv2Switch, target_skip_reason
from bmv2_topo.keeper import describe_exit
from controller.service import Controller, SwitchConfig
from controller.switch import SwitchConnection, SwitchError
from ptf_tests.base import lab_topology

ELECTION = (0, 1 << 40)  # the controller's: above every id a pattern uses, so it stays primary
_ids = itertools.count(1000)  # election ids for the patterns' own streams, never twice


def _all_entries() -> p4r.ReadRequest:
    request = p4r.ReadRequest(device_id=0)
    entity = request.entities.add()
    entity.table_entry.table_id = 0
    entity.table_entry.counter_data.SetInParent()
    return request


def _read_all(stub, timeout: float | None) -> None:
    for _ in stub.Read(_all_entries(), timeout=timeout):
        pass


def cancelled_reads(address: str, stop: threading.Event, counts: dict) -> None:
    """Reads of every entry with counters, cancelled by a deadline while in flight."""
    channel = grpc.insecure_channel(address)
    stub = p4runtime_pb2_grpc.P4RuntimeStub(channel)
    _cycle(stop, counts, [lambda d=d: _read_all(stub, d) for d in (0.0005, 0.001, 0.002, 0.005, 0.01)])
    channel.close()


def concurrent_unary(address: str, stop: threading.Event, counts: dict) -> None:
    """Reads, pipeline reads (ALL: the whole bmv2 JSON) and Capabilities at once on one channel."""
    channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 256 << 20)])
    stub = p4runtime_pb2_grpc.P4RuntimeStub(channel)
    calls: list[Callable[[], object]] = [
        lambda: _read_all(stub, 30),
        lambda: stub.GetForwardingPipelineConfig(p4r.GetForwardingPipelineConfigRequest(
            device_id=0, response_type=p4r.GetForwardingPipelineConfigRequest.ALL), timeout=30),
        lambda: stub.Capabilities(p4r.CapabilitiesRequest(), timeout=30),
    ]
    _cycle(stop, counts, calls)
    channel.close()


def cancelled_pipeline_reads(address: str, stop: threading.Event, counts: dict) -> None:
    """GetForwardingPipelineConfig(ALL) cancelled by a deadline while the server writes the JSON."""
    channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 256 << 20)])
    stub = p4runtime_pb2_grpc.P4RuntimeStub(channel)
    request = p4r.GetForwardingPipelineConfigRequest(device_id=0, response_type=p4r.GetForwardingPipelineConfigRequest.ALL)
    _cycle(stop, counts, [lambda d=d: stub.GetForwardingPipelineConfig(request, timeout=d)
                          for d in (0.0005, 0.002, 0.01)])
    channel.close()


def stream_churn(address: str, stop: threading.Event, counts: dict) -> None:
    """Backup StreamChannels opened, arbitrated and cancelled in a loop (a controller reconnecting)."""
    i = 0
    while not stop.is_set():
        i += 1
        conn = SwitchConnection(address, election_id=(0, next(_ids)), name=f"churn{i}")
        try:
            conn.connect(timeout=5)
            counts["completed"] = counts.get("completed", 0) + 1
        except SwitchError as error:
            counts[type(error).__name__] = counts.get(type(error).__name__, 0) + 1
        finally:
            conn.close()


def rearbitration(address: str, stop: threading.Event, counts: dict) -> None:
    """One stream re-arbitrating with a new election id over and over, while it is primary."""
    conn = SwitchConnection(address, election_id=(0, next(_ids)), name="rearb")
    conn.connect(timeout=5)
    i = 0
    try:
        while not stop.is_set():
            i += 1
            try:
                conn.become_primary((0, next(_ids)))
                counts["completed"] = counts.get("completed", 0) + 1
            except SwitchError as error:
                counts[type(error).__name__] = counts.get(type(error).__name__, 0) + 1
                break
    finally:
        conn.close()


def closed_mid_read(address: str, stop: threading.Event, counts: dict) -> None:
    """A channel closed while a Read and the stream are in flight on it."""
    while not stop.is_set():
        conn = SwitchConnection(address, election_id=(0, next(_ids)), name="closer")
        try:
            conn.connect(timeout=5)
            reader = threading.Thread(target=lambda: _swallow(conn.read_table_entries, with_counters=True))
            reader.start()
            time.sleep(0.002)
            conn.close()
            reader.join()
            counts["completed"] = counts.get("completed", 0) + 1
        except SwitchError as error:
            counts[type(error).__name__] = counts.get(type(error).__name__, 0) + 1
            conn.close()


def same_id_reconnect(address: str, stop: threading.Event, counts: dict) -> None:
    """A controller that restarts or reconnects: its stream cancelled abruptly
    (as a killed process, or p4tap before issue 27, ended it) with a Read in
    flight, then the same election id arbitrating again at once, while the old
    stream may still be registered at the switch."""
    election = (0, next(_ids))
    while not stop.is_set():
        conn = SwitchConnection(address, election_id=election, name="restarting")
        try:
            conn.connect(timeout=5)
        except SwitchError as error:  # e.g. "Election id already exists": the old stream not yet gone
            counts[type(error).__name__] = counts.get(type(error).__name__, 0) + 1
            conn.close()
            continue
        reader = threading.Thread(target=lambda: _swallow(conn.read_table_entries, with_counters=True))
        reader.start()
        call, channel = conn._stream_call, conn._channel
        if call is not None:
            call.cancel()
        if channel is not None:
            channel.close()
        reader.join()
        conn.close()
        counts["completed"] = counts.get("completed", 0) + 1


def _cycle(stop: threading.Event, counts: dict, calls: list[Callable[[], object]]) -> None:
    """Make `calls` in turn until `stop`, counting each one completed or the status it failed with."""
    i = 0
    while not stop.is_set():
        try:
            calls[i % len(calls)]()
            counts["completed"] = counts.get("completed", 0) + 1
        except grpc.RpcError as error:
            _count_error(counts, error)
        i += 1


def _count_error(counts: dict, error: grpc.RpcError) -> None:
    """Count a failed RPC by its code; keep the first details of each code."""
    key = error.code().name
    counts[key] = counts.get(key, 0) + 1
    counts.setdefault(f"{key} e.g.", (error.details() or "")[:120])


def _swallow(call: Callable, **kw) -> None:
    try:
        call(**kw)
    except (SwitchError, grpc.RpcError, ValueError):
        pass


PATTERNS: dict[str, tuple[Callable, int]] = {  # name -> (worker, how many threads)
    "cancelled-reads": (cancelled_reads, 4),
    "concurrent-unary": (concurrent_unary, 6),
    "cancelled-pipeline-reads": (cancelled_pipeline_reads, 3),
    "stream-churn": (stream_churn, 2),
    "rearbitration": (rearbitration, 1),
    "closed-mid-read": (closed_mid_read, 2),
    "same-id-reconnect": (same_id_reconnect, 1),
}


def run_pattern(name: str, seconds: float, target: str, workdir: Path) -> dict:
    worker, threads = PATTERNS[name]
    switch = Bmv2Switch(ports={}, target=target, name=name, workdir=workdir / name, log_file=workdir / f"{name}.log")
    switch.start()
    try:
        controller = Controller([SwitchConfig("s1", switch.grpc_address, lab_topology(), election_id=ELECTION)],
                                workdir / name / "intent.db", workdir / name / "audit.jsonl")
        controller.start()  # pipeline and forwarding entries, and a primary stream that stays open
        counts: dict[str, int] = {}
        stop = threading.Event()
        workers = [threading.Thread(target=worker, args=(switch.grpc_address, stop, counts), daemon=True)
                   for _ in range(threads)]
        started = time.monotonic()
        for w in workers:
            w.start()
        died_after = None
        while time.monotonic() - started < seconds:
            if switch.wait(timeout=0.5) is not None:
                died_after = time.monotonic() - started
                break
        stop.set()
        for w in workers:
            w.join(10)
        controller.stop()
        alive = switch.alive
        return {"pattern": name, "seconds": round(time.monotonic() - started, 1), "threads": threads,
                "survived": alive, "exit": None if alive else describe_exit(switch.returncode),
                "died_after": None if died_after is None else round(died_after, 1), "rpcs": counts}
    finally:
        switch.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("patterns", nargs="*", metavar="PATTERN", help=f"which (default all): {', '.join(PATTERNS)}")
    parser.add_argument("--seconds", type=float, default=60.0, help="per pattern (default 60)")
    parser.add_argument("--switch", choices=["bmv2", "softswitch"], default="bmv2")
    args = parser.parse_args(argv)
    unknown = [p for p in args.patterns if p not in PATTERNS]
    if unknown:
        parser.error(f"unknown pattern(s) {', '.join(unknown)}: use {', '.join(PATTERNS)}")
    reason = target_skip_reason(args.switch)
    if reason:
        print(f"p4rt_patterns: {reason}", file=sys.stderr)
        return 2
    results = []
    with tempfile.TemporaryDirectory(prefix="p4tap-patterns-") as tmp:
        for name in args.patterns or PATTERNS:
            result = run_pattern(name, args.seconds, args.switch, Path(tmp))
            results.append(result)
            print(json.dumps(result), flush=True)
    return 0 if all(r["survived"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
