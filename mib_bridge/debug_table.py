"""cTap2DebugTable (.399.1.3.3.1) with cTap2DebugAge and cTap2DebugMaxEntries:
what went wrong with a mediation or a stream, for the mediation device to
read. The agent adds a row for every refused SET on an intercept row and for
every fault (a switch that refused, an undo that failed); a row lives
`age_minutes`, at most `max_entries` rows are kept (the oldest goes first),
and a manager may only destroy a row.
"""

from __future__ import annotations

import time
from typing import Any

from mib_bridge import oids
from mib_bridge.oids import DebugColumn as C
from mib_bridge.rowstatus import ROW_STATUS, RowStatus
from mib_bridge.syntax import AdminString, Integer, SetError, Unsigned
from mib_bridge.table import READ_ONLY, READ_WRITE, Column, Index, Row, Table

MAX_MESSAGE = 255


class DebugTable(Table):
    name = "cTap2DebugTable"
    entry = oids.DEBUG_ENTRY
    status_column = C.STATUS
    columns = {c.number: c for c in (
        Column(C.MEDIATION_ID, "cTap2DebugMediationId", Unsigned(), access=READ_ONLY),
        Column(C.STREAM_ID, "cTap2DebugStreamId", Unsigned(), access=READ_ONLY),
        Column(C.MESSAGE, "cTap2DebugMessage", AdminString(), access=READ_ONLY),
        Column(C.STATUS, "cTap2DebugStatus", Integer(), access=READ_WRITE),
    )}

    def __init__(self, age_minutes: int = 1440, max_entries: int = 256, clock=time.monotonic) -> None:
        super().__init__()
        self.age_minutes = age_minutes
        self.max_entries = max_entries
        self._clock = clock
        self._born: dict[Index, float] = {}
        self._next = 1

    def add(self, mediation_id: int, stream_id: int, message: str) -> Index:
        """Record a message; returns the new row's index."""
        self.expire()
        while len(self) >= self.max_entries:
            oldest = min(self._born, key=self._born.__getitem__)
            self.remove(oldest)
        index = (self._next,)
        while index in self.rows:  # after a wrap-around
            index = (index[0] % (2**31 - 1) + 1,)
        self._next = index[0] % (2**31 - 1) + 1
        text = message.encode("utf-8")[:MAX_MESSAGE].decode("utf-8", "ignore").encode("utf-8")
        self.put(index, Row({C.MEDIATION_ID: mediation_id, C.STREAM_ID: stream_id, C.MESSAGE: text},
                            RowStatus.ACTIVE))
        self._born[index] = self._clock()
        return index

    def expire(self) -> None:
        limit = self._clock() - self.age_minutes * 60
        for index in [i for i, born in self._born.items() if born < limit]:
            self.remove(index)

    def remove(self, index: Index) -> Row | None:
        self._born.pop(index, None)
        return super().remove(index)

    # -- SET: the manager may only destroy --------------------------------------

    def decode(self, column: int, value: Any) -> Any:
        action = RowStatus(ROW_STATUS.decode(value))
        if action != RowStatus.DESTROY:
            raise SetError("wrongValue", "cTap2DebugStatus may only be set to destroy(6)")
        return action

    def creatable(self) -> bool:
        return False
