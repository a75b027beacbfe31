"""Indirect counters (``CounterEntry``): writes and reads, as PI's DeviceMgr does them."""

from __future__ import annotations

from p4protos import p4info_pb2
from p4protos import p4runtime_pb2 as p4v1

from ..externs import CounterArray
from .base import C, DeviceBase, _cells, _err


class Counters(DeviceBase):
    """CounterEntry writes and reads; the unit merge direct counters share."""

    def _counter_write(self, utype: int, ce: p4v1.CounterEntry) -> None:
        self._check_cell_write(ce.counter_id, ce, "counter")
        self._check_update_type(utype)
        if utype == p4v1.Update.INSERT:
            raise _err(C.INVALID_ARGUMENT, "INSERT update type not supported for counters")
        arr: CounterArray = self.index.counters[ce.counter_id]
        i = ce.index.index
        if i >= arr.size:
            raise _err(C.UNKNOWN, "Error when writing to counter")
        if utype == p4v1.Update.MODIFY:
            unit = self.index.counter_units[ce.counter_id]
            pk, by = self._counter_values(unit, ce.data, arr.packets[i], arr.bytes[i])
            arr.packets[i], arr.bytes[i] = pk, by
        else:
            arr.packets[i] = arr.bytes[i] = 0

    @staticmethod
    def _counter_values(unit: int, data: p4v1.CounterData, cur_pk: int, cur_by: int) -> tuple[int, int]:
        """PI writes only the units the counter has; bmv2 merges the others."""
        U = p4info_pb2.CounterSpec
        if unit == U.BYTES:
            return cur_pk, data.byte_count
        if unit == U.PACKETS:
            return data.packet_count, cur_by
        return data.packet_count, data.byte_count

    def _counter_read(self, ce: p4v1.CounterEntry, out: list) -> None:
        for cid in self._read_ids(ce.counter_id, "counter", self.index.counter_order):
            arr: CounterArray = self.index.counters[cid]
            for i in _cells(ce, arr.size, "Error when reading counter from target"):
                e = p4v1.CounterEntry(counter_id=cid)
                e.index.index = i
                e.data.packet_count = arr.packets[i]
                e.data.byte_count = arr.bytes[i]
                out.append(p4v1.Entity(counter_entry=e))
