"""Desired switch state versus what the switch really holds: diff and order.

Entities are compared by their P4Runtime identity (table, match, priority;
clone session id; multicast group id) after canonicalising every bytestring,
so an entry read back from the switch compares equal to the one built by the
controller whatever padding the target used.

Updates are ordered make-before-break so that no packet finds a rule
pointing at nothing, and so that while an intercept is added or removed the
remaining ones keep delivering:

* inserts first, what is pointed at before what points (encapsulations,
  clone sessions, merges, filters, gates) and, among filters, intersections
  before their parts (an intersection alone is already right for its packets);
* then modifications;
* deletes last, in the reverse order, parts before intersections.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from p4.v1 import p4runtime_pb2 as p4r
from p4runtime_sh.bytes_utils import to_canonical_bytes

EntityKey = tuple


def _canon(data: bytes) -> bytes:
    return to_canonical_bytes(data)


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


@dataclass
class Diff:
    inserts: list[p4r.Entity] = field(default_factory=list)
    modifies: list[p4r.Entity] = field(default_factory=list)
    deletes: list[p4r.Entity] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.inserts or self.modifies or self.deletes)

    def summary(self) -> str:
        return f"{len(self.inserts)} to insert, {len(self.modifies)} to modify, {len(self.deletes)} to delete"


def diff(desired: Iterable[p4r.Entity], actual: Iterable[p4r.Entity]) -> Diff:
    """What turns `actual` into `desired`. Both may come in any form; they are canonicalised."""
    want = {key_of(e): e for e in map(canonical, desired)}
    have = {key_of(e): e for e in map(canonical, actual)}
    result = Diff()
    for key, entity in want.items():
        if key not in have:
            result.inserts.append(entity)
        elif have[key].SerializeToString(deterministic=True) != entity.SerializeToString(deterministic=True):
            result.modifies.append(entity)
    result.deletes = [e for k, e in have.items() if k not in want]
    return result


def ordered_updates(d: Diff, rank: Callable[[p4r.Entity], int]) -> list[p4r.Update]:
    """Updates in make-before-break order. `rank` orders entity kinds from
    "pointed at" (low) to "points" (high); priority orders filters."""

    def insert_order(e: p4r.Entity) -> tuple[int, int]:
        return rank(e), -e.table_entry.priority if e.HasField("table_entry") else 0

    def delete_order(e: p4r.Entity) -> tuple[int, int]:
        return -rank(e), e.table_entry.priority if e.HasField("table_entry") else 0

    updates = [p4r.Update(type=p4r.Update.INSERT, entity=e) for e in sorted(d.inserts, key=insert_order)]
    updates += [p4r.Update(type=p4r.Update.MODIFY, entity=e) for e in sorted(d.modifies, key=insert_order)]
    updates += [p4r.Update(type=p4r.Update.DELETE, entity=e) for e in sorted(d.deletes, key=delete_order)]
    return updates


def inverse(update: p4r.Update, before: dict[EntityKey, p4r.Entity]) -> p4r.Update:
    """The update that undoes `update`, given the state before it."""
    entity = update.entity
    if update.type == p4r.Update.INSERT:
        return p4r.Update(type=p4r.Update.DELETE, entity=entity)
    previous = before[key_of(entity)]
    if update.type == p4r.Update.DELETE:
        return p4r.Update(type=p4r.Update.INSERT, entity=previous)
    return p4r.Update(type=p4r.Update.MODIFY, entity=previous)
