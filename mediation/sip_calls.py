"""Call -> media tap state machine for VoIP targets (issue 15).

Why pure: the IRI function feeds it parsed SIP messages (mediation/sip_parse,
out of mediation/sip_transport); it answers with the media taps to make and
remove and the IRI records to hand over, so the keeper that speaks SNMPv3
applies the taps and the logic is tested without a switch. Like
mediation/identity_taps.py, and like radius_iri's rule: a message of no
target's call is discarded here and nothing of it is kept.

The model, per Call-ID of a target's call:
- the caller's offer (the first INVITE's SDP) is tapped while the INVITE is
  open and no answer came; each dialog (one per To-tag: forking gives several early dialogs)
  holds the media each party's SDP last gave, committed by offers and
  answers in 18x, 2xx, ACK, PRACK, re-INVITE and UPDATE;
- a re-INVITE's or UPDATE's new offer is tapped at once (media can move
  before the answer) and dropped again if the request fails;
- a dialog ends on BYE, an early one on CANCEL or on a non-2xx final
  response of its INVITE transaction; the call ends when no dialog and no
  INVITE is left, or after `setup_timeout` (never answered) or
  `idle_timeout` (no signalling: the BYE was never seen);
- the taps wanted are the union of every live call's endpoints, per CCCID:
  a new endpoint is provisioned before an old one is removed, so a media
  move loses nothing; an endpoint two calls of one target share is removed
  only when both ended. Retransmissions change nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from mediation.sip_parse import Identity, MediaEndpoint, SipMessage

SETUP_TIMEOUT = 300.0    # s: a call never answered (RFC 3261 Timer C is 3 min)
IDLE_TIMEOUT = 7200.0    # s: an answered call with no signalling (the BYE was not seen)
LINGER = 32.0            # s: an ended call's late messages (64*T1) are still its IRI


@dataclass(frozen=True)
class SipTarget:
    """A warrant's SIP identity: user (or tel: number), host optional (any)."""

    cccid: int
    user: str
    host: str | None = None

    def matches(self, identities: tuple[Identity, ...]) -> bool:
        return any(i.user == self.user and (self.host is None or i.host == self.host.lower())
                   for i in identities)


@dataclass(frozen=True)
class MediaChange:
    """One change for the keeper: provision or remove CCCID's tap on one media endpoint."""

    op: str            # "provision" or "remove"
    cccid: int
    call_id: str       # the call that wanted it first (for the log and the IRI)
    endpoint: MediaEndpoint


@dataclass(frozen=True)
class SipIri:
    """One IRI record: the target's SIP message itself (ETSI TS 102 232-5)."""

    kind: str              # "begin", "continue", "end", or "report" (after the end)
    cccid: int
    call_id: str
    time: float
    message: bytes | None  # None: an end by timeout
    reason: str            # "INVITE", "200 INVITE", "BYE", "timeout", ...


@dataclass
class Update:
    changes: list[MediaChange] = field(default_factory=list)
    iri: list[SipIri] = field(default_factory=list)


@dataclass
class _Dialog:
    branch: str | None
    confirmed: bool = False
    endpoints: dict[str | None, tuple[MediaEndpoint, ...]] = field(default_factory=dict)   # party tag -> media
    pending: dict[tuple, tuple[MediaEndpoint, ...]] = field(default_factory=dict)         # (party, cseq, method)

    def media(self) -> set[MediaEndpoint]:
        return {e for group in (*self.endpoints.values(), *self.pending.values()) for e in group}


@dataclass
class _Call:
    cccid: int
    call_id: str
    caller_tag: str | None
    last_seen: float
    caller_offer: tuple[MediaEndpoint, ...] = ()
    cseq: int = 0              # the highest CSeq seen: an INVITE above it after the end is a new attempt
    open_invites: set[str | None] = field(default_factory=set)
    dialogs: dict[str | None, _Dialog] = field(default_factory=dict)
    seen: set[bytes] = field(default_factory=set)
    challenged: bool = False   # a 401/407 answered the INVITE: the caller sends it again, authenticated
    tapped: set[MediaEndpoint] = field(default_factory=set)   # what this call holds of SipCalls.installed

    def media(self) -> set[MediaEndpoint]:
        # before any dialog the open INVITE's offer stands alone; each dialog starts with its copy
        found = set(self.caller_offer) if (self.open_invites or self.challenged) and not self.dialogs else set()
        for d in self.dialogs.values():
            found |= d.media()
        return found

    def over(self) -> bool:
        return not self.open_invites and not self.dialogs and not self.challenged

    def dialog(self, key: str | None, branch: str | None) -> _Dialog:
        if key not in self.dialogs:
            self.dialogs[key] = _Dialog(branch, endpoints={self.caller_tag: self.caller_offer})
        return self.dialogs[key]


@dataclass
class SipCalls:
    """The target calls in progress and the media taps they hold. One call is
    followed once per warrant it concerns (the caller and the callee may both
    be targets, two agencies may hold warrants on one person): each warrant's
    view has its own state, taps and IRI, as RADIUS does."""

    setup_timeout: float = SETUP_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT
    calls: dict[str, dict[int, _Call]] = field(default_factory=dict)                # call id -> cccid -> call
    ended: dict[str, dict[int, tuple[float, int]]] = field(default_factory=dict)    # -> cccid -> (when, last CSeq)
    installed: dict[tuple[int, MediaEndpoint], set[str]] = field(default_factory=dict)   # -> calls using it

    def call(self, call_id: str, cccid: int) -> _Call | None:
        return self.calls.get(call_id, {}).get(cccid)

    def handle(self, msg: SipMessage, targets: list[SipTarget], now: float) -> Update:
        """The tap changes and IRI one signalling message makes, for every warrant it concerns."""
        live, ended = self.calls.get(msg.call_id, {}), self.ended.get(msg.call_id, {})
        named = {t.cccid for t in targets if t.matches(msg.identities)} if msg.method in ("INVITE", "UPDATE") \
            else set()
        update = Update()
        for cccid in dict.fromkeys([*live, *ended, *sorted(named)]):
            step = self._handle(msg, cccid, cccid in named, now)
            update.changes += step.changes
            update.iri += step.iri
        return update   # no warrant's: discarded, nothing kept

    def _handle(self, msg: SipMessage, cccid: int, named: bool, now: float) -> Update:
        call = self.call(msg.call_id, cccid)
        if call is None:
            ended = self.ended.get(msg.call_id, {}).get(cccid)
            if ended is not None and not (msg.method == "INVITE" and msg.to_tag is None and msg.cseq > ended[1]):
                return Update(iri=[SipIri("report", cccid, msg.call_id, now, msg.raw, _reason(msg))])
            if not named:
                return Update()
            call = self.calls.setdefault(msg.call_id, {})[cccid] = _Call(cccid, msg.call_id, msg.from_tag, now)
            kind = "begin"
        else:
            kind = "continue"
        call.last_seen, call.cseq = now, max(call.cseq, msg.cseq)
        retransmitted = msg.raw in call.seen
        call.seen.add(msg.raw)
        if msg.is_request:
            _request(call, msg)
        else:
            _response(call, msg)
        update = Update()
        if call.over():
            kind = "end"
            update.changes = self._end(call, now)
        else:
            update.changes = self._sync(call, call.media())
        if not retransmitted:
            update.iri.append(SipIri(kind, call.cccid, call.call_id, now, msg.raw, _reason(msg)))
        return update

    def _all(self) -> list[_Call]:
        return [c for by_warrant in self.calls.values() for c in by_warrant.values()]

    def expire(self, now: float) -> Update:
        """End calls whose signalling stopped (a BYE never seen) and forget old ones."""
        update = Update()
        for call in self._all():
            answered = any(d.confirmed for d in call.dialogs.values())
            if now - call.last_seen > (self.idle_timeout if answered else self.setup_timeout):
                update.changes += self._end(call, now)
                update.iri.append(SipIri("end", call.cccid, call.call_id, now, None, "timeout"))
        for call_id, by_warrant in list(self.ended.items()):
            for cccid in [c for c, (when, _) in by_warrant.items() if now - when > LINGER]:
                del by_warrant[cccid]
            if not by_warrant:
                del self.ended[call_id]
        return update

    def drop_target(self, cccid: int, now: float) -> Update:
        """A warrant ended: its calls end now and their taps go."""
        update = Update()
        for call in [c for c in self._all() if c.cccid == cccid]:
            update.changes += self._end(call, now)
            update.iri.append(SipIri("end", cccid, call.call_id, now, None, "warrant ended"))
        return update

    def _end(self, call: _Call, now: float) -> list[MediaChange]:
        by_warrant = self.calls[call.call_id]
        del by_warrant[call.cccid]
        if not by_warrant:
            del self.calls[call.call_id]
        self.ended.setdefault(call.call_id, {})[call.cccid] = (now, call.cseq)
        return self._sync(call, set())

    def _sync(self, call: _Call, want: set[MediaEndpoint]) -> list[MediaChange]:
        """One call now wants `want`: provision what no call held yet, then
        remove what no call holds any more (the cost is the call's, not the
        number of calls')."""
        provision, remove = [], []
        for endpoint in sorted(want - call.tapped):
            users = self.installed.setdefault((call.cccid, endpoint), set())
            if not users:
                provision.append(MediaChange("provision", call.cccid, call.call_id, endpoint))
            users.add(call.call_id)
        for endpoint in sorted(call.tapped - want):
            users = self.installed[(call.cccid, endpoint)]
            users.discard(call.call_id)
            if not users:
                del self.installed[(call.cccid, endpoint)]
                remove.append(MediaChange("remove", call.cccid, call.call_id, endpoint))
        call.tapped = set(want)
        return provision + remove


def _reason(msg: SipMessage) -> str:
    return msg.method if msg.is_request else f"{msg.status} {msg.cseq_method}"


def _dialog_key(call: _Call, msg: SipMessage) -> str | None:
    """A dialog is named by the tag that is not the caller's."""
    return msg.to_tag if msg.from_tag == call.caller_tag else msg.from_tag


def _request(call: _Call, msg: SipMessage) -> None:
    method, key = msg.method, _dialog_key(call, msg)
    if method == "INVITE" and msg.to_tag is None:
        call.open_invites.add(msg.branch)
        call.challenged = False
        if msg.media is not None:
            call.caller_offer = msg.media
        return
    if method == "CANCEL":
        call.open_invites.discard(msg.branch)
        for k in [k for k, d in call.dialogs.items() if not d.confirmed and d.branch == msg.branch]:
            del call.dialogs[k]
        return
    if method == "BYE":
        call.dialogs.pop(key, None)
        return
    if msg.media is None:
        return
    dialog = call.dialog(key, msg.branch)
    if method in ("ACK", "PRACK"):
        dialog.endpoints[msg.from_tag] = msg.media      # the answer to an offer made in a response
    elif method in ("INVITE", "UPDATE"):
        dialog.pending[(msg.from_tag, msg.cseq, method)] = msg.media


def _response(call: _Call, msg: SipMessage) -> None:
    status, method, key = msg.status, msg.cseq_method, _dialog_key(call, msg)
    if status < 101:
        return
    pending_key = (msg.from_tag, msg.cseq, method)
    if method == "INVITE" and status >= 300 and pending_key not in _pending_anywhere(call):
        call.open_invites.discard(msg.branch)        # the INVITE failed: its early dialogs end
        if status in (401, 407) and not call.dialogs:
            call.challenged = True                   # ... but the call goes on, authenticated
        for k in [k for k, d in call.dialogs.items()
                  if not d.confirmed and (d.branch == msg.branch or k == key)]:
            del call.dialogs[k]
        return
    if status >= 300:
        dialog = call.dialogs.get(key)
        if dialog is not None:
            dialog.pending.pop(pending_key, None)    # a failed re-INVITE or UPDATE keeps the old media
        return
    if method not in ("INVITE", "UPDATE", "PRACK") and msg.media is None:
        return
    if method != "INVITE" and key not in call.dialogs:
        return
    dialog = call.dialog(key, msg.branch)
    if method == "INVITE" and status >= 200:
        if pending_key not in dialog.pending:       # the first INVITE answered: other forks' early
            call.open_invites.discard(msg.branch)   # dialogs end (a later 2xx of theirs makes them anew)
            for k in [k for k, d in call.dialogs.items() if not d.confirmed and k != key]:
                del call.dialogs[k]
        dialog.confirmed = True
    if status >= 200 and pending_key in dialog.pending:
        dialog.endpoints[msg.from_tag] = dialog.pending.pop(pending_key)
    if msg.media is not None:
        dialog.endpoints[msg.to_tag] = msg.media     # a response's sender is always its To party


def _pending_anywhere(call: _Call) -> set[tuple]:
    return {k for d in call.dialogs.values() for k in d.pending}
