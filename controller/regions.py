"""Match regions: the set of packets a filter entry matches, and their algebra.

A `Region` is a product of per-field sets, each a ternary (value/mask) or a
range, exactly as the pipeline's filter tables can express them. Two regions
intersect into another region (or nothing), which is what lets the planner
resolve overlapping taps into non-overlapping table priorities instead of
letting one filter hide another.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, order=True)
class Ternary:
    """Values v with v & mask == value. mask 0 matches everything."""

    value: int
    mask: int

    def __post_init__(self) -> None:
        if self.value & ~self.mask:
            raise ValueError(f"ternary value {self.value:#x} has bits outside mask {self.mask:#x}")

    @classmethod
    def exact(cls, value: int, bits: int) -> Ternary:
        return cls(value, (1 << bits) - 1)

    @classmethod
    def prefix(cls, value: int, length: int, bits: int) -> Ternary:
        mask = ((1 << length) - 1) << (bits - length) if length else 0
        return cls(value & mask, mask)

    @property
    def wildcard(self) -> bool:
        return self.mask == 0

    def intersect(self, other: Ternary) -> Ternary | None:
        if (self.value ^ other.value) & self.mask & other.mask:
            return None
        return Ternary(self.value | other.value, self.mask | other.mask)

    def contains(self, other: Ternary) -> bool:
        return not (self.mask & ~other.mask) and not ((self.value ^ other.value) & self.mask)

    def matches(self, value: int) -> bool:
        return value & self.mask == self.value


@dataclass(frozen=True, order=True)
class Span:
    """Values lo..hi inclusive."""

    lo: int
    hi: int

    def __post_init__(self) -> None:
        if self.lo > self.hi:
            raise ValueError(f"empty range {self.lo}..{self.hi}")

    def intersect(self, other: Span) -> Span | None:
        lo, hi = max(self.lo, other.lo), min(self.hi, other.hi)
        return Span(lo, hi) if lo <= hi else None

    def contains(self, other: Span) -> bool:
        return self.lo <= other.lo and other.hi <= self.hi

    def matches(self, value: int) -> bool:
        return self.lo <= value <= self.hi


ANY_PORT = Span(0, 65535)
ANY = Ternary(0, 0)


@dataclass(frozen=True, order=True)
class Region:
    """The packets one filter table entry matches.

    `family` (4 or 6) and `vrf` are exact; every other field is a set.
    `flow_label` is always ANY for IPv4.
    """

    family: int
    vrf: int
    ingress_port: Ternary = ANY
    src_addr: Ternary = ANY
    dst_addr: Ternary = ANY
    protocol: Ternary = ANY
    tos: Ternary = ANY
    flow_label: Ternary = ANY
    l4_valid: Ternary = ANY
    src_port: Span = ANY_PORT
    dst_port: Span = ANY_PORT

    def _sets(self) -> list[str]:
        return [f.name for f in fields(self) if f.name not in ("family", "vrf")]

    def intersect(self, other: Region) -> Region | None:
        if (self.family, self.vrf) != (other.family, other.vrf):
            return None
        merged = {}
        for name in self._sets():
            both = getattr(self, name).intersect(getattr(other, name))
            if both is None:
                return None
            merged[name] = both
        return Region(self.family, self.vrf, **merged)

    def contains(self, other: Region) -> bool:
        return (self.family, self.vrf) == (other.family, other.vrf) and all(
            getattr(self, name).contains(getattr(other, name)) for name in self._sets()
        )

    def matches(self, packet: dict[str, int]) -> bool:
        """Whether a packet's key (field name -> value, plus family and vrf) is inside."""
        return (packet["family"], packet["vrf"]) == (self.family, self.vrf) and all(
            getattr(self, name).matches(packet[name]) for name in self._sets()
        )
