"""cTap2StreamTable (.399.1.2.1.1): one intercepted stream of a mediation,
switched on and off by InterceptEnable, with its counters as the switch
counts them. Index: (cTap2MediationContentId, cTap2StreamIndex).

MIB rules kept here: a stream row needs its mediation row; only ip(1)
streams (their filter is the citapStreamTable row of the same index);
InterceptEnable may change while active and may be true only while the
filter row exists; the type needs notInService to change.

The status shows the switch, not the wish: an active row whose filter
entries the switch does not hold (deleted behind the controller's back, or
the switch unreachable) reads notInService(2), RFC 2579's "exists in the
agent, but is unavailable for use by the managed device", until the
controller has put them back.
"""

from __future__ import annotations

from typing import Any

from mib_bridge import oids
from mib_bridge.mediation_table import TRUTH
from mib_bridge.oids import FALSE, STREAM_TYPE_IP, TRUE
from mib_bridge.oids import StreamColumn as C
from mib_bridge.rowstatus import ROW_STATUS, RowStatus
from mib_bridge.syntax import Counter32, Counter64, Integer, SetError
from mib_bridge.table import READ_ONLY, Column, Index, Row, Table

COUNTER_COLUMNS = {
    C.INTERCEPTED_PACKETS: ("packets", Counter32()),
    C.INTERCEPT_DROPS: ("drops", Counter32()),
    C.INTERCEPTED_HC_PACKETS: ("packets", Counter64()),
    C.INTERCEPT_HC_DROPS: ("drops", Counter64()),
}


class StreamTable(Table):
    name = "cTap2StreamTable"
    entry = oids.STREAM_ENTRY
    index_ranges = ((1, 2**31 - 1), (1, 2**31 - 1))
    status_column = C.STATUS
    columns = {c.number: c for c in (
        Column(C.TYPE, "cTap2StreamType",
               Integer(allowed=frozenset({STREAM_TYPE_IP}), note="only ip(1) streams are supported"), required=True),
        Column(C.INTERCEPT_ENABLE, "cTap2StreamInterceptEnable", TRUTH, default=FALSE, while_active=True),
        Column(C.INTERCEPTED_PACKETS, "cTap2StreamInterceptedPackets", Counter32(), access=READ_ONLY),
        Column(C.INTERCEPT_DROPS, "cTap2StreamInterceptDrops", Counter32(), access=READ_ONLY),
        Column(C.STATUS, "cTap2StreamStatus", Integer()),
        Column(C.INTERCEPTED_HC_PACKETS, "cTap2StreamInterceptedHCPackets", Counter64(), access=READ_ONLY),
        Column(C.INTERCEPT_HC_DROPS, "cTap2StreamInterceptHCDrops", Counter64(), access=READ_ONLY),
    )}

    def cell(self, index: Index, row: Row, column: int, context: Any = None) -> Any:
        if column in COUNTER_COLUMNS:
            field, syntax = COUNTER_COLUMNS[column]
            counts = context.counters(index) if context is not None else None
            return syntax.encode(getattr(counts, field) if counts is not None else 0)
        if column == C.STATUS and row.status == RowStatus.ACTIVE and context is not None and not context.held(index):
            return ROW_STATUS.encode(int(RowStatus.NOT_IN_SERVICE))
        return super().cell(index, row, column, context)

    @staticmethod
    def enabled(row: Row) -> bool:
        return row.values.get(C.INTERCEPT_ENABLE) == TRUE

    @staticmethod
    def row_of(enabled: bool) -> Row:
        return Row({C.TYPE: STREAM_TYPE_IP, C.INTERCEPT_ENABLE: TRUE if enabled else FALSE}, RowStatus.ACTIVE)

    def check_row(self, staging: Any, index: Index, before: Row | None, after: Row | None) -> None:
        if after is None:
            return
        tables = staging.tables
        if before is None and staging.row(tables.mediations, index[:1]) is None:
            raise SetError("inconsistentName", f"no cTap2MediationEntry {index[0]}: create the mediation first")
        if self.enabled(after) and staging.row(tables.ip_streams, index) is None:
            raise SetError("inconsistentValue", f"cTap2StreamInterceptEnable may be true only once "
                                                f"citapStreamEntry {index[0]}.{index[1]} exists")
