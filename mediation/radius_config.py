"""md.toml's signalling section, RADIUS servers and identity targets (issue 15), validated.
([[sip_server]] and an identity target's SIP keys: mediation/sip_config.py.)

    [signalling]                         # the standing signalling taps' copies arrive here, not with the content
    listen = "203.0.113.10:7001"         # the MD port of the IRI function
    # deliver_to = "203.0.113.10:7001"   # where the IAP sends signalling copies (default: listen; differs behind NAT)
    # content_to = "203.0.113.10:7000"   # where derived taps send content (default: the first [content] listen)
    lifetime = 600                       # the standing taps' Timeout window (refreshed by the keeper)

    [[radius_server]]                    # the operator's RADIUS server: a standing tap of its own CCCID
    address = "198.51.100.50"
    content_id = 90001                   # the signalling tap's CCCID (no agency is given it)
    # auth_port = 1812, acct_port = 1813 # accepted; the tap takes the server's UDP on any port (fragments)

    [[identity_target]]                  # a warrant on a person, not an address
    content_id = 4242                    # the warrant's CCCID: its derived taps and IRI carry it
    radius_username = "alice"            # and/or calling_station_id = "02-00-00-00-0d-01"
    # sip_uri = "sip:alice@example.test" # and/or a SIP identity (mediation/sip_config.py)
    lifetime = 600                       # each derived tap's Timeout window, refreshed while the session lasts
    until = 2026-12-31T00:00:00Z         # the warrant's end: no derived tap outlives it

Why apart from config.py: the IRI function's settings are a concern of their
own; each bad key gets a one-line ConfigError naming it, as config.py does.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from controller.toml_fields import ConfigError, Endpoint
from controller.toml_fields import endpoint as parse_endpoint
from controller.toml_fields import ip_address, only
from mediation.radius_iri import IdentityTarget
from mediation.sip_config import sip_identity
from mediation.snmp_client import Filter

MAX_CONTENT_ID = 2**31 - 1


@dataclass(frozen=True)
class RadiusServer:
    address: str
    auth_port: int = 1812
    acct_port: int = 1813
    content_id: int | None = None  # the standing signalling tap's CCCID

    def filters(self) -> tuple[Filter, ...]:
        """The server's UDP, to it and from it, any port.

        Why no port: a RADIUS message larger than the path MTU (an EAP
        Access-Accept, many Class or vendor attributes, an IPv6 link of 1280)
        travels as IP fragments, and a fragment after the first carries no
        UDP header, so a filter on 1812/1813 would copy the first alone and
        the message could never be decoded (as mediation/sip_config.py's SIP
        taps, for the same reason). The answers come from the server's ports
        to the NAS's, any port. What else the server sends or receives over
        UDP the IRI function makes whole, finds not RADIUS, counts and drops
        (mediation/radius_handler.py): never stored, never handed over.
        auth_port and acct_port are still read (md.toml files name them) but
        no longer narrow the tap."""
        host = f"{self.address}/{ipaddress.ip_address(self.address).max_prefixlen}"
        return (Filter(dst=host, protocol=17), Filter(src=host, protocol=17))


@dataclass(frozen=True)
class SignallingSettings:
    listen: Endpoint
    lifetime: float = 600.0
    deliver_to: Endpoint | None = None  # None: listen
    content_to: Endpoint | None = None  # None: the first [content] listen


def _content_id(raw: dict[str, Any], where: str, required: bool = True) -> int | None:
    cccid = raw.get("content_id")
    if cccid is None and not required:
        return None
    if not isinstance(cccid, int) or isinstance(cccid, bool) or not 1 <= cccid <= MAX_CONTENT_ID:
        raise ConfigError(f"{where}: content_id must be 1..{MAX_CONTENT_ID}")
    return cccid


def signalling(raw: Any) -> SignallingSettings:
    where = "[signalling]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(raw) - {"listen", "lifetime", "deliver_to", "content_to"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    if not isinstance(raw.get("listen"), str):
        raise ConfigError(f"{where}: listen must be \"ADDRESS:PORT\" (the MD port the signalling copies go to)")
    lifetime = raw.get("lifetime", 600)
    if not isinstance(lifetime, (int, float)) or isinstance(lifetime, bool) or lifetime < 10:
        raise ConfigError(f"{where}: lifetime must be at least 10 seconds")
    ends = {}
    for key in ("deliver_to", "content_to"):
        if key in raw:
            if not isinstance(raw[key], str):
                raise ConfigError(f"{where}: {key} must be \"ADDRESS:PORT\"")
            ends[key] = parse_endpoint(raw[key], f"{where} {key}")
    return SignallingSettings(parse_endpoint(raw["listen"], f"{where} listen"), float(lifetime), **ends)


def radius_server(raw: dict[str, Any], i: int, needs_content_id: bool = False) -> RadiusServer:
    where = f"[[radius_server]] {i + 1}"
    only(raw, {"address", "auth_port", "acct_port", "content_id"}, where)
    address = ip_address(raw, "address", where)
    ports = {k: raw.get(k, d) for k, d in (("auth_port", 1812), ("acct_port", 1813))}
    for key, port in ports.items():
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise ConfigError(f"{where}: {key} must be 1..65535")
    return RadiusServer(address, ports["auth_port"], ports["acct_port"],
                        _content_id(raw, where, required=needs_content_id))


def _until(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"{where}: until {value!r} is not an RFC 3339 date and time") from None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ConfigError(f"{where}: until must be a date and time with its offset, e.g. 2026-12-31T00:00:00Z")
    return value.astimezone(timezone.utc)


def identity_target(raw: dict[str, Any], i: int) -> IdentityTarget:
    where = f"[[identity_target]] {i + 1}"
    unknown = set(raw) - {"content_id", "radius_username", "calling_station_id", "sip_uri", "sip_user", "lifetime",
                          "until"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    cccid = _content_id(raw, where)
    user, station = raw.get("radius_username"), raw.get("calling_station_id")
    sip_user, sip_host = sip_identity(raw, where)
    if user is None and station is None and sip_user is None:
        raise ConfigError(f"{where}: give radius_username, calling_station_id, sip_uri or sip_user")
    for key, value in (("radius_username", user), ("calling_station_id", station)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(f"{where}: {key} must be a non-empty string")
    lifetime = raw.get("lifetime")
    if lifetime is not None and (not isinstance(lifetime, (int, float)) or lifetime < 10):
        raise ConfigError(f"{where}: lifetime must be at least 10 seconds")
    return IdentityTarget(cccid, user, station, lifetime, _until(raw.get("until"), where), sip_user, sip_host)
