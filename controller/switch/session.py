"""The state of one P4Runtime session and the helpers every part of it shares.

:class:`Session` holds what the stream, the pipeline calls, the writes and the
reads of a :class:`~controller.switch.SwitchConnection` work on, and turns a
failed RPC into the matching :class:`~controller.switch.errors.SwitchError`.
"""

from __future__ import annotations

import enum
import queue
import threading
from typing import Callable

import grpc
from p4protos import p4runtime_pb2, p4runtime_pb2_grpc

from .errors import NotPrimaryError, SwitchError, SwitchUnavailableError
from .transport import TlsConfig, is_loopback_address

class StreamState(str, enum.Enum):
    """Role of this connection as last reported on the stream."""

    PRIMARY = "primary"
    BACKUP = "backup"
    DISCONNECTED = "disconnected"


StateCallback = Callable[["Session", StreamState], None]


class Session:
    """State and shared helpers of one P4Runtime session with one device."""

    def __init__(
        self,
        address: str,
        device_id: int = 0,
        election_id: tuple[int, int] = (0, 1),
        tls: TlsConfig | None = None,
        allow_plaintext: bool | None = None,
        name: str | None = None,
        *,
        rpc_timeout: float | None = 60.0,
    ) -> None:
        self.address = address
        self.device_id = int(device_id)
        self.election_id = self._check_election_id(election_id)
        self.tls = tls
        self.name = name or address
        #: Deadline in seconds for unary RPCs (Write, Read, pipeline); None = no deadline.
        self.rpc_timeout = rpc_timeout

        if tls is None:
            plaintext_ok = allow_plaintext if allow_plaintext is not None else is_loopback_address(address)
            if not plaintext_ok:
                raise SwitchError(
                    f"refusing plaintext P4Runtime to {address} (device {self.device_id}): "
                    "the address is not loopback, and intercept provisioning must travel "
                    "over an encrypted, authenticated link (RFC 3924 §2.2). Configure TLS "
                    "(TlsConfig with the CA certificate, and a client certificate/key for "
                    "mutual auth), or pass allow_plaintext=True for an isolated lab only.",
                    address=address,
                    device_id=self.device_id,
                    operation="connect",
                )

        #: Packet-ins received on the stream (``p4runtime_pb2.PacketIn``).
        self.packet_ins: queue.Queue[p4runtime_pb2.PacketIn] = queue.Queue()
        #: Digest lists received on the stream (``p4runtime_pb2.DigestList``).
        self.digests: queue.Queue[p4runtime_pb2.DigestList] = queue.Queue()
        #: Idle-timeout notifications (``p4runtime_pb2.IdleTimeoutNotification``).
        self.idle_timeouts: queue.Queue[p4runtime_pb2.IdleTimeoutNotification] = queue.Queue()
        #: ``StreamError`` messages from the switch (e.g. a rejected packet-out).
        self.stream_errors: queue.Queue[p4runtime_pb2.StreamError] = queue.Queue()
        #: Set whenever the role or connectedness changes; clear it after handling.
        self.state_changed = threading.Event()

        self._channel: grpc.Channel | None = None
        self._stub: p4runtime_pb2_grpc.P4RuntimeStub | None = None
        self._stream_call = None
        self._req_q: queue.Queue[p4runtime_pb2.StreamMessageRequest | None] = queue.Queue()
        self._reader: threading.Thread | None = None
        self._cond = threading.Condition()
        self._rpc_lock = threading.Lock()  # one unary RPC in flight per connection
        self._arb_seq = 0
        self._state = StreamState.DISCONNECTED
        self._connected = False
        self._closing = False
        self._primary_election_id: tuple[int, int] | None = None
        self._last_arbitration_status: tuple[int, str] | None = None
        self._stream_error: SwitchError | None = None
        self._callbacks: list[StateCallback] = []

    # ------------------------------------------------------------------ helpers

    def __repr__(self) -> str:
        return (
            f"<SwitchConnection {self.name} {self.address} device={self.device_id} "
            f"election={self.election_id} state={self._state.value}>"
        )

    @staticmethod
    def _check_election_id(election_id: tuple[int, int]) -> tuple[int, int]:
        high, low = (int(x) for x in election_id)
        if not (0 <= high < 2**64 and 0 <= low < 2**64):
            raise SwitchError(f"election id {election_id!r} must be two unsigned 64-bit integers (high, low)")
        return (high, low)

    def _where(self) -> str:
        label = f"{self.name} " if self.name != self.address else ""
        return f"switch {label}({self.address}, device {self.device_id})"

    def _err(self, cls: type[SwitchError], message: str, operation: str, e: grpc.RpcError | None = None, **kw) -> SwitchError:
        code = e.code() if e is not None else None
        details = e.details() if e is not None else None
        return cls(
            message,
            address=self.address,
            device_id=self.device_id,
            operation=operation,
            grpc_code=code,
            details=details,
            **kw,
        )

    def _rpc_error(self, operation: str, e: grpc.RpcError) -> SwitchError:
        """Turn a failed unary/streaming RPC into the matching SwitchError."""
        code = e.code()
        details = e.details() or ""
        base = f"{operation} on {self._where()} failed: {code.name if code else '?'}: {details}"
        if code == grpc.StatusCode.PERMISSION_DENIED:
            return self._err(
                NotPrimaryError,
                f"{base} — this controller (election id {self.election_id}) is not primary"
                + (f"; the primary has election id {self._primary_election_id}" if self._primary_election_id else ""),
                operation,
                e,
            )
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return self._err(SwitchUnavailableError, f"{base} — is the switch running and reachable?", operation, e)
        if code == grpc.StatusCode.FAILED_PRECONDITION and "pipeline" in details.lower():
            return self._err(SwitchError, f"{base} — push a pipeline first (set_pipeline)", operation, e)
        return self._err(SwitchError, base, operation, e)

    def _require_stub(self, operation: str) -> p4runtime_pb2_grpc.P4RuntimeStub:
        if self._stub is None:
            raise SwitchError(
                f"{operation} on {self._where()}: not connected (call connect() first)",
                address=self.address,
                device_id=self.device_id,
                operation=operation,
            )
        return self._stub

    def _uint128(self, election_id: tuple[int, int] | None = None) -> p4runtime_pb2.Uint128:
        high, low = election_id or self.election_id
        return p4runtime_pb2.Uint128(high=high, low=low)
