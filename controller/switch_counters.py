"""What a switch counted: per filter entry, per encapsulation, per ETS class.

The MIB's InterceptedPackets and InterceptDrops, and `p4tap ets counters`,
are read from the switch, never kept by the controller: a count the
controller made up could not show that a tap delivers nothing. These reads
are kept apart from the switch's state (controller.managed_switch), which
decides which entries to ask about and banks the counts of entries it
deletes, so that the MIB's counters never run backwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from p4protos import p4runtime_pb2 as p4r

from controller import ets
from controller.entries import ENCAP_DROPS_COUNTER, ETS_DEMOTED_COUNTER, EntryBuilder, ets_table
from controller.pipeline import Pipeline
from controller.switch import SwitchConnection
from controller.wire import EntityKey, WireEntity, from_entity

__all__ = ["READ_BATCH", "StreamCounters", "encap_drops", "ets_class_counts", "filter_counts"]

READ_BATCH = 1000  # specific entries per Read request


@dataclass(frozen=True)
class StreamCounters:
    """What the switches counted for a stream, and whether they really hold
    every filter entry it needs (`held`: read from the switch, not planned)."""

    packets: int = 0
    octets: int = 0
    drops: int = 0
    held: bool = True

    def __add__(self, other: StreamCounters) -> StreamCounters:
        return StreamCounters(self.packets + other.packets, self.octets + other.octets, self.drops + other.drops,
                              self.held and other.held)


def filter_counts(conn: SwitchConnection, believed: Mapping[EntityKey, WireEntity],
                  keys: Iterable[EntityKey]) -> dict[EntityKey, StreamCounters]:
    """Packet and byte counts of these filter entries, read entry by entry
    (those the switch is believed to hold; one missing from the answer is not there)."""
    asks = []
    for key in keys:
        held = believed.get(key)
        if held is not None:
            te = p4r.TableEntry()
            te.CopyFrom(held.entity.table_entry)
            te.counter_data.SetInParent()
            asks.append(p4r.Entity(table_entry=te))
    counts: dict[EntityKey, StreamCounters] = {}
    for start in range(0, len(asks), READ_BATCH):
        for entity in conn.read(asks[start:start + READ_BATCH]):
            data = entity.table_entry.counter_data
            counts[from_entity(entity).key] = StreamCounters(data.packet_count, data.byte_count)
    return counts


def encap_drops(conn: SwitchConnection, pipeline: Pipeline, replica_id: int) -> int:
    """Copies of one intercept (by its replica id) lost inside the intercept path:
    cTap2StreamInterceptDrops."""
    drops = conn.read_counter(pipeline.counter_id(ENCAP_DROPS_COUNTER), index=replica_id)
    return sum(c.data.packet_count for c in drops)


def ets_class_counts(conn: SwitchConnection, pipeline: Pipeline, builder: EntryBuilder,
                     cfg: ets.EtsConfig) -> dict[str, tuple[int, int]]:
    """(packets, bytes) per ETS class since the entries were installed."""
    entries = [te for f in (4, 6)
               for te in conn.read_table_entries(pipeline.table_id(ets_table(f)), with_counters=True)]
    demoted = conn.read_counter(pipeline.counter_id(ETS_DEMOTED_COUNTER))
    return builder.ets_class_counters(cfg, entries, demoted)
