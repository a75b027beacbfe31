"""When each intercept expires, kept in memory for the lifetime timer.

The timer wakes at least once a second and whenever a provisioning step
might bring the next timeout closer; asking the intent store for every
intercept on each wake decoded all of them (O(taps)), which with a stream of
provisioning requests cost more than the requests. A heap answers "what is
due" and "when is the next one" in O(log n); entries replaced or removed are
dropped lazily when they reach the top.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from datetime import datetime


class ExpirySchedule:
    """Content ids by timeout (intercepts without one never expire)."""

    def __init__(self) -> None:
        self._timeouts: dict[int, datetime] = {}
        self._heap: list[tuple[datetime, int]] = []

    def reset(self, timeouts: Iterable[tuple[int, datetime | None]]) -> None:
        self._timeouts = {c: t for c, t in timeouts if t is not None}
        self._heap = [(t, c) for c, t in self._timeouts.items()]
        heapq.heapify(self._heap)

    def set(self, content_id: int, timeout: datetime | None) -> None:
        if timeout is None:
            self._timeouts.pop(content_id, None)
            return
        self._timeouts[content_id] = timeout
        heapq.heappush(self._heap, (timeout, content_id))

    def discard(self, content_id: int) -> None:
        self._timeouts.pop(content_id, None)

    def next(self) -> datetime | None:
        """The earliest timeout, or None when nothing expires."""
        while self._heap and self._timeouts.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # replaced or removed since it was pushed
        return self._heap[0][0] if self._heap else None

    def due(self, now: datetime) -> list[int]:
        """Content ids whose timeout has come, earliest first (they stay until discarded)."""
        first = self.next()
        if first is None or first > now:
            return []
        return sorted((c for c, t in self._timeouts.items() if t <= now), key=self._timeouts.__getitem__)
