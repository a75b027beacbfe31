"""How many unauthenticated SNMP messages pysnmp gets to handle.

Why: pysnmp decodes a message through pyasn1 before it can refuse it, a
millisecond or more of the agent's only loop; at a few hundred junk
datagrams a second the mediation device got under one answer a second
(issue 12). The fast path refuses what it can tell from the first octets
itself; what needs pysnmp's answer (discovery, the usmStats* Reports for an
unknown user, a wrong digest, a stale time) goes to pysnmp within a budget
per source host and a global one, token buckets refilled by the clock. What
is over budget is dropped, counted and audited by the fast path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

PER_HOST = (10.0, 20.0)  # messages per second, burst
GLOBAL = (50.0, 100.0)
MAX_HOSTS = 4096


@dataclass
class Bucket:
    rate: float
    burst: float
    tokens: float = -1.0
    stamp: float = field(default_factory=time.monotonic)

    def take(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens = self.burst
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Budget:
    def __init__(self, per_host: tuple[float, float] = PER_HOST, overall: tuple[float, float] = GLOBAL) -> None:
        self.per_host = per_host
        self.overall = Bucket(*overall)
        self._hosts: dict[str, Bucket] = {}
        self.refused = 0

    def take(self, host: str) -> bool:
        """Whether one more message from `host` may go to pysnmp now."""
        now = time.monotonic()
        bucket = self._hosts.get(host)
        if bucket is None:
            if len(self._hosts) >= MAX_HOSTS:
                self._hosts.clear()
            bucket = self._hosts[host] = Bucket(*self.per_host, stamp=now)
        if bucket.take(now) and self.overall.take(now):
            return True
        self.refused += 1
        return False
