"""The P4Runtime device manager: what PI's ``DeviceMgr`` does for bmv2.

Every check, and the code and message it fails with, follows
``proto/frontend/src/device_mgr.cpp`` (and ``pre_mc_mgr.cpp``,
``pre_clone_mgr.cpp``, ``packet_io_mgr.cpp``) of p4lang/PI as bmv2's
``simple_switch_grpc`` runs it, so a controller sees the same statuses from
this switch as from bmv2: e.g. INVALID_ARGUMENT for a malformed match or an
over-wide value, ALREADY_EXISTS for a duplicate insert, NOT_FOUND for a
missing entry, PERMISSION_DENIED for a const default action, UNKNOWN for what
the target refuses; a batch reports UNKNOWN with one ``p4.v1.Error`` per
update.  Documented differences from bmv2: register reads and writes work
(PI answers UNIMPLEMENTED); a table insert whose meter config bmv2 refuses
(committed rate above peak) fails with the same status but leaves no entry
behind (bmv2 keeps the entry, unconfigured).  As on bmv2, a direct meter
belongs to the entry *handle*: an entry inserted where a deleted one was
inherits its meter.
"""

from __future__ import annotations

import logging
from typing import Any

from google.protobuf import any_pb2
from google.rpc import code_pb2, status_pb2
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2 as p4v1

from .errors import LoadError
from .externs import CounterArray, MeterArray
from .p4info import P4InfoIndex, TableInfo, build_index
from .program import Program
from .switch import PreError, SimpleSwitch
from .tables import EXACT, LPM, OPTIONAL, RANGE, TERNARY, Entry, TableError

__all__ = ["Device", "P4RTError", "status"]

log = logging.getLogger("softswitch.p4rt")

C = code_pb2
SPACE = "ALL-sswitch-p4org"
FIRST_RESERVED_GROUP = 1 << 15
MAX_CLONE_SESSION = 32768
U64 = (1 << 64) - 1
U32 = (1 << 32) - 1


class P4RTError(Exception):
    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def status(code: int, message: str = "") -> status_pb2.Status:
    return status_pb2.Status(code=code, message=message)


def _err(code: int, message: str = "") -> P4RTError:
    return P4RTError(code, message)


INVALID_ID = "Invalid P4 id"


def bytes_to_int(value: bytes, nbits: int) -> int:
    """PI's bytestring_p4rt_to_pi: shorter strings are zero-padded; a longer
    one must not have bits set beyond ``nbits``."""
    v = int.from_bytes(value, "big")
    if len(value) >= (nbits + 7) // 8 and v.bit_length() > nbits:
        raise _err(C.INVALID_ARGUMENT, f"Bytestring provided does not fit within {nbits} bits")
    return v


def int_to_bytes(v: int, nbits: int) -> bytes:
    """Canonical bytestring (PI's bytestring_pi_to_p4rt): no leading zero bytes, at least one byte."""
    n = max(1, (v.bit_length() + 7) // 8)
    return v.to_bytes(n, "big")


def _padded(nbits: int) -> int:
    return (nbits + 7) // 8 * 8


class Device:
    """One P4Runtime device: pipeline config, table/PRE/counter state, packet I/O."""

    def __init__(self, device_id: int, switch: SimpleSwitch) -> None:
        self.device_id = device_id
        self.switch = switch
        self.index: P4InfoIndex | None = None
        self.config: p4v1.ForwardingPipelineConfig | None = None
        self.has_cookie = False
        self.saved: tuple[P4InfoIndex, p4v1.ForwardingPipelineConfig] | None = None
        # PRE mirror of PI's PreMcMgr / PreCloneMgr
        self.groups: dict[int, dict] = {}       # mgid -> {"nodes": {rid: set((kind, port, nbytes))}, "clone": bool}
        self.sessions: dict[int, tuple[int, int]] = {}   # session id -> (class_of_service, packet_length_bytes)
        self.lock = switch.lock

    # ================================================================== pipeline

    @property
    def ready(self) -> bool:
        return self.index is not None

    def set_pipeline(self, action: int, config: p4v1.ForwardingPipelineConfig) -> None:
        A = p4v1.SetForwardingPipelineConfigRequest
        if action == A.UNSPECIFIED:
            raise _err(C.INVALID_ARGUMENT, "Invalid SetForwardingPipeline action")
        index = None
        if action in (A.VERIFY, A.VERIFY_AND_SAVE, A.VERIFY_AND_COMMIT, A.RECONCILE_AND_COMMIT):
            index = self._build(config)
        if action == A.VERIFY:
            return
        with self.lock:
            if action == A.VERIFY_AND_SAVE:
                self.saved = (index, p4v1.ForwardingPipelineConfig())
                self.saved[1].CopyFrom(config)
                return
            if action == A.COMMIT:
                if self.saved is None:
                    raise _err(C.UNKNOWN, "Error in second phase of device update")
                index, saved_cfg = self.saved
                self.saved = None
                self._activate(index, saved_cfg)
                return
            if action == A.VERIFY_AND_COMMIT:
                self._activate(index, config)
                return
            if action == A.RECONCILE_AND_COMMIT:
                state = self._save_forwarding_state() if self.index is not None else []
                self._activate(index, config)
                req = p4v1.WriteRequest(device_id=self.device_id)
                for ent in state:
                    req.updates.add(type=p4v1.Update.INSERT, entity=ent)
                st = self.write(req)
                if st.code != C.OK:
                    raise _err(C.UNKNOWN, "Error when reconciling config")
                return
        raise _err(C.INVALID_ARGUMENT, "Invalid SetForwardingPipeline action")

    def _build(self, config: p4v1.ForwardingPipelineConfig) -> P4InfoIndex:
        try:
            program = Program(config.p4_device_config, log=lambda m: log.info("%s", m))
        except LoadError as e:
            log.error("cannot load the pipeline: %s", e)
            raise _err(C.UNKNOWN, f"Error in first phase of device update: {e}") from None
        try:
            return build_index(config.p4info, program)
        except LoadError as e:
            log.error("cannot load the P4Info: %s", e)
            raise _err(C.UNKNOWN, f"Error when importing p4info: {e}") from None

    def _activate(self, index: P4InfoIndex, config: p4v1.ForwardingPipelineConfig) -> None:
        self.switch.set_program(index.program)
        self.index = index
        self.config = p4v1.ForwardingPipelineConfig()
        self.config.CopyFrom(config)
        self.has_cookie = config.HasField("cookie")
        self.groups.clear()
        self.sessions.clear()
        log.info("pipeline loaded: %d tables, %d actions", len(index.tables), len(index.actions))

    def _save_forwarding_state(self) -> list[p4v1.Entity]:
        ents: list[p4v1.Entity] = []
        for kind in ("table_entry", "multicast", "clone"):
            e = p4v1.Entity()
            if kind == "table_entry":
                e.table_entry.SetInParent()
            elif kind == "multicast":
                e.packet_replication_engine_entry.multicast_group_entry.SetInParent()
            else:
                e.packet_replication_engine_entry.clone_session_entry.SetInParent()
            out, _status = self.read(p4v1.ReadRequest(device_id=self.device_id, entities=[e]))
            ents.extend(x for x in out if not (x.HasField("table_entry") and x.table_entry.is_default_action))
        return ents

    def get_pipeline(self, response_type: int) -> p4v1.ForwardingPipelineConfig:
        G = p4v1.GetForwardingPipelineConfigRequest
        out = p4v1.ForwardingPipelineConfig()
        if self.config is None:
            return out
        if response_type == G.ALL:
            out.p4info.CopyFrom(self.config.p4info)
            out.p4_device_config = self.config.p4_device_config
        elif response_type == G.COOKIE_ONLY:
            pass
        elif response_type == G.P4INFO_AND_COOKIE:
            out.p4info.CopyFrom(self.config.p4info)
        elif response_type == G.DEVICE_CONFIG_AND_COOKIE:
            out.p4_device_config = self.config.p4_device_config
        else:
            raise _err(C.INVALID_ARGUMENT, "Invalid response_type in GetForwardingPipelineConfigRequest")
        if self.has_cookie:
            out.cookie.CopyFrom(self.config.cookie)
        return out

    # ================================================================== write

    def write(self, request: p4v1.WriteRequest) -> status_pb2.Status:
        if request.atomicity != p4v1.WriteRequest.CONTINUE_ON_ERROR:
            return status(C.UNIMPLEMENTED, "Support for atomic write modes has not been implemented yet")
        results: list[tuple[int, str]] = []
        with self.lock:
            for upd in request.updates:
                try:
                    self._write_one(upd)
                    results.append((C.OK, ""))
                except P4RTError as e:
                    results.append((e.code, e.message))
        if all(c == C.OK for c, _ in results):
            return status(C.OK)
        st = status(C.UNKNOWN)
        for code, msg in results:
            err = p4v1.Error(canonical_code=code, message=msg, space=SPACE) if code != C.OK else p4v1.Error(code=C.OK)
            a = any_pb2.Any()
            a.Pack(err)
            st.details.append(a)
        return st

    def _write_one(self, upd: p4v1.Update) -> None:
        ent = upd.entity
        which = ent.WhichOneof("entity")
        if which == "table_entry":
            self._table_write(upd.type, ent.table_entry)
        elif which == "counter_entry":
            self._counter_write(upd.type, ent.counter_entry)
        elif which == "direct_counter_entry":
            self._direct_counter_write(upd.type, ent.direct_counter_entry)
        elif which == "meter_entry":
            self._meter_write(upd.type, ent.meter_entry)
        elif which == "direct_meter_entry":
            self._direct_meter_write(upd.type, ent.direct_meter_entry)
        elif which == "packet_replication_engine_entry":
            self._pre_write(upd.type, ent.packet_replication_engine_entry)
        elif which == "register_entry":
            self._register_write(upd.type, ent.register_entry)
        elif which in ("action_profile_member", "action_profile_group"):
            raise _err(C.INVALID_ARGUMENT, INVALID_ID)
        elif which == "extern_entry":
            raise _err(C.UNIMPLEMENTED, "")
        elif which == "value_set_entry":
            raise _err(C.UNIMPLEMENTED, "ValueSet writes are not supported yet")
        elif which == "digest_entry":
            raise _err(C.INVALID_ARGUMENT, INVALID_ID)
        else:
            raise _err(C.UNKNOWN, "Incorrect entity type")

    @staticmethod
    def _check_update_type(t: int) -> None:
        if t == p4v1.Update.UNSPECIFIED:
            raise _err(C.INVALID_ARGUMENT, "Update type is not set")
        if t not in (p4v1.Update.INSERT, p4v1.Update.MODIFY, p4v1.Update.DELETE):
            raise _err(C.INVALID_ARGUMENT, "Invalid update type")

    # ------------------------------------------------------------------ tables

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

    # ------------------------------------------------------------------ counters

    def _counter_write(self, utype: int, ce: p4v1.CounterEntry) -> None:
        if not self.index.valid_id(ce.counter_id, "counter"):
            raise _err(C.INVALID_ARGUMENT, INVALID_ID)
        if not ce.HasField("index"):
            raise _err(C.UNIMPLEMENTED, "Wildcard write is not supported for indirect counters yet")
        if ce.index.index < 0:
            raise _err(C.INVALID_ARGUMENT, "A negative number is not a valid index value")
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

    # ------------------------------------------------------------------ meters

    @staticmethod
    def _validate_meter(cfg: p4v1.MeterConfig) -> None:
        if cfg.cir < -1:
            raise _err(C.INVALID_ARGUMENT, "Negative meter CIR")
        if cfg.cburst < -1:
            raise _err(C.INVALID_ARGUMENT, "Negative meter CBurst")
        if cfg.pir < -1:
            raise _err(C.INVALID_ARGUMENT, "Negative meter PIR")
        if cfg.pburst < -1:
            raise _err(C.INVALID_ARGUMENT, "Negative meter PBurst")
        if cfg.cburst > U32:
            raise _err(C.UNIMPLEMENTED, "CBurst too large")
        if cfg.pburst > U32:
            raise _err(C.UNIMPLEMENTED, "Pburst too large")

    @staticmethod
    def _set_meter(meter: Any, cfg: p4v1.MeterConfig | None) -> None:
        if cfg is None or (cfg.cir == -1 and cfg.cburst == -1 and cfg.pir == -1 and cfg.pburst == -1):
            meter.reset()
            return
        cir, pir = cfg.cir & U64, cfg.pir & U64
        cb, pb = cfg.cburst & U32, cfg.pburst & U32
        if not meter.set_rates([(cir / 1e6, cb), (pir / 1e6, pb)]):
            raise _err(C.UNKNOWN, "Error when writing meter spec")

    @staticmethod
    def _meter_config(meter: Any) -> p4v1.MeterConfig | None:
        rates = meter.get_rates()
        if not rates:
            return None
        (cr, cb), (pr, pb) = rates
        cfg = p4v1.MeterConfig(cir=int(cr * 1e6), pir=int(pr * 1e6))
        cfg.cburst = -1 if cb == U32 else cb
        cfg.pburst = -1 if pb == U32 else pb
        return cfg

    def _meter_write(self, utype: int, me: p4v1.MeterEntry) -> None:
        if not self.index.valid_id(me.meter_id, "meter"):
            raise _err(C.INVALID_ARGUMENT, INVALID_ID)
        if not me.HasField("index"):
            raise _err(C.UNIMPLEMENTED, "Wildcard write is not supported for indirect meters yet")
        if me.index.index < 0:
            raise _err(C.INVALID_ARGUMENT, "A negative number is not a valid index value")
        self._check_update_type(utype)
        if utype == p4v1.Update.INSERT:
            raise _err(C.INVALID_ARGUMENT, "INSERT update type not supported for meters")
        if utype == p4v1.Update.DELETE:
            raise _err(C.INVALID_ARGUMENT, "DELETE update type not supported for meters")
        arr: MeterArray = self.index.meters[me.meter_id]
        cfg = None
        if me.HasField("config"):
            self._validate_meter(me.config)
            cfg = me.config
        if me.index.index >= arr.size:
            raise _err(C.UNKNOWN, "Error when writing meter spec")
        self._set_meter(arr.meters[me.index.index], cfg)

    def _direct_meter_write(self, utype: int, dme: p4v1.DirectMeterEntry) -> None:
        if not dme.HasField("table_entry"):
            raise _err(C.INVALID_ARGUMENT, "Missing table_entry field in DirectMeterEntry")
        ti = self._table_info(dme.table_entry.table_id)
        e = self._entry_for(ti, dme.table_entry)
        if not ti.direct_meter:
            raise _err(C.INVALID_ARGUMENT, "Table has no direct meters")
        self._check_update_type(utype)
        if utype == p4v1.Update.INSERT:
            raise _err(C.INVALID_ARGUMENT, "INSERT update type not supported for meters")
        if utype == p4v1.Update.DELETE:
            raise _err(C.INVALID_ARGUMENT, "DELETE update type not supported for meters")
        cfg = None
        if dme.HasField("config"):
            self._validate_meter(dme.config)
            cfg = dme.config
        if e.meter is None or dme.table_entry.is_default_action:
            raise _err(C.UNKNOWN, "Error when writing direct meter spec")
        self._set_meter(e.meter, cfg)

    # ------------------------------------------------------------------ registers

    def _register_write(self, utype: int, re_: p4v1.RegisterEntry) -> None:
        if not self.index.valid_id(re_.register_id, "register"):
            raise _err(C.INVALID_ARGUMENT, INVALID_ID)
        self._check_update_type(utype)
        if utype != p4v1.Update.MODIFY:
            raise _err(C.INVALID_ARGUMENT, "Only MODIFY is supported for registers")
        arr = self.index.registers[re_.register_id]
        value = 0
        if re_.data.WhichOneof("data") == "bitstring":
            value = bytes_to_int(re_.data.bitstring, arr.bitwidth)
        elif re_.HasField("data"):
            raise _err(C.INVALID_ARGUMENT, "Register data must be a bitstring")
        if re_.HasField("index"):
            i = re_.index.index
            if not 0 <= i < arr.size:
                raise _err(C.OUT_OF_RANGE, "Register index out of range")
            arr.values[i] = value
        else:
            arr.values = [value] * arr.size

    # ------------------------------------------------------------------ PRE

    def _pre_write(self, utype: int, pre: p4v1.PacketReplicationEngineEntry) -> None:
        which = pre.WhichOneof("type")
        if which == "multicast_group_entry":
            g = pre.multicast_group_entry
            if g.multicast_group_id == 0:
                raise _err(C.INVALID_ARGUMENT, "0 is not a valid group id")
            if g.multicast_group_id >= FIRST_RESERVED_GROUP:
                raise _err(C.OUT_OF_RANGE, "Group id value is too high")
            self._check_update_type(utype)
            if utype == p4v1.Update.INSERT:
                self._group_create(g.multicast_group_id, g.replicas, clone=False)
            elif utype == p4v1.Update.MODIFY:
                self._group_modify(g.multicast_group_id, g.replicas)
            else:
                self._group_delete(g.multicast_group_id)
            return
        if which == "clone_session_entry":
            s = pre.clone_session_entry
            if s.session_id == 0:
                raise _err(C.INVALID_ARGUMENT, "0 is not a valid session id")
            self._check_update_type(utype)
            if not 1 <= s.session_id < MAX_CLONE_SESSION:
                raise _err(C.INVALID_ARGUMENT, "Clone session id out-of-range")
            mgid = FIRST_RESERVED_GROUP + s.session_id
            if utype == p4v1.Update.INSERT:
                if s.session_id in self.sessions:
                    raise _err(C.ALREADY_EXISTS, "Clone session id already exists")
                self._group_create(mgid, s.replicas, clone=True)
                try:
                    self._session_set(s, mgid)
                except P4RTError:
                    self._group_delete(mgid)
                    raise
                self.sessions[s.session_id] = (s.class_of_service, s.packet_length_bytes)
            elif utype == p4v1.Update.MODIFY:
                if s.session_id not in self.sessions:
                    raise _err(C.NOT_FOUND, "Clone session id does not exist")
                self._group_modify(mgid, s.replicas)
                new = (s.class_of_service, s.packet_length_bytes)
                if new != self.sessions[s.session_id]:
                    self._session_set(s, mgid)
                    self.sessions[s.session_id] = new
            else:
                if s.session_id not in self.sessions:
                    raise _err(C.NOT_FOUND, "Clone session id does not exist")
                self.switch.mirror.pop(s.session_id, None)
                self._group_delete(mgid)
                del self.sessions[s.session_id]
            return
        raise _err(C.INVALID_ARGUMENT, "Invalid PRE operation")

    def _session_set(self, s: p4v1.CloneSessionEntry, mgid: int) -> None:
        if s.class_of_service != 0:
            raise _err(C.UNIMPLEMENTED, "COS for clone sessions not supported yet")
        if s.packet_length_bytes != 0:
            # bmv2's PI target does not implement clone truncation
            raise _err(C.UNKNOWN, "Error when creating clone session in target")
        self.switch.mirror[s.session_id] = mgid

    @staticmethod
    def _replica_nodes(replicas) -> dict[int, set]:
        nodes: dict[int, set] = {}
        for r in replicas:
            kind = r.WhichOneof("port_kind")
            if kind == "egress_port":
                port = (kind, r.egress_port, 0)
            elif kind == "port":
                b = r.port
                if not b:
                    raise _err(C.INVALID_ARGUMENT, "Port must not be the empty string")
                if len(b) > 4:
                    raise _err(C.UNIMPLEMENTED, f"Got port of {len(b)} bytes, but only 4 bytes are supported")
                v = int.from_bytes(b, "big")
                if v >= 1 << 31:
                    v -= 1 << 32
                if v <= 0:
                    raise _err(C.INVALID_ARGUMENT, "Port must be non-negative.")
                port = (kind, v, len(b))
            else:
                raise _err(C.INVALID_ARGUMENT, "Missing port in multicast group replica")
            node = nodes.setdefault(r.instance, set())
            if port in node:
                raise _err(C.INVALID_ARGUMENT, "Duplicate replica in multicast group")
            node.add(port)
        return nodes

    def _apply_group(self, mgid: int, nodes: dict[int, set], create: bool) -> None:
        pre_nodes = [(rid, tuple(sorted({p[1] for p in ports}))) for rid, ports in nodes.items()]
        self.switch.pre.set_group(mgid, pre_nodes, create)

    def _group_create(self, mgid: int, replicas, clone: bool) -> None:
        if mgid in self.groups:
            raise _err(C.ALREADY_EXISTS, "Multicast group already exists")
        nodes = self._replica_nodes(replicas)
        try:
            self._apply_group(mgid, nodes, create=True)
        except PreError:
            raise _err(C.UNKNOWN, "Error when creating multicast group in target") from None
        self.groups[mgid] = {"nodes": nodes, "clone": clone}

    def _group_modify(self, mgid: int, replicas) -> None:
        if mgid not in self.groups:
            raise _err(C.NOT_FOUND, "Multicast group does not exist")
        nodes = self._replica_nodes(replicas)
        try:
            self._apply_group(mgid, nodes, create=False)
        except PreError:
            raise _err(C.UNKNOWN, "Error when modifying multicast group in target") from None
        self.groups[mgid]["nodes"] = nodes

    def _group_delete(self, mgid: int) -> None:
        if mgid not in self.groups:
            raise _err(C.NOT_FOUND, "Multicast group does not exist")
        self.switch.pre.delete_group(mgid)
        del self.groups[mgid]

    def _replicas_of(self, mgid: int) -> list[p4v1.Replica]:
        out = []
        for rid, ports in self.groups[mgid]["nodes"].items():
            for kind, port, nbytes in sorted(ports):
                r = p4v1.Replica(instance=rid)
                if kind == "egress_port":
                    r.egress_port = port
                else:
                    r.port = (port & U32).to_bytes(4, "big")[4 - nbytes:]
                out.append(r)
        return out

    # ================================================================== read

    def read(self, request: p4v1.ReadRequest) -> tuple[list[p4v1.Entity], status_pb2.Status]:
        out: list[p4v1.Entity] = []
        with self.lock:
            for ent in request.entities:
                try:
                    self._read_one(ent, out)
                except P4RTError as e:
                    return out, status(e.code, e.message)
        return out, status(C.OK)

    def _read_one(self, ent: p4v1.Entity, out: list) -> None:
        which = ent.WhichOneof("entity")
        if which == "table_entry":
            te = ent.table_entry
            if te.table_id == 0:
                for tid in self.index.table_order:
                    self._table_read_one(self.index.tables[tid], te, out)
            else:
                self._table_read_one(self._table_info(te.table_id), te, out)
        elif which == "counter_entry":
            self._counter_read(ent.counter_entry, out)
        elif which == "direct_counter_entry":
            self._direct_counter_read(ent.direct_counter_entry, out)
        elif which == "meter_entry":
            self._meter_read(ent.meter_entry, out)
        elif which == "direct_meter_entry":
            self._direct_meter_read(ent.direct_meter_entry, out)
        elif which == "packet_replication_engine_entry":
            self._pre_read(ent.packet_replication_engine_entry, out)
        elif which == "register_entry":
            self._register_read(ent.register_entry, out)
        elif which in ("action_profile_member", "action_profile_group"):
            m = getattr(ent, which)
            if m.action_profile_id != 0:
                raise _err(C.INVALID_ARGUMENT, INVALID_ID)
        elif which == "value_set_entry":
            raise _err(C.UNIMPLEMENTED, "ValueSet reads are not supported yet")
        elif which == "digest_entry":
            if ent.digest_entry.digest_id != 0:
                raise _err(C.INVALID_ARGUMENT, INVALID_ID)
        else:
            raise _err(C.UNKNOWN, "Incorrect entity type")

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

    def _counter_read(self, ce: p4v1.CounterEntry, out: list) -> None:
        ids = self.index.counter_order if ce.counter_id == 0 else [ce.counter_id]
        if ce.counter_id != 0 and not self.index.valid_id(ce.counter_id, "counter"):
            raise _err(C.INVALID_ARGUMENT, INVALID_ID)
        for cid in ids:
            arr: CounterArray = self.index.counters[cid]
            if ce.HasField("index"):
                i = ce.index.index
                if i < 0:
                    raise _err(C.INVALID_ARGUMENT, "A negative number is not a valid index value")
                if i >= arr.size:
                    raise _err(C.UNKNOWN, "Error when reading counter from target")
                cells = [i]
            else:
                cells = range(arr.size)
            for i in cells:
                e = p4v1.CounterEntry(counter_id=cid)
                e.index.index = i
                e.data.packet_count = arr.packets[i]
                e.data.byte_count = arr.bytes[i]
                out.append(p4v1.Entity(counter_entry=e))

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
            t = self.entry_to_proto(ti, e, None)
            t.ClearField("action")
            t.ClearField("controller_metadata")
            t.ClearField("metadata")
            r.table_entry.CopyFrom(t)
            r.data.packet_count, r.data.byte_count = e.counter
            out.append(p4v1.Entity(direct_counter_entry=r))

    def _meter_read(self, me: p4v1.MeterEntry, out: list) -> None:
        ids = self.index.meter_order if me.meter_id == 0 else [me.meter_id]
        if me.meter_id != 0 and not self.index.valid_id(me.meter_id, "meter"):
            raise _err(C.INVALID_ARGUMENT, INVALID_ID)
        for mid in ids:
            arr: MeterArray = self.index.meters[mid]
            if me.HasField("index"):
                i = me.index.index
                if i < 0:
                    raise _err(C.INVALID_ARGUMENT, "A negative number is not a valid index value")
                if i >= arr.size:
                    raise _err(C.UNKNOWN, "Error when reading meter spec from target")
                cells = [i]
            else:
                cells = range(arr.size)
            for i in cells:
                e = p4v1.MeterEntry(meter_id=mid)
                e.index.index = i
                cfg = self._meter_config(arr.meters[i])
                if cfg is not None:
                    e.config.CopyFrom(cfg)
                out.append(p4v1.Entity(meter_entry=e))

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
            t = self.entry_to_proto(ti, e, None)
            t.ClearField("action")
            t.ClearField("controller_metadata")
            t.ClearField("metadata")
            r.table_entry.CopyFrom(t)
            cfg = self._meter_config(e.meter)
            if cfg is not None:
                r.config.CopyFrom(cfg)
            out.append(p4v1.Entity(direct_meter_entry=r))

    def _register_read(self, re_: p4v1.RegisterEntry, out: list) -> None:
        ids = self.index.register_order if re_.register_id == 0 else [re_.register_id]
        if re_.register_id != 0 and not self.index.valid_id(re_.register_id, "register"):
            raise _err(C.INVALID_ARGUMENT, INVALID_ID)
        for rid in ids:
            arr = self.index.registers[rid]
            if re_.HasField("index"):
                i = re_.index.index
                if not 0 <= i < arr.size:
                    raise _err(C.OUT_OF_RANGE, "Register index out of range")
                cells = [i]
            else:
                cells = range(arr.size)
            for i in cells:
                e = p4v1.RegisterEntry(register_id=rid)
                e.index.index = i
                e.data.bitstring = int_to_bytes(arr.values[i], arr.bitwidth)
                out.append(p4v1.Entity(register_entry=e))

    def _pre_read(self, pre: p4v1.PacketReplicationEngineEntry, out: list) -> None:
        which = pre.WhichOneof("type")
        if which == "multicast_group_entry":
            gid = pre.multicast_group_entry.multicast_group_id
            if gid >= FIRST_RESERVED_GROUP:
                raise _err(C.OUT_OF_RANGE, "Group id value is too high")
            if gid == 0:
                gids = [g for g in self.groups if g < FIRST_RESERVED_GROUP]
            else:
                if gid not in self.groups:
                    raise _err(C.NOT_FOUND, "Multicast group does not exist")
                gids = [gid]
            for g in gids:
                e = p4v1.Entity()
                mg = e.packet_replication_engine_entry.multicast_group_entry
                mg.multicast_group_id = g
                mg.replicas.extend(self._replicas_of(g))
                out.append(e)
            return
        if which == "clone_session_entry":
            sid = pre.clone_session_entry.session_id
            if sid == 0:
                sids = list(self.sessions)
            else:
                if sid not in self.sessions:
                    raise _err(C.NOT_FOUND, "Clone session id does not exist")
                sids = [sid]
            for s in sids:
                cos, plen = self.sessions[s]
                e = p4v1.Entity()
                cs = e.packet_replication_engine_entry.clone_session_entry
                cs.session_id = s
                cs.class_of_service = cos
                cs.packet_length_bytes = plen
                cs.replicas.extend(self._replicas_of(FIRST_RESERVED_GROUP + s))
                out.append(e)
            return
        raise _err(C.INVALID_ARGUMENT, "Invalid PRE operation")

    # ================================================================== packet I/O

    def packet_out_bytes(self, pkt: p4v1.PacketOut) -> bytes:
        """The raw packet to inject on the CPU port (packet_out header + payload)."""
        md = self.index.packet_out if self.index else None
        if md is None:
            if len(pkt.metadata):
                raise _err(C.INVALID_ARGUMENT, "Unexpected metadata in PacketOut message")
            return pkt.payload
        widths = {mid: bw for mid, bw in md}
        values: dict[int, int] = {}
        for m in pkt.metadata:
            if m.metadata_id not in widths:
                raise _err(C.INVALID_ARGUMENT, "Unknown metadata id in PacketOut message")
            values[m.metadata_id] = bytes_to_int(m.value, widths[m.metadata_id])
        acc = 0
        nbits = 0
        for mid, bw in md:
            acc = (acc << bw) | (values.get(mid, 0) & ((1 << bw) - 1))
            nbits += bw
        pad = (-nbits) % 8
        hdr = (acc << pad).to_bytes((nbits + pad) // 8, "big") if nbits else b""
        return hdr + pkt.payload

    def packet_in_msg(self, data: bytes) -> p4v1.PacketIn | None:
        md = self.index.packet_in if self.index else None
        pin = p4v1.PacketIn()
        if md is None:
            pin.payload = data
            return pin
        nbits = sum(bw for _, bw in md)
        nbytes = (nbits + 7) // 8
        if len(data) < nbytes:
            return None
        v = int.from_bytes(data[:nbytes], "big") >> (nbytes * 8 - nbits)
        shift = nbits
        for mid, bw in md:
            shift -= bw
            pin.metadata.add(metadata_id=mid, value=int_to_bytes((v >> shift) & ((1 << bw) - 1), bw))
        pin.payload = data[nbytes:]
        return pin
