"""The mediation device's side of interface d against p4tap's real SNMPv3
agent (pysnmp, UDP on loopback): the keeper provisions with the three-PDU
sequence, refreshes the Timeout, notices an IAP that stopped answering and
provisions again after the IAP came back without its intercepts; the inform
receiver gets ciscoTap2MIBActive and ciscoTap2MediationTimedOut; and the
`p4tap md` commands drive it all.

The controller behind the agent drives a real switch without ports
(tests/snmp_support.py's tap_switch): these tests are about SNMP, not
packets (tests/test_e2e_demo.py has both).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mediation.config import Endpoint, IapSettings, InterceptSpec, load, subject_filters
from mediation.informs import InformReceiver
from mediation.keeper import Keeper, client_for
from mediation.snmp_client import Filter
from tests.snmp_support import (
    AUTH_KEY,
    PRIV_KEY,
    free_udp_port,
    needs_net_snmp,
    start_agent,
    switch_controller,
    tap_switch,
)

CID = 4242
MD = Endpoint("203.0.113.10", 7000)


def iap_settings(port: int, **kw) -> IapSettings:
    return IapSettings(Endpoint("127.0.0.1", port), "md1", AUTH_KEY, PRIV_KEY, timeout=1.0, retries=0, **kw)


def spec(lifetime: float = 60) -> InterceptSpec:
    return InterceptSpec(CID, MD, subject_filters("192.0.2.10"), lifetime)


@contextlib.contextmanager
def iap(home: Path, switch, port: int | None = None, notify: str = "") -> Iterator[tuple]:
    """An IAP on loopback: a controller on `switch` and the real SNMPv3 agent,
    on `port` (a fresh one if None); yields (controller, agent port)."""
    home.mkdir(exist_ok=True)
    port = port or free_udp_port()
    controller = switch_controller(home, switch)
    controller.start()
    try:
        running = start_agent(home, controller, notify=notify, listen=f'"127.0.0.1:{port}"')
        try:
            yield controller, port
        finally:
            running.agent.stop()
    finally:
        controller.stop()


def held(controller) -> dict[int, tuple]:
    return {m.content_id: (m, s) for m, s, _ in controller.intercepts()}


def test_keeper_provisions_refreshes_and_provisions_again_after_an_iap_restart(tmp_path, tap_switch):
    port = free_udp_port()
    keeper = Keeper(iap_settings(port), [spec(lifetime=60)])
    kept = keeper.status.intercepts[CID]
    try:
        with iap(tmp_path / "a", tap_switch, port) as (controller, _):
            # 1. first audit: missing, so provisioned (mediation, then filter + stream per direction)
            keeper.audit()
            mediation, streams = held(controller)[CID]
            assert (str(mediation.dest_address), mediation.dest_port) == ("203.0.113.10", 7000)
            assert [(str(s.filter.src_address), str(s.filter.dst_address)) for s in streams] == \
                [("192.0.2.10", "None"), ("None", "192.0.2.10")]
            assert (kept.state, kept.provisioned, kept.refreshed) == ("active", 1, 0)

            # 2. as wanted and far from its Timeout: left alone
            keeper.audit()
            assert (kept.provisioned, kept.refreshed) == (1, 0)

            # 3. less than half the lifetime left: the Timeout is refreshed, nothing else changes
            with client_for(keeper.iap) as client:
                client.refresh(CID, datetime.now(timezone.utc) + timedelta(seconds=20))
            keeper.audit()
            assert (kept.provisioned, kept.refreshed) == (1, 1)
            timeout = held(controller)[CID][0].timeout
            assert timeout > datetime.now(timezone.utc) + timedelta(seconds=50)

            # 4. a stream destroyed at the IAP: the keeper puts the intercept right
            with client_for(keeper.iap) as client:
                client.remove(CID, [2], [2], mediation=False)
            assert len(held(controller)[CID][1]) == 1
            keeper.audit()
            assert kept.provisioned == 2 and "1 of 2 streams" in kept.last_problem
            assert len(held(controller)[CID][1]) == 2

        # 5. the IAP goes away: noticed, reported once
        keeper.audit()
        keeper.audit()
        assert keeper.status.reachable is False
        assert sum("stopped answering" in e for e in keeper.status.events) == 1

        # 6. it comes back on the same address with empty tables (a restarted IAP; the MIB is volatile)
        with iap(tmp_path / "b", tap_switch, port) as (controller, _):
            assert controller.intercepts() == []
            keeper.audit()
            assert keeper.status.reachable is True
            assert any("answers again" in e for e in keeper.status.events)
            assert CID in held(controller) and len(held(controller)[CID][1]) == 2
            assert kept.provisioned == 3 and kept.last_problem == "missing at the IAP"

            # 7. and the MD tears it down when asked
            keeper.remove_all()
            assert controller.intercepts() == []
    finally:
        keeper.close()


def test_a_refused_intercept_is_reported_once_and_leaves_nothing_behind(tmp_path, tap_switch):
    unroutable = InterceptSpec(77, Endpoint("198.51.100.99", 7000), subject_filters("192.0.2.10"), 60)
    with iap(tmp_path, tap_switch) as (controller, port):
        keeper = Keeper(iap_settings(port), [unroutable, spec()])
        try:
            for _ in range(3):
                keeper.audit()
            kept = keeper.status.intercepts[77]
            assert kept.state == "failed" and "inconsistentValue" in kept.last_error
            assert sum("intercept 77:" in e and "inconsistentValue" in e for e in keeper.status.events) == 1
            with client_for(keeper.iap) as client:
                assert 77 not in client.intercepts(), "no half-provisioned rows left at the IAP"
            assert set(held(controller)) == {CID}, "the other intercept is kept regardless"
        finally:
            keeper.close()


def test_keeper_provisions_many_intercepts_with_several_in_flight(tmp_path, tap_switch):
    """After an IAP restart every intercept is missing: the keeper provisions
    them PROVISION_WINDOW at a time (each one's SETs still in order), and says
    every SET as it succeeds, as one at a time."""
    specs = [InterceptSpec(5000 + i, MD, (Filter(src=f"192.0.2.{100 + i}/32"),), 60) for i in range(12)]
    lines: list[str] = []
    with iap(tmp_path, tap_switch) as (controller, port):
        keeper = Keeper(iap_settings(port), specs, progress=lines.append)
        try:
            keeper.audit()
            assert {s.content_id for s in specs} <= set(held(controller))
            assert all(keeper.status.intercepts[s.content_id].state == "active" for s in specs)
        finally:
            keeper.close()
    assert len(lines) == 3 * len(specs)
    for s in specs:  # each intercept's SETs in the MIB's order
        mine = [line for line in lines if f".{s.content_id}" in line]
        assert [line.split(".")[0] for line in mine] == ["cTap2MediationEntry", "citapStreamEntry",
                                                          "cTap2StreamEntry"]
    first_done = lines.index(f"cTap2StreamEntry.{specs[0].content_id}.1 createAndGo: intercept enabled")
    assert any(f"cTap2MediationEntry.{specs[1].content_id} " in line for line in lines[:first_done]), \
        "the second intercept started before the first was done: several in flight"


def test_informs_reach_the_md_and_a_timed_out_intercept_is_provisioned_again(tmp_path, tap_switch):
    inform_port = free_udp_port()
    notify = f'\n[[notify]]\ntarget = "127.0.0.1:{inform_port}"\nuser = "md1"\ntype = "inform"\ntimeout = 1.0\n'
    with iap(tmp_path, tap_switch, notify=notify) as (controller, port):
        settings = iap_settings(port)
        keeper = Keeper(settings, [spec(lifetime=60)])
        receiver = InformReceiver(Endpoint("127.0.0.1", inform_port), settings, keeper.on_notification)
        receiver.start()
        try:
            keeper.audit()
            wait_for(lambda: sorted((n.kind, n.stream) for n in receiver.received) == [("active", 1), ("active", 2)])
            assert all(n.content_id == CID for n in receiver.received)
            assert keeper.status.intercepts[CID].active_notifications == 2

            # the Timeout passes (someone set it short): the agent says so, the keeper wakes up and provisions again
            with client_for(settings) as client:
                client.refresh(CID, datetime.now(timezone.utc) + timedelta(seconds=2))
            wait_for(lambda: any(n.kind == "timed_out" and n.content_id == CID for n in receiver.received), 15)
            assert keeper._wake.is_set(), "a TimedOut of a kept intercept must trigger an audit"
            assert CID not in held(controller)
            keeper.audit()
            assert CID in held(controller) and keeper.status.intercepts[CID].provisioned == 2
        finally:
            receiver.stop()
            keeper.close()


@needs_net_snmp
def test_inform_receiver_refuses_informs_below_the_users_security_level(tmp_path):
    port = free_udp_port()
    receiver = InformReceiver(Endpoint("127.0.0.1", port), iap_settings(1), lambda note: None)
    receiver.start()
    try:
        base = ["snmpinform", "-v3", "-u", "md1", "-a", "SHA-256", "-A", AUTH_KEY, "-m", "", "-t", "2", "-r", "1"]
        trap = ["", "1.3.6.1.4.1.9.9.399.0.2", "1.3.6.1.4.1.9.9.399.1.1.2.1.13.77", "i", "6"]
        env = {"SNMPCONFPATH": str(tmp_path), "SNMP_PERSISTENT_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
        low = subprocess.run(base + ["-l", "authNoPriv", f"udp:127.0.0.1:{port}"] + trap, capture_output=True,
                             text=True, env=env, timeout=30)
        assert low.returncode != 0 and "Unsupported security level" in low.stderr
        assert receiver.received == []
        subprocess.run(base + ["-l", "authPriv", "-x", "AES", "-X", PRIV_KEY, f"udp:127.0.0.1:{port}"] + trap,
                       capture_output=True, env=env, timeout=30)
        wait_for(lambda: receiver.received)
        assert [(n.kind, n.content_id) for n in receiver.received] == [("timed_out", 77)]
    finally:
        receiver.stop()


def wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def md(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "p4tap_cli", "md", *args], capture_output=True, text=True,
                          timeout=60, check=check)


def md_config(tmp_path, agent_port: int) -> str:
    path = tmp_path / "md.toml"
    path.write_text(textwrap.dedent(f"""
        [content]
        listen = ["127.0.0.1:{free_udp_port()}"]
        out_dir = "captures"

        [iap]
        address = "127.0.0.1:{agent_port}"
        user = "md1"
        auth_key = "{AUTH_KEY}"
        priv_key = "{PRIV_KEY}"
        audit_interval = 1

        [[intercept]]
        content_id = {CID}
        md = "203.0.113.10:7000"
        subject = "192.0.2.10"
        lifetime = 60

        [[intercept]]
        content_id = 4343
        md = "203.0.113.10:7000"
        filters = [{{ src = "192.0.2.10", protocol = 17, dst_ports = [5004, 5004] }}]
        lifetime = 60
    """))
    path.chmod(0o600)
    return str(path)


def test_md_commands_provision_show_and_remove(tmp_path, tap_switch):
    with iap(tmp_path, tap_switch) as (controller, port):
        config = md_config(tmp_path, port)
        out = md("provision", "--config", config).stdout
        assert f"cTap2MediationEntry.{CID} createAndGo" in out and f"intercept {CID}: provisioned" in out
        assert "citapStreamEntry.4343.1 createAndGo: src 192.0.2.10/32, protocol 17, dst ports 5004-5004" in out
        rtp = held(controller)[4343][1][0].filter
        assert (rtp.protocol, rtp.dst_port_min, rtp.dst_port_max) == (17, 5004, 5004)
        again = md("provision", "--config", config, "--content-id", str(CID)).stdout
        assert f"intercept {CID}: already active" in again

        status = md("status", "--config", config).stdout
        assert f"intercept {CID:>10}  active  to 203.0.113.10:7000" in status and "2/2 streams" in status
        assert "no status yet: is `p4tap md listen` running" in status
        as_json = json.loads(md("status", "--config", config, "--json").stdout)
        assert sorted(r["content_id"] for r in as_json["iap"]) == [CID, 4343]

        assert "removed" in md("remove", "--config", config, str(CID), "4343").stdout
        assert controller.intercepts() == []
        gone = md("remove", "--config", config, str(CID), check=False)
        assert gone.returncode == 1 and "not at the IAP" in gone.stderr

        # bad input: a clear error, nothing changed
        bad = md("provision", "--config", config, "--content-id", "99", check=False)
        assert bad.returncode == 1 and "no [[intercept]] with content_id 99" in bad.stderr
        (tmp_path / "md.toml").chmod(0o644)
        open_to_all = md("status", "--config", config, check=False)
        assert open_to_all.returncode == 1 and "chmod 600" in open_to_all.stderr
        assert controller.intercepts() == []


def test_md_listen_keeps_its_intercepts_and_reports_status(tmp_path, tap_switch):
    with iap(tmp_path, tap_switch) as (controller, port):
        config = md_config(tmp_path, port)
        status_file = load(tmp_path / "md.toml").status_file
        daemon = subprocess.Popen([sys.executable, "-m", "p4tap_cli", "md", "listen", "--config", config,
                                   "--remove-on-exit"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_for(lambda: {CID, 4343} <= set(held(controller)), 20)
            wait_for(status_file.exists)
            status = md("status", "--config", config).stdout
            assert f"intercept {CID}: active, provisioned 1x" in status and "IAP 127.0.0.1:" in status
            assert oct(status_file.stat().st_mode & 0o777) == "0o600"
            daemon.terminate()
            out = daemon.communicate(timeout=30)[0]
            assert daemon.returncode == 0, out
            assert controller.intercepts() == [], "--remove-on-exit tears the intercepts down"
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
    final = json.loads(status_file.read_text())
    assert final["running"] is False


def test_config_errors_name_the_problem(tmp_path):
    from mediation.config import ConfigError, parse

    cases = [
        ({"intercept": [{"content_id": 1, "md": "203.0.113.10:7000", "subject": "192.0.2.10"}]}, "needs [iap]"),
        ({"content": {"listen": ["203.0.113.10"]}}, "is not ADDRESS:PORT"),
        ({"agency": [{"name": "a", "cccids": [1], "file": "x", "udp": "127.0.0.1:1"}]}, "exactly one of"),
        ({"iap": {"address": "127.0.0.1:161", "user": "u", "auth_key": "short"}}, "shorter than 8"),
        ({"iap": {"address": "127.0.0.1:161", "user": "u", "auth_key": AUTH_KEY, "audit_interval": 40},
          "intercept": [{"content_id": 1, "md": "203.0.113.10:7000", "subject": "192.0.2.10", "lifetime": 60}]},
         "too short for"),
        ({"iap": {"address": "127.0.0.1:161", "user": "u", "auth_key": AUTH_KEY},
          "intercept": [{"content_id": 1, "md": "203.0.113.10:7000",
                         "filters": [{"src": "192.0.2.10", "dst_ports": [9, 1]}]}]}, "dst_ports must be"),
    ]
    for raw, message in cases:
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            parse(raw, tmp_path)


def test_filter_matches_what_the_iap_selects():
    from scapy.layers.inet import IP, TCP, UDP

    rtp = Filter(src="192.0.2.10/32", protocol=17, dst_ports=(5004, 5004))
    assert rtp.matches(bytes(IP(src="192.0.2.10", dst="192.0.2.20") / UDP(sport=1, dport=5004)))
    assert not rtp.matches(bytes(IP(src="192.0.2.10", dst="192.0.2.20") / UDP(sport=1, dport=5005)))
    assert not rtp.matches(bytes(IP(src="192.0.2.10", dst="192.0.2.20") / TCP(sport=1, dport=5004)))
    assert not rtp.matches(bytes(IP(src="192.0.2.11", dst="192.0.2.20") / UDP(sport=1, dport=5004)))
    assert Filter(dst="192.0.2.0/24").matches(bytes(IP(src="198.51.100.1", dst="192.0.2.99")))


def test_keeper_provisions_a_media_endpoint_both_ways_and_reads_it_back_as_wanted(tmp_path, tap_switch):
    """A SIP call's media tap (mediation/sip_parse.MediaEndpoint.filters(): to
    the endpoint on its RTP/RTCP ports, and from it on those ports) over the
    real agent: source ports travel as citapStreamSourceL4PortMin/Max, and the
    next audit reads the same filters back, so it leaves the intercept alone."""
    from mediation.sip_parse import MediaEndpoint

    media = InterceptSpec(CID, MD, MediaEndpoint("192.0.2.10", 6000, 6001).filters(), 60)
    with iap(tmp_path, tap_switch) as (controller, port):
        keeper = Keeper(iap_settings(port), [media])
        try:
            keeper.audit()
            streams = held(controller)[CID][1]
            assert sorted((str(s.filter.src_address), s.filter.src_port_min, s.filter.src_port_max,
                           str(s.filter.dst_address), s.filter.dst_port_min, s.filter.dst_port_max)
                          for s in streams) == [("192.0.2.10", 6000, 6001, "None", 0, 65535),
                                                ("None", 0, 65535, "192.0.2.10", 6000, 6001)]
            keeper.audit()
            kept = keeper.status.intercepts[CID]
            assert (kept.state, kept.provisioned) == ("active", 1)   # left alone: not provisioned again
            keeper.close()
            # an MD wanting other source ports only (the rest alike) sees the difference and repairs it
            received, sent = MediaEndpoint("192.0.2.10", 6000, 6001).filters()
            moved = InterceptSpec(CID, MD, (received, dataclasses.replace(sent, src_ports=(7000, 7001))), 60)
            keeper = Keeper(iap_settings(port), [moved])
            keeper.audit()
            assert keeper.status.intercepts[CID].provisioned == 1
            assert sorted((s.filter.src_port_min, s.filter.src_port_max) for s in held(controller)[CID][1]) == \
                [(0, 65535), (7000, 7001)]
        finally:
            keeper.close()
