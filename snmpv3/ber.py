"""BER for the few shapes an SNMPv3 message is made of, at C-like cost.

pysnmp codes every message through pyasn1, which builds, checks and clones
an object per tag: ~6 ms per authPriv SET on each side, which is what made
provisioning over SNMP ten times slower than the controller's own API
(issue 4, BENCHMARKS.md). This module reads and writes the same bytes with
slicing and int.from_bytes. It is strict on purpose: `read` accepts only
definite lengths, single-octet tags and the value types SNMP defines, and
raises `Malformed` for anything else. The agent's front door
(mib_bridge/fast_path.py) drops and counts what this refuses, so pysnmp,
whose decoder takes indefinite lengths and non-minimal integers and raises
on some shapes, only ever sees what this reader accepts.

Values are exchanged as pysnmp's own rfc1902/rfc1905 objects, of exactly the
classes pysnmp's decoder would give, so the agent's type checks see no
difference between the two paths (tests/test_snmpv3_wire.py compares them).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from pyasn1.codec.ber import encoder as pyasn1_encoder
from pyasn1.type import univ
from pysnmp.proto import rfc1902, rfc1905

SEQUENCE, INTEGER, OCTET_STRING, NULL, OID = 0x30, 0x02, 0x04, 0x05, 0x06
INT32 = (-(2**31), 2**31 - 1)
UINT32 = (0, 2**32 - 1)

# tag -> (pysnmp class, kind, range): the ObjectSyntax CHOICE of RFC 3416, plus
# the unSpecified NULL of requests
DECODE: dict[int, tuple[Any, str, tuple[int, int] | None]] = {
    INTEGER: (rfc1902.Integer, "int", INT32),
    OCTET_STRING: (rfc1902.OctetString, "bytes", (0, 65535)),
    OID: (univ.ObjectIdentifier, "oid", None),
    0x40: (rfc1902.IpAddress, "bytes", (4, 4)),
    0x41: (rfc1902.Counter32, "int", UINT32),
    0x42: (rfc1902.Gauge32, "int", UINT32),
    0x43: (rfc1902.TimeTicks, "int", UINT32),
    0x44: (rfc1902.Opaque, "bytes", None),
    0x46: (rfc1902.Counter64, "int", (0, 2**64 - 1)),
}
EXCEPTIONS = {0x80: rfc1905.noSuchObject, 0x81: rfc1905.noSuchInstance, 0x82: rfc1905.endOfMibView}


class Malformed(ValueError):
    """Not a shape this codec reads; pysnmp gets the message instead."""


# -- reading ----------------------------------------------------------------------


def read(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the TLV at `pos`, within `end`."""
    if pos + 2 > end:
        raise Malformed("truncated")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise Malformed("multi-octet tag")
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or pos + n > end:
            raise Malformed("indefinite or oversized length")
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    if pos + length > end:
        raise Malformed("length beyond the data")
    return tag, pos, pos + length


def expect(data: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    got, start, stop = read(data, pos, end)
    if got != tag:
        raise Malformed(f"tag {got:#x} where {tag:#x} belongs")
    return start, stop


def integer(data: bytes, start: int, stop: int, bounds: tuple[int, int] = INT32) -> int:
    """X.690 8.3: one octet at least, and no leading octet that only repeats
    the sign (RFC 3416 wants wrongEncoding or a parse error for those; pysnmp
    takes them as they come). One exception, kept for interoperation:
    -2**(8k-1) as ff 80 00.., which pyasn1's encoder (and int_contents) write."""
    if not 0 < stop - start <= 9:
        raise Malformed("integer length")
    if stop - start > 1 and (data[start], data[start + 1] & 0x80) in ((0, 0), (0xFF, 0x80)) \
            and data[start + 1:stop] != b"\x80" + bytes(stop - start - 2):
        raise Malformed("non-minimal integer")
    value = int.from_bytes(data[start:stop], "big", signed=True)
    if not bounds[0] <= value <= bounds[1]:
        raise Malformed("integer out of range")
    return value


def read_integer(data: bytes, pos: int, end: int, bounds: tuple[int, int] = INT32) -> tuple[int, int]:
    """(value, position after it)."""
    start, stop = expect(data, pos, end, INTEGER)
    return integer(data, start, stop, bounds), stop


def read_octets(data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    start, stop = expect(data, pos, end, OCTET_STRING)
    return data[start:stop], stop


def oid_value(data: bytes, start: int, stop: int) -> tuple[int, ...]:
    if start == stop or data[stop - 1] & 0x80:
        raise Malformed("object identifier")
    chunk = data[start:stop]
    # a column's sub-identifiers (cached) and the row index's last three,
    # which is what changes from one varbind to the next
    cut, ends = len(chunk) - 1, 0
    while cut > 0:
        cut -= 1
        if chunk[cut] < 0x80:
            ends += 1
            if ends == 3:
                return _column_arcs(chunk[:cut + 1]) + _arcs(chunk[cut + 1:])
    return _first_arcs(_arcs(chunk))


@functools.lru_cache(maxsize=1024)
def _column_arcs(chunk: bytes) -> tuple[int, ...]:
    return _first_arcs(_arcs(chunk))


def _first_arcs(arcs: tuple[int, ...]) -> tuple[int, ...]:
    """The first sub-identifier stands for the first two arcs (X.690 8.19.4)."""
    first = arcs[0]
    return ((first // 40, first % 40) if first < 80 else (2, first - 80)) + arcs[1:]


def _arcs(chunk: bytes) -> tuple[int, ...]:
    arcs: list[int] = []
    value = 0
    for octet in chunk:
        if value == 0 and octet == 0x80:
            raise Malformed("non-minimal sub-identifier")
        value = (value << 7) | (octet & 0x7F)
        if not octet & 0x80:
            arcs.append(value)
            value = 0
    return tuple(arcs)


def value_object(tag: int, data: bytes, start: int, stop: int):
    """The pysnmp object of a varbind value. Values are immutable, and short
    ones mostly repeat (row statuses, types, lengths, addresses), so those
    objects are shared."""
    if stop - start <= SHARED_VALUE_SIZE:
        return _shared_value(tag, data[start:stop])
    return _value(tag, data[start:stop])


SHARED_VALUE_SIZE = 16


@functools.lru_cache(maxsize=4096)
def _shared_value(tag: int, contents: bytes):
    return _value(tag, contents)


def _value(tag: int, contents: bytes):
    if tag == NULL or tag in EXCEPTIONS:
        if contents:
            raise Malformed("NULL with contents")
        return EXCEPTIONS.get(tag, rfc1905.unSpecified)
    kind = DECODE.get(tag)
    if kind is None:
        raise Malformed(f"value tag {tag:#x}")
    cls, form, bounds = kind
    if form == "int":
        return cls(integer(contents, 0, len(contents), bounds))
    if form == "oid":
        return cls(oid_value(contents, 0, len(contents)))
    if bounds is not None and not bounds[0] <= len(contents) <= bounds[1]:
        raise Malformed("octet string size")
    return cls(contents)


def read_varbinds(data: bytes, pos: int, end: int) -> tuple[list[tuple[tuple[int, ...], Any]], int, int]:
    """(varbinds, start, stop) of a VarBindList; start/stop frame its encoding."""
    start, stop = expect(data, pos, end, SEQUENCE)
    varbinds = []
    cursor = start
    while cursor < stop:
        vb_start, vb_stop = expect(data, cursor, stop, SEQUENCE)
        name_start, name_stop = expect(data, vb_start, vb_stop, OID)
        tag, value_start, value_stop = read(data, name_stop, vb_stop)
        if value_stop != vb_stop:
            raise Malformed("varbind with trailing data")
        varbinds.append((oid_value(data, name_start, name_stop), value_object(tag, data, value_start, value_stop)))
        cursor = vb_stop
    return varbinds, pos, stop


# -- writing ----------------------------------------------------------------------


def tlv(tag: int, contents: bytes) -> bytes:
    n = len(contents)
    if n < 0x80:
        return bytes((tag, n)) + contents
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + contents


def int_contents(value: int) -> bytes:
    return value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True)


def encode_integer(value: int, tag: int = INTEGER) -> bytes:
    return tlv(tag, int_contents(value))


def encode_oid(arcs: Sequence[int]) -> bytes:
    if len(arcs) < 2:
        raise ValueError(f"object identifier {arcs!r} needs two arcs")
    if len(arcs) < 5:
        return tlv(OID, _subidentifiers(tuple(arcs), True))
    # a column's OID, cached, then the row index, which is what changes
    return tlv(OID, _column(tuple(arcs[:-3])) + _subidentifiers(tuple(arcs[-3:]), False))


@functools.lru_cache(maxsize=1024)
def _column(arcs: tuple[int, ...]) -> bytes:
    return _subidentifiers(arcs, True)


def _subidentifiers(arcs: tuple[int, ...], first: bool) -> bytes:
    out = bytearray()
    for arc in ((arcs[0] * 40 + arcs[1], *arcs[2:]) if first else arcs):
        if arc < 0x80:
            out.append(arc)
            continue
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


def encode_value(value) -> bytes:
    """A pysnmp value object as BER; pyasn1's encoder for any other shape.
    A tag belongs to the instance in pyasn1 (`subtype(implicitTag=...)`), so
    the form is looked up by the value's class and its own tags."""
    key = (type(value), getattr(value, "tagSet", None))
    kind = _KINDS.get(key)
    if kind is None:
        if len(_KINDS) > 256:
            _KINDS.clear()
        kind = _KINDS[key] = _kind(value)
    tag, form = kind
    if form == "int":
        return encode_integer(int(value), tag)
    if form == "bytes":
        return tlv(tag, value.asOctets())
    if form == "null":
        return bytes((tag, 0))
    if form == "oid":
        return encode_oid(tuple(value))
    return pyasn1_encoder.encode(value)


FORMS = {"int": univ.Integer, "bytes": univ.OctetString, "oid": univ.ObjectIdentifier}


def _kind(value) -> tuple[int, str]:
    """(tag, form) for a value whose only tag is one SNMP defines on the base
    type it has; (0, "other") for anything else."""
    tag_set = getattr(value, "tagSet", None)
    if tag_set is not None and len(tag_set) == 1:
        base = tag_set[0]
        tag = base.tagClass | base.tagFormat | base.tagId
        if (tag in EXCEPTIONS or tag == NULL) and isinstance(value, univ.Null):
            return tag, "null"
        if tag in DECODE and isinstance(value, FORMS[DECODE[tag][1]]):
            return tag, DECODE[tag][1]
    return 0, "other"


_KINDS: dict[tuple, tuple[int, str]] = {}


def encode_varbinds(varbinds: Sequence[tuple[Sequence[int], Any]]) -> bytes:
    return tlv(SEQUENCE, b"".join(tlv(SEQUENCE, encode_oid(oid) + encode_value(value)) for oid, value in varbinds))
