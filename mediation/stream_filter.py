"""What one intercepted stream selects: the MD's filter model.

A `Filter` is a citapStreamEntry's selectors (prefixes, protocol, ports),
but most of the MD uses it without SNMP: the warrant config, the IRI
function's derived taps (RADIUS, SIP), the ETSI delivery and the demo's
reports all ask what a filter selects (`Filter.matches`) or say it
(`describe`). It lives apart from the SNMP client (mediation/snmp_client.py)
and the TAP-MIB row encodings (mediation/tap_mib.py) so that those users
need neither pysnmp nor the MIB to speak of a stream.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["Filter", "describe", "ip_fields"]


@dataclass(frozen=True)
class Filter:
    """A citapStreamEntry's selectors: "address/length" prefixes, protocol, destination
    and source ports (a media stream is told by its ports, either way: issue 15)."""

    src: str | None = None
    dst: str | None = None
    protocol: int = -1
    dst_ports: tuple[int, int] = (0, 65535)
    src_ports: tuple[int, int] = (0, 65535)

    def matches(self, packet: bytes) -> bool:
        """Whether an IP packet (from its first header byte) is one this filter
        selects, as the IAP decides it: the MD's reference for what it must get."""
        fields = ip_fields(packet)
        if fields is None:
            return False
        version, src, dst, protocol, dst_port, src_port = fields
        for prefix, address in ((self.src, src), (self.dst, dst)):
            if prefix is not None:
                net = ipaddress.ip_network(prefix, strict=False)
                if net.version != version or address not in net:
                    return False
        if self.protocol != -1 and protocol != self.protocol:
            return False
        for ports, port in ((self.dst_ports, dst_port), (self.src_ports, src_port)):
            if ports != (0, 65535) and (port is None or not ports[0] <= port <= ports[1]):
                return False
        return True


def describe(f: Filter) -> str:
    parts = [f"src {f.src}" if f.src else "", f"dst {f.dst}" if f.dst else "",
             f"protocol {f.protocol}" if f.protocol != -1 else "",
             f"dst ports {f.dst_ports[0]}-{f.dst_ports[1]}" if f.dst_ports != (0, 65535) else "",
             f"src ports {f.src_ports[0]}-{f.src_ports[1]}" if f.src_ports != (0, 65535) else ""]
    return ", ".join(p for p in parts if p) or "everything"


def ip_fields(packet: bytes):
    """(version, src, dst, protocol, destination port, source port) of an IP
    packet (the ports None where it has none: a fragment after the first), or None."""
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 20:
        header = (packet[0] & 0x0F) * 4
        protocol = packet[9]
        src, dst = ipaddress.IPv4Address(packet[12:16]), ipaddress.IPv4Address(packet[16:20])
        fragment_offset = int.from_bytes(packet[6:8], "big") & 0x1FFF
        l4 = header if fragment_offset == 0 else None
    elif version == 6 and len(packet) >= 40:
        protocol, header = packet[6], 40  # no extension headers are walked
        src, dst = ipaddress.IPv6Address(packet[8:24]), ipaddress.IPv6Address(packet[24:40])
        l4 = header
    else:
        return None
    dst_port = src_port = None
    if l4 is not None and protocol in (6, 17, 132) and len(packet) >= l4 + 4:
        src_port = int.from_bytes(packet[l4:l4 + 2], "big")
        dst_port = int.from_bytes(packet[l4 + 2:l4 + 4], "big")
    return version, src, dst, protocol, dst_port, src_port
