"""The IRI function's RADIUS handler: a target's accounting (and
Access-Accept) becomes IRI records and a data tap on its address.

On Start (or Accept, or an Interim) with a Framed-IP-Address or
Framed-IPv6-Prefix the warrant's CCCID is tapped on it, both directions; a
new address moves the tap; Stop removes it (mediation/identity_taps.py
decides, mediation/derived_taps.py carries it to the keeper). Each of the
target's messages is one IRI record to the warrant's agencies. A message of
anyone else is decoded, found to be no target's and dropped: only counted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6

from mediation.derived_taps import DerivedTaps, prefix_filters
from mediation.identity_taps import IdentityTaps
from mediation.iri import IriRecord
from mediation.radius_iri import IdentityTarget, RadiusEvent, decode, targets_of

IRI_KIND = {"start": "session-start", "interim": "session-update", "stop": "session-stop", "accept": "access-accept"}
TAP_KEY = "radius"  # one session per warrant: its tap is the subscriber's current address


def udp_payload(packet: bytes) -> tuple[str, bytes] | None:
    """(source address, UDP payload) of an IP packet, or None."""
    if not packet or packet[0] >> 4 not in (4, 6):
        return None
    try:
        ip = IP(packet) if packet[0] >> 4 == 4 else IPv6(packet)
        if UDP not in ip:
            return None
        return ip.src, bytes(ip[UDP].payload)
    except Exception:  # scapy raises struct.error and others on a truncated packet: not RADIUS either
        return None


@dataclass
class TargetSession:
    """A target's session as the MD follows it (shown by `p4tap md status`)."""

    cccid: int
    identity: dict
    addresses: tuple[str, ...] = ()
    session: str | None = None
    nas: str | None = None
    since: float | None = None
    last: str = ""  # the last event: start, interim, stop, accept
    messages: int = 0


class RadiusHandler:
    protocol = "radius"

    def __init__(self, targets: Sequence[IdentityTarget], taps: DerivedTaps,
                 emit: Callable[[IriRecord], None]) -> None:
        self.targets = list(targets)
        self.taps = taps
        self.emit = emit
        self.state = IdentityTaps()
        self.sessions = {t.cccid: TargetSession(t.cccid, t.identity()) for t in self.targets}
        self.messages = 0
        self.not_radius = 0
        self.discarded = 0  # no target's: dropped, only counted
        self.past_warrant = 0
        self._lock = threading.Lock()

    def handle(self, stamp: float, packet: bytes) -> None:
        found = udp_payload(packet)
        event = decode(found[1]) if found else None
        if event is None:
            self.not_radius += 1
            return
        self.messages += 1
        targets = targets_of(event, self.targets)
        if not targets:
            self.discarded += 1
            return
        for target in targets:
            self._follow(target, event, found[0], stamp)

    def _follow(self, target: IdentityTarget, event: RadiusEvent, nas: str, stamp: float) -> None:
        """One warrant's view of a message that names its target: its tap, its session, its IRI."""
        if target.until is not None and target.until <= datetime.now(timezone.utc):
            self.past_warrant += 1
            if self.state.forget(target.cccid) is not None:
                self.taps.clear(target.cccid, TAP_KEY, stamp)
            return
        changes = self.state.apply(target, event)
        new = next((c for c in changes if c.op == "provision"), None)
        if new is not None:  # a start, or a move: one replacement, so the keeper moves it make-before-break
            self.taps.set(target, TAP_KEY, prefix_filters(new.addresses),
                          f"RADIUS session {event.session_id or '?'} at {', '.join(new.addresses)}", stamp)
        elif changes:  # a stop
            self.taps.clear(target.cccid, TAP_KEY, stamp)
        addresses = event.addresses() or self.state.current.get(target.cccid, ())
        with self._lock:
            session = self.sessions[target.cccid]
            if event.kind in ("start", "accept") or session.since is None:
                session.since = stamp
            session.addresses = self.state.current.get(target.cccid, ())
            session.session, session.nas, session.last = event.session_id, nas, event.kind
            session.messages += 1
        self.emit(IriRecord(target.cccid, stamp, self.protocol, IRI_KIND[event.kind], target.identity(), addresses,
                            event.session_id, peer=nas))

    def restore(self, parts: dict[int, dict[str, tuple]]) -> None:
        """After a restart of the MD: the sessions its derived taps (restored,
        mediation/derived_state.py) say are live, so that their Stop or a move
        finds them. Per warrant, the part `TAP_KEY` holds the session's
        prefixes, as the filters' sources."""
        for target in self.targets:
            filters = parts.get(target.cccid, {}).get(TAP_KEY)
            if filters:
                addresses = tuple(dict.fromkeys(f.src for f in filters if f.src))
                self.state.current[target.cccid] = addresses
                self.sessions[target.cccid].addresses, self.sessions[target.cccid].last = addresses, "restored"

    def summary(self) -> dict:
        with self._lock:
            sessions = [asdict(s) for s in self.sessions.values()]
        return {"targets": sessions, "messages": self.messages, "discarded_non_target": self.discarded,
                "not_radius": self.not_radius, "past_warrant": self.past_warrant}
