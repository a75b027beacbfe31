"""The USM protocols deployed mediation devices and Cisco IAPs speak (issue
12): HMAC-SHA-96 (SHA-1) and HMAC-MD5-96 authentication, DES, 3DES and AES
privacy, besides the SHA-2 family; the opt-in the weak ones need; and a
system group that tells nobody the IAP can intercept.

Two agents share one controller on a real switch (tests/snmp_support.py):
`fast` (its fast path on) and `slow` (pysnmp only). What is proven:

- net-snmp's tools with `-a SHA -x AES` and `-a MD5 -x DES` (an opted-in
  user) provision REFERENCE.md's three createAndGo PDUs and tear them down,
  with the same answers from both agents, every request after discovery
  served by the fast path (DES included);
- an old MD, pysnmp 4.4's oneliner API in a venv of its own, does the same
  with SHA-1/AES-128;
- our own MD (TapClient) speaks SHA-1 and MD5 with AES, DES and 3DES through
  snmpv3's Session; its config takes the same names;
- refused SETs answer alike through both agents for every new combination;
- MD5, DES and 3DES are refused without `allow_weak_protocols = true`, with
  a message naming the user, the protocol and the key, by the agent's
  loader, by `--check` and by the MD's config; the agent warns once per
  such user at start;
- sysDescr and sysObjectID are neutral by default, for every user, and the
  config's when it gives them.
tests/test_snmp_bmv2.py has the copies of a SHA-1/AES-provisioned tap
reaching the MD's socket.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess
import sys
import textwrap
import tomllib
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pysnmp.proto import rfc1902

from mediation import config as md_config
from mediation.snmp_client import MEDIATION, STREAM, Filter, TapClient, TapClientError, mediation_varbinds
from mib_bridge.config import DEFAULT_SYS_DESCR, ConfigError, load
from tests.snmp_support import (AUTH_KEY, FILTER, INTEROP_USERS as USERS, MED, OPS_AUTH, OPS_PRIV, PRIV_KEY,
                                STREAM as STREAM_TEXT, WEAK_USERS as WEAK, Running, agent_config, filter_pdu,
                                mediation_pdu, needs_net_snmp, start_agent, stream_pdu, switch_controller, tap_switch,
                                user_tables)

SYS_DESCR, SYS_OBJECT_ID = "1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0"
SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)
@dataclass
class Pair:
    controller: object
    fast: Running
    slow: Running
    warnings: list[logging.LogRecord]
    home: Path


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def pair(tmp_path_factory, tap_switch) -> Iterator[Pair]:
    home = tmp_path_factory.mktemp("interop")
    controller = switch_controller(home, tap_switch)
    controller.start()
    records = Records()
    logging.getLogger("p4tap.snmp").addHandler(records)
    try:
        fast = start_agent(home / "fast", controller, listen='"127.0.0.1:0"', extra_users=user_tables())
    finally:
        logging.getLogger("p4tap.snmp").removeHandler(records)
    slow = start_agent(home / "slow", controller, listen='"127.0.0.1:0"', extra_users=user_tables(), fast_path=False)
    assert fast.agent.fast_path is not None and slow.agent.fast_path is None
    yield Pair(controller, fast, slow, records.records, home)
    fast.agent.stop()
    slow.agent.stop()
    controller.stop()


def address(running: Running) -> tuple[str, int]:
    v4 = next(a for a in running.agent.addresses if ":" not in a.host)
    return v4.host, v4.port


def intercept(controller, content_id: int):
    return next(((m, s) for m, s, _ in controller.intercepts() if m.content_id == content_id), None)


def hour() -> datetime:
    return datetime.now(timezone.utc) + timedelta(hours=1)


def three_pdus(content_id: int) -> list[list[tuple[str, str, str]]]:
    return [mediation_pdu(content_id), filter_pdu(content_id, 1, src="192.0.2.90"), stream_pdu(content_id, 1)]


def teardown_pdus(content_id: int) -> list[list[tuple[str, str, str]]]:
    """REFERENCE.md's teardown: stream, filter, then mediation, each destroy(6)."""
    return [[(f"{STREAM_TEXT}.6.{content_id}.1", "i", "6")], [(f"{FILTER}.16.{content_id}.1", "i", "6")],
            [(f"{MED}.13.{content_id}", "i", "6")]]


def net_snmp_cycle(pair: Pair, running: Running, user: str, content_id: int) -> tuple[list, dict]:
    """Provision and tear down with net-snmp's snmpset as `user`: (each
    snmpset's (code, error), the status columns read while provisioned)."""
    _, _, a, x = USERS[user]
    creds = running.net.credentials(user, auth_protocol=a, priv_protocol=x)
    answers = []
    for pdu in three_pdus(content_id):
        r = running.net.set(*pdu, creds=creds)
        answers.append((r.code, r.error, r.err.strip() if r.code else ""))
    assert intercept(pair.controller, content_id) is not None, answers
    got = running.net.get(f"{MED}.13.{content_id}", f"{STREAM_TEXT}.6.{content_id}.1", f"{FILTER}.16.{content_id}.1",
                          creds=creds)
    for pdu in teardown_pdus(content_id):
        r = running.net.set(*pdu, creds=creds)
        answers.append((r.code, r.error, r.err.strip() if r.code else ""))
    assert intercept(pair.controller, content_id) is None, answers
    return answers, list(got.values().values())


# -- net-snmp's tools ------------------------------------------------------------------------

@needs_net_snmp
@pytest.mark.parametrize("user", ["sha1", "md5aes", "md5des"])
def test_net_snmp_provisions_and_tears_down_alike_through_both_agents(pair: Pair, user: str) -> None:
    """`-a SHA -x AES`, `-a MD5 -x AES` and `-a MD5 -x DES`: the three
    createAndGo PDUs, a GET, the three destroys; all succeed, the same way
    on the fast agent as on pysnmp's, and the fast path serves every request
    itself (each snmpset/snmpget discovers through pysnmp first)."""
    base = {"sha1": 700, "md5aes": 710, "md5des": 720}[user]
    served = pair.fast.agent.fast_path.served
    fast = net_snmp_cycle(pair, pair.fast, user, base)
    assert pair.fast.agent.fast_path.served - served == 7
    slow = net_snmp_cycle(pair, pair.slow, user, base + 1)
    assert fast == slow
    answers, statuses = fast
    assert answers == [(0, None, "")] * 6
    assert statuses == ["INTEGER: 1"] * 3


# -- an old mediation device: pysnmp 4.4's oneliner API, in a venv of its own ----------------

OLD_CLIENT = textwrap.dedent('''\
    """What an MD of pysnmp 4.4's days runs: hlapi's oneliner setCmd, SHA-1 and AES-128."""
    import json
    import sys

    from pysnmp.hlapi import (ContextData, Integer32, ObjectIdentity, ObjectType, OctetString, SnmpEngine,
                              UdpTransportTarget, Unsigned32, UsmUserData, setCmd, usmAesCfb128Protocol,
                              usmHMACSHAAuthProtocol)

    job = json.load(sys.stdin)
    TYPES = {"i": lambda v: Integer32(int(v)), "u": lambda v: Unsigned32(int(v)),
             "x": lambda v: OctetString(hexValue=v)}
    engine = SnmpEngine()
    user = UsmUserData(job["user"], job["auth_key"], job["priv_key"], authProtocol=usmHMACSHAAuthProtocol,
                       privProtocol=usmAesCfb128Protocol)
    target = UdpTransportTarget((job["host"], job["port"]), timeout=2, retries=1)
    answers = []
    for pdu in job["pdus"]:
        varbinds = [ObjectType(ObjectIdentity(oid), TYPES[kind](value)) for oid, kind, value in pdu]
        indication, status, index, _ = next(setCmd(engine, user, target, ContextData(), *varbinds))
        answers.append([str(indication) if indication else None, int(status), int(index)])
    print(json.dumps(answers))
''')


@pytest.fixture(scope="session")
def old_pysnmp(tmp_path_factory) -> Path:
    """A venv outside the repository with pysnmp 4.4.12 (as an old MD has it); skips if pip cannot install it."""
    where = tmp_path_factory.mktemp("pysnmp44")
    venv.create(where / "venv", with_pip=True)
    python = where / "venv" / "bin" / "python"
    pip = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "pysnmp==4.4.12", "pyasn1==0.4.8",
                          "pycryptodomex"], capture_output=True, text=True, timeout=600)
    if pip.returncode != 0:
        pytest.skip(f"could not install pysnmp 4.4.12 into a venv: {pip.stderr.strip().splitlines()[-1:]}")
    script = where / "old_md.py"
    script.write_text(OLD_CLIENT)
    return script


def old_md(script: Path, running: Running, pdus: list) -> list:
    host, port = address(running)
    job = {"host": host, "port": port, "user": "sha1", "auth_key": AUTH_KEY, "priv_key": PRIV_KEY, "pdus": pdus}
    done = subprocess.run([str(script.parent / "venv" / "bin" / "python"), "-W", "ignore", str(script)],
                          input=json.dumps(job), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_pysnmp_44_oneliner_provisions_and_tears_down_with_sha1_aes(pair: Pair, old_pysnmp: Path) -> None:
    for running, content_id in ((pair.fast, 730), (pair.slow, 731)):
        served = pair.fast.agent.fast_path.served
        assert old_md(old_pysnmp, running, three_pdus(content_id)) == [[None, 0, 0]] * 3
        mediation, streams = intercept(pair.controller, content_id)
        assert str(mediation.dest_address) == "203.0.113.10" and len(streams) == 1
        assert old_md(old_pysnmp, running, teardown_pdus(content_id)) == [[None, 0, 0]] * 3
        assert intercept(pair.controller, content_id) is None
        if running is pair.fast:  # one engine, discovered once: every SET on the fast path
            assert pair.fast.agent.fast_path.served - served == 6


# -- our own mediation device -------------------------------------------------------------------

def md_client(running: Running, user: str, **kw) -> TapClient:
    auth, priv, _, _ = USERS[user]
    host, port = address(running)
    return TapClient(host, port, user, AUTH_KEY, PRIV_KEY, auth_protocol=auth, priv_protocol=priv, timeout=1.0,
                     retries=1, **kw)


@pytest.mark.parametrize("user", list(USERS))
def test_md_client_provisions_with_each_protocol(pair: Pair, user: str) -> None:
    """TapClient with SHA-1 or MD5 and AES, DES or 3DES takes snmpv3's
    Session, served by the agent's fast path."""
    content_id = 740 + list(USERS).index(user)
    with md_client(pair.fast, user) as client:
        assert client.session is not None
        client.get(SYS_NAME)  # discovery out of the way
        served = pair.fast.agent.fast_path.served
        client.provision(content_id, "203.0.113.10", 7000, hour(), [Filter(src="192.0.2.91/32")])
        assert intercept(pair.controller, content_id) is not None
        assert client.intercepts()[content_id].status == 1
        client.remove(content_id, streams=1)
        assert intercept(pair.controller, content_id) is None
        assert pair.fast.agent.fast_path.served > served


REFUSED_SETS = [
    [(MEDIATION + (7, 750), rfc1902.Integer32(64))],  # wrongValue
    mediation_varbinds(750, ipaddress.ip_address("203.0.113.10"), 7000, hour(), dscp=99),  # wrongValue, 5 of 8
    [(MEDIATION + (13, 750), rfc1902.OctetString(b"4"))],  # wrongType
    [(STREAM + (3, 750, 1), rfc1902.Integer32(1))],  # a column of a row that does not exist
    [(SYS_NAME, rfc1902.OctetString(b"x"))],  # notWritable
]


@pytest.mark.parametrize("user", list(USERS))
def test_refused_sets_answer_alike_through_both_agents(pair: Pair, user: str) -> None:
    def refusals(running: Running) -> list:
        out = []
        with md_client(running, user) as client:
            for varbinds in REFUSED_SETS:
                try:
                    client.set(varbinds)
                    out.append(None)
                except TapClientError as error:
                    out.append((error.status, error.index))
        return out

    fast = refusals(pair.fast)
    assert fast == refusals(pair.slow)
    assert None not in fast and len(set(fast)) > 2


# -- the opt-in for weak protocols --------------------------------------------------------------

def test_the_agent_warns_once_per_weak_user_at_start(pair: Pair) -> None:
    warned = [r.getMessage() for r in pair.warnings if r.levelno == logging.WARNING]
    for name in USERS:
        said = [m for m in warned if f"SNMP user {name!r}" in m]
        assert len(said) == (1 if name in WEAK else 0), warned
    assert "auth_protocol MD5 and priv_protocol DES" in next(m for m in warned if "'md5des'" in m)
    assert not any(AUTH_KEY in m or PRIV_KEY in m for m in warned)


@pytest.mark.parametrize("user, named", [("md5des", "auth_protocol MD5 and priv_protocol DES"),
                                         ("sha3des", "priv_protocol 3DES"), ("md5aes", "auth_protocol MD5")])
def test_weak_protocols_without_the_opt_in_are_refused_naming_user_protocol_and_key(tmp_path: Path, user: str,
                                                                                   named: str) -> None:
    path = agent_config(tmp_path / "snmp.toml", extra_users=user_tables({user: USERS[user]}, opt_in=()))
    with pytest.raises(ConfigError) as caught:
        load(path)
    message = str(caught.value)
    assert f"user {user!r}" in message and named in message and "allow_weak_protocols = true" in message
    check = subprocess.run([sys.executable, "-m", "mib_bridge", "--config", str(path), "--check"],
                           capture_output=True, text=True)
    assert check.returncode == 2 and message in check.stderr and "Traceback" not in check.stderr
    assert AUTH_KEY not in check.stderr + message
    allowed = agent_config(tmp_path / "ok.toml", extra_users=user_tables({user: USERS[user]}))
    check = subprocess.run([sys.executable, "-m", "mib_bridge", "--config", str(allowed), "--check"],
                           capture_output=True, text=True)
    assert check.returncode == 0 and "4 user(s)" in check.stdout, check.stderr
    assert f"warning: user {user!r} uses {named} (weak; allowed by allow_weak_protocols)" in check.stdout
    assert next(u for u in load(allowed).users if u.name == user).weak_protocols == tuple(named.split(" and "))


def test_sha1_and_aes_need_no_opt_in(tmp_path: Path) -> None:
    cfg = load(agent_config(tmp_path / "snmp.toml", extra_users=user_tables({"sha1": USERS["sha1"]})))
    user = next(u for u in cfg.users if u.name == "sha1")
    assert (user.auth_protocol, user.priv_protocol, user.weak_protocols) == ("SHA", "AES", ())


# (auth spelling, priv spelling, the names the config keeps, opted in): net-snmp's
# -a/-x and createUser names, Cisco's `auth sha` / `priv aes 128`, the MIBs' object names
SPELLINGS = [
    ("SHA1", "AES128", "SHA", "AES", False), ("SHA-1", "AES-128", "SHA", "AES", False),
    ("sha", "aes", "SHA", "AES", False), ("usmHMACSHAAuthProtocol", "usmAesCfb128Protocol", "SHA", "AES", False),
    ("HMAC-SHA-96", "AES192", "SHA", "AES-192", False), ("SHA224", "AES256", "SHA-224", "AES-256", False),
    ("SHA-224", "AES192C", "SHA-224", "AES-192-C", False), ("SHA256", "AES-256-C", "SHA-256", "AES-256-C", False),
    ("usmHMAC192SHA256AuthProtocol", "AES", "SHA-256", "AES", False), ("SHA384", "AES", "SHA-384", "AES", False),
    ("sha-512", "AES-CFB-256", "SHA-512", "AES-256", False), ("SHA512", "AES", "SHA-512", "AES", False),
    ("md5", "DES", "MD5", "DES", True), ("HMAC-MD5-96", "3DES-EDE", "MD5", "3DES", True),
    ("usmHMACMD5AuthProtocol", "usmDESPrivProtocol", "MD5", "DES", True), ("SHA", "3des", "SHA", "3DES", True),
    ("SHA", "usm3DESEDEPrivProtocol", "SHA", "3DES", True),
]


@pytest.mark.parametrize("auth, priv, auth_name, priv_name, weak", SPELLINGS)
def test_agent_and_md_take_net_snmp_and_cisco_spellings(tmp_path: Path, auth: str, priv: str, auth_name: str,
                                                        priv_name: str, weak: bool) -> None:
    """Both configs read one table (snmpv3.protocols): what one takes the other takes, under the same name."""
    user = {"alias": (auth, priv, None, None)}
    agent = load(agent_config(tmp_path / "snmp.toml", extra_users=user_tables(user, opt_in={"alias"} if weak else ())))
    kept = next(u for u in agent.users if u.name == "alias")
    iap = md_config.load(md_toml(tmp_path, f'auth_protocol = "{auth}"\npriv_protocol = "{priv}"\n'
                                           + ("allow_weak_protocols = true\n" if weak else ""))).iap
    assert (kept.auth_protocol, kept.priv_protocol) == (iap.auth_protocol, iap.priv_protocol) == (auth_name, priv_name)
    if weak:  # another spelling of a weak protocol still needs the opt-in
        with pytest.raises(ConfigError, match="weak; set allow_weak_protocols"):
            load(agent_config(tmp_path / "weak.toml", extra_users=user_tables(user, opt_in=())))
        with pytest.raises(md_config.ConfigError, match="weak; set allow_weak_protocols"):
            md_config.load(md_toml(tmp_path, f'auth_protocol = "{auth}"\npriv_protocol = "{priv}"\n'))


@pytest.mark.parametrize("auth, priv, named", [("SHA-2", "AES", "auth_protocol"), ("SHA1-96x", "AES", "auth_protocol"),
                                               ("SHA", "AES-512", "priv_protocol"), ("SHA", "blowfish", "priv_protocol")])
def test_unknown_protocol_spellings_are_refused_alike(tmp_path: Path, auth: str, priv: str, named: str) -> None:
    user = {"alias": (auth, priv, None, None)}
    with pytest.raises(ConfigError, match=f"{named} must be one of"):
        load(agent_config(tmp_path / "snmp.toml", extra_users=user_tables(user, opt_in=())))
    with pytest.raises(md_config.ConfigError, match=f"{named} must be one of"):
        md_config.load(md_toml(tmp_path, f'auth_protocol = "{auth}"\npriv_protocol = "{priv}"\n'))


def md_toml(tmp_path: Path, iap: str) -> Path:
    path = tmp_path / "md.toml"
    path.write_text(textwrap.dedent(f"""\
        [content]
        listen = ["203.0.113.10:7000"]
        out_dir = "captures"

        [iap]
        address = "198.51.100.1:161"
        user = "md1"
        auth_key = "{AUTH_KEY}"
        priv_key = "{PRIV_KEY}"
        """) + iap)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("iap, refused", [
    ('auth_protocol = "SHA"\npriv_protocol = "AES"\n', None),
    ('auth_protocol = "MD5"\npriv_protocol = "AES"\n', "auth_protocol MD5"),
    ('auth_protocol = "SHA"\npriv_protocol = "3DES"\n', "priv_protocol 3DES"),
    ('auth_protocol = "MD5"\npriv_protocol = "DES"\nallow_weak_protocols = true\n', None),
])
def test_md_config_takes_the_agents_protocol_names_and_opt_in(tmp_path: Path, iap: str, refused: str | None) -> None:
    path = md_toml(tmp_path, iap)
    if refused is None:
        settings = md_config.load(path).iap
        assert (settings.auth_protocol, settings.priv_protocol) == tuple(tomllib.loads(iap)[k] for k in (
            "auth_protocol", "priv_protocol"))
        return
    with pytest.raises(md_config.ConfigError, match=f"\\[iap\\]: {refused} is weak; set allow_weak_protocols = true"):
        md_config.load(path)


# -- the system group tells nobody about intercepts --------------------------------------------

@needs_net_snmp
def test_sys_descr_is_neutral_for_every_user_by_default(pair: Pair) -> None:
    net = pair.fast.net
    for creds in (net.credentials(), net.credentials("ops", OPS_AUTH, OPS_PRIV)):
        got = net.get(SYS_DESCR, SYS_OBJECT_ID, creds=creds).values()
        assert got == {SYS_DESCR: f'STRING: "{DEFAULT_SYS_DESCR}"', SYS_OBJECT_ID: "OID: .0.0"}, got
        assert not any(word in got[SYS_DESCR].lower() for word in ("intercept", "tap", "3924", "mib"))


@needs_net_snmp
def test_sys_descr_and_sys_object_id_come_from_the_config(pair: Pair, tmp_path: Path) -> None:
    descr = "Cisco IOS Software, C3900 Software (C3900-UNIVERSALK9-M), Version 15.4(3)M"
    running = start_agent(tmp_path, pair.controller, listen='"127.0.0.1:0"',
                          extra_agent=f'sys_descr = "{descr}"\nsys_object_id = "1.3.6.1.4.1.9.1.1208"')
    try:
        net = running.net
        for creds in (net.credentials(), net.credentials("ops", OPS_AUTH, OPS_PRIV)):
            assert net.get(SYS_DESCR, SYS_OBJECT_ID, creds=creds).values() == {
                SYS_DESCR: f'STRING: "{descr}"', SYS_OBJECT_ID: "OID: .1.3.6.1.4.1.9.1.1208"}
    finally:
        running.agent.stop()


@pytest.mark.parametrize("line, message", [('sys_object_id = "private"', "sys_object_id"),
                                           (f'sys_descr = "{"x" * 256}"', "sys_descr: at most 255")])
def test_bad_system_values_are_refused(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(agent_config(tmp_path / "snmp.toml", extra_agent=line))
