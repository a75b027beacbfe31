"""Taps derived from signalling: what each warrant needs tapped now.

Why apart from the protocol handlers: a RADIUS session (one subscriber
address) and a SIP call (several media streams) both end in the same thing,
the warrant's CCCID tapped on some filters for as long as the session or
call lasts and never past the warrant. Per CCCID this keeps what each
session or call (`key`) needs, and hands the union to the keeper as one
intercept (one mediation row, one stream per filter) through want/unwant;
when the last key goes, the intercept goes.

    taps = DerivedTaps(keeper.want, keeper.unwant, Endpoint("203.0.113.10", 7000))
    taps.set(warrant, "radius:s1", prefix_filters(("192.0.2.10/32",)), "RADIUS session s1", stamp)
    taps.clear(warrant.cccid, "radius:s1")

Every change is handed to `on_change` (mediation/derived_state.py writes it
to disk) under the lock, before the keeper hears of it: a restarted MD then
knows every tap the keeper may have made. `memory` is what a protocol
handler needs besides its parts to end them after a restart (the SIP calls),
kept with them for the same reason (`remember`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from controller.toml_fields import Endpoint
from mediation.config import InterceptSpec
from mediation.stream_filter import Filter, describe


class Warrant(Protocol):
    """What bounds a derived tap: the warrant's CCCID, Timeout window and end."""

    cccid: int
    lifetime: float | None
    until: datetime | None


DEFAULT_LIFETIME = 600.0


def prefix_filters(prefixes: tuple[str, ...]) -> tuple[Filter, ...]:
    """All traffic of each prefix: from it, and to it."""
    return tuple(f for p in prefixes for f in (Filter(src=p), Filter(dst=p)))


@dataclass
class DerivedTap:
    cccid: int
    parts: dict[str, tuple[Filter, ...]] = field(default_factory=dict)  # key (session, call) -> its filters
    why: dict[str, str] = field(default_factory=dict)                    # key -> what asked for it
    signalled_at: float | None = None                                    # the last signalling that changed it


class DerivedTaps:
    def __init__(self, want: Callable[[InterceptSpec], None], unwant: Callable[[int], None], md: Endpoint,
                 dscp: int = 34) -> None:
        self._want, self._unwant, self.md, self.dscp = want, unwant, md, dscp
        self.taps: dict[int, DerivedTap] = {}
        self._warrants: dict[int, Warrant] = {}  # the warrant behind each tap, for its bounds
        self.memory: dict[str, Any] = {}  # a handler's own state (JSON), kept with the taps: `remember`
        self.on_change: Callable[[dict[int, DerivedTap], dict[str, Any]], None] | None = None
        self._lock = threading.Lock()

    def _changed(self) -> None:
        """Under the lock: the state as it is now, to whoever keeps it."""
        if self.on_change is not None:
            self.on_change(self.taps, self.memory)

    def remember(self, name: str, data: Any, save: bool = True) -> None:
        """A handler's own state (JSON) to keep with the taps across a restart;
        `save=False` when a change of the taps follows at once (it saves both)."""
        with self._lock:
            self.memory[name] = data
            if save:
                self._changed()

    def restore(self, taps: dict[int, DerivedTap], warrants: Mapping[int, Warrant]) -> list[InterceptSpec]:
        """Taps read back after a restart (mediation/derived_state.py): taken as
        they are, without asking the keeper (it keeps them from its first audit);
        returns their intercepts for it."""
        with self._lock:
            self.taps = dict(taps)
            return [self._spec(warrants[cccid], tap) for cccid, tap in sorted(self.taps.items())]

    def set(self, warrant: Warrant, key: str, filters: tuple[Filter, ...], why: str, stamp: float) -> bool:
        """`key` of this warrant needs `filters` tapped now; False past the warrant's end."""
        if warrant.until is not None and warrant.until <= datetime.now(timezone.utc):
            return False
        with self._lock:
            tap = self.taps.setdefault(warrant.cccid, DerivedTap(warrant.cccid))
            if tap.parts.get(key) == filters:
                return True
            tap.parts[key], tap.why[key], tap.signalled_at = filters, why, stamp
            spec = self._spec(warrant, tap)
            self._changed()
        self._want(spec)
        return True

    def clear(self, cccid: int, key: str, stamp: float | None = None) -> None:
        """`key` (a session, a call) ended: its filters are no longer tapped."""
        self.change(cccid, {}, (key,), stamp)

    def change(self, cccid: int, add: dict[str, tuple[tuple[Filter, ...], str]], drop: tuple[str, ...],
               stamp: float | None = None, warrant: Warrant | None = None) -> bool:
        """Several keys of one warrant at once (a SIP message that adds one media endpoint and drops
        another): one want or unwant for all, so the keeper never sees a half-made state. `add`: key ->
        (filters, why), needs `warrant`; False (nothing done) past the warrant's end."""
        refused = bool(add) and warrant.until is not None and warrant.until <= datetime.now(timezone.utc)
        if refused:
            add = {}
        with self._lock:
            tap = self.taps.get(cccid)
            if tap is None and not add:
                return not refused
            if tap is None:
                tap = self.taps[cccid] = DerivedTap(cccid)
            before = dict(tap.parts)
            if add:
                self._warrants[cccid] = warrant
            for key, (filters, why) in add.items():
                tap.parts[key], tap.why[key] = filters, why
            for key in drop:
                if key in tap.parts and key not in add:
                    del tap.parts[key], tap.why[key]
            if tap.parts == before:
                return not refused
            tap.signalled_at = stamp or tap.signalled_at
            if tap.parts:
                spec = self._spec(self._warrants[cccid], tap)
            else:
                del self.taps[cccid]
                spec = None
            self._changed()
        if spec is None:
            self._unwant(cccid)
        else:
            self._want(spec)
        return True

    def _spec(self, warrant: Warrant, tap: DerivedTap) -> InterceptSpec:
        self._warrants[warrant.cccid] = warrant
        filters = tuple(dict.fromkeys(f for part in tap.parts.values() for f in part))  # union, in order
        return InterceptSpec(warrant.cccid, self.md, filters, float(warrant.lifetime or DEFAULT_LIFETIME), self.dscp,
                             until=warrant.until, derived_from="; ".join(tap.why.values()))

    def keys(self, cccid: int) -> tuple[str, ...]:
        """The parts (sessions, calls) this warrant's tap holds now."""
        with self._lock:
            tap = self.taps.get(cccid)
            return tuple(tap.parts) if tap is not None else ()

    def summary(self) -> dict:
        with self._lock:
            return {str(cccid): {"signalled_at": tap.signalled_at,
                                 "parts": {key: {"why": tap.why[key], "filters": [describe(f) for f in filters]}
                                           for key, filters in tap.parts.items()}}
                    for cccid, tap in sorted(self.taps.items())}
