"""A RADIUS target's sessions -> the parts of her warrant's data tap (issue 15).

Why one part per session: a subscriber may hold several sessions at once
(a phone and a laptop, or an IPv4 session beside an IPv6 one), each with its
own Acct-Session-Id and its own address. Every one of them is the target's
traffic, so every one is tapped (completeness), each as its own part of the
warrant's derived tap (mediation/derived_taps.py keeps the union as one
intercept): a new address moves only its session's part, a Stop removes
only its session's part, and the intercept goes with the last session.

Why the part's key is "radius:<Acct-Session-Id>" and nothing else: a Stop
carries the session id, so it finds its part from that alone, even when
this process never saw the session's Start (an MD restarted with its derived
taps kept: the Stop still removes the right part). An Access-Accept has no
Acct-Session-Id yet (the NAS makes one up when accounting starts), so its
part is keyed by the NAS and the address it grants, the only things that
tell two of the target's logins apart then; the Start that follows on that
NAS and address takes the part over (one change: no gap, no leftover).

Why pure: it answers each decoded event with the change to make, so the
handler (mediation/radius_handler.py) hands it to DerivedTaps in one call
and the logic is tested without a switch. Non-targets never reach it.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass, field

from mediation.radius_iri import IdentityTarget, RadiusEvent

PREFIX = "radius:"


def session_key(session_id: str) -> str:
    """The derived-tap part of the session `session_id`: what a Stop clears, seen or not."""
    return PREFIX + session_id


def accept_key(nas: str, addresses: tuple[str, ...]) -> str:
    """The part an Access-Accept without a session id opens: by NAS and granted address."""
    return f"{PREFIX}accept from {nas} at {' '.join(addresses)}"


ACCEPT = re.compile(r"accept from (\S+) at ")  # an accept_key, past PREFIX


@dataclass
class Session:
    """One of a target's sessions as the MD follows it (shown by `p4tap md status`)."""

    session: str | None  # Acct-Session-Id; None for an Access-Accept's, until its Start
    nas: str
    addresses: tuple[str, ...]
    since: float
    last: str  # the last event: start, interim, accept
    messages: int = 1

    def why(self) -> str:
        """What asked for the tap part, for the keeper's status and the intercept's derived_from."""
        at = ", ".join(self.addresses)
        return f"RADIUS session {self.session} at {at}" if self.session else \
            f"RADIUS Access-Accept from {self.nas} at {at}"


@dataclass
class TapChange:
    """One message's change to a warrant's tap: parts to set (key -> session) and to drop, all at once."""

    set: dict[str, Session] = field(default_factory=dict)
    drop: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()  # the session's addresses (what an IRI record says when the event has none)

    def __bool__(self) -> bool:
        return bool(self.set or self.drop)


@dataclass
class TargetState:
    sessions: dict[str, Session] = field(default_factory=dict)  # part key -> the session
    last: str = ""  # the last event of any session
    messages: int = 0


@dataclass
class IdentityTaps:
    """Each target's current sessions, by the key of the tap part each one holds."""

    targets: dict[int, TargetState] = field(default_factory=dict)

    def apply(self, target: IdentityTarget, event: RadiusEvent, nas: str, stamp: float) -> TapChange:
        state = self.targets.setdefault(target.cccid, TargetState())
        state.last, state.messages = event.kind, state.messages + 1
        addresses = event.addresses()
        if event.session_id is not None:
            key = session_key(event.session_id)
        elif addresses:
            key = accept_key(nas, addresses)
        else:
            return TapChange()  # no session id, no address: nothing tells which session it is
        # an Access-Accept's part on this NAS and address is this session's now (or ends with it)
        adopted = tuple(k for k, s in state.sessions.items() if k != key and s.session is None
                        and s.nas == nas and set(s.addresses) & set(addresses))
        held = state.sessions.get(key)
        if event.kind == "stop":
            drops = adopted + (key,)  # the key even if unseen: a part kept across a restart goes too
            gone = [state.sessions.pop(k) for k in drops if k in state.sessions]
            return TapChange(drop=drops, addresses=addresses or next((s.addresses for s in gone), ()))
        for k in adopted:
            del state.sessions[k]
        if held is None:
            if not addresses:
                return TapChange(drop=adopted)
            held = state.sessions[key] = Session(event.session_id, nas, addresses, stamp, event.kind, 0)
            moved = True
        else:
            moved = bool(addresses) and addresses != held.addresses
            held.addresses = addresses or held.addresses
        held.nas, held.last, held.messages = nas, event.kind, held.messages + 1
        return TapChange({key: held} if moved or adopted else {}, adopted, held.addresses)

    def restore(self, cccid: int, key: str, addresses: tuple[str, ...], stamp: float) -> None:
        """A session known only from its tap part, kept across a restart of the
        MD (mediation/derived_state.py): its key says which session it is, so a
        later Stop, move or Start-after-Accept finds it as if never forgotten."""
        session_id, nas = key.removeprefix(PREFIX), "?"
        accept = ACCEPT.match(session_id)
        if accept is not None:
            session_id, nas = None, accept.group(1)
        state = self.targets.setdefault(cccid, TargetState())
        state.sessions[key] = Session(session_id, nas, addresses, stamp, "restored", 0)
        state.last = state.last or "restored"

    def reassigned(self, addresses: tuple[str, ...], nas: str) -> dict[int, tuple[str, ...]]:
        """Another subscriber's session on `nas` now holds `addresses`: the
        target sessions the same NAS gave any of them are over, their Stop lost
        (a NAS that restarted, a Stop dropped on the way, an MD that was down).
        Past this point their address carries someone who is under no warrant
        (minimality), so they are no longer followed; per warrant, the keys of
        the parts to drop. Only the same NAS's word counts: another NAS may
        hand out the same private address in a routing domain of its own, and
        ending the target's tap on its say would lose her traffic
        (completeness). A session restored after an MD restart, its NAS not
        known ("?"), is ended by any."""
        given = [ipaddress.ip_network(a, strict=False) for a in addresses]
        ended: dict[int, tuple[str, ...]] = {}
        for cccid, state in self.targets.items():
            keys = tuple(key for key, session in state.sessions.items() if session.nas in (nas, "?")
                         and any(held.version == new.version and held.overlaps(new)
                                for held in map(ipaddress.ip_network, session.addresses) for new in given))
            for key in keys:
                del state.sessions[key]
            if keys:
                ended[cccid] = keys
        return ended

    def forget(self, cccid: int) -> tuple[str, ...]:
        """The warrant ended: its sessions are no longer followed; the keys of their parts."""
        state = self.targets.get(cccid)
        if state is None:
            return ()
        keys, state.sessions = tuple(state.sessions), {}
        return keys

    def summary(self, cccid: int) -> dict:
        """A target's current sessions (oldest first), its last event and message count."""
        state = self.targets.get(cccid, TargetState())
        return {"sessions": [asdict(s) for s in sorted(state.sessions.values(), key=lambda s: s.since)],
                "last": state.last, "messages": state.messages}
