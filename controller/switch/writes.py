"""Write RPCs: one batch, pre-serialised updates (:mod:`controller.wire`), and long
lists cut into batches, every failure reported per update."""

from __future__ import annotations

from typing import Callable, Sequence

import grpc
from p4protos import p4runtime_pb2

from controller import wire

from .errors import WriteError, _code_name, _grpc_code_number, decode_write_errors
from .session import Session

#: Default number of updates per Write RPC in :meth:`SwitchConnection.write_batched`.
#: bmv2 handles thousands of updates per RPC; 1000 keeps each message well under
#: gRPC's size limits even for wide ternary keys.
DEFAULT_BATCH_SIZE = 1000

Atomicity = p4runtime_pb2.WriteRequest.Atomicity


class Writes(Session):
    """Write, write_encoded, write_batched (over :class:`Session`)."""

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
