"""Direct counters and meters (``DirectCounterEntry``, ``DirectMeterEntry``).

Both are addressed by a table entry, so this sits above :mod:`.table_entries`.
"""

from __future__ import annotations

from p4protos import p4runtime_pb2 as p4v1

from ..p4info import TableInfo
from ..tables import Entry
from .base import C, _err
from .table_entries import TableEntries


class DirectResources(TableEntries):
    """Direct counter and meter writes and reads (over :class:`TableEntries`)."""

    def _direct_counter_write(self, utype: int, dce: p4v1.DirectCounterEntry) -> None:
        if not dce.HasField("table_entry"):
            raise _err(C.INVALID_ARGUMENT, "Missing table_entry field in DirectCounterEntry")
        ti = self._table_info(dce.table_entry.table_id)
        e = self._entry_for(ti, dce.table_entry)
        if not ti.direct_counter:
            raise _err(C.INVALID_ARGUMENT, "Table has no direct counters")
        self._check_update_type(utype)
        if utype == p4v1.Update.INSERT:
            raise _err(C.INVALID_ARGUMENT, "INSERT update type not supported for counters")
        if e.counter is None or dce.table_entry.is_default_action:
            raise _err(C.UNKNOWN, "Error when writing to direct counter")
        if utype == p4v1.Update.MODIFY:
            unit = self.index.p4info.direct_counters
            u = next(c.spec.unit for c in unit if c.preamble.id == ti.direct_counter)
            e.counter[0], e.counter[1] = self._counter_values(u, dce.data, e.counter[0], e.counter[1])
        else:
            e.counter[0] = e.counter[1] = 0

    def _direct_meter_write(self, utype: int, dme: p4v1.DirectMeterEntry) -> None:
        if not dme.HasField("table_entry"):
            raise _err(C.INVALID_ARGUMENT, "Missing table_entry field in DirectMeterEntry")
        ti = self._table_info(dme.table_entry.table_id)
        e = self._entry_for(ti, dme.table_entry)
        if not ti.direct_meter:
            raise _err(C.INVALID_ARGUMENT, "Table has no direct meters")
        cfg = self._meter_update_config(utype, dme)
        if e.meter is None or dme.table_entry.is_default_action:
            raise _err(C.UNKNOWN, "Error when writing direct meter spec")
        self._set_meter(e.meter, cfg)

    def _key_only(self, ti: TableInfo, e: Entry) -> p4v1.TableEntry:
        """Entry ``e`` as a direct resource read names it: table and key, no action, no metadata."""
        t = self.entry_to_proto(ti, e, None)
        t.ClearField("action")
        t.ClearField("controller_metadata")
        t.ClearField("metadata")
        return t

    def _direct_counter_read(self, dce: p4v1.DirectCounterEntry, out: list) -> None:
        if not dce.HasField("table_entry"):
            raise _err(C.INVALID_ARGUMENT, "Missing table_entry field in DirectCounterEntry")
        te = dce.table_entry
        if te.table_id == 0:
            raise _err(C.UNIMPLEMENTED, "Reading all direct counters for ALL tables is not supported yet")
        ti = self._table_info(te.table_id)
        if not ti.direct_counter:
            raise _err(C.INVALID_ARGUMENT, "Table has no direct counters")
        if len(te.match) or te.is_default_action:
            e = self._entry_for(ti, te)
            if e.counter is None or te.is_default_action:
                raise _err(C.UNKNOWN, "Error when reading counter from target")
            r = p4v1.DirectCounterEntry()
            r.table_entry.CopyFrom(te)
            r.data.packet_count, r.data.byte_count = e.counter
            out.append(p4v1.Entity(direct_counter_entry=r))
            return
        for e in ti.table.sorted_entries():
            r = p4v1.DirectCounterEntry()
            r.table_entry.CopyFrom(self._key_only(ti, e))
            r.data.packet_count, r.data.byte_count = e.counter
            out.append(p4v1.Entity(direct_counter_entry=r))

    def _direct_meter_read(self, dme: p4v1.DirectMeterEntry, out: list) -> None:
        if not dme.HasField("table_entry"):
            raise _err(C.INVALID_ARGUMENT, "Missing table_entry field in DirectMeterEntry")
        te = dme.table_entry
        if te.table_id == 0:
            raise _err(C.UNIMPLEMENTED, "Reading all direct meters for ALL tables is not supported yet")
        ti = self._table_info(te.table_id)
        if not ti.direct_meter:
            raise _err(C.INVALID_ARGUMENT, "Table has no direct meters")
        if len(te.match) or te.is_default_action:
            e = self._entry_for(ti, te)
            if e.meter is None or te.is_default_action:
                raise _err(C.UNKNOWN, "Error when reading meter from target")
            r = p4v1.DirectMeterEntry()
            r.table_entry.CopyFrom(te)
            cfg = self._meter_config(e.meter)
            if cfg is not None:
                r.config.CopyFrom(cfg)
            out.append(p4v1.Entity(direct_meter_entry=r))
            return
        for e in ti.table.sorted_entries():
            r = p4v1.DirectMeterEntry()
            r.table_entry.CopyFrom(self._key_only(ti, e))
            cfg = self._meter_config(e.meter)
            if cfg is not None:
                r.config.CopyFrom(cfg)
            out.append(p4v1.Entity(direct_meter_entry=r))
