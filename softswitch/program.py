"""Load a p4c bmv2 JSON and compile it into Python functions.

The JSON is interpreted generically: nothing here knows any particular P4
program.  At load time every parser state, action, control node, checksum and
calculation is translated into Python source, compiled once, and bound to
the program's tables and externs; packets then run through plain Python
functions over two flat lists, ``F`` (every field of every header, one int per
field) and ``V`` (validity of every header).  Whatever the JSON uses that this
module does not implement raises :class:`~softswitch.errors.Unsupported`
naming it, so a program is either run faithfully or refused at load.

Semantics follow bmv2 (``bm_sim``): arithmetic on unbounded integers,
truncated to the destination field's width on assignment; invalid headers are
skipped by deparsers and calculations; a parser exception stops parsing with
the headers extracted so far and records the error; ``exit`` ends the
pipeline after the current action.
"""

from __future__ import annotations

import json
import linecache
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import hashes
from .errors import LoadError, SwitchAbort, Unsupported
from .externs import CounterArray, MeterArray, RegisterArray
from .tables import EXACT, LPM, OPTIONAL, RANGE, TERNARY, VALID, Entry, KeyField, Table

__all__ = ["CORE_ERRORS", "Packet", "ParseErr", "Program"]

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


# ---------------------------------------------------------------------------- code generation


class _Gen:
    """Collects generated source and the objects it refers to."""

    def __init__(self) -> None:
        self.ns: dict[str, Any] = {}
        self.lines: list[str] = []
        self._ids: dict[int, str] = {}
        self._n = 0

    def const(self, obj: Any, hint: str = "c") -> str:
        key = id(obj)
        name = self._ids.get(key)
        if name is None:
            self._n += 1
            name = f"_{hint}{self._n}"
            self._ids[key] = name
            self.ns[name] = obj
        return name

    def fresh(self, hint: str) -> str:
        self._n += 1
        return f"{hint}{self._n}"

    def emit(self, lines: list[str]) -> None:
        self.lines.extend(lines)
        self.lines.append("")


def _ind(lines: list[str], n: int = 1) -> list[str]:
    pad = "    " * n
    return [pad + ln if ln else ln for ln in lines]


def _hex(v: Any, where: str) -> int:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if not isinstance(v, str):
        raise LoadError(f"expected a hex string, got {v!r} (in {where})")
    try:
        return int(v, 16)
    except ValueError:
        raise LoadError(f"bad hex string {v!r} (in {where})") from None


def _tdiv(a: int, b: int) -> int:
    if b == 0:
        return 0
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _tmod(a: int, b: int) -> int:
    if b == 0:
        return 0
    return a - b * _tdiv(a, b)


def _two_comp_mod(v: int, w: int) -> int:
    if w <= 0:
        return 0
    half = 1 << (w - 1)
    return ((v + half) & ((1 << w) - 1)) - half


def _usat(v: int, w: int) -> int:
    hi = (1 << w) - 1
    return 0 if v < 0 else min(v, hi)


def _sat(v: int, w: int) -> int:
    lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
    return lo if v < lo else min(v, hi)


def _lookahead(d: bytes, off: int, bit_off: int, width: int) -> int:
    nbits = bit_off + width
    nbytes = (nbits + 7) // 8
    chunk = d[off:off + nbytes]
    if len(chunk) < nbytes:
        chunk = chunk + bytes(nbytes - len(chunk))
    v = int.from_bytes(chunk, "big")
    return (v >> (nbytes * 8 - nbits)) & ((1 << width) - 1)


class Program:
    """A bmv2 JSON program, compiled and ready to run packets.

    State that P4Runtime manages (table entries, counters, meters, registers)
    lives in the objects this holds; the switch (``softswitch.switch``) runs
    packets through :attr:`parse`, :attr:`ingress`, :attr:`egress` and
    :attr:`deparse`.
    """

    def __init__(self, config: bytes | str | dict, log: Callable[[str], None] | None = None) -> None:
        if isinstance(config, (bytes, str)):
            try:
                j = json.loads(config)
            except ValueError as e:
                raise LoadError(f"the device config is not a valid bmv2 JSON: {e}") from None
        else:
            j = config
        if not isinstance(j, dict):
            raise LoadError("the device config is not a bmv2 JSON object")
        self.json = j
        self.log = log or (lambda msg: None)
        self.g = _Gen()
        self.headers: list[HeaderInfo] = []
        self.header_by_name: dict[str, HeaderInfo] = {}
        self.header_by_jid: dict[int, HeaderInfo] = {}
        self.stacks: dict[str, StackInfo] = {}
        self.nslots = 0
        self.F_init: list[int] = []
        self.V_init: list[bool] = []
        self.errors: dict[str, int] = {}
        self.aliases: dict[str, tuple[str, str]] = {}
        self.field_lists: dict[int, list[FieldInfo]] = {}
        self.counters: dict[str, CounterArray] = {}
        self.meters: dict[str, MeterArray] = {}
        self.registers: dict[str, RegisterArray] = {}
        self.calculations: dict[str, Callable] = {}
        self.actions: dict[int, Action] = {}
        self.tables: dict[str, Table] = {}
        self.checksums: list[Checksum] = []
        self.vsets: dict[str, set] = {}
        self.std: dict[str, FieldInfo | None] = {}
        self._table_entries_json: dict[str, list] = {}
        self._stack_extractors: list[tuple[str, StackInfo]] = []
        self._meter_targets: dict[str, FieldInfo] = {}
        self._load()

    # ================================================================== loading

    def _load(self) -> None:
        j = self.json
        meta = j.get("__meta__", {})
        ver = meta.get("version") if isinstance(meta, dict) else None
        if not ver or not isinstance(ver, list) or ver[0] != 2:
            raise LoadError(f"bmv2 JSON version {ver!r} is not supported (major version 2 is)")
        for key in ("header_union_types", "header_unions", "header_union_stacks"):
            if j.get(key):
                raise Unsupported(f"header unions ({key!r}: {', '.join(x.get('name', '?') for x in j[key])})")
        if j.get("extern_instances"):
            names = ", ".join(f"{x.get('name')} ({x.get('type')})" for x in j["extern_instances"])
            raise Unsupported(f"extern instances: {names}")
        if j.get("learn_lists"):
            raise Unsupported("learn lists / digests (generate_digest)")
        known = {"header_types", "headers", "header_stacks", "header_union_types", "header_unions",
                 "header_union_stacks", "field_lists", "errors", "enums", "parsers", "parse_vsets",
                 "deparsers", "meter_arrays", "counter_arrays", "register_arrays", "calculations",
                 "learn_lists", "actions", "pipelines", "checksums", "force_arith", "extern_instances",
                 "field_aliases", "program", "__meta__"}
        for key in j:
            if key not in known:
                raise Unsupported(f"top-level JSON attribute {key!r}")

        self.g.ns.update({
            "ParseErr": ParseErr, "_la": _lookahead, "_tdiv": _tdiv, "_tmod": _tmod,
            "_tcm": _two_comp_mod, "_usat": _usat, "_sat": _sat, "_rand": random.randint,
            "SwitchAbort": SwitchAbort, "_log": self._log_msg, "_abort": self._abort,
        })
        self._load_headers()
        self._load_errors()
        for name, target in j.get("field_aliases", []) or []:
            self.aliases[name] = (target[0], target[1])
        for name, key in STD_FIELDS.items():
            self.std[name] = self._find_field_opt(key)
        for name in REQUIRED_STD:
            if self.std[name] is None:
                raise LoadError(f"the JSON has no {STD_FIELDS[name]} field, which simple_switch requires")
        self._load_field_lists()
        self._load_vsets()
        self._load_externs()
        self._load_calculations()
        self._load_actions()
        self._load_checksums()
        self._load_parser()
        self._load_deparser()
        self._load_pipelines()
        self._compile()

    def _log_msg(self, msg: str) -> None:
        self.log(msg)

    def _abort(self, msg: str) -> None:
        raise SwitchAbort(msg)

    # ------------------------------------------------------------------ headers

    def _load_headers(self) -> None:
        j = self.json
        types: dict[str, dict] = {}
        for t in j.get("header_types", []):
            types[t["name"]] = t
        slot = 0
        for h in j.get("headers", []):
            tname = h["header_type"]
            if tname not in types:
                raise LoadError(f"header {h['name']!r} has unknown type {tname!r}")
            t = types[tname]
            hi = HeaderInfo(name=h["name"], jid=h["id"], idx=len(self.headers), type_name=tname,
                            metadata=bool(h.get("metadata", False)))
            for i, fdef in enumerate(t["fields"]):
                fname, width = fdef[0], fdef[1]
                signed = bool(fdef[2]) if len(fdef) > 2 else False
                if width == "*":
                    if hi.vl_index >= 0:
                        raise LoadError(f"header type {tname!r} has more than one variable-length field")
                    f = FieldInfo(hi, fname, 0, False, slot, vl=True, len_slot=slot + 1)
                    slot += 2
                    hi.vl_index = i
                    if "length_exp" in t and t["length_exp"] is not None:
                        hi.length_exp = t["length_exp"]
                    hi.max_length = int(t.get("max_length", 0) or 0)
                else:
                    if not isinstance(width, int) or width < 0:
                        raise LoadError(f"bad width {width!r} of field {fname!r} in header type {tname!r}")
                    f = FieldInfo(hi, fname, width, signed, slot)
                    slot += 1
                    hi.fixed_bits += width
                hi.fields.append(f)
                hi.by_name[fname] = f
            if not hi.metadata and hi.fixed_bits % 8:
                raise LoadError(f"header {hi.name!r} is {hi.fixed_bits} bits, not a whole number of bytes")
            self.headers.append(hi)
            self.header_by_name[hi.name] = hi
            self.header_by_jid[hi.jid] = hi
        for s in j.get("header_stacks", []):
            hs = []
            for hid in s["header_ids"]:
                if hid not in self.header_by_jid:
                    raise LoadError(f"header stack {s['name']!r} refers to unknown header id {hid}")
                hs.append(self.header_by_jid[hid])
            for h in hs:
                h.stack = s["name"]
            self.stacks[s["name"]] = StackInfo(s["name"], s["id"], hs, slot)
            slot += 1
        self.nslots = slot
        self.F_init = [0] * slot
        self.V_init = [h.metadata for h in self.headers]
        # header-index -> first slot, for stack elements reached at run time
        self.g.ns["HB"] = tuple(h.first_slot for h in self.headers)

    def _load_errors(self) -> None:
        for name, value in self.json.get("errors", []) or []:
            self.errors[name] = int(value)
        nxt = max(self.errors.values(), default=-1) + 1
        for name in CORE_ERRORS:
            if name not in self.errors:
                self.errors[name] = nxt
                nxt += 1

    def _find_field_opt(self, dotted: str) -> FieldInfo | None:
        if dotted in self.aliases:
            h, f = self.aliases[dotted]
        else:
            h, _, f = dotted.partition(".")
        hi = self.header_by_name.get(h)
        return hi.by_name.get(f) if hi else None

    def field(self, ref: list | tuple, where: str) -> FieldInfo:
        if not isinstance(ref, (list, tuple)) or len(ref) != 2:
            raise LoadError(f"bad field reference {ref!r} (in {where})")
        h, f = ref
        hi = self.header_by_name.get(h)
        if hi is None:
            # a field alias written as header.field
            alias = self.aliases.get(f"{h}.{f}")
            if alias:
                return self.field(alias, where)
            if h in self.stacks:
                raise Unsupported(f"field {h}.{f} of a header stack used as a plain field", where)
            raise LoadError(f"unknown header {h!r} (in {where})")
        fi = hi.by_name.get(f)
        if fi is None:
            raise LoadError(f"header {h!r} has no field {f!r} (in {where})")
        return fi

    def header(self, name: str, where: str) -> HeaderInfo:
        hi = self.header_by_name.get(name)
        if hi is None:
            raise LoadError(f"unknown header {name!r} (in {where})")
        return hi

    def _load_field_lists(self) -> None:
        for fl in self.json.get("field_lists", []) or []:
            fields = []
            for el in fl.get("elements", []):
                if el.get("type") != "field":
                    raise Unsupported(f"field list element of type {el.get('type')!r}", f"field list {fl.get('name')}")
                fields.append(self.field(el["value"], f"field list {fl.get('name')}"))
            self.field_lists[int(fl["id"])] = fields

    def _load_vsets(self) -> None:
        for vs in self.json.get("parse_vsets", []) or []:
            # P4Runtime cannot populate value sets on bmv2 (PI answers
            # UNIMPLEMENTED), so they stay empty here too.
            self.vsets[vs["name"]] = set()

    def _load_externs(self) -> None:
        j = self.json
        for c in j.get("counter_arrays", []) or []:
            self.counters[c["name"]] = CounterArray(c["name"], c["id"], int(c.get("size", 0)),
                                                    bool(c.get("is_direct", False)), c.get("binding"))
        for m in j.get("meter_arrays", []) or []:
            mtype = m.get("type", "packets")
            if mtype not in ("packets", "bytes"):
                raise Unsupported(f"meter type {mtype!r}", f"meter {m['name']}")
            if int(m.get("rate_count", 2)) != 2:
                raise Unsupported(f"meters with {m.get('rate_count')} rates", f"meter {m['name']}")
            target = None
            if m.get("is_direct") and m.get("result_target"):
                target = self.field(m["result_target"], f"meter {m['name']}")
            self.meters[m["name"]] = MeterArray(m["name"], m["id"], int(m.get("size", 0)), mtype == "packets",
                                                int(m.get("rate_count", 2)), bool(m.get("is_direct", False)),
                                                m.get("binding"), target.slot if target else None)
            if target is not None:
                self._meter_targets[m["name"]] = target
        for r in j.get("register_arrays", []) or []:
            self.registers[r["name"]] = RegisterArray(r["name"], r["id"], int(r["size"]), int(r["bitwidth"]))

    # ================================================================== expressions

    def _expr(self, e: Any, where: str, ctx: dict) -> tuple[str, str]:
        """Compile a type-value object to (python source, kind); kind is
        'd' (data), 'b' (bool), 'h' (header index), 's' (header stack name)."""
        if not isinstance(e, dict) or "type" not in e:
            raise LoadError(f"bad expression {e!r} (in {where})")
        t, v = e["type"], e.get("value")
        if t == "field":
            return self._field_read(v, where), "d"
        if t == "hexstr":
            return repr(_hex(v, where)), "d"
        if t == "bool":
            return ("True" if v else "False"), "b"
        if t in ("runtime_data", "local"):
            if not isinstance(v, int):
                raise LoadError(f"bad {t} index {v!r} (in {where})")
            nparams = ctx.get("nparams")
            if nparams is not None and v >= nparams:
                raise LoadError(f"{t} index {v} out of range (in {where})")
            return f"D[{v}]", "d"
        if t == "header":
            return str(self.header(v, where).idx), "h"
        if t == "header_stack":
            if v not in self.stacks:
                raise LoadError(f"unknown header stack {v!r} (in {where})")
            return repr(v), "s"
        if t == "stack_field":
            return self._stack_field_read(v, where), "d"
        if t == "expression":
            if isinstance(v, dict) and "op" not in v and "type" in v:
                return self._expr(v, where, ctx)
            return self._op(v, where, ctx)
        if t == "register":
            name, idx = v
            reg = self.registers.get(name)
            if reg is None:
                raise LoadError(f"unknown register array {name!r} (in {where})")
            isrc = self._data(idx, where, ctx)
            r = self.g.const(reg, "reg")
            return f"_regrd({r}, {isrc})", "d"
        if t == "lookahead" and ctx.get("parser"):
            off, width = v
            return f"_la(d, off + {off // 8}, {off % 8}, {width})", "d"
        raise Unsupported(f"expression operand of type {t!r}", where)

    def _data(self, e: Any, where: str, ctx: dict) -> str:
        src, kind = self._expr(e, where, ctx)
        if kind == "b":
            return f"(1 if {src} else 0)"
        if kind != "d":
            raise LoadError(f"expected a data value, got a {kind} ({e!r}) (in {where})")
        return src

    def _bool(self, e: Any, where: str, ctx: dict) -> str:
        src, kind = self._expr(e, where, ctx)
        if kind == "d":
            # bmv2 does not convert implicitly; p4c always emits d2b, but be lenient
            return f"({src} != 0)"
        if kind != "b":
            raise LoadError(f"expected a boolean, got a {kind} ({e!r}) (in {where})")
        return src

    def _field_read(self, ref: Any, where: str) -> str:
        if isinstance(ref, (list, tuple)) and len(ref) == 2 and ref[1] == "$valid$":
            return f"(1 if V[{self.header(ref[0], where).idx}] else 0)"
        fi = self.field(ref, where)
        return f"F[{fi.slot}]"

    def _stack_last_header(self, stack: str, where: str) -> str:
        st = self.stacks.get(stack)
        if st is None:
            raise LoadError(f"unknown header stack {stack!r} (in {where})")
        tup = self.g.const(tuple(h.idx for h in st.headers), "stk")
        return f"{tup}[F[{st.next_slot}] - 1]"

    def _stack_field_read(self, v: Any, where: str) -> str:
        stack, fname = v
        st = self.stacks.get(stack)
        if st is None:
            raise LoadError(f"unknown header stack {stack!r} (in {where})")
        h0 = st.headers[0]
        if fname not in h0.by_name:
            raise LoadError(f"header stack {stack!r} has no field {fname!r} (in {where})")
        off = [f.name for f in h0.fields].index(fname)
        return f"F[HB[{self._stack_last_header(stack, where)}] + {off}]"

    def _op(self, v: dict, where: str, ctx: dict) -> tuple[str, str]:
        if not isinstance(v, dict) or "op" not in v:
            raise LoadError(f"bad expression {v!r} (in {where})")
        op = v["op"]
        left, right = v.get("left"), v.get("right")
        arith = {"+": "+", "-": "-", "*": "*", "<<": "<<", ">>": ">>", "&": "&", "|": "|", "^": "^"}
        cmp_ = {"==": "==", "!=": "!=", ">": ">", "<": "<", ">=": ">=", "<=": "<="}
        if op in arith:
            a, b = self._data(left, where, ctx), self._data(right, where, ctx)
            return f"({a} {arith[op]} {b})", "d"
        if op == "/":
            return f"_tdiv({self._data(left, where, ctx)}, {self._data(right, where, ctx)})", "d"
        if op == "%":
            return f"_tmod({self._data(left, where, ctx)}, {self._data(right, where, ctx)})", "d"
        if op in cmp_:
            a, b = self._data(left, where, ctx), self._data(right, where, ctx)
            return f"({a} {cmp_[op]} {b})", "b"
        if op in ("==b", "!=b"):
            a, b = self._bool(left, where, ctx), self._bool(right, where, ctx)
            return f"({a} {'==' if op == '==b' else '!='} {b})", "b"
        if op in ("==h", "!=h"):
            a, ka = self._expr(left, where, ctx)
            b, kb = self._expr(right, where, ctx)
            if ka != "h" or kb != "h":
                raise LoadError(f"{op} needs two headers (in {where})")
            fn = self.g.const(self._hdr_eq, "heq")
            s = f"{fn}(F, V, {a}, {b})"
            return (s if op == "==h" else f"(not {s})"), "b"
        if op == "and":
            return f"({self._bool(left, where, ctx)} and {self._bool(right, where, ctx)})", "b"
        if op == "or":
            return f"({self._bool(left, where, ctx)} or {self._bool(right, where, ctx)})", "b"
        if op == "not":
            return f"(not {self._bool(right, where, ctx)})", "b"
        if op == "~":
            return f"(~{self._data(right, where, ctx)})", "d"
        if op == "valid":
            src, kind = self._expr(right, where, ctx)
            if kind != "h":
                raise LoadError(f"'valid' needs a header (in {where})")
            return f"V[{src}]", "b"
        if op == "?":
            c = self._bool(v.get("cond"), where, ctx)
            a, ka = self._expr(left, where, ctx)
            b, kb = self._expr(right, where, ctx)
            if ka != kb:
                a, b, ka = self._data(left, where, ctx), self._data(right, where, ctx), "d"
            return f"({a} if {c} else {b})", ka
        if op == "two_comp_mod":
            return f"_tcm({self._data(left, where, ctx)}, {self._data(right, where, ctx)})", "d"
        if op == "usat_cast":
            return f"_usat({self._data(left, where, ctx)}, {self._data(right, where, ctx)})", "d"
        if op == "sat_cast":
            return f"_sat({self._data(left, where, ctx)}, {self._data(right, where, ctx)})", "d"
        if op == "d2b":
            return f"({self._data(right, where, ctx)} != 0)", "b"
        if op == "b2d":
            return f"(1 if {self._bool(right, where, ctx)} else 0)", "d"
        if op in ("dereference_header_stack", "dereference_stack"):
            s, ks = self._expr(left, where, ctx)
            if ks != "s":
                raise LoadError(f"{op} needs a header stack (in {where})")
            st = self.stacks[eval(s)]
            tup = self.g.const(tuple(h.idx for h in st.headers), "stk")
            return f"{tup}[{self._data(right, where, ctx)}]", "h"
        if op == "last_stack_index":
            s, ks = self._expr(right, where, ctx)
            if ks != "s":
                raise LoadError(f"{op} needs a header stack (in {where})")
            return f"(F[{self.stacks[eval(s)].next_slot}] - 1)", "d"
        if op == "size_stack":
            s, ks = self._expr(right, where, ctx)
            if ks != "s":
                raise LoadError(f"{op} needs a header stack (in {where})")
            return f"F[{self.stacks[eval(s)].next_slot}]", "d"
        if op == "access_field":
            h, kh = self._expr(left, where, ctx)
            if kh != "h" or not isinstance(right, int):
                raise LoadError(f"bad access_field (in {where})")
            if h.isdigit():
                hi = self.headers[int(h)]
                return f"F[{hi.fields[right].slot}]", "d"
            return f"F[HB[{h}] + {right}]", "d"
        raise Unsupported(f"expression operator {op!r}", where)

    def _hdr_eq(self, F: list, V: list, a: int, b: int) -> bool:
        if V[a] != V[b]:
            return False
        if not V[a]:
            return True
        ha, hb = self.headers[a], self.headers[b]
        return all(F[x.slot] == F[y.slot] and (not x.vl or F[x.len_slot] == F[y.len_slot])
                   for x, y in zip(ha.fields, hb.fields))

    # ------------------------------------------------------------------ lvalues

    def _lvalue(self, e: Any, where: str, ctx: dict) -> tuple[str, int, bool, FieldInfo | None]:
        """(python target, width, signed, FieldInfo if static) of an assignable field."""
        t, v = e.get("type"), e.get("value")
        if t == "field":
            if isinstance(v, (list, tuple)) and len(v) == 2 and v[1] == "$valid$":
                raise LoadError(f"$valid$ is read-only (in {where})")
            fi = self.field(v, where)
            return f"F[{fi.slot}]", fi.width, fi.signed, fi
        if t == "expression" and isinstance(v, dict) and v.get("op") == "access_field":
            h, kh = self._expr(v["left"], where, ctx)
            off = v["right"]
            if kh != "h":
                raise LoadError(f"bad access_field target (in {where})")
            if h.isdigit():
                fi = self.headers[int(h)].fields[off]
                return f"F[{fi.slot}]", fi.width, fi.signed, fi
            # a stack element chosen at run time: all elements share one type
            stack_hdr = self._header_of_runtime(v["left"], where)
            fi = stack_hdr.fields[off]
            return f"F[HB[{h}] + {off}]", fi.width, fi.signed, None
        if t == "stack_field":
            stack, fname = v
            st = self.stacks[stack]
            fi = st.headers[0].by_name[fname]
            return self._stack_field_read(v, where), fi.width, fi.signed, None
        if t == "expression" and isinstance(v, dict) and "type" in v:
            return self._lvalue(v, where, ctx)
        raise Unsupported(f"assignment target {e!r}", where)

    def _header_of_runtime(self, e: Any, where: str) -> HeaderInfo:
        v = e.get("value")
        if e.get("type") == "expression" and isinstance(v, dict):
            if v.get("op") in ("dereference_header_stack", "dereference_stack"):
                return self.stacks[v["left"]["value"]].headers[0]
            return self._header_of_runtime(v, where) if "type" in v else self._bad(where)
        if e.get("type") == "header":
            return self.header(v, where)
        return self._bad(where)

    def _bad(self, where: str):
        raise Unsupported("header expression", where)

    @staticmethod
    def _assign_src(target: str, width: int, signed: bool, src: str) -> str:
        if width == 0:
            return f"{target} = 0"
        if signed:
            half = 1 << (width - 1)
            return f"{target} = (({src} + {half}) & {(1 << width) - 1}) - {half}"
        return f"{target} = {src} & {(1 << width) - 1}"

    def _header_ref(self, e: Any, where: str, ctx: dict) -> str:
        src, kind = self._expr(e, where, ctx)
        if kind != "h":
            raise LoadError(f"expected a header, got {e!r} (in {where})")
        return src

    # ================================================================== primitives

    def _prim(self, p: dict, where: str, ctx: dict) -> list[str]:
        op = p.get("op")
        params = p.get("parameters", [])
        w = f"{where}: {op}"

        def nparams(n: int) -> None:
            if len(params) != n:
                raise LoadError(f"primitive {op} expects {n} parameters, got {len(params)} (in {where})")

        if op in ("assign", "modify_field"):
            nparams(2)
            tgt, width, signed, fi = self._lvalue(params[0], w, ctx)
            if fi is not None and fi.vl:
                return self._assign_vl(params, w, ctx)
            return [self._assign_src(tgt, width, signed, self._data(params[1], w, ctx))]
        if op == "assign_VL":
            nparams(2)
            return self._assign_vl(params, w, ctx)
        if op == "assign_header":
            nparams(2)
            dst = self._header_ref(params[0], w, ctx)
            src = self._header_ref(params[1], w, ctx)
            if dst.isdigit() and src.isdigit():
                hd, hs = self.headers[int(dst)], self.headers[int(src)]
                if len(hd.fields) != len(hs.fields):
                    raise LoadError(f"assign_header between different header types (in {w})")
                a, b = hd.first_slot, hs.first_slot
                n = hd.fields[-1].slot + (2 if hd.fields[-1].vl else 1) - a if hd.fields else 0
                return [f"if V[{hs.idx}]:",
                        f"    F[{a}:{a + n}] = F[{b}:{b + n}]",
                        f"    V[{hd.idx}] = True",
                        "else:",
                        f"    V[{hd.idx}] = False"]
            fn = self.g.const(self._assign_header_rt, "ah")
            return [f"{fn}(F, V, {dst}, {src})"]
        if op == "assign_header_stack":
            nparams(2)
            ds, ks1 = self._expr(params[0], w, ctx)
            ss, ks2 = self._expr(params[1], w, ctx)
            if ks1 != "s" or ks2 != "s":
                raise LoadError(f"assign_header_stack needs two stacks (in {w})")
            d, s = self.stacks[eval(ds)], self.stacks[eval(ss)]
            lines = []
            for hd, hs in zip(d.headers, s.headers):
                a, b, n = hd.first_slot, hs.first_slot, len(hd.fields)
                lines += [f"F[{a}:{a + n}] = F[{b}:{b + n}]", f"V[{hd.idx}] = V[{hs.idx}]"]
            lines.append(f"F[{d.next_slot}] = F[{s.next_slot}]")
            return lines
        if op in ("add_header", "setValid"):
            nparams(1)
            h = self._header_ref(params[0], w, ctx)
            if h.isdigit():
                hi = self.headers[int(h)]
                a = hi.first_slot
                n = len(hi.fields) + (1 if hi.vl_index >= 0 else 0)
                lines = [f"if not V[{hi.idx}]:"]
                if n:
                    lines.append(f"    F[{a}:{a + n}] = {[0] * n!r}")
                lines += [f"    V[{hi.idx}] = True", f"    P.len_reg += {hi.fixed_bytes}"]
                return lines
            fn = self.g.const(self._add_header_rt, "addh")
            return [f"{fn}(P, F, V, {h})"]
        if op == "add_header_fast":
            nparams(1)
            return [f"V[{self._header_ref(params[0], w, ctx)}] = True"]
        if op in ("remove_header", "setInvalid"):
            nparams(1)
            h = self._header_ref(params[0], w, ctx)
            if h.isdigit():
                hi = self.headers[int(h)]
                vl = f" + (F[{hi.fields[hi.vl_index].len_slot}] >> 3)" if hi.vl_index >= 0 else ""
                return [f"if V[{hi.idx}]:", f"    P.len_reg -= {hi.fixed_bytes}{vl}", f"    V[{hi.idx}] = False"]
            fn = self.g.const(self._remove_header_rt, "rmh")
            return [f"{fn}(P, F, V, {h})"]
        if op in ("push", "pop"):
            nparams(2)
            s, ks = self._expr(params[0], w, ctx)
            if ks != "s":
                raise Unsupported(f"{op} on something other than a header stack", w)
            st = self.stacks[eval(s)]
            cnt = self._data(params[1], w, ctx)
            fn = self.g.const(self._push_rt if op == "push" else self._pop_rt, op)
            sd = self.g.const(st, "stack")
            return [f"{fn}(F, V, {sd}, {cnt})"]
        if op == "mark_to_drop":
            nparams(1)
            h = self._header_ref(params[0], w, ctx)
            if not h.isdigit():
                raise Unsupported("mark_to_drop on a header chosen at run time", w)
            hi = self.headers[int(h)]
            es = hi.by_name.get("egress_spec")
            if es is None:
                raise LoadError(f"mark_to_drop: header {hi.name} has no egress_spec field (in {w})")
            lines = [f"F[{es.slot}] = {511 & es.mask}"]
            mg = hi.by_name.get("mcast_grp")
            if mg is not None:
                lines.append(f"F[{mg.slot}] = 0")
            return lines
        if op == "drop":
            nparams(0)
            lines = [f"F[{self.std['egress_spec'].slot}] = {511 & self.std['egress_spec'].mask}"]
            if self.std["mcast_grp"] is not None:
                lines.append(f"F[{self.std['mcast_grp'].slot}] = 0")
            return lines
        if op == "exit":
            nparams(0)
            return ["P.exit = True"]
        if op == "no_op":
            return ["pass"]
        if op in ("count",):
            nparams(2)
            c = self._named(params[0], "counter_array", self.counters, w)
            return [f"{self.g.const(c, 'ctr')}.count({self._data(params[1], w, ctx)}, P.ilen)"]
        if op == "execute_meter":
            nparams(3)
            m = self._named(params[0], "meter_array", self.meters, w)
            tgt, width, signed, _ = self._lvalue(params[2], w, ctx)
            mc = self.g.const(m, "mtr")
            # bmv2 (built with its checks, as distributed) leaves the meter and
            # the destination untouched for an index beyond the array
            return [f"_i = {self._data(params[1], w, ctx)}",
                    f"if 0 <= _i < {m.size}:",
                    "    " + self._assign_src(tgt, width, signed, f"{mc}.meters[_i].execute(P.ilen)")]
        if op == "register_read":
            nparams(3)
            tgt, width, signed, _ = self._lvalue(params[0], w, ctx)
            r = self._named(params[1], "register_array", self.registers, w)
            rc = self.g.const(r, "reg")
            idx = self._data(params[2], w, ctx)
            return [f"_i = {idx}",
                    "if 0 <= _i < " + str(r.size) + ":",
                    "    " + self._assign_src(tgt, width, signed, f"{rc}.values[_i]")]
        if op == "register_write":
            nparams(3)
            r = self._named(params[0], "register_array", self.registers, w)
            rc = self.g.const(r, "reg")
            return [f"_i = {self._data(params[1], w, ctx)}",
                    f"if 0 <= _i < {r.size}:",
                    f"    {rc}.values[_i] = {self._data(params[2], w, ctx)} & {r.mask}"]
        if op == "modify_field_with_hash_based_offset":
            nparams(4)
            tgt, width, signed, _ = self._lvalue(params[0], w, ctx)
            base = self._data(params[1], w, ctx)
            if params[2].get("type") != "calculation":
                raise LoadError(f"hash calculation expected (in {w})")
            calc = self.calculations.get(params[2]["value"])
            if calc is None:
                raise LoadError(f"unknown calculation {params[2]['value']!r} (in {w})")
            cc = calc  # name of the generated function
            size = self._data(params[3], w, ctx)
            return [f"_s = {size}",
                    "if _s == 0: _s = 1",
                    self._assign_src(tgt, width, signed, f"(({cc}(P, F, V) % _s) + {base})")]
        if op == "modify_field_rng_uniform":
            nparams(3)
            tgt, width, signed, _ = self._lvalue(params[0], w, ctx)
            lo, hi = self._data(params[1], w, ctx), self._data(params[2], w, ctx)
            return [f"_lo, _hi = {lo}, {hi}", "if _lo <= _hi:",
                    "    " + self._assign_src(tgt, width, signed, "_rand(_lo, _hi)")]
        if op in ("clone_ingress_pkt_to_egress", "clone_egress_pkt_to_egress"):
            nparams(2)
            sid, fl = self._data(params[0], w, ctx), self._data(params[1], w, ctx)
            self._check_field_list_ref(params[1], w)
            return [f"P.clone = ({sid}) & 0x7FFF", f"P.clone_fl = ({fl}) & 0xFFFF"]
        if op == "resubmit":
            nparams(1)
            self._check_field_list_ref(params[0], w)
            return [f"P.resubmit = ({self._data(params[0], w, ctx)}) & 0xFFFF"]
        if op == "recirculate":
            nparams(1)
            self._check_field_list_ref(params[0], w)
            return [f"P.recirc = ({self._data(params[0], w, ctx)}) & 0xFFFF"]
        if op == "truncate":
            nparams(1)
            return [f"_t = {self._data(params[0], w, ctx)}", "if _t < P.trunc: P.trunc = _t"]
        if op == "log_msg":
            nparams(2)
            fmt = params[0].get("value", "")
            vec = params[1]
            if vec.get("type") != "parameters_vector":
                raise LoadError(f"log_msg expects a parameters_vector (in {w})")
            args = [self._data(x, w, ctx) for x in vec.get("value", [])]
            fc = self.g.const(self._format_log, "fmt")
            return [f"_log({fc}({fmt!r}, [{', '.join(args)}]))"]
        if op in ("assert", "assume"):
            nparams(1)
            c = self._bool(params[0], w, ctx)
            return [f"if not {c}:", f"    _abort({(op + ' failed: ' + where)!r})"]
        if op in ("add_to_field", "subtract_from_field"):
            nparams(2)
            tgt, width, signed, _ = self._lvalue(params[0], w, ctx)
            sign = "+" if op == "add_to_field" else "-"
            return [self._assign_src(tgt, width, signed, f"({tgt} {sign} {self._data(params[1], w, ctx)})")]
        if op in ("add", "subtract", "bit_xor", "bit_or", "bit_and", "shift_left", "shift_right"):
            nparams(3)
            tgt, width, signed, _ = self._lvalue(params[0], w, ctx)
            sym = {"add": "+", "subtract": "-", "bit_xor": "^", "bit_or": "|", "bit_and": "&",
                   "shift_left": "<<", "shift_right": ">>"}[op]
            return [self._assign_src(tgt, width, signed,
                                     f"({self._data(params[1], w, ctx)} {sym} {self._data(params[2], w, ctx)})")]
        if op in ("_jump", "_jump_if_zero"):
            raise LoadError(f"{op} outside an action body (in {where})")
        raise Unsupported(f"primitive {op!r}", where)

    def _check_field_list_ref(self, param: dict, where: str) -> None:
        if param.get("type") == "hexstr":
            fl = _hex(param["value"], where)
            if fl and fl not in self.field_lists:
                raise LoadError(f"unknown field list id {fl} (in {where})")

    def _named(self, param: dict, kind: str, objs: dict, where: str) -> Any:
        if param.get("type") != kind:
            raise LoadError(f"expected a {kind}, got {param!r} (in {where})")
        obj = objs.get(param.get("value"))
        if obj is None:
            raise LoadError(f"unknown {kind} {param.get('value')!r} (in {where})")
        return obj

    def _assign_vl(self, params: list, where: str, ctx: dict) -> list[str]:
        d = params[0]
        s = params[1]
        if d.get("type") != "field" or s.get("type") != "field":
            raise Unsupported("assign_VL between non-field operands", where)
        fd, fs = self.field(d["value"], where), self.field(s["value"], where)
        if not (fd.vl and fs.vl):
            raise LoadError(f"assign_VL between fixed-width fields (in {where})")
        return [f"F[{fd.slot}] = F[{fs.slot}]", f"F[{fd.len_slot}] = F[{fs.len_slot}]"]

    @staticmethod
    def _format_log(fmt: str, args: list[int]) -> str:
        out, i = [], 0
        parts = fmt.split("{}")
        for k, part in enumerate(parts):
            out.append(part)
            if k < len(parts) - 1:
                out.append(str(args[i]) if i < len(args) else "{}")
                i += 1
        return "".join(out)

    # run-time helpers for headers chosen at run time (header stacks)

    def _assign_header_rt(self, F: list, V: list, dst: int, src: int) -> None:
        hd, hs = self.headers[dst], self.headers[src]
        if not V[src]:
            V[dst] = False
            return
        for fd, fs in zip(hd.fields, hs.fields):
            F[fd.slot] = F[fs.slot]
            if fd.vl:
                F[fd.len_slot] = F[fs.len_slot]
        V[dst] = True

    def _add_header_rt(self, P: Packet, F: list, V: list, h: int) -> None:
        hi = self.headers[h]
        if not V[h]:
            for f in hi.fields:
                F[f.slot] = 0
                if f.vl:
                    F[f.len_slot] = 0
            V[h] = True
            P.len_reg += hi.fixed_bytes

    def _remove_header_rt(self, P: Packet, F: list, V: list, h: int) -> None:
        hi = self.headers[h]
        if V[h]:
            nb = hi.fixed_bytes
            if hi.vl_index >= 0:
                nb += F[hi.fields[hi.vl_index].len_slot] >> 3
            P.len_reg -= nb
            V[h] = False

    def _swap_headers(self, F: list, V: list, a: HeaderInfo, b: HeaderInfo) -> None:
        for fa, fb in zip(a.fields, b.fields):
            F[fa.slot], F[fb.slot] = F[fb.slot], F[fa.slot]
            if fa.vl:
                F[fa.len_slot], F[fb.len_slot] = F[fb.len_slot], F[fa.len_slot]
        V[a.idx], V[b.idx] = V[b.idx], V[a.idx]

    def _push_rt(self, F: list, V: list, st: StackInfo, num: int) -> None:
        """bmv2 StackP4_16::push_front (the default build)."""
        if num <= 0:
            return
        hs = st.headers
        size = len(hs)
        F[st.next_slot] = min(size, F[st.next_slot] + num)
        for i in range(size - 1, num - 1, -1):
            self._swap_headers(F, V, hs[i], hs[i - num])
        for i in range(min(size, num)):
            V[hs[i].idx] = False

    def _pop_rt(self, F: list, V: list, st: StackInfo, num: int) -> None:
        """bmv2 StackP4_16::pop_front."""
        if num <= 0:
            return
        hs = st.headers
        size = len(hs)
        F[st.next_slot] -= min(F[st.next_slot], num)
        i = 0
        if num < size:
            while i < size - num:
                self._swap_headers(F, V, hs[i], hs[i + num])
                i += 1
        while i < size:
            V[hs[i].idx] = False
            i += 1

    # ================================================================== calculations

    def _load_calculations(self) -> None:
        for c in self.json.get("calculations", []) or []:
            name = c["name"]
            where = f"calculation {name}"
            algo = hashes.algorithm(c.get("algo", "?"), where)
            fn = self.g.fresh("calc_")
            body = ["_a = 0", "_n = 0"]
            with_payload = False
            # consecutive fields of one header are packed under one validity test
            groups: list[tuple[HeaderInfo | None, list]] = []
            for inp in c.get("input", []):
                t, v = inp.get("type"), inp.get("value")
                if with_payload:
                    raise Unsupported("calculation input after 'payload'", where)
                if t == "field":
                    fi = self.field(v, where)
                    if groups and groups[-1][0] is fi.header and groups[-1][1] != ["*"]:
                        groups[-1][1].append(fi)
                    else:
                        groups.append((fi.header, [fi]))
                elif t == "hexstr":
                    bw = int(inp.get("bitwidth", 0))
                    if bw <= 0:
                        raise LoadError(f"hexstr calculation input without a bitwidth (in {where})")
                    groups.append((None, [(bw, _hex(v, where) & ((1 << bw) - 1))]))
                elif t == "header":
                    hi = self.header(v, where)
                    groups.append((hi, ["*"] if hi.vl_index < 0 else list(hi.fields)))
                elif t == "payload":
                    with_payload = True
                else:
                    raise Unsupported(f"calculation input of type {t!r}", where)
            for hi, items in groups:
                if hi is None:
                    bw, val = items[0]
                    body += [f"_a = (_a << {bw}) | {val}", f"_n += {bw}"]
                    continue
                if items != ["*"] and any(f.vl for f in items):
                    # a variable-length field: its width is known per packet
                    step = []
                    for f in items:
                        if f.vl:
                            step += [f"_a = (_a << F[{f.len_slot}]) | F[{f.slot}]", f"_n += F[{f.len_slot}]"]
                        else:
                            fv = f"(F[{f.slot}] & {f.mask})" if f.signed else f"F[{f.slot}]"
                            step += [f"_a = (_a << {f.width}) | {fv}", f"_n += {f.width}"]
                    body += step if hi.metadata else [f"if V[{hi.idx}]:"] + _ind(step)
                    continue
                if items == ["*"]:
                    width, expr = hi.fixed_bits, self._header_bits(hi)
                else:
                    width = sum(f.width for f in items)
                    parts, shift = [], width
                    for f in items:
                        shift -= f.width
                        fv = f"(F[{f.slot}] & {f.mask})" if f.signed else f"F[{f.slot}]"
                        parts.append(f"({fv} << {shift})" if shift else fv)
                    expr = "(" + " | ".join(parts) + ")"
                step = [f"_a = (_a << {width}) | {expr}", f"_n += {width}"]
                body += step if hi.metadata else [f"if V[{hi.idx}]:"] + _ind(step)
            body += ["_p = (-_n) & 7", "_b = (_a << _p).to_bytes((_n + _p) >> 3, 'big')"]
            if with_payload:
                body += ["_b += P.payload[:P.trunc]"]
            alg = self.g.const(algo, "alg")
            body += [f"return {alg}(_b)"]
            self.g.emit([f"def {fn}(P, F, V):"] + _ind(body))
            self.calculations[name] = fn  # resolved to the function after compile

    def _header_bits(self, hi: HeaderInfo) -> str:
        """Python expression: the header's fields packed into one integer (MSB first)."""
        parts = []
        shift = hi.fixed_bits
        for f in hi.fields:
            shift -= f.width
            v = f"(F[{f.slot}] & {f.mask})" if f.signed else f"F[{f.slot}]"
            parts.append(f"({v} << {shift})" if shift else v)
        return "(" + " | ".join(parts) + ")" if parts else "0"

    # ================================================================== actions

    def _load_actions(self) -> None:
        for a in self.json.get("actions", []) or []:
            name, jid = a["name"], int(a["id"])
            params = [(rd["name"], int(rd["bitwidth"])) for rd in a.get("runtime_data", [])]
            act = Action(name, jid, params)
            self.actions[jid] = act
            where = f"action {name}"
            ctx = {"nparams": len(params)}
            prims = a.get("primitives", [])
            fname = f"a_{jid}"
            jumps = any(p.get("op") in ("_jump", "_jump_if_zero") for p in prims)
            body: list[str] = []
            if not jumps:
                for p in prims:
                    body += self._prim(p, where, ctx)
            else:
                body.append("_pc = 0")
                body.append("while True:")
                for i, p in enumerate(prims):
                    kw = "if" if i == 0 else "elif"
                    if p.get("op") == "_jump":
                        tgt = self._data(p["parameters"][0], where, ctx)
                        stmt = [f"_pc = {tgt}"]
                    elif p.get("op") == "_jump_if_zero":
                        c = self._data(p["parameters"][0], where, ctx)
                        tgt = self._data(p["parameters"][1], where, ctx)
                        stmt = [f"_pc = {tgt} if ({c}) == 0 else {i + 1}"]
                    else:
                        stmt = self._prim(p, where, ctx) + [f"_pc = {i + 1}"]
                    body += _ind([f"{kw} _pc == {i}:"] + _ind(stmt))
                body += _ind(["else:", "    break"])
            if not body:
                body = ["pass"]
            self.g.emit([f"def {fname}(P, F, V, D):"] + _ind(body))

    # ================================================================== checksums

    def _load_checksums(self) -> None:
        for c in self.json.get("checksums", []) or []:
            name = c["name"]
            where = f"checksum {name}"
            ctype = c.get("type", "generic")
            target = self.field(c["target"], where)
            if ctype == "generic":
                calc = c.get("calculation")
                if calc not in self.calculations:
                    raise LoadError(f"unknown calculation {calc!r} (in {where})")
                calc_name = self.calculations[calc]
            elif ctype == "ipv4":
                hi = target.header
                fn = self.g.fresh("ipv4ck_")
                bits = self._header_bits(hi)
                off = None
                acc = 0
                for f in hi.fields:
                    if f is target:
                        off = hi.fixed_bits - acc - f.width
                    acc += f.width
                alg = self.g.const(hashes.csum16, "alg")
                self.g.emit([f"def {fn}(P, F, V):",
                             f"    _x = {bits} & ~({target.mask} << {off})",
                             f"    return {alg}(_x.to_bytes({hi.fixed_bytes}, 'big'))"])
                calc_name = fn
            else:
                raise Unsupported(f"checksum type {ctype!r}", where)
            cond = None
            if c.get("if_cond") is not None:
                cond = self.g.fresh("ckcond_")
                self.g.emit([f"def {cond}(P, F, V):",
                             f"    return {self._bool(c['if_cond'], where, {})}"])
            self.checksums.append(Checksum(name, target, calc_name, cond,  # type: ignore[arg-type]
                                           bool(c.get("verify", True)), bool(c.get("update", True))))

    # ================================================================== parser

    def _load_parser(self) -> None:
        parsers = self.json.get("parsers", []) or []
        if len(parsers) != 1 or parsers[0].get("name") != "parser":
            names = [p.get("name") for p in parsers]
            raise Unsupported(f"parsers {names} (simple_switch runs exactly one, named 'parser')")
        p = parsers[0]
        states = {s["name"]: s for s in p.get("parse_states", [])}
        order = list(states)
        ids = {name: i for i, name in enumerate(order)}
        init = p.get("init_state")
        if init is not None and init not in states:
            raise LoadError(f"parser init state {init!r} does not exist")
        tooshort = self.errors["PacketTooShort"]
        body = ["F = P.F", "V = P.V", "off = 0", "n = len(d)",
                f"st = {ids[init] if init is not None else -1}", "try:",
                "    while st >= 0:"]
        chain: list[str] = []
        for i, name in enumerate(order):
            s = states[name]
            where = f"parse state {name}"
            ctx = {"parser": True, "nparams": 0}
            blk: list[str] = []
            for op in s.get("parser_ops", []):
                blk += self._parser_op(op, where, ctx, tooshort)
            blk += self._transition(s, where, ctx, ids)
            chain += [f"{'if' if i == 0 else 'elif'} st == {i}:"] + _ind(blk)
        if chain:
            body += _ind(chain, 2)
        else:
            body += ["        st = -1"]
        body += ["except ParseErr as _e:", "    P.perr = _e.code", "P.payload = d[off:]"]
        verify = [c for c in self.checksums if c.verify]
        for c in verify:
            tgt = c.target
            cond = f" and {c.cond}(P, F, V)" if c.cond else ""
            body += [f"if V[{tgt.header.idx}]{cond}:",
                     f"    if {c.calc}(P, F, V) != (F[{tgt.slot}] & {tgt.mask}):",
                     "        P.cerr = 1"]
        self.g.emit(["def parse(P, d):"] + _ind(body))
        # per-header extractors, used for stacks
        for h in self.headers:
            if h.metadata or h.stack is None or h.vl_index >= 0:
                continue
            self.g.emit([f"def ex_{h.idx}(F, V, d, off, n):"] + _ind(self._extract_fixed(h, tooshort) + ["return off"]))

    def _extract_fixed(self, h: HeaderInfo, tooshort: int, length_src: str | None = None,
                       max_bytes: int = 0) -> list[str]:
        nb = h.fixed_bytes
        if h.vl_index >= 0:
            if length_src is None:
                if h.length_exp is None:
                    raise Unsupported(f"extract of variable-length header {h.name} without a length")
                length_src = self._data(h.length_exp, f"length of header {h.name}", {"parser": True})
            inv = self.errors["ParserInvalidArgument"]
            hts = self.errors["HeaderTooShort"]
            lines = [f"_vb = {length_src}",
                     f"if _vb % 8: raise ParseErr({inv})",
                     f"_tb = {nb} + (_vb >> 3)",
                     f"if n - off < _tb: raise ParseErr({tooshort})"]
            if max_bytes:
                lines.append(f"if {max_bytes} < _tb: raise ParseErr({hts})")
            lines.append("_x = int.from_bytes(d[off:off + _tb], 'big')")
            after = 0
            vi = h.vl_index
            for f in h.fields[vi + 1:]:
                after += f.width
            shift_after = after
            assigns = []
            # fields after the VL field: fixed shifts from the end
            s = after
            for f in h.fields[vi + 1:]:
                s -= f.width
                assigns.append((f, str(s)))
            vf = h.fields[vi]
            # fields before: shift = their offset from the end + VL bits
            before = []
            s = shift_after
            for f in reversed(h.fields[:vi]):
                before.append((f, f"{s} + _vb"))
                s += f.width
            for f, sh in reversed(before):
                lines.append(self._assign_src(f"F[{f.slot}]", f.width, f.signed, f"(_x >> ({sh}))"))
            lines.append(f"F[{vf.slot}] = (_x >> {shift_after}) & ((1 << _vb) - 1)")
            lines.append(f"F[{vf.len_slot}] = _vb")
            for f, sh in assigns:
                lines.append(self._assign_src(f"F[{f.slot}]", f.width, f.signed, f"(_x >> {sh})"))
            lines += [f"V[{h.idx}] = True", "off += _tb"]
            return lines
        lines = [f"if n - off < {nb}: raise ParseErr({tooshort})",
                 f"_x = int.from_bytes(d[off:off + {nb}], 'big')"]
        vals = []
        shift = h.fixed_bits
        for k, f in enumerate(h.fields):
            shift -= f.width
            v = f"_x >> {shift}" if shift else "_x"
            if k > 0:
                v = f"({v}) & {f.mask}"
            if f.signed:
                half = 1 << (f.width - 1)
                v = f"((({v}) + {half}) & {f.mask}) - {half}"
            vals.append(v)
        a = h.first_slot
        if len(vals) == 1:
            lines.append(f"F[{a}] = {vals[0]}")
        elif vals:
            lines.append(f"F[{a}:{a + len(vals)}] = ({', '.join(vals)})")
        lines += [f"V[{h.idx}] = True", f"off += {nb}"]
        return lines

    def _parser_op(self, op: dict, where: str, ctx: dict, tooshort: int) -> list[str]:
        kind = op.get("op")
        params = op.get("parameters", [])
        if kind in ("extract", "extract_VL"):
            tgt = params[0]
            t, v = tgt.get("type"), tgt.get("value")
            length = None
            if kind == "extract_VL":
                length = self._data(params[1], where, ctx)
            if t == "regular":
                h = self.header(v, where)
                if h.metadata:
                    raise LoadError(f"extract into metadata header {h.name} (in {where})")
                if h.vl_index < 0 and length is not None:
                    raise LoadError(f"extract_VL into fixed header {h.name} (in {where})")
                return self._extract_fixed(h, tooshort, length, h.max_length)
            if t == "stack":
                st = self.stacks.get(v)
                if st is None:
                    raise LoadError(f"unknown header stack {v!r} (in {where})")
                if st.headers[0].vl_index >= 0:
                    raise Unsupported("extract of variable-length headers into a stack", where)
                sob = self.errors["StackOutOfBounds"]
                exs = self.g.fresh("_exs")  # tuple of extractors, bound after compile
                self._stack_extractors.append((exs, st))
                return [f"_i = F[{st.next_slot}]",
                        f"if _i >= {len(st.headers)}: raise ParseErr({sob})",
                        f"off = {exs}[_i](F, V, d, off, n)",
                        f"F[{st.next_slot}] = _i + 1"]
            raise Unsupported(f"extract into {t!r}", where)
        if kind == "set":
            dst, src = params
            tgt, width, signed, _ = self._lvalue(dst, where, ctx)
            if src.get("type") == "lookahead":
                off, bw = src["value"]
                need = (bw + 7) // 8  # bmv2 checks the width only, not the offset
                return [f"if n - off < {need}: raise ParseErr({tooshort})",
                        self._assign_src(tgt, width, signed, f"_la(d, off + {off // 8}, {off % 8}, {bw})")]
            return [self._assign_src(tgt, width, signed, self._data(src, where, ctx))]
        if kind == "verify":
            cond = self._bool(params[0], where, ctx)
            err = self._data(params[1], where, ctx)
            return [f"if not {cond}: raise ParseErr({err})"]
        if kind in ("advance", "shift"):
            if kind == "shift":
                nbytes = f"{int(params[0]) if isinstance(params[0], int) else _hex(params[0].get('value'), where)}"
                return [f"if n - off < {nbytes}: raise ParseErr({tooshort})", f"off += {nbytes}"]
            bits = self._data(params[0], where, ctx)
            inv = self.errors["ParserInvalidArgument"]
            return [f"_ab = {bits}", f"if _ab % 8: raise ParseErr({inv})", "_ab >>= 3",
                    f"if n - off < _ab: raise ParseErr({tooshort})", "off += _ab"]
        if kind == "primitive":
            prim = params[0]
            return self._prim(prim, where, ctx)
        raise Unsupported(f"parser operation {kind!r}", where)

    def _transition(self, s: dict, where: str, ctx: dict, ids: dict) -> list[str]:
        trans = s.get("transitions", [])
        key = s.get("transition_key", [])

        def nxt(t: dict) -> str:
            ns = t.get("next_state")
            if ns is None:
                return "-1"
            if ns not in ids:
                raise LoadError(f"unknown next state {ns!r} (in {where})")
            return str(ids[ns])

        trans = [dict(t, type=("default" if t.get("value") == "default" else "hexstr")) if "type" not in t else t
                 for t in trans]  # older p4c versions omit "type"
        if not key:
            default = next((t for t in trans if t.get("type") == "default"), None)
            if any(t.get("type") != "default" for t in trans):
                raise LoadError(f"value transitions without a transition key (in {where})")
            return [f"st = {nxt(default) if default else '-1'}"]
        parts = []
        total = 0
        for k in reversed(key):
            t, v = k.get("type"), k.get("value")
            if t == "field":
                fi = self.field(v, where)
                w = fi.width
                src = f"(F[{fi.slot}] & {fi.mask})" if fi.signed else f"F[{fi.slot}]"
            elif t == "lookahead":
                off, w = v
                src = f"_la(d, off + {off // 8}, {off % 8}, {w})"
            elif t == "stack_field":
                st = self.stacks[v[0]]
                w = st.headers[0].by_name[v[1]].width
                src = self._stack_field_read(v, where)
            else:
                raise Unsupported(f"transition key of type {t!r}", where)
            parts.append(f"({src} << {total})" if total else src)
            total += ((w + 7) // 8) * 8
        lines = [f"_k = {' | '.join(reversed(parts))}"]
        first = True
        default = "-1"
        for t in trans:
            tt = t.get("type")
            if tt == "default":
                default = nxt(t)
                break  # cases after the default can never be reached
            if tt == "hexstr":
                val = _hex(t["value"], where)
                mask = t.get("mask")
                if mask is not None:
                    m = _hex(mask, where)
                    cond = f"(_k & {m}) == {val & m}"
                else:
                    cond = f"_k == {val}"
            elif tt == "parse_vset":
                vs = self.vsets.get(t.get("value"))
                if vs is None:
                    raise LoadError(f"unknown parse value set {t.get('value')!r} (in {where})")
                vc = self.g.const(vs, "vset")
                mask = t.get("mask")
                cond = f"(_k & {_hex(mask, where)}) in {vc}" if mask is not None else f"_k in {vc}"
            else:
                raise Unsupported(f"parser transition of type {tt!r}", where)
            lines.append(f"{'if' if first else 'elif'} {cond}: st = {nxt(t)}")
            first = False
        if first:
            lines.append(f"st = {default}")
        else:
            lines.append(f"else: st = {default}")
        return lines

    # ================================================================== deparser

    def _load_deparser(self) -> None:
        deps = self.json.get("deparsers", []) or []
        if len(deps) != 1 or deps[0].get("name") != "deparser":
            raise Unsupported(f"deparsers {[d.get('name') for d in deps]} (simple_switch runs one, named 'deparser')")
        dp = deps[0]
        body = ["F = P.F", "V = P.V"]
        for c in self.checksums:
            if not c.update:
                continue
            tgt = c.target
            line = self._assign_src(f"F[{tgt.slot}]", tgt.width, tgt.signed, f"{c.calc}(P, F, V)")
            if c.cond:
                body += [f"if {c.cond}(P, F, V):", "    " + line]
            else:
                body.append(line)
        for prim in dp.get("primitives", []) or []:
            body += self._prim(prim, "deparser", {"nparams": 0})
        body.append("_o = []")
        for name in dp.get("order", []):
            h = self.header(name, "deparser")
            if h.vl_index >= 0:
                body += [f"if V[{h.idx}]:"] + _ind(self._emit_vl(h))
            else:
                body += [f"if V[{h.idx}]:", f"    _o.append({self._header_bits(h)}.to_bytes({h.fixed_bytes}, 'big'))"]
        body += ["_o.append(P.payload)", "return b''.join(_o)"]
        self.g.emit(["def deparse(P):"] + _ind(body))

    def _emit_vl(self, h: HeaderInfo) -> list[str]:
        lines = ["_a = 0", "_n = 0"]
        for f in h.fields:
            if f.vl:
                lines += [f"_a = (_a << F[{f.len_slot}]) | F[{f.slot}]", f"_n += F[{f.len_slot}]"]
            else:
                v = f"(F[{f.slot}] & {f.mask})" if f.signed else f"F[{f.slot}]"
                lines += [f"_a = (_a << {f.width}) | {v}", f"_n += {f.width}"]
        lines.append("_o.append(_a.to_bytes(_n >> 3, 'big'))")
        return lines

    # ================================================================== pipelines

    def _load_pipelines(self) -> None:
        pipes = {p["name"]: p for p in self.json.get("pipelines", []) or []}
        for needed in ("ingress", "egress"):
            if needed not in pipes:
                raise LoadError(f"the JSON has no '{needed}' pipeline")
        for name in pipes:
            if name not in ("ingress", "egress"):
                raise Unsupported(f"pipeline {name!r} (simple_switch runs 'ingress' and 'egress')")
        self._node_fn: dict[tuple[str, str], str] = {}
        for pname in ("ingress", "egress"):
            p = pipes[pname]
            if p.get("action_profiles"):
                names = ", ".join(a.get("name", "?") for a in p["action_profiles"])
                raise Unsupported(f"action profiles / selectors ({names})", f"pipeline {pname}")
            nodes: dict[str, tuple[str, dict]] = {}
            for t in p.get("tables", []):
                nodes[t["name"]] = ("table", t)
            for c in p.get("conditionals", []):
                nodes[c["name"]] = ("cond", c)
            for a in p.get("action_calls", []) or []:
                nodes[a["name"]] = ("call", a)
            for i, name in enumerate(nodes):
                self._node_fn[(pname, name)] = f"n_{pname}_{i}"

            def ref(target: str | None, where: str, pname: str = pname) -> str:
                if target is None:
                    return "None"
                fn = self._node_fn.get((pname, target))
                if fn is None:
                    raise LoadError(f"unknown control node {target!r} (in {where})")
                return fn

            for name, (kind, obj) in nodes.items():
                fn = self._node_fn[(pname, name)]
                where = f"{pname} {kind} {name}"
                if kind == "cond":
                    cond = self._bool(obj["expression"], where, {})
                    self.g.emit([f"def {fn}(P, F, V):",
                                 f"    return {ref(obj.get('true_next'), where)} if {cond} else {ref(obj.get('false_next'), where)}"])
                elif kind == "call":
                    act = self.actions.get(int(obj["action_id"]))
                    if act is None:
                        raise LoadError(f"unknown action id {obj['action_id']} (in {where})")
                    self.g.emit([f"def {fn}(P, F, V):",
                                 f"    a_{act.jid}(P, F, V, ())",
                                 f"    return {ref(obj.get('next_node'), where)}"])
                else:
                    self._table_node(fn, pname, obj, where, ref)
            init = p.get("init_table")
            self.g.emit([f"def pipe_{pname}(P):",
                         "    F = P.F", "    V = P.V",
                         f"    n = {ref(init, f'pipeline {pname}')}",
                         "    while n is not None and not P.exit:",
                         "        n = n(P, F, V)"])

    def _table_node(self, fn: str, pname: str, t: dict, where: str, ref: Callable) -> None:
        name = t["name"]
        ttype = t.get("type", "simple")
        if ttype != "simple":
            raise Unsupported(f"table implementation {ttype!r} (action profile/selector)", where)
        if t.get("support_timeout"):
            raise Unsupported("idle timeout (support_timeout)", where)
        keys: list[KeyField] = []
        key_src: list[str] = []
        for k in t.get("key", []):
            mt = k.get("match_type")
            tgt = k.get("target")
            kname = k.get("name") or (".".join(tgt) if isinstance(tgt, list) else str(tgt))
            if mt == "valid":
                h = self.header(tgt if isinstance(tgt, str) else tgt[0], where)
                src, width = f"(1 if V[{h.idx}] else 0)", 1
                kind = VALID
            elif mt in ("exact", "lpm", "ternary", "range", "optional"):
                if isinstance(tgt, list) and len(tgt) == 2 and tgt[1] == "$valid$":
                    h = self.header(tgt[0], where)
                    src, width = f"(1 if V[{h.idx}] else 0)", 1
                else:
                    fi = self.field(tgt, where)
                    if fi.vl:
                        raise Unsupported("matching on a variable-length field", where)
                    src = f"(F[{fi.slot}] & {fi.mask})" if fi.signed else f"F[{fi.slot}]"
                    width = fi.width
                kind = {"exact": EXACT, "lpm": LPM, "ternary": TERNARY, "range": RANGE, "optional": OPTIONAL}[mt]
            else:
                raise Unsupported(f"match type {mt!r}", where)
            if k.get("mask") is not None:
                src = f"({src} & {_hex(k['mask'], where)})"
            keys.append(KeyField(kind, width, kname, src))
            key_src.append(src)
        if sum(1 for k in keys if k.kind == LPM) > 1:
            raise Unsupported("more than one LPM field in a table", where)
        meter = None
        if t.get("direct_meters"):
            meter = self.meters.get(t["direct_meters"])
            if meter is None:
                raise LoadError(f"unknown direct meter {t['direct_meters']!r} (in {where})")
        immutable = bool(t.get("entries"))
        table = Table(name, int(t["id"]), keys, int(t.get("max_size", 1024)), bool(t.get("with_counters", False)),
                      meter, immutable)
        table.pipeline = pname  # type: ignore[attr-defined]
        table.node_fn = fn      # type: ignore[attr-defined]
        table.where = where     # type: ignore[attr-defined]
        ids = t.get("action_ids", [])
        anames = t.get("actions", [])
        for aid in ids:
            act = self.actions.get(int(aid))
            if act is None:
                raise LoadError(f"unknown action id {aid} (in {where})")
            table.actions[act.name] = act
            table.actions_by_jid[act.jid] = act
        if not ids and anames:
            for an in anames:
                acts = [a for a in self.actions.values() if a.name == an]
                if not acts:
                    raise LoadError(f"unknown action {an!r} (in {where})")
                table.actions[an] = acts[0]
                table.actions_by_jid[acts[0].jid] = acts[0]
        nt = t.get("next_tables", {}) or {}
        if "__HIT__" in nt or "__MISS__" in nt:
            table.uses_hit_miss = True
            table.next_hit = ref(nt.get("__HIT__"), where)
            table.next_miss = ref(nt.get("__MISS__"), where)
        else:
            for an, target in nt.items():
                table.next_by_action[an] = ref(target, where)
        de = t.get("default_entry")
        if de is not None:
            act = self.actions.get(int(de["action_id"]))
            if act is None:
                raise LoadError(f"unknown default action id {de['action_id']} (in {where})")
            data = tuple(_hex(x, where) for x in de.get("action_data", []))
            if len(data) != len(act.params):
                raise LoadError(f"default action {act.name} of {name} has {len(data)} arguments, expects {len(act.params)}")
            table.initial_default = (act, data)
            table.default_const = bool(de.get("action_const", False))
            table.default_entry_const = bool(de.get("action_entry_const", False))
        self.tables[name] = table
        self._table_entries_json[name] = t.get("entries", []) or []

        tc = self.g.const(table, "tbl")
        body: list[str] = []
        ex = [key_src[i] for i in table.exact_pos]
        if not keys:
            body.append("e = None")
        elif table.mode == "exact":
            if len(ex) == 1:
                body.append(f"e = {tc}.exact_map.get({ex[0]})")
            else:
                body.append(f"e = {tc}.exact_map.get(({', '.join(ex)},))")
        elif table.mode == "lpm":
            body.append(f"e = {tc}.lookup_lpm(({''.join(x + ', ' for x in ex)}), {key_src[table.lpm_pos]})")
        else:
            exs = f"({''.join(x + ', ' for x in ex)})"
            kparts = []
            for i in table.tern_pos:
                s = table.tern_shift[i]
                kparts.append(f"({key_src[i]} << {s})" if s else key_src[i])
            kexpr = " | ".join(kparts) if kparts else "0"
            rexpr = f"({''.join(key_src[i] + ', ' for i in table.range_pos)})"
            body.append(f"e = {tc}.lookup_ternary({exs}, {kexpr}, {rexpr})")
        miss_next = table.next_miss if table.uses_hit_miss else "e.next"
        hit_next = table.next_hit if table.uses_hit_miss else "e.next"
        body += ["if e is None:",
                 f"    e = {tc}.default",
                 "    e.fn(P, F, V, e.data)",
                 f"    return {miss_next}"]
        if table.with_counters:
            body += ["c = e.counter", "c[0] += 1", "c[1] += P.ilen"]
        if meter is not None and meter.name in self._meter_targets:
            tf = self._meter_targets[meter.name]
            body += [self._assign_src(f"F[{tf.slot}]", tf.width, tf.signed, "e.meter.execute(P.ilen)")]
        elif meter is not None:
            body += ["e.meter.execute(P.ilen)"]
        body += ["e.fn(P, F, V, e.data)", f"return {hit_next}"]
        self.g.emit([f"def {fn}(P, F, V):"] + _ind(body))

    # ================================================================== compile

    def _compile(self) -> None:
        src = "\n".join(self.g.lines)
        fname = f"<p4tap-softswitch program {id(self):x}>"
        # keep the source for tracebacks
        linecache.cache[fname] = (len(src), None, src.splitlines(True), fname)
        self.source = src
        ns = self.g.ns
        ns["_regrd"] = lambda r, i: r.values[i] if 0 <= i < r.size else 0
        try:
            code = compile(src, fname, "exec")
        except SyntaxError as e:  # a bug here, not in the user's program
            raise LoadError(f"internal error compiling the program: {e}") from e
        exec(code, ns)  # noqa: S102 - the program's own generated code
        self.ns = ns
        self.parse: Callable = ns["parse"]
        self.deparse: Callable = ns["deparse"]
        self.ingress: Callable = ns["pipe_ingress"]
        self.egress: Callable = ns["pipe_egress"]
        for a in self.actions.values():
            a.fn = ns[f"a_{a.jid}"]
        for name, fn in list(self.calculations.items()):
            self.calculations[name] = ns[fn] if isinstance(fn, str) else fn
        for exs, st in self._stack_extractors:
            ns[exs] = tuple(ns[f"ex_{h.idx}"] for h in st.headers)
        for c in self.checksums:
            if isinstance(c.calc, str):
                c.calc = ns[c.calc]
            if isinstance(c.cond, str):
                c.cond = ns[c.cond]
        for t in self.tables.values():
            t.next_hit = ns.get(t.next_hit) if isinstance(t.next_hit, str) else t.next_hit
            t.next_miss = ns.get(t.next_miss) if isinstance(t.next_miss, str) else t.next_miss
            t.next_by_action = {a: (ns.get(n) if n != "None" else None) for a, n in t.next_by_action.items()}
            t.default = self.make_entry(t, *t.initial_default) if t.initial_default else self._noop_default(t)
            for ej in self._table_entries_json.get(t.name, []):
                self._add_json_entry(t, ej)

    def node(self, ref: str | None) -> Callable | None:
        if ref is None or ref == "None":
            return None
        return self.ns[ref]

    def _noop_default(self, t: Table) -> Entry:
        e = Entry()
        e.fn = lambda P, F, V, D: None
        e.next = None
        e.data = ()
        return e

    def make_entry(self, t: Table, act: Action, data: tuple) -> Entry:
        e = Entry()
        e.action = act
        e.fn = act.fn
        e.data = tuple(data)
        if t.uses_hit_miss:
            e.next = None
        else:
            nxt = t.next_by_action.get(act.name)
            e.next = nxt if not isinstance(nxt, str) else self.node(nxt)
        if t.with_counters:
            e.counter = [0, 0]
        return e   # a direct meter comes with the handle (Table.add)

    def _add_json_entry(self, t: Table, ej: dict) -> None:
        where = f"const entries of table {t.name}"
        mk = ej.get("match_key", [])
        if len(mk) != len(t.keys):
            raise LoadError(f"entry has {len(mk)} key fields, table has {len(t.keys)} (in {where})")
        key = []
        for kf, m in zip(t.keys, mk):
            mt = m.get("match_type")
            if kf.kind in (EXACT,):
                key.append(_hex(m["key"], where))
            elif kf.kind == VALID:
                key.append(1 if m.get("key") else 0)
            elif kf.kind == LPM:
                key.append((_hex(m["key"], where), int(m["prefix_length"])))
            elif kf.kind in (TERNARY, OPTIONAL):
                if mt == "exact" or (kf.kind == OPTIONAL and "mask" not in m):
                    key.append((_hex(m["key"], where), (1 << kf.width) - 1))
                else:
                    key.append((_hex(m["key"], where) & _hex(m["mask"], where), _hex(m["mask"], where)))
            elif kf.kind == RANGE:
                key.append((_hex(m["start"], where), _hex(m["end"], where)))
        act = t.actions_by_jid.get(int(ej["action_entry"]["action_id"]))
        if act is None:
            raise LoadError(f"entry uses an action the table does not have (in {where})")
        data = tuple(_hex(x, where) for x in ej["action_entry"].get("action_data", []))
        e = self.make_entry(t, act, data)
        bm_prio = int(ej.get("priority", 0))
        # bmv2: lower number = higher priority; PI reports INT32_MAX - bmv2 priority
        e.priority = (2147483647 - bm_prio) if t.needs_priority else 0
        e.key = tuple(key) + ((e.priority,) if t.needs_priority else ())
        e.is_const = True
        t.add(e)

    # ================================================================== helpers for the switch

    def new_packet(self) -> Packet:
        p = Packet()
        p.F = self.F_init[:]
        p.V = self.V_init[:]
        return p

    def reset_metadata(self, F: list) -> None:
        for h in self.headers:
            if h.metadata:
                for f in h.fields:
                    F[f.slot] = 0
                    if f.vl:
                        F[f.len_slot] = 0

    def reset_state(self) -> None:
        """Back to the state right after loading (no entries, zero counters...)."""
        for t in self.tables.values():
            for e in list(t.entries.values()):
                if not e.is_const:
                    t.delete(e)
            t.default = self.make_entry(t, *t.initial_default) if t.initial_default else self._noop_default(t)
        for c in self.counters.values():
            c.reset()
        for m in self.meters.values():
            m.reset()
        for r in self.registers.values():
            r.reset()
