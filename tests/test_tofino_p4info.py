"""The controller's entities against the Tofino P4Infos (build/tna, build/t2na).

For random intercept sets, every table entry the controller plans is
encoded with the Tofino P4Info exactly as with bmv2's (same names, the ids
and widths learned from P4Info) and checked against it: the table exists,
each match field is one of its fields with the right match kind and a value
within its width, the action is one the table allows, with every parameter
within its width, and ternary/range tables get a priority. The bmv2 and
Tofino encodings then say the same thing: decoded by name, the same entries
with the same values (so the same filters, MDs per filter and CCCIDs).

Clone sessions need no Tofino form of their own: the TNA program mirrors
each intercepted packet (I2E) to a mirror session whose destination is a PRE
multicast group with one node per MD, the node's rid (egress_rid) selecting
the MD's CCCID and encapsulation in egress. That is exactly what PI's P4Runtime
frontend (bf_switchd's P4Runtime server) makes of a standard CloneSessionEntry
with several replicas (p4lang/PI proto/frontend/src/pre_clone_mgr.cpp: a
multicast group, first_reserved_group_id() + session id, holding the replicas,
and pi_clone_session_set with mc_grp_id; pre_mc_mgr.cpp make_new_group: one
node per replica `instance` as its rid, a duplicate (instance, port)
refused; class_of_service other than 0 unimplemented). The tests below prove
the planned sessions are of that form and name the right encapsulations, and
that the mirror id width learned from P4Info (10 bits; 8 on Tofino 2) bounds
the session ids with a clean refusal, or the switch's own lower limit where
configured (`max_clone_session_id`: Tofino 1's normal mirror sessions end at
1015, Stratum's kMaxCloneSessionId; PI's frontend at 2b4a3ed took only 1..511,
pre_clone_mgr.h kMaxCloneSessionId = 512; later ones 32768). Stratum's bfrt PRE manager (as read,
stratum/hal/lib/barefoot/bfrt_pre_manager.cc) refuses CloneSessionEntry
altogether: see README, Tofino.
"""

from __future__ import annotations

import random

import pytest
from google.protobuf import text_format
from p4protos import p4info_pb2
from p4protos import p4runtime_pb2 as p4r

from controller.entries import INTERCEPT_ACTION, EntryBuilder, clone_session_limit
from controller.managed_switch import ManagedSwitch, SwitchConfig
from controller.model import InterceptError, IpFilter, Mediation, Stream
from controller.pipeline import BUILD_DIR, Pipeline
from controller.plan import IdAllocator, Replica, plan_intercepts
from tests.test_plan import LATER, MD_V4, NOW, mediation, random_filter, topology, v4

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


def random_plan(seed: int, ids: IdAllocator | None = None):
    rng = random.Random(seed)
    meds = [mediation(c) for c in range(1, rng.randint(2, 8))]
    streams = [Stream(m.content_id, i, random_filter(rng), True) for m in meds for i in range(1, rng.randint(2, 5))]
    # Both sides for one mediation, one side overlapping another's: merge entries too.
    streams += [Stream(1, 10, v4(src="192.0.2.7/32"), True), Stream(1, 11, v4(dst="198.51.100.7/32"), True),
                Stream(2, 10, v4(src="192.0.2.0/24"), True)]
    return plan_intercepts(meds, streams, topology(), ids if ids is not None else IdAllocator(), NOW)


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
    # Clone sessions carry no P4Info id: the same bytes for both.
    assert pre_entities(EntryBuilder(tofino), plan) == pre_entities(EntryBuilder(bmv2), plan)


def pre_entities(builder: EntryBuilder, plan) -> list[bytes]:
    return sorted(w.entity.SerializeToString(deterministic=True) for w in builder.intercept_wire(plan)
                  if w.entity.HasField("packet_replication_engine_entry"))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("seed", range(8))
def test_clone_sessions_are_what_pi_makes_a_mirror_to_a_pre_group_of(arch, seed):
    tofino = load(arch)
    limit = clone_session_limit(tofino)
    ids = IdAllocator(max_session_id=limit)
    plan = random_plan(seed, ids)
    cccid_of_rid = {e.rid: e.content_id for e in plan.encaps}
    sessions = [w.entity.packet_replication_engine_entry.clone_session_entry
                for w in EntryBuilder(tofino).intercept_wire(plan)
                if w.entity.HasField("packet_replication_engine_entry")]
    assert len(sessions) == len(plan.sessions) > 1
    for s in sessions:
        assert 1 <= s.session_id <= limit, "a mirror session id the pipeline cannot carry (0 means: no copy)"
        assert s.class_of_service == 0 and s.packet_length_bytes == 0, "PI: COS unimplemented; 0: no truncation"
        nodes: dict[int, set[int]] = {}  # PI's PreMcMgr: a node per instance (its rid), ports under it
        for r in s.replicas:
            assert r.egress_port not in nodes.get(r.instance, set()), "PI refuses a duplicate replica"
            assert r.egress_port < 1 << 9, "a Tofino port id is 9 bits"
            nodes.setdefault(r.instance, set()).add(r.egress_port)
        assert all(len(ports) == 1 for ports in nodes.values()), "one copy per MD, not one per port"
        assert all(0 < rid < 1 << 16 and rid in cccid_of_rid for rid in nodes), "every rid selects an encapsulation"
        assert sorted(cccid_of_rid[rid] for rid in nodes) == sorted(ids.members(s.session_id)), \
            "the copies go to exactly the session's MDs, each with its own CCCID"


@pytest.mark.parametrize("arch, configured, limit", [("tna", None, 1023), ("t2na", None, 255),
                                                     ("tna", 1015, 1015)])  # Tofino 1's normal sessions
def test_more_md_sets_than_mirror_ids_are_refused_with_nothing_changed(arch, configured, limit):
    tofino = load(arch)
    assert clone_session_limit(tofino) == (1 << {"tna": 10, "t2na": 8}[arch]) - 1
    switch = ManagedSwitch(SwitchConfig("tof", "127.0.0.1:9559", topology(), max_clone_session_id=configured), tofino)
    # One MD per intercept (one host, a port each), one host tapped each: a session each;
    # half by source, half by destination (Tofino 1 holds 512 IPv4 filters per side).
    def tapped(c: int) -> IpFilter:
        host = f"10.{c >> 8}.{c & 255}.1/32"
        return v4(src=host) if c % 2 else v4(dst=host)

    many = {c: (Mediation(c, MD_V4, 1024 + c, timeout=LATER), [Stream(c, 1, tapped(c), True)])
            for c in range(1, limit + 2)}
    with pytest.raises(InterceptError, match=rf"out of clone session ids \(at most {limit}\)"):
        switch.stage(many, NOW)
    assert not switch.built and not switch.ids.session_ids and not switch.ids.replica_ids
    change = switch.stage({c: many[c] for c in range(1, limit + 1)}, NOW)
    assert sum(e.key[0] == "clone" for e in change.diff.inserts) == limit
    switch.rollback()


def test_a_session_id_kept_from_a_wider_pipeline_is_given_anew():
    """A switch moved from bmv2 (ids to 32767) to Tofino keeps its stored ids;
    one beyond the mirror width is replaced, not written."""
    tofino = load("tna")
    md = Replica(port=4, rid=1)
    ids = IdAllocator(replica_ids={1: 1}, session_ids={frozenset({md}): 5000})
    switch = ManagedSwitch(SwitchConfig("tof", "127.0.0.1:9559", topology()), tofino, ids=ids)
    change = switch.stage({1: (mediation(1), [Stream(1, 1, v4(src="192.0.2.7/32"), True)])}, NOW)
    sessions = [e for e in change.diff.inserts if e.key[0] == "clone"]
    assert len(sessions) == 1 and sessions[0].entity.packet_replication_engine_entry.clone_session_entry.session_id == 1
    assert ids.session_ids == {frozenset({md}): 1} and frozenset({md}) in ids.take_changes().sessions
