"""The compiler's parser layer: the parser and the deparser.

The parser becomes one ``parse(P, d)`` state machine that extracts into the
flat field list and verifies checksums; the deparser one ``deparse(P)`` that
updates checksums and emits the valid headers in order.
"""

from __future__ import annotations

from ..errors import LoadError, Unsupported
from .codegen import _hex, _ind
from .model import HeaderInfo
from .actions import Actions


class Parsers(Actions):
    """Compiles the parser and the deparser (over :class:`Actions`)."""

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
