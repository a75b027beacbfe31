"""Helpers for the software-switch tests: run a switch target on veth pairs,
push a pipeline and state over P4Runtime, send frames, collect what comes
out of every port, and read back table entries (with direct counters) and
indirect counters -- so the same scenario can be replayed on bmv2 and on the
softswitch and the results compared.

Interfaces are veth pairs named ``p4ts*`` (created here, removed after).
"""

from __future__ import annotations

import select
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from p4protos import p4info_pb2
from p4protos import p4runtime_pb2 as p4r

from bmv2_topo.bmv2_switch import Bmv2Switch
from bmv2_topo.veth import VethPair, veth_pairs
from controller.switch import SwitchConnection
from softswitch.ports import Port

__all__ = ["Capture", "RunResult", "hosts_on", "normalize_reads", "run_scenario"]


class Capture:
    """Host ends of the veth pairs: send frames, collect frames (VLAN tags restored)."""

    def __init__(self, pairs: Sequence[VethPair]) -> None:
        self.ports = {p.port: Port(p.port, p.host_end) for p in pairs}

    def send(self, port: int, frame: bytes) -> None:
        self.ports[port].send(frame)

    def collect(self, seconds: float, quiet: float | None = None) -> dict[int, list[bytes]]:
        """Frames per port for ``seconds``, or until nothing arrived for ``quiet`` seconds."""
        out: dict[int, list[bytes]] = {n: [] for n in self.ports}
        by_fd = {p.fileno(): p for p in self.ports.values()}
        end = time.monotonic() + seconds
        last = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= end or (quiet is not None and now - last >= quiet):
                break
            wait = end - now if quiet is None else min(end - now, quiet - (now - last))
            ready, _, _ = select.select(list(by_fd), [], [], max(wait, 0.0))
            for fd in ready:
                port = by_fd[fd]
                frames = port.recv_burst(256)
                if frames:
                    out[port.number].extend(frames)
                    last = time.monotonic()
        return out

    def drain(self) -> None:
        self.collect(0.05)

    def close(self) -> None:
        for p in self.ports.values():
            p.close()


@contextmanager
def hosts_on(ports: list[int], prefix: str = "p4ts") -> Iterable[tuple[list[VethPair], Capture]]:
    with veth_pairs(ports, prefix=prefix) as pairs:
        cap = Capture(pairs)
        try:
            yield pairs, cap
        finally:
            cap.close()


@contextmanager
def switch_running(target: str, pairs: Sequence[VethPair], cap: Capture, p4info: p4info_pb2.P4Info, device_config: bytes,
                   workdir: Path, election_id: tuple[int, int] = (0, 1),
                   **switch_kw) -> Iterator[tuple[Bmv2Switch, SwitchConnection]]:
    """`target` on the switch ends of `pairs`, running the pipeline, with a
    primary connection and the captures drained; stopped on exit."""
    sw = Bmv2Switch(ports={p.port: p.switch_end for p in pairs}, target=target, workdir=workdir, name=target,
                    **switch_kw)
    sw.start(timeout=30)
    try:
        with SwitchConnection(sw.grpc_address, election_id=election_id) as conn:
            conn.set_pipeline(p4info, device_config)
            cap.drain()
            yield sw, conn
    finally:
        sw.stop()


@dataclass
class RunResult:
    target: str
    outputs: dict[int, list[bytes]]
    entities: list[p4r.Entity] = field(default_factory=list)
    write_errors: list = field(default_factory=list)
    per_packet: list[dict[int, list[bytes]]] = field(default_factory=list)


def run_scenario(target: str, pairs: Sequence[VethPair], cap: Capture, p4info: p4info_pb2.P4Info,
                 device_config: bytes, updates: Sequence[p4r.Update], frames: Sequence[tuple[int, bytes]],
                 reads: Sequence[p4r.Entity], workdir: Path, *, burst: int = 8, pace: float = 0.1,
                 settle: float = 1.0,
                 per_packet: bool = False, cpu_port: int | None = None,
                 priority_queues: int | None = None) -> RunResult:
    """Start ``target`` on the switch ends, push the pipeline and ``updates``,
    send ``frames`` (``(port, bytes)``) from the host ends, collect outputs,
    then read ``reads``.  With ``per_packet`` every frame's outputs are
    collected separately (slower, exact attribution).

    Otherwise frames go in bursts of ``burst``, each followed by a wait until
    nothing has come out for ``pace`` seconds: a switch or a capture starved
    of CPU on a busy machine then falls behind by at most a burst, which no
    receive buffer or egress queue (bmv2 keeps 64 packets per queue) would
    drop, so what is compared is what the pipeline does, not how fast the
    machine is. Meters here are burst-only (no rate), so their colours do not
    depend on the pacing either."""
    sw = Bmv2Switch(ports={p.port: p.switch_end for p in pairs}, target=target, workdir=workdir / target,
                    name=target, log_level="warn", cpu_port=cpu_port, priority_queues=priority_queues)
    sw.start(timeout=30)
    try:
        with SwitchConnection(sw.grpc_address, election_id=(0, 1)) as conn:
            conn.set_pipeline(p4info, device_config)
            errors = []
            from controller.switch import WriteError
            try:
                conn.write_batched(list(updates), batch_size=500)
            except WriteError as e:
                errors = e.errors
            cap.drain()
            result = RunResult(target, {n: [] for n in cap.ports}, write_errors=errors)
            if per_packet:
                for port, frame in frames:
                    cap.send(port, frame)
                    got = cap.collect(2.0, quiet=0.15)
                    result.per_packet.append(got)
                    for n, fs in got.items():
                        result.outputs[n].extend(fs)
            else:
                for start in range(0, len(frames), burst):
                    for port, frame in frames[start:start + burst]:
                        cap.send(port, frame)
                    for n, fs in cap.collect(10.0, quiet=pace).items():
                        result.outputs[n].extend(fs)
                for n, fs in cap.collect(30.0, quiet=settle).items():
                    result.outputs[n].extend(fs)
            result.entities = conn.read(list(reads)) if reads else []
            return result
    finally:
        assert sw.alive, f"{target} died during the scenario; see {sw.log_path}"
        sw.stop()


def normalize_reads(entities: Iterable[p4r.Entity]) -> list[bytes]:
    """Read results as a sorted list of serialized entities (order-insensitive
    comparison; replicas of a group in a canonical order, as P4Runtime leaves
    their order open)."""
    out = []
    for e in entities:
        if e.HasField("packet_replication_engine_entry"):
            e = p4r.Entity.FromString(e.SerializeToString())
            pre = e.packet_replication_engine_entry
            grp = pre.clone_session_entry if pre.HasField("clone_session_entry") else pre.multicast_group_entry
            reps = sorted(grp.replicas, key=lambda r: r.SerializeToString(deterministic=True))
            del grp.replicas[:]
            grp.replicas.extend(reps)
        out.append(e.SerializeToString(deterministic=True))
    return sorted(out)
