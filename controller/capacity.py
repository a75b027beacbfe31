"""What a switch can hold, and whether a change still fits.

A batch the switch cannot hold must be refused before its intent is
committed: once committed, a crash before the switch says no would leave
intent that every later start-up has to carry (issue 13). The limits:

* each table's size, from P4Info (`size`; bmv2 and the softswitch refuse an
  insert into a full table);
* the packet replication engine's groups: every clone session takes one
  multicast group of the PRE (bmv2's hidden group 32768 + id), beside the
  real multicast groups. P4Runtime does not tell this limit (bmv2's
  --max-mc-groups), so it comes from the switch's config
  (`replication_groups`); unset, the switch's own refusal tells: when it
  refuses a clone session or multicast group while holding N groups, N is
  taken as its limit until the controller connects to it again.

Clone session ids are bounded apart from these counts: by the width of the
pipeline's mirror id (10 bits on Tofino, 8 on Tofino 2, from P4Info:
entries.clone_session_limit), which the id allocator enforces while
planning, so a plan needing more is refused before anything is encoded.

Counts follow what the switch holds (`ManagedSwitch.believed`) and are
updated by every write, so a check costs O(the change), not O(all taps).
"""

from __future__ import annotations

import logging
from collections.abc import Container, Iterable
from dataclasses import dataclass, field

from p4protos import p4runtime_pb2 as p4r

from controller.model import InterceptError
from controller.pipeline import Pipeline
from controller.reconcile import EntityUpdate
from controller.wire import EntityKey, WireEntity

__all__ = ["REPLICATION", "Capacity", "slot_of"]

log = logging.getLogger("p4tap.controller")

REPLICATION = "replication groups"  # the PRE slot clone sessions and multicast groups share


def slot_of(entity: WireEntity) -> int | str:
    """The resource an entity takes: its table id, or the PRE's groups."""
    return entity.key[1] if entity.key[0] == "table" else REPLICATION


@dataclass
class Capacity:
    """Per resource: its limit (None: unknown) and how much of it is used."""

    limits: dict[int | str, int]
    names: dict[int | str, str]
    used: dict[int | str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, pipeline: Pipeline, replication_groups: int | None) -> Capacity:
        limits: dict[int | str, int] = {t.preamble.id: t.size for t in pipeline.p4info.tables if t.size > 0}
        names: dict[int | str, str] = {t.preamble.id: f"entries in {t.preamble.name}" for t in pipeline.p4info.tables}
        if replication_groups is not None:
            limits[REPLICATION] = replication_groups
        names[REPLICATION] = "replication groups (clone sessions and multicast groups)"
        return cls(limits, names)

    def learn(self, slot: int | str, limit: int) -> None:
        """The switch refused `slot` beyond `limit`: hold it to that from now on."""
        if limit < self.limits.get(slot, limit + 1):
            self.limits[slot] = limit
            self.names[slot] = self.names[slot].split(" (")[0] + " (as the switch's refusal showed)"

    def learn_from_refusal(self, switch: str, refused: Iterable[EntityUpdate], applied: Iterable[EntityUpdate],
                           believed: Container[EntityKey]) -> None:
        """A refused clone session or multicast group insert shows how many
        groups the switch's replication engine holds: as many as it held then
        (`used`, as `believed`, plus what the batch had applied before it)."""
        if not any(u.type == p4r.Update.INSERT and slot_of(u.entity) == REPLICATION for u in refused):
            return
        held = self.used.get(REPLICATION, 0)
        for u in applied:
            if slot_of(u.entity) == REPLICATION and u.type != p4r.Update.MODIFY:
                known = u.entity.key in believed
                held += 1 if u.type == p4r.Update.INSERT and not known else -1 if known else 0
        log.warning("%s: the switch refused a replication group while holding %d: taken as its limit",
                    switch, held)
        self.learn(REPLICATION, held)

    def recount(self, held: Iterable[WireEntity]) -> None:
        """Start over from what the switch holds (after a full read)."""
        self.used = {}
        for entity in held:
            slot = slot_of(entity)
            self.used[slot] = self.used.get(slot, 0) + 1

    def check(self, switch: str, inserts: Iterable[WireEntity], deletes: Iterable[WireEntity],
              what: str = "the change") -> None:
        """Raise InterceptError, naming the resource, if holding `inserts`
        after `deletes` would exceed a known limit."""
        delta: dict[int | str, int] = {}
        for entity in inserts:
            delta[slot_of(entity)] = delta.get(slot_of(entity), 0) + 1
        for entity in deletes:
            delta[slot_of(entity)] = delta.get(slot_of(entity), 0) - 1
        for slot, more in delta.items():
            limit = self.limits.get(slot)
            need = self.used.get(slot, 0) + more
            if more > 0 and limit is not None and need > limit:
                raise InterceptError(f"{what} does not fit switch {switch}: it needs {need} {self.names[slot]}, "
                                     f"the switch holds {limit}")
