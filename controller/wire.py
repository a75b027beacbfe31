"""P4Runtime entities as protobuf wire bytes, built without protobuf objects.

Written when the p4runtime wheels held the project on protobuf 3.20's pure
Python messages (~0.3 ms to build a table entry and another 0.3 ms to put it
in a WriteRequest); on the C-backed protobuf now in use, filling p4runtime
messages still costs 1.5x what this does for the same entities and requests
(bench/wire_cost.py, BENCHMARKS.md), so it stays. The controller writes only a
handful of message shapes (table entries with
exact, LPM, ternary and range matches and one direct action; clone sessions;
multicast groups), so it encodes them straight to bytes here, canonical
(P4Runtime's shortest bytestrings, matches, parameters and replicas sorted)
and in the field order of protobuf's deterministic serialization, so that
`WireEntity.data` equals `canonical(e).SerializeToString(deterministic=True)`
for the same entity `e` read back from a switch, and `WireEntity.key` equals
`key_of(e)` (tests/test_wire.py proves both against the protobuf library).
Protobuf objects are made only where a caller wants one (`WireEntity.entity`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from google.protobuf.message import Message
from p4protos import p4runtime_pb2 as p4r

EntityKey = tuple


def _number(message: type[Message], name: str) -> int:
    return message.DESCRIPTOR.fields_by_name[name].number


_SMALL = [bytes([n]) for n in range(0x80)]  # most tags, lengths and ids fit one byte


def varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(message: type[Message], name: str, wire_type: int) -> bytes:
    return varint(_number(message, name) << 3 | wire_type)


_VARINT, _LENGTH = 0, 2


def _uint(tag: bytes, value: int) -> bytes:
    """A scalar field; proto3 leaves out zero."""
    return tag + varint(value) if value else b""


def _bytes(tag: bytes, value: bytes) -> bytes:
    """A bytes field; proto3 leaves out empty."""
    return tag + varint(len(value)) + value if value else b""


def _message(tag: bytes, payload: bytes) -> bytes:
    """A set sub-message field: always present, even when empty."""
    return tag + varint(len(payload)) + payload


def _tags(message: type[Message], **kinds: int) -> dict[str, bytes]:
    return {name: _tag(message, name, kind) for name, kind in kinds.items()}


_ENTITY = _tags(p4r.Entity, table_entry=_LENGTH, packet_replication_engine_entry=_LENGTH)
_TABLE = _tags(p4r.TableEntry, table_id=_VARINT, match=_LENGTH, action=_LENGTH, priority=_VARINT)
_MATCH = _tags(p4r.FieldMatch, field_id=_VARINT, exact=_LENGTH, ternary=_LENGTH, lpm=_LENGTH, range=_LENGTH)
_EXACT = _tags(p4r.FieldMatch.Exact, value=_LENGTH)
_TERNARY = _tags(p4r.FieldMatch.Ternary, value=_LENGTH, mask=_LENGTH)
_LPM = _tags(p4r.FieldMatch.LPM, value=_LENGTH, prefix_len=_VARINT)
_RANGE = _tags(p4r.FieldMatch.Range, low=_LENGTH, high=_LENGTH)
_TABLE_ACTION = _tags(p4r.TableAction, action=_LENGTH)
_ACTION = _tags(p4r.Action, action_id=_VARINT, params=_LENGTH)
_PARAM = _tags(p4r.Action.Param, param_id=_VARINT, value=_LENGTH)
_PRE = _tags(p4r.PacketReplicationEngineEntry, multicast_group_entry=_LENGTH, clone_session_entry=_LENGTH)
_CLONE = _tags(p4r.CloneSessionEntry, session_id=_VARINT, replicas=_LENGTH)
_MCAST = _tags(p4r.MulticastGroupEntry, multicast_group_id=_VARINT, replicas=_LENGTH)
_REPLICA = _tags(p4r.Replica, egress_port=_VARINT, instance=_VARINT)
_UPDATE = _tags(p4r.Update, type=_VARINT, entity=_LENGTH)
_WRITE = _tags(p4r.WriteRequest, updates=_LENGTH)


@dataclass(frozen=True)
class WireEntity:
    """One entity: its P4Runtime identity and its canonical serialized form."""

    key: EntityKey
    data: bytes

    @property
    def priority(self) -> int:
        return self.key[3] if self.key[0] == "table" else 0

    @property
    def table_id(self) -> int | None:
        return self.key[1] if self.key[0] == "table" else None

    @cached_property
    def entity(self) -> p4r.Entity:
        return p4r.Entity.FromString(self.data)


# -- building ------------------------------------------------------------------

def value(number: int, bits: int) -> bytes:
    """An unsigned value as P4Runtime's canonical bytestring (no leading zeros, at least one byte)."""
    if number < 0 or number >> bits:
        raise ValueError(f"{number} does not fit in {bits} bits")
    return number.to_bytes(max(1, (number.bit_length() + 7) // 8), "big")


def exact(field_id: int, data: bytes) -> bytes:
    return _uint(_MATCH["field_id"], field_id) + _message(_MATCH["exact"], _bytes(_EXACT["value"], data))


def lpm(field_id: int, data: bytes, prefix_len: int) -> bytes:
    return _uint(_MATCH["field_id"], field_id) + _message(
        _MATCH["lpm"], _bytes(_LPM["value"], data) + _uint(_LPM["prefix_len"], prefix_len))


def ternary(field_id: int, data: bytes, mask: bytes) -> bytes:
    return _uint(_MATCH["field_id"], field_id) + _message(
        _MATCH["ternary"], _bytes(_TERNARY["value"], data) + _bytes(_TERNARY["mask"], mask))


def range_(field_id: int, low: bytes, high: bytes) -> bytes:
    return _uint(_MATCH["field_id"], field_id) + _message(
        _MATCH["range"], _bytes(_RANGE["low"], low) + _bytes(_RANGE["high"], high))


def action(action_id: int, params: Iterable[tuple[int, bytes]]) -> bytes:
    """A TableAction naming one action with its (param id, value) parameters."""
    body = _uint(_ACTION["action_id"], action_id) + b"".join(
        _message(_ACTION["params"], _uint(_PARAM["param_id"], pid) + _bytes(_PARAM["value"], data))
        for pid, data in sorted(params))
    return _message(_TABLE_ACTION["action"], body)


def table_entry(table_id: int, matches: Sequence[tuple[int, bytes]], table_action: bytes,
                priority: int = 0) -> WireEntity:
    """A table entry from (field id, FieldMatch bytes) pairs and TableAction bytes."""
    ordered = [m for _, m in sorted(matches, key=lambda fm: fm[0])]
    body = (_uint(_TABLE["table_id"], table_id) + b"".join(_message(_TABLE["match"], m) for m in ordered)
            + _message(_TABLE["action"], table_action) + _uint(_TABLE["priority"], priority))
    return WireEntity(("table", table_id, tuple(sorted(ordered)), priority), _message(_ENTITY["table_entry"], body))


def _replicas(tag: bytes, replicas: Iterable[tuple[int, int]]) -> bytes:
    return b"".join(_message(tag, _uint(_REPLICA["egress_port"], port) + _uint(_REPLICA["instance"], instance))
                    for port, instance in sorted(replicas))


def clone_session(session_id: int, replicas: Iterable[tuple[int, int]]) -> WireEntity:
    """A clone session from (egress port, instance) replicas (bmv2 wants class of service and length 0)."""
    body = _uint(_CLONE["session_id"], session_id) + _replicas(_CLONE["replicas"], replicas)
    pre = _message(_PRE["clone_session_entry"], body)
    return WireEntity(("clone", session_id), _message(_ENTITY["packet_replication_engine_entry"], pre))


def multicast_group(group_id: int, replicas: Iterable[tuple[int, int]]) -> WireEntity:
    body = _uint(_MCAST["multicast_group_id"], group_id) + _replicas(_MCAST["replicas"], replicas)
    pre = _message(_PRE["multicast_group_entry"], body)
    return WireEntity(("mcast", group_id), _message(_ENTITY["packet_replication_engine_entry"], pre))


# -- writing -------------------------------------------------------------------

def update(kind: int, entity: WireEntity) -> bytes:
    """An Update (p4r.Update.INSERT, MODIFY or DELETE) of one entity."""
    return _uint(_UPDATE["type"], kind) + _message(_UPDATE["entity"], entity.data)


def write_request(header: p4r.WriteRequest, updates: Iterable[bytes]) -> bytes:
    """A WriteRequest: `header` (device, election id, atomicity) followed by the
    updates. Fields may come in any order on the wire, so they are appended."""
    return header.SerializeToString() + b"".join(_message(_WRITE["updates"], u) for u in updates)


# -- reading back --------------------------------------------------------------

def _canon(data: bytes) -> bytes:
    """P4Runtime's canonical bytestring: no leading zero bytes, at least one byte."""
    return data.lstrip(b"\0") or b"\0"


def canonical(entity: p4r.Entity) -> p4r.Entity:
    """A copy with every value canonical and read-only fields cleared."""
    out = p4r.Entity()
    out.CopyFrom(entity)
    if out.HasField("table_entry"):
        te = out.table_entry
        te.ClearField("counter_data")
        te.ClearField("meter_counter_data")
        te.ClearField("time_since_last_hit")
        for m in te.match:
            kind = m.WhichOneof("field_match_type")
            if kind == "exact":
                m.exact.value = _canon(m.exact.value)
            elif kind == "lpm":
                m.lpm.value = _canon(m.lpm.value)
            elif kind == "ternary":
                m.ternary.value = _canon(m.ternary.value)
                m.ternary.mask = _canon(m.ternary.mask)
            elif kind == "range":
                m.range.low = _canon(m.range.low)
                m.range.high = _canon(m.range.high)
            elif kind == "optional":
                m.optional.value = _canon(m.optional.value)
        te.match.sort(key=lambda m: m.field_id)
        if te.action.HasField("action"):
            for p in te.action.action.params:
                p.value = _canon(p.value)
            te.action.action.params.sort(key=lambda p: p.param_id)
    elif out.HasField("packet_replication_engine_entry"):
        pre = out.packet_replication_engine_entry
        kind = pre.WhichOneof("type")
        group = pre.clone_session_entry if kind == "clone_session_entry" else pre.multicast_group_entry
        replicas = sorted(((r.egress_port or int.from_bytes(r.port, "big")), r.instance) for r in group.replicas)
        group.ClearField("replicas")
        for port, instance in replicas:
            group.replicas.add(egress_port=port, instance=instance)
    return out


def key_of(entity: p4r.Entity) -> EntityKey:
    """P4Runtime's notion of "the same entry": what INSERT would collide on."""
    if entity.HasField("table_entry"):
        te = entity.table_entry
        match = tuple(sorted(m.SerializeToString(deterministic=True) for m in te.match))
        return ("table", te.table_id, match, te.priority)
    pre = entity.packet_replication_engine_entry
    if pre.HasField("clone_session_entry"):
        return ("clone", pre.clone_session_entry.session_id)
    return ("mcast", pre.multicast_group_entry.multicast_group_id)


def from_entity(entity: p4r.Entity) -> WireEntity:
    """A protobuf entity (say, read back from a switch) in the controller's form."""
    canon = canonical(entity)
    return WireEntity(key_of(canon), canon.SerializeToString(deterministic=True))
