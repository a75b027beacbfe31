"""simple_switch's v1model architecture around a compiled :class:`Program`.

This follows ``targets/simple_switch/simple_switch.cpp`` step by step:

* a received packet gets fresh headers, zeroed metadata, ``ingress_port``,
  ``packet_length`` and ``instance_type = 0``; parser, ingress;
* after ingress, in this order: an I2E clone (the *original* packet,
  re-parsed, metadata zeroed except the preserved field list, instance type
  1, sent through the clone session's multicast group); a resubmit (the
  original packet back to ingress, metadata zeroed except the field list,
  instance type 6; nothing else of this pass goes out); multicast (instance
  type 5, ``egress_rid`` per replica, the original is consumed); else unicast
  to ``egress_spec`` unless it is the drop port;
* enqueue drops a packet whose ``priority`` is not below the number of
  priority queues, else puts it in that (port, priority) egress queue
  (``softswitch.queues``: depth limit, optional rate limit, strict priority,
  ``qid`` = the priority, ``enq_qdepth`` / ``deq_qdepth`` = that queue's
  occupancy);
* egress sets ``egress_port``, ``egress_spec`` (to drop port + 1, truncated
  to the field), ``packet_length``; after egress an E2E clone (headers kept,
  metadata zeroed except the field list, instance type 2); drop if
  ``egress_spec`` is the drop port; deparse; recirculate (the deparsed packet
  back to ingress, instance type 4) or transmit, cut to ``truncate()``.

Packets are processed one at a time: a received packet goes through ingress,
then whatever its processing queued and may leave now goes through egress
(resubmitted and recirculated packets go through ingress first, as bmv2's
input buffer gives them priority).  bmv2 runs one ingress and several egress
threads; per-port and per-queue order is the same.  Packets held back by a
rate-limited queue leave when :meth:`SimpleSwitch.service` is called after
:meth:`SimpleSwitch.next_departure` (the receive loop does this).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from .program import Packet, Program
from .queues import EgressBuffers

__all__ = ["INSTANCE", "PRE", "PreError", "SimpleSwitch"]

INSTANCE = {"NORMAL": 0, "INGRESS_CLONE": 1, "EGRESS_CLONE": 2, "COALESCED": 3, "RECIRC": 4,
            "REPLICATION": 5, "RESUBMIT": 6}

log = logging.getLogger("softswitch")


class PreError(Exception):
    """The packet replication engine refused a change (bmv2 TABLE_FULL, bad port...)."""


class PRE:
    """bmv2's simple PRE: groups of (rid, ports) nodes, with its size limits."""

    def __init__(self, max_groups: int = 4096, max_l1: int = 4096, max_l2: int = 8192, max_port: int = 512) -> None:
        self.max_groups, self.max_l1, self.max_l2, self.max_port = max_groups, max_l1, max_l2, max_port
        # mgid -> list of (rid, sorted ports); replicate() output cached per group
        self.groups: dict[int, list[tuple[int, tuple[int, ...]]]] = {}
        self._out: dict[int, tuple[tuple[int, int], ...]] = {}
        self._nnodes = 0

    def set_group(self, mgid: int, nodes: list[tuple[int, tuple[int, ...]]], create: bool) -> None:
        if create and len(self.groups) >= self.max_groups:
            raise PreError("mgid table full")
        for rid, _ in nodes:
            if not 0 <= rid <= 0xFFFF:
                raise PreError(f"replica id {rid} does not fit in 16 bits")
        total = self._nnodes - len(self.groups.get(mgid, ())) + len(nodes)
        if total > self.max_l1:
            raise PreError("L1 node table full")
        if total > self.max_l2:
            raise PreError("L2 node table full")
        self._nnodes = total
        self.groups[mgid] = list(nodes)
        # bmv2 silently ignores ports beyond its port map
        self._out[mgid] = tuple((p, rid) for rid, ports in nodes for p in ports if 0 <= p < self.max_port)

    def delete_group(self, mgid: int) -> None:
        self._nnodes -= len(self.groups.pop(mgid, ()))
        self._out.pop(mgid, None)

    def replicate(self, mgid: int) -> tuple[tuple[int, int], ...]:
        return self._out.get(mgid, ())

    def reset(self) -> None:
        self.groups.clear()
        self._out.clear()
        self._nnodes = 0


class SimpleSwitch:
    """The data plane of one device."""

    def __init__(self, *, drop_port: int = 511, priority_queues: int = 1, cpu_port: int | None = None,
                 max_mc_groups: int = 4096, max_l1: int = 4096, max_l2: int = 8192,
                 clock: Callable[[], float] | None = None) -> None:
        self.drop_port = drop_port
        self.nb_queues = priority_queues
        self.cpu_port = cpu_port
        self.pre = PRE(max_mc_groups, max_l1, max_l2)
        self.mirror: dict[int, int] = {}          # clone session id -> mgid
        self.program: Program | None = None
        self.lock = threading.RLock()
        self.clock = clock or time.monotonic
        self.t0 = self.clock()
        self.buffers = EgressBuffers(priority_queues, clock=self.clock)
        self._iwork: deque = deque()               # resubmitted / recirculated packets, before new ones
        self.transmit: Callable[[int, bytes], None] = lambda port, data: None
        self.packet_in: Callable[[bytes], None] = lambda data: None
        self.stats = {"rx": 0, "tx": 0, "dropped": 0}
        self._trace = log.isEnabledFor(logging.DEBUG)
        self._s: dict = {}

    # ------------------------------------------------------------------ config

    def set_program(self, program: Program | None) -> None:
        with self.lock:
            self.program = program
            self.pre.reset()
            self.mirror.clear()
            self.buffers.clear()
            self._iwork.clear()
            if program is None:
                return
            s = {name: (fi.slot if fi is not None else None) for name, fi in program.std.items()}
            self._s = s
            for name, slot in s.items():
                setattr(self, "_" + name, slot)
            self._es_mask = program.std["egress_spec"].mask
            self._ip_mask = program.std["ingress_port"].mask
            self._ep_mask = program.std["egress_port"].mask
            self._queueing = all(s[k] is not None for k in ("enq_timestamp", "enq_qdepth", "deq_timedelta", "deq_qdepth"))
            if self._queueing:
                self._enq_qdepth_mask = program.std["enq_qdepth"].mask
                self._deq_qdepth_mask = program.std["deq_qdepth"].mask
                self._qid_mask = program.std["qid"].mask if s["qid"] is not None else 0
            self._noerror = program.errors["NoError"]
            self._trace = log.isEnabledFor(logging.DEBUG)

    def _ts(self) -> int:
        return int((self.clock() - self.t0) * 1_000_000)

    # ------------------------------------------------------------------ packet path

    def receive(self, port: int, data: bytes) -> None:
        """A packet arrived on ``port`` (or a packet-out, on the CPU port)."""
        prog = self.program
        if prog is None:
            return
        with self.lock:
            prog = self.program
            if prog is None:
                return
            self.stats["rx"] += 1
            P = Packet()
            P.F = F = prog.F_init[:]
            P.V = prog.V_init[:]
            P.data = data
            n = len(data)
            P.ilen = P.len_reg = n
            P.ingress_port = port
            F[self._ingress_port] = port & self._ip_mask
            F[self._packet_length] = n & 0xFFFFFFFF
            if self._ingress_global_timestamp is not None:
                F[self._ingress_global_timestamp] = self._ts() & 0xFFFFFFFFFFFF
            if self._trace:
                log.debug("Processing packet received on port %d (%d bytes)", port, n)
            self._ingress(P)
            self._run()

    def _run(self) -> None:
        """Ingress for resubmitted/recirculated packets, egress for every queued
        packet that may leave now, until neither is left."""
        iwork = self._iwork
        buffers = self.buffers
        while True:
            while iwork:
                self._ingress(iwork.popleft())
            item = buffers.pop() if buffers.backlog else None
            if item is None:
                return
            self._egress(*item)

    def service(self) -> float | None:
        """Send what rate-limited queues now let go; the clock time of the next
        departure after that (None: nothing waits)."""
        with self.lock:
            if self.program is not None:
                self._run()
            return self.buffers.next_departure()

    def next_departure(self) -> float | None:
        return self.buffers.next_departure()

    def _copy_field_list(self, prog: Program, fl: int, src: list, dst: list) -> None:
        for f in prog.field_lists.get(fl, ()):
            dst[f.slot] = src[f.slot]
            if f.vl:
                dst[f.len_slot] = src[f.len_slot]

    def _ingress(self, P: Packet) -> None:
        prog = self.program
        F = P.F
        data = P.data
        ingress_size = P.len_reg
        P.perr = self._noerror
        P.cerr = 0
        prog.parse(P, data)
        if self._parser_error is not None:
            F[self._parser_error] = P.perr
        if self._checksum_error is not None:
            F[self._checksum_error] = P.cerr
        prog.ingress(P)
        P.exit = False
        egress_spec = F[self._egress_spec]

        if P.clone >= 0:                       # INGRESS CLONING
            sid, fl = P.clone, P.clone_fl
            P.clone, P.clone_fl = -1, 0
            mgid = self.mirror.get(sid)
            if mgid is not None:
                C = Packet()
                C.F = CF = prog.F_init[:]
                C.V = prog.V_init[:]
                C.data = data
                C.ilen = P.ilen
                C.len_reg = ingress_size
                C.ingress_port = P.ingress_port
                CF[self._ingress_port] = F[self._ingress_port]
                C.perr = self._noerror
                prog.parse(C, data)
                prog.reset_metadata(CF)
                self._copy_field_list(prog, fl, F, CF)
                CF[self._instance_type] = 1
                if self._trace:
                    log.debug("Cloning packet at ingress to session %d", sid)
                self._multicast(C, mgid)

        if P.resubmit:                         # RESUBMIT
            fl = P.resubmit
            P.resubmit = 0
            R = Packet()
            R.F = RF = prog.F_init[:]
            R.V = prog.V_init[:]
            R.data = data
            R.ilen = P.ilen
            R.ingress_port = P.ingress_port
            self._copy_field_list(prog, fl, F, RF)
            RF[self._instance_type] = 6
            R.len_reg = ingress_size
            RF[self._packet_length] = ingress_size & 0xFFFFFFFF
            if self._trace:
                log.debug("Resubmitting packet")
            self._iwork.append(R)
            return

        mg = self._mcast_grp
        mgid = F[mg] if mg is not None else 0
        if mgid:                               # MULTICAST
            F[self._instance_type] = 5
            self._multicast(P, mgid)
            return
        if egress_spec == self.drop_port:
            if self._trace:
                log.debug("Dropping packet at the end of ingress")
            self.stats["dropped"] += 1
            return
        F[self._instance_type] = 0
        self._enqueue(egress_spec, P)

    def _multicast(self, P: Packet, mgid: int) -> None:
        rid_slot = self._egress_rid
        F = P.F
        for port, rid in self.pre.replicate(mgid):
            if rid_slot is not None:
                F[rid_slot] = rid
            C = Packet()
            C.F = F[:]
            C.V = P.V[:]
            C.data = P.data
            C.payload = P.payload
            C.ilen = P.ilen
            C.len_reg = P.len_reg
            C.ingress_port = P.ingress_port
            self._enqueue(port, C)

    def _enqueue(self, port: int, P: Packet) -> None:
        P.egress_port = port
        ps = self._priority
        prio = P.F[ps] if ps is not None else 0
        if prio >= self.nb_queues:
            log.error("Priority out of range, dropping packet")
            self.stats["dropped"] += 1
            return
        depth = self.buffers.push(port, prio, P)
        if depth < 0:
            if self._trace:
                log.debug("Egress queue %d of port %d is full, dropping packet", prio, port)
            self.stats["dropped"] += 1
            return
        if self._queueing:      # egress has not run yet: setting these after the push is the same
            P.F[self._enq_timestamp] = self._ts() & 0xFFFFFFFF
            P.F[self._enq_qdepth] = depth & self._enq_qdepth_mask

    def _egress(self, port: int, prio: int, P: Packet, depth: int) -> None:
        prog = self.program
        F = P.F
        if self._egress_global_timestamp is not None:
            F[self._egress_global_timestamp] = self._ts() & 0xFFFFFFFFFFFF
        if self._queueing:
            F[self._deq_timedelta] = (self._ts() - F[self._enq_timestamp]) & 0xFFFFFFFF
            F[self._deq_qdepth] = depth & self._deq_qdepth_mask
            if self._qid is not None:
                F[self._qid] = prio & self._qid_mask
        F[self._egress_port] = port & self._ep_mask
        F[self._egress_spec] = (self.drop_port + 1) & self._es_mask
        F[self._packet_length] = P.len_reg & 0xFFFFFFFF
        prog.egress(P)
        P.exit = False

        if P.clone >= 0:                       # EGRESS CLONING
            sid, fl = P.clone, P.clone_fl
            P.clone, P.clone_fl = -1, 0
            mgid = self.mirror.get(sid)
            if mgid is not None:
                C = Packet()
                C.F = CF = F[:]
                C.V = P.V[:]
                prog.reset_metadata(CF)
                self._copy_field_list(prog, fl, F, CF)
                CF[self._instance_type] = 2
                C.data = P.data
                C.payload = P.payload
                C.ilen = P.ilen
                C.len_reg = P.len_reg
                C.ingress_port = P.ingress_port
                if self._trace:
                    log.debug("Cloning packet at egress to session %d", sid)
                self._multicast(C, mgid)

        if F[self._egress_spec] == self.drop_port:
            if self._trace:
                log.debug("Dropping packet at the end of egress")
            self.stats["dropped"] += 1
            return
        out = prog.deparse(P)

        if P.recirc:                           # RECIRCULATE
            fl = P.recirc
            R = Packet()
            R.F = RF = prog.F_init[:]
            R.V = prog.V_init[:]
            self._copy_field_list(prog, fl, F, RF)
            RF[self._instance_type] = 4
            n = len(out)
            R.data = out
            R.ilen = R.len_reg = n
            R.ingress_port = P.ingress_port
            RF[self._packet_length] = n & 0xFFFFFFFF
            if self._trace:
                log.debug("Recirculating packet")
            self._iwork.append(R)
            return
        if P.trunc < len(out):
            out = out[:P.trunc]
        self.stats["tx"] += 1
        if self._trace:
            log.debug("Transmitting packet of size %d out of port %d", len(out), port)
        if port == self.cpu_port:
            self.packet_in(out)
        else:
            self.transmit(port, out)

