"""Model objects to SQLite rows and back.

Rows are decoded through the model's constructors, so a damaged row is
refused, never half trusted; encoding is exact (``==`` after a round trip).
"""

from __future__ import annotations

import ipaddress
import json
import sqlite3
from datetime import datetime

from controller.model import (
    InetAddressType,
    InterceptError,
    IpFilter,
    Mediation,
    Stream,
    Transport,
)
from controller.plan_ids import IdChanges, Replica

from .schema import FILTER_COLUMNS, MEDIATION_COLUMNS, STREAM_COLUMNS

Intent = tuple[Mediation, list[Stream], list[str]]


def _ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    return None if text is None else ipaddress.ip_address(text)


def _timeout_text(timeout: datetime | None) -> str | None:
    if timeout is None:
        return None
    if timeout.utcoffset() is None:
        raise InterceptError("cTap2MediationTimeout must carry a timezone")
    # Always microseconds, so the text is one fixed format whatever the value.
    return timeout.isoformat(timespec="microseconds")


def _mediation_row(m: Mediation) -> tuple[object, ...]:
    return (
        m.content_id, str(m.dest_address), m.dest_port, m.src_interface, m.dscp, int(m.transport),
        _timeout_text(m.timeout), int(m.notification_enable), int(m.active),
    )


def _stream_row(s: Stream) -> tuple[object, ...]:
    f = s.filter
    return (
        s.content_id, s.index, int(s.enabled),
        int(f.addr_type), None if f.dst_address is None else str(f.dst_address), f.dst_length,
        None if f.src_address is None else str(f.src_address), f.src_length, int(f.interface),
        f.tos_byte, f.tos_mask, f.flow_id, f.protocol,
        f.dst_port_min, f.dst_port_max, f.src_port_min, f.src_port_max, f.vrf,
    )


def _mediation_of(row: sqlite3.Row) -> Mediation:
    return Mediation(
        content_id=row["content_id"],
        dest_address=ipaddress.ip_address(row["dest_address"]),
        dest_port=row["dest_port"],
        src_interface=row["src_interface"],
        dscp=row["dscp"],
        transport=Transport(row["transport"]),
        timeout=None if row["timeout"] is None else datetime.fromisoformat(row["timeout"]),
        notification_enable=bool(row["notification_enable"]),
        active=bool(row["active"]),
    )


def _stream_of(row: sqlite3.Row) -> Stream:
    return Stream(
        content_id=row["content_id"],
        index=row["stream_index"],
        enabled=bool(row["enabled"]),
        filter=IpFilter(
            addr_type=InetAddressType(row["addr_type"]),
            dst_address=_ip(row["dst_address"]),
            dst_length=row["dst_length"],
            src_address=_ip(row["src_address"]),
            src_length=row["src_length"],
            interface=row["interface"],
            tos_byte=row["tos_byte"],
            tos_mask=row["tos_mask"],
            flow_id=row["flow_id"],
            protocol=row["protocol"],
            dst_port_min=row["dst_port_min"],
            dst_port_max=row["dst_port_max"],
            src_port_min=row["src_port_min"],
            src_port_max=row["src_port_max"],
            vrf=row["vrf"],
        ),
    )


def _session_text(replicas: frozenset[Replica]) -> str:
    return json.dumps(sorted([r.port, r.rid] for r in replicas))


def _write_id_changes(db: sqlite3.Connection, switch: str, changes: IdChanges) -> None:
    """Forget every changed id first, then write the current ones, so that an
    id that moved between keys never collides with itself."""
    db.executemany("DELETE FROM replica_ids WHERE switch = ? AND content_id = ?",
                   [(switch, c) for c in changes.replicas])
    db.executemany("DELETE FROM session_ids WHERE switch = ? AND replicas = ?",
                   [(switch, _session_text(key)) for key in changes.sessions])
    db.executemany("INSERT INTO replica_ids (switch, content_id, rid) VALUES (?, ?, ?)",
                   [(switch, c, rid) for c, rid in changes.replicas.items() if rid is not None])
    db.executemany("INSERT INTO session_ids (switch, replicas, session_id) VALUES (?, ?, ?)",
                   [(switch, _session_text(key), sid) for key, sid in changes.sessions.items() if sid is not None])


def _placeholders(n: int) -> str:
    return ", ".join("?" * n)


_IDS_PER_QUERY = 500  # well under SQLite's limit on bound parameters

_INSERT_MEDIATION = (
    f"INSERT INTO mediations ({', '.join(MEDIATION_COLUMNS)}) VALUES ({_placeholders(len(MEDIATION_COLUMNS))})"
)
_INSERT_STREAM = (
    f"INSERT INTO streams ({', '.join(STREAM_COLUMNS + FILTER_COLUMNS)}) "
    f"VALUES ({_placeholders(len(STREAM_COLUMNS) + len(FILTER_COLUMNS))})"
)
