"""Intercepts across an IAP restart (issue 18): what the controller, the SNMP
agent and the MD's keeper each do, and that they agree.

p4tap's intent is durable: an IAP (controller and agent) that restarts comes
back with every intercept, its MIB rows included; the MD's keeper sees
sysUpTime go back, reads the tables and provisions nothing, and no
ciscoTap2Switchover is sent. When the intent could not be kept (the store was
lost), the controller audits `intent-lost` naming the intercepts, the agent
sends ciscoTap2Switchover (net-snmp's snmptrapd receives it, as the MD's own
inform receiver does) and the keeper, woken by it, provisions them again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


from mediation.config import Endpoint, IapSettings, InterceptSpec, subject_filters
from mediation.informs import InformReceiver
from mediation.keeper import Keeper
from tests.snmp_support import (AUTH_KEY, MED, PRIV_KEY, TAP2, TrapReceiver, free_udp_port, mediation_pdu,
                                filter_pdu, needs_net_snmp, start_agent, stream_pdu, switch_controller, tap_switch)

pytestmark = needs_net_snmp

CID, OTHER = 4242, 4343
SWITCHOVER, MIB_ACTIVE = f".{TAP2}.0.5", f".{TAP2}.0.1"


@contextmanager
def iap(home: Path, switch, port: int, notify: str) -> Iterator:
    """An IAP on loopback, its state in `home`: the controller and the agent on `port`."""
    controller = switch_controller(home, switch)
    controller.start()
    try:
        running = start_agent(home, controller, notify=notify, listen=f'"127.0.0.1:{port}"')
        try:
            yield running
        finally:
            running.agent.stop()
    finally:
        controller.stop()


def audit_until_answered(keeper: Keeper) -> None:
    """One audit that reached the IAP (a restarted agent has a new engine: the
    first try may fail and make the keeper start afresh)."""
    before = keeper.status.audits
    deadline = time.monotonic() + 30
    while keeper.status.audits == before:
        assert time.monotonic() < deadline, keeper.status.events
        keeper.audit()


def held(controller) -> set[int]:
    return {m.content_id for m, _, _ in controller.intercepts()}


def audit_records(home: Path) -> list[dict]:
    return [json.loads(line) for line in (home / "audit.jsonl").read_text().splitlines()]


def test_intercepts_survive_a_restart_and_a_lost_store_sends_switchover(tmp_path: Path, tap_switch) -> None:
    home = tmp_path / "iap"
    home.mkdir()
    port, md_port, trapd_port = free_udp_port(), free_udp_port(), free_udp_port()
    notify = "".join(f'\n[[notify]]\ntarget = "127.0.0.1:{p}"\nuser = "md1"\ntype = "inform"\ntimeout = 1.0\n'
                     f"retries = 5\n" for p in (md_port, trapd_port))
    trapd = TrapReceiver(tmp_path, trapd_port)
    settings = IapSettings(Endpoint("127.0.0.1", port), "md1", AUTH_KEY, PRIV_KEY, timeout=1.0, retries=0,
                           audit_interval=600)
    keeper = Keeper(settings, [InterceptSpec(CID, Endpoint("203.0.113.10", 7000), subject_filters("192.0.2.10"),
                                             3600)])
    receiver = InformReceiver(Endpoint("127.0.0.1", md_port), settings, keeper.on_notification)
    receiver.start()
    try:
        with iap(home, tap_switch, port, notify) as running:
            audit_until_answered(keeper)
            assert CID in held(running.controller) and keeper.status.intercepts[CID].provisioned == 1
            assert running.controller.intent_lost == []

        # a restart: the controller and the agent come back with the intent
        with iap(home, tap_switch, port, notify) as running:
            assert running.controller.intent_lost == []
            audit_until_answered(keeper)
            assert keeper.status.restarts_seen == 1 and keeper.status.kept_across_last_restart == 1
            assert keeper.status.intercepts[CID].provisioned == 1, keeper.status.events  # nothing to do again
            assert "INTEGER: 1" in running.net.get(f"{MED}.13.{CID}").out  # the row is there, active
            # a marker after the start: its ciscoTap2MIBActive arrives; no switchover came before it
            for pdu in (mediation_pdu(OTHER), filter_pdu(OTHER, 1, src="192.0.2.20"), stream_pdu(OTHER, 1)):
                assert running.net.set(*pdu).code == 0
            trapd.wait_for(f"{MIB_ACTIVE}", seconds=30)
            assert SWITCHOVER not in trapd.text()
            assert not any(n.kind == "switchover" for n in receiver.received)

        # the store is lost: the restart cannot keep the intent, and says so
        for name in ("intent.db", "intent.db-wal", "intent.db-shm"):
            (home / name).unlink(missing_ok=True)
        with iap(home, tap_switch, port, notify) as running:
            assert running.controller.intent_lost == [CID, OTHER]
            lost = [r for r in audit_records(home) if r["action"] == "intent-lost"]
            assert len(lost) == 1 and lost[0]["detail"]["content_ids"] == [CID, OTHER]
            text = trapd.wait_for(SWITCHOVER, seconds=30)
            assert f"OID: {SWITCHOVER}" in text
            deadline = time.monotonic() + 30
            while not any(n.kind == "switchover" for n in receiver.received):
                assert time.monotonic() < deadline, "the MD's inform receiver got no ciscoTap2Switchover"
                time.sleep(0.05)
            assert keeper._wake.is_set(), "a switchover must make the keeper audit at once"
            assert held(running.controller) == set()
            audit_until_answered(keeper)
            assert CID in held(running.controller), keeper.status.events
            assert keeper.status.intercepts[CID].provisioned == 2
            assert keeper.status.kept_across_last_restart == 0
    finally:
        receiver.stop()
        keeper.close()
        trapd.stop()
