"""Meters and priority queues of the softswitch, as an ETS conditioner
(RFC 4190) uses them on bmv2: v1model two-rate three-colour meters (direct
and indirect, configured over P4Runtime), ``standard_metadata.priority``
choosing one of ``--priority-queues`` egress queues, strict priority between
them, and the queue depths and rates bmv2 sets through Thrift.

In process (no root): the ss_qos fixture runs packet by packet on a clock
the test drives, so token buckets and queue departures are exact.  On real
interfaces (root): the queue settings go through the Thrift server of each
target -- bmv2 and the softswitch -- and the same frames give the same result.
"""

from __future__ import annotations

import random
import shutil
import subprocess

import pytest
from p4protos import p4runtime_pb2 as p4r

from softswitch.externs import GREEN, RED, YELLOW, Meter
from softswitch.queues import EgressBuffers, QueueError
from softswitch.thrift import UNKNOWN_METHOD, ThriftClient, ThriftError, ThriftServer
from tests.conftest import needs_root
from tests.test_softswitch_p4runtime import Ids, te, upd
from tests.test_softswitch_program import FIXTURES, Rig, bits

needs_fixture = pytest.mark.skipif(not (FIXTURES / "ss_qos.json").exists(),
                                   reason="compiled fixture missing (tests/fixtures/softswitch/ss_qos.json)")
INSERT, MODIFY = p4r.Update.INSERT, p4r.Update.MODIFY
RES = [("dcolor", 8), ("icolor", 8), ("prio", 8), ("enq", 32), ("deq", 32)]
UNTOUCHED = 0xEE           # what ss_qos puts in a colour no meter wrote


def qos_frame(op: int, cls: int = 1, idx: int = 0, prio: int = 0, port: int = 2, tag: int = 0) -> bytes:
    return (b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x88\xb8" + bytes([op, cls, idx, prio, port]) +
            tag.to_bytes(2, "big") + bytes(20))


def result(frame: bytes) -> dict[str, int]:
    """The res header egress appended after eth (14 bytes) and qos (5), and the frame's tag."""
    r = bits(frame[19:], RES)
    r["tag"] = int.from_bytes(frame[30:32], "big")
    return r


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _meter_cfg(cir: int, cburst: int, pir: int, pburst: int) -> p4r.MeterConfig:
    return p4r.MeterConfig(cir=cir, cburst=cburst, pir=pir, pburst=pburst)


def classify(ids: Ids, cls: int, green: int, other: int, meter: p4r.MeterConfig | None = None) -> p4r.TableEntry:
    e = te(ids, "cls", [("cls", "exact", bytes([cls]))], "classify", [bytes([green]), bytes([other])])
    if meter is not None:
        e.meter_config.CopyFrom(meter)
    return e


def idx_meter(ids: Ids, index: int, cfg: p4r.MeterConfig) -> p4r.MeterEntry:
    m = p4r.MeterEntry(meter_id=ids.meter("idx_meter"), config=cfg)
    m.index.index = index
    return m


# ----------------------------------------------------------------------------- meters


class TrTcm:
    """RFC 2698 colour-blind trTCM with bmv2's token accounting
    (bm_sim/meters.cpp): tokens accrue as floor(microseconds since the meter
    was created * rate) and are capped at the burst; the peak bucket is
    tested first, a red packet takes no tokens, a yellow one only peak tokens."""

    def __init__(self, cir_per_us: float, cbs: int, pir_per_us: float, pbs: int, t0: float) -> None:
        self.buckets = [[pir_per_us, pbs, pbs, 0, RED], [cir_per_us, cbs, cbs, 0, YELLOW]]
        self.t0 = t0

    def colour(self, size: int, now: float) -> int:
        us = int((now - self.t0) * 1_000_000)
        for b in self.buckets:
            accrued = int(us * b[0])
            b[2] = min(b[2] + accrued - b[3], b[1])
            b[3] = accrued
            if b[2] < size:
                return b[4]
            b[2] -= size
        return GREEN


def test_meter_token_arithmetic_by_hand():
    """1000 B/s committed (burst 100), 2000 B/s peak (burst 200), 100-byte packets."""
    m = Meter(packets=False, t0=0.0)
    assert m.execute(100, now=0.0) == GREEN            # unconfigured: always green
    assert m.set_rates([(0.001, 100), (0.002, 200)])
    seq = [(0.0, GREEN), (0.0, YELLOW), (0.0, RED),    # peak 200 -> 100 -> 0; committed 100 -> 0
           (0.05, YELLOW),                              # +100 peak, +50 committed: 50 < 100
           (0.10, GREEN),                               # +100 peak, +50 committed: 100
           (0.10, RED)]
    assert [m.execute(100, now=t) for t, _ in seq] == [c for _, c in seq]
    assert not Meter(True, 0.0).set_rates([(0.002, 1), (0.001, 1)])   # committed above peak: refused


@pytest.mark.parametrize("seed", range(4))
def test_meter_matches_trtcm_reference(seed):
    rng = random.Random(seed)
    cir, pir = rng.choice([0.0, 0.0005, 0.01, 1.5]), 0.0
    pir = cir + rng.choice([0.0, 0.001, 0.5, 3.0])
    cbs, pbs = rng.randrange(0, 3000), rng.randrange(0, 5000)
    packets = rng.random() < 0.5
    m = Meter(packets, t0=5.0)
    assert m.set_rates([(cir, cbs), (pir, pbs)])
    ref = TrTcm(cir, cbs, pir, pbs, t0=5.0)
    t = 5.0
    for _ in range(2000):
        t += rng.choice([0.0, 0.0, 1e-6, 3.7e-5, 1e-3, 0.02])
        size = rng.randrange(60, 1500)
        assert m.execute(size, now=t) == ref.colour(1 if packets else size, t)


@needs_fixture
def test_meters_choose_the_priority():
    """Direct (bytes) and indirect (packets) meters on packets, zero refill:
    colours follow the bursts; the colour picks the priority queue."""
    rig = Rig("ss_qos", priority_queues=8)
    ids = rig.ids
    n = len(qos_frame(1))
    rig.write(upd(INSERT, table_entry=classify(ids, 1, 7, 1, _meter_cfg(0, 2 * n, 0, 3 * n))),
              upd(MODIFY, meter_entry=idx_meter(ids, 2, _meter_cfg(0, 1, 0, 2))))
    got = []
    for _ in range(4):
        (port, frame), = rig.send(1, qos_frame(1, cls=1, idx=2, port=3))
        r = result(frame)
        got.append((port, r["dcolor"], r["icolor"], r["prio"]))
    assert got == [(3, GREEN, GREEN, 7), (3, GREEN, YELLOW, 7), (3, YELLOW, RED, 1), (3, RED, RED, 1)]
    # an index beyond the meter array leaves the colour as it was (bmv2 with its checks);
    # a table miss runs no direct meter
    (_, frame), = rig.send(1, qos_frame(1, cls=1, idx=16))
    assert result(frame)["icolor"] == UNTOUCHED
    (_, frame), = rig.send(1, qos_frame(1, cls=9, idx=0))
    assert result(frame)["dcolor"] == UNTOUCHED and result(frame)["prio"] == 0
    # an unconfigured meter is green
    (_, frame), = rig.send(1, qos_frame(1, cls=1, idx=5))
    assert result(frame)["icolor"] == GREEN


@needs_fixture
def test_direct_meter_belongs_to_the_entry_handle():
    """bmv2 never resets a direct meter: an entry inserted where a deleted one
    was keeps its rates and tokens (a read shows them, packets see them)."""
    rig = Rig("ss_qos", priority_queues=8)
    ids = rig.ids
    n = len(qos_frame(1))
    rig.write(upd(INSERT, table_entry=classify(ids, 1, 7, 1, _meter_cfg(0, n, 0, n))))
    rig.send(1, qos_frame(1, cls=1))                          # takes the only tokens
    rig.write(upd(p4r.Update.DELETE, table_entry=classify(ids, 1, 7, 1)),
              upd(INSERT, table_entry=classify(ids, 4, 7, 1)))  # same handle, no meter config
    (_, frame), = rig.send(1, qos_frame(1, cls=4))
    assert result(frame)["dcolor"] == RED
    st, = rig.dev.read(p4r.ReadRequest(entities=[p4r.Entity(direct_meter_entry=p4r.DirectMeterEntry(
        table_entry=classify(ids, 4, 0, 0)))]))[0]
    assert (st.direct_meter_entry.config.cburst, st.direct_meter_entry.config.pburst) == (n, n)


# ----------------------------------------------------------------------------- priority queues


@needs_fixture
def test_priority_beyond_the_queues_is_dropped():
    rig = Rig("ss_qos", priority_queues=4)
    assert [p for p, _ in rig.send(1, qos_frame(0, prio=3))] == [2]
    assert rig.send(1, qos_frame(0, prio=4)) == []
    assert rig.sw.stats["dropped"] == 1


@needs_fixture
def test_strict_priority_under_a_rate_limit():
    """Port 2 limited to 1 packet/s per queue: three low (0) and three high (7)
    priority packets wait; at every departure time the high one leaves first.
    Port 3 has no limit and is not held up.  Egress sees the queue depths."""
    clock = Clock()
    rig = Rig("ss_qos", priority_queues=8, clock=clock)
    rig.sw.buffers.set_rate(1, port=2)              # creates port 2's queues now: first departure in 1 s
    out = rig.out
    for i in range(3):
        assert rig.send(1, qos_frame(2, prio=0, tag=i)) == []
    for i in range(3):
        assert rig.send(1, qos_frame(2, prio=7, tag=10 + i)) == []
    assert [p for p, _ in rig.send(1, qos_frame(0, prio=0, port=3))] == [3]
    assert rig.sw.next_departure() == clock.t + 1
    order = []
    for step in range(1, 4):
        out.clear()
        clock.t = 1000.0 + step - 1e-9
        rig.sw.service()
        assert out == []                                 # not yet
        clock.t = 1000.0 + step
        nxt = rig.sw.service()
        assert nxt == (clock.t + 1 if step < 3 else None)
        order.append([(p, result(f)["tag"], result(f)["enq"], result(f)["deq"]) for p, f in out])
    # (port, tag, queue depth at enqueue, depth left behind at dequeue)
    assert order == [[(2, 10, 0, 2), (2, 0, 0, 2)], [(2, 11, 1, 1), (2, 1, 1, 1)], [(2, 12, 2, 0), (2, 2, 2, 0)]]


@needs_fixture
def test_queue_depth_tail_drop():
    clock = Clock()
    rig = Rig("ss_qos", priority_queues=8, clock=clock)
    rig.sw.buffers.set_rate(1, port=2)
    rig.sw.buffers.set_capacity(2, port=2, priority=0)
    for i in range(5):
        rig.send(1, qos_frame(0, prio=0, tag=i))
    assert rig.sw.stats["dropped"] == 3
    clock.t += 10
    rig.out.clear()
    rig.sw.service()
    assert [result(f)["tag"] for _, f in rig.out] == [0, 1]
    rig.sw.buffers.set_capacity(0, port=2, priority=7)      # a queue of depth 0 takes nothing
    assert rig.send(1, qos_frame(0, prio=7)) == [] and rig.sw.stats["dropped"] == 4


def test_queue_settings_are_checked():
    b = EgressBuffers(4)
    with pytest.raises(QueueError, match="priority 4"):
        b.set_rate(10, port=1, priority=4)
    with pytest.raises(QueueError, match="negative"):
        b.set_capacity(-1)
    with pytest.raises(QueueError):
        EgressBuffers(0)
    b.set_rate(5)                                   # all ports, and the default for new ones
    assert b.queue(9, 3).delay == pytest.approx(0.2)


# ----------------------------------------------------------------------------- Thrift


@needs_fixture
def test_thrift_queue_settings_in_process():
    rig = Rig("ss_qos", priority_queues=8)
    server = ThriftServer(0, rig.sw, lambda: rig.json)
    server.start()
    try:
        with ThriftClient("127.0.0.1", server.port) as c:
            c.set_queue_rate(4, port=2)
            c.set_queue_depth(5, port=2, priority=7)
            c.set_queue_rate(9, port=3, priority=1)
            assert rig.sw.buffers.queue(2, 0).delay == pytest.approx(0.25)
            assert rig.sw.buffers.queue(2, 7).capacity == 5 and rig.sw.buffers.queue(2, 6).capacity == 64
            assert rig.sw.buffers.queue(3, 1).delay == pytest.approx(1 / 9) and rig.sw.buffers.queue(3, 0).delay == 0
            with pytest.raises(ThriftError, match="priority 8 is out of range"):
                c.set_queue_depth(1, port=2, priority=8)
            with pytest.raises(ThriftError, match="mirroring_session_get") as ei:
                c.call("simple_switch", "mirroring_session_get", [(1, 8, 1)])
            assert ei.value.kind == UNKNOWN_METHOD
            assert c.call("standard", "bm_get_config", []) == rig.json
            assert c.call("simple_switch", "get_time_elapsed_us", []) >= 0
        if shutil.which("simple_switch_CLI"):
            # bmv2's own CLI drives the softswitch's queues
            r = subprocess.run(["simple_switch_CLI", "--thrift-port", str(server.port)], capture_output=True,
                               text=True, timeout=120, input="set_queue_rate 2 4\nset_queue_depth 3 4 6\n",
                               check=False)
            assert r.returncode == 0, r.stdout + r.stderr
            assert rig.sw.buffers.queue(4, 0).delay == pytest.approx(0.5)
            assert rig.sw.buffers.queue(4, 6).capacity == 3
    finally:
        server.stop()


# ----------------------------------------------------------------------------- real interfaces


@needs_root
@needs_fixture
@pytest.mark.parametrize("target", ["softswitch", "bmv2"])
def test_queue_settings_on_real_ports(tmp_path, target):
    """Through each target's Thrift server: a queue of depth 0 drops that
    priority only; a rate-limited queue holds packets back and then lets
    them all go, in order."""
    from bmv2_topo.bmv2_switch import target_skip_reason
    from tests.softswitch_support import hosts_on, switch_running
    from tests.test_softswitch_p4runtime import load_fixture

    reason = target_skip_reason(target)
    if reason:
        pytest.skip(f"{target}: {reason}")
    p4info, cfg = load_fixture("ss_qos")
    with hosts_on([1, 2, 3], prefix="p4tsq") as (pairs, cap):
        with switch_running(target, pairs, cap, p4info, cfg, tmp_path, election_id=(0, 5),
                            priority_queues=8) as (sw, conn):
            sw.set_queue_depth(0, port=2, priority=7)
            for i in range(5):
                cap.send(1, qos_frame(0, prio=7, tag=i))
                cap.send(1, qos_frame(0, prio=0, tag=100 + i))
            got = cap.collect(10.0, quiet=2.0)     # generous: the machine may be shared
            assert sorted(result(f)["tag"] for f in got[2]) == [100, 101, 102, 103, 104]
            sw.set_queue_depth(64, port=2, priority=7)
            for i in range(3):
                cap.send(1, qos_frame(0, prio=7, tag=i))
            got = cap.collect(10.0, quiet=2.0)
            assert sorted(result(f)["tag"] for f in got[2]) == [0, 1, 2]
            # 1 packet/s from the moment the queue is set: three packets cannot all leave at once
            sw.set_queue_rate(1, port=3)
            for i in range(3):
                cap.send(1, qos_frame(0, prio=0, port=3, tag=200 + i))
            early = cap.collect(0.4)[3]
            assert len(early) < 3, "the rate limit did not hold packets back"
            late = cap.collect(15.0, quiet=4.0)[3]
            assert [result(f)["tag"] for f in early + late] == [200, 201, 202]
            assert sw.alive
