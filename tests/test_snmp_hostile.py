"""Hostile input to the running agent (issue 12): malformed messages, floods
of refusals, replays. The agent is the production one (fast path on) with
the real controller on a real switch (tests/snmp_support.py).

What is proven:
- every message of the corpus (tests/fixtures/snmp_malformed.txt: raw
  datagrams, and values and PDUs md1 sends authenticated) gets no answer and
  is counted exactly once in the agent's drop counters, read by an SNMP GET
  (snmpInASNParseErrs, snmpInBadVersions, snmpInvalidMsgs, usmStats*); no
  traceback is logged; the TAP-MIB walks the same before and after;
- 20,000 authenticated GETs with an indefinite-length NULL (pysnmp leaked
  ~2.4 KB of state per message on them) leave the agent's resident memory
  bounded, and every one of them is counted;
- a flood of identical refusals is audited in a few records that say how
  many, every one of them counted, and logged in one line;
- a captured authPriv SET sent again inside the time window is refused,
  audited as a replay, and changes nothing.
"""

from __future__ import annotations

import logging
import random
import select
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pysnmp.proto import rfc1902

from mediation.snmp_client import MEDIATION, Filter, TapClient
from mib_bridge.counters import ARCS, IN_PKTS
from mib_bridge.security import AUTH, PRIV
from snmpv3 import ber, usm
from snmpv3.ber import OCTET_STRING, SEQUENCE, tlv
from tests.snmp_support import AUTH_KEY, PRIV_KEY, Running, start_agent, switch_controller, tap_switch

CORPUS = Path(__file__).parent / "fixtures" / "snmp_malformed.txt"
SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)
DROPS = [name for name in ARCS if name != IN_PKTS]
CONTENT_ID = 812
TIMEOUT_COLUMN = MEDIATION + (10,)
NEW_INDEX = (1, 3, 6, 1, 4, 1, 9, 9, 399, 1, 1, 1, 0)

__all__ = ["tap_switch"]


@dataclass(frozen=True)
class Case:
    layer: str  # raw, value or pdu (the corpus file says what each means)
    name: str
    data: bytes


def corpus() -> list[Case]:
    cases = []
    for line in CORPUS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            layer, name, hexed = (part.strip() for part in line.split("|"))
            cases.append(Case(layer, name, bytes.fromhex(hexed)))
    return cases


def oversized_v2c() -> Case:
    """An SNMPv2c `public` GET of 8,000 varbinds (56 KB): pysnmp decoded all of it before looking at the community."""
    varbind = tlv(SEQUENCE, ber.encode_oid((1, 3)) + b"\x05\x00")  # 7 octets
    pdu = tlv(0xA0, ber.encode_integer(1) + ber.encode_integer(0) + ber.encode_integer(0)
              + tlv(SEQUENCE, varbind * 8000))
    return Case("raw", "SNMPv2c GET of 8,000 varbinds", tlv(SEQUENCE, ber.encode_integer(1) + tlv(OCTET_STRING, b"public") + pdu))


CASES = corpus() + [oversized_v2c()]


@dataclass
class Hostile:
    running: Running
    client: TapClient
    host: str
    port: int
    keys: usm.Keys

    @property
    def engine_id(self) -> bytes:
        return bytes(self.running.agent.engine.snmpEngineID)

    def clock(self) -> tuple[int, int]:
        boots, engine_time = self.running.agent.engine.get_mib_builder().import_symbols(
            "__SNMP-FRAMEWORK-MIB", "snmpEngineBoots", "snmpEngineTime")
        return int(boots.syntax), int(engine_time.syntax.clone())

    def sealed(self, scoped: bytes) -> bytes:
        boots, now = self.clock()
        return usm.seal(self.keys, random.randint(0, 2**31 - 1), 65507, usm.AUTH_PRIV | usm.REPORTABLE, self.engine_id,
                        boots, now, scoped)

    def datagram(self, case: Case) -> bytes:
        if case.layer == "raw":
            return case.data
        if case.layer == "value":
            varbinds = tlv(SEQUENCE, tlv(SEQUENCE, ber.encode_oid(SYS_NAME) + case.data))
            return self.sealed(usm.scoped_pdu(self.engine_id, b"", usm.GET, random.randint(1, 2**30), 0, 0, varbinds))
        assert case.layer == "pdu", case
        return self.sealed(tlv(SEQUENCE, tlv(OCTET_STRING, self.engine_id) + tlv(OCTET_STRING, b"") + case.data))

    def counters(self) -> dict[str, int]:
        """The agent's counters as a GET answers them, after every datagram sent
        before: the agent serves what names it first within what it read at
        once, so one GET may overtake them, the second cannot. Both GETs count
        in snmpInPkts."""
        self.client.get(SYS_NAME)
        names = list(ARCS)
        return {name: int(value) for name, (_, value) in zip(names, self.client.get(*(ARCS[n] + (0,) for n in names)))}

    def walk(self) -> list:
        """The TAP-MIB but cTap2MediationNewIndex (new at every read)."""
        return [(oid, value.prettyPrint()) for oid, value in self.client.walk((1, 3, 6, 1, 4, 1, 9, 9))
                if oid != NEW_INDEX]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, tap_switch) -> Iterator[Hostile]:
    home = tmp_path_factory.mktemp("hostile")
    controller = switch_controller(home, tap_switch)
    controller.start()
    running = start_agent(home, controller, listen='"127.0.0.1:0"')
    address = running.agent.addresses[0]
    client = TapClient(address.host, address.port, "md1", AUTH_KEY, PRIV_KEY, fast=True, timeout=2.0, retries=1)
    client.provision(CONTENT_ID, "203.0.113.10", 7000, datetime.now(timezone.utc) + timedelta(hours=1),
                     [Filter(src="192.0.2.81/32")])
    engine_id = bytes(running.agent.engine.snmpEngineID)
    keys = usm.Keys.derive(b"md1", AUTH["SHA-256"], AUTH_KEY, PRIV["AES"], PRIV_KEY, engine_id)
    yield Hostile(running, client, address.host, address.port, keys)
    client.close()
    running.agent.stop()
    controller.stop()


def send(target: Hostile, datagram: bytes, wait: float = 0.3) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(datagram, (target.host, target.port))
        readable, _, _ = select.select([sock], [], [], wait)
        return sock.recv(65535) if readable else None


def tracebacks(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.exc_info or "Traceback" in r.getMessage()]


# -- malformed input ------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=[f"{c.layer}: {c.name}" for c in CASES])
def test_malformed_input_is_a_counted_drop(hostile: Hostile, case: Case, caplog) -> None:
    caplog.set_level(logging.INFO)
    walk = hostile.walk()
    before = hostile.counters()
    answer = send(hostile, hostile.datagram(case))
    after = hostile.counters()
    assert answer is None
    assert sum(after[n] - before[n] for n in DROPS) == 1, {n: after[n] - before[n] for n in DROPS}
    assert after[IN_PKTS] - before[IN_PKTS] == 3  # the datagram and the two GETs of counters()
    assert tracebacks(caplog.records) == []
    assert hostile.walk() == walk


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def test_rss_stays_bounded_over_20000_malformed_authenticated_gets(hostile: Hostile, caplog) -> None:
    """The agent runs in this process: its resident memory is ours. pysnmp kept
    ~2.4 KB per such message (48 MB for these); what stays is the replay
    memory, one short entry per authenticated message of the last 150 s."""
    caplog.set_level(logging.WARNING)
    null = next(c for c in CASES if c.name == "NULL of indefinite length")
    batch = [hostile.datagram(null) for _ in range(500)]  # sealed once: a fresh msgID and salt each
    walk = hostile.walk()

    def flood(rounds: int) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for _ in range(rounds):
                for datagram in batch[:100]:
                    sock.sendto(datagram, (hostile.host, hostile.port))
                hostile.counters()  # a barrier: the agent handled the 100 before answering this
                batch[:] = batch[100:] + [hostile.datagram(null) for _ in range(100)]

    flood(10)  # warm-up: 1,000 messages
    start, counted = rss_kib(), hostile.counters()
    flood(200)  # 20,000 messages
    grown = rss_kib() - start
    after = hostile.counters()
    assert sum(after[n] - counted[n] for n in DROPS) == 20_000
    assert grown < 12 * 1024, f"resident memory grew by {grown} KiB over 20,000 messages"
    assert tracebacks(caplog.records) == []
    assert hostile.walk() == walk


# -- floods of refusals ---------------------------------------------------------------------

def test_a_flood_of_identical_refusals_is_audited_in_aggregate_and_logged_once(hostile: Hostile, caplog) -> None:
    caplog.set_level(logging.INFO, logger="p4tap.snmp")
    v2c = next(c for c in CASES if c.name == "SNMPv2c GET public").data
    since = len(hostile.running.audit())
    before = hostile.counters()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        for _ in range(4):  # in bursts the socket's buffer holds, each read by the agent before the next
            for _ in range(50):
                sock.sendto(v2c, (hostile.host, hostile.port))
            hostile.counters()
    after = hostile.counters()
    assert after["snmpInBadVersions"] - before["snmpInBadVersions"] == 200
    records = [r for r in hostile.running.audit()[since:]
               if r["action"] == "snmp-refuse" and r["detail"].get("version") == "v2c"]
    assert sum(r["detail"]["count"] for r in records) == 200
    assert len(records) <= 4 and all(r["actor"] == "snmp:community from 127.0.0.1" for r in records)
    assert all(r["detail"]["ports"] == [port] for r in records)
    lines = [r for r in caplog.records if "SNMPv1/v2c" in r.getMessage()]
    assert len(lines) <= 1


# -- replay ----------------------------------------------------------------------------------

def timeout_set(target: Hostile, when: datetime) -> bytes:
    local = when.astimezone()  # DateAndTime, 8 octets of local time
    value = rfc1902.OctetString(bytes((local.year >> 8, local.year & 0xFF, local.month, local.day, local.hour,
                                       local.minute, local.second, 0)))
    varbinds = ber.encode_varbinds([(TIMEOUT_COLUMN + (CONTENT_ID,), value)])
    return target.sealed(usm.scoped_pdu(target.engine_id, b"", usm.SET, random.randint(1, 2**30), 0, 0, varbinds))


def timeout_of(target: Hostile) -> bytes:
    (_, value), = target.client.get(TIMEOUT_COLUMN + (CONTENT_ID,))
    return bytes(value)


def test_a_replayed_set_inside_the_time_window_is_refused_and_audited(hostile: Hostile) -> None:
    now = datetime.now(timezone.utc)
    first, second = timeout_set(hostile, now + timedelta(hours=2)), timeout_set(hostile, now + timedelta(hours=3))
    assert send(hostile, first, wait=2.0) is not None
    reverted = timeout_of(hostile)
    assert send(hostile, second, wait=2.0) is not None
    changed = timeout_of(hostile)
    assert changed != reverted
    since = len(hostile.running.audit())
    assert send(hostile, first, wait=1.0) is None  # the captured SET again, well inside 150 s
    assert timeout_of(hostile) == changed
    replays = [r for r in hostile.running.audit()[since:] if "replay" in r["detail"].get("reason", "")]
    assert sum(r["detail"]["count"] for r in replays) == 1 and replays[0]["actor"] == "snmp:md1 from 127.0.0.1"


def test_a_replay_is_refused_after_more_messages_than_the_old_memory_held(hostile: Hostile) -> None:
    """Issue 26: the memory held 200,000 messages and forgot the oldest past
    that, so at the agent's full rate a SET captured 105 s before could be
    sent again. The SET goes over the wire, then 250,000 other authenticated
    messages of md1 claiming the same seconds are remembered (in process:
    over the wire that is two minutes at full rate; the fast path hands the
    memory exactly these), then the captured SET again: refused."""
    fast_path = hostile.running.agent.fast_path
    now = datetime.now(timezone.utc)
    first, second = timeout_set(hostile, now + timedelta(hours=4)), timeout_set(hostile, now + timedelta(hours=5))
    assert send(hostile, first, wait=2.0) is not None
    assert send(hostile, second, wait=2.0) is not None
    changed = timeout_of(hostile)
    claimed = usm.parse(first).time
    rng = random.Random(26)
    for i in range(250_000):
        fast_path.replays.first_copy(SentLike(b"md1", claimed + 1 + i % 3, rng.randbytes(24)), fast_path.engine_time())
    since = len(hostile.running.audit())
    assert send(hostile, first, wait=1.0) is None
    assert timeout_of(hostile) == changed
    replays = [r for r in hostile.running.audit()[since:] if "replay" in r["detail"].get("reason", "")]
    assert sum(r["detail"]["count"] for r in replays) == 1


@dataclass(frozen=True)
class SentLike:
    """What the replay memory reads of an authenticated message."""

    user: bytes
    time: int
    auth_params: bytes
    boots: int = 1
    msg_id: int = 0
