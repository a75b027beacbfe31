"""The content delivery format (RFC 3924 interface f), PacketCable/Cisco style,
as Wireshark's `pcli` dissector reads it: a 4-byte big-endian CCCID, then
the intercepted IP packet from its first byte."""

from __future__ import annotations

import struct
from dataclasses import dataclass

CCCID = struct.Struct("!I")
MIN_IP_HEADER = 20


class PcliError(ValueError):
    """A datagram that is not a pcli content packet."""


@dataclass(frozen=True)
class ContentPacket:
    cccid: int
    ip_packet: bytes

    @property
    def ip_version(self) -> int:
        return self.ip_packet[0] >> 4


def decode(payload: bytes) -> ContentPacket:
    if len(payload) < CCCID.size + MIN_IP_HEADER:
        raise PcliError(f"{len(payload)} bytes is too short for a CCCID and an IP header")
    (cccid,) = CCCID.unpack_from(payload)
    packet = payload[CCCID.size:]
    if packet[0] >> 4 not in (4, 6):
        raise PcliError(f"CCCID {cccid}: payload is not an IP packet (version nibble {packet[0] >> 4})")
    return ContentPacket(cccid, packet)


def encode(cccid: int, ip_packet: bytes) -> bytes:
    return CCCID.pack(cccid) + ip_packet
