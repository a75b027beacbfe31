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

    def meets(self, other: Ternary) -> bool:
        return not (self.value ^ other.value) & self.mask & other.mask

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

    def meets(self, other: Span) -> bool:
        return self.lo <= other.hi and other.lo <= self.hi

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
    `flow_label` is always ANY for IPv4. `egress_port` and `mcast_grp` are
    what forwarding chose for the packet (a port, or a flood group).
    """

    family: int
    vrf: int
    ingress_port: Ternary = ANY
    egress_port: Ternary = ANY
    mcast_grp: Ternary = ANY
    src_addr: Ternary = ANY
    dst_addr: Ternary = ANY
    protocol: Ternary = ANY
    tos: Ternary = ANY
    flow_label: Ternary = ANY
    l4_valid: Ternary = ANY
    src_port: Span = ANY_PORT
    dst_port: Span = ANY_PORT

    def __hash__(self) -> int:
        # Regions key the planner's dicts and sets; hashing thirteen nested
        # fields on every look-up dominated planning 10,000 taps. Immutable,
        # so the hash is kept.
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = hash(tuple(getattr(self, f) for f in _REGION_FIELDS))
            object.__setattr__(self, "_hash", cached)
        return cached

    def _sets(self) -> tuple[str, ...]:
        return _REGION_SETS

    def overlaps(self, other: Region) -> bool:
        """Whether some packet is in both: `intersect` without building the result."""
        return (self.family == other.family and self.vrf == other.vrf
                and self.src_addr.meets(other.src_addr) and self.dst_addr.meets(other.dst_addr)
                and self.dst_port.meets(other.dst_port) and self.src_port.meets(other.src_port)
                and self.protocol.meets(other.protocol) and self.ingress_port.meets(other.ingress_port)
                and self.egress_port.meets(other.egress_port) and self.mcast_grp.meets(other.mcast_grp)
                and self.tos.meets(other.tos) and self.flow_label.meets(other.flow_label)
                and self.l4_valid.meets(other.l4_valid))

    def intersect(self, other: Region) -> Region | None:
        if not self.overlaps(other):
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


_REGION_FIELDS = tuple(f.name for f in fields(Region))
_REGION_SETS = tuple(name for name in _REGION_FIELDS if name not in ("family", "vrf"))
