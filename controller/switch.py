"""One P4Runtime client per switch device, on the p4runtime protos over grpcio.

Why not p4runtime-shell's ``P4RuntimeClient``?  It keeps one process-wide
client, and calls ``sys.exit`` when something goes wrong.  A tap controller
manages several switches at once and must survive a switch that restarts or a
primary role that moves to another controller, so every failure here is an
exception (a subclass of :class:`SwitchError`) that names the switch, the
operation and the gRPC status, and the controller decides what to do.

Design notes:

* The StreamChannel is the P4Runtime session: the arbitration update sent on it
  decides which controller is *primary* (only the primary may write).
  :meth:`SwitchConnection.connect` waits for the switch's arbitration reply
  before returning, because bmv2 (PI) races if a pipeline is pushed before the
  stream is registered.
* A reader thread follows the stream for the life of the connection: later
  arbitration updates (primary lost or regained), packet-ins, digests and the
  end of the stream.  Controllers learn about changes through
  :meth:`SwitchConnection.on_state_change` callbacks or the
  :attr:`SwitchConnection.state_changed` event, so they can back off and
  reconcile instead of writing into a switch that no longer accepts them.
* One unary RPC at a time per connection (`_rpc_lock`), beside the stream,
  and the stream ended by half-closing it (the server then ends it) rather
  than by cancelling it while the server may be writing on it. bmv2's P4Runtime
  server (PI's sync gRPC server) died under the IAP in a sync-server worker
  (issue 27; README, Toolchain); nothing shows that the calls' pattern causes
  it, but a controller needs no concurrency on one switch, and a client that
  keeps to what every server handles (no parallel unary calls, no cancelled
  stream writes) is not the one exercising a server's rarest paths.
* Plaintext gRPC is only allowed to loopback (or when explicitly asked for):
  RFC 3924 §2.2 wants the intercept configuration to travel over an
  authenticated, encrypted link, and the intercept tables are exactly the
  sensitive state it is talking about.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import grpc
from google.rpc import code_pb2, status_pb2
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from controller import wire

log = logging.getLogger(__name__)

__all__ = [
    "SwitchError",
    "SwitchUnavailableError",
    "NotPrimaryError",
    "WriteError",
    "TlsConfig",
    "StreamState",
    "SwitchConnection",
    "is_loopback_address",
    "DEFAULT_BATCH_SIZE",
]

#: Default number of updates per Write RPC in :meth:`SwitchConnection.write_batched`.
#: bmv2 handles thousands of updates per RPC; 1000 keeps each message well under
#: gRPC's size limits even for wide ternary keys.
DEFAULT_BATCH_SIZE = 1000

#: Seconds `close` waits for the switch to end a half-closed stream before cancelling it.
CLOSE_GRACE = 2.0
#: Seconds `close` lets a unary RPC in flight finish before the channel (and the RPC) is closed.
RPC_DRAIN = 5.0

# A bmv2 JSON for a real program is a few MB; GetForwardingPipelineConfig with
# ALL returns it back, which would trip gRPC's 4 MB default receive limit.
_MAX_MESSAGE_BYTES = 256 * 1024 * 1024

Atomicity = p4runtime_pb2.WriteRequest.Atomicity


def _code_name(code: int) -> str:
    """Name of a google.rpc.Code number (e.g. 6 -> 'ALREADY_EXISTS')."""
    try:
        return code_pb2.Code.Name(code)
    except ValueError:
        return f"CODE_{code}"


def _grpc_code_number(code: grpc.StatusCode | None) -> int:
    if code is None:
        return code_pb2.UNKNOWN
    return code.value[0]


# --------------------------------------------------------------------------- errors


class SwitchError(Exception):
    """Any failure talking to a switch.

    Carries what an operator needs to act: which switch (address, device id),
    which operation, and the gRPC status code and details when there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        address: str | None = None,
        device_id: int | None = None,
        operation: str | None = None,
        grpc_code: grpc.StatusCode | None = None,
        details: str | None = None,
    ) -> None:
        super().__init__(message)
        self.address = address
        self.device_id = device_id
        self.operation = operation
        self.grpc_code = grpc_code
        self.details = details


class SwitchUnavailableError(SwitchError):
    """The switch cannot be reached (not listening, restarting, link down)."""


class NotPrimaryError(SwitchError):
    """This connection is not the primary controller, so the switch refused a write.

    Another controller with a higher election id holds the primary role (or
    the stream was lost).  Re-arbitrate with :meth:`SwitchConnection.become_primary`
    or leave the switch to the primary.
    """


class WriteError(SwitchError):
    """A Write RPC failed for some of its updates.

    ``errors`` lists only the failing updates, as ``(index, canonical_code,
    message)`` where ``index`` is the position of the update in the list given
    to :meth:`SwitchConnection.write` (or :meth:`~SwitchConnection.write_batched`)
    and ``canonical_code`` a ``google.rpc.Code`` number.  With
    CONTINUE_ON_ERROR the updates not listed were applied.
    """

    def __init__(self, message: str, errors: list[tuple[int, int, str]], **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.errors = errors

    @property
    def codes(self) -> set[int]:
        """The distinct canonical codes among the failing updates."""
        return {code for _, code, _ in self.errors}


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class TlsConfig:
    """TLS for the P4Runtime channel.

    ``ca_cert`` verifies the switch's certificate.  Give ``client_cert`` and
    ``client_key`` together for mutual authentication (the switch then knows
    which controller is provisioning intercepts).  ``server_name_override`` is
    for certificates whose name does not match the address dialled (e.g. a lab
    switch reached by IP); leave it unset in production.
    """

    ca_cert: Path
    client_cert: Path | None = None
    client_key: Path | None = None
    server_name_override: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.client_cert is None) != (self.client_key is None):
            raise SwitchError(
                "TLS: client_cert and client_key must be given together "
                "(both for mutual authentication, or neither)"
            )

        def read(path: Path, what: str) -> bytes:
            try:
                return Path(path).read_bytes()
            except OSError as e:
                raise SwitchError(f"TLS: cannot read {what} {path}: {e.strerror or e}") from e

        root = read(self.ca_cert, "CA certificate")
        key = read(self.client_key, "client key") if self.client_key else None
        chain = read(self.client_cert, "client certificate") if self.client_cert else None
        return grpc.ssl_channel_credentials(
            root_certificates=root, private_key=key, certificate_chain=chain
        )


class StreamState(str, enum.Enum):
    """Role of this connection as last reported on the stream."""

    PRIMARY = "primary"
    BACKUP = "backup"
    DISCONNECTED = "disconnected"


StateCallback = Callable[["SwitchConnection", StreamState], None]


def _split_host(address: str) -> str | None:
    """Host part of a gRPC target ``host:port`` / ``[v6]:port`` / ``ipv4:host:port``.

    Returns None for unix-domain targets (``unix:/path``), which are local.
    """
    addr = address.strip()
    if addr.startswith(("unix:", "unix-abstract:")):
        return None
    for scheme in ("dns:///", "ipv4:", "ipv6:"):
        if addr.startswith(scheme):
            addr = addr[len(scheme):]
            break
    if addr.startswith("["):
        end = addr.find("]")
        return addr[1:end] if end > 0 else addr[1:]
    if addr.count(":") == 1:
        return addr.rsplit(":", 1)[0]
    return addr  # bare host, or bare IPv6 without port


def is_loopback_address(address: str) -> bool:
    """True if a gRPC target stays on this host (127.0.0.0/8, ::1, localhost, unix:).

    Names other than ``localhost`` are not resolved: a name could resolve
    anywhere, and we refuse plaintext on a guess.
    """
    host = _split_host(address)
    if host is None:
        return True
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- client


class SwitchConnection:
    """P4Runtime session with one device of one switch.

    Typical use::

        with SwitchConnection("127.0.0.1:9559", device_id=0, election_id=(0, 1)) as sw:
            if not sw.is_primary:
                ...  # another controller is primary
            sw.set_pipeline(p4info, bmv2_json)
            sw.write([update, ...])

    Thread-safety: unary RPCs may be issued from several threads; they are sent
    one at a time (the next waits for the previous to finish). The stream is
    owned by an internal reader thread.  Callbacks registered with
    :meth:`on_state_change` run on that reader thread and must not block.
    """

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

    # ------------------------------------------------------------------ state

    @property
    def is_primary(self) -> bool:
        """True while the switch's last arbitration update said we are primary."""
        with self._cond:
            return self._connected and self._state is StreamState.PRIMARY

    @property
    def connected(self) -> bool:
        """True while the StreamChannel is open (False before connect, after close or a stream failure)."""
        with self._cond:
            return self._connected

    @property
    def state(self) -> StreamState:
        with self._cond:
            return self._state

    @property
    def primary_election_id(self) -> tuple[int, int] | None:
        """Election id of the current primary as last reported by the switch."""
        with self._cond:
            return self._primary_election_id

    @property
    def stream_error(self) -> SwitchError | None:
        """Why the stream ended, if it ended unexpectedly."""
        with self._cond:
            return self._stream_error

    def on_state_change(self, callback: StateCallback) -> None:
        """Call ``callback(conn, state)`` on every role or connectedness change.

        Runs on the reader thread: hand the work to another thread (e.g. set
        an event or put on a queue) rather than issuing RPCs from it.
        """
        with self._cond:
            self._callbacks.append(callback)

    def _set_state(self, state: StreamState) -> None:
        with self._cond:
            changed = state is not self._state
            self._state = state
            callbacks = list(self._callbacks)
        if changed:
            log.info("%s: %s", self._where(), state.value)
            self.state_changed.set()
            for cb in callbacks:
                try:
                    cb(self, state)
                except Exception:  # a buggy callback must not kill the reader
                    log.exception("%s: state-change callback failed", self._where())

    # ------------------------------------------------------------------ connect

    def connect(self, timeout: float = 10.0) -> None:
        """Open the channel and the stream, and arbitrate.

        Returns once the switch has answered the arbitration update, so that
        :attr:`is_primary` is meaningful and a pipeline can be pushed safely.
        Raises :class:`SwitchUnavailableError` if the switch cannot be reached
        within ``timeout`` seconds, :class:`SwitchError` if it rejects the
        arbitration (e.g. another controller already uses this election id).
        """
        if self._channel is not None:
            raise SwitchError(f"{self._where()}: already connected", address=self.address, device_id=self.device_id)
        options = [
            ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
            # A failed Write carries one p4.v1.Error per update in its trailer:
            # ~100 bytes each, far over gRPC's 16 KiB default for big batches.
            ("grpc.max_metadata_size", _MAX_MESSAGE_BYTES),
        ]
        if self.tls is not None:
            if self.tls.server_name_override:
                options.append(("grpc.ssl_target_name_override", self.tls.server_name_override))
            channel = grpc.secure_channel(self.address, self.tls.credentials(), options=options)
        else:
            channel = grpc.insecure_channel(self.address, options=options)
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            channel.close()
            hint = " (or the TLS handshake failed: check the CA and certificates)" if self.tls else ""
            raise SwitchUnavailableError(
                f"cannot reach P4Runtime server of {self._where()} within {timeout:g}s{hint}: "
                "is the switch running and listening on that address?",
                address=self.address,
                device_id=self.device_id,
                operation="connect",
            ) from None

        self._channel = channel
        self._stub = p4runtime_pb2_grpc.P4RuntimeStub(channel)
        self._closing = False
        self._req_q = queue.Queue()
        with self._cond:
            self._stream_error = None
            self._connected = True
            seq = self._arb_seq
        self._stream_call = self._stub.StreamChannel(self._request_iter(self._req_q))
        self._reader = threading.Thread(
            target=self._read_stream, args=(self._stream_call,), name=f"p4rt-stream-{self.name}", daemon=True
        )
        self._reader.start()
        try:
            self._arbitrate(self.election_id, seq, timeout)
        except BaseException:
            self.close()
            raise

    def become_primary(self, election_id: tuple[int, int], timeout: float = 10.0) -> bool:
        """Re-arbitrate with a new election id; return whether we are now primary.

        A controller that lost the primary role (another one connected with a
        higher id) uses this to take it back with a higher id still.  The id
        must not be in use by another controller: bmv2 (PI) then ends this
        stream with INVALID_ARGUMENT, and a :class:`SwitchError` is raised.
        """
        election_id = self._check_election_id(election_id)
        if election_id == self.election_id and self.connected:
            # PI does not answer an arbitration that changes nothing.
            return self.is_primary
        with self._cond:
            if not self._connected:
                raise SwitchError(
                    f"become_primary on {self._where()}: not connected",
                    address=self.address,
                    device_id=self.device_id,
                    operation="arbitration",
                )
            seq = self._arb_seq
        self.election_id = election_id
        self._arbitrate(election_id, seq, timeout)
        return self.is_primary

    def _arbitrate(self, election_id: tuple[int, int], seq: int, timeout: float) -> None:
        req = p4runtime_pb2.StreamMessageRequest()
        req.arbitration.device_id = self.device_id
        req.arbitration.election_id.CopyFrom(self._uint128(election_id))
        self._req_q.put(req)
        with self._cond:
            ok = self._cond.wait_for(lambda: self._arb_seq > seq or not self._connected, timeout=timeout)
            if self._arb_seq > seq:
                return
            err = self._stream_error
        if err is not None:
            raise err
        if not ok:
            raise SwitchUnavailableError(
                f"{self._where()} did not answer the arbitration update (election id {election_id}) "
                f"within {timeout:g}s",
                address=self.address,
                device_id=self.device_id,
                operation="arbitration",
            )
        raise SwitchError(
            f"{self._where()} closed the stream during arbitration",
            address=self.address,
            device_id=self.device_id,
            operation="arbitration",
        )

    @staticmethod
    def _request_iter(q: queue.Queue) -> Iterator[p4runtime_pb2.StreamMessageRequest]:
        while True:
            msg = q.get()
            if msg is None:
                return
            yield msg

    def _read_stream(self, call) -> None:
        """Reader thread: dispatch stream messages until the stream ends."""
        try:
            for msg in call:
                kind = msg.WhichOneof("update")
                if kind == "arbitration":
                    self._on_arbitration(msg.arbitration)
                elif kind == "packet":
                    self.packet_ins.put(msg.packet)
                elif kind == "digest":
                    self.digests.put(msg.digest)
                    # Ack so the switch keeps sending digests for this list.
                    ack = p4runtime_pb2.StreamMessageRequest()
                    ack.digest_ack.digest_id = msg.digest.digest_id
                    ack.digest_ack.list_id = msg.digest.list_id
                    self._req_q.put(ack)
                elif kind == "idle_timeout_notification":
                    self.idle_timeouts.put(msg.idle_timeout_notification)
                elif kind == "error":
                    log.warning(
                        "%s: stream error %s: %s", self._where(), _code_name(msg.error.canonical_code), msg.error.message
                    )
                    self.stream_errors.put(msg.error)
                else:
                    log.debug("%s: ignoring stream message %s", self._where(), kind)
            err = None if self._closing else self._err(
                SwitchUnavailableError, f"{self._where()} closed the P4Runtime stream", "stream"
            )
        except grpc.RpcError as e:
            if self._closing and e.code() == grpc.StatusCode.CANCELLED:
                err = None
            elif e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                err = self._err(
                    SwitchUnavailableError,
                    f"P4Runtime stream to {self._where()} lost: {e.code().name}: {e.details()}",
                    "stream",
                    e,
                )
            else:
                err = self._err(
                    SwitchError,
                    f"{self._where()} ended the P4Runtime stream: {e.code().name}: {e.details()}",
                    "stream",
                    e,
                )
        except Exception as e:  # never let the reader die silently
            log.exception("%s: stream reader failed", self._where())
            err = SwitchError(f"stream reader for {self._where()} failed: {e!r}", address=self.address, device_id=self.device_id)
        if err is not None:
            log.warning("%s", err)
        with self._cond:
            self._stream_error = err
            self._connected = False
            self._cond.notify_all()
        self._set_state(StreamState.DISCONNECTED)

    def _on_arbitration(self, arb: p4runtime_pb2.MasterArbitrationUpdate) -> None:
        code = arb.status.code
        # OK = we are primary; ALREADY_EXISTS = someone else is; NOT_FOUND = nobody is.
        state = StreamState.PRIMARY if code == code_pb2.OK else StreamState.BACKUP
        with self._cond:
            if arb.HasField("election_id"):
                self._primary_election_id = (arb.election_id.high, arb.election_id.low)
            self._last_arbitration_status = (code, arb.status.message)
            self._arb_seq += 1
            self._cond.notify_all()
        self._set_state(state)

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        """End the stream and the channel.  Safe to call more than once.

        The stream is half-closed and the switch left to end it (PI returns
        from StreamChannel once its Read sees the end); it is cancelled only
        if the switch does not within CLOSE_GRACE seconds. A unary RPC in
        flight is let finish (up to RPC_DRAIN seconds) before the channel goes."""
        self._closing = True
        self._req_q.put(None)
        call, self._stream_call = self._stream_call, None
        reader, self._reader = self._reader, None
        on_reader = reader is threading.current_thread()
        if reader is not None and not on_reader:
            reader.join(timeout=CLOSE_GRACE)
        if call is not None and (on_reader or reader is None or reader.is_alive()):
            call.cancel()
        if reader is not None and not on_reader:
            reader.join(timeout=5)
        finished = self._rpc_lock.acquire(timeout=RPC_DRAIN)
        channel, self._channel = self._channel, None
        self._stub = None
        if channel is not None:
            channel.close()
        if finished:
            self._rpc_lock.release()
        with self._cond:
            was = self._connected
            self._connected = False
            self._cond.notify_all()
        if was:
            self._set_state(StreamState.DISCONNECTED)

    def reconnect(self, timeout: float = 10.0) -> None:
        """Close and connect again with the same election id (after the switch restarted or the stream dropped).

        A restarted bmv2 has no pipeline and no entries: the caller must
        push the pipeline and reconcile its state afterwards.
        """
        self.close()
        self.connect(timeout=timeout)

    def __enter__(self) -> "SwitchConnection":
        if self._channel is None:
            self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ pipeline

    def set_pipeline(self, p4info: p4info_pb2.P4Info, device_config: bytes, cookie: int | None = None) -> None:
        """Push a P4 program (VERIFY_AND_COMMIT): P4Info plus the target config (bmv2 JSON)."""
        stub = self._require_stub("SetForwardingPipelineConfig")
        req = p4runtime_pb2.SetForwardingPipelineConfigRequest(
            device_id=self.device_id,
            election_id=self._uint128(),
            action=p4runtime_pb2.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT,
        )
        req.config.p4info.CopyFrom(p4info)
        req.config.p4_device_config = bytes(device_config)
        if cookie is not None:
            req.config.cookie.cookie = cookie
        try:
            with self._rpc_lock:
                stub.SetForwardingPipelineConfig(req, timeout=self.rpc_timeout)
        except grpc.RpcError as e:
            raise self._rpc_error("SetForwardingPipelineConfig", e) from None

    def get_pipeline(
        self,
        response_type: int = p4runtime_pb2.GetForwardingPipelineConfigRequest.ALL,
    ) -> p4runtime_pb2.ForwardingPipelineConfig:
        """The switch's current pipeline; use COOKIE_ONLY / P4INFO_AND_COOKIE to skip the big device config."""
        stub = self._require_stub("GetForwardingPipelineConfig")
        req = p4runtime_pb2.GetForwardingPipelineConfigRequest(device_id=self.device_id, response_type=response_type)
        try:
            with self._rpc_lock:
                return stub.GetForwardingPipelineConfig(req, timeout=self.rpc_timeout).config
        except grpc.RpcError as e:
            raise self._rpc_error("GetForwardingPipelineConfig", e) from None

    def capabilities(self) -> str:
        """The P4Runtime API version the switch implements (e.g. '1.3.0')."""
        stub = self._require_stub("Capabilities")
        try:
            with self._rpc_lock:
                return stub.Capabilities(p4runtime_pb2.CapabilitiesRequest(),
                                         timeout=self.rpc_timeout).p4runtime_api_version
        except grpc.RpcError as e:
            raise self._rpc_error("Capabilities", e) from None

    # ------------------------------------------------------------------ write

    def write(
        self,
        updates: Sequence[p4runtime_pb2.Update],
        atomicity: int = p4runtime_pb2.WriteRequest.CONTINUE_ON_ERROR,
    ) -> None:
        """Apply ``updates`` in one Write RPC.

        Raises :class:`WriteError` listing the failing updates (the others were
        applied under CONTINUE_ON_ERROR), :class:`NotPrimaryError` if the
        switch does not take writes from us, :class:`SwitchUnavailableError`
        if it cannot be reached.
        """
        if not updates:
            return
        stub = self._require_stub("Write")
        req = p4runtime_pb2.WriteRequest(
            device_id=self.device_id, election_id=self._uint128(), atomicity=atomicity
        )
        req.updates.extend(updates)
        self._send_write(stub.Write, req, len(updates))

    def write_encoded(
        self,
        updates: Sequence[bytes],
        atomicity: int = p4runtime_pb2.WriteRequest.CONTINUE_ON_ERROR,
    ) -> None:
        """:meth:`write` for updates already serialized (``p4.v1.Update``
        bytes, see controller.wire): the request is put together as bytes,
        so no protobuf message is built or copied per update. Same errors."""
        if not updates:
            return
        self._require_stub("Write")
        assert self._channel is not None
        header = p4runtime_pb2.WriteRequest(device_id=self.device_id, election_id=self._uint128(), atomicity=atomicity)
        write = self._channel.unary_unary(
            "/p4.v1.P4Runtime/Write", request_serializer=None,
            response_deserializer=p4runtime_pb2.WriteResponse.FromString)
        self._send_write(write, wire.write_request(header, updates), len(updates))

    def _send_write(self, call: Callable, request: p4runtime_pb2.WriteRequest | bytes, n_updates: int) -> None:
        try:
            with self._rpc_lock:
                call(request, timeout=self.rpc_timeout)
        except grpc.RpcError as e:
            code = e.code()
            if code in (
                grpc.StatusCode.PERMISSION_DENIED,
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
            ):
                raise self._rpc_error("Write", e) from None
            raise self._write_error(e, n_updates) from None

    def _write_error(self, e: grpc.RpcError, n_updates: int, offset: int = 0) -> WriteError:
        errors = decode_write_errors(e)
        if errors is None:
            # No per-update details: a request-level failure (e.g. no pipeline,
            # unsupported atomicity).  With a single update it is that update's.
            if n_updates == 1:
                errors = [(0, _grpc_code_number(e.code()), e.details() or "")]
            else:
                errors = []
        errors = [(i + offset, c, m) for i, c, m in errors]
        return self._make_write_error(errors, n_updates, e)

    def _make_write_error(self, errors: list[tuple[int, int, str]], n_updates: int, e: grpc.RpcError | None) -> WriteError:
        if errors:
            head = f"Write to {self._where()} failed for {len(errors)} of {n_updates} update(s):"
            lines = [f"  update #{i}: {_code_name(c)}: {m}" for i, c, m in errors[:20]]
            if len(errors) > 20:
                lines.append(f"  ... and {len(errors) - 20} more")
            msg = "\n".join([head, *lines])
        else:
            code = e.code().name if e is not None and e.code() else "?"
            msg = f"Write to {self._where()} failed: {code}: {e.details() if e is not None else ''}"
            if e is not None and e.code() == grpc.StatusCode.FAILED_PRECONDITION:
                msg += " — push a pipeline first (set_pipeline)"
        return self._err(WriteError, msg, "Write", e, errors=errors)

    def write_batched(
        self,
        updates: Sequence[p4runtime_pb2.Update],
        batch_size: int = DEFAULT_BATCH_SIZE,
        atomicity: int = p4runtime_pb2.WriteRequest.CONTINUE_ON_ERROR,
    ) -> None:
        """Apply a long list of updates as several Write RPCs of ``batch_size``.

        Per-update failures from all batches are gathered into one
        :class:`WriteError` whose indices refer to ``updates``; loss of the
        primary role or of the switch stops at once (the remaining batches are
        not sent).  Order is preserved, so inserts listed before the entries
        that reference them still land first.
        """
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        failures: list[tuple[int, int, str]] = []
        last: WriteError | None = None
        for start in range(0, len(updates), batch_size):
            chunk = updates[start:start + batch_size]
            try:
                self.write(chunk, atomicity=atomicity)
            except WriteError as e:
                last = e
                if e.errors:
                    failures.extend((i + start, c, m) for i, c, m in e.errors)
                else:
                    # request-level failure: every update of the batch failed
                    code = _grpc_code_number(e.grpc_code)
                    failures.extend((start + i, code, e.details or "") for i in range(len(chunk)))
        if last is not None:
            err = self._make_write_error(failures, len(updates), None)
            err.grpc_code, err.details = last.grpc_code, last.details
            raise err

    # ------------------------------------------------------------------ read

    def read(self, entities: Sequence[p4runtime_pb2.Entity]) -> list[p4runtime_pb2.Entity]:
        """One Read RPC; returns all entities from the streamed replies.

        Zero-valued ids are wildcards (e.g. ``table_id=0`` reads all tables).
        """
        stub = self._require_stub("Read")
        req = p4runtime_pb2.ReadRequest(device_id=self.device_id)
        req.entities.extend(entities)
        out: list[p4runtime_pb2.Entity] = []
        try:
            with self._rpc_lock:  # the whole streamed reply: the next RPC waits for its end
                for resp in stub.Read(req, timeout=self.rpc_timeout):
                    out.extend(resp.entities)
        except grpc.RpcError as e:
            raise self._rpc_error("Read", e) from None
        return out

    def read_table_entries(self, table_id: int = 0, with_counters: bool = False) -> list[p4runtime_pb2.TableEntry]:
        """All entries of one table (``table_id=0``: of all tables).

        ``with_counters`` asks for direct-counter data with each entry (one
        round trip instead of a read per entry).
        """
        ent = p4runtime_pb2.Entity()
        ent.table_entry.table_id = table_id
        if with_counters:
            ent.table_entry.counter_data.SetInParent()
        return [e.table_entry for e in self.read([ent]) if e.HasField("table_entry")]

    def read_clone_sessions(self, session_id: int = 0) -> list[p4runtime_pb2.CloneSessionEntry]:
        """Clone sessions (``session_id=0``: all)."""
        ent = p4runtime_pb2.Entity()
        ent.packet_replication_engine_entry.clone_session_entry.session_id = session_id
        return [
            e.packet_replication_engine_entry.clone_session_entry
            for e in self.read([ent])
            if e.packet_replication_engine_entry.HasField("clone_session_entry")
        ]

    def read_multicast_groups(self, group_id: int = 0) -> list[p4runtime_pb2.MulticastGroupEntry]:
        """Multicast groups (``group_id=0``: all)."""
        ent = p4runtime_pb2.Entity()
        ent.packet_replication_engine_entry.multicast_group_entry.multicast_group_id = group_id
        return [
            e.packet_replication_engine_entry.multicast_group_entry
            for e in self.read([ent])
            if e.packet_replication_engine_entry.HasField("multicast_group_entry")
        ]

    def read_counter(self, counter_id: int, index: int | None = None) -> list[p4runtime_pb2.CounterEntry]:
        """Cells of an indirect counter (``index=None``: all cells)."""
        ent = p4runtime_pb2.Entity()
        ent.counter_entry.counter_id = counter_id
        if index is not None:
            ent.counter_entry.index.index = index
        return [e.counter_entry for e in self.read([ent]) if e.HasField("counter_entry")]

    # ------------------------------------------------------------------ packet I/O

    def send_packet_out(self, payload: bytes, metadata: Iterable[tuple[int, bytes]] = ()) -> None:
        """Inject a packet through the CPU port (only the primary's packet-outs are accepted).

        ``metadata`` is ``(controller_packet_metadata id, value bytes)`` pairs
        for the ``packet_out`` header in the P4Info.  Rejections arrive
        asynchronously on :attr:`stream_errors`.
        """
        if not self.connected:
            raise SwitchError(
                f"packet-out to {self._where()}: not connected",
                address=self.address,
                device_id=self.device_id,
                operation="packet-out",
            )
        req = p4runtime_pb2.StreamMessageRequest()
        req.packet.payload = bytes(payload)
        for mid, value in metadata:
            md = req.packet.metadata.add()
            md.metadata_id = mid
            md.value = bytes(value)
        self._req_q.put(req)


def decode_write_errors(e: grpc.RpcError) -> list[tuple[int, int, str]] | None:
    """Per-update errors of a failed Write, from the ``grpc-status-details-bin`` trailer.

    P4Runtime packs one ``p4.v1.Error`` per update (OK ones included, up to the
    last failing one on bmv2).  Returns only the failing ``(index, code,
    message)``, or None when the status carries no such details.

    (p4runtime-shell 0.0.6's ``P4RuntimeErrorIterator`` loops forever on the OK
    entries that bmv2 sends, so this is decoded here.)
    """
    try:
        trailers = e.trailing_metadata() or ()
    except Exception:
        return None
    raw = None
    for key, value in trailers:
        if key == "grpc-status-details-bin":
            raw = value
            break
    if raw is None:
        return None
    status = status_pb2.Status()
    try:
        status.ParseFromString(raw)
    except Exception:
        return None
    if not status.details:
        return None
    errors: list[tuple[int, int, str]] = []
    for idx, detail in enumerate(status.details):
        p4err = p4runtime_pb2.Error()
        if not detail.Unpack(p4err):
            continue
        if p4err.canonical_code != code_pb2.OK:
            errors.append((idx, p4err.canonical_code, p4err.message))
    return errors
