"""P4Info of the running pipeline, bound to the compiled program's objects.

bmv2's PI layer maps P4Info objects to the JSON by name; so does this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from p4protos import p4info_pb2

from .errors import LoadError
from .program import Program
from .tables import EXACT, LPM, OPTIONAL, RANGE, TERNARY, Table

__all__ = ["PREFIX", "P4InfoIndex", "TableInfo", "check_p4info"]

# P4Runtime id prefixes (the top byte of every id)
PREFIX = {
    "action": 0x01, "table": 0x02, "value_set": 0x03, "controller_header": 0x04,
    "action_profile": 0x11, "counter": 0x12, "direct_counter": 0x13, "meter": 0x14,
    "direct_meter": 0x15, "register": 0x16, "digest": 0x17,
}

_MT = {
    p4info_pb2.MatchField.EXACT: EXACT,
    p4info_pb2.MatchField.LPM: LPM,
    p4info_pb2.MatchField.TERNARY: TERNARY,
    p4info_pb2.MatchField.RANGE: RANGE,
    p4info_pb2.MatchField.OPTIONAL: OPTIONAL,
}


@dataclass
class MatchFieldInfo:
    id: int
    name: str
    bitwidth: int
    kind: str          # exact | lpm | ternary | range | optional


@dataclass
class TableInfo:
    p4: p4info_pb2.Table
    table: Table
    fields: list[MatchFieldInfo]
    field_by_id: dict[int, MatchFieldInfo]
    actions: dict[int, Any]            # p4info action id -> program Action (this table's copy)
    scopes: dict[int, int]             # p4info action id -> ActionRef.Scope
    const_default: bool
    direct_counter: int = 0            # p4info id
    direct_meter: int = 0
    needs_priority: bool = False


@dataclass
class P4InfoIndex:
    p4info: p4info_pb2.P4Info
    program: Program
    tables: dict[int, TableInfo] = field(default_factory=dict)
    table_order: list[int] = field(default_factory=list)
    actions: dict[int, p4info_pb2.Action] = field(default_factory=dict)
    action_params: dict[int, dict[int, int]] = field(default_factory=dict)   # action -> param id -> bitwidth
    action_param_order: dict[int, list[int]] = field(default_factory=dict)
    counters: dict[int, Any] = field(default_factory=dict)          # id -> CounterArray
    counter_units: dict[int, int] = field(default_factory=dict)
    counter_order: list[int] = field(default_factory=list)
    direct_counters: dict[int, int] = field(default_factory=dict)   # id -> table id
    meters: dict[int, Any] = field(default_factory=dict)            # id -> MeterArray
    meter_order: list[int] = field(default_factory=list)
    meter_units: dict[int, int] = field(default_factory=dict)
    direct_meters: dict[int, int] = field(default_factory=dict)     # id -> table id
    registers: dict[int, Any] = field(default_factory=dict)
    register_order: list[int] = field(default_factory=list)
    packet_in: list[tuple[int, int]] | None = None    # [(metadata id, bitwidth)]
    packet_out: list[tuple[int, int]] | None = None
    ids: set[int] = field(default_factory=set)

    def valid_id(self, obj_id: int, kind: str) -> bool:
        return (obj_id >> 24) == PREFIX[kind] and obj_id in self.ids


def check_p4info(p4info: p4info_pb2.P4Info) -> None:
    """What PI's P4Info reader refuses: duplicate or mis-prefixed ids."""
    seen: set[int] = set()
    groups = [("table", p4info.tables), ("action", p4info.actions), ("counter", p4info.counters),
              ("direct_counter", p4info.direct_counters), ("meter", p4info.meters),
              ("direct_meter", p4info.direct_meters), ("register", p4info.registers),
              ("controller_header", p4info.controller_packet_metadata), ("value_set", p4info.value_sets),
              ("action_profile", p4info.action_profiles), ("digest", p4info.digests)]
    for kind, objs in groups:
        for o in objs:
            i = o.preamble.id
            if i in seen:
                raise LoadError(f"P4Info: duplicate id {i:#x} ({o.preamble.name})")
            if (i >> 24) != PREFIX[kind]:
                raise LoadError(f"P4Info: {kind} {o.preamble.name} has id {i:#x} with the wrong prefix")
            seen.add(i)


def build_index(p4info: p4info_pb2.P4Info, program: Program) -> P4InfoIndex:
    """Bind P4Info objects to the program's, by name; refuse mismatches."""
    check_p4info(p4info)
    idx = P4InfoIndex(p4info, program)
    for a in p4info.actions:
        idx.actions[a.preamble.id] = a
        idx.action_params[a.preamble.id] = {p.id: p.bitwidth for p in a.params}
        idx.action_param_order[a.preamble.id] = [p.id for p in a.params]
        idx.ids.add(a.preamble.id)
    if p4info.action_profiles:
        raise LoadError("P4Info: action profiles are not supported by p4tap-softswitch")
    for t in p4info.tables:
        name = t.preamble.name
        table = program.tables.get(name)
        if table is None:
            raise LoadError(f"P4Info table {name!r} is not in the bmv2 JSON")
        if t.implementation_id:
            raise LoadError(f"P4Info table {name!r} uses an action profile, not supported")
        if len(t.match_fields) != len(table.keys):
            raise LoadError(f"P4Info table {name!r} has {len(t.match_fields)} match fields, the JSON {len(table.keys)}")
        fields = []
        for mf, kf in zip(t.match_fields, table.keys):
            kind = _MT.get(mf.match_type)
            if kind is None:
                raise LoadError(f"P4Info table {name!r} field {mf.name!r}: unsupported match type")
            jkind = kf.kind if kf.kind != "valid" else EXACT
            if not (kind == jkind or (kind == OPTIONAL and jkind in (TERNARY, OPTIONAL))
                    or (kind == TERNARY and jkind == OPTIONAL)):
                raise LoadError(f"P4Info table {name!r} field {mf.name!r} is {kind}, the JSON says {kf.kind}")
            if mf.bitwidth != kf.width:
                raise LoadError(f"P4Info table {name!r} field {mf.name!r} is {mf.bitwidth} bits, the JSON {kf.width}")
            fields.append(MatchFieldInfo(mf.id, mf.name, mf.bitwidth, kind))
        acts: dict[int, Any] = {}
        scopes: dict[int, int] = {}
        for ar in t.action_refs:
            pa = idx.actions.get(ar.id)
            if pa is None:
                raise LoadError(f"P4Info table {name!r} refers to unknown action id {ar.id:#x}")
            act = table.actions.get(pa.preamble.name)
            if act is None:
                raise LoadError(f"P4Info table {name!r}: action {pa.preamble.name!r} is not the JSON table's")
            if len(act.params) != len(pa.params):
                raise LoadError(f"action {pa.preamble.name!r}: P4Info and JSON disagree on parameters")
            acts[ar.id] = act
            scopes[ar.id] = ar.scope
        ti = TableInfo(t, table, fields, {f.id: f for f in fields}, acts, scopes,
                       const_default=bool(t.const_default_action_id))
        ti.needs_priority = any(f.kind in (TERNARY, RANGE, OPTIONAL) for f in fields)
        table.needs_priority = ti.needs_priority
        idx.tables[t.preamble.id] = ti
        idx.table_order.append(t.preamble.id)
        idx.ids.add(t.preamble.id)
    for c in p4info.counters:
        arr = program.counters.get(c.preamble.name)
        if arr is None or arr.is_direct:
            raise LoadError(f"P4Info counter {c.preamble.name!r} is not an indirect counter of the JSON")
        idx.counters[c.preamble.id] = arr
        idx.counter_units[c.preamble.id] = c.spec.unit
        idx.counter_order.append(c.preamble.id)
        idx.ids.add(c.preamble.id)
    for c in p4info.direct_counters:
        tid = c.direct_table_id
        if tid not in idx.tables:
            raise LoadError(f"P4Info direct counter {c.preamble.name!r} is bound to an unknown table")
        if not idx.tables[tid].table.with_counters:
            raise LoadError(f"P4Info direct counter {c.preamble.name!r}: the JSON table has no counters")
        idx.tables[tid].direct_counter = c.preamble.id
        idx.direct_counters[c.preamble.id] = tid
        idx.ids.add(c.preamble.id)
    for m in p4info.meters:
        arr = program.meters.get(m.preamble.name)
        if arr is None or arr.is_direct:
            raise LoadError(f"P4Info meter {m.preamble.name!r} is not an indirect meter of the JSON")
        idx.meters[m.preamble.id] = arr
        idx.meter_units[m.preamble.id] = m.spec.unit
        idx.meter_order.append(m.preamble.id)
        idx.ids.add(m.preamble.id)
    for m in p4info.direct_meters:
        tid = m.direct_table_id
        if tid not in idx.tables or idx.tables[tid].table.direct_meter is None:
            raise LoadError(f"P4Info direct meter {m.preamble.name!r}: the JSON table has no direct meter")
        idx.tables[tid].direct_meter = m.preamble.id
        idx.direct_meters[m.preamble.id] = tid
        idx.ids.add(m.preamble.id)
    for r in p4info.registers:
        arr = program.registers.get(r.preamble.name)
        if arr is None:
            raise LoadError(f"P4Info register {r.preamble.name!r} is not in the JSON")
        idx.registers[r.preamble.id] = arr
        idx.register_order.append(r.preamble.id)
        idx.ids.add(r.preamble.id)
    for cpm in p4info.controller_packet_metadata:
        md = [(m.id, m.bitwidth) for m in cpm.metadata]
        if cpm.preamble.name == "packet_in":
            idx.packet_in = md
        elif cpm.preamble.name == "packet_out":
            idx.packet_out = md
        idx.ids.add(cpm.preamble.id)
    for vs in p4info.value_sets:
        idx.ids.add(vs.preamble.id)
    for d in p4info.digests:
        idx.ids.add(d.preamble.id)
    return idx
