"""One SET PDU, all or nothing.

The PDU is checked in the order of RFC 3416 section 4.2.5, varbind by
varbind (noAccess, notWritable, wrongType, wrongLength, wrongValue,
noCreation), then row by row through the RowStatus machine
(inconsistentName, inconsistentValue), then across rows and tables (the MIB's
rules), on the state the whole PDU would leave. Only then is the controller
asked (inconsistentValue if it refuses, commitFailed if a switch fails,
undoFailed if undoing that fails too), and only if it agrees are the rows
changed. Any error leaves the tables and the switches as they were.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controller.model import StreamKey
from mib_bridge import oids
from mib_bridge.bridge import Bridge, Intercept
from mib_bridge.mib import Mib, Staging, TapTables
from mib_bridge.oids import OID
from mib_bridge.rowstatus import RowStatus, check_column_write, next_state
from mib_bridge.syntax import SetError
from mib_bridge.table import Index, Table, not_writable

CREATE = (RowStatus.CREATE_AND_GO, RowStatus.CREATE_AND_WAIT)


@dataclass
class Write:
    position: int  # 0-based varbind index
    table: Table
    column: int
    index: Index
    value: Any


@dataclass
class Outcome:
    """What a SET did: nothing (error set), or these changes."""

    error: SetError | None = None
    error_oid: OID | None = None
    content_ids: set[int] = field(default_factory=set)  # intercept rows touched (for debug entries)
    activated: list[StreamKey] = field(default_factory=list)  # streams newly able to intercept
    stream_id: int = 0  # the one stream the PDU was about, if only one


class SetTransaction:
    def __init__(self, mib: Mib, tables: TapTables, bridge: Bridge, may_write: Callable[[OID], str | None]) -> None:
        """`may_write(oid)` is None if access is allowed, else the error status (noAccess, ...)."""
        self.mib, self.tables, self.bridge, self.may_write = mib, tables, bridge, may_write

    def run(self, varbinds: list[tuple[OID, Any]], actor: str) -> Outcome:
        outcome = Outcome()
        try:
            writes = [self._check_varbind(i, oid, value) for i, (oid, value) in enumerate(varbinds)]
            self._note_rows(writes, outcome)
            staging, positions = self._stage_rows(writes)
            self._check_rows(staging, positions)
            changes, previous, first = self._intercept_changes(staging, writes)
            try:
                self.bridge.apply(changes, actor)
            except SetError as error:
                error.index = first[error.content_id]
                raise
        except SetError as error:
            outcome.error = error
            if error.index is not None and error.index < len(varbinds):
                outcome.error_oid = varbinds[error.index][0]
            return outcome
        removed = [StreamKey(*index) for (table, index), row in staging.changes.items()
                   if table is self.tables.streams and row is None]
        staging.commit()
        self.bridge.forget_counters(removed)
        for content_id, want in changes.items():
            new = want.enabled if want is not None else set()
            old = previous[content_id].enabled if previous[content_id] is not None else set()
            outcome.activated += sorted(new - old, key=lambda k: k.index)
        return outcome

    # -- varbind by varbind -------------------------------------------------------

    def _check_varbind(self, position: int, oid: OID, value: Any) -> Write:
        try:
            denied = self.may_write(oid)
            if denied:
                raise SetError(denied, f"{oids.text(oid)} is not in this user's write view")
            provider = self.mib.provider(oid)
            split = provider.split(oid) if isinstance(provider, Table) else None
            if split is None or split[0] not in provider.columns or not provider.columns[split[0]].writable:
                raise not_writable(oids.text(oid))
            table, (column, index) = provider, split
            python = table.decode(column, value)
            if not table.valid_index(index):
                raise SetError("noCreation", f"{table.describe(column, index)}: no such row can ever exist")
            if index not in table.rows and not table.creatable():
                raise SetError("noCreation", f"{table.describe(column, index)}: the agent alone creates these rows")
            return Write(position, table, column, index, python)
        except SetError as error:
            error.index = position
            raise

    def _note_rows(self, writes: list[Write], outcome: Outcome) -> None:
        seen: set[tuple[Table, int, Index]] = set()
        streams = set()
        for w in writes:
            if (w.table, w.column, w.index) in seen:
                raise SetError("inconsistentValue", f"{w.table.describe(w.column, w.index)} appears twice", w.position)
            seen.add((w.table, w.column, w.index))
            if w.table in self.tables.intercept_tables:
                outcome.content_ids.add(w.index[0])
                if len(w.index) == 2:
                    streams.add(w.index[1])
        if len(streams) == 1 and len(outcome.content_ids) == 1:
            outcome.stream_id = streams.pop()

    # -- row by row -------------------------------------------------------------

    def _stage_rows(self, writes: list[Write]) -> tuple[Staging, dict[tuple[Table, Index], int]]:
        groups: dict[tuple[Table, Index], list[Write]] = {}
        for w in writes:
            groups.setdefault((w.table, w.index), []).append(w)
        staging = Staging(self.tables)
        positions = {}
        for (table, index), items in groups.items():
            status = next((w for w in items if w.column == table.status_column), None)
            position = (status or items[0]).position
            positions[(table, index)] = position
            try:
                self._stage_row(staging, table, index, items, status)
            except SetError as error:
                error.index = position if error.index is None else error.index
                raise
        return staging, positions

    @staticmethod
    def _stage_row(staging: Staging, table: Table, index: Index, items: list[Write], status: Write | None) -> None:
        before = table.rows.get(index)
        action = status.value if status is not None else None
        after = before.copy() if before is not None else (table.new_row() if action in CREATE else None)
        columns = [w for w in items if w is not status]
        if after is not None:
            for w in columns:
                after.values[w.column] = w.value
        new = next_state(before.status if before else None, action, table.missing(after) if after else [])
        if new is None:
            if before is not None:
                staging.stage(table, index, None)
            return
        for w in columns:
            changed = before is None or before.values.get(w.column) != w.value
            try:
                check_column_write(before.status if before else None, new, table.columns[w.column].name, changed,
                                   table.columns[w.column].while_active)
            except SetError as error:
                error.index = w.position
                raise
        after.status = new
        staging.stage(table, index, after)

    def _check_rows(self, staging: Staging, positions: dict[tuple[Table, Index], int]) -> None:
        for (table, index), after in list(staging.changes.items()):
            try:
                table.check_row(staging, index, table.rows.get(index), after)
            except SetError as error:
                error.index = positions[(table, index)]
                raise

    # -- intercepts -------------------------------------------------------------

    def _intercept_changes(self, staging: Staging, writes: list[Write]
                           ) -> tuple[dict[int, Intercept | None], dict[int, Intercept | None], dict[int, int]]:
        """Intercepts whose rows this PDU changes: wanted, held before, and the
        first varbind about each (where an error about it points)."""
        first: dict[int, int] = {}
        for w in writes:
            if w.table in self.tables.intercept_tables:
                first.setdefault(w.index[0], w.position)
        changes: dict[int, Intercept | None] = {}
        previous: dict[int, Intercept | None] = {}
        for content_id in sorted({index[0] for (table, index) in staging.changes
                                  if table in self.tables.intercept_tables}):
            try:
                want = self.bridge.desired(staging, content_id)
            except SetError as error:
                error.index = first[content_id]
                raise
            have = self.bridge.installed.get(content_id)
            if (want is None and have is None) or (want is not None and want.same(have)):
                continue
            changes[content_id] = want
            previous[content_id] = have
        return changes, previous, first
