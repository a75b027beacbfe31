"""Lifetime in the data plane (issue 18): an intercept's copies stop at its
Timeout whether or not the controller is alive to remove it.

Each encapsulation entry carries its mediation's last tick on the switch's
own clock (controller.clock, p4src/include/encap.p4): egress drops a copy
made later. Here the controller (`p4tap controller run`) is SIGKILLed while
traffic flows, the Timeout passes, and the mediation device must receive no
copy captured after the Timeout (plus DELIVERY_SLACK, the switch's own
latency from egress to the wire: the data plane stops copies at most a tick
and a probe round trip *before* the Timeout, never after), while forwarding
goes on byte-identical. Also after a switch restart (its clock restarted:
the controller must measure it again), and a lease that the controller
renews keeps a long intercept copying until the controller goes away, then
stops it by the lease end though its Timeout is an hour off. On bmv2 and
the softswitch.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bmv2_topo.wire import Recorder, Wire
from controller.control import request
from controller.entries import ENCAP_TABLE
from controller.pipeline import P4TAP, Pipeline
from controller.service import Controller, SwitchConfig
from controller.switch import SwitchConnection
from ptf_tests.base import MD_A, PEER, SUBJECT, lab_topology, pcli_copy, tcp4
from tests.conftest import lab_network, needs_root, needs_switch
from tests.test_controller_deployment import controller_daemon, lab_config, p4tap
from tests.test_switch_recovery import Clock, tap

pytestmark = [needs_switch, needs_root,
              pytest.mark.skipif(not P4TAP.exists(), reason="compiled pipeline missing in build/: run `make p4`")]

LIFETIME = 15  # seconds from `tap add` to the Timeout: room for a loaded machine to kill the controller first
DELIVERY_SLACK = 0.5  # seconds a copy let through before the Timeout may take to reach the wire
WAIT = 60.0  # the most any condition below is waited for
CONTENT_ID = 42
PKT = bytes(tcp4(SUBJECT, PEER, sport=41000))
COPY = pcli_copy(tcp4(SUBJECT, PEER, sport=41000), CONTENT_ID, MD_A)


class Sender:
    """The subject's flow to the peer, a packet every 10 ms, until stopped."""

    def __init__(self, wire: Wire, interface: str) -> None:
        self._wire, self._interface = wire, interface
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            try:
                self._wire.send(self._interface, PKT)
            except OSError:  # the kernel may refuse while the switch end has no reader
                continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {WAIT:g} s"
        time.sleep(0.05)


def copying(wire: Wire, ifaces: dict[int, str]) -> bool:
    """One packet of the subject's gets its copy to the MD."""
    wire.drain()
    wire.send(ifaces[SUBJECT.port], PKT)
    return COPY in wire.collect(0.3)[ifaces[MD_A.port]]


def received(frames, interface: str, since: float, frame: bytes | None = None) -> list[bytes]:
    """Frames the switch sent out of `interface` captured at or after `since`."""
    return [data for stamp, name, outgoing, data in frames
            if name == interface and not outgoing and stamp >= since and (frame is None or data == frame)]


def timeout_of(sock: Path, content_id: int) -> datetime:
    listed = {t["mediation"]["content_id"]: t for t in request(sock, {"op": "list"})}
    return datetime.fromisoformat(listed[content_id]["mediation"]["timeout"])


@contextmanager
def tapped_lab(target: str, tmp_path: Path) -> Iterator[tuple]:
    """The lab on `target`, a controller daemon on it, and intercept 42 of
    the subject with a Timeout LIFETIME seconds off, copying."""
    with lab_network(tmp_path, prefix="p4tl", target=target) as (switch, ifaces, wire):
        config = lab_config(tmp_path, switch.grpc_address)
        with controller_daemon(config) as daemon:
            sock = tmp_path / "control.sock"
            p4tap("--socket", str(sock), "tap", "add", "--content-id", str(CONTENT_ID), "--md", f"{MD_A.ipv4}:7000",
                  "--subject", SUBJECT.ipv4, "--lifetime", str(LIFETIME))
            timeout = timeout_of(sock, CONTENT_ID)
            wait_for(lambda: copying(wire, ifaces), "copy of the intercepted flow")
            yield switch, ifaces, wire, daemon, timeout, config


def kill_and_watch_past(daemon, wire: Wire, ifaces: dict[int, str], timeout: datetime) -> tuple[list, float]:
    """SIGKILL the controller under traffic, keep the traffic up until the
    Timeout is DELIVERY_SLACK + 1 s past; every frame of MD and peer, and the kill's time."""
    with Recorder([ifaces[MD_A.port], ifaces[PEER.port]]) as recorder:
        sender = Sender(wire, ifaces[SUBJECT.port])
        try:
            daemon.send_signal(signal.SIGKILL)
            daemon.wait(timeout=WAIT)
            killed_at = time.time()
            assert killed_at < timeout.timestamp(), "the machine was too slow: the Timeout passed before the kill"
            end = timeout.timestamp() + DELIVERY_SLACK + 1.0
            wait_for(lambda: time.time() > end, "end of the watch")
        finally:
            sender.stop()
        frames = recorder.stop()
    assert daemon.returncode == -signal.SIGKILL
    return frames, killed_at


def check_stopped_at_timeout(frames, ifaces: dict[int, str], killed_at: float, timeout: datetime) -> None:
    md, peer = ifaces[MD_A.port], ifaces[PEER.port]
    late = timeout.timestamp() + DELIVERY_SLACK
    assert received(frames, md, killed_at, COPY), "no copy after the kill: the tap stopped before its Timeout"
    assert received(frames, md, late) == [], \
        f"{len(received(frames, md, late))} copies reached the MD after the Timeout with the controller dead"
    forwarded = received(frames, peer, late)
    assert forwarded and set(forwarded) == {PKT}, "forwarding after the Timeout is not the packet as sent"


def expired_copies(switch) -> int:
    """The switch's count of copies its data plane dropped at their mediation's end."""
    pipeline = Pipeline.load()
    counter = next(c.preamble.id for c in pipeline.p4info.counters if c.preamble.name.endswith("expired_copies"))
    with SwitchConnection(switch.grpc_address, election_id=(0, 1)) as conn:
        return sum(e.data.packet_count for e in conn.read_counter(counter))


def test_copies_stop_at_the_timeout_with_the_controller_killed(target: str, tmp_path: Path) -> None:
    """...and the controller, when it returns, removes the intercept and
    reports its expiry as before."""
    with tapped_lab(target, tmp_path) as (switch, ifaces, wire, daemon, timeout, config):
        frames, killed_at = kill_and_watch_past(daemon, wire, ifaces, timeout)
        check_stopped_at_timeout(frames, ifaces, killed_at, timeout)
        assert expired_copies(switch) > 0, "the data plane counted no copy it stopped"
        with controller_daemon(config):
            wait_for(lambda: not request(tmp_path / "control.sock", {"op": "list"}), "removal by the controller back")
        assert '"expire"' in (tmp_path / "state" / "audit.jsonl").read_text()


def test_a_restarted_switch_gets_its_clock_measured_again(target: str, tmp_path: Path) -> None:
    """bmv2 counts time from its start: after a restart the expiry written
    on the old clock would land seconds late. The switch runs a few seconds
    first, so that a clock not measured again would show."""
    with tapped_lab(target, tmp_path) as (switch, ifaces, wire, daemon, timeout, _):
        up_since = time.monotonic()  # the switch started earlier still
        wait_for(lambda: time.monotonic() - up_since >= 3.0, "three seconds of the switch's clock")
        switch.restart()
        wait_for(lambda: copying(wire, ifaces), "copy after the switch restart (controller reconciled)")
        frames, killed_at = kill_and_watch_past(daemon, wire, ifaces, timeout)
        check_stopped_at_timeout(frames, ifaces, killed_at, timeout)


def test_a_renewed_lease_keeps_copying_and_an_unrenewed_one_stops(target: str, tmp_path: Path) -> None:
    """A lease of 3 s, an intercept of an hour: copies flow for three lease
    lengths while the controller renews it, and stop by the lease end once
    the controller is gone (it renews nothing), an hour before the Timeout."""
    lease = timedelta(seconds=3)
    with lab_network(tmp_path, prefix="p4tl", target=target) as (switch, ifaces, wire):
        config = SwitchConfig("s1", switch.grpc_address, lab_topology(), lease=lease)
        controller = Controller([config], tmp_path / "intent.db", tmp_path / "audit.jsonl", clock=Clock())
        controller.start()
        try:
            mediation, streams = tap(CONTENT_ID, SUBJECT, MD_A, timedelta(hours=1), datetime.now(timezone.utc))
            controller.provision(mediation, streams, actor="test")
            first_end = controller.switches["s1"].builder.lease_end
            renewed_past = first_end + 2 * lease
            wait_for(lambda: controller.switches["s1"].builder.lease_end > renewed_past, "lease renewals")
            assert copying(wire, ifaces), "a renewed lease stopped the copies"
        finally:
            controller.stop()  # gone: the switch keeps its entries, nobody renews their lease
        lease_end = controller.switches["s1"].builder.lease_end
        with Recorder([ifaces[MD_A.port], ifaces[PEER.port]]) as recorder:
            sender = Sender(wire, ifaces[SUBJECT.port])
            end = lease_end.timestamp() + DELIVERY_SLACK + 1.0
            try:
                wait_for(lambda: time.time() > end, "end of the watch")
            finally:
                sender.stop()
            frames = recorder.stop()
        late = lease_end.timestamp() + DELIVERY_SLACK
        assert received(frames, ifaces[MD_A.port], late) == [], "copies went on past the lease end"
        assert set(received(frames, ifaces[PEER.port], late)) == {PKT}
