"""The served tree: every object provider in OID order, GET and GETNEXT over
all of them, and `Staging`, the state a SET would leave, checked before
anything is changed.
"""

from __future__ import annotations

import bisect
from typing import Any, Protocol

from mib_bridge import oids
from mib_bridge.debug_table import DebugTable
from mib_bridge.ip_filter_table import IpFilterTable
from mib_bridge.mediation_table import MediationTable
from mib_bridge.oids import OID
from mib_bridge.stream_table import StreamTable
from mib_bridge.table import NO_SUCH_OBJECT, Index, Row, Table


class Provider(Protocol):
    root: OID

    def get(self, oid: OID, context: Any = None) -> Any: ...

    def next(self, oid: OID, context: Any = None) -> tuple[OID, Any] | None: ...


class TapTables:
    """The agent's rows of both MIBs (volatile, as the MIB says)."""

    def __init__(self, debug_age_minutes: int, debug_max_entries: int) -> None:
        self.mediations = MediationTable()
        self.streams = StreamTable()
        self.ip_streams = IpFilterTable()
        self.debug = DebugTable(debug_age_minutes, debug_max_entries)

    @property
    def intercept_tables(self) -> tuple[Table, ...]:
        return self.mediations, self.streams, self.ip_streams

    def drop(self, content_id: int) -> None:
        """Remove a mediation and every stream and filter row under it."""
        for table in self.intercept_tables:
            for index in table.keys_under((content_id,)):
                table.remove(index)


class Mib:
    def __init__(self, providers: list[Provider]) -> None:
        self.providers = sorted(providers, key=lambda p: p.root)
        self._roots = [p.root for p in self.providers]
        for a, b in zip(self._roots, self._roots[1:]):
            if oids.within(b, a):
                raise ValueError(f"providers overlap: {oids.text(a)} and {oids.text(b)}")

    def provider(self, oid: OID) -> Provider | None:
        """The provider whose subtree holds `oid`: roots do not overlap, so it
        can only be the last one at or before `oid` in OID order."""
        i = bisect.bisect_right(self._roots, oid) - 1
        return self.providers[i] if i >= 0 and oids.within(oid, self._roots[i]) else None

    def get(self, oid: OID, context: Any = None) -> Any:
        p = self.provider(oid)
        return NO_SUCH_OBJECT if p is None else p.get(oid, context)

    def next(self, oid: OID, context: Any = None) -> tuple[OID, Any] | None:
        """The first served (OID, value) after `oid`."""
        for p in self.providers:
            if oid < oids.after_subtree(p.root):
                found = p.next(oid, context)
                if found is not None:
                    return found
        return None


class Staging:
    """The rows a SET would leave, over the live tables; nothing is changed
    until `commit`."""

    def __init__(self, tables: TapTables) -> None:
        self.tables = tables
        self.changes: dict[tuple[Table, Index], Row | None] = {}

    def row(self, table: Table, index: Index) -> Row | None:
        key = (table, index)
        return self.changes[key] if key in self.changes else table.rows.get(index)

    def stage(self, table: Table, index: Index, row: Row | None) -> None:
        self.changes[(table, index)] = row

    def keys_under(self, table: Table, prefix: Index) -> list[Index]:
        keys = set(table.keys_under(prefix))
        for (t, index), row in self.changes.items():
            if t is table and index[: len(prefix)] == prefix:
                (keys.add if row is not None else keys.discard)(index)
        return sorted(keys)

    def commit(self) -> None:
        for (table, index), row in self.changes.items():
            if row is None:
                table.remove(index)
            else:
                table.put(index, row)
        self.changes.clear()
