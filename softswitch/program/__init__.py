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

The compiler is a stack of layers, one module each, every one a class the next
extends: :mod:`.symbols` (state, headers, externs) < :mod:`.expressions` <
:mod:`.primitives` < :mod:`.actions` (calculations, actions, checksums) <
:mod:`.parser` (parser, deparser) < :mod:`.pipelines` < :class:`Program`
here, which loads, compiles and binds; :mod:`.model` and :mod:`.codegen` are
beneath them all.
"""

from __future__ import annotations

import json
import linecache
import random
from collections.abc import Callable

from ..errors import LoadError, SwitchAbort, Unsupported
from ..tables import EXACT, LPM, OPTIONAL, RANGE, TERNARY, VALID, Entry, Table
from .codegen import _hex, _lookahead, _sat, _tdiv, _tmod, _two_comp_mod, _usat
from .model import CORE_ERRORS, REQUIRED_STD, STD_FIELDS, Action, Packet, ParseErr
from .pipelines import Pipelines

__all__ = ["CORE_ERRORS", "Packet", "ParseErr", "Program"]


class Program(Pipelines):
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
        super().__init__(j, log)
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
