"""Who sees the intercepts: only the lawful-intercept group, over SNMPv3 with
its security level. Everyone else (another USM user, a wrong key, too low a
level, SNMPv1/v2c) learns nothing about .399/.394, and every refusal is in
the controller's audit log. The config's keys never leak.
"""

from __future__ import annotations

import logging
import subprocess

import pytest

from mib_bridge.config import ConfigError, load
from tests.snmp_support import (AUTH_KEY, IP_TAP, MED, NEW_INDEX, OPS_AUTH, OPS_PRIV, PRIV_KEY, TAP2, agent_config,
                                filter_pdu, ipv6_loopback, mediation_pdu, needs_net_snmp, start_agent, stream_pdu,
                                switch_controller, tap_switch)

LISTEN = '"127.0.0.1:0", "[::1]:0"' if ipv6_loopback() else '"127.0.0.1:0"'


@pytest.fixture(scope="module")
def snmp(tmp_path_factory, tap_switch):
    home = tmp_path_factory.mktemp("snmpsec")
    controller = switch_controller(home, tap_switch)
    controller.start()
    running = start_agent(home, controller, listen=LISTEN)
    for pdu in (mediation_pdu(7), filter_pdu(7, 1, src="192.0.2.10"), stream_pdu(7, 1)):
        assert running.net.set(*pdu).code == 0
    yield running
    running.agent.stop()
    controller.stop()


def refusals(snmp, since: int) -> list[dict]:
    return [r for r in snmp.audit()[since:] if r["action"] == "snmp-refuse"]


def tap_values(result) -> dict[str, str]:
    return {k: v for k, v in result.values().items() if k.startswith((TAP2, IP_TAP))}


# -- the lawful-intercept group ----------------------------------------------------------

@needs_net_snmp
def test_li_user_sees_the_intercept(snmp):
    assert tap_values(snmp.net.walk(f"{MED}.13"))[f"{MED}.13.7"] == "INTEGER: 1"


@needs_net_snmp
def test_sha512_and_aes256_user(snmp):
    creds = snmp.net.credentials("md512", auth_protocol="SHA-512", priv_protocol="AES256")
    r = snmp.net.get(f"{MED}.13.7", creds=creds)
    if "Invalid privacy protocol" in r.err or "AES256" in r.err and r.code:
        pytest.skip(f"this net-snmp has no AES-256 (Blumenthal): {r.err.strip()}")
    assert r.values()[f"{MED}.13.7"] == "INTEGER: 1", r.err


# -- everyone else sees nothing ------------------------------------------------------------

@needs_net_snmp
def test_user_outside_the_li_group_sees_nothing(snmp):
    """`ops` has a VACM view that even includes 1.3.6.1.4.1, and still sees no TAP object."""
    creds = snmp.net.credentials("ops", OPS_AUTH, OPS_PRIV)
    since = len(snmp.audit())
    got = snmp.net.get(NEW_INDEX, f"{MED}.13.7", f"{MED}.13.424242", creds=creds)
    assert got.code == 0
    assert set(got.values().values()) == {"No Such Object available on this agent at this OID"}
    walk = snmp.net.walk("1.3.6.1", creds=creds)
    assert tap_values(walk) == {} and "1.3.6.1.2.1.1.5.0" in walk.values()
    assert tap_values(snmp.net.bulkwalk("1.3.6.1.4.1", creds=creds)) == {}
    assert set(tap_values(snmp.net.getnext(f"{MED}.13", creds=creds)).values()) == \
        {"No more variables left in this MIB View (It is past the end of the MIB tree)"}
    r = snmp.net.set((f"{MED}.13.8", "i", "6"), creds=creds)
    assert r.error is not None and r.error[0] == "noAccess"
    r2 = snmp.net.set((f"{MED}.13.7", "i", "6"), creds=creds)  # an existing row: the very same answer
    assert r2.error == ("noAccess", f"{MED}.13.7") and r.error == ("noAccess", f"{MED}.13.8")
    records = refusals(snmp, since)
    assert {r["detail"]["op"] for r in records} >= {"read", "set"}
    assert all(r["actor"].startswith("snmp:ops from 127.0.0.1:") for r in records)


@needs_net_snmp
def test_li_user_below_the_group_security_level_sees_nothing(snmp):
    creds = snmp.net.credentials("md1", priv=None)  # authNoPriv; the group needs authPriv
    since = len(snmp.audit())
    got = snmp.net.get(f"{MED}.13.7", creds=creds)
    # USM itself refuses a level the user is not configured for; VACM would answer noSuchObject
    assert "Unsupported security level" in got.err or \
        got.values() == {f"{MED}.13.7": "No Such Object available on this agent at this OID"}
    assert not [v for v in tap_values(snmp.net.walk("1.3.6.1.4.1.9", creds=creds)).values() if "INTEGER" in v]
    assert refusals(snmp, since)


@needs_net_snmp
@pytest.mark.parametrize("user, auth, priv, why", [
    ("md1", "wrong-auth-passphrase", PRIV_KEY, "wrong"),
    ("md1", AUTH_KEY, "wrong-priv-passphrase", "decrypt"),
    ("nobody", AUTH_KEY, PRIV_KEY, "unknown"),
])
def test_wrong_key_or_unknown_user_gets_nothing_and_is_audited(snmp, user, auth, priv, why):
    since = len(snmp.audit())
    r = snmp.net.run("snmpget", [f"{MED}.13.7"], snmp.net.credentials(user, auth, priv), timeout=0.5, retries=0)
    assert r.code != 0 and tap_values(r) == {}
    records = refusals(snmp, since)
    assert records and records[-1]["detail"]["op"] == "message"
    assert records[-1]["actor"] == f"snmp:{user} from 127.0.0.1" and records[-1]["detail"]["count"] >= 1


@needs_net_snmp
@pytest.mark.parametrize("version", ["1", "2c"])
def test_snmpv1_and_v2c_get_no_answer_and_are_audited(snmp, version):
    since = len(snmp.audit())
    for community in ("public", "private"):
        r = snmp.net.run("snmpget", [f"{MED}.13.7"], ["-v", version, "-c", community], timeout=0.5, retries=0)
        assert r.code != 0 and "Timeout" in r.err and tap_values(r) == {}
    records = refusals(snmp, since)
    assert sum(r["detail"]["count"] for r in records) == 2  # identical refusals may share a record, counted
    assert all(r["actor"].startswith("snmp:community from") for r in records)
    assert all("public" not in str(r) and "private" not in str(r) for r in records)


# -- the config file ------------------------------------------------------------------------

def test_config_readable_by_others_is_refused(tmp_path):
    path = agent_config(tmp_path / "snmp.toml")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load(path)


def test_keys_never_appear_in_reprs_errors_or_logs(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    cfg = load(agent_config(tmp_path / "snmp.toml"))
    assert AUTH_KEY not in repr(cfg) and PRIV_KEY not in repr(cfg)
    broken = tmp_path / "broken.toml"
    broken.write_text((tmp_path / "snmp.toml").read_text().replace('priv_protocol = "AES"', 'priv_protocol = "DES"', 1))
    broken.chmod(0o600)
    with pytest.raises(ConfigError) as caught:
        load(broken)
    assert AUTH_KEY not in str(caught.value) and PRIV_KEY not in str(caught.value)
    assert AUTH_KEY not in caplog.text and PRIV_KEY not in caplog.text


@pytest.mark.parametrize("change, message", [
    (('auth_protocol = "SHA-256"', 'auth_protocol = "MD5"'), "auth_protocol"),
    ((f'auth_key = "{AUTH_KEY}"', 'auth_key = "short"'), "shorter than 8"),
    (('group = "li"', 'group = "nope"'), "no [[group]]"),
    (('security_level = "authPriv"', 'security_level = "noAuthNoPriv"'), "security_level"),
])
def test_bad_configs_are_refused_with_the_reason(tmp_path, change, message):
    path = agent_config(tmp_path / "snmp.toml")
    path.write_text(path.read_text().replace(*change, 1))
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load(path)


def test_cli_help_and_check(tmp_path):
    import sys
    out = subprocess.run([sys.executable, "-m", "mib_bridge", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--controller-config" in out.stdout and "1.3.6.1.4.1.9.9.399" in out.stdout
    path = agent_config(tmp_path / "snmp.toml")
    out = subprocess.run([sys.executable, "-m", "mib_bridge", "--config", str(path), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "3 user(s)" in out.stdout, out.stderr
    assert AUTH_KEY not in out.stdout + out.stderr


@needs_net_snmp
def test_access_decisions_beyond_pysnmp_vacm(snmp):
    """What pysnmp's VACM leaves out: the request's level against the group's,
    a missing view, and the TAP subtrees for groups not marked lawful_intercept."""
    from mib_bridge.security import Requester
    access = snmp.agent.access
    tap = tuple(int(x) for x in f"{MED}.13.7".split("."))
    sys_name = (1, 3, 6, 1, 2, 1, 1, 5, 0)
    md1 = Requester(3, "md1", 3, b"", "127.0.0.1:1")
    assert access.check(md1, "read", tap) is None and access.check(md1, "write", tap) is None
    assert access.check(Requester(3, "md1", 2, b"", "x"), "read", tap) == "authorizationError"
    assert access.check(Requester(3, "md1", 3, b"other", "x"), "read", tap) == "noAccess"
    assert access.check(Requester(2, "md1", 3, b"", "x"), "read", tap) == "noAccess"
    ops = Requester(3, "ops", 3, b"", "x")
    assert access.check(ops, "read", sys_name) is None
    assert access.check(ops, "read", tap) == "noAccess"  # although its view includes 1.3.6.1.4.1
    assert access.check(ops, "notify", sys_name) == "noAccess"  # no notify view at all
    assert access.check(ops, "read", (1, 3, 6, 1, 2, 1, 2, 1, 0)) == "noAccess"  # outside its view
    assert not access.sees_tap(ops) and access.sees_tap(md1)


def test_a_port_in_use_is_reported_not_ignored(tmp_path, tap_switch):
    import socket

    from mib_bridge.agent import Agent, AgentError
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    port = busy.getsockname()[1]
    controller = switch_controller(tmp_path, tap_switch)
    try:
        agent = Agent(load(agent_config(tmp_path / "snmp.toml", listen=f'"127.0.0.1:{port}"')), controller)
        with pytest.raises(AgentError, match=f"cannot listen on 127.0.0.1:{port}"):
            agent.start()
    finally:
        busy.close()
        controller.stop()
