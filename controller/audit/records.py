"""The audit record: its fields, its one canonical byte string, its hashes, and
what a well-formed record is. Writer and verifier share these, so what one
writes is exactly what the other checks."""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import json
import re
from datetime import date, datetime
from pathlib import PurePath
from typing import Any

GENESIS = "0" * 64
FIELDS = frozenset({"seq", "time", "actor", "action", "detail", "prev", "hash"})
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _jsonable(value: Any) -> Any:
    """Turn the model's value types into JSON; anything else is refused, not str()-ed
    into something that looks right but cannot be read back."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network,
                          ipaddress.IPv6Network, PurePath)):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=lambda v: (type(v).__name__, str(v)))
    raise TypeError(f"audit detail value {value!r} ({type(value).__name__}) has no JSON form")


def canonical(obj: Any) -> bytes:
    """The one byte string a record hashes and is written as."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False,
                      default=_jsonable).encode("ascii")


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 (hex) of a record's canonical JSON without its "hash" field."""
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def line_hash(line: bytes) -> str:
    """SHA-256 (hex) of a whole record line (no newline): the next record's "prev"."""
    return hashlib.sha256(line).hexdigest()


def _shape_problem(obj: Any) -> str | None:
    """Why `obj` is not a well-formed record, or None if it is."""
    if not isinstance(obj, dict):
        return f"not a record (a JSON {type(obj).__name__})"
    if set(obj) != FIELDS:
        missing, extra = sorted(FIELDS - set(obj)), sorted(set(obj) - FIELDS)
        return "malformed record:" + (f" missing {', '.join(missing)}" if missing else "") + (
            f" unexpected {', '.join(extra)}" if extra else "")
    if not isinstance(obj["seq"], int) or isinstance(obj["seq"], bool) or obj["seq"] < 1:
        return f"malformed record: seq {obj['seq']!r} is not a positive integer"
    for name in ("time", "actor", "action"):
        if not isinstance(obj[name], str) or not obj[name]:
            return f"malformed record: {name} {obj[name]!r} is not a non-empty string"
    try:
        if datetime.fromisoformat(obj["time"]).utcoffset() is None:
            return f"malformed record: time {obj['time']!r} has no timezone"
    except ValueError:
        return f"malformed record: time {obj['time']!r} is not ISO 8601"
    if not isinstance(obj["detail"], dict):
        return "malformed record: detail is not an object"
    for name in ("prev", "hash"):
        if not isinstance(obj[name], str) or not _HEX64.fullmatch(obj[name]):
            return f"malformed record: {name} is not 64 lowercase hex digits"
    return None


def _valid_record(line: bytes) -> dict[str, Any] | None:
    """The record on `line` if it is well formed and its own hash holds."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if _shape_problem(obj) is not None or record_hash(obj) != obj["hash"]:
        return None
    return obj

