"""The StreamChannel: connect, arbitration for the primary role, the reader
thread, close, and packet-out.

The stream is the P4Runtime session: only the primary may write, and the
reader thread tells the controller at once when that changes.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Iterable, Iterator, Self

import grpc
from google.rpc import code_pb2
from p4protos import p4runtime_pb2, p4runtime_pb2_grpc

from .errors import SwitchError, SwitchUnavailableError, _code_name
from .session import Session, StateCallback, StreamState

# The module's old name, so that logging configured for it still applies.
log = logging.getLogger("controller.switch")


# A bmv2 JSON for a real program is a few MB; GetForwardingPipelineConfig with
# ALL returns it back, which would trip gRPC's 4 MB default receive limit.
_MAX_MESSAGE_BYTES = 256 * 1024 * 1024

#: Seconds `close` waits for the switch to end a half-closed stream before cancelling it.
CLOSE_GRACE = 2.0
#: Seconds `close` lets a unary RPC in flight finish before the channel (and the RPC) is closed.
RPC_DRAIN = 5.0


class Stream(Session):
    """The stream half of a connection (over :class:`Session`)."""

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
            # A restarting switch answers within a second or so: dial again
            # every 0.1 s rising to 1 s, not gRPC's 1 s rising to 2 min.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
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

    def __enter__(self) -> Self:
        if self._channel is None:
            self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

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
