"""Shared pieces of the SNMP agent tests: agent configs, a controller, and
net-snmp's command-line tools with numeric OIDs.

`switch_controller` is the real Controller driving a real switch over
P4Runtime (`tap_switch`: one per test module, bmv2 where installed, else the
softswitch, with no ports since the MIB rules need no packets);
tests/test_snmp_bmv2.py adds veths and packets end to end.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bmv2_topo.bmv2_switch import Bmv2Switch
from controller.service import Controller, SwitchConfig
from controller.pipeline import P4TAP
from ptf_tests.base import lab_topology
from tests.conftest import SWITCH_SKIP_REASON

NET_SNMP = shutil.which("snmpset") and shutil.which("snmptrapd")
needs_net_snmp = pytest.mark.skipif(
    not NET_SNMP, reason="net-snmp tools not installed: apt-get install snmp snmptrapd (`make setup` does, as root)")

TAP2 = "1.3.6.1.4.1.9.9.399"
IP_TAP = "1.3.6.1.4.1.9.9.394"
MED = f"{TAP2}.1.1.2.1"      # cTap2MediationEntry
STREAM = f"{TAP2}.1.2.1.1"   # cTap2StreamEntry
FILTER = f"{IP_TAP}.1.1.2.1"  # citapStreamEntry
DEBUG = f"{TAP2}.1.3.3.1"    # cTap2DebugEntry
NEW_INDEX = f"{TAP2}.1.1.1.0"

AUTH_KEY, PRIV_KEY = "li-auth-passphrase", "li-priv-passphrase"
OPS_AUTH, OPS_PRIV = "ops-auth-passphrase", "ops-priv-passphrase"


# -- a controller on a real switch --------------------------------------------------

@contextmanager
def running_switch(workdir: Path) -> Iterator[Bmv2Switch]:
    """A switch with no ports (the MIB tests need no packets): bmv2 where
    installed, else p4tap's softswitch ($P4TAP_TARGET chooses). One per test
    module; each controller that connects reconciles it, clearing what an
    earlier one left."""
    switch = Bmv2Switch(ports={}, log_file=workdir / "switch.log")
    switch.start()
    try:
        yield switch
    finally:
        switch.stop()


def switch_controller(tmp_path: Path, switch: Bmv2Switch, topology=None) -> Controller:
    """The real controller (intent store, audit log, planner, lifetime timer)
    with a fresh store, driving `switch` over P4Runtime. Not started."""
    return Controller([SwitchConfig("s1", switch.grpc_address, topology or lab_topology())], tmp_path / "intent.db",
                      tmp_path / "audit.jsonl")


@pytest.fixture(scope="module")
def tap_switch(tmp_path_factory) -> Iterator[Bmv2Switch]:
    """running_switch for a whole test module; skips (saying why) where no switch target can run."""
    if SWITCH_SKIP_REASON is not None:
        pytest.skip(SWITCH_SKIP_REASON)
    if not P4TAP.exists():
        pytest.skip("compiled pipeline missing in build/: run `make p4`")
    with running_switch(tmp_path_factory.mktemp("switch")) as switch:
        yield switch


# -- agent configs -----------------------------------------------------------------

def agent_config(path: Path, notify: str = "", listen: str = '"127.0.0.1:0", "[::1]:0"', extra_agent: str = "",
                 li_level: str = "authPriv", extra_users: str = "") -> Path:
    """An agent config: LI user `md1` (SHA-256/AES), `md512` (SHA-512/AES-256),
    an operations user `ops` who may read the system group only, and the
    [[user]] tables of `extra_users`."""
    path.write_text(textwrap.dedent(f"""\
        [agent]
        listen = [{listen}]
        sys_name = "p4tap-test"
        debug_max_entries = 50
        {extra_agent}

        [[view]]
        name = "tap"
        include = ["1.3.6.1.4.1.9.9.399", "1.3.6.1.4.1.9.9.394", "1.3.6.1.2.1.1", "1.3.6.1.6.3.10.2.1",
                   "1.3.6.1.2.1.11", "1.3.6.1.6.3.15.1.1", "1.3.6.1.6.3.11.2.1"]

        [[view]]
        name = "system"
        include = ["1.3.6.1.2.1.1", "1.3.6.1.4.1"]

        [[group]]
        name = "li"
        lawful_intercept = true
        security_level = "{li_level}"
        read_view = "tap"
        write_view = "tap"
        notify_view = "tap"

        [[group]]
        name = "ops"
        security_level = "authPriv"
        read_view = "system"
        write_view = "system"

        [[user]]
        name = "md1"
        group = "li"
        auth_protocol = "SHA-256"
        auth_key = "{AUTH_KEY}"
        priv_protocol = "AES"
        priv_key = "{PRIV_KEY}"

        [[user]]
        name = "md512"
        group = "li"
        auth_protocol = "SHA-512"
        auth_key = "{AUTH_KEY}"
        priv_protocol = "AES-256"
        priv_key = "{PRIV_KEY}"

        [[user]]
        name = "ops"
        group = "ops"
        auth_protocol = "SHA-256"
        auth_key = "{OPS_AUTH}"
        priv_protocol = "AES"
        priv_key = "{OPS_PRIV}"
        """) + textwrap.dedent(extra_users) + notify)
    path.chmod(0o600)
    return path


# users of the LI group with the protocols deployed MDs speak; name: (auth_protocol, priv_protocol, net-snmp's -a and -x)
INTEROP_USERS = {"sha1": ("SHA", "AES", "SHA", "AES"), "md5des": ("MD5", "DES", "MD5", "DES"),
                 "sha3des": ("SHA", "3DES", None, None), "md5aes": ("MD5", "AES", "MD5", "AES")}
WEAK_USERS = {"md5des", "sha3des", "md5aes"}


def user_tables(users: dict | None = None, opt_in: set | tuple | None = None) -> str:
    """[[user]] tables of the LI group for `users`; `opt_in` get allow_weak_protocols."""
    users = INTEROP_USERS if users is None else users
    opt_in = WEAK_USERS if opt_in is None else opt_in
    text = ""
    for name, (auth, priv, _, _) in users.items():
        text += (f'\n[[user]]\nname = "{name}"\ngroup = "li"\nauth_protocol = "{auth}"\nauth_key = "{AUTH_KEY}"\n'
                 f'priv_protocol = "{priv}"\npriv_key = "{PRIV_KEY}"\n')
        if name in opt_in:
            text += "allow_weak_protocols = true\n"
    return text


# -- net-snmp's tools -----------------------------------------------------------------

@dataclass
class Result:
    code: int
    out: str
    err: str

    def values(self) -> dict[str, str]:
        """{numeric OID (no leading dot): 'TYPE: value'} from -On output."""
        found = {}
        for line in self.out.splitlines():
            m = re.match(r"^\.?([\d.]+) = (.*)$", line)
            if m:
                found[m.group(1)] = m.group(2)
        return found

    @property
    def error(self) -> tuple[str, str] | None:
        """(reason, failed object) of an SNMP error response, e.g. ('inconsistentValue', '1.3...')."""
        reason = re.search(r"Reason: (\w+)", self.err)
        failed = re.search(r"Failed object: \.?([\d.]+)", self.err)
        if reason is None:
            return None
        return reason.group(1), failed.group(1) if failed else ""


class NetSnmp:
    """snmpget/snmpset/snmpwalk/snmpbulkwalk against one agent, numeric OIDs only."""

    def __init__(self, host: str, port: int, home: Path) -> None:
        self.peer = f"udp6:[{host}]:{port}" if ":" in host else f"udp:{host}:{port}"
        self.env = dict(os.environ, MIBS="", SNMPCONFPATH=str(home), SNMP_PERSISTENT_DIR=str(home))

    def credentials(self, user: str = "md1", auth: str = AUTH_KEY, priv: str | None = PRIV_KEY,
                    auth_protocol: str = "SHA-256", priv_protocol: str = "AES", level: str | None = None) -> list[str]:
        args = ["-v3", "-u", user, "-a", auth_protocol, "-A", auth]
        if priv is not None:
            args += ["-x", priv_protocol, "-X", priv]
        return args + ["-l", level or ("authPriv" if priv is not None else "authNoPriv")]

    # 5 s: on a loaded machine the agent once answered a set after 2 s, and a
    # retried set meets the effect of the first
    def run(self, tool: str, args: list[str], creds: list[str] | None = None, timeout: float = 5.0,
            retries: int = 1) -> Result:
        command = [tool, "-m", "", "-On", "-Oe", "-t", str(timeout), "-r", str(retries),
                   *(creds if creds is not None else self.credentials()), self.peer, *args]
        done = subprocess.run(command, capture_output=True, text=True, env=self.env, timeout=60)
        return Result(done.returncode, done.stdout, done.stderr)

    def get(self, *oids: str, creds: list[str] | None = None) -> Result:
        return self.run("snmpget", list(oids), creds)

    def getnext(self, *oids: str, creds: list[str] | None = None) -> Result:
        return self.run("snmpgetnext", list(oids), creds)

    def walk(self, oid: str, creds: list[str] | None = None) -> Result:
        return self.run("snmpwalk", [oid], creds)

    def bulkwalk(self, oid: str, creds: list[str] | None = None) -> Result:
        return self.run("snmpbulkwalk", ["-Cr25", oid], creds)

    def set(self, *triples: tuple[str, str, str] | str, creds: list[str] | None = None) -> Result:
        """set(("OID", "i", "4"), ...) with net-snmp's type letters (i u s x a o t...)."""
        args: list[str] = []
        for t in triples:
            args += list(t)
        return self.run("snmpset", args, creds)


def date_and_time(seconds_from_now: float) -> str:
    """An 8-octet DateAndTime (local time, as RFC 2579 reads 8 octets), hex for snmpset's x type."""
    t = time.localtime(time.time() + seconds_from_now)
    return f"{t.tm_year:04x}{t.tm_mon:02x}{t.tm_mday:02x}{t.tm_hour:02x}{t.tm_min:02x}{t.tm_sec:02x}00"


def hex_ip(address: str) -> str:
    import ipaddress
    return ipaddress.ip_address(address).packed.hex()


def mediation_pdu(content_id: int, md: str = "203.0.113.10", port: int = 7000, seconds: float = 3600,
                  status: str = "4", dscp: int = 34) -> list[tuple[str, str, str]]:
    """REFERENCE.md's first PDU: mediation columns 2, 3, 4, 5, 7, 10, 11 and 13 = createAndGo."""
    family = "1" if ":" not in md else "2"
    c = f"{content_id}"
    return [(f"{MED}.2.{c}", "i", family), (f"{MED}.3.{c}", "x", hex_ip(md)), (f"{MED}.4.{c}", "u", str(port)),
            (f"{MED}.5.{c}", "i", "0"), (f"{MED}.7.{c}", "i", str(dscp)),
            (f"{MED}.10.{c}", "x", date_and_time(seconds)), (f"{MED}.11.{c}", "i", "1"), (f"{MED}.13.{c}", "i", status)]


def filter_pdu(content_id: int, stream: int, dst: str | None = None, src: str | None = None,
               status: str = "4") -> list[tuple[str, str, str]]:
    """REFERENCE.md's second PDU: citapStreamTable columns 1 = 0, 2, 3, 4, 5, 6, 7 = 0, 8 = 0, 16 = 4."""
    family = "2" if ":" in (dst or src or "") else "1"
    zero = "0.0.0.0" if family == "1" else "::"
    bits = "32" if family == "1" else "128"
    i = f"{content_id}.{stream}"
    return [(f"{FILTER}.1.{i}", "i", "0"), (f"{FILTER}.2.{i}", "i", family),
            (f"{FILTER}.3.{i}", "x", hex_ip(dst or zero)), (f"{FILTER}.4.{i}", "u", bits if dst else "0"),
            (f"{FILTER}.5.{i}", "x", hex_ip(src or zero)), (f"{FILTER}.6.{i}", "u", bits if src else "0"),
            (f"{FILTER}.7.{i}", "i", "0"), (f"{FILTER}.8.{i}", "i", "0"), (f"{FILTER}.16.{i}", "i", status)]


def stream_pdu(content_id: int, stream: int, enable: bool = True, status: str = "4") -> list[tuple[str, str, str]]:
    """REFERENCE.md's third PDU: cTap2StreamTable 2 = ip(1), 3 = true(1), 6 = createAndGo."""
    i = f"{content_id}.{stream}"
    return [(f"{STREAM}.2.{i}", "i", "1"), (f"{STREAM}.3.{i}", "i", "1" if enable else "2"),
            (f"{STREAM}.6.{i}", "i", status)]


class TrapReceiver:
    """snmptrapd accepting SNMPv3 informs from user md1 (authPriv), logging numerically to a file."""

    def __init__(self, home: Path, port: int, user: str = "md1", engine_id: str | None = None) -> None:
        """`engine_id`: the sender's snmpEngineID (hex), needed to accept its SNMPv3 traps."""
        self.log = home / "snmptrapd.log"
        conf = home / "snmptrapd.conf"
        engine = f"-e 0x{engine_id} " if engine_id else ""
        conf.write_text(f"createUser {engine}{user} SHA-256 {AUTH_KEY} AES {PRIV_KEY}\nauthUser log {user} priv\n"
                        "disableAuthorization no\n")
        conf.chmod(0o600)
        env = dict(os.environ, MIBS="", SNMP_PERSISTENT_DIR=str(home / "trapd"), SNMPCONFPATH=str(home / "trapd"))
        (home / "trapd").mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            ["snmptrapd", "-f", "-C", "-c", str(conf), "-m", "", "-On", "-Lf", str(self.log), "-p",
             str(home / "snmptrapd.pid"), f"udp:127.0.0.1:{port}"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.log.exists() and "NET-SNMP version" in self.log.read_text():
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"snmptrapd exited: {self.proc.stderr.read().decode()}")
            time.sleep(0.05)

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def wait_for(self, needle: str, seconds: float = 10.0) -> str:
        deadline = time.time() + seconds
        while time.time() < deadline:
            text = self.text()
            if needle in text:
                return text
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} not received by snmptrapd; its log:\n{self.text()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# -- a running agent ----------------------------------------------------------------

@dataclass
class Running:
    controller: Controller
    agent: object
    net: NetSnmp  # over IPv4
    net6: NetSnmp  # over IPv6
    home: Path

    def audit(self) -> list[dict]:
        """The audit log, with the refusals the agent batches written first."""
        import json
        self.agent.flush_audit()
        return [json.loads(line) for line in (self.home / "audit.jsonl").read_text().splitlines() if line.strip()]


def start_agent(home: Path, controller: Controller, notify: str = "", fast_path: bool = True, **config) -> Running:
    from mib_bridge.agent import Agent
    from mib_bridge.config import load

    home.mkdir(parents=True, exist_ok=True)
    agent = Agent(load(agent_config(home / "snmp.toml", notify=notify, **config)), controller, fast_path=fast_path)
    agent.start()
    v4 = next(a for a in agent.addresses if ":" not in a.host)
    v6 = next((a for a in agent.addresses if ":" in a.host), v4)
    return Running(controller, agent, NetSnmp(v4.host, v4.port, home), NetSnmp(v6.host, v6.port, home), home)


def ipv6_loopback() -> bool:
    import socket
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_udp_port() -> int:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
