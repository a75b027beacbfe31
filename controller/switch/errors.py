"""What a failed P4Runtime call raises, and the per-update errors of a failed Write.

The bottom of :mod:`controller.switch`: every other module of it may import
from here; this imports none of them.
"""

from __future__ import annotations

import grpc
from google.rpc import code_pb2, status_pb2
from p4protos import p4runtime_pb2

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
