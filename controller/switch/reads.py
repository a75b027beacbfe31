"""Read RPCs: any entities, and the entity kinds the controller reads back."""

from __future__ import annotations

from typing import Sequence

import grpc
from p4protos import p4runtime_pb2

from .session import Session


class Reads(Session):
    """Read and its shorthands (over :class:`Session`)."""

    def read(self, entities: Sequence[p4runtime_pb2.Entity]) -> list[p4runtime_pb2.Entity]:
        """One Read RPC; returns all entities from the streamed replies.

        Zero-valued ids are wildcards (e.g. ``table_id=0`` reads all tables).
        """
        stub = self._require_stub("Read")
        req = p4runtime_pb2.ReadRequest(device_id=self.device_id)
        req.entities.extend(entities)
        out: list[p4runtime_pb2.Entity] = []
        try:
            with self._rpc_lock:  # the whole streamed reply: the next RPC waits for its end
                for resp in stub.Read(req, timeout=self.rpc_timeout):
                    out.extend(resp.entities)
        except grpc.RpcError as e:
            raise self._rpc_error("Read", e) from None
        return out

    def read_table_entries(self, table_id: int = 0, with_counters: bool = False) -> list[p4runtime_pb2.TableEntry]:
        """All entries of one table (``table_id=0``: of all tables).

        ``with_counters`` asks for direct-counter data with each entry (one
        round trip instead of a read per entry).
        """
        ent = p4runtime_pb2.Entity()
        ent.table_entry.table_id = table_id
        if with_counters:
            ent.table_entry.counter_data.SetInParent()
        return [e.table_entry for e in self.read([ent]) if e.HasField("table_entry")]

    def read_clone_sessions(self, session_id: int = 0) -> list[p4runtime_pb2.CloneSessionEntry]:
        """Clone sessions (``session_id=0``: all)."""
        return self._read_pre("clone_session_entry", "session_id", session_id)

    def read_multicast_groups(self, group_id: int = 0) -> list[p4runtime_pb2.MulticastGroupEntry]:
        """Multicast groups (``group_id=0``: all)."""
        return self._read_pre("multicast_group_entry", "multicast_group_id", group_id)

    def _read_pre(self, kind: str, id_field: str, value: int) -> list:
        """Packet replication entries of one ``kind`` whose ``id_field`` is ``value`` (0: all of them)."""
        ent = p4runtime_pb2.Entity()
        setattr(getattr(ent.packet_replication_engine_entry, kind), id_field, value)
        return [
            getattr(e.packet_replication_engine_entry, kind)
            for e in self.read([ent])
            if e.packet_replication_engine_entry.HasField(kind)
        ]

    def read_counter(self, counter_id: int, index: int | None = None) -> list[p4runtime_pb2.CounterEntry]:
        """Cells of an indirect counter (``index=None``: all cells)."""
        ent = p4runtime_pb2.Entity()
        ent.counter_entry.counter_id = counter_id
        if index is not None:
            ent.counter_entry.index.index = index
        return [e.counter_entry for e in self.read([ent]) if e.HasField("counter_entry")]
