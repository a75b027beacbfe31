"""The packet replication engine: multicast groups and clone sessions.

A mirror of PI's PreMcMgr and PreCloneMgr: a clone session is a multicast
group above :data:`~softswitch.runtime.base.FIRST_RESERVED_GROUP`.
"""

from __future__ import annotations

from p4protos import p4runtime_pb2 as p4v1

from ..switch import PreError
from .base import FIRST_RESERVED_GROUP, MAX_CLONE_SESSION, U32, C, DeviceBase, P4RTError, _err


class Pre(DeviceBase):
    """PacketReplicationEngineEntry writes and reads."""

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
