"""Incremental provisioning against a real switch target (bmv2, else the softswitch).

The controller re-plans and writes only what each change touches. After
every step of a sequence of provisions, bulk provisions, replacements,
timeout updates, removals and a refused change, what the switch holds (read
back in full) must be exactly what a from-scratch plan of the stored intent
gives with the controller's ids, and what the controller believes the switch
holds must be what it holds, and the ids stored with the intent must be the
ids in use. A second controller started on the same store then finds
nothing to correct.
"""

from __future__ import annotations

import ipaddress
import random
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from p4protos import p4runtime_pb2 as p4r

from bmv2_topo.bmv2_switch import Bmv2Switch
from controller.model import Mediation, Stream
from controller.reconcile import diff
from controller.service import Controller, ProvisionError, SwitchConfig
from tests.conftest import needs_switch
from tests.test_plan import random_filter, topology, v4

pytestmark = needs_switch

MD = ipaddress.ip_address("203.0.113.10")  # routed out of port 4 in tests.test_plan.topology()


@pytest.fixture
def switch(tmp_path):
    bmv2 = Bmv2Switch(ports={}, log_file=tmp_path / "switch.log")
    bmv2.start()
    try:
        yield bmv2
    finally:
        bmv2.stop()


def make_controller(switch: Bmv2Switch, home: Path) -> Controller:
    return Controller([SwitchConfig("s1", switch.grpc_address, topology())], home / "intent.db", home / "audit.jsonl")


def tap(content_id: int, *filters, md_port: int = 7000, hours: float = 1) -> tuple[Mediation, list[Stream]]:
    mediation = Mediation(content_id, MD + content_id % 50, md_port,
                          timeout=datetime.now(timezone.utc) + timedelta(hours=hours))
    return mediation, [Stream(content_id, i, f, True) for i, f in enumerate(filters, start=1)]


def assert_in_step(c: Controller) -> None:
    """The switch holds exactly the from-scratch plan of the stored intent, and
    the controller knows it."""
    s = c.switches["s1"]
    actual = s.read_actual()
    desired = s.desired(s.plan(c.intercepts(), datetime.now(timezone.utc)))
    assert not diff(desired, actual), diff(desired, actual).summary()
    assert len(actual) == len(desired)
    assert {e.key: e.data for e in actual} == {k: e.data for k, e in s.believed.items()}
    stored = c.store.load_ids("s1")  # what a restart would plan with
    assert (stored.replica_ids, stored.session_ids) == (s.ids.replica_ids, s.ids.session_ids)


def test_a_sequence_of_changes_leaves_exactly_the_planned_state(switch, tmp_path):
    with make_controller(switch, tmp_path) as c:
        c.start()
        narrow = [tap(c_id, v4(src=f"192.0.2.{c_id}/32", protocol=17, dst_port_min=5060, dst_port_max=5061))
                  for c_id in range(1, 21)]
        c.provision_many(narrow, actor="test")
        assert_in_step(c)

        # A wide tap over the narrow ones: their regions become intersections.
        c.provision(*tap(100, v4(src="192.0.2.0/24")), actor="test")
        assert_in_step(c)
        # Both sides of one subject, and a destination tap overlapping others: merges.
        c.provision(*tap(101, v4(src="192.0.2.7/32"), v4(dst="192.0.2.7/32")), actor="test")
        c.provision(*tap(102, v4(dst="192.0.2.0/25", protocol=6)), actor="test")
        assert_in_step(c)

        # Replace a tap's filters and its MD; move another's timeout.
        c.provision(*tap(5, v4(src="192.0.2.5/32"), v4(dst="198.51.100.5/32"), md_port=7100), actor="test")
        c.update_timeout(6, datetime.now(timezone.utc) + timedelta(hours=2), actor="test")
        assert_in_step(c)

        # Two agencies on one filter share its entry; when one leaves, the entry
        # stays and only names another session; a second stream with the same
        # filter changes nothing on the switch.
        same = v4(src="198.51.100.200/32")
        c.provision_many([tap(200, same), tap(201, same)], actor="test")
        assert_in_step(c)
        assert c.remove(201, actor="test")
        assert_in_step(c)
        c.provision(*tap(200, same, same), actor="test")
        assert_in_step(c)

        # The wide tap goes: the narrow ones get their own entries back.
        assert c.remove(100, actor="test")
        assert c.remove(3, actor="test")
        assert_in_step(c)

        # A change the switch refuses (an entry planted behind the controller's
        # back collides with the new tap's gate) changes nothing, and the next
        # change goes through as if it never happened.
        s = c.switches["s1"]
        new = tap(103, v4(dst="198.51.100.0/24"))
        plan = s.plan(c.intercepts() + [(*new, ["s1"])], datetime.now(timezone.utc))
        gate = next(g for g in plan.gates if str(g.prefix) == "198.51.100.0/24")
        planted = s.builder.encode(gate).entity
        s.conn.write([p4r.Update(type=p4r.Update.INSERT, entity=planted)])
        with pytest.raises(ProvisionError):
            c.provision(*new, actor="test")
        s.conn.write([p4r.Update(type=p4r.Update.DELETE, entity=planted)])
        assert_in_step(c)
        c.provision(*new, actor="test")
        assert_in_step(c)

    with make_controller(switch, tmp_path) as again:
        again.start()  # reconciles: the state the first controller left is already right
        assert not again.reconcile("s1")
        assert_in_step(again)


def test_random_changes_stay_in_step(switch, tmp_path):
    rng = random.Random(7)
    with make_controller(switch, tmp_path) as c:
        c.start()
        live: set[int] = set()
        for step in range(30):
            content_id = rng.randint(1, 8)
            if content_id in live and rng.random() < 0.3:
                c.remove(content_id, actor="test")
                live.discard(content_id)
            elif rng.random() < 0.3:
                batch = {cid: tap(cid, *(random_filter(rng) for _ in range(rng.randint(1, 3))))
                         for cid in {rng.randint(1, 8) for _ in range(3)}}
                c.provision_many(list(batch.values()), actor="test")
                live |= set(batch)
            else:
                c.provision(*tap(content_id, *(random_filter(rng) for _ in range(rng.randint(1, 3)))), actor="test")
                live.add(content_id)
            if step % 5 == 4:
                assert_in_step(c)
        assert_in_step(c)


def test_a_restarted_switch_gets_back_exactly_the_plan_of_the_intent(switch, tmp_path):
    """Reconcile after a restart keeps the plan in hand when the intent is the
    one it was made from (bench/restore.py): after incremental changes the
    switch must still come back holding exactly the from-scratch plan."""
    back = threading.Event()
    with make_controller(switch, tmp_path) as c:
        c.on_switch_state(lambda name, up: up and back.set())
        c.start()
        c.provision_many([tap(c_id, v4(src=f"192.0.2.{c_id}/32")) for c_id in range(1, 11)], actor="test")
        c.provision(*tap(100, v4(src="192.0.2.0/28")), actor="test")  # over some: intersections
        assert c.remove(4, actor="test")
        c.provision(*tap(5, v4(dst="198.51.100.5/32"), md_port=7100), actor="test")  # replaced
        assert_in_step(c)
        back.clear()
        switch.kill()
        switch.restart()
        assert back.wait(60), "the controller did not restore the restarted switch"
        with c.lock:
            assert_in_step(c)


def test_an_intercept_expired_since_the_plan_is_taken_off_though_the_intent_is_unchanged(switch, tmp_path):
    """The store may still hold an intercept whose Timeout has passed (the
    lifetime loop has not run yet): reconcile must not keep the old plan for
    it, or the expired intercept would be put back after a restart."""
    with make_controller(switch, tmp_path) as c:
        c.start()
        c.provision_many([tap(1, v4(src="192.0.2.1/32")), tap(2, v4(src="192.0.2.2/32"), hours=0.5)], actor="test")
        s = c.switches["s1"]
        with c.lock:  # the watch and lifetime loops wait
            assert s.held_intercepts() == {1, 2}
            later = datetime.now(timezone.utc) + timedelta(hours=0.75)  # 2 has expired, 1 not
            d = s.reconcile(c.intercepts(), later)
            assert d.deletes and not d.inserts
            assert s.held_intercepts() == {1}
            assert {e.key for e in s.read_actual()} == set(s.believed)
