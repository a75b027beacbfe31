"""What a compiled program is made of: the packet a pipeline runs on and the
descriptions of headers, fields, actions and checksums the loader builds.

The bottom of the compiler: every other module of :mod:`softswitch.program`
may import from here; this imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CORE_ERRORS = ["NoError", "PacketTooShort", "NoMatch", "StackOutOfBounds", "HeaderTooShort",
               "ParserTimeout", "ParserInvalidArgument"]

# simple_switch's names for the fields it reads and writes (before field_aliases)
STD_FIELDS = {
    "ingress_port": "standard_metadata.ingress_port",
    "packet_length": "standard_metadata.packet_length",
    "instance_type": "standard_metadata.instance_type",
    "egress_spec": "standard_metadata.egress_spec",
    "egress_port": "standard_metadata.egress_port",
    "parser_error": "standard_metadata.parser_error",
    "checksum_error": "standard_metadata.checksum_error",
    "mcast_grp": "intrinsic_metadata.mcast_grp",
    "egress_rid": "intrinsic_metadata.egress_rid",
    "priority": "intrinsic_metadata.priority",
    "ingress_global_timestamp": "intrinsic_metadata.ingress_global_timestamp",
    "egress_global_timestamp": "intrinsic_metadata.egress_global_timestamp",
    "enq_timestamp": "queueing_metadata.enq_timestamp",
    "enq_qdepth": "queueing_metadata.enq_qdepth",
    "deq_timedelta": "queueing_metadata.deq_timedelta",
    "deq_qdepth": "queueing_metadata.deq_qdepth",
    "qid": "queueing_metadata.qid",
}
REQUIRED_STD = ("ingress_port", "packet_length", "instance_type", "egress_spec", "egress_port")

NO_TRUNCATE = 1 << 62


class ParseErr(Exception):
    """Raised inside a compiled parser; carries the error code value."""

    def __init__(self, code: int) -> None:
        self.code = code


class Packet:
    """A packet's state while it is processed (bmv2's Packet + PHV)."""

    __slots__ = (
        "F",
        "V",
        "cerr",
        "clone",
        "clone_fl",
        "copy_id",
        "data",
        "egress_port",
        "exit",
        "ilen",
        "ingress_port",
        "len_reg",
        "payload",
        "perr",
        "recirc",
        "resubmit",
        "trunc",
    )

    def __init__(self) -> None:
        self.payload = b""
        self.data = b""
        self.exit = False
        self.clone = -1       # mirror session requested by clone*(): -1 = none
        self.clone_fl = 0
        self.resubmit = 0
        self.recirc = 0
        self.trunc = NO_TRUNCATE
        self.perr = 0
        self.cerr = 0
        self.egress_port = 0
        self.copy_id = 0


# ---------------------------------------------------------------------------- data model


@dataclass
class FieldInfo:
    header: HeaderInfo
    name: str
    width: int          # 0 for a variable-length field
    signed: bool
    slot: int
    vl: bool = False
    len_slot: int = -1  # for a VL field: the slot holding its current width in bits

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1


@dataclass
class HeaderInfo:
    name: str
    jid: int
    idx: int
    type_name: str
    metadata: bool
    fields: list[FieldInfo] = field(default_factory=list)
    by_name: dict[str, FieldInfo] = field(default_factory=dict)
    fixed_bits: int = 0
    vl_index: int = -1          # index in fields of the VL field, -1 if none
    max_length: int = 0         # bytes, for VL headers
    length_exp: Any = None
    stack: str | None = None

    @property
    def fixed_bytes(self) -> int:
        return self.fixed_bits // 8

    @property
    def first_slot(self) -> int:
        return self.fields[0].slot if self.fields else -1


@dataclass
class StackInfo:
    name: str
    jid: int
    headers: list[HeaderInfo]
    next_slot: int


@dataclass
class Action:
    name: str
    jid: int
    params: list[tuple[str, int]]
    fn: Callable | None = None


@dataclass
class Checksum:
    name: str
    target: FieldInfo
    calc: Callable
    cond: Callable | None
    verify: bool
    update: bool
