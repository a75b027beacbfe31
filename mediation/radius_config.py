"""md.toml's RADIUS servers and identity targets (issue 15), validated.

Why apart from config.py: the IRI function's settings are a concern of their
own; each bad key gets a one-line ConfigError naming it, as config.py does.
Not yet read by config.parse (next slice).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from mediation.config import MAX_CONTENT_ID, ConfigError
from mediation.radius_iri import IdentityTarget


@dataclass(frozen=True)
class RadiusServer:
    address: str
    auth_port: int = 1812
    acct_port: int = 1813


def radius_server(raw: dict[str, Any], i: int) -> RadiusServer:
    where = f"[[radius_server]] {i + 1}"
    try:
        address = str(ipaddress.ip_address(raw.get("address", "")))
    except ValueError:
        raise ConfigError(f"{where}: address {raw.get('address')!r} is not an IP address") from None
    ports = {k: raw.get(k, d) for k, d in (("auth_port", 1812), ("acct_port", 1813))}
    for key, port in ports.items():
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise ConfigError(f"{where}: {key} must be 1..65535")
    return RadiusServer(address, ports["auth_port"], ports["acct_port"])


def identity_target(raw: dict[str, Any], i: int) -> IdentityTarget:
    where = f"[[identity_target]] {i + 1}"
    cccid = raw.get("content_id")
    if not isinstance(cccid, int) or not 1 <= cccid <= MAX_CONTENT_ID:
        raise ConfigError(f"{where}: content_id must be 1..{MAX_CONTENT_ID}")
    user, station = raw.get("radius_username"), raw.get("calling_station_id")
    if user is None and station is None:
        raise ConfigError(f"{where}: give radius_username, calling_station_id or both")
    for key, value in (("radius_username", user), ("calling_station_id", station)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(f"{where}: {key} must be a non-empty string")
    lifetime = raw.get("lifetime")
    if lifetime is not None and (not isinstance(lifetime, (int, float)) or lifetime < 10):
        raise ConfigError(f"{where}: lifetime must be at least 10 seconds")
    return IdentityTarget(cccid, user, station, lifetime)
