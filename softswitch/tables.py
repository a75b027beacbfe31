"""Match-action tables: entries, lookup structures, default entries.

A table's lookup structure is chosen once, from its key, when the JSON is
loaded:

* all exact (or valid) fields: one dict from the key to the entry;
* exact fields plus one LPM field: a dict per prefix length, probed from the
  longest prefix down (only lengths that have entries are probed);
* anything with ternary, range or optional fields: the entries are partitioned
  by the values of their exact fields (a dict), and each partition is a list
  sorted by priority (highest P4Runtime priority first, then by entry handle,
  which is bmv2's tie-break); the ternary/LPM/optional fields are folded into
  one integer so a candidate costs one ``&`` and one ``==``, plus the range
  checks.

Entry handles are allocated like bmv2's HandleMgr: the lowest free one.
"""

from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Entry", "KeyField", "Table", "TableError"]

_MISSING = object()
CACHE_SIZE = 4096

# match kinds, as used internally (P4Runtime "optional" is a ternary on bmv2)
EXACT, LPM, TERNARY, RANGE, VALID, OPTIONAL = "exact", "lpm", "ternary", "range", "valid", "optional"


class TableError(Exception):
    """A write the target itself refuses (bmv2 reports these as target errors)."""


@dataclass
class KeyField:
    kind: str           # exact | lpm | ternary | range | valid | optional
    width: int          # bits
    name: str
    # where the value comes from (filled by the compiler): source text of a
    # Python expression over F/V
    source: str = ""


class Entry:
    """One table entry (or a default entry, with ``key`` None)."""

    __slots__ = (
        "action",
        "controller_metadata",
        "counter",
        "data",
        "exact_part",
        "fn",
        "handle",
        "idle_timeout_ns",
        "is_const",
        "key",
        "metadata",
        "meter",
        "next",
        "priority",
        "ranges",
        "sort_key",
        "tmask",
        "tval",
    )

    def __init__(self) -> None:
        self.handle = -1
        self.key: tuple | None = None
        self.priority = 0
        self.action: Any = None      # program.Action
        self.fn: Any = None          # compiled action function
        self.data: tuple = ()
        self.next: Any = None        # next control node after a hit with this action
        self.counter: list[int] | None = None   # [packets, bytes] of the direct counter
        self.meter: Any = None       # externs.Meter (direct meter)
        self.controller_metadata = 0
        self.metadata = b""
        self.idle_timeout_ns = 0
        self.tval = 0
        self.tmask = 0
        self.ranges: tuple = ()
        self.sort_key: tuple = ()
        self.exact_part: Any = None
        self.is_const = False


class Table:
    """One bmv2 match table."""

    def __init__(self, name: str, jid: int, keys: list[KeyField], max_size: int,
                 with_counters: bool, direct_meter: Any, immutable: bool) -> None:
        self.name = name
        self.jid = jid
        self.keys = keys
        self.max_size = max_size
        self.with_counters = with_counters
        self.direct_meter = direct_meter        # externs.MeterArray prototype or None
        self.immutable = immutable
        self.actions: dict[str, Any] = {}       # action name -> program.Action (this table's copies)
        self.actions_by_jid: dict[int, Any] = {}
        self.default: Entry = Entry()
        self.default_const = False               # control plane may not change the default action
        self.default_entry_const = False
        self.initial_default: tuple | None = None  # (action, data) from the JSON
        self.next_by_action: dict[str, Any] = {}  # action name -> node (filled by the compiler)
        self.next_hit: Any = None
        self.next_miss: Any = None
        self.uses_hit_miss = False
        self.entries: dict[tuple, Entry] = {}    # canonical key -> entry
        # bmv2 keeps one direct meter per entry handle and never resets it: an
        # entry inserted at a freed handle inherits that meter's rates and tokens
        self._meter_cells: dict[int, Any] = {}
        self._free: list[int] = []
        self._next_handle = 0

        kinds = [k.kind for k in keys]
        self.kinds = kinds
        if all(k in (EXACT, VALID) for k in kinds):
            self.mode = "exact"
        elif kinds.count(LPM) == 1 and all(k in (EXACT, VALID, LPM) for k in kinds):
            self.mode = "lpm"
        else:
            self.mode = "ternary"
        self.needs_priority = any(k in (TERNARY, RANGE, OPTIONAL) for k in kinds)
        # positions
        self.exact_pos = [i for i, k in enumerate(kinds) if k in (EXACT, VALID)]
        self.lpm_pos = next((i for i, k in enumerate(kinds) if k == LPM), None)
        self.tern_pos = [i for i, k in enumerate(kinds) if k in (TERNARY, LPM, OPTIONAL)] if self.mode == "ternary" else []
        self.range_pos = [i for i, k in enumerate(kinds) if k == RANGE]
        # bit offsets of ternary-like fields inside the folded integer
        self.tern_shift: dict[int, int] = {}
        off = 0
        for i in reversed(self.tern_pos):
            self.tern_shift[i] = off
            off += keys[i].width
        # lookup structures
        self.exact_map: dict[Any, Entry] = {}
        self._lpm_levels: dict[int, dict] = {}
        self.lpm_levels: list[tuple[int, dict]] = []   # (shift, dict), longest prefix first
        self.partitions: dict[Any, list[Entry]] = {}
        self._single_exact = len(self.exact_pos) == 1
        # Ternary/range results by key, like bmv2's lookup cache: a scan is
        # linear in the entries, a repeated key costs one dict probe.  Any
        # write to the table empties it.
        self._cache: dict[tuple, Entry | None] = {}

    # ------------------------------------------------------------------ handles

    def _alloc_handle(self) -> int:
        if self._free:
            return heapq.heappop(self._free)
        h = self._next_handle
        self._next_handle += 1
        return h

    def _release_handle(self, h: int) -> None:
        heapq.heappush(self._free, h)

    # ------------------------------------------------------------------ structure

    def exact_part_of(self, key: tuple) -> Any:
        vals = tuple(key[i] for i in self.exact_pos)
        return vals[0] if self._single_exact else vals

    def _prepare(self, e: Entry) -> None:
        key = e.key
        if self.mode == "exact":
            e.exact_part = self.exact_part_of(key)
        elif self.mode == "lpm":
            value, plen = key[self.lpm_pos]
            # bmv2 counts an LPM prefix from the MSB of the byte-padded field
            width = (self.keys[self.lpm_pos].width + 7) // 8 * 8
            shift = width - plen
            ex = tuple(key[i] for i in self.exact_pos)
            e.exact_part = (plen, ex + (value >> shift,))
        else:
            e.exact_part = tuple(key[i] for i in self.exact_pos)
            tval = tmask = 0
            for i in self.tern_pos:
                kf = self.keys[i]
                s = self.tern_shift[i]
                if kf.kind == LPM:
                    value, plen = key[i]
                    padded = (kf.width + 7) // 8 * 8
                    mask = (((1 << plen) - 1) << (padded - plen)) & ((1 << kf.width) - 1)
                else:
                    value, mask = key[i]
                tval |= (value & mask) << s
                tmask |= mask << s
            e.tval, e.tmask = tval, tmask
            e.ranges = tuple(key[i] for i in self.range_pos)
            e.sort_key = (-e.priority, e.handle)

    def _link(self, e: Entry) -> None:
        self._cache = {}
        if self.mode == "exact":
            self.exact_map[e.exact_part] = e
        elif self.mode == "lpm":
            plen, k = e.exact_part
            level = self._lpm_levels.get(plen)
            if level is None:
                level = self._lpm_levels[plen] = {}
                self._rebuild_lpm_levels()
            level[k] = e
        else:
            lst = self.partitions.get(e.exact_part)
            if lst is None:
                self.partitions[e.exact_part] = [e]
            else:
                # copy-on-write so a lookup running on another thread never sees a half-updated list
                new = list(lst)
                keys = [x.sort_key for x in new]
                new.insert(bisect.bisect(keys, e.sort_key), e)
                self.partitions[e.exact_part] = new

    def _unlink(self, e: Entry) -> None:
        self._cache = {}
        if self.mode == "exact":
            self.exact_map.pop(e.exact_part, None)
        elif self.mode == "lpm":
            plen, k = e.exact_part
            level = self._lpm_levels.get(plen)
            if level is not None:
                level.pop(k, None)
                if not level:
                    del self._lpm_levels[plen]
                    self._rebuild_lpm_levels()
        else:
            lst = self.partitions.get(e.exact_part)
            if lst is not None:
                new = [x for x in lst if x is not e]
                if new:
                    self.partitions[e.exact_part] = new
                else:
                    del self.partitions[e.exact_part]

    def _rebuild_lpm_levels(self) -> None:
        width = (self.keys[self.lpm_pos].width + 7) // 8 * 8
        self.lpm_levels = [(width - plen, self._lpm_levels[plen])
                           for plen in sorted(self._lpm_levels, reverse=True)]

    # ------------------------------------------------------------------ lookups (hot path)

    def lookup_lpm(self, ex: tuple, value: int) -> Entry | None:
        for shift, d in self.lpm_levels:
            e = d.get(ex + (value >> shift,))
            if e is not None:
                return e
        return None

    def lookup_ternary(self, ex: Any, k: int, r: tuple) -> Entry | None:
        cache = self._cache
        ck = (ex, k, r)
        found = cache.get(ck, _MISSING)
        if found is not _MISSING:
            return found
        found = None
        lst = self.partitions.get(ex)
        if lst is not None:
            if r:
                for e in lst:
                    if (k & e.tmask) == e.tval:
                        for (lo, hi), v in zip(e.ranges, r):
                            if v < lo or v > hi:
                                break
                        else:
                            found = e
                            break
            else:
                for e in lst:
                    if (k & e.tmask) == e.tval:
                        found = e
                        break
        if len(cache) >= CACHE_SIZE:
            cache.clear()
        cache[ck] = found
        return found

    # ------------------------------------------------------------------ control plane

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, e: Entry) -> None:
        """Insert a new entry (the caller checked that its key is new)."""
        if len(self.entries) >= self.max_size:
            raise TableError(f"table {self.name} is full ({self.max_size} entries)")
        e.handle = self._alloc_handle()
        if self.direct_meter is not None:
            e.meter = self._meter_cells.get(e.handle)
            if e.meter is None:
                e.meter = self._meter_cells[e.handle] = self.direct_meter.new_meter()
        self._prepare(e)
        self.entries[e.key] = e
        self._link(e)

    def modify(self, old: Entry, new: Entry) -> None:
        """Replace the action of ``old`` (same key, handle, counters) with ``new``'s."""
        # build a fresh object and swap it in, so a concurrent lookup sees
        # either the old or the new entry, never a mix
        new.handle = old.handle
        new.key = old.key
        new.priority = old.priority
        new.counter = old.counter
        new.meter = old.meter
        new.is_const = old.is_const
        self._prepare(new)
        self._unlink(old)
        self.entries[new.key] = new
        self._link(new)

    def delete(self, e: Entry) -> None:
        self._unlink(e)
        del self.entries[e.key]
        self._release_handle(e.handle)

    def clear(self) -> None:
        for e in list(self.entries.values()):
            self.delete(e)

    def sorted_entries(self) -> list[Entry]:
        return sorted(self.entries.values(), key=lambda e: e.handle)


@dataclass
class ActionRef:
    """Helper used by the compiler: an action as a table knows it."""

    name: str
    jid: int
    params: list[tuple[str, int]] = field(default_factory=list)
