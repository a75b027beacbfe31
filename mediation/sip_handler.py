"""The IRI function's SIP handler: a target's calls become IRI records and
media taps (issue 15).

The call logic is mediation/sip_iri.py's (transport, parse, call machine,
pure); this joins it to the MD: each copied packet of the SIP servers'
signalling is fed to it with the warrants' SIP identities; each media
endpoint it provisions or removes becomes one part of the warrant's derived
tap (mediation/derived_taps.py, keyed by endpoint, so the keeper's intercept
of a CCCID has the union of its live endpoints' filters, both directions,
and a tap shared by two calls goes with the last); each of the target's
messages is one IRI record (call-begin, call-answer, call-update, call-end,
with the parties, the media tapped now and the message itself) to the
warrant's agencies only. `tick()` (the MD's tick, about once a second) ends
calls whose BYE never came and the calls of warrants past their end.

A non-target's message is parsed and dropped: only counted. A warrant past
its end gets nothing more: no tap (DerivedTaps refuses it) and no IRI.

The calls in progress are kept with the derived taps (their `memory`, on
disk: mediation/derived_state.py) at each of a target's messages, and put
back by `restore` when the MD restarts, so that a BYE, a CANCEL or the
timeout after the restart ends them exactly (mediation/sip_calls_state.py
says why the whole call machine, not the taps' parts by Call-ID).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import sipmessage

from mediation.derived_taps import DerivedTaps
from mediation.iri import IriRecord
from mediation.radius_iri import IdentityTarget
from mediation.sip_calls import MediaChange, SipTarget, Update
from mediation.sip_calls_state import dump, load
from mediation.sip_iri import SipIriFunction
from mediation.sip_parse import MediaEndpoint


log = logging.getLogger("p4tap.md")
MEMORY = "sip"  # the name of its calls in the derived taps' memory


def tap_key(endpoint: MediaEndpoint) -> str:
    """The derived tap's part for one media endpoint (one per endpoint, whichever calls share it)."""
    return f"sip {endpoint.address} {endpoint.rtp_port}/{endpoint.rtcp_port}"


def media_of(endpoints: Sequence[MediaEndpoint]) -> tuple[dict, ...]:
    return tuple({"address": e.address, "port": e.rtp_port, "rtcp_port": e.rtcp_port, "protocol": "udp"}
                 for e in sorted(endpoints))


def parties_of(message: bytes | None) -> dict[str, str]:
    """From, To and the asserted identity of a SIP message, as URIs (the IRI's parties)."""
    if not message:
        return {}
    try:
        msg = sipmessage.Message.parse(message)
        out = {"from": str(msg.from_address.uri), "to": str(msg.to_address.uri)}
        asserted = msg.headers.getlist("P-Asserted-Identity")
        if asserted:
            out["asserted"] = str(sipmessage.Address.parse_many(asserted[0])[0].uri)
        return out
    except (ValueError, KeyError, IndexError, AttributeError, TypeError):  # sip_parse took it: rarely here
        return {}


def ends_of(packet: bytes) -> tuple[str | None, str | None]:
    """The IP source and destination of a copied packet: who sent the
    signalling (the UA or the proxy) and to whom (IPMMIRI names both)."""
    try:
        if packet[0] >> 4 == 4 and len(packet) >= 20:
            return str(ipaddress.IPv4Address(packet[12:16])), str(ipaddress.IPv4Address(packet[16:20]))
        if packet[0] >> 4 == 6 and len(packet) >= 40:
            return str(ipaddress.IPv6Address(packet[8:24])), str(ipaddress.IPv6Address(packet[24:40]))
    except (IndexError, ValueError):
        pass
    return None, None


@dataclass
class TargetCall:
    """One of a target's calls as `p4tap md status` shows it."""

    call_id: str
    since: float
    parties: dict[str, str]
    answered: bool = False
    last: str = ""   # the last message's reason: "INVITE", "200 INVITE", "BYE"...


@dataclass
class TargetCalls:
    cccid: int
    identity: dict
    calls: dict[str, TargetCall] = field(default_factory=dict)
    last: str = ""
    messages: int = 0


class SipHandler:
    protocol = "sip"

    def __init__(self, targets: Sequence[IdentityTarget], taps: DerivedTaps,
                 emit: Callable[[IriRecord], None], function: SipIriFunction | None = None) -> None:
        self.warrants = {t.cccid: t for t in targets if t.sip_user is not None}
        self.taps = taps
        self.emit = emit
        self.function = function or SipIriFunction()
        self.state = {c: TargetCalls(c, t.identity()) for c, t in self.warrants.items()}
        self.ended: set[int] = set()   # warrants past their end: their calls were dropped
        self.past_warrant = 0           # IRI not handed over: its warrant had ended
        self._lock = threading.Lock()   # handle() on the IRI thread, tick() and summary() on the MD's

    def _live(self) -> list[SipTarget]:
        now = datetime.now(timezone.utc)
        return [SipTarget(c, t.sip_user, t.sip_host) for c, t in self.warrants.items()
                if c not in self.ended and (t.until is None or t.until > now)]

    def handle(self, stamp: float, packet: bytes) -> None:
        with self._lock:
            update = self.function.feed(packet, self._live(), stamp)
            self._apply(update, stamp, *ends_of(packet))

    def tick(self, now: float | None = None) -> None:
        """Calls whose BYE never came end; a warrant past its end loses its calls and their taps."""
        now = time.time() if now is None else now
        with self._lock:
            wall = datetime.now(timezone.utc)
            for cccid, warrant in self.warrants.items():
                if cccid not in self.ended and warrant.until is not None and warrant.until <= wall:
                    self.ended.add(cccid)
                    self._apply(self.function.drop_target(cccid, now), now, None, None)
            self._apply(self.function.expire(now), now, None, None)

    def _apply(self, update: Update, stamp: float, peer: str | None, peer_to: str | None) -> None:
        """Taps first, one change per warrant (what a message adds and drops at once), then the IRI; the calls
        are kept with the taps (written with their change, and once more with the IRI's view of them)."""
        if not update.changes and not update.iri:
            return
        self.taps.remember(MEMORY, self._memory(), save=False)
        self._changes(update, stamp, peer, peer_to)
        self.taps.remember(MEMORY, self._memory())

    def _memory(self) -> dict:
        return {"calls": dump(self.function.calls),
                "status": [[t.cccid, [vars(c) for c in t.calls.values()]] for t in self.state.values() if t.calls]}

    def restore(self, memory: dict | None) -> None:
        """After a restart of the MD: its calls as they were (their derived taps are restored already), so that
        their BYE, CANCEL or timeout ends them. Taps of no restored call go; a restored call's missing ones come;
        a call past its timeout ends at once (its end is IRI too)."""
        if not memory:
            return
        try:
            load(self.function.calls, memory.get("calls", []), set(self.warrants))
            for cccid, calls in memory.get("status", []):
                if cccid in self.state:
                    self.state[cccid].calls.update((c["call_id"], TargetCall(**c)) for c in calls)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            log.error("derived taps state: its SIP calls make no sense (%r): their taps go", error)
            self.function.calls.calls.clear()
            self.function.calls.installed.clear()
            for target in self.state.values():
                target.calls.clear()
        installed = self.function.calls.installed
        for cccid, warrant in self.warrants.items():
            want = {tap_key(e): e for c, e in installed if c == cccid}
            tap = self.taps.taps.get(cccid)
            have = {k for k in (tap.parts if tap else ()) if k.startswith("sip ")}
            if set(want) != have:
                self.taps.change(cccid, {k: (e.filters(), f"SIP media {e.address}:{e.rtp_port} (restored)")
                                         for k, e in want.items() if k not in have},
                                 tuple(have - set(want)), None, warrant)
        log.info("derived taps state: %d SIP call(s) restored", len(self.function.calls.calls))
        self.tick()  # a call whose BYE never came and whose time is up (or whose warrant ended) ends now

    def _changes(self, update: Update, stamp: float, peer: str | None, peer_to: str | None) -> None:
        for cccid in dict.fromkeys(c.cccid for c in update.changes):
            self._taps(cccid, [c for c in update.changes if c.cccid == cccid], stamp)
        for iri in update.iri:
            warrant = self.warrants.get(iri.cccid)
            if warrant is None:
                continue
            if iri.cccid in self.ended or (warrant.until is not None and warrant.until <= datetime.now(timezone.utc)):
                self.past_warrant += 1
                continue
            kind = self._follow(iri.cccid, iri.call_id, iri.kind, iri.reason, iri.message, stamp)
            live = self.function.calls.call(iri.call_id, iri.cccid)
            call = self.state[iri.cccid].calls.get(iri.call_id)
            text = iri.message.decode("utf-8", "surrogateescape") if iri.message else None  # lossless: ETSI hands the bytes over
            self.emit(IriRecord(iri.cccid, stamp, self.protocol, kind, warrant.identity(), (), iri.call_id,
                                parties=call.parties if call else parties_of(iri.message),
                                media=media_of(tuple(live.tapped)) if live is not None else (),
                                peer=peer, peer_to=peer_to, reason=iri.reason, message=text))

    def _taps(self, cccid: int, changes: list[MediaChange], stamp: float) -> None:
        add = {tap_key(c.endpoint): (c.endpoint.filters(),
                                     f"SIP call {c.call_id} media {c.endpoint.address}:{c.endpoint.rtp_port}")
               for c in changes if c.op == "provision"}
        drop = tuple(tap_key(c.endpoint) for c in changes if c.op == "remove")
        self.taps.change(cccid, add, drop, stamp, self.warrants[cccid])

    def _follow(self, cccid: int, call_id: str, kind: str, reason: str, message: bytes | None,
                stamp: float) -> str:
        """The status's view of the call, and the IRI record's kind."""
        target = self.state[cccid]
        target.last, target.messages = reason, target.messages + 1
        if kind == "begin":
            target.calls[call_id] = TargetCall(call_id, stamp, parties_of(message), last=reason)
            return "call-begin"
        call = target.calls.get(call_id)
        if kind == "end":
            target.calls.pop(call_id, None)
            return "call-end"
        if kind == "report" or call is None:
            return "call-report"   # a late message of an ended call (a retransmitted 200 to its BYE)
        call.last = reason
        if reason.startswith("2") and reason.endswith(" INVITE") and not call.answered:
            call.answered = True
            return "call-answer"
        return "call-update"

    def summary(self) -> dict:
        with self._lock:
            targets = []
            for t in self.state.values():
                calls = []
                for c in t.calls.values():
                    live = self.function.calls.call(c.call_id, t.cccid)
                    calls.append({"call_id": c.call_id, "since": c.since, "answered": c.answered, "last": c.last,
                                  "parties": c.parties,
                                  "media": list(media_of(tuple(live.tapped))) if live is not None else []})
                targets.append({"cccid": t.cccid, "identity": t.identity, "calls": calls, "last": t.last,
                                "messages": t.messages})
            function = self.function
            return {"targets": targets, "messages": function.messages,
                    "discarded_non_target": function.discarded, "not_sip": function.not_sip,
                    "dropped_packets": function.streams.dropped, "calls": sum(map(len, function.calls.calls.values())),
                    "media_taps": len(function.calls.installed), "past_warrant": self.past_warrant}
