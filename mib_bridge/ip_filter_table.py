"""citapStreamTable (.394.1.1.2.1): the IP filter of a stream, with the MIB's
wildcard encodings (prefix length 0, protocol -1, ports 0..65535, TOS 0/0,
flow id -1, interface 0, VRF ""). Index: (cTap2MediationContentId,
cTap2StreamIndex), the same as the stream row it belongs to.

MIB rules kept here: Interface must be given at creation (-1 and -2 are not
offered: the tap cannot follow routing or VoIP sessions); any change needs
notInService; an active row is a valid `IpFilter` (TosByte & ~Mask == 0,
port min <= max, prefix lengths and addresses of the address type, flow
label only on IPv6); the row needs its mediation; it may not be destroyed
while its stream row has InterceptEnable true.
"""

from __future__ import annotations

from typing import Any

from controller.model import PORT_MAX, InetAddressType, InterceptError, IpFilter
from mib_bridge import oids
from mib_bridge.mediation_table import ADDRESS, ADDRESS_TYPE, address_of
from mib_bridge.oids import IpStreamColumn as C
from mib_bridge.rowstatus import RowStatus
from mib_bridge.syntax import AdminString, Integer, SetError, Unsigned
from mib_bridge.table import Column, Index, Row, Table

PORT = Unsigned(0, PORT_MAX)
PREFIX_LENGTH = Unsigned(0, 128)

# (address column, length column, model field prefix)
PREFIXES = ((C.DESTINATION_ADDRESS, C.DESTINATION_LENGTH, "dst"), (C.SOURCE_ADDRESS, C.SOURCE_LENGTH, "src"))


class IpFilterTable(Table):
    name = "citapStreamTable"
    entry = oids.IP_STREAM_ENTRY
    index_ranges = ((1, 2**31 - 1), (1, 2**31 - 1))
    status_column = C.STATUS
    columns = {c.number: c for c in (
        Column(C.INTERFACE, "citapStreamInterface",
               Integer(0, 2**31 - 1, note="-1 (routed interface) and -2 (VoIP session) are not supported"),
               required=True),
        Column(C.ADDR_TYPE, "citapStreamAddrType", ADDRESS_TYPE, default=int(InetAddressType.IPV4)),
        Column(C.DESTINATION_ADDRESS, "citapStreamDestinationAddress", ADDRESS),
        Column(C.DESTINATION_LENGTH, "citapStreamDestinationLength", PREFIX_LENGTH, default=0),
        Column(C.SOURCE_ADDRESS, "citapStreamSourceAddress", ADDRESS),
        Column(C.SOURCE_LENGTH, "citapStreamSourceLength", PREFIX_LENGTH, default=0),
        Column(C.TOS_BYTE, "citapStreamTosByte", Integer(0, 255), default=0),
        Column(C.TOS_BYTE_MASK, "citapStreamTosByteMask", Integer(0, 255), default=0),
        Column(C.FLOW_ID, "citapStreamFlowId", Integer(-1, 2**20 - 1), default=-1),
        Column(C.PROTOCOL, "citapStreamProtocol", Integer(-1, 255), default=-1),
        Column(C.DEST_L4_PORT_MIN, "citapStreamDestL4PortMin", PORT, default=0),
        Column(C.DEST_L4_PORT_MAX, "citapStreamDestL4PortMax", PORT, default=PORT_MAX),
        Column(C.SOURCE_L4_PORT_MIN, "citapStreamSourceL4PortMin", PORT, default=0),
        Column(C.SOURCE_L4_PORT_MAX, "citapStreamSourceL4PortMax", PORT, default=PORT_MAX),
        Column(C.VRF, "citapStreamVRF", AdminString(), default=b""),
        Column(C.STATUS, "citapStreamStatus", Integer()),
    )}

    def cell(self, index: Index, row: Row, column: int, context: Any = None) -> Any:
        if column in (C.DESTINATION_ADDRESS, C.SOURCE_ADDRESS) and row.values.get(column) is None:
            # DEFVAL '00000000'H: the unspecified address, as long as the address type's
            width = 16 if row.values.get(C.ADDR_TYPE) == InetAddressType.IPV6 else 4
            return ADDRESS.encode(bytes(width))
        return super().cell(index, row, column, context)

    # -- model ------------------------------------------------------------------

    @staticmethod
    def model(row: Row) -> IpFilter:
        """The row as the controller's IpFilter; SetError(inconsistentValue) if it is not one."""
        v = row.values
        addr_type = InetAddressType(v[C.ADDR_TYPE])
        addresses = {}
        for address_column, length_column, side in PREFIXES:
            data = v.get(address_column)
            name = IpFilterTable.columns[address_column].name
            address = None if data is None else address_of(addr_type, data, name)
            if address is not None and int(address) == 0 and v[length_column] == 0:
                address = None  # the DEFVAL: every address
            addresses[f"{side}_address"] = address
            addresses[f"{side}_length"] = v[length_column]
        try:
            return IpFilter(
                addr_type=addr_type, interface=v[C.INTERFACE], tos_byte=v[C.TOS_BYTE], tos_mask=v[C.TOS_BYTE_MASK],
                flow_id=v[C.FLOW_ID], protocol=v[C.PROTOCOL],
                dst_port_min=v[C.DEST_L4_PORT_MIN], dst_port_max=v[C.DEST_L4_PORT_MAX],
                src_port_min=v[C.SOURCE_L4_PORT_MIN], src_port_max=v[C.SOURCE_L4_PORT_MAX],
                vrf=v[C.VRF].decode("utf-8"), **addresses,
            )
        except InterceptError as error:
            raise SetError("inconsistentValue", str(error)) from None

    @staticmethod
    def row_of(f: IpFilter) -> Row:
        row = Row({
            C.INTERFACE: int(f.interface), C.ADDR_TYPE: int(f.addr_type),
            C.DESTINATION_LENGTH: f.dst_length, C.SOURCE_LENGTH: f.src_length,
            C.TOS_BYTE: f.tos_byte, C.TOS_BYTE_MASK: f.tos_mask, C.FLOW_ID: f.flow_id, C.PROTOCOL: f.protocol,
            C.DEST_L4_PORT_MIN: f.dst_port_min, C.DEST_L4_PORT_MAX: f.dst_port_max,
            C.SOURCE_L4_PORT_MIN: f.src_port_min, C.SOURCE_L4_PORT_MAX: f.src_port_max,
            C.VRF: f.vrf.encode("utf-8"),
        }, RowStatus.ACTIVE)
        if f.dst_address is not None:
            row.values[C.DESTINATION_ADDRESS] = f.dst_address.packed
        if f.src_address is not None:
            row.values[C.SOURCE_ADDRESS] = f.src_address.packed
        return row

    # -- rules ------------------------------------------------------------------

    def check_row(self, staging: Any, index: Index, before: Row | None, after: Row | None) -> None:
        tables = staging.tables
        if after is None:
            stream = staging.row(tables.streams, index)
            if before is not None and stream is not None and tables.streams.enabled(stream):
                raise SetError("inconsistentValue", f"cTap2StreamInterceptEnable of {index[0]}.{index[1]} is true: "
                                                    "set it false (or destroy the stream) before its filter")
            return
        if before is None and staging.row(tables.mediations, index[:1]) is None:
            raise SetError("inconsistentName", f"no cTap2MediationEntry {index[0]}: create the mediation first")
        if after.status == RowStatus.ACTIVE and before != after:
            self.model(after)
