"""Desired switch state versus what the switch really holds: diff and order.

Entities are compared by their P4Runtime identity (table, match, priority;
clone session id; multicast group id) and their canonical serialized form
(controller.wire), so an entry read back from the switch compares equal to
the one built by the controller whatever padding the target used.

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

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from p4protos import p4runtime_pb2 as p4r

from controller import wire
from controller.wire import EntityKey, WireEntity, canonical, from_entity, key_of

__all__ = ["Diff", "EntityKey", "EntityUpdate", "as_wire", "canonical", "diff", "inverse", "key_of",
           "ordered_updates"]


def as_wire(entity: WireEntity | p4r.Entity) -> WireEntity:
    return entity if isinstance(entity, WireEntity) else from_entity(entity)


@dataclass(frozen=True)
class EntityUpdate:
    """One P4Runtime update: p4r.Update.INSERT, MODIFY or DELETE of an entity."""

    type: int
    entity: WireEntity

    def encode(self) -> bytes:
        return wire.update(self.type, self.entity)


@dataclass
class Diff:
    inserts: list[WireEntity] = field(default_factory=list)
    modifies: list[WireEntity] = field(default_factory=list)
    deletes: list[WireEntity] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.inserts or self.modifies or self.deletes)

    def summary(self) -> str:
        return f"{len(self.inserts)} to insert, {len(self.modifies)} to modify, {len(self.deletes)} to delete"


def diff(desired: Iterable[WireEntity | p4r.Entity], actual: Iterable[WireEntity | p4r.Entity]) -> Diff:
    """What turns `actual` into `desired`. Protobuf entities are canonicalised first."""
    want = {e.key: e for e in map(as_wire, desired)}
    have = {e.key: e for e in map(as_wire, actual)}
    result = Diff()
    for key, entity in want.items():
        if key not in have:
            result.inserts.append(entity)
        elif have[key].data != entity.data:
            result.modifies.append(entity)
    result.deletes = [e for k, e in have.items() if k not in want]
    return result


def ordered_updates(d: Diff, rank: Callable[[WireEntity], int]) -> list[EntityUpdate]:
    """Updates in make-before-break order. `rank` orders entity kinds from
    "pointed at" (low) to "points" (high); priority orders filters."""

    def insert_order(e: WireEntity) -> tuple[int, int]:
        return rank(e), -e.priority

    def delete_order(e: WireEntity) -> tuple[int, int]:
        return -rank(e), e.priority

    updates = [EntityUpdate(p4r.Update.INSERT, e) for e in sorted(d.inserts, key=insert_order)]
    updates += [EntityUpdate(p4r.Update.MODIFY, e) for e in sorted(d.modifies, key=insert_order)]
    updates += [EntityUpdate(p4r.Update.DELETE, e) for e in sorted(d.deletes, key=delete_order)]
    return updates


def inverse(update: EntityUpdate, before: Mapping[EntityKey, WireEntity | None]) -> EntityUpdate:
    """The update that undoes `update`, given the state before it."""
    if update.type == p4r.Update.INSERT:
        return EntityUpdate(p4r.Update.DELETE, update.entity)
    previous = before[update.entity.key]
    assert previous is not None, "a modified or deleted entity existed before"
    if update.type == p4r.Update.DELETE:
        return EntityUpdate(p4r.Update.INSERT, previous)
    return EntityUpdate(p4r.Update.MODIFY, previous)
