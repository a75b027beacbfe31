"""mediation/derived_state.py: the derived taps written at every change and
read back by a restarted MD (tests/test_md_restart.py runs it through the
real MD, IAP and switch). Here: what is kept, what is dropped at load, the
file's durability and permissions, and a damaged file."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

from controller.toml_fields import Endpoint
from mediation.derived_state import DerivedState
from mediation.derived_taps import DerivedTaps, prefix_filters
from mediation.radius_iri import IdentityTarget
from mediation.snmp_client import Filter

MD = Endpoint("203.0.113.10", 7000)
NOW = datetime.now(timezone.utc)
ALICE = IdentityTarget(4242, "alice", lifetime=60)
CAROL = IdentityTarget(4243, "carol", lifetime=60, until=NOW + timedelta(days=1))
RTP = (Filter(dst="192.0.2.10/32", protocol=17, dst_ports=(6000, 6001)),
       Filter(src="192.0.2.10/32", protocol=17, src_ports=(6000, 6001)))


def recording() -> tuple[DerivedTaps, list]:
    calls: list = []
    taps = DerivedTaps(lambda spec: calls.append(("want", spec)), lambda cccid: calls.append(("unwant", cccid)), MD)
    return taps, calls


def test_every_change_is_written_before_the_keeper_hears_of_it_and_a_new_md_reads_it_back(tmp_path, caplog):
    state = DerivedState(tmp_path / "md" / "derived-taps.json")
    with caplog.at_level(logging.INFO, "p4tap.md"):
        assert state.restore(recording()[0], {}) == []
    assert caplog.records == [] and not state.path.exists(), "the first start: nothing to say, nothing written"
    taps, calls = recording()
    taps.on_change = lambda t, m, write=state.write: (calls.append(("written", sorted(t))), write(t, m))
    taps.set(ALICE, "radius:s1", prefix_filters(("192.0.2.10/32",)), "RADIUS session s1", 10.0)
    taps.change(CAROL.cccid, {"sip 192.0.2.10 6000/6001": (RTP, "SIP call c1")}, (), 11.0, CAROL)
    taps.remember("sip", {"calls": [{"call_id": "c1", "last_seen": 11.0}]})
    assert [c[0] for c in calls] == ["written", "want", "written", "want", "written"]
    assert oct(state.path.stat().st_mode & 0o777) == "0o600"
    assert not list(state.path.parent.glob("*.tmp"))

    again, asked = recording()
    specs = DerivedState(state.path).restore(again, {4242: ALICE, 4243: CAROL})
    assert asked == [], "restored without asking the keeper: it keeps them from its first audit"
    assert {s.content_id: s for s in specs} == {spec.content_id: spec for _, spec in calls[1:4:2]}
    assert again.summary() == taps.summary() and again.memory == {"sip": {"calls": [{"call_id": "c1",
                                                                                      "last_seen": 11.0}]}}

    again.clear(ALICE.cccid, "radius:s1", 12.0)   # the Stop after the restart: exactly that part goes
    assert asked == [("unwant", 4242)]


def test_a_tap_past_its_warrant_or_of_a_warrant_gone_is_dropped_at_load(tmp_path, caplog):
    state = DerivedState(tmp_path / "derived-taps.json")
    taps, _ = recording()
    taps.on_change = state.write
    taps.set(ALICE, "radius", prefix_filters(("192.0.2.10/32",)), "RADIUS session s1", 1.0)
    taps.set(CAROL, "radius", prefix_filters(("192.0.2.11/32",)), "RADIUS session s2", 1.0)
    ended = IdentityTarget(4243, "carol", lifetime=60, until=NOW - timedelta(seconds=1))
    again, _ = recording()
    loaded = DerivedState(state.path)
    with caplog.at_level(logging.INFO, "p4tap.md"):
        assert loaded.restore(again, {4243: ended}) == []
    assert again.taps == {} and loaded.dropped == {4242, 4243}, "the keeper removes them at the IAP"
    assert "4242: its warrant is no longer configured" in caplog.text and "4243: its warrant ended" in caplog.text
    assert json.loads(state.path.read_text())["taps"] == {}, "written back without them"


def test_a_damaged_or_unreadable_file_is_said_once_and_the_md_starts_without_it(tmp_path, caplog):
    path = tmp_path / "derived-taps.json"
    for content, said in (('{"version": 1, "taps": {"4242": ', "is not valid JSON"),
                          ('{"version": 1, "taps": {"4242": {"parts": 7}}}', "makes no sense"),
                          ('[1, 2]', "makes no sense"),
                          ('{"version": 99}', "makes no sense")):
        path.write_text(content)
        path.chmod(0o600)
        caplog.clear()
        taps, asked = recording()
        with caplog.at_level(logging.INFO, "p4tap.md"):
            assert DerivedState(path).restore(taps, {4242: ALICE}) == []
        assert [r.getMessage() for r in caplog.records if said in r.getMessage()] and len(caplog.records) == 1, \
            caplog.text
        assert taps.taps == {} and asked == []
        assert json.loads(path.read_text()) == {"version": 1, "taps": {}, "memory": {}}, "replaced by a sound one"
    path.chmod(0o644)   # readable by others: refused (it names intercepts), not used
    caplog.clear()
    with caplog.at_level(logging.INFO, "p4tap.md"):
        assert DerivedState(path).restore(recording()[0], {4242: ALICE}) == []
    assert len(caplog.records) == 1 and "cannot be read" in caplog.text and "chmod 600" in caplog.text


def test_a_write_that_fails_is_said_once_and_the_taps_go_on(tmp_path, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("")
    state = DerivedState(blocked / "derived-taps.json")   # its directory is a file: every write fails
    taps, asked = recording()
    taps.on_change = state.write
    with caplog.at_level(logging.INFO, "p4tap.md"):
        taps.set(ALICE, "radius", prefix_filters(("192.0.2.10/32",)), "RADIUS session s1", 1.0)
        taps.clear(ALICE.cccid, "radius", 2.0)
    assert [a[0] for a in asked] == ["want", "unwant"]
    assert state.failed == 2 and len(caplog.records) == 1 and "cannot be written" in caplog.text


def sip_md(path, records: list | None = None):
    """A SIP handler whose derived taps are kept in `path`, restored from it as a new MD does."""
    from mediation.sip_handler import MEMORY, SipHandler

    bob = IdentityTarget(4243, sip_user="bob", lifetime=60)
    taps, asked = recording()
    state = DerivedState(path)
    state.restore(taps, {bob.cccid: bob})
    taps.on_change = state.write
    sip = SipHandler([bob], taps, (records if records is not None else []).append)
    sip.restore(taps.memory.get(MEMORY))
    return sip, asked


def test_a_call_restored_after_a_restart_ends_at_its_bye_or_by_its_timeout(tmp_path):
    """The call set up (INVITE, 180, 200, ACK of a real sipp call) before the restart; its BYE, or no BYE, after."""
    import pytest

    pytest.importorskip("sipmessage")
    from mediation.sip_calls import IDLE_TIMEOUT
    from tests.sip_support import sipp_call
    from tests.test_sip_handler import FORWARD, copied

    import time

    path = tmp_path / "derived-taps.json"
    base = time.time()   # the calls' times are wall-clock, as the IRI function's stamps: they outlive the process
    before, asked = sip_md(path)
    for n, raw in enumerate(sipp_call()[:4]):
        before.handle(base + n, copied(raw, n in FORWARD))
    wanted = asked[-1][1]
    assert asked[-1][0] == "want" and len(wanted.filters) == 4, "both endpoints, both ways"

    records: list = []
    after, asked = sip_md(path, records)
    assert asked == [] and records == [], "restored as it was: nothing to ask the keeper"
    assert after.taps.summary() == before.taps.summary()
    [target] = after.summary()["targets"]
    assert [c["answered"] for c in target["calls"]] == [True] and len(target["calls"][0]["media"]) == 2
    bye = sipp_call()[4]
    after.handle(base + 10, copied(bye, True))
    assert asked == [("unwant", 4243)], "the BYE after the restart removes the call's tap"
    assert [(r.kind, r.reason) for r in records] == [("call-end", "BYE")]
    assert json.loads(path.read_text())["taps"] == {}

    # no BYE: the restored call ends when its time is up, counted from the last message before the restart
    timed, asked = sip_md(tmp_path / "other.json")
    for n, raw in enumerate(sipp_call()[:4]):
        timed.handle(base + n, copied(raw, n in FORWARD))
    records = []
    after, asked = sip_md(tmp_path / "other.json", records)
    after.tick(base + 3 + IDLE_TIMEOUT - 1)
    assert asked == [], "not yet: the call was last heard of at base + 3"
    after.tick(base + 3 + IDLE_TIMEOUT + 1)
    assert asked == [("unwant", 4243)] and [(r.kind, r.reason) for r in records] == [("call-end", "timeout")]

    # a call whose time ran out while the MD was down ends as the new MD starts
    stale, asked = sip_md(tmp_path / "stale.json")
    for n, raw in enumerate(sipp_call()[:4]):
        stale.handle(base - IDLE_TIMEOUT - 10 + n, copied(raw, n in FORWARD))
    records = []
    after, asked = sip_md(tmp_path / "stale.json", records)
    assert asked == [("unwant", 4243)] and [(r.kind, r.reason) for r in records] == [("call-end", "timeout")]
    assert json.loads((tmp_path / "stale.json").read_text())["taps"] == {}
