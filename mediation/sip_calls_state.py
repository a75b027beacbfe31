"""The SIP calls in progress (mediation/sip_calls.py), as JSON and back, so
that an MD restarted mid-call can end the call at its BYE or CANCEL, or by
its timeout when no BYE comes (mediation/derived_state.py keeps this beside
the derived taps).

Why the call machine's own state, and not a tap part keyed by Call-ID that
a BYE clears: the derived tap's parts are per media endpoint (two calls of
one target may share one; it goes with the last), a call's media can still
move (re-INVITE, UPDATE) and a forked call ends dialog by dialog; only the
call machine knows which message ends what. Restoring it whole (every
dialog, its media and pending offers, the open INVITE transactions, the
last time the call was heard of) lets every message after the restart be
read exactly as before it; the rest of SipCalls is derived from it (which
calls hold each endpoint) or short-lived and left out: the messages seen
(a retransmission after the restart gives one more IRI record), the ended
calls lingering for their late messages (LINGER, 32 s).

It builds sip_calls' own records (_Call, _Dialog): this is that module's
persistence, kept apart so that sip_calls.py stays the pure call machine.
"""

from __future__ import annotations

from typing import Any

from mediation.sip_calls import SipCalls, _Call, _Dialog
from mediation.sip_parse import MediaEndpoint


def _media(endpoints: Any) -> list[list]:
    return [[e.address, e.rtp_port, e.rtcp_port] for e in endpoints]


def _endpoints(raw: list) -> tuple[MediaEndpoint, ...]:
    return tuple(MediaEndpoint(str(a), int(rtp), int(rtcp)) for a, rtp, rtcp in raw)


def dump(calls: SipCalls) -> list[dict[str, Any]]:
    """Every call in progress, JSON-ready (keys that may be None are pairs in lists)."""
    return [{"cccid": c.cccid, "call_id": c.call_id, "caller_tag": c.caller_tag, "last_seen": c.last_seen,
             "caller_offer": _media(c.caller_offer), "cseq": c.cseq, "open_invites": sorted(c.open_invites, key=str),
             "challenged": c.challenged, "tapped": _media(sorted(c.tapped)),
             "dialogs": [[key, {"branch": d.branch, "confirmed": d.confirmed,
                                "endpoints": [[party, _media(e)] for party, e in d.endpoints.items()],
                                "pending": [[list(k), _media(e)] for k, e in d.pending.items()]}]
                         for key, d in c.dialogs.items()]}
            for by_warrant in calls.calls.values() for c in by_warrant.values()]


def load(calls: SipCalls, raw: list[dict[str, Any]], cccids: set[int]) -> None:
    """Put the calls of `raw` whose warrant is in `cccids` back into `calls`,
    with the endpoints they hold. Raises ValueError, KeyError or TypeError on
    nonsense (the caller starts without it)."""
    for r in raw:
        cccid = int(r["cccid"])
        if cccid not in cccids:
            continue
        call = _Call(cccid, str(r["call_id"]), r["caller_tag"], float(r["last_seen"]),
                     _endpoints(r["caller_offer"]), int(r["cseq"]), set(r["open_invites"]),
                     challenged=bool(r["challenged"]), tapped=set(_endpoints(r["tapped"])))
        for key, d in r["dialogs"]:
            call.dialogs[key] = _Dialog(d["branch"], bool(d["confirmed"]),
                                        {party: _endpoints(e) for party, e in d["endpoints"]},
                                        {(k[0], int(k[1]), k[2]): _endpoints(e) for k, e in d["pending"]})
        calls.calls.setdefault(call.call_id, {})[cccid] = call
        for endpoint in call.tapped:
            calls.installed.setdefault((cccid, endpoint), set()).add(call.call_id)
