"""The compiler's expression layer: bmv2 type-value objects to Python source.

An expression compiles to ``(source, kind)`` where kind says whether it is
data, a boolean, a header index or a header stack, so that each use can check
and convert as bmv2 does; lvalues compile to an assignment target and the
width it truncates to.
"""

from __future__ import annotations

from typing import Any

from ..errors import LoadError, Unsupported
from .codegen import _hex
from .model import FieldInfo, HeaderInfo, StackInfo
from .symbols import Symbols

# Operators compiled to a call of one of the run-time helpers (codegen) on two data operands.
_CALLS = {"/": "_tdiv", "%": "_tmod", "two_comp_mod": "_tcm", "usat_cast": "_usat", "sat_cast": "_sat"}


class Expressions(Symbols):
    """Compiles expressions and assignment targets (over :class:`Symbols`)."""

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
        if op in _CALLS:
            return f"{_CALLS[op]}({self._data(left, where, ctx)}, {self._data(right, where, ctx)})", "d"
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
        if op == "d2b":
            return f"({self._data(right, where, ctx)} != 0)", "b"
        if op == "b2d":
            return f"(1 if {self._bool(right, where, ctx)} else 0)", "d"
        if op in ("dereference_header_stack", "dereference_stack"):
            st = self._stack_operand(left, op, where, ctx)
            tup = self.g.const(tuple(h.idx for h in st.headers), "stk")
            return f"{tup}[{self._data(right, where, ctx)}]", "h"
        if op == "last_stack_index":
            return f"(F[{self._stack_operand(right, op, where, ctx).next_slot}] - 1)", "d"
        if op == "size_stack":
            return f"F[{self._stack_operand(right, op, where, ctx).next_slot}]", "d"
        if op == "access_field":
            h, kh = self._expr(left, where, ctx)
            if kh != "h" or not isinstance(right, int):
                raise LoadError(f"bad access_field (in {where})")
            if h.isdigit():
                hi = self.headers[int(h)]
                return f"F[{hi.fields[right].slot}]", "d"
            return f"F[HB[{h}] + {right}]", "d"
        raise Unsupported(f"expression operator {op!r}", where)

    def _stack_operand(self, e: Any, op: str, where: str, ctx: dict) -> StackInfo:
        """The header stack operand ``e`` of the stack operator ``op`` (one check for all of them)."""
        s, ks = self._expr(e, where, ctx)
        if ks != "s":
            raise LoadError(f"{op} needs a header stack (in {where})")
        return self.stacks[eval(s)]

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
