"""The controller's entities against the Tofino P4Infos (build/tna, build/t2na).

For random intercept sets, every table entry the controller plans is
encoded with the Tofino P4Info exactly as with bmv2's (same names, the ids
and widths learned from P4Info) and checked against it: the table exists,
each match field is one of its fields with the right match kind and a value
within its width, the action is one the table allows, with every parameter
within its width, and ternary/range tables get a priority. The bmv2 and
Tofino encodings then say the same thing: decoded by name, the same entries
with the same values (so the same filters, MDs per filter and CCCIDs).

Not covered: clone sessions and multicast groups, which a Tofino P4Runtime
server would take as mirror sessions pointing at PRE groups (not planned yet,
see README, Tofino); only their ids are checked to fit the mirror id width.
"""

from __future__ import annotations

import random

import pytest
from google.protobuf import text_format
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2 as p4r

from controller.entries import INTERCEPT_ACTION, EntryBuilder
from controller.model import Stream
from controller.pipeline import BUILD_DIR, Pipeline
from controller.plan import IdAllocator, plan_intercepts
from tests.test_plan import NOW, mediation, random_filter, topology, v4

ARCHS = ("tna", "t2na")
KIND = {
    p4info_pb2.MatchField.EXACT: "exact", p4info_pb2.MatchField.LPM: "lpm",
    p4info_pb2.MatchField.TERNARY: "ternary", p4info_pb2.MatchField.RANGE: "range",
    p4info_pb2.MatchField.OPTIONAL: "optional",
}


def load(arch: str) -> Pipeline:
    path = BUILD_DIR / arch / "p4info.txtpb"
    if not path.exists():
        pytest.skip(f"{path} not committed (make p4 with p4c-barefoot)")
    return Pipeline(text_format.Parse(path.read_text(), p4info_pb2.P4Info()), b"")


def random_plan(seed: int):
    rng = random.Random(seed)
    meds = [mediation(c) for c in range(1, rng.randint(2, 8))]
    streams = [Stream(m.content_id, i, random_filter(rng), True) for m in meds for i in range(1, rng.randint(2, 5))]
    # Both sides for one mediation, one side overlapping another's: merge entries too.
    streams += [Stream(1, 10, v4(src="192.0.2.7/32"), True), Stream(1, 11, v4(dst="198.51.100.7/32"), True),
                Stream(2, 10, v4(src="192.0.2.0/24"), True)]
    return plan_intercepts(meds, streams, topology(), IdAllocator(), NOW)


def table_entries(builder: EntryBuilder, plan) -> list[p4r.TableEntry]:
    return [w.entity.table_entry for w in builder.intercept_wire(plan) if w.entity.HasField("table_entry")]


def check(info: p4info_pb2.P4Info, entry: p4r.TableEntry) -> None:
    tables = {t.preamble.id: t for t in info.tables}
    actions = {a.preamble.id: a for a in info.actions}
    table = tables[entry.table_id]
    fields = {f.id: f for f in table.match_fields}
    for m in entry.match:
        f = fields[m.field_id]
        kind = m.WhichOneof("field_match_type")
        assert kind == KIND[f.match_type], f"{table.preamble.name}.{f.name}: {kind}, P4Info says {KIND[f.match_type]}"
        values = {"exact": [m.exact.value], "lpm": [m.lpm.value], "ternary": [m.ternary.value, m.ternary.mask],
                  "range": [m.range.low, m.range.high], "optional": [m.optional.value]}[kind]
        for v in values:
            assert int.from_bytes(v, "big") < 1 << f.bitwidth, f"{f.name} exceeds {f.bitwidth} bits"
        if kind == "lpm":
            assert 0 < m.lpm.prefix_len <= f.bitwidth
    needs_priority = any(f.match_type in (p4info_pb2.MatchField.TERNARY, p4info_pb2.MatchField.RANGE)
                         for f in table.match_fields)
    assert (entry.priority > 0) == needs_priority, f"{table.preamble.name}: priority {entry.priority}"
    action = entry.action.action
    assert action.action_id in {r.id for r in table.action_refs}, f"{table.preamble.name}: action not allowed"
    params = {p.id: p for p in actions[action.action_id].params}
    assert {p.param_id for p in action.params} == set(params)
    for p in action.params:
        assert int.from_bytes(p.value, "big") < 1 << params[p.param_id].bitwidth


def by_name(pipeline: Pipeline, entries: list[p4r.TableEntry]) -> list:
    """Entries as names and numbers, whatever the ids and widths."""
    field_names = {(t.preamble.id, f.id): f.name for t in pipeline.p4info.tables for f in t.match_fields}
    param_names = {(a.preamble.id, p.id): p.name for a in pipeline.p4info.actions for p in a.params}

    def number(b: bytes) -> int:
        return int.from_bytes(b, "big")

    out = []
    for e in entries:
        match = []
        for m in e.match:
            kind = m.WhichOneof("field_match_type")
            got = getattr(m, kind)
            values = {"exact": lambda: (number(got.value),), "lpm": lambda: (number(got.value), got.prefix_len),
                      "ternary": lambda: (number(got.value), number(got.mask)),
                      "range": lambda: (number(got.low), number(got.high)),
                      "optional": lambda: (number(got.value),)}[kind]()
            match.append((field_names[(e.table_id, m.field_id)], kind, values))
        action = e.action.action
        params = sorted((param_names[(action.action_id, p.param_id)], number(p.value)) for p in action.params)
        out.append((pipeline.name_of(e.table_id), tuple(sorted(match)), e.priority,
                    pipeline.name_of(action.action_id), tuple(params)))
    return sorted(out)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("seed", range(8))
def test_planned_entities_validate_against_the_tofino_p4info(arch, seed):
    tofino = load(arch)
    plan = random_plan(seed)
    entries = table_entries(EntryBuilder(tofino), plan)
    assert entries and plan.filters and plan.gates and plan.encaps and plan.merges
    for entry in entries:
        check(tofino.p4info, entry)
    session_bits = tofino.param(INTERCEPT_ACTION, "session").bitwidth
    assert all(s.session_id < 1 << session_bits for s in plan.sessions), "a session id beyond the mirror ids"


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("seed", range(8))
def test_bmv2_and_tofino_plans_say_the_same(arch, seed):
    tofino, bmv2 = load(arch), Pipeline.load()
    plan = random_plan(seed)
    assert by_name(tofino, table_entries(EntryBuilder(tofino), plan)) == \
        by_name(bmv2, table_entries(EntryBuilder(bmv2), plan))
