"""How much of the agent's time unauthenticated SNMP messages may cost.

Why: pysnmp decodes a message through pyasn1 before it can refuse it, about
a millisecond for a small one and 0.3-0.7 s for 56 KB of 8,000 varbinds, on
the agent's only loop. A budget that counted messages let twenty such a
second lock the mediation device out (issue 26). So what goes to pysnmp
unauthenticated (discovery of another engine, a stale time, ...) is charged
by its cost: up front by its size (ESTIMATE), then by the time pysnmp really
took (`charge`), against token buckets of pysnmp-seconds per second, one
per source host and one overall, refilled by the clock. A message whose
estimate exceeds what its buckets hold is refused, so a message too big to
ever fit a bucket never reaches pysnmp at all; a message that took longer
than estimated leaves its buckets in debt. What is refused is dropped,
counted and audited by the fast path.

The fast path's own header-only Reports (mib_bridge/fast_path.py) cost
microseconds; `Budget.count` buckets bound them by number, so the agent
never answers a spoofed flood at more than a set rate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

PER_HOST = (0.02, 0.05)  # seconds of pysnmp per second, burst: 2% of a core per source host
GLOBAL = (0.10, 0.20)  # 10% of a core in all
REPORTS_PER_HOST = (100.0, 200.0)  # header-only Reports per second, burst
REPORTS_GLOBAL = (1000.0, 2000.0)
MAX_HOSTS = 4096
BASE_COST = 0.001  # seconds: what pysnmp takes for the smallest message
COST_PER_OCTET = 8e-6  # seconds: what it takes per octet more (56 KB: ~0.45 s, as measured)


def estimate(octets: int) -> float:
    """pysnmp's time for a message of `octets`, before it ran."""
    return BASE_COST + octets * COST_PER_OCTET


@dataclass
class Bucket:
    rate: float
    burst: float
    tokens: float | None = None  # None: full (a new bucket); below 0: in debt
    stamp: float | None = None  # when last refilled

    def refill(self, now: float) -> None:
        tokens = self.burst if self.tokens is None else self.tokens
        self.tokens = min(self.burst, tokens + (now - (now if self.stamp is None else self.stamp)) * self.rate)
        self.stamp = now

    def holds(self, cost: float, now: float) -> bool:
        self.refill(now)
        assert self.tokens is not None
        return self.tokens >= cost


class Budget:
    def __init__(self, per_host: tuple[float, float] = PER_HOST, overall: tuple[float, float] = GLOBAL) -> None:
        self.per_host = per_host
        self.overall = Bucket(*overall)
        self._hosts: dict[str, Bucket] = {}
        self.refused = 0

    def _bucket(self, host: str, now: float) -> Bucket:
        bucket = self._hosts.get(host)
        if bucket is None:
            if len(self._hosts) >= MAX_HOSTS:
                self._hosts.clear()
            bucket = self._hosts[host] = Bucket(*self.per_host, stamp=now)
        return bucket

    def take(self, host: str, cost: float = 1.0) -> bool:
        """Whether something costing `cost` from `host` may run now; if so, it is charged."""
        now = time.monotonic()
        bucket = self._bucket(host, now)
        if bucket.holds(cost, now) and self.overall.holds(cost, now):
            for charged in (bucket, self.overall):
                charged.tokens = (charged.tokens or 0.0) - cost
            return True
        self.refused += 1
        return False

    def count(self, host: str) -> bool:
        """`take` of one (a budget of messages, not of time)."""
        return self.take(host, 1.0)

    def charge(self, host: str, extra: float) -> None:
        """Charge what a message took beyond what `take` charged (may leave debt)."""
        if extra <= 0:
            return
        now = time.monotonic()
        for bucket in (self._bucket(host, now), self.overall):
            bucket.refill(now)
            bucket.tokens = (bucket.tokens or 0.0) - extra
