"""SMIv2 syntaxes of the served objects: type and range checks for SET, and
rendering for GET.

A value that fails a check raises `SetError` with the RFC 3416 error status
the check stands for: wrongType (the ASN.1 type is not the object's),
wrongLength (an OCTET STRING of a size the object never takes), wrongValue (a
value the object can never hold in this agent).
"""

from __future__ import annotations

import calendar
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from pysnmp.proto import rfc1902


class SetError(Exception):
    """A SET refused with an RFC 3416 error status (e.g. 'wrongValue')."""

    def __init__(self, status: str, reason: str, index: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.index = index  # 0-based varbind position, filled in by whoever knows it
        self.content_id: int | None = None  # set when the controller refused or failed this intercept


_INTEGER = rfc1902.Integer32.tagSet
_OCTETS = rfc1902.OctetString.tagSet
_UNSIGNED = rfc1902.Unsigned32.tagSet  # same tag as Gauge32
_TYPE_NAMES = {_INTEGER: "INTEGER", _OCTETS: "OCTET STRING", _UNSIGNED: "Unsigned32/Gauge32"}


def type_name(value: Any) -> str:
    tag = getattr(value, "tagSet", None)
    return _TYPE_NAMES.get(tag, type(value).__name__)


class Syntax:
    """One SMI type. `decode` checks a SET value and returns it as Python;
    `encode` turns the Python value into what goes on the wire."""

    tag = None
    label = ""

    def decode(self, value: Any) -> Any:
        if getattr(value, "tagSet", None) != self.tag:
            raise SetError("wrongType", f"expected {self.label}, got {type_name(value)}")
        try:
            return self._python(value)
        except SetError:
            raise
        except Exception as error:  # a value object without a value (pyasn1 NoValue), or worse
            raise SetError("wrongType", f"unusable {self.label} value: {error}") from None

    def _python(self, value: Any) -> Any:
        raise NotImplementedError

    def encode(self, value: Any) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Integer(Syntax):
    """Integer32 / INTEGER { enumeration }: `low..high`, and if given only the
    `allowed` values; `note` says why, in the wrongValue reason."""

    low: int = -(2**31)
    high: int = 2**31 - 1
    allowed: frozenset[int] | None = None
    note: str = ""
    tag = _INTEGER
    label = "INTEGER"

    def _python(self, value: Any) -> int:
        number = int(value)
        if (self.allowed is not None and number not in self.allowed) or not self.low <= number <= self.high:
            scope = f"one of {sorted(self.allowed)}" if self.allowed is not None else f"{self.low}..{self.high}"
            raise SetError("wrongValue", f"{number} is not {scope}" + (f": {self.note}" if self.note else ""))
        return number

    def encode(self, value: int) -> rfc1902.Integer32:
        return rfc1902.Integer32(value)


@dataclass(frozen=True)
class Unsigned(Syntax):
    """Unsigned32 / Gauge32 (InetPortNumber, InetAddressPrefixLength)."""

    low: int = 0
    high: int = 2**32 - 1
    tag = _UNSIGNED
    label = "Unsigned32"

    def _python(self, value: Any) -> int:
        number = int(value)
        if not self.low <= number <= self.high:
            raise SetError("wrongValue", f"{number} is not {self.low}..{self.high}")
        return number

    def encode(self, value: int) -> rfc1902.Gauge32:
        return rfc1902.Gauge32(value)


@dataclass(frozen=True)
class Octets(Syntax):
    """OCTET STRING of one of `sizes` octets (or `min_size..max_size`)."""

    min_size: int = 0
    max_size: int = 65535
    sizes: frozenset[int] | None = None
    tag = _OCTETS
    label = "OCTET STRING"

    def _python(self, value: Any) -> bytes:
        data = bytes(value.asOctets())
        if self.sizes is not None and len(data) not in self.sizes:
            raise SetError("wrongLength", f"{len(data)} octets; this object takes {sorted(self.sizes)}")
        if not self.min_size <= len(data) <= self.max_size:
            raise SetError("wrongLength", f"{len(data)} octets is outside {self.min_size}..{self.max_size}")
        return data

    def encode(self, value: bytes) -> rfc1902.OctetString:
        return rfc1902.OctetString(value)


@dataclass(frozen=True)
class AdminString(Octets):
    """SnmpAdminString: UTF-8, 0..255 octets."""

    max_size: int = 255

    def _python(self, value: Any) -> bytes:
        data = super()._python(value)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise SetError("wrongValue", "not UTF-8 text (SnmpAdminString)") from None
        return data


@dataclass(frozen=True)
class DateAndTime(Octets):
    """SNMPv2-TC DateAndTime, 8 or 11 octets. Decodes to an aware datetime
    (8 octets carry no zone: they are the agent's local time, as RFC 2579 says)."""

    sizes: frozenset[int] | None = frozenset({8, 11})

    def _python(self, value: Any) -> bytes:
        data = super()._python(value)
        date_and_time(data)  # wrongValue if not a real point in time
        return data


class Counter32(Syntax):
    label = "Counter32"

    def encode(self, value: int) -> rfc1902.Counter32:
        return rfc1902.Counter32(value % 2**32)


class Counter64(Syntax):
    label = "Counter64"

    def encode(self, value: int) -> rfc1902.Counter64:
        return rfc1902.Counter64(value % 2**64)


class Bits(Syntax):
    label = "BITS"

    def encode(self, value: bytes) -> rfc1902.Bits:
        return rfc1902.Bits(value)


class ObjectId(Syntax):
    label = "OBJECT IDENTIFIER"

    def encode(self, value: tuple[int, ...]) -> rfc1902.ObjectIdentifier:
        return rfc1902.ObjectIdentifier(value)


class TimeTicks(Syntax):
    label = "TimeTicks"

    def encode(self, value: int) -> rfc1902.TimeTicks:
        return rfc1902.TimeTicks(value % 2**32)


# -- DateAndTime ------------------------------------------------------------------

def date_and_time(data: bytes) -> datetime:
    """DateAndTime octets -> aware datetime; SetError(wrongValue) if invalid."""
    if len(data) not in (8, 11):
        raise SetError("wrongLength", f"DateAndTime is 8 or 11 octets, got {len(data)}")
    year, month, day, hour, minute, second, decisecond = struct.unpack("!HBBBBBB", data[:8])
    if not (1 <= month <= 12 and 0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 60
            and 0 <= decisecond <= 9):
        raise SetError("wrongValue", "DateAndTime field out of range")
    if year < 1 or not 1 <= day <= calendar.monthrange(year, month)[1]:
        raise SetError("wrongValue", "DateAndTime date does not exist")
    second = min(second, 59)  # a leap second is taken as the second before it
    if len(data) == 11:
        sign, off_hours, off_minutes = chr(data[8]), data[9], data[10]
        if sign not in "+-" or off_hours > 14 or off_minutes > 59:
            raise SetError("wrongValue", "DateAndTime time zone out of range")
        offset = timedelta(hours=off_hours, minutes=off_minutes) * (1 if sign == "+" else -1)
        zone = timezone(offset)
    else:
        zone = None
    try:
        moment = datetime(year, month, day, hour, minute, second, decisecond * 100_000, tzinfo=zone)
        if zone is None:
            moment = moment.astimezone()  # local time of the agent
    except (ValueError, OverflowError) as error:
        raise SetError("wrongValue", f"DateAndTime: {error}") from None
    return moment


def date_and_time_octets(moment: datetime) -> bytes:
    """An aware datetime -> 11-octet DateAndTime in UTC."""
    utc = moment.astimezone(timezone.utc)
    return struct.pack("!HBBBBBB", utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second,
                       utc.microsecond // 100_000) + b"+\x00\x00"
