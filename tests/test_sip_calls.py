"""The call -> media tap machine on a real sipp call and the variants sipp does not play."""
import pytest

pytest.importorskip("sipmessage")
from mediation import sip_calls  # noqa: E402
from mediation.sip_calls import MediaChange, SipCalls, SipTarget  # noqa: E402
from mediation.sip_parse import MediaEndpoint, parse  # noqa: E402
from tests.sip_support import header, sdp, set_tag, sipp_call, variant  # noqa: E402

INVITE, RINGING, OK, ACK, BYE, BYE_OK = sipp_call()
CALL = "1-31322@127.0.0.1"
CALLER_EP, CALLEE_EP = MediaEndpoint("127.0.0.1", 6000, 6001), MediaEndpoint("127.0.0.2", 6000, 6001)
BOB, ALICE, ZED = SipTarget(7, "bob", "example.test"), SipTarget(8, "alice"), SipTarget(9, "zed")


def prov(ep, cccid=7):
    return MediaChange("provision", cccid, CALL, ep)


def rem(ep, cccid=7):
    return MediaChange("remove", cccid, CALL, ep)


class Run:
    def __init__(self, targets=(BOB,)):
        self.calls, self.targets, self.now = SipCalls(), list(targets), 100.0

    def __call__(self, raw):
        self.now += 0.01
        return self.calls.handle(parse(raw), self.targets, self.now)


def _response(status: str, to_tag: str, *, body=None, branch=None, cseq=None, of=INVITE):
    headers = {"To": set_tag(header(of, "To"), to_tag)}
    for name in ("Via", "From", "Call-ID", "CSeq"):
        headers[name] = header(of, name)
    if branch:
        headers["Via"] = headers["Via"].split(";branch=")[0] + f";branch={branch}"
    if cseq:
        headers["CSeq"] = cseq
    return variant(OK, first_line=f"SIP/2.0 {status}", headers=headers, body=body if body is not None else b"")


def test_sipp_call_of_target_callee():
    run = Run()
    u = run(INVITE)
    assert u.changes == [prov(CALLER_EP)] and [(i.kind, i.reason) for i in u.iri] == [("begin", "INVITE")]
    assert run(RINGING).changes == []
    u = run(OK)
    assert u.changes == [prov(CALLEE_EP)] and u.iri[0].kind == "continue" and u.iri[0].message == OK
    assert run(ACK).changes == []
    u = run(BYE)
    assert u.changes == [rem(CALLER_EP), rem(CALLEE_EP)] and [i.kind for i in u.iri] == ["end"]
    u = run(BYE_OK)
    assert u.changes == [] and [i.kind for i in u.iri] == ["report"]
    assert not run.calls.calls and not run.calls.installed


def test_target_caller_by_asserted_identity():
    run = Run([ALICE])
    assert run(INVITE).changes == [prov(CALLER_EP, 8)]
    assert run(OK).changes == [prov(CALLEE_EP, 8)]
    assert {c.op for c in run(BYE).changes} == {"remove"}
    bare = Run([ALICE])   # without P-Asserted-Identity only From names alice: not trusted
    assert bare(variant(INVITE, headers={"P-Asserted-Identity": None})).changes == []


def test_non_target_call_discarded_and_nothing_kept():
    run = Run([ZED])
    for raw in sipp_call():
        u = run(raw)
        assert u.changes == [] and u.iri == []
    assert not run.calls.calls and not run.calls.ended and not run.calls.installed


def test_retransmissions_change_nothing_and_give_no_second_iri():
    run = Run()
    run(INVITE)
    again = run(INVITE)
    assert again.changes == [] and again.iri == []
    run(OK)
    assert run(OK).changes == [] and run(OK).iri == []
    assert len(run(BYE).changes) == 2 and run(BYE).iri[0].kind == "report"


def test_forking_early_media_then_one_answer():
    run = Run()
    run(INVITE)
    ep_a, ep_b = MediaEndpoint("192.0.2.21", 4000, 4001), MediaEndpoint("192.0.2.22", 4002, 4003)
    assert run(_response("183 Session Progress", "a", body=sdp("192.0.2.21", 4000))).changes == [prov(ep_a)]
    assert run(_response("183 Session Progress", "b", body=sdp("192.0.2.22", 4002))).changes == [prov(ep_b)]
    u = run(_response("200 OK", "a", body=sdp("192.0.2.21", 4000)))
    assert u.changes == [rem(ep_b)]          # the other fork's early dialog ended with the answer
    bye = variant(BYE, headers={"To": set_tag(header(BYE, "To"), "a")})
    assert run(bye).changes == [rem(CALLER_EP), rem(ep_a)]


def test_forked_legs_to_two_devices_cancel_one():
    """The target's two registered devices each get the INVITE (one branch each)."""
    run = Run()
    leg_a = variant(INVITE, headers={"Via": "SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bK-leg-a"})
    leg_b = variant(INVITE, headers={"Via": "SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bK-leg-b"})
    ep_b = MediaEndpoint("192.0.2.22", 4002, 4003)
    run(leg_a), run(leg_b)
    assert run(_response("180 Ringing", "a", branch="z9hG4bK-leg-a", of=leg_a)).changes == []
    assert run(_response("183 Session Progress", "b", branch="z9hG4bK-leg-b", of=leg_b,
                         body=sdp("192.0.2.22", 4002))).changes == [prov(ep_b)]
    cancel_b = variant(leg_b, first_line="CANCEL sip:bob@127.0.0.2:5060 SIP/2.0",
                       headers={"CSeq": "1 CANCEL"}, body=b"")
    u = run(cancel_b)
    assert u.changes == [rem(ep_b)] and u.iri[0].kind == "continue"   # leg a still rings
    ep_a = MediaEndpoint("192.0.2.21", 4000, 4001)
    assert run(_response("200 OK", "a", branch="z9hG4bK-leg-a", of=leg_a,
                         body=sdp("192.0.2.21", 4000))).changes == [prov(ep_a)]


def _reinvite(sdp_body: bytes, cseq: int = 10) -> bytes:
    """The callee re-INVITEs: From and To swap (and their tags)."""
    callee_tag = "30953SIPpTag011"
    return variant(INVITE, first_line="INVITE sip:alice@127.0.0.1:5060 SIP/2.0", headers={
        "Via": "SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-re", "From": f"bob <sip:bob@example.test>;tag={callee_tag}",
        "To": header(INVITE, "From"), "CSeq": f"{cseq} INVITE", "P-Asserted-Identity": None}, body=sdp_body)


def test_reinvite_moves_media_and_a_failed_one_keeps_it():
    run = Run()
    for raw in (INVITE, OK, ACK):
        run(raw)
    moved = MediaEndpoint("127.0.0.2", 6100, 6101)
    reinvite = _reinvite(sdp("127.0.0.2", 6100))
    assert run(reinvite).changes == [prov(moved)]                     # tapped before the answer
    answer = _response("200 OK", "31322SIPpTag091", of=reinvite, body=sdp("127.0.0.1", 6000))
    assert run(answer).changes == [rem(CALLEE_EP)]
    failed = _reinvite(sdp("127.0.0.2", 6200), cseq=11)
    assert run(failed).changes == [prov(MediaEndpoint("127.0.0.2", 6200, 6201))]
    refused = _response("488 Not Acceptable Here", "31322SIPpTag091", of=failed)
    assert run(refused).changes == [rem(MediaEndpoint("127.0.0.2", 6200, 6201))]
    assert set(run.calls.installed) == {(7, CALLER_EP), (7, moved)}  # the call goes on with its media


def test_update_in_early_dialog():
    run = Run()
    run(INVITE)
    run(_response("183 Session Progress", "t", body=sdp("127.0.0.2", 6000)))
    update = variant(INVITE, first_line="UPDATE sip:bob@127.0.0.2:5060 SIP/2.0", headers={
        "To": set_tag(header(INVITE, "To"), "t"), "CSeq": "2 UPDATE",
        "Via": "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-up"}, body=sdp("127.0.0.1", 6002))
    new = MediaEndpoint("127.0.0.1", 6002, 6003)
    assert run(update).changes == [prov(new)]
    assert run(_response("200 OK", "t", of=update, body=sdp("127.0.0.2", 6000))).changes == [rem(CALLER_EP)]


def test_cancel_before_answer_ends_the_call():
    run = Run()
    run(INVITE), run(RINGING)
    cancel = variant(INVITE, first_line="CANCEL sip:bob@127.0.0.2:5060 SIP/2.0", headers={"CSeq": "1 CANCEL"}, body=b"")
    u = run(cancel)
    assert u.changes == [rem(CALLER_EP)] and u.iri[0].kind == "end"
    assert run(_response("487 Request Terminated", "30953SIPpTag011")).iri[0].kind == "report"
    assert run(INVITE).iri[0].kind == "report" and not run.calls.installed   # a late retransmission


@pytest.mark.parametrize("status", ["486 Busy Here", "404 Not Found", "603 Decline"])
def test_failure_ends_the_call(status):
    run = Run()
    run(INVITE)
    u = run(_response(status, "x"))
    assert u.changes == [rem(CALLER_EP)] and u.iri[0].kind == "end"


def test_late_offer_answered_in_ack():
    run = Run()
    assert run(variant(INVITE, body=b"")).changes == []
    assert run(OK).changes == [prov(CALLEE_EP)]
    assert run(variant(ACK, body=sdp("127.0.0.1", 6000))).changes == [prov(CALLER_EP)]


def test_bye_never_seen_times_out():
    run = Run()
    for raw in (INVITE, OK, ACK):
        run(raw)
    assert run.calls.expire(run.now + sip_calls.IDLE_TIMEOUT - 1).changes == []
    u = run.calls.expire(run.now + sip_calls.IDLE_TIMEOUT + 1)
    assert u.changes == [rem(CALLER_EP), rem(CALLEE_EP)] and [(i.kind, i.reason) for i in u.iri] == [("end", "timeout")]
    unanswered = Run()
    unanswered(INVITE)
    assert unanswered.calls.expire(unanswered.now + sip_calls.SETUP_TIMEOUT + 1).changes == [rem(CALLER_EP)]


def test_endpoint_shared_by_two_calls_removed_with_the_last():
    run = Run()
    second = [variant(m, headers={"Call-ID": "2-other"}) for m in (INVITE, OK, BYE)]
    assert run(INVITE).changes == [prov(CALLER_EP)] and run(OK).changes == [prov(CALLEE_EP)]
    assert run(second[0]).changes == [] and run(second[1]).changes == []
    assert run(BYE).changes == []             # the second call still uses both
    assert [c.op for c in run(second[2]).changes] == ["remove", "remove"]


def test_warrant_end_removes_its_calls():
    run = Run()
    run(INVITE), run(OK)
    u = run.calls.drop_target(7, run.now)
    assert sorted(c.endpoint for c in u.changes) == [CALLER_EP, CALLEE_EP] and u.iri[0].kind == "end"


def test_sipp_tcp_call_through_stream_reassembly():
    """The real sipp call over TCP, cut into 61-byte segments each way, through
    sip_transport, sip_parse and the call machine."""
    from scapy.layers.inet import IP, TCP

    from mediation.sip_transport import SignallingStreams
    caller, callee = ("192.0.2.10", 41323), ("198.51.100.20", 5060)
    seqs = {caller: 5000, callee: 9000}
    packets = []
    for i, raw in enumerate(sipp_call("tcp")):
        src, dst = (caller, callee) if i in (0, 3, 4) else (callee, caller)
        for at in range(0, len(raw), 61):
            packets.append(bytes(IP(src=src[0], dst=dst[0]) / TCP(sport=src[1], dport=dst[1], flags="PA",
                                                                  seq=seqs[src]) / raw[at:at + 61]))
            seqs[src] += len(raw[at:at + 61])
    streams, calls, changes = SignallingStreams(), SipCalls(), []
    for n, pkt in enumerate(packets):
        for payload in streams.feed(pkt, float(n)):
            changes += calls.handle(parse(payload.data), [BOB], float(n)).changes
    assert [(c.op, c.endpoint) for c in changes] == [
        ("provision", CALLER_EP), ("provision", CALLEE_EP), ("remove", CALLER_EP), ("remove", CALLEE_EP)]


def test_any_order_of_messages_leaves_nothing_tapped_after_the_timeouts():
    """Messages lost, repeated or reordered (a tap joined late, UDP): the machine
    never raises, and once signalling stops every tap goes (lifetime)."""
    import random
    ep_a = sdp("192.0.2.21", 4000)
    pool = [INVITE, RINGING, OK, ACK, BYE, BYE_OK, _reinvite(sdp("127.0.0.2", 6100)),
            _response("183 Session Progress", "a", body=ep_a), _response("486 Busy Here", "a"),
            _response("200 OK", "a", body=ep_a),
            variant(INVITE, first_line="CANCEL sip:bob@127.0.0.2:5060 SIP/2.0", headers={"CSeq": "1 CANCEL"}, body=b"")]
    rng = random.Random(15)
    for _ in range(300):
        run = Run()
        for raw in rng.choices(pool, k=rng.randrange(1, 12)):
            run(raw)
        held = {k for k, users in run.calls.installed.items() if users}
        assert held == set(run.calls.installed)
        u = run.calls.expire(run.now + sip_calls.IDLE_TIMEOUT + 1)
        assert {(c.cccid, c.endpoint) for c in u.changes if c.op == "remove"} == held
        assert not run.calls.calls and not run.calls.installed


def _authenticated(invite: bytes, user: str) -> bytes:
    """The INVITE again after a 407: CSeq up, new branch, credentials."""
    return variant(invite, headers={
        "CSeq": "2 INVITE", "Via": "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-auth",
        "Proxy-Authorization": f'Digest username="{user}", realm="example.test", nonce="n", uri="sip:bob@example.test", '
                               'response="0123456789abcdef0123456789abcdef"'})


def test_proxy_challenge_keeps_the_call_and_its_taps():
    run = Run()
    assert run(INVITE).changes == [prov(CALLER_EP)]
    challenge = run(_response("407 Proxy Authentication Required", "proxy"))
    assert challenge.changes == [] and challenge.iri[0].kind == "continue"
    assert run(variant(ACK, headers={"To": set_tag(header(ACK, "To"), "proxy")})).changes == []
    assert run(_authenticated(INVITE, "alice")).iri[0].kind == "continue"
    ok = variant(OK, headers={"CSeq": "2 INVITE", "Via": "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-auth"})
    assert run(ok).changes == [prov(CALLEE_EP)]


def test_caller_named_only_by_its_credentials():
    """The first INVITE names carol nowhere but From; the one after the
    challenge carries her Proxy-Authorization: the call is hers from there."""
    carol = SipTarget(11, "carol", "example.test")
    run = Run([carol])
    plain = variant(INVITE, headers={"P-Asserted-Identity": None})
    assert run(plain).iri == [] and run(_response("407 Proxy Authentication Required", "proxy", of=plain)).iri == []
    u = run(_authenticated(plain, "carol"))
    assert u.changes == [prov(CALLER_EP, 11)] and u.iri[0].kind == "begin"


def test_new_invite_after_a_failure_is_a_new_attempt_a_retransmission_is_not():
    run = Run()
    run(INVITE), run(_response("486 Busy Here", "x"))
    assert run(INVITE).iri[0].kind == "report"                      # the old INVITE again
    again = variant(INVITE, headers={"CSeq": "2 INVITE", "Via": "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-2"})
    u = run(again)
    assert u.iri[0].kind == "begin" and u.changes == [prov(CALLER_EP)]
