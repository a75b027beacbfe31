"""The agent's SNMPv3 fast path (mib_bridge/fast_path.py) and the mediation
device's Session (snmpv3/session.py) against a running agent, compared with
the agent that leaves everything to pysnmp.

Two agents share one controller on a real switch (tests/snmp_support.py):
`fast` (fast_path=True) and `slow` (fast_path=False, pysnmp only). What is
proven:

- interoperation both ways: pysnmp's command generator (TapClient(fast=False))
  and net-snmp's snmpset/snmpget are served by the fast path (its `served`
  counter moves), and Session's requests (usm.seal) are served by pysnmp;
- a provision (mediation, filter, stream createAndGo) through the fast path
  installs the intercept, and each of its SETs was served by the fast path;
- every error SET, GET and GETBULK answers through the fast path exactly as
  through pysnmp (same status, index, OIDs and values);
- FastPath.admit never admits a message with one bit changed anywhere, nor
  a message from an unknown user, under other keys, outside the time
  window, with other boots, another context, a lower security level or a
  non-request PDU; sent over UDP, each of those gets from the fast agent
  exactly the answer (or silence) the pysnmp-only agent gives;
- Session discovers the engine and reports a dead agent within
  timeout * (retries + 1); after the agent's restart (same engine ID, boots
  counted up; or a new engine ID) the same client goes on, as a new one
  does, and a stale clock is set right by the agent's signed
  notInTimeWindow Report (authNoPriv), with pysnmp's own client as the
  reference.
- answers fit the requester's msgMaxSize as pysnmp's do, and an engine at
  its last boot count serves nothing itself.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import os
import random
import select
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pysnmp.proto import rfc1902, rfc1905

from mediation.snmp_client import (IP_STREAM, MEDIATION, STREAM, Filter, Provisioning, TapClient, TapClientError,
                                   filter_varbinds, mediation_varbinds)
from mib_bridge import budget
from mib_bridge.agent import Agent
from mib_bridge.budget import Budget
from mib_bridge.config import load
from mib_bridge.security import AUTH, PRIV
from snmpv3 import ber, usm
from snmpv3.ber import OCTET_STRING, SEQUENCE
from tests.snmp_support import (AUTH_KEY, FILTER, MED, NEW_INDEX, OPS_AUTH, OPS_PRIV, PRIV_KEY, STREAM as STREAM_TEXT,
                                TAP2, NetSnmp, agent_config, filter_pdu, free_udp_port, ipv6_loopback, mediation_pdu,
                                needs_net_snmp, stream_pdu, switch_controller, tap_switch)

SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)
SYSTEM = (1, 3, 6, 1, 2, 1, 1)
SYS_UP_TIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
LISTEN = '"127.0.0.1:0", "[::1]:0"' if ipv6_loopback() else '"127.0.0.1:0"'


# -- two agents on one controller ---------------------------------------------------------

@dataclass
class Target:
    """One running agent as a manager addresses it, and its clock (read from pysnmp's LCD, as its USM reads it)."""

    agent: Agent
    host: str
    port: int
    net: NetSnmp

    @property
    def engine_id(self) -> bytes:
        return bytes(self.agent.engine.snmpEngineID)

    def clock(self) -> tuple[int, int]:
        boots, engine_time = self.agent.engine.get_mib_builder().import_symbols(
            "__SNMP-FRAMEWORK-MIB", "snmpEngineBoots", "snmpEngineTime")
        return int(boots.syntax), int(engine_time.syntax.clone())

    def keys(self, user: str = "md1", auth: str = "SHA-256", auth_key: str = AUTH_KEY, priv: str = "AES",
             priv_key: str = PRIV_KEY) -> usm.Keys:
        keys = usm.Keys.derive(user.encode(), AUTH[auth], auth_key, PRIV[priv], priv_key, self.engine_id)
        assert keys is not None
        return keys

    def client(self, user: str = "md1", auth_key: str = AUTH_KEY, priv_key: str = PRIV_KEY, fast: bool = True,
               host: str | None = None, **kw) -> TapClient:
        return TapClient(host or self.host, self._port(host), user, auth_key, priv_key, fast=fast,
                         timeout=kw.pop("timeout", 10.0), retries=kw.pop("retries", 1), **kw)  # no retransmission when busy

    def _port(self, host: str | None) -> int:
        if host is None or host == self.host:
            return self.port
        return next(a.port for a in self.agent.addresses if a.host == host)


@dataclass
class Pair:
    controller: Any
    fast: Target
    slow: Target
    home: Path


def start(home: Path, controller, fast_path: bool, listen: str = LISTEN, extra_agent: str = "") -> Target:
    home.mkdir(parents=True, exist_ok=True)
    agent = Agent(load(agent_config(home / "snmp.toml", listen=listen, extra_agent=extra_agent)), controller,
                  fast_path=fast_path)
    agent.start()
    v4 = next(a for a in agent.addresses if ":" not in a.host)
    return Target(agent, v4.host, v4.port, NetSnmp(v4.host, v4.port, home))


@pytest.fixture(scope="module")
def pair(tmp_path_factory, tap_switch) -> Iterator[Pair]:
    home = tmp_path_factory.mktemp("fastpath")
    controller = switch_controller(home, tap_switch)
    controller.start()
    fast = start(home / "fast", controller, fast_path=True)
    slow = start(home / "slow", controller, fast_path=False)
    assert fast.agent.fast_path is not None and slow.agent.fast_path is None
    yield Pair(controller, fast, slow, home)
    fast.agent.stop()
    slow.agent.stop()
    controller.stop()


@pytest.fixture(autouse=True)
def fresh_budgets(request) -> None:
    """Each test starts with the agents' budgets for pysnmp's time and for
    header-only Reports full, as a new agent has them. The agents are shared
    by the module, and the budgets are charged by measured time: tests that
    run back to back on a busy machine would otherwise find a budget emptied
    by the tests before them, and see the agent, rightly, answer nothing."""
    if "pair" not in request.fixturenames:
        return
    for target in (request.getfixturevalue("pair").fast, request.getfixturevalue("pair").slow):
        path = target.agent.fast_path
        if path is not None:
            path.budget = Budget()
            path.reports = Budget(budget.REPORTS_PER_HOST, budget.REPORTS_GLOBAL)


@pytest.fixture
def engine_ids() -> Iterator[list[bytes]]:
    """Fresh engine IDs for agents a test restarts; pysnmp keeps a boots
    counter per configured engine ID under the temp directory, removed after."""
    made: list[bytes] = []

    def new() -> bytes:
        made.append(bytes.fromhex("80001f8805") + os.urandom(8))
        return made[-1]

    ids = [new() for _ in range(2)]
    yield ids
    for engine_id in made:
        shutil.rmtree(Path(tempfile.gettempdir()) / "__pysnmp" / ("0x" + engine_id.hex()), ignore_errors=True)


def hour() -> datetime:
    return datetime.now(timezone.utc) + timedelta(hours=1)


def intercept(controller, content_id: int):
    return next(((m, s) for m, s, _ in controller.intercepts() if m.content_id == content_id), None)


def values(varbinds) -> list[tuple[tuple[int, ...], Any, Any]]:
    """(OID, tag, value) of each varbind, comparable across the two agents."""
    out = []
    for oid, value in varbinds:
        plain = None if value.tagSet in (rfc1905.noSuchObject.tagSet, rfc1905.noSuchInstance.tagSet,
                                         rfc1905.endOfMibView.tagSet, rfc1905.unSpecified.tagSet) else \
            bytes(value) if hasattr(value, "asOctets") else tuple(value) if hasattr(value, "asTuple") else int(value)
        out.append((tuple(oid), value.tagSet, plain))
    return out


def refusal(client: TapClient, varbinds) -> tuple[str | None, int]:
    try:
        client.set(varbinds)
    except TapClientError as error:
        return error.status, error.index
    return None, 0


# -- 2. both directions of interoperation -----------------------------------------------------

def test_pysnmp_command_generator_is_served_by_the_fast_path(pair: Pair) -> None:
    """TapClient(fast=False) (pysnmp's own message processing and USM) to the
    fast agent: its SETs, GETs and GETBULKs are admitted by the fast path."""
    fast = pair.fast
    with fast.client(fast=False) as client:
        assert client.session is None
        before = fast.agent.fast_path.served
        assert client.get(SYS_NAME)[0][1] == rfc1902.OctetString(b"p4tap-test")
        assert fast.agent.fast_path.served == before + 1  # discovery is pysnmp's, the GET the fast path's
        client.provision(601, "203.0.113.10", 7000, hour(), [Filter(src="192.0.2.61/32")])
        assert fast.agent.fast_path.served == before + 4
        assert intercept(pair.controller, 601) is not None
        rows = dict(client.walk(STREAM))
        assert rows[STREAM + (6, 601, 1)] == 1
        walked = fast.agent.fast_path.served
        assert walked > before + 4  # the GETBULKs too
        client.remove(601, streams=1)
        assert fast.agent.fast_path.served == walked + 3
        assert intercept(pair.controller, 601) is None


@pytest.mark.parametrize("user,auth,priv", [("md1", "SHA-256", "AES"), ("md512", "SHA-512", "AES-256")])
def test_session_is_served_by_pysnmp(pair: Pair, user: str, auth: str, priv: str) -> None:
    """TapClient(fast=True) (Session: usm.seal, usm.open_scoped) against the
    pysnmp-only agent: pysnmp's USM verifies and deciphers what usm.seal made,
    and Session verifies and deciphers what pysnmp's USM made."""
    slow = pair.slow
    content_id = 611 if user == "md1" else 612
    with TapClient(slow.host, slow.port, user, AUTH_KEY, PRIV_KEY, auth_protocol=auth, priv_protocol=priv,
                   timeout=1.0, retries=1) as client:
        assert client.session is not None
        assert client.get(SYS_NAME)[0][1] == rfc1902.OctetString(b"p4tap-test")
        assert client.session.engine_id == slow.engine_id
        client.provision(content_id, "203.0.113.10", 7000, hour(), [Filter(dst="192.0.2.62/32")])
        assert intercept(pair.controller, content_id) is not None
        client.remove(content_id, streams=1)
        assert intercept(pair.controller, content_id) is None


# -- 4. provisioning end to end through the fast path ----------------------------------------------

def test_provision_with_the_fast_client_is_served_by_the_fast_path(pair: Pair) -> None:
    fast = pair.fast
    with fast.client() as client:
        client.get(SYS_NAME)  # discovery out of the way
        before = fast.agent.fast_path.served
        filters = [Filter(src="192.0.2.71/32"), Filter(dst="192.0.2.71/32", protocol=17, dst_ports=(5060, 5061))]
        client.provision(621, "203.0.113.10", 7000, hour(), filters)
        assert fast.agent.fast_path.served == before + 1 + 2 * len(filters)
        installed = intercept(pair.controller, 621)
        assert installed is not None and len(installed[1]) == 2
        seen = client.intercepts()[621]
        assert seen.status == 1 and seen.dest == ("203.0.113.10", 7000)
        assert {s.filter for s in seen.active_streams()} == set(filters)
        client.remove(621, streams=2)
        assert intercept(pair.controller, 621) is None


def test_provision_many_through_the_fast_path(pair: Pair) -> None:
    """Session.pipeline (several intercepts in flight) through the fast path: all installed, every SET served."""
    fast = pair.fast
    taps = [Provisioning(631 + i, "203.0.113.10", 7000, hour(), (Filter(src=f"192.0.2.{80 + i}/32"),))
            for i in range(5)]
    with fast.client(timeout=30.0) as client:  # no retransmission on a busy machine: each SET is served once
        client.get(SYS_NAME)
        before = fast.agent.fast_path.served
        assert client.provision_many(taps, window=3) == {t.content_id: None for t in taps}
        assert fast.agent.fast_path.served == before + 3 * len(taps)
        for t in taps:
            assert intercept(pair.controller, t.content_id) is not None
            client.remove(t.content_id, streams=1)


@pytest.mark.parametrize("user,auth,priv,auth_key,priv_key", [
    ("md1", "SHA-256", "AES", AUTH_KEY, PRIV_KEY), ("md512", "SHA-512", "AES-256", AUTH_KEY, PRIV_KEY),
    ("ops", "SHA-256", "AES", OPS_AUTH, OPS_PRIV)])
def test_every_configured_user_takes_the_fast_path(pair: Pair, user: str, auth: str, priv: str, auth_key: str,
                                                   priv_key: str) -> None:
    """Keys.derive for each user the agent has (AES-256 with the Blumenthal key extension included)."""
    fast = pair.fast
    with TapClient(fast.host, fast.port, user, auth_key, priv_key, auth_protocol=auth, priv_protocol=priv,
                   timeout=1.0, retries=1) as client:
        client.get(SYS_NAME)
        before = fast.agent.fast_path.served
        assert client.get(SYS_NAME)[0][1] == rfc1902.OctetString(b"p4tap-test")
        assert fast.agent.fast_path.served == before + 1


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
def test_fast_client_over_ipv6_is_served_by_the_fast_path(pair: Pair) -> None:
    fast = pair.fast
    with fast.client(host="::1") as client:
        before = fast.agent.fast_path.served
        assert client.get(SYS_NAME)[0][1] == rfc1902.OctetString(b"p4tap-test")
        assert fast.agent.fast_path.served == before + 1


@needs_net_snmp
def test_provision_with_net_snmp_is_served_by_the_fast_path(pair: Pair) -> None:
    fast = pair.fast
    before = fast.agent.fast_path.served
    for pdu in (mediation_pdu(641), filter_pdu(641, 1, src="192.0.2.90"), stream_pdu(641, 1)):
        result = fast.net.set(*pdu)
        assert result.code == 0, result.err
    assert fast.agent.fast_path.served == before + 3  # each snmpset discovers through pysnmp, then SETs once
    assert intercept(pair.controller, 641) is not None
    got = fast.net.get(f"{MED}.13.641", f"{STREAM_TEXT}.6.641.1", f"{FILTER}.16.641.1")
    assert got.code == 0 and list(got.values().values()) == ["INTEGER: 1"] * 3, got.out + got.err
    assert fast.agent.fast_path.served == before + 4
    for varbind in ((f"{STREAM_TEXT}.6.641.1", "i", "6"), (f"{FILTER}.16.641.1", "i", "6"), (f"{MED}.13.641", "i", "6")):
        assert fast.net.set(varbind).code == 0
    assert intercept(pair.controller, 641) is None


ERROR_SETS = [  # (user, varbinds): refused SETs, one per kind of refusal
    ("md1", [(MEDIATION + (7, 650), rfc1902.Integer32(64))]),  # wrongValue
    ("md1", mediation_varbinds(650, ipaddress.ip_address("203.0.113.10"), 7000, hour(), dscp=99)),  # wrongValue, 5 of 8
    ("md1", [(MEDIATION + (13, 650), rfc1902.OctetString(b"4"))]),  # wrongType
    ("md1", [(MEDIATION + (4, 650), rfc1902.Integer32(7000))]),  # wrongType: Unsigned32 column
    ("md1", [(MEDIATION + (3, 650), rfc1902.OctetString(bytes(5)))]),  # wrongLength
    ("md1", [(MEDIATION + (13, 0), rfc1902.Integer32(4))]),  # noCreation
    ("md1", [(MEDIATION + (6, 650), rfc1902.Unsigned32(5004))]),  # notWritable
    ("md1", [(tuple(int(a) for a in NEW_INDEX.split(".")), rfc1902.Integer32(5))]),  # notWritable
    ("md1", [(MEDIATION + (13, 651), rfc1902.Integer32(5)), (MEDIATION + (13, 651), rfc1902.Integer32(6))]),
    ("md1", [(STREAM + (3, 650, 1), rfc1902.Integer32(1))]),  # a column of a row that does not exist
    ("md1", [(MEDIATION + (13, 650), rfc1902.Counter64(4))]),  # wrongType, a 64-bit value
    ("md1", [(SYS_NAME, rfc1902.OctetString(b"x"))]),  # notWritable
    ("ops", [(MEDIATION + (13, 650), rfc1902.Integer32(4))]),  # outside the ops user's view
    ("md1", filter_varbinds(650, 1, Filter(src="192.0.2.1/32"))),  # a filter without its mediation
]


def test_error_sets_answer_as_pysnmp_answers(pair: Pair) -> None:
    """Each refused SET, through the fast path and through pysnmp, the same
    request from the same kind of client: the same error status and index."""
    keys = {"md1": (AUTH_KEY, PRIV_KEY), "ops": (OPS_AUTH, OPS_PRIV)}
    clients: dict[tuple[str, str], TapClient] = {}
    try:
        for user in keys:
            for name, target in (("fast", pair.fast), ("slow", pair.slow)):
                clients[name, user] = target.client(user, *keys[user])
        for user, varbinds in ERROR_SETS:
            before = pair.fast.agent.fast_path.served
            through_fast = refusal(clients["fast", user], varbinds)
            assert pair.fast.agent.fast_path.served == before + 1, (user, varbinds)
            through_pysnmp = refusal(clients["slow", user], varbinds)
            assert through_pysnmp[0] is not None, f"pysnmp accepted {varbinds}"
            assert through_fast == through_pysnmp, varbinds
    finally:
        for client in clients.values():
            client.close()
    assert intercept(pair.controller, 650) is None and intercept(pair.controller, 651) is None


@needs_net_snmp
@pytest.mark.parametrize("varbind", [
    (f"{MED}.4.655", "i", "7000"), (f"{MED}.3.655", "a", "203.0.113.10"), (f"{MED}.3.655", "x", "cb00710a00"),
    (f"{MED}.7.655", "i", "64"), (f"{MED}.13.0", "i", "4"), (f"{MED}.6.655", "u", "5004"), (NEW_INDEX, "i", "5"),
    (f"{TAP2}.1.1.3.0", "x", "ff"), ("1.3.6.1.2.1.1.5.0", "s", "x")])
def test_net_snmp_error_sets_answer_as_pysnmp_answers(pair: Pair, varbind: tuple[str, str, str]) -> None:
    before = pair.fast.agent.fast_path.served
    through_fast, through_pysnmp = pair.fast.net.set(varbind), pair.slow.net.set(varbind)
    assert pair.fast.agent.fast_path.served == before + 1
    assert through_pysnmp.error is not None, through_pysnmp.err
    assert through_fast.error == through_pysnmp.error


def test_gets_and_bulk_walks_answer_as_pysnmp_answers(pair: Pair) -> None:
    oids = [SYS_NAME, (1, 3, 6, 1, 2, 1, 1, 2, 0), (1, 3, 6, 1, 2, 1, 1, 4, 0), (1, 3, 6, 1, 2, 1, 1, 6, 0),
            MEDIATION + (13, 659), STREAM + (6, 659, 1), (1, 3, 6, 1, 2, 1, 1, 99, 0), (1, 3, 6, 1, 4, 1, 99999, 1),
            (1, 3), IP_STREAM + (16, 659, 1)]
    with pair.fast.client() as fast, pair.slow.client() as slow, \
            pair.fast.client("ops", OPS_AUTH, OPS_PRIV) as fast_ops, pair.slow.client("ops", OPS_AUTH, OPS_PRIV) as slow_ops, \
            pair.fast.client(fast=False) as fast_walker, pair.slow.client(fast=False) as slow_walker:
        before = pair.fast.agent.fast_path.served
        assert values(fast.get(*oids)) == values(slow.get(*oids))
        assert values(fast_ops.get(*oids)) == values(slow_ops.get(*oids))  # the TAP objects: noSuchObject to ops
        assert pair.fast.agent.fast_path.served == before + 2
        walked = [[(oid, tag, value) for oid, tag, value in values(w.walk(SYSTEM, repetitions=3)) if oid != SYS_UP_TIME]
                  for w in (fast_walker, slow_walker)]
        assert walked[0] == walked[1] and len(walked[0]) >= 5
        assert pair.fast.agent.fast_path.served > before + 2



@pytest.mark.parametrize("agent", ["fast", "slow"])
def test_session_walks_the_tables_as_pysnmp_walks_them_without_pysnmp(pair: Pair, agent: str) -> None:
    """TapClient.walk on Session (the MD keeper's audit) sends its GETBULKs
    itself, none through pysnmp's engine, and reads, from the agent's fast
    path and from pysnmp's, exactly what pysnmp's walk reads (several
    requests a table: 3 repetitions)."""
    side = getattr(pair, agent)
    content_id = 665 if agent == "fast" else 666
    with side.client() as client, side.client(fast=False) as walker:
        assert client.session is not None
        client.provision(content_id, "203.0.113.10", 7000, hour(),
                         [Filter(src="192.0.2.65/32"), Filter(dst="192.0.2.65/32", protocol=17, dst_ports=(6000, 6001))])

        def no_pysnmp(coroutine):
            coroutine.close()
            raise AssertionError("a walk on Session went through pysnmp")
        client._run = no_pysnmp
        try:
            for root in (MEDIATION, STREAM, IP_STREAM):
                walked = values(client.walk(root, repetitions=3))
                assert walked == values(walker.walk(root, repetitions=3))
                assert any(oid[len(root) + 1] == content_id for oid, _, _ in walked)
            assert client.intercepts()[content_id].streams.keys() == {1, 2}
        finally:
            del client._run
            client.remove(content_id, streams=2)

# -- 3. what the fast path must not admit -------------------------------------------------------

def request_id() -> int:
    return random.randint(0, 2**31 - 1)


def signed_plain(keys: usm.Keys, msg_id: int, flags: int, engine_id: bytes, boots: int, now: int,
                 scoped: bytes) -> bytes:
    """An authNoPriv message: the scoped PDU in clear, signed with the user's auth key."""
    n = keys.digest_length
    params = (ber.tlv(OCTET_STRING, engine_id) + ber.encode_integer(boots) + ber.encode_integer(now)
              + ber.tlv(OCTET_STRING, keys.user) + ber.tlv(OCTET_STRING, bytes(n)) + ber.tlv(OCTET_STRING, b""))
    header = ber.encode_integer(3) + ber.tlv(SEQUENCE, ber.encode_integer(msg_id) + ber.encode_integer(65507)
                                             + ber.tlv(OCTET_STRING, bytes((flags,))) + ber.encode_integer(usm.USM))
    whole = ber.tlv(SEQUENCE, header + ber.tlv(OCTET_STRING, ber.tlv(SEQUENCE, params)) + scoped)
    at = usm.parse(whole).auth_offset
    return whole[:at] + keys.mac(whole) + whole[at + n:]


def build(target: Target, kind: int = usm.GET, varbinds=None, user: str = "md1", keys: usm.Keys | None = None,
          flags: int = 0x07, boots: int = 0, later: int = 0, context_engine_id: bytes | None = None,
          context_name: bytes = b"", status: int = 0, index: int = 0, engine_id: bytes | None = None,
          max_size: int = 65507, pad: int = 0) -> bytes:
    """A request to `target` from `user` as a manager would make it; each
    keyword changes one thing (boots and later: added to the agent's own;
    pad: zero octets enciphered after the scoped PDU)."""
    keys = dataclasses.replace(keys or target.keys(), user=user.encode())
    engine_id = target.engine_id if engine_id is None else engine_id
    agent_boots, now = target.clock()
    varbinds = [(SYS_NAME, rfc1905.unSpecified)] if varbinds is None else varbinds
    scoped = usm.scoped_pdu(target.engine_id if context_engine_id is None else context_engine_id, context_name, kind,
                            request_id(), status, index, ber.encode_varbinds(varbinds))
    msg_id = random.randint(0, 2**31 - 1)
    if flags & 0x03 == 0x03:
        return usm.seal(keys, msg_id, max_size, flags, engine_id, agent_boots + boots, now + later,
                        scoped + bytes(pad))
    if flags & 0x03 == 0x01:
        return signed_plain(keys, msg_id, flags, engine_id, agent_boots + boots, now + later, scoped)
    return usm.plain(msg_id, 65507, flags, scoped, engine_id, agent_boots + boots, now + later, keys.user)


VARIANTS: dict[str, dict[str, Any]] = {
    "unknown user": {"user": "nobody"},
    "user ops with md1's keys": {"user": "ops"},
    "wrong auth key": {"keys": ("md1", AUTH_KEY + "x", PRIV_KEY)},
    "wrong priv key": {"keys": ("md1", AUTH_KEY, PRIV_KEY + "x")},
    "md512's keys": {"keys": ("md512", AUTH_KEY, PRIV_KEY, "SHA-512", "AES-256")},
    "time 200 s ahead": {"later": 200},
    "time far ahead": {"later": 10**6},
    "next boots": {"boots": 1},
    "context name": {"context_name": b"other"},
    "other context engine id": {"context_engine_id": bytes.fromhex("80001f880500")},
    "other engine id": {"engine_id": bytes.fromhex("80001f88050102030405")},
    "other engine id and context": {"engine_id": bytes.fromhex("80001f88050102030405"),
                                    "context_engine_id": bytes.fromhex("80001f88050102030405")},
    "noAuthNoPriv": {"flags": 0x04},
    "authNoPriv": {"flags": 0x05},
    "authPriv not reportable": {"flags": 0x03},
    "Response PDU": {"kind": usm.RESPONSE},
    "Report PDU": {"kind": usm.REPORT},
    "GET with an error status": {"status": 5, "index": 1},
}


def variant(target: Target, name: str) -> bytes:
    changes = dict(VARIANTS[name])
    if "keys" in changes:
        user, auth_key, priv_key, *protocols = changes["keys"]
        auth, priv = protocols or ("SHA-256", "AES")
        changes["keys"] = target.keys(user, auth, auth_key, priv, priv_key)
    return build(target, **changes)


ADDRESS = ("127.0.0.1", 40000)


def test_no_single_bit_flip_is_admitted(pair: Pair) -> None:
    fast = pair.fast.agent.fast_path
    for whole in (build(pair.fast), build(pair.fast, usm.SET, [(MEDIATION + (13, 660), rfc1902.Integer32(6))])):
        assert fast.admit(whole, ADDRESS) is not None  # the message itself would be served
        for position in range(len(whole)):
            for bit in range(8):
                tampered = bytearray(whole)
                tampered[position] ^= 1 << bit
                assert fast.admit(bytes(tampered), ADDRESS) is None, (position, bit)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_refusable_messages_are_not_admitted(pair: Pair, name: str) -> None:
    fast = pair.fast.agent.fast_path
    assert fast.admit(build(pair.fast), ADDRESS) is not None
    assert fast.admit(variant(pair.fast, name), ADDRESS) is None


def exchange(datagrams: list[tuple[bytes, tuple[str, int]]], wait: float = 0.5) -> list[bytes | None]:
    """Send each datagram from a socket of its own; each one's answer, or None after `wait` seconds (waited once)."""
    socks = []
    try:
        for data, address in datagrams:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(sock)
            sock.sendto(data, address)
        answers: list[bytes | None] = [None] * len(socks)
        deadline = time.monotonic() + wait
        while None in answers and (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([s for s, a in zip(socks, answers) if a is None], [], [], left)
            for sock in readable:
                answers[socks.index(sock)] = sock.recv(65535)
        return answers
    finally:
        for sock in socks:
            sock.close()


def shape(answer: bytes | None, keys: usm.Keys) -> tuple | None:
    """What an answer says, comparable across agents: its security level,
    whether its digest is the user's, the PDU type, status, index, OIDs, and
    values (those of Reports, counters that differ per agent, left out)."""
    if answer is None:
        return None
    message = usm.parse(answer)
    level = message.flags & 0x03
    if level == 0x03:
        scoped, signed = usm.open_scoped(message, keys), True
    else:
        n, at = keys.digest_length, message.auth_offset
        signed = level == 0x01 and len(message.auth_params) == n and hmac.compare_digest(
            keys.mac(message.whole[:at] + bytes(n) + message.whole[at + n:]), message.auth_params)
        scoped = message.data
    pdu = usm.parse_scoped(scoped)
    answered = values(pdu.varbinds)
    if pdu.kind == usm.REPORT:
        answered = [(oid, tag) for oid, tag, _ in answered]
    return (message.flags, signed, message.user, pdu.kind, pdu.error_status, pdu.error_index, answered)


@pytest.mark.parametrize("name", ["valid"] + list(VARIANTS))
def test_refused_messages_get_pysnmps_answer(pair: Pair, name: str) -> None:
    """Over UDP to both agents: the fast agent answers each variant exactly as
    the pysnmp-only agent does (a Report, a Response, or nothing), and serves
    none of them itself; the untouched request it does serve, alike."""
    made = [(build(t) if name == "valid" else variant(t, name), (t.host, t.port)) for t in (pair.fast, pair.slow)]
    before = pair.fast.agent.fast_path.served
    through_fast, through_pysnmp = exchange(made)
    assert pair.fast.agent.fast_path.served == before + (name == "valid")
    assert shape(through_fast, pair.fast.keys()) == shape(through_pysnmp, pair.slow.keys())
    if name == "valid":
        assert through_fast is not None


@pytest.mark.parametrize("pad", [1, 11, 15])
def test_aes_padding_is_served_as_pysnmp_serves_it(pair: Pair, pad: int) -> None:
    """pysnmp 4.4 pads what it enciphers with AES to 16 octets; pysnmp's USM
    (and net-snmp) read the scoped PDU and drop the rest: so does the fast
    path, which serves such a request itself, with pysnmp's answer."""
    made = [(build(t, pad=pad), (t.host, t.port)) for t in (pair.fast, pair.slow)]
    before = pair.fast.agent.fast_path.served
    through_fast, through_pysnmp = exchange(made)
    assert pair.fast.agent.fast_path.served == before + 1
    assert through_fast is not None and shape(through_fast, pair.fast.keys()) == shape(through_pysnmp,
                                                                                       pair.slow.keys())


def test_stale_time_gets_an_authenticated_not_in_time_window_report(pair: Pair) -> None:
    """RFC 3414 3.2.7 a): what Session must handle after an agent's restart.
    pysnmp (both agents: the fast path leaves it to pysnmp) answers a request
    200 s ahead with usmStatsNotInTimeWindows in an authNoPriv Report signed
    with the user's key, carrying the agent's boots and time."""
    for target in (pair.fast, pair.slow):
        answer = exchange([(variant(target, "time 200 s ahead"), (target.host, target.port))])[0]
        assert answer is not None
        flags, signed, user, kind, _, _, answered = shape(answer, target.keys())
        assert (flags, signed, user, kind) == (0x01, True, b"md1", usm.REPORT)
        assert [oid for oid, _ in answered] == [(1, 3, 6, 1, 6, 3, 15, 1, 1, 2, 0)]
        message = usm.parse(answer)
        boots, now = target.clock()
        assert message.boots == boots and abs(message.time - now) <= 1


@pytest.mark.parametrize("kind,max_size", [(usm.BULK, 484), (usm.BULK, 700), (usm.GET, 484), (usm.NEXT, 484)])
def test_answers_fit_the_requesters_message_size_as_pysnmps_do(pair: Pair, kind: int, max_size: int) -> None:
    """RFC 3416 4.2.3 / 4.2.1: forty sysName reads in one request from a
    manager whose msgMaxSize is small: the fast path cuts a GETBULK, or
    answers tooBig, exactly where pysnmp does, and its Response fits."""
    asked = [((1, 3, 6, 1, 2, 1, 1, 5) if kind != usm.GET else SYS_NAME, rfc1905.unSpecified)] * 40
    bulk = {"status": 40, "index": 0} if kind == usm.BULK else {}
    made = [(build(t, kind, asked, "ops", t.keys("ops", auth_key=OPS_AUTH, priv_key=OPS_PRIV), max_size=max_size,
                   **bulk), (t.host, t.port)) for t in (pair.fast, pair.slow)]
    before = pair.fast.agent.fast_path.served
    through_fast, through_pysnmp = exchange(made)
    assert pair.fast.agent.fast_path.served == before + 1
    assert through_fast is not None and len(through_fast) <= max_size
    ops = pair.fast.keys("ops", auth_key=OPS_AUTH, priv_key=OPS_PRIV)
    answered = shape(through_fast, ops)
    assert answered == shape(through_pysnmp, pair.slow.keys("ops", auth_key=OPS_AUTH, priv_key=OPS_PRIV))
    if kind == usm.BULK:
        assert 0 < len(answered[6]) < 40 and answered[4] == 0  # cut short, no error
    else:
        assert answered[4] == usm.ERROR_CODES["tooBig"] and answered[6] == []


def test_an_engine_at_its_last_boot_serves_nothing_itself(pair: Pair, engine_ids: list[bytes],
                                                          tmp_path: Path) -> None:
    """RFC 3414 3.2.7 a): with snmpEngineBoots at 2147483647 every
    authenticated request is outside the time window; the fast path leaves
    them all to pysnmp, which reports notInTimeWindow."""
    persisted = Path(tempfile.gettempdir()) / "__pysnmp" / ("0x" + engine_ids[0].hex())
    persisted.mkdir(parents=True, exist_ok=True)
    (persisted / "boots").write_text(str(2**31 - 2))  # pysnmp counts this start up to the last value
    last = restarted(tmp_path, pair.controller, free_udp_port(), engine_ids[0])
    try:
        assert last.clock()[0] == last.agent.fast_path.boots == 2**31 - 1
        request = build(last)
        assert last.agent.fast_path.admit(request, ADDRESS) is None
        answer = exchange([(request, (last.host, last.port))])[0]
        assert last.agent.fast_path.served == 0
        flags, signed, _, kind, _, _, answered = shape(answer, last.keys())
        assert (flags, signed, kind) == (0x01, True, usm.REPORT)
        assert [oid for oid, _ in answered] == [(1, 3, 6, 1, 6, 3, 15, 1, 1, 2, 0)]
    finally:
        last.agent.stop()


# -- 5. Session: discovery, restarts, a dead agent --------------------------------------------------

def test_discovery_learns_the_engine(pair: Pair) -> None:
    fast = pair.fast
    with fast.client() as client:
        session = client.session
        session.discover()
        boots, now = fast.clock()
        assert session.engine_id == fast.engine_id == fast.agent.fast_path.engine_id
        assert session.boots == boots and abs(session.engine_time() - now) <= 1
        assert session.keys == fast.agent.fast_path.keys[b"md1"][1]


def restarted(home: Path, controller, port: int, engine_id: bytes) -> Target:
    return start(home, controller, fast_path=True, listen=f'"127.0.0.1:{port}"',
                 extra_agent=f'engine_id = "{engine_id.hex()}"')


def restart(pair: Pair, engine_ids: list[bytes], tmp_path: Path, new_engine: bool, fast: bool = True,
            same_client: bool = True) -> None:
    """A SET, the agent restarted with another engine ID or with its own
    (pysnmp counts boots up, time starts again), then a SET from the same
    client (or, as mediation/keeper.py does after a failure, a new one)."""
    port = free_udp_port()
    first = restarted(tmp_path / "a", pair.controller, port, engine_ids[0])
    client = first.client(fast=fast, timeout=0.5, retries=0 if new_engine else 1)
    destroy = [(MEDIATION + (13, 670 if new_engine else 671), rfc1902.Integer32(6))]
    try:
        client.set(destroy)
        if fast:
            assert client.session.engine_id == engine_ids[0]
        boots = first.clock()[0]
        first.agent.stop()
        second_id = engine_ids[1] if new_engine else engine_ids[0]
        second = restarted(tmp_path / "b", pair.controller, port, second_id)
        try:
            if not new_engine:
                assert second.clock()[0] == boots + 1
            served = second.agent.fast_path.served
            if not same_client:
                client.close()
                client = second.client(timeout=0.4, retries=0)
            client.set(destroy)
            if fast:
                assert client.session.engine_id == second_id
                assert second.agent.fast_path.served == served + 1
                if not new_engine:
                    assert client.session.boots == boots + 1
        finally:
            second.agent.stop()
    finally:
        client.close()
        first.agent.stop()


@pytest.mark.parametrize("new_engine, fast, same_client", [
    (True, True, False),  # what mediation/keeper.py does after a failure: a new client discovers the new engine
    (True, True, True),  # the same Session rediscovers after an unauthenticated Report
    (False, False, True),  # the reference: pysnmp's client re-learns boots and time from notInTimeWindow
    (False, True, True),  # the same Session does too
], ids=["new engine, new client", "new engine, same session", "same engine, pysnmp client",
        "same engine, same session"])
def test_a_client_goes_on_after_an_agent_restart(pair: Pair, engine_ids: list[bytes], tmp_path: Path,
                                                 new_engine: bool, fast: bool, same_client: bool) -> None:
    restart(pair, engine_ids, tmp_path, new_engine, fast, same_client)


@pytest.mark.parametrize("how", ["set", "provision_many"])
def test_session_relearns_a_stale_clock(pair: Pair, how: str) -> None:
    """The client's idea of the agent's time 1000 s off (a suspended MD, a
    restarted agent with the same boots): the agent's Report sets it right
    and the request is sent once more."""
    with pair.fast.client(timeout=0.4, retries=0) as client:
        client.get(SYS_NAME)
        said, at = client.session._clock
        client.session._clock = (said + 1000, at)
        if how == "set":
            client.set([(MEDIATION + (13, 672), rfc1902.Integer32(6))])
        else:
            taps = [Provisioning(673, "203.0.113.10", 7000, hour(), (Filter(src="192.0.2.99/32"),))]
            assert client.provision_many(taps, window=2) == {673: None}
            client.remove(673, streams=1)
        assert abs(client.session.engine_time() - pair.fast.clock()[1]) <= 1


@contextmanager
def silent_agent(port: int = 0) -> Iterator[tuple[int, Callable[[], int]]]:
    """A UDP socket on 127.0.0.1 that reads and never answers: its port, and
    a count of the datagrams it got so far. What a dead agent's MD sends is
    counted there, so the tests below check the tries themselves, not only a
    duration that a busy machine stretches."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sock.setblocking(False)
    got = 0

    def count() -> int:
        nonlocal got
        while True:
            try:
                sock.recv(65536)
            except BlockingIOError:
                return got
            got += 1

    with sock:
        yield sock.getsockname()[1], count


@pytest.mark.parametrize("timeout,retries", [(0.3, 0), (0.2, 2)])
def test_dead_agent_times_out_in_time(timeout: float, retries: int) -> None:
    with silent_agent() as (port, sent):
        with TapClient("127.0.0.1", port, "md1", AUTH_KEY, PRIV_KEY, timeout=timeout, retries=retries) as client:
            began = time.monotonic()
            with pytest.raises(TapClientError, match="No SNMP response received before timeout"):
                client.set([(MEDIATION + (13, 680), rfc1902.Integer32(6))])
            took = time.monotonic() - began
        assert sent() == retries + 1  # the discovery request, tried as often as asked, and no more
    assert took >= timeout * (retries + 1) - 0.05  # each try waited its timeout out


def test_agent_gone_after_discovery_times_out_in_time(pair: Pair, engine_ids: list[bytes], tmp_path: Path) -> None:
    port = free_udp_port()
    gone = restarted(tmp_path, pair.controller, port, engine_ids[0])
    with gone.client(timeout=0.3, retries=1) as client:
        client.get(SYS_NAME)
        gone.agent.stop()
        with silent_agent(port) as (_, sent):
            began = time.monotonic()
            with pytest.raises(TapClientError, match="No SNMP response received before timeout"):
                client.set([(MEDIATION + (13, 681), rfc1902.Integer32(6))])
            took = time.monotonic() - began
            assert sent() == 2  # the SET, tried twice, and no more
    assert took >= 0.55


@pytest.mark.parametrize("how", ["request", "pipeline"])
def test_a_retransmission_is_a_new_message(how: str) -> None:
    """The agent refuses a second copy of an authenticated message as a replay
    (mib_bridge/replay.py), so Session, as net-snmp and pysnmp do, sends a
    retry under a new msgID (new salt, new digest), with the same request-id."""
    from snmpv3.session import Session, SessionError

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:  # hears everything, answers nothing
        peer.bind(("127.0.0.1", 0))
        session = Session("127.0.0.1", peer.getsockname()[1], "md1", AUTH["SHA-256"], AUTH_KEY, PRIV["AES"], PRIV_KEY,
                          timeout=0.1, retries=2)
        engine_id = bytes.fromhex("80001f8805aabbccdd")
        session.engine_id, session.boots = engine_id, 1
        session.keys = usm.Keys.derive(b"md1", AUTH["SHA-256"], AUTH_KEY, PRIV["AES"], PRIV_KEY, engine_id)
        try:
            with pytest.raises(SessionError):
                if how == "request":
                    session.request(usm.GET, [(SYS_NAME, rfc1905.unSpecified)])
                else:
                    result = session.pipeline([[(usm.GET, [(SYS_NAME, rfc1905.unSpecified)])]], 1)[0]
                    raise result if isinstance(result, SessionError) else AssertionError(result)
        finally:
            session.close()
        sent = []
        while select.select([peer], [], [], 0)[0]:
            sent.append(usm.parse(peer.recv(65535)))
    keys = session.keys
    assert len(sent) == 3
    assert len({m.msg_id for m in sent}) == 3 and len({m.auth_params for m in sent}) == 3
    assert len({usm.parse_scoped(usm.open_scoped(m, keys)).request_id for m in sent}) == 1
