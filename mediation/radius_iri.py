"""RADIUS decoding and identity matching for the MD's IRI function (issue 15).

Why its own module: the signalling tap hands us raw RADIUS payloads of every
subscriber; this module turns one into a small `RadiusEvent` and says whether
it names a target, so non-targets' data is dropped here and never stored.
"""
from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pyrad.dictionary import Dictionary
from pyrad.packet import AccessAccept, AccountingRequest, Packet

DICTIONARY = Path(__file__).with_name("radius.dictionary")


@dataclass(frozen=True)
class RadiusEvent:
    """What one RADIUS message says about a subscriber's session."""

    kind: str                      # "start", "interim", "stop", "accept"
    username: str | None
    calling_station_id: str | None
    framed_ip: str | None
    session_id: str | None
    framed_ipv6_prefix: str | None = None  # Framed-IPv6-Prefix, or a Framed-IPv6-Address as a /128

    def addresses(self) -> tuple[str, ...]:
        """The subscriber's addresses as prefixes to tap: its IPv4 /32 and its IPv6 prefix."""
        out = []
        if self.framed_ip:
            out.append(f"{self.framed_ip}/32")
        if self.framed_ipv6_prefix:
            out.append(str(ipaddress.ip_network(self.framed_ipv6_prefix, strict=False)))
        return tuple(out)


@dataclass(frozen=True)
class IdentityTarget:
    """A warrant's identity: either RADIUS key, or both, must match; a SIP
    identity (sip_user, at sip_host or any host) is followed in the calls
    (mediation/sip_handler.py). Why one type: one warrant on one person may
    name her RADIUS login and her SIP URI, and its taps are one intercept."""

    cccid: int
    radius_username: str | None = None
    calling_station_id: str | None = None
    lifetime: float | None = None  # seconds; each derived tap's Timeout window, refreshed while it lasts
    until: datetime | None = None  # the warrant's end: no derived tap outlives it (aware, UTC)
    sip_user: str | None = None    # the user part of a SIP URI, or a tel: number
    sip_host: str | None = None    # None: any host (and a tel: URI)

    @property
    def by_radius(self) -> bool:
        return self.radius_username is not None or self.calling_station_id is not None

    def identity(self) -> dict[str, str]:
        """The warrant's identity keys, for the IRI records."""
        out = {}
        if self.radius_username is not None:
            out["radius_username"] = self.radius_username
        if self.calling_station_id is not None:
            out["calling_station_id"] = self.calling_station_id
        if self.sip_user is not None:
            out["sip_uri"] = f"sip:{self.sip_user}@{self.sip_host}" if self.sip_host else f"sip:{self.sip_user}@*"
        return out

    def matches(self, event: RadiusEvent) -> bool:
        if self.radius_username is not None and event.username != self.radius_username:
            return False
        if self.calling_station_id is not None and event.calling_station_id != self.calling_station_id:
            return False
        return self.radius_username is not None or self.calling_station_id is not None


# Acct-Status-Type, as pyrad gives it: the dictionary's value name, or the number it does not name
_KIND = {1: "start", 2: "stop", 3: "interim", "Start": "start", "Stop": "stop", "Interim-Update": "interim"}


@functools.cache
def _dict() -> Dictionary:
    return Dictionary(str(DICTIONARY))


def _first(pkt: Packet, name: str) -> str | None:
    values = pkt.get(name) if name in pkt else None
    return str(values[0]) if values else None


def decode(payload: bytes) -> RadiusEvent | None:
    """The event in one RADIUS payload, or None for what carries no session."""
    try:
        pkt = Packet(packet=payload, dict=_dict())
    except Exception:  # pyrad raises PacketError, KeyError, struct.error...: junk is no event
        return None
    if pkt.code == AccountingRequest:
        status = pkt.get("Acct-Status-Type", [None])[0] if "Acct-Status-Type" in pkt else None
        kind = _KIND.get(status)
    elif pkt.code == AccessAccept:
        kind = "accept"
    else:
        kind = None
    if kind is None:
        return None
    v6 = _first(pkt, "Framed-IPv6-Prefix")
    if v6 is None and (v6_address := _first(pkt, "Framed-IPv6-Address")) is not None:
        v6 = f"{v6_address}/128"
    return RadiusEvent(kind, _first(pkt, "User-Name"), _first(pkt, "Calling-Station-Id"),
                       _first(pkt, "Framed-IP-Address"), _first(pkt, "Acct-Session-Id"), v6)


def target_of(event: RadiusEvent, targets: list[IdentityTarget]) -> IdentityTarget | None:
    """The first warrant the event names, or None: a non-target's event is discarded."""
    return next((t for t in targets if t.matches(event)), None)


def targets_of(event: RadiusEvent, targets: list[IdentityTarget]) -> list[IdentityTarget]:
    """Every warrant the event names: two agencies may each hold a warrant on one person."""
    return [t for t in targets if t.matches(event)]
