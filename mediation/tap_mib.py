"""CISCO-TAP2-MIB / CISCO-IP-TAP-MIB as the MD writes and reads them:
the OIDs, an intercept's rows as SET varbinds in REFERENCE.md's order, and
the rows read back from the IAP as `IapIntercept`s.

Kept apart from the transport (mediation/snmp_client.py, which only moves
varbinds over SNMPv3) because what a row holds is the MIB's business, not
the session's: the keeper (mediation/keeper_changes.py) and the tests build
and check varbinds with these functions without a client, and the
encodings stay one place to read against the MIB.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from pysnmp.proto import rfc1902

from mediation.stream_filter import Filter, describe

__all__ = ["ACTIVE", "CREATE_AND_GO", "DESTROY", "IP_STREAM", "MEDIATION", "SNMP_ENGINE_BOOTS", "SNMP_ENGINE_ID",
           "STREAM", "SYS_UP_TIME", "TAP2", "IapIntercept", "IapStream", "Provisioning", "date_and_time",
           "filter_from_columns", "filter_varbinds", "iap_intercepts", "mediation_varbinds", "parse_date_and_time",
           "provisioning_sets", "stream_varbinds"]

TAP2 = (1, 3, 6, 1, 4, 1, 9, 9, 399)
MEDIATION = TAP2 + (1, 1, 2, 1)
STREAM = TAP2 + (1, 2, 1, 1)
IP_STREAM = (1, 3, 6, 1, 4, 1, 9, 9, 394, 1, 1, 2, 1)
SYS_UP_TIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SNMP_ENGINE_ID = (1, 3, 6, 1, 6, 3, 10, 2, 1, 1, 0)
SNMP_ENGINE_BOOTS = (1, 3, 6, 1, 6, 3, 10, 2, 1, 2, 0)
ACTIVE, CREATE_AND_GO, DESTROY = 1, 4, 6


def date_and_time(moment: datetime) -> bytes:
    """11-octet DateAndTime in UTC."""
    utc = moment.astimezone(timezone.utc)
    return struct.pack("!HBBBBBB", utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second,
                       utc.microsecond // 100_000) + b"+\x00\x00"


def parse_date_and_time(data: bytes) -> datetime | None:
    """An agent's DateAndTime (8 octets: its local time; 11: with zone), or None if malformed."""
    if len(data) not in (8, 11):
        return None
    year, month, day, hour, minute, second, decisecond = struct.unpack("!HBBBBBB", data[:8])
    try:
        if len(data) == 11:
            sign = 1 if chr(data[8]) == "+" else -1
            zone = timezone(sign * timedelta(hours=data[9], minutes=data[10]))
            return datetime(year, month, day, hour, minute, min(second, 59), decisecond * 100_000, tzinfo=zone)
        return datetime(year, month, day, hour, minute, min(second, 59), decisecond * 100_000).astimezone()
    except ValueError:
        return None


@dataclass
class IapStream:
    """A stream as the IAP shows it: cTap2StreamTable and its citapStreamTable filter."""

    index: int
    status: int = 0
    enabled: bool = False
    packets: int = 0
    drops: int = 0
    filter_status: int = 0
    filter: Filter | None = None


@dataclass
class IapIntercept:
    """A mediation row and its streams, as read back from the IAP."""

    content_id: int
    status: int = 0
    dest: tuple[str, int] | None = None
    timeout: datetime | None = None
    streams: dict[int, IapStream] = field(default_factory=dict)

    def active_streams(self) -> list[IapStream]:
        return [s for s in self.streams.values() if s.status == ACTIVE and s.filter_status == ACTIVE and s.enabled]


def mediation_varbinds(content_id: int, address, port: int, timeout: datetime, dscp: int = 34
                       ) -> list[tuple[tuple[int, ...], Any]]:
    c = (content_id,)
    return [
        (MEDIATION + (2,) + c, rfc1902.Integer32(1 if address.version == 4 else 2)),
        (MEDIATION + (3,) + c, rfc1902.OctetString(address.packed)),
        (MEDIATION + (4,) + c, rfc1902.Unsigned32(port)),
        (MEDIATION + (5,) + c, rfc1902.Integer32(0)),
        (MEDIATION + (7,) + c, rfc1902.Integer32(dscp)),
        (MEDIATION + (10,) + c, rfc1902.OctetString(date_and_time(timeout))),
        (MEDIATION + (11,) + c, rfc1902.Integer32(1)),  # udp
        (MEDIATION + (13,) + c, rfc1902.Integer32(CREATE_AND_GO)),
    ]


def filter_varbinds(content_id: int, index: int, f: Filter) -> list[tuple[tuple[int, ...], Any]]:
    i = (content_id, index)
    src = ipaddress.ip_network(f.src, strict=False) if f.src else None
    dst = ipaddress.ip_network(f.dst, strict=False) if f.dst else None
    version = (src or dst).version if (src or dst) else 4
    zero = ipaddress.ip_address(0 if version == 4 else "::")
    out = [
        (IP_STREAM + (1,) + i, rfc1902.Integer32(0)),
        (IP_STREAM + (2,) + i, rfc1902.Integer32(1 if version == 4 else 2)),
        (IP_STREAM + (3,) + i, rfc1902.OctetString(ipaddress.ip_address(f.dst.split("/")[0]).packed if dst else zero.packed)),
        (IP_STREAM + (4,) + i, rfc1902.Unsigned32(dst.prefixlen if dst else 0)),
        (IP_STREAM + (5,) + i, rfc1902.OctetString(ipaddress.ip_address(f.src.split("/")[0]).packed if src else zero.packed)),
        (IP_STREAM + (6,) + i, rfc1902.Unsigned32(src.prefixlen if src else 0)),
        (IP_STREAM + (7,) + i, rfc1902.Integer32(0)),
        (IP_STREAM + (8,) + i, rfc1902.Integer32(0)),
    ]
    if f.protocol != -1:
        out.append((IP_STREAM + (10,) + i, rfc1902.Integer32(f.protocol)))
    if f.dst_ports != (0, 65535):
        out += [(IP_STREAM + (11,) + i, rfc1902.Unsigned32(f.dst_ports[0])),
                (IP_STREAM + (12,) + i, rfc1902.Unsigned32(f.dst_ports[1]))]
    if f.src_ports != (0, 65535):
        out += [(IP_STREAM + (13,) + i, rfc1902.Unsigned32(f.src_ports[0])),
                (IP_STREAM + (14,) + i, rfc1902.Unsigned32(f.src_ports[1]))]
    return out + [(IP_STREAM + (16,) + i, rfc1902.Integer32(CREATE_AND_GO))]


def filter_from_columns(columns: dict[int, Any]) -> Filter | None:
    """A citapStreamEntry's columns (number -> value) as a Filter, or None if it has no addresses."""
    def prefix(address_column: int, length_column: int) -> str | None:
        length = int(columns.get(length_column, 0))
        data = bytes(columns.get(address_column, b""))
        if length == 0 or len(data) not in (4, 16):
            return None
        return str(ipaddress.ip_network((ipaddress.ip_address(data), length), strict=False))

    try:
        dst, src = prefix(3, 4), prefix(5, 6)
    except ValueError:
        return None
    ports = (int(columns.get(11, 0)), int(columns.get(12, 65535)))
    src_ports = (int(columns.get(13, 0)), int(columns.get(14, 65535)))
    return Filter(src=src, dst=dst, protocol=int(columns.get(10, -1)), dst_ports=ports, src_ports=src_ports)


def stream_varbinds(content_id: int, index: int, enable: bool = True) -> list[tuple[tuple[int, ...], Any]]:
    i = (content_id, index)
    return [(STREAM + (2,) + i, rfc1902.Integer32(1)), (STREAM + (3,) + i, rfc1902.Integer32(1 if enable else 2)),
            (STREAM + (6,) + i, rfc1902.Integer32(CREATE_AND_GO))]


@dataclass(frozen=True)
class Provisioning:
    """One intercept for `TapClient.provision_many`: `provision`'s arguments."""

    content_id: int
    md_address: Any
    md_port: int
    timeout: datetime
    filters: tuple[Filter, ...]
    dscp: int = 34


def provisioning_sets(p: Provisioning) -> list[tuple[list[tuple[tuple[int, ...], Any]], str]]:
    """An intercept's createAndGo SETs in REFERENCE.md's order (the
    mediation, then per stream its filter and the stream), each with the line
    that says it succeeded."""
    sets = [(mediation_varbinds(p.content_id, ipaddress.ip_address(p.md_address), p.md_port, p.timeout, p.dscp),
             f"cTap2MediationEntry.{p.content_id} createAndGo: copies to {p.md_address}:{p.md_port}")]
    for index, f in enumerate(p.filters, start=1):
        sets += [(filter_varbinds(p.content_id, index, f),
                  f"citapStreamEntry.{p.content_id}.{index} createAndGo: {describe(f)}"),
                 (stream_varbinds(p.content_id, index),
                  f"cTap2StreamEntry.{p.content_id}.{index} createAndGo: intercept enabled")]
    return sets


def iap_intercepts(mediations: list[tuple[tuple[int, ...], Any]], streams: list[tuple[tuple[int, ...], Any]],
                   filters: list[tuple[tuple[int, ...], Any]]) -> dict[int, IapIntercept]:
    """The IAP's intercepts from walks of its cTap2MediationTable,
    cTap2StreamTable and citapStreamTable: every mediation row, with its
    streams and filters (a stream or filter without a mediation row still
    shows, under an `IapIntercept` of its content ID)."""
    out: dict[int, IapIntercept] = {}
    rows: dict[int, dict[int, Any]] = {}
    for oid, value in mediations:
        rows.setdefault(oid[len(MEDIATION) + 1], {})[oid[len(MEDIATION)]] = value
    for content_id, columns in rows.items():
        row = out[content_id] = IapIntercept(content_id, status=int(columns.get(13, 0)))
        address = bytes(columns.get(3, b""))
        if len(address) in (4, 16):
            row.dest = (str(ipaddress.ip_address(address)), int(columns.get(4, 0)))
        row.timeout = parse_date_and_time(bytes(columns.get(10, b"")))
    for oid, value in streams:
        column, (content_id, index) = oid[len(STREAM)], oid[len(STREAM) + 1:]
        stream = out.setdefault(content_id, IapIntercept(content_id)).streams.setdefault(index, IapStream(index))
        if column == 3:
            stream.enabled = int(value) == 1
        elif column == 6:
            stream.status = int(value)
        elif column == 7:
            stream.packets = int(value)
        elif column == 8:
            stream.drops = int(value)
    raw_filters: dict[tuple[int, int], dict[int, Any]] = {}
    for oid, value in filters:
        column, index = oid[len(IP_STREAM)], oid[len(IP_STREAM) + 1:]
        raw_filters.setdefault(index, {})[column] = value
    for (content_id, index), columns in raw_filters.items():
        stream = out.setdefault(content_id, IapIntercept(content_id)).streams.setdefault(index, IapStream(index))
        stream.filter_status = int(columns.get(16, 0))
        stream.filter = filter_from_columns(columns)
    return out
