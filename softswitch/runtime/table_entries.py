"""Table entries (``TableEntry``): match keys, actions, writes and reads.

A table entry may carry its direct counter's data and its direct meter's
config, so this sits above :mod:`.meters` and :mod:`.counters`.
"""

from __future__ import annotations

from typing import Any

from p4protos import p4info_pb2
from p4protos import p4runtime_pb2 as p4v1

from ..p4info import TableInfo
from ..tables import EXACT, LPM, OPTIONAL, RANGE, TERNARY, Entry, TableError
from .base import INVALID_ID, C, P4RTError, _err, _padded, bytes_to_int, int_to_bytes
from .meters import Meters


class TableEntries(Meters):
    """TableEntry writes and reads (over :class:`Meters`)."""

    def _table_info(self, table_id: int) -> TableInfo:
        idx = self.index
        if not idx.valid_id(table_id, "table"):
            raise _err(C.INVALID_ARGUMENT, INVALID_ID)
        return idx.tables[table_id]

    def match_key(self, ti: TableInfo, te: p4v1.TableEntry) -> tuple:
        """PI's construct_match_key, producing the canonical key (fields..., [priority])."""
        if te.is_default_action:
            if len(te.match):
                raise _err(C.INVALID_ARGUMENT, "Non-empty key for default entry")
            if te.priority != 0:
                raise _err(C.INVALID_ARGUMENT, "Non-zero priority for default entry")
            return ()
        if len(te.match) > len(ti.fields):
            raise _err(C.INVALID_ARGUMENT, "Too many fields in match key")
        by_id: dict[int, p4v1.FieldMatch] = {}
        for m in te.match:
            by_id.setdefault(m.field_id, m)
        key: list[Any] = []
        matched = 0
        for f in ti.fields:
            m = by_id.get(f.id)
            nbits = f.bitwidth
            if m is not None:
                matched += 1
                which = m.WhichOneof("field_match_type")
                if f.kind == EXACT:
                    if which != "exact":
                        raise _err(C.INVALID_ARGUMENT, "Invalid match type")
                    key.append(bytes_to_int(m.exact.value, nbits))
                elif f.kind == LPM:
                    if which != "lpm":
                        raise _err(C.INVALID_ARGUMENT, "Invalid match type")
                    v = bytes_to_int(m.lpm.value, nbits)
                    plen = m.lpm.prefix_len
                    if plen < 0:
                        raise _err(C.INVALID_ARGUMENT, "Prefix length cannot be < 0")
                    if plen > nbits:
                        raise _err(C.INVALID_ARGUMENT, "Prefix length cannot be > bitwidth")
                    if plen == 0:
                        raise _err(C.INVALID_ARGUMENT, "Invalid reprsentation of 'don't care' LPM match, "
                                                       "omit match field instead of using a prefix length of 0")
                    if v & ((1 << (_padded(nbits) - plen)) - 1):
                        raise _err(C.INVALID_ARGUMENT, "Invalid LPM value, incorrect number of trailing zeros")
                    key.append((v, plen))
                elif f.kind == TERNARY:
                    if which != "ternary":
                        raise _err(C.INVALID_ARGUMENT, "Invalid match type")
                    v = bytes_to_int(m.ternary.value, nbits)
                    mask = bytes_to_int(m.ternary.mask, nbits)
                    if mask == 0:
                        raise _err(C.INVALID_ARGUMENT, "Invalid representation of 'don't care' ternary match, "
                                                       "omit match field instead of using 0 mask")
                    if v & mask != v:
                        raise _err(C.INVALID_ARGUMENT, "Invalid ternary value, make sure value & mask == value")
                    key.append((v, mask))
                elif f.kind == RANGE:
                    if which != "range":
                        raise _err(C.INVALID_ARGUMENT, "Invalid match type")
                    lo = bytes_to_int(m.range.low, nbits)
                    hi = bytes_to_int(m.range.high, nbits)
                    if lo == 0 and hi == (1 << nbits) - 1:
                        raise _err(C.INVALID_ARGUMENT, "Invalid representation of 'don't care' range match, "
                                                       "omit match field instead of using low=0 and high=2**bitwidth-1")
                    if lo > hi:
                        raise _err(C.INVALID_ARGUMENT, "Invalid range value, make sure low <= high")
                    key.append((lo, hi))
                elif f.kind == OPTIONAL:
                    if which != "optional":
                        raise _err(C.INVALID_ARGUMENT, "Invalid match type")
                    key.append((bytes_to_int(m.optional.value, nbits), (1 << nbits) - 1))
            else:
                if f.kind == LPM or f.kind in (TERNARY, OPTIONAL):
                    key.append((0, 0))
                elif f.kind == RANGE:
                    key.append((0, (1 << nbits) - 1))
                else:
                    raise _err(C.INVALID_ARGUMENT, "Missing non-ternary field in match key")
        if matched != len(te.match):
            raise _err(C.INVALID_ARGUMENT, "Unknown field in match key")
        if not ti.needs_priority and te.priority > 0:
            raise _err(C.INVALID_ARGUMENT, "Non-zero priority for non-ternary match")
        if ti.needs_priority and te.priority == 0:
            raise _err(C.INVALID_ARGUMENT, "Zero priority for ternary match")
        if ti.needs_priority:
            if te.priority < 0:
                raise _err(C.INVALID_ARGUMENT, "Negative priority for ternary match")
            key.append(te.priority)
        return tuple(key)

    def _validate_action(self, ti: TableInfo, te: p4v1.TableEntry) -> None:
        if te.is_default_action and ti.const_default:
            raise _err(C.PERMISSION_DENIED, f"Cannot set / reset default action for table {te.table_id} "
                                            "which has a const default action")
        if not te.HasField("action"):
            return
        if te.action.WhichOneof("type") != "action":
            raise _err(C.INVALID_ARGUMENT, f"Cannot provide indirect action for direct table {te.table_id}")
        aid = te.action.action.action_id
        if not self.index.valid_id(aid, "action"):
            raise _err(C.INVALID_ARGUMENT, INVALID_ID)
        if aid not in ti.actions:
            raise _err(C.INVALID_ARGUMENT, "Invalid action for table")
        scope = ti.scopes.get(aid, p4info_pb2.ActionRef.TABLE_AND_DEFAULT)
        if scope == p4info_pb2.ActionRef.TABLE_ONLY and te.is_default_action:
            raise _err(C.PERMISSION_DENIED, "Cannot use TABLE_ONLY action as default action")
        if scope == p4info_pb2.ActionRef.DEFAULT_ONLY and not te.is_default_action:
            raise _err(C.PERMISSION_DENIED, "Cannot use DEFAULT_ONLY action in table entry")

    def _action_data(self, ti: TableInfo, action: p4v1.Action) -> tuple[Any, tuple]:
        aid = action.action_id
        params = self.index.action_params[aid]
        if len(action.params) != len(params):
            raise _err(C.INVALID_ARGUMENT, "Unexpected number of action parameters")
        values: dict[int, int] = {}
        for p in action.params:
            bw = params.get(p.param_id)
            if bw is None:
                raise _err(C.INVALID_ARGUMENT, "Unknown action parameter")
            values[p.param_id] = bytes_to_int(p.value, bw)
        order = self.index.action_param_order[aid]
        data = tuple(values.get(pid, 0) for pid in order)
        return ti.actions[aid], data

    def _direct_resources(self, ti: TableInfo, te: p4v1.TableEntry) -> tuple[Any, Any]:
        meter_cfg = counter_data = None
        if te.HasField("meter_config"):
            if not ti.direct_meter:
                raise _err(C.INVALID_ARGUMENT, "Table has no direct meters")
            self._validate_meter(te.meter_config)
            meter_cfg = te.meter_config
        if te.HasField("counter_data"):
            if not ti.direct_counter:
                raise _err(C.INVALID_ARGUMENT, "Table has no direct counters")
            counter_data = te.counter_data
        return meter_cfg, counter_data

    @staticmethod
    def _check_ttl(te: p4v1.TableEntry) -> None:
        if te.idle_timeout_ns < 0:
            raise _err(C.INVALID_ARGUMENT, "idle_timeout_ns must be a positive value")
        if te.idle_timeout_ns > 0:
            raise _err(C.INVALID_ARGUMENT, "idle_timeout_ns must be set to 0 for tables which do not support "
                                           "idle timeout")

    def _table_write(self, utype: int, te: p4v1.TableEntry) -> None:
        ti = self._table_info(te.table_id)
        if te.HasField("time_since_last_hit"):
            raise _err(C.INVALID_ARGUMENT, "has_time_since_last_hit must not be set in WriteRequest")
        self._check_update_type(utype)
        table = ti.table
        prog = self.index.program
        if utype == p4v1.Update.INSERT:
            if te.is_default_action:
                raise _err(C.INVALID_ARGUMENT, "Cannot use INSERT for default entry")
            if not te.HasField("action"):
                raise _err(C.INVALID_ARGUMENT, "'action' field must be set")
            key = self.match_key(ti, te)
            self._validate_action(ti, te)
            act, data = self._action_data(ti, te.action.action)
            meter_cfg, counter_data = self._direct_resources(ti, te)
            self._check_ttl(te)
            if key in table.entries:
                raise _err(C.ALREADY_EXISTS, "Match entry exists, use MODIFY if you wish to change action")
            if table.immutable:
                raise _err(C.UNKNOWN, "Error when adding match entry to target")
            e = prog.make_entry(table, act, data)
            e.key = key
            e.priority = te.priority if ti.needs_priority else 0
            e.controller_metadata = te.controller_metadata
            e.metadata = te.metadata
            if counter_data is not None and e.counter is not None:
                e.counter[0], e.counter[1] = counter_data.packet_count, counter_data.byte_count
            try:
                table.add(e)
            except TableError:
                raise _err(C.UNKNOWN, "Error when adding match entry to target") from None
            if meter_cfg is not None and e.meter is not None:
                try:
                    self._set_meter(e.meter, meter_cfg)
                except P4RTError:
                    # bmv2 keeps the entry it could not configure; here a
                    # refused write changes nothing
                    table.delete(e)
                    raise
            return
        if utype == p4v1.Update.MODIFY:
            key = self.match_key(ti, te)
            self._validate_action(ti, te)
            act = data = None
            if te.HasField("action"):
                act, data = self._action_data(ti, te.action.action)
            elif not te.is_default_action:
                raise _err(C.INVALID_ARGUMENT, "'action' field must be set for non-default entries")
            meter_cfg, counter_data = self._direct_resources(ti, te)
            self._check_ttl(te)
            if te.is_default_action:
                if counter_data is not None or meter_cfg is not None:
                    raise _err(C.UNKNOWN, "Error when modifying match entry in target")
                if act is None:
                    init = table.initial_default
                    new = prog.make_entry(table, *init) if init else prog._noop_default(table)
                else:
                    new = prog.make_entry(table, act, data)
                    new.controller_metadata = te.controller_metadata
                    new.metadata = te.metadata
                table.default = new
                return
            old = table.entries.get(key)
            if old is None:
                raise _err(C.NOT_FOUND, "Cannot find match entry")
            if table.immutable or old.is_const:
                raise _err(C.UNKNOWN, "Error when modifying match entry in target")
            new = prog.make_entry(table, act, data)
            new.controller_metadata = te.controller_metadata
            new.metadata = te.metadata
            table.modify(old, new)    # same handle: same counter and meter state
            if counter_data is not None and new.counter is not None:
                new.counter[0], new.counter[1] = counter_data.packet_count, counter_data.byte_count
            if meter_cfg is not None and new.meter is not None:
                self._set_meter(new.meter, meter_cfg)
            return
        # DELETE
        if te.is_default_action:
            raise _err(C.INVALID_ARGUMENT, "Cannot use DELETE for default entry")
        key = self.match_key(ti, te)
        old = table.entries.get(key)
        if old is None:
            raise _err(C.NOT_FOUND, "Cannot find match entry")
        if table.immutable or old.is_const:
            raise _err(C.UNKNOWN, "Error when deleting match entry in target")
        table.delete(old)

    def _entry_for(self, ti: TableInfo, te: p4v1.TableEntry) -> Entry:
        key = self.match_key(ti, te)
        if te.is_default_action:
            return ti.table.default
        e = ti.table.entries.get(key)
        if e is None:
            raise _err(C.INVALID_ARGUMENT, "Cannot map table entry to handle")
        return e

    def entry_to_proto(self, ti: TableInfo, e: Entry, requested: p4v1.TableEntry | None) -> p4v1.TableEntry:
        te = p4v1.TableEntry(table_id=ti.p4.preamble.id)
        if e.key:
            if ti.needs_priority and e.priority > 0:
                te.priority = e.priority
            for f, k in zip(ti.fields, e.key):
                if f.kind == EXACT:
                    te.match.add(field_id=f.id).exact.value = int_to_bytes(k, f.bitwidth)
                elif f.kind == LPM:
                    v, plen = k
                    if plen:
                        m = te.match.add(field_id=f.id)
                        m.lpm.value = int_to_bytes(v, f.bitwidth)
                        m.lpm.prefix_len = plen
                elif f.kind == TERNARY:
                    v, mask = k
                    if mask:
                        m = te.match.add(field_id=f.id)
                        m.ternary.value = int_to_bytes(v, f.bitwidth)
                        m.ternary.mask = int_to_bytes(mask, f.bitwidth)
                elif f.kind == OPTIONAL:
                    v, mask = k
                    if mask:
                        te.match.add(field_id=f.id).optional.value = int_to_bytes(v, f.bitwidth)
                elif f.kind == RANGE:
                    lo, hi = k
                    if not (lo == 0 and hi == (1 << f.bitwidth) - 1):
                        m = te.match.add(field_id=f.id)
                        m.range.low = int_to_bytes(lo, f.bitwidth)
                        m.range.high = int_to_bytes(hi, f.bitwidth)
        if e.action is not None:
            aid = self._p4info_action_id(ti, e.action)
            a = te.action.action
            a.action_id = aid
            for pid, v in zip(self.index.action_param_order[aid], e.data):
                bw = self.index.action_params[aid][pid]
                a.params.add(param_id=pid, value=int_to_bytes(v, bw))
        if requested is not None and e.key:
            if requested.HasField("counter_data") and e.counter is not None and ti.direct_counter:
                te.counter_data.packet_count = e.counter[0]
                te.counter_data.byte_count = e.counter[1]
            if requested.HasField("meter_config") and e.meter is not None:
                cfg = self._meter_config(e.meter)
                if cfg is not None:
                    te.meter_config.CopyFrom(cfg)
        if not e.is_const:
            te.controller_metadata = e.controller_metadata
            te.metadata = e.metadata
        return te

    @staticmethod
    def _p4info_action_id(ti: TableInfo, act: Any) -> int:
        for aid, a in ti.actions.items():
            if a is act:
                return aid
        for aid, a in ti.actions.items():
            if a.name == act.name:
                return aid
        return 0

    def _table_read_one(self, ti: TableInfo, te: p4v1.TableEntry, out: list) -> None:
        if te.is_default_action:
            if te.HasField("time_since_last_hit"):
                raise _err(C.INVALID_ARGUMENT, "Default table entries do not support entry ageing, do not set "
                                               "'time_since_last_hit' in your ReadRequest")
            d = self.entry_to_proto(ti, ti.table.default, te)
            d.is_default_action = True
            out.append(p4v1.Entity(table_entry=d))
            return
        if te.HasField("time_since_last_hit"):
            raise _err(C.INVALID_ARGUMENT, "Do not set time_since_last_hit for a ReadRequest if the table does "
                                           "not support idle timeout; yes, that includes wildcard reads")
        if len(te.match) == 0:
            entries = ti.table.sorted_entries()
        else:
            key = self.match_key(ti, te)
            e = ti.table.entries.get(key)
            entries = [e] if e is not None else []
        for e in entries:
            out.append(p4v1.Entity(table_entry=self.entry_to_proto(ti, e, te)))
