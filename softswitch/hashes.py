"""Hash / checksum algorithms of bmv2 (``bm_sim/calculations.cpp``), by the
names the bmv2 JSON uses for them.

Each algorithm is a function ``bytes -> int`` (bmv2 computes a uint64).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from .errors import Unsupported

__all__ = ["ALGORITHMS", "algorithm", "csum16"]


def _reflect(value: int, nbits: int) -> int:
    out = 0
    for i in range(nbits):
        if value & (1 << i):
            out |= 1 << (nbits - 1 - i)
    return out


def _crc_factory(width: int, poly: int, init: int, xor_out: int, refin: bool, refout: bool) -> Callable[[bytes], int]:
    """A table-driven CRC exactly as bmv2's ``crc_custom`` template computes it."""
    top = 1 << (width - 1)
    mask = (1 << width) - 1
    table = []
    for dividend in range(256):
        rem = (dividend << (width - 8)) & mask
        for _ in range(8):
            rem = ((rem << 1) ^ poly) & mask if rem & top else (rem << 1) & mask
        table.append(rem)
    table = tuple(table)
    refl8 = tuple(_reflect(b, 8) for b in range(256))
    shift = width - 8

    def crc(buf: bytes) -> int:
        rem = init
        if refin:
            for b in buf:
                rem = table[(refl8[b] ^ (rem >> shift)) & 0xFF] ^ ((rem << 8) & mask)
        else:
            for b in buf:
                rem = table[(b ^ (rem >> shift)) & 0xFF] ^ ((rem << 8) & mask)
        if refout:
            rem = _reflect(rem, width)
        return rem ^ xor_out

    return crc


def csum16(buf: bytes) -> int:
    """Internet checksum (RFC 1071) of ``buf``, odd length padded with a zero byte.

    The one's-complement sum of the 16-bit words is the buffer, read as one
    big integer, modulo 0xFFFF (2**16 = 1 mod 0xFFFF), in 1..0xFFFF unless
    every word is zero -- exactly bmv2's end-around-carry result.
    """
    if len(buf) & 1:
        buf = buf + b"\x00"
    n = int.from_bytes(buf, "big")
    if not n:
        return 0xFFFF
    s = n % 0xFFFF
    return (~s & 0xFFFF) if s else 0


def _crc32(buf: bytes) -> int:
    return zlib.crc32(buf) & 0xFFFFFFFF


_crc16 = _crc_factory(16, 0x8005, 0x0000, 0x0000, True, True)
_crc_ccitt = _crc_factory(16, 0x1021, 0xFFFF, 0x0000, False, False)
_crc8_custom = _crc_factory(8, 0x07, 0x00, 0x00, False, False)
_crc64_custom = _crc_factory(64, 0x1B, 0, 0, True, True)


def _xor(n: int) -> Callable[[bytes], int]:
    def f(buf: bytes) -> int:
        out = 0
        full = len(buf) - len(buf) % n
        for i in range(0, full, n):
            out ^= int.from_bytes(buf[i:i + n], "big")
        tail = buf[full:]
        if tail:
            out ^= int.from_bytes(tail, "big") << (8 * (n - len(tail)))
        return out
    return f


def _identity(buf: bytes) -> int:
    return int.from_bytes(buf[:8], "big")


class _RoundRobin:
    def __init__(self) -> None:
        self.idx = 0

    def __call__(self, buf: bytes) -> int:
        v = self.idx
        self.idx += 1
        return v


ALGORITHMS: dict[str, Callable[[], Callable[[bytes], int]]] = {
    "crc16": lambda: _crc16,
    "crc16_custom": lambda: _crc16,
    "crc32": lambda: _crc32,
    "crc32_custom": lambda: _crc32,
    "crcCCITT": lambda: _crc_ccitt,
    "csum16": lambda: csum16,
    "cksum16": lambda: csum16,
    "identity": lambda: _identity,
    "xor16": lambda: _xor(2),
    "xor32": lambda: _xor(4),
    "crc8_custom": lambda: _crc8_custom,
    "crc64_custom": lambda: _crc64_custom,
    "round_robin": lambda: _RoundRobin(),
}


def algorithm(name: str, where: str) -> Callable[[bytes], int]:
    """The function for bmv2 hash algorithm ``name`` (a fresh instance for stateful ones)."""
    try:
        return ALGORITHMS[name]()
    except KeyError:
        raise Unsupported(f"hash algorithm {name!r}", where) from None
