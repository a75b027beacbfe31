"""Which filter regions overlap: grouping and intersection closure.

Two regions of one side can only overlap where one's address prefix on that
side contains the other's, so regions are indexed by that prefix and only a
region's ancestors and descendants are ever compared: O(address bits) lookups
per region instead of comparing every pair, which keeps 10,000 taps cheap to
plan and lets the incremental planner find what a new filter touches.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import defaultdict
from collections.abc import Iterator

from controller.model import InterceptError
from controller.regions import Region, Ternary

MAX_REGIONS_PER_OVERLAP = 4096

PrefixKey = tuple[int, int]  # (family, vrf): regions of different ones never overlap


def side_prefix(region: Region, field: str) -> tuple[int, int]:
    """(value, length) of the region's address prefix in `field` (src_addr or dst_addr)."""
    t: Ternary = getattr(region, field)
    return t.value, t.mask.bit_count()


class PrefixIndex:
    """Regions by their address prefix in one field, for overlap look-ups."""

    def __init__(self, field: str) -> None:
        self.field = field
        self._regions: dict[tuple[int, int, int, int], list[Region]] = {}  # (family, vrf, length, value)
        self._values: dict[tuple[int, int, int], list[int]] = {}  # (family, vrf, length) -> sorted values
        self._lengths: dict[PrefixKey, list[int]] = defaultdict(list)  # sorted lengths in use

    def add(self, region: Region) -> None:
        value, length = side_prefix(region, self.field)
        bucket = self._regions.setdefault((region.family, region.vrf, length, value), [])
        if not bucket:
            level = (region.family, region.vrf, length)
            if level not in self._values:
                self._values[level] = []
                insort(self._lengths[(region.family, region.vrf)], length)
            insort(self._values[level], value)
        bucket.append(region)

    def remove(self, region: Region) -> None:
        value, length = side_prefix(region, self.field)
        key = (region.family, region.vrf, length, value)
        bucket = self._regions[key]
        bucket.remove(region)
        if bucket:
            return
        del self._regions[key]
        level = (region.family, region.vrf, length)
        values = self._values[level]
        del values[bisect_left(values, value)]
        if not values:
            del self._values[level]
            self._lengths[(region.family, region.vrf)].remove(length)

    def ancestors(self, region: Region) -> Iterator[Region]:
        """Indexed regions whose prefix contains this region's (its own included)."""
        value, length = side_prefix(region, self.field)
        bits = 32 if region.family == 4 else 128
        for shorter in self._lengths.get((region.family, region.vrf), ()):
            if shorter > length:
                break
            ancestor = Ternary.prefix(value, shorter, bits).value
            yield from self._regions.get((region.family, region.vrf, shorter, ancestor), ())

    def descendants(self, region: Region) -> Iterator[Region]:
        """Indexed regions whose prefix is strictly inside this region's."""
        value, length = side_prefix(region, self.field)
        bits = 32 if region.family == 4 else 128
        last = value | ((1 << (bits - length)) - 1)
        for longer in self._lengths.get((region.family, region.vrf), ()):
            if longer <= length:
                continue
            values = self._values[(region.family, region.vrf, longer)]
            for v in values[bisect_left(values, value):bisect_right(values, last)]:
                yield from self._regions[(region.family, region.vrf, longer, v)]

    def overlapping(self, region: Region) -> list[Region]:
        """Indexed regions, other than `region` itself, that share a packet with it."""
        return [other for source in (self.ancestors(region), self.descendants(region)) for other in source
                if other != region and other.overlaps(region)]


def overlap_groups(regions: list[Region], field: str) -> list[list[Region]]:
    """Partition regions into groups that overlap transitively (union-find
    over each region's indexed ancestors)."""
    parent = list(range(len(regions)))
    position = {id(region): i for i, region in enumerate(regions)}  # the index yields these very objects

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    index = PrefixIndex(field)
    for region in regions:
        index.add(region)
    for i, region in enumerate(regions):
        for other in index.ancestors(region):
            j = position[id(other)]
            if j != i and find(i) != find(j) and region.overlaps(other):
                parent[find(i)] = find(j)
    groups: dict[int, list[Region]] = defaultdict(list)
    for i, region in enumerate(regions):
        groups[find(i)].append(region)
    return list(groups.values())


def closure(group: list[Region]) -> set[Region]:
    """All non-empty intersections of the group's regions."""
    if len(group) == 1:
        return set(group)  # the common case: a filter nobody else's overlaps
    result = set(group)
    frontier = list(result)
    while frontier:
        fresh = []
        for region in frontier:
            for base in group:
                both = region.intersect(base)
                if both is not None and both not in result:
                    result.add(both)
                    fresh.append(both)
        if len(result) > MAX_REGIONS_PER_OVERLAP:
            raise InterceptError(
                f"{len(group)} overlapping filters need more than {MAX_REGIONS_PER_OVERLAP} entries: "
                "narrow the filters"
            )
        frontier = fresh
    return result
