"""The compiler's primitive layer: one bmv2 primitive call to Python statements.

Primitives are the statements of action bodies, of parser ``primitive`` ops
and of the deparser; the run-time helpers at the end serve primitives on
header-stack elements chosen only at run time.
"""

from __future__ import annotations

from typing import Any

from ..errors import LoadError, Unsupported
from .codegen import _hex
from .model import HeaderInfo, Packet, StackInfo
from .expressions import Expressions


class Primitives(Expressions):
    """Compiles primitives (over :class:`Expressions`)."""

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
