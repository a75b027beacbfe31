"""The reconciler's pure parts: identity, canonical comparison, ordering, undo."""

from __future__ import annotations

from p4protos import p4runtime_pb2 as p4r

from controller.reconcile import EntityUpdate, as_wire, canonical, diff, inverse, key_of, ordered_updates


def entry(table: int, value: bytes, action_param: bytes = b"\x01", priority: int = 0) -> p4r.Entity:
    te = p4r.TableEntry(table_id=table, priority=priority)
    te.match.add(field_id=1, exact=p4r.FieldMatch.Exact(value=value))
    te.action.action.action_id = 7
    te.action.action.params.add(param_id=1, value=action_param)
    return p4r.Entity(table_entry=te)


def session(sid: int, replicas: list[tuple[int, int]]) -> p4r.Entity:
    cs = p4r.CloneSessionEntry(session_id=sid)
    for port, rid in replicas:
        cs.replicas.add(egress_port=port, instance=rid)
    return p4r.Entity(packet_replication_engine_entry=p4r.PacketReplicationEngineEntry(clone_session_entry=cs))


def test_padding_and_counters_do_not_make_entries_differ():
    built = entry(5, b"\x0a")
    read_back = entry(5, b"\x00\x0a", action_param=b"\x00\x01")
    read_back.table_entry.counter_data.packet_count = 99
    assert key_of(canonical(built)) == key_of(canonical(read_back))
    assert not diff([built], [read_back])


def test_replica_order_does_not_matter_but_membership_does():
    assert not diff([session(1, [(4, 1), (5, 2)])], [session(1, [(5, 2), (4, 1)])])
    d = diff([session(1, [(4, 1), (5, 2)])], [session(1, [(4, 1)])])
    assert len(d.modifies) == 1 and not d.inserts and not d.deletes


def test_diff_finds_missing_extra_and_changed():
    want = [entry(5, b"\x01"), entry(5, b"\x02", b"\x09")]
    have = [entry(5, b"\x02", b"\x08"), entry(5, b"\x03")]
    d = diff(want, have)
    assert [e.entity.table_entry.match[0].exact.value for e in d.inserts] == [b"\x01"]
    assert [e.entity.table_entry.match[0].exact.value for e in d.modifies] == [b"\x02"]
    assert [e.entity.table_entry.match[0].exact.value for e in d.deletes] == [b"\x03"]


def test_make_before_break_order():
    # rank: sessions 1, filters 3; intersections (priority 2) before parts on insert, after on delete.
    rank = lambda e: 1 if e.key[0] == "clone" else 3  # noqa: E731
    d = diff([session(9, [(4, 1)]), entry(5, b"\x01", priority=1), entry(5, b"\x02", priority=2)],
             [session(8, [(4, 1)]), entry(5, b"\x03", priority=1), entry(5, b"\x04", priority=2)])
    kinds = [(u.type, u.entity.key) for u in ordered_updates(d, rank)]
    assert kinds[0] == (p4r.Update.INSERT, ("clone", 9))
    assert [k[1][3] for k in kinds[1:3]] == [2, 1]  # inserted: intersection first
    assert [k[1][3] for k in kinds[3:5]] == [1, 2]  # deleted: part first
    assert kinds[5] == (p4r.Update.DELETE, ("clone", 8))


def test_inverse_restores_previous_state():
    old, new = as_wire(entry(5, b"\x01", b"\x01")), as_wire(entry(5, b"\x01", b"\x02"))
    before = {old.key: old}
    assert inverse(EntityUpdate(p4r.Update.MODIFY, new), before).entity == old
    assert inverse(EntityUpdate(p4r.Update.DELETE, old), before) == EntityUpdate(p4r.Update.INSERT, old)
    assert inverse(EntityUpdate(p4r.Update.INSERT, new), before) == EntityUpdate(p4r.Update.DELETE, new)
