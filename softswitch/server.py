"""The P4Runtime gRPC service: arbitration and RPCs as PI's ``pi_server.cpp``.

* The highest election id among the open streams of a device is primary;
  every stream learns about changes (OK = primary, ALREADY_EXISTS = backup,
  with the primary's election id).  A second stream with an election id
  already in use ends with INVALID_ARGUMENT; more than 16 streams with
  RESOURCE_EXHAUSTED; a stream switching device ids with FAILED_PRECONDITION.
* Write and SetForwardingPipelineConfig need the primary's election id
  (PERMISSION_DENIED "Not primary" otherwise); with no stream open, only a
  request *without* an election id is accepted.
* Read/Write/GetForwardingPipelineConfig before any pipeline: FAILED_PRECONDITION.
* Errors carry the ``google.rpc.Status`` in ``grpc-status-details-bin``, with
  one ``p4.v1.Error`` per update for a failed batch.
* Packet-outs are accepted from the primary only; packet-ins go to the primary.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
from google.rpc import code_pb2, status_pb2
from p4protos import p4runtime_pb2 as p4v1
from p4protos import p4runtime_pb2_grpc

from .runtime import Device, P4RTError

__all__ = ["P4RUNTIME_API_VERSION", "P4RuntimeServer"]

log = logging.getLogger("softswitch.grpc")

P4RUNTIME_API_VERSION = "1.3.0"
MAX_CONNECTIONS = 16
_CODES = {sc.value[0]: sc for sc in grpc.StatusCode}
_END = object()


def _set_status(context: grpc.ServicerContext, st: status_pb2.Status) -> None:
    if st.code == code_pb2.OK:
        return
    context.set_trailing_metadata((("grpc-status-details-bin", st.SerializeToString()),))
    context.set_code(_CODES.get(st.code, grpc.StatusCode.UNKNOWN))
    context.set_details(st.message)


def _plain(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> None:
    context.set_code(code)
    context.set_details(message)


class _Connection:
    _ids = 0

    def __init__(self, election: tuple[int, int]) -> None:
        _Connection._ids += 1
        self.id = _Connection._ids
        self.election = election
        self.out: queue.Queue = queue.Queue()
        self.device_id = 0


class _DeviceState:
    """Arbitration state of one device id (PI's DeviceState)."""

    def __init__(self, device_id: int, device: Device | None) -> None:
        self.device_id = device_id
        self.device = device                  # the Device manager (None: not this switch's device)
        self.mgr_ready = False                 # PI creates the DeviceMgr on the first SetPipeline
        self.conns: list[_Connection] = []
        self.lock = threading.RLock()

    def primary(self) -> _Connection | None:
        return max(self.conns, key=lambda c: c.election) if self.conns else None

    def is_primary(self, election: tuple[int, int]) -> bool:
        with self.lock:
            p = self.primary()
            return p is not None and p.election == election

    def _notify(self, conn: _Connection) -> None:
        p = self.primary()
        msg = p4v1.StreamMessageResponse()
        arb = msg.arbitration
        arb.device_id = self.device_id
        arb.election_id.high, arb.election_id.low = p.election
        if conn is p:
            arb.status.code, arb.status.message = code_pb2.OK, "Is primary"
        else:
            arb.status.code, arb.status.message = code_pb2.ALREADY_EXISTS, "Is backup"
        conn.out.put(msg)

    def _notify_all(self) -> None:
        for c in self.conns:
            self._notify(c)

    def add(self, conn: _Connection) -> tuple[grpc.StatusCode, str] | None:
        with self.lock:
            if len(self.conns) >= MAX_CONNECTIONS:
                return grpc.StatusCode.RESOURCE_EXHAUSTED, "Too many connections"
            if any(c.election == conn.election for c in self.conns):
                return grpc.StatusCode.INVALID_ARGUMENT, "Election id already exists"
            self.conns.append(conn)
            if self.primary() is conn:
                self._notify_all()
            else:
                self._notify(conn)
            return None

    def update(self, conn: _Connection, election: tuple[int, int]) -> tuple[grpc.StatusCode, str] | None:
        with self.lock:
            if conn.election == election:
                return None
            was_primary = self.primary() is conn
            if any(c is not conn and c.election == election for c in self.conns):
                self.conns.remove(conn)
                if was_primary and self.conns:
                    self._notify_all()
                return grpc.StatusCode.INVALID_ARGUMENT, "New election id already exists"
            conn.election = election
            if (self.primary() is conn) != was_primary:
                self._notify_all()
            else:
                self._notify(conn)
            return None

    def remove(self, conn: _Connection) -> None:
        with self.lock:
            if conn not in self.conns:
                return
            was_primary = self.primary() is conn
            self.conns.remove(conn)
            if was_primary and self.conns:
                self._notify_all()

    def send_to_primary(self, msg: p4v1.StreamMessageResponse) -> None:
        with self.lock:
            p = self.primary()
        if p is not None:
            p.out.put(msg)


class P4RuntimeServicer(p4runtime_pb2_grpc.P4RuntimeServicer):
    def __init__(self, device: Device, inject) -> None:
        self.device = device
        self.inject = inject       # (port, bytes) -> None: queue a packet on the CPU port
        self.states: dict[int, _DeviceState] = {}
        self._lock = threading.Lock()

    def state(self, device_id: int) -> _DeviceState:
        with self._lock:
            st = self.states.get(device_id)
            if st is None:
                dev = self.device if device_id == self.device.device_id else None
                st = self.states[device_id] = _DeviceState(device_id, dev)
            return st

    # ------------------------------------------------------------------ helpers

    def _check_primary(self, st: _DeviceState, request: Any, context) -> bool:
        with st.lock:
            n = len(st.conns)
        if n == 0 and request.HasField("election_id"):
            _plain(context, grpc.StatusCode.PERMISSION_DENIED, "Not primary")
            return False
        election = (request.election_id.high, request.election_id.low)
        if n > 0 and not st.is_primary(election):
            _plain(context, grpc.StatusCode.PERMISSION_DENIED, "Not primary")
            return False
        return True

    @staticmethod
    def _no_pipeline(context) -> None:
        _plain(context, grpc.StatusCode.FAILED_PRECONDITION, "No forwarding pipeline config set for this device")

    # ------------------------------------------------------------------ RPCs

    def Write(self, request: p4v1.WriteRequest, context) -> p4v1.WriteResponse:
        st = self.state(request.device_id)
        if not self._check_primary(st, request, context):
            return p4v1.WriteResponse()
        if st.device is None or not st.mgr_ready:
            self._no_pipeline(context)
            return p4v1.WriteResponse()
        if not st.device.ready:
            # PI: DeviceMgr exists but no P4Info yet -> every update fails
            pass
        try:
            status = st.device.write(request) if st.device.ready else _no_config_write(request)
        except Exception as e:  # never take the server down
            log.exception("Write failed")
            status = status_pb2.Status(code=code_pb2.INTERNAL, message=str(e))
        _set_status(context, status)
        return p4v1.WriteResponse()

    def Read(self, request: p4v1.ReadRequest, context) -> Iterator[p4v1.ReadResponse]:
        st = self.state(request.device_id)
        if st.device is None or not st.mgr_ready:
            self._no_pipeline(context)
            return
        if not st.device.ready:
            yield p4v1.ReadResponse()
            return
        try:
            entities, status = st.device.read(request)
        except Exception as e:
            log.exception("Read failed")
            entities, status = [], status_pb2.Status(code=code_pb2.INTERNAL, message=str(e))
        yield p4v1.ReadResponse(entities=entities)
        _set_status(context, status)

    def SetForwardingPipelineConfig(self, request, context):
        st = self.state(request.device_id)
        if not self._check_primary(st, request, context):
            return p4v1.SetForwardingPipelineConfigResponse()
        if st.device is None:
            _set_status(context, status_pb2.Status(code=code_pb2.UNKNOWN,
                                                   message="Error when trying to assign device"))
            return p4v1.SetForwardingPipelineConfigResponse()
        st.mgr_ready = True
        try:
            st.device.set_pipeline(request.action, request.config)
        except P4RTError as e:
            _set_status(context, status_pb2.Status(code=e.code, message=e.message))
        except Exception as e:
            log.exception("SetForwardingPipelineConfig failed")
            _set_status(context, status_pb2.Status(code=code_pb2.INTERNAL, message=str(e)))
        return p4v1.SetForwardingPipelineConfigResponse()

    def GetForwardingPipelineConfig(self, request, context):
        st = self.state(request.device_id)
        if st.device is None or not st.mgr_ready:
            self._no_pipeline(context)
            return p4v1.GetForwardingPipelineConfigResponse()
        try:
            cfg = st.device.get_pipeline(request.response_type)
        except P4RTError as e:
            _set_status(context, status_pb2.Status(code=e.code, message=e.message))
            return p4v1.GetForwardingPipelineConfigResponse()
        return p4v1.GetForwardingPipelineConfigResponse(config=cfg)

    def Capabilities(self, request, context):
        return p4v1.CapabilitiesResponse(p4runtime_api_version=P4RUNTIME_API_VERSION)

    def StreamChannel(self, request_iterator, context):
        holder: dict[str, Any] = {"conn": None, "state": None}
        out: queue.Queue = queue.Queue()

        def reader() -> None:
            try:
                for req in request_iterator:
                    which = req.WhichOneof("update")
                    if which == "arbitration":
                        arb = req.arbitration
                        election = (arb.election_id.high, arb.election_id.low)
                        c = holder["conn"]
                        if c is not None and c.device_id != arb.device_id:
                            out.put(("abort", grpc.StatusCode.FAILED_PRECONDITION, "Invalid device id"))
                            return
                        st = self.state(arb.device_id)
                        if c is None:
                            c = _Connection(election)
                            c.out = out
                            c.device_id = arb.device_id
                            err = st.add(c)
                            if err is not None:
                                out.put(("abort", *err))
                                return
                            holder["conn"], holder["state"] = c, st
                        else:
                            err = st.update(c, election)
                            if err is not None:
                                holder["conn"] = None
                                out.put(("abort", *err))
                                return
                    elif which == "packet":
                        c, st = holder["conn"], holder["state"]
                        if c is None or st is None or st.device is None or not st.mgr_ready:
                            continue
                        if not st.is_primary(c.election):
                            continue
                        self._packet_out(st, req.packet)
                    # digest acks and others: ignored, as PI does without digests
            except grpc.RpcError:
                pass
            except Exception:
                log.exception("stream reader failed")
            finally:
                out.put(_END)

        t = threading.Thread(target=reader, name="p4rt-stream", daemon=True)
        t.start()
        try:
            while True:
                item = out.get()
                if item is _END:
                    break
                if isinstance(item, tuple) and item and item[0] == "abort":
                    _, code, msg = item
                    _plain(context, code, msg)
                    return
                yield item
        finally:
            c, st = holder["conn"], holder["state"]
            if c is not None and st is not None:
                st.remove(c)

    def _packet_out(self, st: _DeviceState, pkt: p4v1.PacketOut) -> None:
        dev = st.device
        if not dev.ready:
            return
        cpu = dev.switch.cpu_port
        if cpu is None:
            return  # bmv2 without --cpu-port: no packet I/O
        try:
            raw = dev.packet_out_bytes(pkt)
        except P4RTError as e:
            log.warning("packet-out rejected: %s", e.message)
            return
        self.inject(cpu, raw)

    def packet_in(self, data: bytes) -> None:
        """Called by the data plane for every packet sent to the CPU port."""
        st = self.state(self.device.device_id)
        if not self.device.ready:
            return
        pin = self.device.packet_in_msg(data)
        if pin is None:
            return
        st.send_to_primary(p4v1.StreamMessageResponse(packet=pin))


def _no_config_write(request: p4v1.WriteRequest) -> status_pb2.Status:
    """A Write after a failed first SetForwardingPipelineConfig: PI's DeviceMgr
    has no P4Info, so every update's id is invalid."""
    from google.protobuf import any_pb2
    if not request.updates:
        return status_pb2.Status(code=code_pb2.OK)
    st = status_pb2.Status(code=code_pb2.UNKNOWN)
    for _ in request.updates:
        a = any_pb2.Any()
        a.Pack(p4v1.Error(canonical_code=code_pb2.INVALID_ARGUMENT, message="Invalid P4 id", space="ALL-sswitch-p4org"))
        st.details.append(a)
    return st


class P4RuntimeServer:
    def __init__(self, address: str, device: Device, inject, *, tls: dict | None = None,
                 max_workers: int = 40) -> None:
        opts = [("grpc.max_receive_message_length", 256 * 1024 * 1024),
                ("grpc.max_send_message_length", 256 * 1024 * 1024),
                ("grpc.so_reuseport", 0)]
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="p4rt"),
                                  options=opts)
        self.servicer = P4RuntimeServicer(device, inject)
        p4runtime_pb2_grpc.add_P4RuntimeServicer_to_server(self.servicer, self.server)
        if tls:
            creds = grpc.ssl_server_credentials(
                [(tls["key"], tls["cert"])], root_certificates=tls.get("ca"),
                require_client_auth=bool(tls.get("client_auth")))
            port = self.server.add_secure_port(address, creds)
        else:
            port = self.server.add_insecure_port(address)
        if port == 0 and not address.startswith("unix"):
            raise OSError(f"cannot bind the gRPC server to {address}")
        self.address = address

    def start(self) -> None:
        self.server.start()

    def stop(self, grace: float = 0.5) -> None:
        self.server.stop(grace).wait(5)
