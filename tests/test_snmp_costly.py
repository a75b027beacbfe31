"""Costly messages (issue 26, part 1): nothing unauthenticated may be expensive.

56 KB GETs of 8,000 varbinds that cannot be authenticated (noAuthNoPriv from
a user configured authPriv, an unknown user, a wrong digest) locked the LI
user out: pysnmp spent 0.3-0.7 s decoding each before refusing it. What is
proven here, against the agents of tests/test_snmp_fast_path.py (`fast`, the
production one, and `slow`, pysnmp only, as the reference):
- such a message is answered from its header alone: the PDU is never
  decoded (snmpv3.ber.read_varbinds is not called), pysnmp never sees it,
  and the Report is field for field the one pysnmp sends for the small
  message (msgID, msgMaxSize, msgFlags, engine, boots, user, request-id,
  context, the usmStats counter), counted in that counter;
- engine ID discovery is answered the same way, its PDU read only when it
  is as small as a discovery is;
- the LI user is answered right after a burst of them (the old agent chewed
  on the burst for seconds);
- what does go to pysnmp is charged by its cost: a budget of pysnmp's time,
  by size up front and by measured time after (mib_bridge/budget.py);
- a datagram larger than the agent's maximum message size is dropped unread
  and counted (RFC 3417 3.2), and the size is the agent's config.
The LI user's GET rate under floods of each kind is bench/snmp_dos's
(BENCHMARKS.md); no timing is asserted here.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path
from typing import Any

import pytest
from pysnmp.proto import rfc1905

from mib_bridge import budget as budget_module
from mib_bridge.budget import Budget
from mib_bridge.config import ConfigError, load
from mib_bridge.counters import ARCS
from snmpv3 import ber, usm
from tests.snmp_support import agent_config
from tests.test_snmp_fast_path import VARIANTS, Target, build, exchange, pair, tap_switch  # noqa: F401 (fixtures)

HEAVY = [((1, 3), rfc1905.unSpecified)] * 8000  # 7 octets each: 56 KB
UNAUTHENTICATED = {"unknown user": "usmStatsUnknownUserNames", "noAuthNoPriv": "usmStatsUnsupportedSecLevels",
                   "wrong auth key": "usmStatsWrongDigests", "user ops with md1's keys": "usmStatsWrongDigests",
                   "md512's keys": "usmStatsWrongDigests"}


def made(target: Target, name: str, varbinds=None) -> bytes:
    changes: dict[str, Any] = dict(VARIANTS[name])
    if "keys" in changes:
        user, auth_key, priv_key, *protocols = changes["keys"]
        auth, priv = protocols or ("SHA-256", "AES")
        changes["keys"] = target.keys(user, auth, auth_key, priv, priv_key)
    return build(target, varbinds=varbinds, **changes)


def discovery(msg_id: int, request_id: int, varbinds=()) -> bytes:
    """What net-snmp and pysnmp send first: no engine ID, no user, noAuthNoPriv, reportable."""
    scoped = usm.scoped_pdu(b"", b"", usm.GET, request_id, 0, 0, ber.encode_varbinds(list(varbinds)))
    return usm.plain(msg_id, 65507, usm.REPORTABLE, scoped)


def fields(answer: bytes | None, target: Target) -> tuple | None:
    """Everything a Report says but the counter's value, with the agent's own
    engine ID and boots replaced by markers (they differ per agent)."""
    if answer is None:
        return None
    m = usm.parse(answer)
    pdu = usm.parse_scoped(m.data)
    boots, _ = target.clock()
    return (m.msg_id, m.max_size, m.flags, m.engine_id == target.engine_id, m.boots == boots, m.user, m.auth_params,
            m.priv_params, pdu.kind, pdu.request_id, pdu.error_status, pdu.error_index,
            pdu.context_engine_id == target.engine_id, pdu.context_name, [oid for oid, _ in pdu.varbinds])


def counter(target: Target, name: str) -> int:
    with target.client() as client:
        (_, value), = client.get(ARCS[name] + (0,))
    return int(value)


@pytest.mark.parametrize("name", list(UNAUTHENTICATED))
def test_unauthenticated_reports_are_pysnmps_field_for_field(pair, name: str) -> None:
    sent = [(made(t, name), (t.host, t.port)) for t in (pair.fast, pair.slow)]
    through_fast, through_pysnmp = exchange(sent)
    assert through_pysnmp is not None and through_fast is not None
    for (request, _), answer in zip(sent, (through_fast, through_pysnmp)):
        assert usm.parse(answer).msg_id == usm.parse(request).msg_id
    assert fields(through_fast, pair.fast)[1:] == fields(through_pysnmp, pair.slow)[1:]
    oid = usm.parse_scoped(usm.parse(through_fast).data).varbinds[0][0]
    assert oid == ARCS[UNAUTHENTICATED[name]] + (0,)


def test_discovery_report_is_pysnmps_field_for_field(pair) -> None:
    msg_id, request_id = random.randrange(2**31), random.randrange(2**31)
    through_fast, through_pysnmp = exchange([(discovery(msg_id, request_id), (t.host, t.port))
                                             for t in (pair.fast, pair.slow)])
    assert through_pysnmp is not None
    assert fields(through_fast, pair.fast) == fields(through_pysnmp, pair.slow)
    assert usm.parse(through_fast).engine_id == pair.fast.engine_id


@pytest.mark.parametrize("name", list(UNAUTHENTICATED))
def test_a_heavy_unauthenticated_message_is_answered_from_its_header(pair, name: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fast = pair.fast.agent.fast_path
    heavy = made(pair.fast, name, HEAVY)
    assert len(heavy) > 50_000
    decoded, handed = [], []
    real_read_varbinds = ber.read_varbinds

    def read_varbinds(data, pos, end):
        decoded.append(end - pos)
        return real_read_varbinds(data, pos, end)

    def handed_back(seconds: float, real=fast.handed_back) -> None:
        handed.append(seconds)
        real(seconds)

    before = counter(pair.fast, UNAUTHENTICATED[name])
    monkeypatch.setattr(ber, "read_varbinds", read_varbinds)
    monkeypatch.setattr(fast, "handed_back", handed_back)
    answer, = exchange([(heavy, (pair.fast.host, pair.fast.port))])
    monkeypatch.undo()
    assert [n for n in decoded if n > 50_000] == [] and handed == []  # neither read by us nor given to pysnmp
    small, = exchange([(made(pair.fast, name), (pair.fast.host, pair.fast.port))])
    assert answer is not None and fields(answer, pair.fast)[1:] == fields(small, pair.fast)[1:]
    assert counter(pair.fast, UNAUTHENTICATED[name]) == before + 2


def test_heavy_discovery_is_dropped_unread_and_counted(pair, monkeypatch: pytest.MonkeyPatch) -> None:
    before = counter(pair.fast, "usmStatsUnknownEngineIDs")
    decoded = []
    real_read_varbinds = ber.read_varbinds
    monkeypatch.setattr(ber, "read_varbinds", lambda data, pos, end: decoded.append(end - pos) or
                        real_read_varbinds(data, pos, end))
    answer, = exchange([(discovery(1, 1, HEAVY), (pair.fast.host, pair.fast.port))])
    monkeypatch.undo()
    assert answer is None and [n for n in decoded if n > 50_000] == []
    # the heavy one, and the discovery of the client that reads the counter
    assert counter(pair.fast, "usmStatsUnknownEngineIDs") == before + 2


def test_the_li_user_is_answered_right_after_a_burst_of_heavy_messages(pair) -> None:
    """40 heavy noAuthNoPriv GETs in one burst, then md1's GET (1 s timeout,
    one retry). The old agent handed 20 of them to pysnmp, ~10 s of work."""
    burst = [made(pair.fast, "noAuthNoPriv", HEAVY) for _ in range(40)]
    with pair.fast.client(timeout=1.0, retries=1) as client:
        client.get((1, 3, 6, 1, 2, 1, 1, 5, 0))  # discovered before the burst
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for datagram in burst:
                sock.sendto(datagram, (pair.fast.host, pair.fast.port))
        (_, name), = client.get((1, 3, 6, 1, 2, 1, 1, 5, 0))
    assert str(name)


def test_a_datagram_over_the_agents_maximum_size_is_dropped_unread(pair, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = pair.fast.agent.fast_path
    asked = [((1, 3, 6, 1, 2, 1, 1, 5, 0), rfc1905.unSpecified)] * 60
    big, small = build(pair.fast, varbinds=asked), build(pair.fast)
    assert len(big) > 484 >= len(small)
    before = counter(pair.fast, "snmpInASNParseErrs")
    monkeypatch.setattr(fast, "max_size", 484)
    over, under = exchange([(big, (pair.fast.host, pair.fast.port)), (small, (pair.fast.host, pair.fast.port))])
    monkeypatch.undo()
    assert over is None and under is not None
    assert counter(pair.fast, "snmpInASNParseErrs") == before + 1


@pytest.mark.parametrize("size, refused", [(65507, False), (484, False), (483, True), (65508, True)])
def test_max_message_size_is_the_agents_config(tmp_path: Path, size: int, refused: bool) -> None:
    path = agent_config(tmp_path / "snmp.toml", extra_agent=f"max_message_size = {size}")
    if refused:
        with pytest.raises(ConfigError, match="max_message_size must be 484 to 65507"):
            load(path)
    else:
        assert load(path).max_message_size == size


# -- the budget of pysnmp's time --------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(budget_module.time, "monotonic", fake)
    return fake


def test_a_message_that_would_cost_more_than_a_bucket_holds_never_goes(clock: Clock) -> None:
    budget = Budget()
    assert not budget.take("192.0.2.1", budget_module.estimate(56_000))
    clock.now += 3600  # however long it waits
    assert not budget.take("192.0.2.1", budget_module.estimate(56_000))
    assert budget.take("192.0.2.1", budget_module.estimate(100))


def test_pysnmps_measured_time_is_charged_and_leaves_debt(clock: Clock) -> None:
    budget = Budget(per_host=(0.02, 0.05), overall=(0.10, 0.20))
    small = budget_module.estimate(100)
    assert budget.take("192.0.2.1", small)
    budget.charge("192.0.2.1", 0.5 - small)  # it took pysnmp half a second after all
    assert not budget.take("192.0.2.1", small) and not budget.take("192.0.2.2", small)  # in debt, and overall too
    clock.now += 5  # the overall bucket's debt (0.3 s at 0.1 s/s) is paid; the host's (0.45 s at 0.02/s) is not
    assert budget.take("192.0.2.2", small) and not budget.take("192.0.2.1", small)
    clock.now += 20
    assert budget.take("192.0.2.1", small)


def test_the_cost_of_small_messages_allows_about_what_the_count_did(clock: Clock) -> None:
    """~10 small messages a second per host, as the old count budget, and no more."""
    budget = Budget()
    small = budget_module.estimate(120)
    taken = 0
    for _ in range(100):  # one second, in steps of 10 ms
        clock.now += 0.01
        taken += budget.take("192.0.2.1", small)
    assert 10 <= taken <= 40
