"""The SIP handler on the messages of a real sipp call, wrapped as the IAP
copies them: the derived tap it asks the keeper for (one intercept per
CCCID, the union of its media endpoints' filters, both ways), the IRI it
emits to the warrant, and what ends a call's taps (BYE, a BYE never seen,
the warrant's end). No switch here: tests/test_md_sip.py has the keeper and
the real SNMPv3 agent."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

pytest.importorskip("sipmessage")
from scapy.layers.inet import IP, UDP  # noqa: E402

from controller.toml_fields import Endpoint  # noqa: E402
from mediation.derived_taps import DerivedTaps  # noqa: E402
from mediation.radius_iri import IdentityTarget  # noqa: E402
from mediation.sip_handler import SipHandler  # noqa: E402
from mediation.sip_parse import MediaEndpoint  # noqa: E402
from tests.sip_support import sipp_call, variant  # noqa: E402

CALLER, CALLEE = "127.0.0.1", "127.0.0.2"   # where the captured sipp call's parties were
OFFER, ANSWER = MediaEndpoint(CALLER, 6000, 6001), MediaEndpoint(CALLEE, 6000, 6001)
FORWARD = (0, 3, 4)   # INVITE, ACK, BYE: caller -> callee; 180, 200, 200 back


def copied(raw: bytes, forward: bool) -> bytes:
    src, dst = (CALLER, CALLEE) if forward else (CALLEE, CALLER)
    return bytes(IP(src=src, dst=dst) / UDP(sport=5060, dport=5060) / raw)


def handler(targets):
    asked, records = [], []
    taps = DerivedTaps(lambda spec: asked.append(("want", spec)), lambda cccid: asked.append(("unwant", cccid)),
                       Endpoint("203.0.113.10", 7000))
    return SipHandler(targets, taps, records.append), asked, records


def filters_of(*endpoints: MediaEndpoint) -> tuple:
    return tuple(f for e in endpoints for f in e.filters())


def test_target_call_is_one_intercept_of_its_media_union_and_its_iri_goes_to_its_warrant():
    bob, carol = IdentityTarget(4243, sip_user="bob", lifetime=60), IdentityTarget(4244, sip_user="carol")
    sip, asked, records = handler([bob, carol, IdentityTarget(4245, radius_username="bob")])
    other = [variant(m, headers={"Call-ID": "other", "To": "dave <sip:dave@example.test>",
                                 "P-Asserted-Identity": None}) for m in sipp_call()]
    for n, (raw, noise) in enumerate(zip(sipp_call(), other)):
        sip.handle(float(n), copied(noise, n in FORWARD))
        sip.handle(float(n), copied(raw, n in FORWARD))
        if n == 0:   # the INVITE: the caller's offer, tapped while the phone rings
            assert [(op, s.content_id, s.filters, s.lifetime) for op, s in asked] == [
                ("want", 4243, filters_of(OFFER), 60.0)]
        if n == 2:   # the 200 OK: the answer's endpoint added to the same intercept
            assert [(op, s.content_id, s.filters) for op, s in asked[1:]] == [("want", 4243, filters_of(OFFER, ANSWER))]
            assert "SIP call" in asked[-1][1].derived_from
    assert asked[-1] == ("unwant", 4243) and len(asked) == 3, "the BYE: the intercept goes, once"
    assert [(r.cccid, r.kind, r.reason) for r in records] == [
        (4243, "call-begin", "INVITE"), (4243, "call-update", "180 INVITE"), (4243, "call-answer", "200 INVITE"),
        (4243, "call-update", "ACK"), (4243, "call-end", "BYE"), (4243, "call-report", "200 BYE")]
    begin, answer = records[0], records[2]
    assert begin.parties == {"from": "sip:alice@example.test", "to": "sip:bob@example.test",
                             "asserted": "sip:alice@example.test"}
    assert begin.identity == {"sip_uri": "sip:bob@*"} and begin.source == "sip" and begin.peer == CALLER
    assert [m["address"] for m in begin.media] == [CALLER] and answer.peer == CALLEE
    assert [(m["address"], m["port"], m["rtcp_port"]) for m in answer.media] == [(CALLER, 6000, 6001),
                                                                                 (CALLEE, 6000, 6001)]
    assert begin.message.startswith("INVITE sip:bob@") and records[-2].media == ()
    assert all(r.session == begin.session and b"dave" not in r.to_json() for r in records)
    summary = sip.summary()
    assert (summary["messages"], summary["discarded_non_target"]) == (12, 6)
    assert [t["cccid"] for t in summary["targets"]] == [4243, 4244], "the RADIUS-only warrant is not SIP's"
    assert summary["targets"][0]["calls"] == [] and summary["targets"][0]["last"] == "200 BYE"


def test_a_call_whose_bye_never_comes_ends_on_the_tick():
    sip, asked, records = handler([IdentityTarget(4243, sip_user="bob")])
    for n, raw in enumerate(sipp_call()[:4]):
        sip.handle(100.0 + n, copied(raw, n in FORWARD))
    assert asked[-1][0] == "want"
    sip.tick(200.0)
    assert asked[-1][0] == "want", "an answered call lives on while its idle time has not run out"
    (call,) = sip.summary()["targets"][0]["calls"]
    assert call["answered"] and [m["address"] for m in call["media"]] == [CALLER, CALLEE]
    sip.tick(100.0 + 3 + sip.function.calls.idle_timeout + 1)
    assert asked[-1] == ("unwant", 4243)
    assert (records[-1].kind, records[-1].reason, records[-1].message) == ("call-end", "timeout", None)


def test_the_warrant_end_bounds_the_call_taps_and_iri():
    soon = datetime.now(timezone.utc) + timedelta(hours=1)
    bob = IdentityTarget(4243, sip_user="bob", until=soon)
    sip, asked, records = handler([bob])
    call = sipp_call()
    for n in range(3):
        sip.handle(float(n), copied(call[n], n in FORWARD))
    assert asked[-1][0] == "want" and asked[-1][1].until == soon, "the keeper bounds the Timeout by it"
    sip.warrants[4243] = IdentityTarget(4243, sip_user="bob", until=datetime.now(timezone.utc) - timedelta(seconds=1))
    sip.tick(3.0)
    assert asked[-1] == ("unwant", 4243), "the warrant's end ends its calls' taps"
    del records[:]
    for n in range(3, 6):
        sip.handle(float(n), copied(call[n], n in FORWARD))
    sip.handle(7.0, copied(variant(call[0], headers={"Call-ID": "new"}), True))
    assert records == [] and asked[-1] == ("unwant", 4243), "past its end: no IRI, no new tap"
    assert sip.summary()["past_warrant"] >= 1


def test_every_warrant_a_call_concerns_gets_its_own_tap_and_iri():
    """The caller and the callee both targets, and two agencies' warrants on the callee: each warrant
    follows the call on its own (completeness), with its own intercept, IRI and end."""
    alice, bob, bob_too = (IdentityTarget(4242, sip_user="alice"), IdentityTarget(4243, sip_user="bob"),
                           IdentityTarget(4246, sip_user="bob", sip_host="example.test"))
    sip, asked, records = handler([alice, bob, bob_too])
    for n, raw in enumerate(sipp_call()):
        sip.handle(float(n), copied(raw, n in FORWARD))
    wants = {spec.content_id: spec.filters for op, spec in asked if op == "want"}   # each one's last
    assert wants == {c: filters_of(OFFER, ANSWER) for c in (4242, 4243, 4246)}
    assert sorted(op_c for op_c in asked if op_c[0] == "unwant") == [("unwant", 4242), ("unwant", 4243),
                                                                    ("unwant", 4246)]
    for cccid, identity in ((4242, {"sip_uri": "sip:alice@*"}), (4243, {"sip_uri": "sip:bob@*"}),
                            (4246, {"sip_uri": "sip:bob@example.test"})):
        mine = [r for r in records if r.cccid == cccid]
        assert [r.kind for r in mine] == ["call-begin", "call-update", "call-answer", "call-update", "call-end",
                                          "call-report"]
        assert all(r.identity == identity for r in mine)
