"""The bottom of the device manager: its errors, PI's bytestring rules and the
device state every entity kind works on.

Each entity kind (:mod:`.table_entries`, :mod:`.counters`, :mod:`.meters`,
:mod:`.direct`, :mod:`.registers`, :mod:`.pre`) is a class over
:class:`DeviceBase`, in a module that imports only from below it;
:class:`~softswitch.runtime.Device` puts them together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.rpc import code_pb2, status_pb2
from p4protos import p4runtime_pb2 as p4v1

from ..p4info import P4InfoIndex
from ..switch import SimpleSwitch

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


def _cells(entry: Any, size: int, unknown: str) -> Sequence[int]:
    """The cells a read of an indirect counter or meter names: the one indexed, or all.

    One place for PI's checks, which the two kinds share but for ``unknown``,
    the message of an index past the end."""
    if entry.HasField("index"):
        i = entry.index.index
        if i < 0:
            raise _err(C.INVALID_ARGUMENT, "A negative number is not a valid index value")
        if i >= size:
            raise _err(C.UNKNOWN, unknown)
        return [i]
    return range(size)


class DeviceBase:
    """The state of one P4Runtime device, shared by every entity kind."""

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

    @staticmethod
    def _check_update_type(t: int) -> None:
        if t == p4v1.Update.UNSPECIFIED:
            raise _err(C.INVALID_ARGUMENT, "Update type is not set")
        if t not in (p4v1.Update.INSERT, p4v1.Update.MODIFY, p4v1.Update.DELETE):
            raise _err(C.INVALID_ARGUMENT, "Invalid update type")

    def _check_cell_write(self, obj_id: int, entry: Any, kind: str) -> None:
        """PI's first checks of a write to an indirect ``kind`` (counter or meter): the array
        exists, one cell is named (wildcard writes are not supported), its index is not negative."""
        if not self.index.valid_id(obj_id, kind):
            raise _err(C.INVALID_ARGUMENT, INVALID_ID)
        if not entry.HasField("index"):
            raise _err(C.UNIMPLEMENTED, f"Wildcard write is not supported for indirect {kind}s yet")
        if entry.index.index < 0:
            raise _err(C.INVALID_ARGUMENT, "A negative number is not a valid index value")

    def _read_ids(self, obj_id: int, kind: str, order: list[int]) -> list[int]:
        """The ids of ``kind`` a read names: all of them, in P4Info ``order``, for id 0, else the one given,
        which must exist (counters, meters and registers read alike)."""
        ids = order if obj_id == 0 else [obj_id]
        if obj_id != 0 and not self.index.valid_id(obj_id, kind):
            raise _err(C.INVALID_ARGUMENT, INVALID_ID)
        return ids
