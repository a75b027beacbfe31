"""The compiler's action layer: calculations (hashes), action bodies and checksums.

Each becomes one generated function: ``calc_N(P, F, V)``, ``a_<id>(P, F, V, D)``
and ``ipv4ck_N``/``ckcond_N``; the parser and deparser above call the
checksums, tables and action calls in the pipelines call the actions.
"""

from __future__ import annotations

from .. import hashes
from ..errors import LoadError, Unsupported
from .codegen import _hex, _ind
from .model import Action, Checksum, HeaderInfo
from .primitives import Primitives


class Actions(Primitives):
    """Compiles calculations, actions and checksums (over :class:`Primitives`)."""

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
