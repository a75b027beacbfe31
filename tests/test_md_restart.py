"""Derived taps across a restart of the MD (issue 15): the demo's radius
network (bmv2_topo/radius_scenario.py) through a real switch, the real IAP
(controller + SNMPv3 agent, `python -m mib_bridge`) and the real MD process
(`p4tap md listen`) in its namespace.

alice's Accounting-Start (radclient, a real NAS client) makes the MD
provision her data tap over SNMPv3; then the MD dies (SIGKILL) or is
stopped (SIGTERM) and a new one starts on the same config. Asserted:

- the IAP kept her intercept all along: no removal of it in the IAP's
  audit log between the first MD's provisioning and her Stop (completeness:
  she is never blind, and the new MD neither removes nor re-adds it);
- what the subject sends after the restart still reaches her agency;
- her Stop, sent to the new MD, removes exactly her tap (minimality: the
  new MD knows the session it never saw start).

And a damaged state file: said in one log line, the new MD runs without it
and its keeper removes the intercept nobody wants any more.

The MD here runs without --remove-on-exit (with it, a clean stop tears the
derived taps down on purpose; the new MD provisions them again).
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from pathlib import Path

import pytest

from bmv2_topo import radius_scenario
from bmv2_topo.demo import Options, Progress, new_run
from bmv2_topo.layouts import PEER, SUBJECT
from bmv2_topo.supervise import Child
from tests.conftest import needs_root, needs_switch
from tests.radius_support import needs_radclient

pytestmark = [needs_root, needs_switch, needs_radclient]
ALICE = radius_scenario.CCCID_ALICE
WAIT = 60.0


def until(status_file: Path, condition, what: str) -> dict:
    return radius_scenario.until(status_file, condition, what, WAIT)


def kept(status: dict, cccid: int = ALICE) -> dict:
    return status.get("keeper", {}).get("intercepts", {}).get(str(cccid), {})


def copied(status: dict, cccid: int = ALICE) -> int:
    return sum(i["packets"] for i in status.get("content", {}).get("intercepts", []) if i["cccid"] == cccid)


def audit_records(run_dir: Path, cccid: int = ALICE) -> list[dict]:
    """The IAP's audit log's records of `cccid`, in order (each change: its intent, then its outcome)."""
    records = [json.loads(line) for line in (run_dir / "iap-state" / "audit.jsonl").read_text().splitlines()]
    return [r for r in records if r["detail"].get("content_id") == cccid or cccid in r["detail"].get("content_ids", ())]


def agency_packets(status: dict, agency: str = "lea-a", cccid: int = ALICE) -> int:
    return sum(a["counts"].get(str(cccid), {}).get("packets", 0) for a in status.get("content", {}).get("agencies", [])
               if a["name"] == agency)


def start_md(run, hosts, name: str) -> Child:
    """`p4tap md listen` on the demo's config, in the MD's namespace, without --remove-on-exit."""
    return Child(hosts["md"], name, [sys.executable, "-m", "p4tap_cli", "md", "listen", "--config",
                                     str(run.out / "md.toml")], run.out / f"{name}.log")


def restarted(run, hosts, status_file: Path, md: Child, how: signal.Signals) -> Child:
    """`md` ended by `how`; a new MD on the same config, once it has audited the IAP."""
    md.proc.send_signal(how)
    md.proc.wait(30)
    assert md.proc.returncode in (0, -signal.SIGKILL), md.failure()
    md.stop()
    status_file.unlink()
    again = start_md(run, hosts, "md-again")
    until(status_file, lambda s: s.get("pid") == again.proc.pid and s.get("keeper", {}).get("audits", 0) >= 1,
          "the new MD audited the IAP")
    return again


@pytest.fixture
def demo_radius(tmp_path):
    """The demo's radius network brought up, its MD (with --remove-on-exit) keeping the RADIUS signalling tap:
    (run, hosts, status file, md)."""
    run = new_run(Options("radius", "netns", tmp_path / "demo", lifetime=120), Progress())
    with contextlib.ExitStack() as stack:
        hosts, status_file, _, demo_md = run.bring_up(stack)
        yield run, hosts, status_file, demo_md


@pytest.fixture
def radius_network(demo_radius):
    """demo_radius with an MD without --remove-on-exit instead."""
    run, hosts, status_file, demo_md = demo_radius
    demo_md.stop()  # it tears its signalling tap down (--remove-on-exit): ours provisions it again
    status_file.unlink()
    md = start_md(run, hosts, "md-first")
    try:
        until(status_file, lambda s: kept(s, radius_scenario.CCCID_SIGNALLING).get("state") == "active",
              "the signalling tap provisioned")
        yield run, hosts, status_file, md
    finally:
        md.stop()


def alice_tapped(hosts, status_file: Path) -> None:
    radius_scenario.radclient(hosts, "Start", "alice", SUBJECT, "alice-1")
    until(status_file, lambda s: kept(s).get("state") == "active", "alice's tap provisioned")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_a_live_session_keeps_its_tap_across_an_md_restart_and_its_stop_removes_it(radius_network, how):
    run, hosts, status_file, md = radius_network
    alice_tapped(hosts, status_file)
    until(status_file, lambda s: [r["action"] for r in audit_records(run.out)] == ["provision-intent", "provision"] * 2,
          "the IAP's records of alice's tap")  # its mediation row and stream 1, then stream 2
    provisioned = audit_records(run.out)

    md = restarted(run, hosts, status_file, md, how)
    try:
        status = until(status_file, lambda s: kept(s).get("state") == "active", "alice's tap kept")
        assert kept(status)["provisioned"] == 0, "found at the IAP as wanted: not provisioned again"
        assert status["iri"]["derived_taps"][str(ALICE)]["parts"]["radius:alice-1"]["filters"] == \
            [f"src {SUBJECT}/32", f"dst {SUBJECT}/32"]
        assert audit_records(run.out) == provisioned, "the IAP's intercept was neither removed nor changed"
        (target,) = [t for t in status["iri"]["protocols"]["radius"]["targets"] if t["cccid"] == ALICE]
        assert [(x["session"], x["last"]) for x in target["sessions"]] == [("alice-1", "restored")], target

        # the subject's traffic still reaches her agency, through the new MD
        hosts["subject"].run("ping", "-c", "5", "-i", "0.05", "-W", "1", PEER, check=False)
        until(status_file, lambda s: agency_packets(s) == 10, "the pings and their replies at lea-a")
        assert audit_records(run.out) == provisioned

        # her Stop, which the new MD alone sees, removes exactly her tap
        radius_scenario.radclient(hosts, "Stop", "alice", SUBJECT, "alice-1")
        status = until(status_file, lambda s: str(ALICE) not in s["keeper"]["intercepts"]
                       and s["iri"]["derived_taps"] == {}, "alice's tap removed")
        after = [r["action"] for r in audit_records(run.out)[len(provisioned):]]
        assert after[-2:] == ["remove-intent", "remove"] and "remove" not in after[:-2], after  # streams, then the row
        assert kept(status, radius_scenario.CCCID_SIGNALLING)["state"] == "active"
        logs = {name: (run.out / f"{name}.log").read_text() for name in ("md-first", "md-again")}
        assert "ERROR" not in logs["md-first"] + logs["md-again"], logs
        assert "derived taps state: 1 tap(s) restored" in logs["md-again"], logs["md-again"]
        saved = json.loads((run.out / "md" / "derived-taps.json").read_text())
        assert saved["taps"] == {}
        assert oct((run.out / "md" / "derived-taps.json").stat().st_mode & 0o777) == "0o600"
    finally:
        md.stop()


def test_a_damaged_state_file_is_said_once_and_the_md_starts_without_it(radius_network):
    """Nobody wants alice's tap then (the session the file held is unknown): the new MD's keeper removes it."""
    run, hosts, status_file, md = radius_network
    alice_tapped(hosts, status_file)
    state = run.out / "md" / "derived-taps.json"
    md.proc.kill()
    md.proc.wait(30)
    state.write_text('{"version": 1, "taps": {"4242": {"parts": ')
    md = restarted(run, hosts, status_file, md, signal.SIGKILL)
    try:
        until(status_file, lambda s: [r["action"] for r in audit_records(run.out)][-2:] == ["remove-intent", "remove"],
              "the unwanted tap removed")
        status = until(status_file, lambda s: kept(s, radius_scenario.CCCID_SIGNALLING).get("state") == "active",
                       "the MD running")
        assert str(ALICE) not in status["keeper"]["intercepts"] and status["iri"]["derived_taps"] == {}
        said = [line for line in (run.out / "md-again.log").read_text().splitlines() if "derived taps state" in line]
        assert len(said) == 1 and "is not valid JSON" in said[0], said
        assert json.loads(state.read_text())["taps"] == {}, "the damaged file replaced"
    finally:
        md.stop()


def test_remove_on_exit_removes_the_tap_at_a_clean_stop_and_the_next_md_provisions_it_again(demo_radius):
    """The operator's choice: a clean stop leaves nothing at the IAP; the session goes on, so the next MD
    taps it again at once (before: not until her next Interim)."""
    run, hosts, status_file, md = demo_radius
    alice_tapped(hosts, status_file)
    assert md.stop() == 0, md.failure()
    assert [r["action"] for r in audit_records(run.out)][-2:] == ["remove-intent", "remove"]
    status_file.unlink()
    md = start_md(run, hosts, "md-again")
    try:
        status = until(status_file, lambda s: kept(s).get("state") == "active", "alice's tap provisioned again")
        assert kept(status)["provisioned"] == 1
        hosts["subject"].run("ping", "-c", "5", "-i", "0.05", "-W", "1", PEER, check=False)
        until(status_file, lambda s: agency_packets(s) == 10, "the pings and their replies at lea-a")
        radius_scenario.radclient(hosts, "Stop", "alice", SUBJECT, "alice-1")
        until(status_file, lambda s: str(ALICE) not in s["keeper"]["intercepts"], "alice's tap removed")
        assert [r["action"] for r in audit_records(run.out)][-2:] == ["remove-intent", "remove"]
    finally:
        md.stop()
