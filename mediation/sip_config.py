"""md.toml's SIP servers and the SIP keys of an identity target (issue 15), validated.

    [[sip_server]]                       # the operator's SIP server (proxy, registrar, SBC): a standing tap
    address = "198.51.100.70"
    content_id = 90002                   # the signalling tap's CCCID (no agency is given it)
    transports = ["udp", "tcp"]          # the default: both

    [[identity_target]]
    content_id = 4243
    sip_uri = "sip:alice@example.test"   # or "tel:+15550100"; or sip_user = "alice" (any host)

Why the signalling tap has no port in its filters: an IP fragment after the
first carries no UDP header, so a port filter would miss the rest of a large
INVITE (SDP with ICE candidates); over TCP the UA's side is an ephemeral
port. The tap takes the server's traffic of each transport's protocol, both
ways; what of it is not SIP (media relayed by an SBC) the IRI function
counts and drops.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import sipmessage

from controller.toml_fields import ConfigError, ip_address, only
from mediation.stream_filter import Filter

PROTOCOLS = {"udp": 17, "tcp": 6}


@dataclass(frozen=True)
class SipServer:
    address: str
    transports: tuple[str, ...] = ("udp", "tcp")
    content_id: int | None = None  # the standing signalling tap's CCCID

    def filters(self) -> tuple[Filter, ...]:
        """To the server and from it, per transport's IP protocol, any port (see the module docstring)."""
        host = f"{self.address}/{ipaddress.ip_address(self.address).max_prefixlen}"
        return tuple(f for t in self.transports
                     for f in (Filter(dst=host, protocol=PROTOCOLS[t]), Filter(src=host, protocol=PROTOCOLS[t])))


def sip_server(raw: dict[str, Any], i: int, content_id) -> SipServer:
    """`content_id`: radius_config's checker of the key (shared, so both say it alike)."""
    where = f"[[sip_server]] {i + 1}"
    only(raw, {"address", "transports", "content_id"}, where)
    address = ip_address(raw, "address", where)
    transports = raw.get("transports", ["udp", "tcp"])
    if not isinstance(transports, list) or not transports or not all(t in PROTOCOLS for t in transports) \
            or len(set(transports)) != len(transports):
        raise ConfigError(f"{where}: transports must be a list of \"udp\" and/or \"tcp\", each once")
    return SipServer(address, tuple(transports), content_id(raw, where))


def sip_identity(raw: dict[str, Any], where: str) -> tuple[str | None, str | None]:
    """(user, host) of an identity target's sip_uri or sip_user; (None, None) if it has neither.
    A tel: URI's number is its user, with any host (a tel: identity has none)."""
    uri, user = raw.get("sip_uri"), raw.get("sip_user")
    if uri is not None and user is not None:
        raise ConfigError(f"{where}: give sip_uri or sip_user, not both")
    if user is not None:
        if not isinstance(user, str) or not user or any(c in user for c in "@:; <>"):
            raise ConfigError(f"{where}: sip_user must be a user part alone, e.g. \"alice\" or \"+15550100\"")
        return user, None
    if uri is None:
        return None, None
    try:
        parsed = sipmessage.URI.parse(uri) if isinstance(uri, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.scheme not in ("sip", "sips", "tel") or not parsed.user:
        raise ConfigError(f"{where}: sip_uri {uri!r} is not a sip:, sips: or tel: URI with a user, "
                          "e.g. \"sip:alice@example.test\"")
    return parsed.user, (parsed.host.lower() or None) if parsed.scheme != "tel" else None
