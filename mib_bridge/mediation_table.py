"""cTap2MediationTable (.399.1.1.2.1): where the copies of one intercept go,
and until when. Index: cTap2MediationContentId, the CCCID on the wire.

MIB rules kept here: Timeout may change while the row is active, every other
column only in notInService; the row may be neither destroyed nor set
notInService while stream (or IP filter) rows exist for it; an active row is
a valid `Mediation` whose Timeout lies in the future.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timezone
from typing import Any

from controller.model import DEFAULT_DSCP, InetAddressType, InterceptError, Mediation, Transport
from mib_bridge import oids
from mib_bridge.oids import FALSE, TRUE
from mib_bridge.oids import MediationColumn as C
from mib_bridge.rowstatus import RowStatus
from mib_bridge.syntax import DateAndTime, Integer, Octets, SetError, Unsigned, date_and_time, date_and_time_octets
from mib_bridge.table import READ_ONLY, Column, Index, Row, Table

TRUTH = Integer(allowed=frozenset({TRUE, FALSE}))
ADDRESS_TYPE = Integer(allowed=frozenset({InetAddressType.IPV4, InetAddressType.IPV6}),
                       note="only ipv4(1) and ipv6(2) addresses are supported")
ADDRESS = Octets(sizes=frozenset({4, 16}))


def address_of(address_type: int, data: bytes, what: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    want = 4 if address_type == InetAddressType.IPV4 else 16
    if len(data) != want:
        raise SetError("inconsistentValue", f"{what} has {len(data)} octets but its address type says {want}")
    return ipaddress.ip_address(data)


class MediationTable(Table):
    name = "cTap2MediationTable"
    entry = oids.MEDIATION_ENTRY
    status_column = C.STATUS
    columns = {c.number: c for c in (
        Column(C.DEST_ADDRESS_TYPE, "cTap2MediationDestAddressType", ADDRESS_TYPE, required=True),
        Column(C.DEST_ADDRESS, "cTap2MediationDestAddress", ADDRESS, required=True),
        Column(C.DEST_PORT, "cTap2MediationDestPort", Unsigned(1, 65535), required=True),
        # No DEFVAL in the MIB; 0 ("any interface, by normal IP practice") is this agent's default.
        Column(C.SRC_INTERFACE, "cTap2MediationSrcInterface", Integer(0, 2**31 - 1), default=0),
        Column(C.RTCP_PORT, "cTap2MediationRtcpPort", Unsigned(0, 65535), access=READ_ONLY),
        Column(C.DSCP, "cTap2MediationDscp", Integer(0, 63), default=DEFAULT_DSCP),
        Column(C.DATA_TYPE, "cTap2MediationDataType", Integer(0, 127), default=0),
        Column(C.RETRANSMIT_TYPE, "cTap2MediationRetransmitType", Integer(0, 127), default=0),
        Column(C.TIMEOUT, "cTap2MediationTimeout", DateAndTime(), required=True, while_active=True),
        Column(C.TRANSPORT, "cTap2MediationTransport",
               Integer(allowed=frozenset({Transport.UDP}), note="only udp(1) is supported"), required=True),
        Column(C.NOTIFICATION_ENABLE, "cTap2MediationNotificationEnable", TRUTH, default=TRUE),
        Column(C.STATUS, "cTap2MediationStatus", Integer()),
    )}

    def cell(self, index: Index, row: Row, column: int, context: Any = None) -> Any:
        if column == C.RTCP_PORT:  # only meaningful for rtpNack, which is not offered
            return self.columns[C.RTCP_PORT].syntax.encode(0)
        return super().cell(index, row, column, context)

    # -- model ------------------------------------------------------------------

    @staticmethod
    def model(content_id: int, row: Row) -> Mediation:
        """The row as the controller's Mediation; SetError(inconsistentValue) if it is not one."""
        v = row.values
        address = address_of(v[C.DEST_ADDRESS_TYPE], v[C.DEST_ADDRESS], "cTap2MediationDestAddress")
        try:
            return Mediation(
                content_id=content_id, dest_address=address, dest_port=v[C.DEST_PORT],
                src_interface=v.get(C.SRC_INTERFACE, 0), dscp=v.get(C.DSCP, DEFAULT_DSCP),
                transport=Transport(v[C.TRANSPORT]), timeout=date_and_time(v[C.TIMEOUT]),
                notification_enable=v.get(C.NOTIFICATION_ENABLE, TRUE) == TRUE,
            )
        except InterceptError as error:
            raise SetError("inconsistentValue", str(error)) from None

    @classmethod
    def row_of(cls, mediation: Mediation) -> Row:
        row = Row({
            C.DEST_ADDRESS_TYPE: int(InetAddressType.IPV4 if mediation.dest_address.version == 4
                                     else InetAddressType.IPV6),
            C.DEST_ADDRESS: mediation.dest_address.packed,
            C.DEST_PORT: mediation.dest_port,
            C.SRC_INTERFACE: mediation.src_interface,
            C.DSCP: mediation.dscp,
            C.DATA_TYPE: 0,
            C.RETRANSMIT_TYPE: 0,
            C.TRANSPORT: int(mediation.transport),
            C.NOTIFICATION_ENABLE: TRUE if mediation.notification_enable else FALSE,
        }, RowStatus.ACTIVE)
        if mediation.timeout is not None:
            row.values[C.TIMEOUT] = date_and_time_octets(mediation.timeout)
        return row

    @staticmethod
    def timeout(row: Row) -> datetime | None:
        data = row.values.get(C.TIMEOUT)
        return None if data is None else date_and_time(data)

    @staticmethod
    def notifies(row: Row | None) -> bool:
        return row is None or row.values.get(C.NOTIFICATION_ENABLE, TRUE) == TRUE

    # -- rules ------------------------------------------------------------------

    def check_row(self, staging: Any, index: Index, before: Row | None, after: Row | None) -> None:
        tables = staging.tables
        leaving = after is None or (before is not None and before.status == RowStatus.ACTIVE
                                    and after.status != RowStatus.ACTIVE)
        if before is not None and leaving:
            dependants = staging.keys_under(tables.streams, index) + staging.keys_under(tables.ip_streams, index)
            if dependants:
                what = "destroyed" if after is None else "set notInService"
                raise SetError("inconsistentValue",
                               f"mediation {index[0]} has stream rows ({', '.join(f'{c}.{s}' for c, s in sorted(set(dependants)))}):"
                               f" it cannot be {what} before they are destroyed")
        if after is not None and after.status == RowStatus.ACTIVE and (before is None or before != after):
            mediation = self.model(index[0], after)
            now = datetime.now(timezone.utc)
            if mediation.timeout <= now:
                raise SetError("inconsistentValue",
                               f"cTap2MediationTimeout {mediation.timeout.isoformat()} is not in the future")
