"""The controller starts with a switch down, and warrants end on time on the
switches that answer (issue 18, "always start").

Two switches hold two intercepts; one switch is then stopped and the
controller started again. It must start, serve the switch that answers and
say the other is down (status, audit); when the short intercept's Timeout
passes, it must be gone from the healthy switch at once: neither the down
switch's failed write nor its reconnect backoff may hold the expiry back.
The switch that was down, once started, is reconciled to exactly the live
intercept. Each step waits on the event it needs (the expiry listener, the
switch-state listener); the controller's clock is moved past the Timeout, so
no step depends on how fast the machine is.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

from bmv2_topo.bmv2_switch import Bmv2Switch
from controller.service import Controller, SwitchConfig
from controller.switch import SwitchConnection
from ptf_tests.base import MD_A, MD_B, OTHER, SUBJECT, lab_topology
from tests.conftest import needs_switch
from tests.test_switch_recovery import WAIT, Clock, tap

ELECTION = (0, 5)  # the controller's; the test reads as a backup with a lower one
SHORT = timedelta(minutes=10)


def entries(switch: Bmv2Switch) -> int:
    with SwitchConnection(switch.grpc_address, election_id=(0, 1)) as observer:
        return len(observer.read_table_entries())


def configs(*switches: Bmv2Switch) -> list[SwitchConfig]:
    return [SwitchConfig(f"s{n}", s.grpc_address, lab_topology(), election_id=ELECTION)
            for n, s in enumerate(switches, start=1)]


@needs_switch
def test_starts_with_a_switch_down_and_expires_on_time_on_the_other(tmp_path: Path) -> None:
    clock = Clock()
    s1 = Bmv2Switch(ports={}, name="s1", workdir=tmp_path / "s1", log_file=tmp_path / "s1.log")
    s2 = Bmv2Switch(ports={}, name="s2", workdir=tmp_path / "s2", log_file=tmp_path / "s2.log")
    s1.start()
    s2.start()
    try:
        store, audit = tmp_path / "intent.db", tmp_path / "audit.jsonl"
        with Controller(configs(s1, s2), store, audit, clock=clock) as first:
            first.start()
            now = clock()
            first.provision(*tap(41, SUBJECT, MD_A, timedelta(hours=2), now), actor="test")
            live_only = entries(s1)
            first.provision(*tap(42, OTHER, MD_B, SHORT, now), actor="test")
            assert entries(s1) > live_only
        s2.stop()

        expired = threading.Event()
        states: list[tuple[str, bool]] = []
        came_back = threading.Event()

        def on_state(name: str, up: bool) -> None:
            states.append((name, up))
            if (name, up) == ("s2", True):
                came_back.set()

        with Controller(configs(s1, s2), store, audit, clock=clock) as second:
            second.on_expired(lambda m: m.content_id == 42 and expired.set())
            second.on_switch_state(on_state)
            second.start(connect_timeout=2.0)  # s2 does not answer: this must not raise
            assert second.switches["s1"].conn.is_primary
            assert not (second.switches["s2"].conn and second.switches["s2"].conn.connected)
            assert "switch-down" in audit.read_text()

            clock.offset += SHORT  # 42's Timeout passes while s2 is down
            assert expired.wait(WAIT), "the short intercept did not expire"
            assert entries(s1) == live_only, "the expired intercept stayed on the switch that answers"
            assert [i[0].content_id for i in second.intercepts()] == [41]

            s2.start()  # same address: the controller finds it and reconciles it to the live intercept only
            assert came_back.wait(WAIT), f"s2 was not reconciled after it came back: {states}"
            assert entries(s2) == live_only
    finally:
        s1.stop()
        s2.stop()
