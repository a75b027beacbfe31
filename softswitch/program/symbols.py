"""The compiler's first layer: the program's state, and its symbol tables.

Headers, header stacks, errors, field aliases, field lists, value sets and the
extern arrays (counters, meters, registers) are read from the JSON into the
slots and objects every later layer resolves names against.  Layers stack one
on another (symbols < expressions < primitives < actions < parser < pipelines
< :class:`~softswitch.program.Program`); each imports only the ones below it.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import LoadError, Unsupported
from ..externs import CounterArray, MeterArray, RegisterArray
from ..tables import Table
from .codegen import _Gen
from .model import CORE_ERRORS, Action, Checksum, FieldInfo, HeaderInfo, StackInfo


class Symbols:
    """The state a program is compiled into, and lookups of headers and fields by name."""

    def __init__(self, j: dict, log: Callable[[str], None] | None = None) -> None:
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
