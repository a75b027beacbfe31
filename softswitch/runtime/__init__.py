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

The device is put together from one class per entity kind (see
:mod:`.base`); what stays here is what spans them: the pipeline config, the
dispatch of writes and reads, and packet I/O.
"""

from __future__ import annotations

import logging

from google.protobuf import any_pb2
from google.rpc import status_pb2
from p4protos import p4runtime_pb2 as p4v1

from ..errors import LoadError
from ..p4info import P4InfoIndex, build_index
from ..program import Program
from .base import INVALID_ID, SPACE, C, P4RTError, _err, bytes_to_int, int_to_bytes, status
from .direct import DirectResources
from .pre import Pre
from .registers import Registers

__all__ = ["Device", "P4RTError", "status"]

log = logging.getLogger("softswitch.p4rt")


class Device(DirectResources, Registers, Pre):
    """One P4Runtime device: pipeline config, table/PRE/counter state, packet I/O."""

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
