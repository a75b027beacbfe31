"""The incremental planner against the from-scratch planner (no switch).

After any sequence of changes (provision, replace, disable, remove, in
batches), the incremental plan must equal `plan_intercepts` over all the
intercepts with the same ids, filter attribution included; the change it
reports must turn the previous plan into the new one; a rollback must
restore plan and ids exactly; and ids freed by a change are never reused
within it.
"""

from __future__ import annotations

import random

import pytest

from controller.incremental import IncrementalPlanner
from controller.model import InterceptError, Stream
from controller.plan import IdAllocator, InterceptPlan, plan_intercepts
from tests.test_plan import (NOW, delivered, mediation, packet, random_filter, random_packet, selected, topology,
                             v4)


def reference(planner: IncrementalPlanner, intents: dict) -> InterceptPlan:
    """The from-scratch plan of the same intents, on a copy of the planner's ids."""
    ids = IdAllocator(planner.ids.replica_ids, planner.ids.session_ids)
    return plan_intercepts([m for m, _ in intents.values()], [s for _, ss in intents.values() for s in ss],
                           topology(), ids, NOW)


def facts(plan: InterceptPlan) -> set:
    """Every item of a plan, filters with the streams they count for."""
    return {(type(item).__name__, item, getattr(item, "streams", None))
            for kind in (plan.gates, plan.filters, plan.merges, plan.sessions, plan.encaps) for item in kind}


def ids_state(ids: IdAllocator) -> tuple:
    return dict(ids.replica_ids), dict(ids.session_ids), dict(ids.content_of), dict(ids.replicas_of)


def random_change(rng: random.Random, intents: dict) -> dict:
    change = {}
    for _ in range(rng.randint(1, 3)):
        cid = rng.randint(1, 7)
        if cid in intents and rng.random() < 0.3:
            change[cid] = None
        else:
            streams = [Stream(cid, i, random_filter(rng), rng.random() < 0.85) for i in range(1, rng.randint(1, 4))]
            change[cid] = (mediation(cid, port=7000 + rng.randint(0, 1)), streams)
    return change


@pytest.mark.parametrize("seed", range(40))
def test_random_changes_match_the_from_scratch_plan(seed):
    rng = random.Random(seed)
    planner = IncrementalPlanner(topology(), IdAllocator())
    intents: dict = {}
    for _ in range(25):
        before, before_ids = planner.plan(), ids_state(planner.ids)
        change = random_change(rng, intents)
        reported = planner.update(change, NOW)
        expected = facts(before)
        for item in reported.removed:
            expected.discard((type(item).__name__, item, getattr(item, "streams", None)))
        for item in reported.added:
            expected.add((type(item).__name__, item, getattr(item, "streams", None)))
        assert expected == facts(planner.plan()), "the reported change does not lead to the new plan"
        if rng.random() < 0.25:
            planner.rollback()
            assert facts(planner.plan()) == facts(before) and ids_state(planner.ids) == before_ids
            continue
        planner.commit()
        for cid, intercept in change.items():
            if intercept is None:
                intents.pop(cid, None)
            else:
                intents[cid] = intercept
        got, want = planner.plan(), reference(planner, intents)
        assert facts(got) == facts(want)
        assert set(planner.ids.replica_ids) == {e.content_id for e in got.encaps}, "unused replica ids kept"
        assert set(planner.ids.session_ids.values()) == {s.session_id for s in got.sessions}, "unused sessions kept"
    # And the plan still does what the filters say (the reference is proven so in tests/test_plan.py).
    topo, got = topology(), planner.plan()
    for _ in range(100):
        pkt = random_packet(rng)
        expected = sorted({s.content_id for _, streams in intents.values() for s in streams
                           if s.enabled and selected(s.filter, pkt, topo)})
        assert delivered(got, pkt) == expected


def test_a_wide_tap_reshapes_the_narrow_ones_and_its_removal_restores_them():
    planner = IncrementalPlanner(topology(), IdAllocator())
    narrow = {c: (mediation(c), [Stream(c, 1, v4(src=f"192.0.2.{c}/32", protocol=17), True)]) for c in range(1, 6)}
    planner.update(narrow, NOW)
    planner.commit()
    alone = planner.plan()
    assert len(alone.filters) == 5 and not any(f.priority > 1 for f in alone.filters)

    wide = (mediation(9), [Stream(9, 1, v4(src="192.0.2.0/24"), True)])
    change = planner.update({9: wide}, NOW)
    planner.commit()
    joined = planner.plan()
    # Each narrow region is now an intersection with the wide one: same region,
    # priority 2, a session copying to both; the narrow ones' old entries go.
    assert {f.priority for f in joined.filters} == {1, 2} and len(joined.filters) == 6
    assert any(f.priority == 1 for f in change.removed if hasattr(f, "priority"))
    intents = {**narrow, 9: wide}
    assert facts(joined) == facts(reference(planner, intents))
    assert delivered(joined, packet("192.0.2.3", "198.51.100.1", proto=17)) == [3, 9]
    assert delivered(joined, packet("192.0.2.3", "198.51.100.1", proto=6)) == [9]
    assert delivered(joined, packet("192.0.2.77", "198.51.100.1", proto=17)) == [9]

    planner.update({9: None}, NOW)
    planner.commit()
    assert facts(planner.plan()) == facts(reference(planner, narrow))
    assert delivered(planner.plan(), packet("192.0.2.3", "198.51.100.1", proto=17)) == [3]


def test_ids_freed_by_a_change_are_not_reused_within_it():
    planner = IncrementalPlanner(topology(), IdAllocator())
    subject = v4(src="192.0.2.10/32")
    planner.update({c: (mediation(c), [Stream(c, 1, subject, True)]) for c in (1, 2)}, NOW)
    planner.commit()
    (shared,) = planner.plan().sessions
    rid_of_2 = planner.ids.replica_ids[2]
    # One change: mediation 2 leaves the subject, 3 joins it.
    planner.update({2: None, 3: (mediation(3), [Stream(3, 1, subject, True)])}, NOW)
    (session,) = planner.plan().sessions
    assert session.session_id != shared.session_id, "a switch would see one session id mean two sets of MDs"
    assert planner.ids.replica_ids[3] != rid_of_2
    assert 2 not in planner.ids.replica_ids and shared.replicas not in planner.ids.session_ids


def test_a_refused_change_changes_nothing():
    planner = IncrementalPlanner(topology(), IdAllocator())
    planner.update({1: (mediation(1), [Stream(1, 1, v4(src="192.0.2.1/32"), True)])}, NOW)
    planner.commit()
    before, before_ids = facts(planner.plan()), ids_state(planner.ids)
    good = (mediation(2), [Stream(2, 1, v4(src="192.0.2.0/24"), True)])
    bad = (mediation(3), [Stream(3, 1, v4(src="192.0.2.1/32", interface=9), True)])
    with pytest.raises(InterceptError, match=r"stream 3\.1: no switch port has ifIndex 9"):
        planner.update({2: good, 3: bad}, NOW)
    assert facts(planner.plan()) == before and ids_state(planner.ids) == before_ids


def test_rebuild_keeps_ids_in_use_and_forgets_the_rest():
    ids = IdAllocator()
    planner = IncrementalPlanner(topology(), ids)
    taps = {c: (mediation(c), [Stream(c, 1, v4(src=f"192.0.2.{c}/32"), True)]) for c in (1, 2, 3)}
    planner.update(taps, NOW)
    planner.commit()
    kept = {c: ids.replica_ids[c] for c in (1, 3)}
    planner.rebuild([taps[1], taps[3]], NOW)
    assert ids.replica_ids == kept
    assert facts(planner.plan()) == facts(reference(planner, {1: taps[1], 3: taps[3]}))


def test_a_rebuild_that_cannot_be_planned_keeps_the_old_plan():
    planner = IncrementalPlanner(topology(), IdAllocator())
    good = {1: (mediation(1), [Stream(1, 1, v4(src="192.0.2.1/32"), True)])}
    planner.update(good, NOW)
    planner.commit()
    before, before_ids = facts(planner.plan()), ids_state(planner.ids)
    bad = (mediation(2), [Stream(2, 1, v4(src="192.0.2.2/32", vrf="blue"), True)])
    with pytest.raises(InterceptError, match="unknown VRF 'blue'"):
        planner.rebuild([good[1], bad], NOW)
    assert facts(planner.plan()) == before and ids_state(planner.ids) == before_ids
