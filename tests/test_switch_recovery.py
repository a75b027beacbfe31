"""A switch process that dies mid-traffic comes back by itself (issue 27).

On real bmv2 and on the softswitch, with real packets on veth pairs: the
switch is killed with SIGSEGV (as bmv2's gRPC server crashed under the IAP)
while traffic flows; the keeper (bmv2_topo.keeper) restarts it on the same
ports and address, the controller notices the lost stream, counts and audits
the outage, pushes the pipeline and reconciles. Forwarding and every live
intercept come back; an intercept whose Timeout passed while the switch was
down does not.

The outage is held open by the keeper's before_restart hook until the
controller has seen the switch go and the short intercept has expired: every
step waits on the event it needs (the controller's switch-state and expiry
listeners, the keeper's restart), never on a guess of how long it takes. The
expiry is reached by moving the controller's clock forward (its injection
point for time), so the Timeout falls inside the outage however slow the
machine.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path


from bmv2_topo.bmv2_switch import Bmv2Switch
from bmv2_topo.keeper import Outage, SwitchKeeper
from bmv2_topo.veth import veth_pairs
from bmv2_topo.wire import Wire
from controller.model import InetAddressType, IpFilter, Mediation, Stream
from controller.service import Controller, SwitchConfig
from ptf_tests.base import MD_A, MD_B, OTHER, PEER, PORTS, SUBJECT, lab_topology, pcli_copy, tcp4
from tests.conftest import needs_root

pytestmark = [needs_root]

WAIT = 30.0  # seconds any one awaited event may take before the test fails (never reached when it works)
SHIFT = timedelta(seconds=120)  # how far the controller's clock moves during the outage
BACKGROUND_SPORT = 41000  # the background flow's source port (probes use tcp4's default)



class Clock:
    """The controller's clock: real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset


def tap(content_id: int, subject, md, lifetime: timedelta, now: datetime) -> tuple[Mediation, list[Stream]]:
    m = Mediation(content_id, ipaddress.ip_address(md.ipv4), 7000, timeout=now + lifetime)
    address = ipaddress.ip_address(subject.ipv4)
    return m, [Stream(content_id, 1, IpFilter(InetAddressType.IPV4, src_address=address, src_length=32), True),
               Stream(content_id, 2, IpFilter(InetAddressType.IPV4, dst_address=address, dst_length=32), True)]


def probe(wire: Wire, ifaces: dict[int, str], frm, to) -> dict[int, list[bytes]]:
    """Send one packet from `frm` to `to`; what each port's host end received (half a second's worth)."""
    wire.drain()
    wire.send(ifaces[frm.port], bytes(tcp4(frm, to)))
    got = wire.collect(0.5)
    return {port: got[iface] for port, iface in ifaces.items()}


class Background:
    """The subject's and the other subscriber's flows to the peer, about 200
    packets/s each, until stopped: the switch dies under traffic."""

    def __init__(self, wire: Wire, ifaces: dict[int, str]) -> None:
        self.frames = {host.port: bytes(tcp4(host, PEER, sport=BACKGROUND_SPORT)) for host in (SUBJECT, OTHER)}
        self._wire, self._ifaces = wire, ifaces
        self._stop = threading.Event()
        self.sent = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            for port, frame in self.frames.items():
                try:
                    self._wire.send(self._ifaces[port], frame)
                except OSError:  # the kernel may refuse while the switch end has no reader
                    continue
                self.sent += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def test_switch_killed_mid_traffic_comes_back_with_live_intercepts_only(target: str, tmp_path: Path) -> None:
    clock = Clock()
    ups: list[bool] = []
    state_changed = threading.Condition()
    expired = threading.Event()

    def on_state(name: str, up: bool) -> None:
        with state_changed:
            ups.append(up)
            state_changed.notify_all()

    def wait_state(count: int) -> bool:
        with state_changed:
            return state_changed.wait_for(lambda: len(ups) >= count, WAIT)

    def hold_down(outage: Outage) -> None:
        """The switch is dead: the controller must see it go (and report its
        intercepts as not held), then the short intercept's Timeout passes."""
        assert wait_state(1) and ups[0] is False, "the controller did not notice the switch die"
        held[0] = [c.held for c in controller.counters(21).values()]
        clock.offset += SHIFT
        expired.wait(WAIT)

    held: list[list[bool]] = [[]]
    with veth_pairs(PORTS, prefix="p4tk") as pairs:
        ifaces = {p.port: p.host_end for p in pairs}
        switch = Bmv2Switch(ports={p.port: p.switch_end for p in pairs}, target=target, name=target,
                            workdir=tmp_path / "switch", log_file=tmp_path / f"{target}.log")
        switch.start()
        try:
            with Wire(ifaces.values()) as wire, \
                    Controller([SwitchConfig("s1", switch.grpc_address, lab_topology())], tmp_path / "intent.db",
                               tmp_path / "audit.jsonl", clock=clock) as controller:
                controller.on_switch_state(on_state)
                controller.on_expired(lambda m: m.content_id == 22 and expired.set())
                controller.start()
                now = clock()
                live = tap(21, SUBJECT, MD_A, timedelta(hours=1), now)
                short = tap(22, OTHER, MD_B, SHIFT / 2, now)  # ends while the switch is down
                controller.provision(*live, actor="test")
                controller.provision(*short, actor="test")
                got = probe(wire, ifaces, SUBJECT, PEER)
                assert bytes(tcp4(SUBJECT, PEER)) in got[PEER.port]
                assert got[MD_A.port] == [pcli_copy(tcp4(SUBJECT, PEER), 21, MD_A)]
                assert probe(wire, ifaces, OTHER, PEER)[MD_B.port] == [pcli_copy(tcp4(OTHER, PEER), 22, MD_B)]

                with SwitchKeeper({"s1": switch}, before_restart=hold_down) as keeper:
                    background = Background(wire, ifaces)
                    try:
                        seen = wire.collect(0.3)
                        assert background.frames[SUBJECT.port] in seen[ifaces[PEER.port]], "no traffic before the kill"
                        dead_pid = switch.pid
                        os.kill(dead_pid, signal.SIGSEGV)
                        assert keeper.wait_restarted("s1", timeout=2 * WAIT), "the keeper did not restart the switch"
                        assert wait_state(2) and ups[1] is True, "the controller did not reconcile the restarted switch"
                        # under traffic still: the flows are forwarded and the live tap copies them again
                        wire.drain()
                        seen = wire.collect(0.5)
                        assert background.frames[SUBJECT.port] in seen[ifaces[PEER.port]], "forwarding did not resume"
                        assert background.frames[OTHER.port] in seen[ifaces[PEER.port]]
                        assert pcli_copy(tcp4(SUBJECT, PEER, sport=BACKGROUND_SPORT), 21, MD_A) \
                            in seen[ifaces[MD_A.port]]
                        assert seen[ifaces[MD_B.port]] == [], "the expired intercept came back"
                    finally:
                        background.stop()
                outage = keeper.outages[0]
                assert (outage.pid, outage.returncode, switch.pid != dead_pid) == (dead_pid, -signal.SIGSEGV, True)
                assert keeper.count("s1") == 1 and controller.outages["s1"] == 1
                assert held[0] == [False, False], "during the outage the tap was reported as held"

                wire.drain()
                got = probe(wire, ifaces, SUBJECT, PEER)
                assert bytes(tcp4(SUBJECT, PEER)) in got[PEER.port]
                assert got[MD_A.port] == [pcli_copy(tcp4(SUBJECT, PEER), 21, MD_A)]
                got = probe(wire, ifaces, OTHER, PEER)
                assert bytes(tcp4(OTHER, PEER)) in got[PEER.port]
                assert got[MD_B.port] == [], "the expired intercept came back"
                assert [m.content_id for m, _, _ in controller.intercepts()] == [21]
                assert all(c.held for c in controller.counters(21).values())

            records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
            actions = [(r["action"], r["detail"].get("content_id")) for r in records
                       if r["action"] in ("switch-down", "expire", "switch-up")]
            assert actions == [("switch-down", None), ("expire", 22), ("switch-up", None)]
            down = next(r for r in records if r["action"] == "switch-down")
            assert down["detail"]["content_ids"] == [21, 22] and down["detail"]["outage"] == 1
        finally:
            switch.stop()


def test_a_switch_its_owner_stops_is_left_stopped(target: str, tmp_path: Path) -> None:
    """The keeper restarts deaths, not the owner's stop: it lets go of the switch."""
    switch = Bmv2Switch(ports={}, target=target, name=target, workdir=tmp_path / "switch")
    switch.start()
    keeper = SwitchKeeper({"s1": switch}).start()
    try:
        switch.stop()
        assert keeper.wait_let_go("s1", timeout=WAIT), "the keeper still watches a switch its owner stopped"
        assert keeper.outages == [] and not switch.alive
    finally:
        keeper.stop()
        switch.stop()
