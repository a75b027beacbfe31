"""The switch's clock as the data plane's lifetime check sees it.

Each encapsulation entry carries its mediation's *last tick*: the last value
of the switch clock (meta.now, a 32-bit count of ticks) at which a copy may
still leave (p4src/include/encap.p4). So that a copy past its Timeout is
never emitted, controller alive or not, the controller must turn a Timeout
(wall-clock time) into switch ticks without ever placing it later than the
Timeout. It learns the clock by a probe: a packet-out that the pipeline
answers, to the CPU port alone, with a packet-in carrying meta.now and the
tick's length. With the probe sent at wall time t0 and its answer read at
t1, the switch read tick n somewhere in [t0, t1]; at a later wall time W the
clock reads at least n + floor((W - t1) / tick). The last tick for a
Timeout W is one below that, so the data plane stops a copy at most one
tick plus the probe's round trip before W, never after (clock drift aside:
the clock is re-measured at every connect and lease renewal).

A restarted switch restarts its clock (bmv2 counts from its start): the
controller probes again at every connect.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from controller.pipeline import Pipeline
from controller.switch import SwitchConnection, SwitchError

# How far ahead of the last renewal a switch carries its mediations' ends on
# its own. With the controller away for longer, every copy stops (fail safe:
# nothing is sent that the controller could no longer end). An hour outlasts
# a controller restart or upgrade by far, yet lies well inside what a last
# tick can be ahead of the clock (2^31 ticks: 25 days on bmv2, 39 h on Tofino).
LEASE = timedelta(hours=1)
TICK_SPACE = 1 << 32  # meta.now wraps here; a last tick is right while less than half of it away
PROBES = 3  # the probe with the shortest round trip is kept
PROBE_WAIT = 2.0  # seconds to wait for each answer
PROBE_PAYLOAD = b"p4tap clock probe"  # never leaves the switch: answered to the CPU port alone


@dataclass(frozen=True)
class SwitchClock:
    """One probe's answer: the switch read `tick` no later than wall time `read_by`."""

    tick: int
    tick_ns: int
    read_by: datetime
    round_trip: timedelta

    @property
    def resolution(self) -> timedelta:
        """How much earlier than its Timeout the data plane may stop a copy."""
        return timedelta(microseconds=self.tick_ns / 1000) + self.round_trip

    @property
    def horizon(self) -> timedelta:
        """How far ahead a last tick may lie and still compare right (2^31 ticks)."""
        return timedelta(microseconds=(TICK_SPACE // 2 - 1) * self.tick_ns / 1000)

    def last_tick(self, deadline: datetime) -> int:
        """The last switch tick at which a copy may leave so that none leaves
        at or after `deadline` (a tick is read at most once per tick length)."""
        elapsed_ns = (deadline - self.read_by) // timedelta(microseconds=1) * 1000
        return (self.tick + elapsed_ns // self.tick_ns - 1) % TICK_SPACE


def probe(conn: SwitchConnection, pipeline: Pipeline, now: Callable[[], datetime], name: str = "switch") -> SwitchClock:
    """Measure the switch clock through the pipeline's clock probe.

    `now` gives the wall time (timezone-aware, like Timeouts). Raises
    SwitchError with a clear reason when the switch does not answer (a
    bmv2 started without --cpu-port, for instance)."""
    ids = _packet_in_ids(pipeline)
    best: SwitchClock | None = None
    for _ in range(PROBES):
        _drain(conn.packet_ins)
        sent = now()
        conn.send_packet_out(PROBE_PAYLOAD, [(_packet_out_id(pipeline), b"\x00")])
        deadline = time.monotonic() + PROBE_WAIT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SwitchError(f"{name}: no answer to the clock probe within {PROBE_WAIT:g} s: the switch's "
                                  f"CPU port must be the pipeline's (bmv2: --cpu-port 510)", operation="clock probe")
            try:
                answer = conn.packet_ins.get(timeout=left)
            except queue.Empty:
                continue
            fields = {m.metadata_id: int.from_bytes(m.value, "big") for m in answer.metadata}
            if ids["now"] in fields and fields.get(ids["tick_ns"]):
                break
        read = now()
        clock = SwitchClock(fields[ids["now"]], fields[ids["tick_ns"]], read, read - sent)
        if best is None or clock.round_trip < best.round_trip:
            best = clock
    assert best is not None
    return best


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


def _packet_out_id(pipeline: Pipeline) -> int:
    for cpm in pipeline.p4info.controller_packet_metadata:
        if cpm.preamble.name == "packet_out":
            return cpm.metadata[0].id
    raise SwitchError("the pipeline has no packet_out header: it cannot be probed for its clock",
                      operation="clock probe")


def _packet_in_ids(pipeline: Pipeline) -> dict[str, int]:
    for cpm in pipeline.p4info.controller_packet_metadata:
        if cpm.preamble.name == "packet_in":
            return {m.name: m.id for m in cpm.metadata}
    raise SwitchError("the pipeline has no packet_in header: it cannot be probed for its clock",
                      operation="clock probe")
