"""A conceptual table: its columns, its rows in index order, and GET/GETNEXT
over them. The tables of this package subclass it with their columns and
their own rules; row state changes go through `rowstatus` and `transaction`.

Rows hold Python values per column number; a column without a value (in a
notReady row) reads as noSuchInstance and a walk passes it by, as RFC 2579
asks.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pysnmp.proto import rfc1905

from mib_bridge import oids
from mib_bridge.oids import OID
from mib_bridge.rowstatus import ROW_STATUS, RowStatus
from mib_bridge.syntax import SetError, Syntax

Index = tuple[int, ...]

READ_ONLY, READ_WRITE, READ_CREATE = "read-only", "read-write", "read-create"
NO_SUCH_OBJECT, NO_SUCH_INSTANCE = rfc1905.noSuchObject, rfc1905.noSuchInstance


@dataclass(frozen=True)
class Column:
    number: int
    name: str
    syntax: Syntax
    access: str = READ_CREATE
    default: Any = None  # the MIB's DEFVAL, as the Python value
    required: bool = False  # read-create without DEFVAL: the row is notReady until it is set
    while_active: bool = False  # may change while the row is active

    @property
    def writable(self) -> bool:
        return self.access in (READ_WRITE, READ_CREATE)


@dataclass
class Row:
    values: dict[int, Any] = field(default_factory=dict)
    status: RowStatus | None = None

    def copy(self) -> Row:
        return Row(dict(self.values), self.status)


class Table:
    """Rows indexed by a fixed number of integers, each within its range."""

    name = "table"
    entry: OID = ()
    columns: dict[int, Column] = {}
    index_ranges: tuple[tuple[int, int], ...] = ((1, 2**31 - 1),)
    status_column: int | None = None

    def __init__(self) -> None:
        self.rows: dict[Index, Row] = {}
        self._keys: list[Index] = []
        self._readable = sorted(n for n, c in self.columns.items())

    # -- storage ----------------------------------------------------------------

    def put(self, index: Index, row: Row) -> None:
        if index not in self.rows:
            bisect.insort(self._keys, index)
        self.rows[index] = row

    def remove(self, index: Index) -> Row | None:
        row = self.rows.pop(index, None)
        if row is not None:
            del self._keys[bisect.bisect_left(self._keys, index)]
        return row

    def keys_under(self, prefix: Index) -> list[Index]:
        """Indexes starting with `prefix`, in order."""
        start = bisect.bisect_left(self._keys, prefix)
        out = []
        for key in self._keys[start:]:
            if key[: len(prefix)] != prefix:
                break
            out.append(key)
        return out

    def __len__(self) -> int:
        return len(self.rows)

    # -- OIDs -------------------------------------------------------------------

    @property
    def root(self) -> OID:
        return self.entry

    def valid_index(self, index: Index) -> bool:
        return len(index) == len(self.index_ranges) and all(
            low <= i <= high for i, (low, high) in zip(index, self.index_ranges))

    def split(self, oid: OID) -> tuple[int, Index] | None:
        """entry.column.index -> (column, index); None if `oid` is not below the entry."""
        if len(oid) <= len(self.entry) or not oids.within(oid, self.entry):
            return None
        rest = oid[len(self.entry):]
        return rest[0], tuple(rest[1:])

    def instance(self, column: int, index: Index) -> OID:
        return self.entry + (column,) + index

    def describe(self, column: int, index: Index) -> str:
        c = self.columns.get(column)
        return f"{c.name if c else f'{self.name} column {column}'}.{'.'.join(map(str, index))}"

    # -- values -----------------------------------------------------------------

    def cell(self, index: Index, row: Row, column: int, context: Any = None) -> Any:
        """The wire value of one cell, or None if it has none."""
        if column == self.status_column:
            return ROW_STATUS.encode(int(row.status)) if row.status is not None else None
        value = row.values.get(column)
        return None if value is None else self.columns[column].syntax.encode(value)

    def get(self, oid: OID, context: Any = None) -> Any:
        split = self.split(oid)
        if split is None or split[0] not in self.columns:
            return NO_SUCH_OBJECT
        column, index = split
        row = self.rows.get(index)
        value = None if row is None else self.cell(index, row, column, context)
        return NO_SUCH_INSTANCE if value is None else value

    def next(self, oid: OID, context: Any = None) -> tuple[OID, Any] | None:
        """The first (OID, value) of this table after `oid`, in OID order."""
        if oid < self.entry:
            column, after = 0, None
        elif oids.within(oid, self.entry):
            column, after = self.split(oid) or (0, None)
        else:
            return None
        for number in self._readable:
            if number < column:
                continue
            start = 0 if (number > column or after is None) else bisect.bisect_right(self._keys, after)
            for index in self._keys[start:]:
                value = self.cell(index, self.rows[index], number, context)
                if value is not None:
                    return self.instance(number, index), value
        return None

    def iter_rows(self) -> Iterator[tuple[Index, Row]]:
        for key in list(self._keys):
            yield key, self.rows[key]

    # -- SET hooks (tables with rows a manager creates override these) -------------

    def decode(self, column: int, value: Any) -> Any:
        """Type, length and range check of one value (wrongType/Length/Value)."""
        if column == self.status_column:
            return RowStatus(ROW_STATUS.decode(value))
        return self.columns[column].syntax.decode(value)

    def missing(self, row: Row) -> list[str]:
        """Required columns without a value."""
        return [c.name for n, c in sorted(self.columns.items()) if c.required and row.values.get(n) is None]

    def new_row(self) -> Row:
        """A fresh row with the MIB's DEFVALs."""
        return Row({n: c.default for n, c in self.columns.items() if c.default is not None})

    def creatable(self) -> bool:
        return self.status_column is not None and self.columns[self.status_column].access == READ_CREATE

    def check_row(self, staging: Any, index: Index, before: Row | None, after: Row | None) -> None:
        """Rules across columns and tables, on the state this PDU would leave."""


def not_writable(what: str) -> SetError:
    return SetError("notWritable", f"{what} is not writable")
