"""Generated-source bookkeeping (:class:`_Gen`) and the run-time arithmetic the
generated code calls (bmv2's truncating division, saturating casts, lookahead).

Beside the model at the bottom of the compiler: the layers above take these
from here, and :class:`~softswitch.program.Program` puts the run-time helpers
into the generated code's namespace.
"""

from __future__ import annotations

from typing import Any

from ..errors import LoadError

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
