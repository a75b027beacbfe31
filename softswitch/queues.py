"""simple_switch's egress buffers: per port, ``--priority-queues`` FIFO queues
served in strict priority, each with a depth limit and an optional rate limit.

This is bmv2's ``QueueingLogicPriRL`` (``include/bm/bm_sim/queueing.h``),
so a program that relies on priority queues (``standard_metadata.priority``,
``queueing_metadata.qid``) behaves as on bmv2:

* every (port, priority) queue holds at most ``capacity`` packets (64 unless
  changed); a packet arriving at a full queue is dropped (tail drop);
* a queue with a rate of R packets/s stamps each packet with a departure
  time ``max(now, previous departure + 1/R)`` when it is enqueued; rate 0
  means no limit (bmv2's default);
* the scheduler serves the *highest* priority value whose head may leave
  now; lower priorities wait while a higher one has an eligible packet.

Queues of a port are created on first use with the current defaults, as in
bmv2 (``set_all_*`` also changes the defaults).  The switch is single
threaded: it enqueues after ingress and drains whatever is eligible right
away, and its receive loop wakes up at :meth:`EgressBuffers.next_departure`
when rate-limited packets are waiting.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_CAPACITY", "MAX_PRIORITY_QUEUES", "EgressBuffers", "QueueError"]

DEFAULT_CAPACITY = 64          # simple_switch's egress_buffers(nb_egress_threads, 64, ...)
MAX_PRIORITY_QUEUES = 32       # QueueingLogicPriRL keeps std::array<MyQ, 32> per worker


class QueueError(ValueError):
    """A queue setting bmv2 could not apply (priority out of range, negative value)."""


@dataclass(eq=False)
class _Queue:
    """One priority queue of one port (bmv2's QueueInfoPri plus its items)."""

    port: int
    prio: int
    capacity: int
    delay: float                      # seconds between departures; 0 = no rate limit
    last_sent: float
    items: deque = field(default_factory=deque)   # (departure time, sequence, packet)


def _delay(pps: int) -> float:
    return 1.0 / pps if pps else 0.0


class EgressBuffers:
    """All egress queues of a switch."""

    def __init__(self, nb_priorities: int = 1, capacity: int = DEFAULT_CAPACITY,
                 clock: Callable[[], float] | None = None) -> None:
        if not 1 <= nb_priorities <= MAX_PRIORITY_QUEUES:
            raise QueueError(f"the number of priority queues must be 1..{MAX_PRIORITY_QUEUES}, not {nb_priorities}")
        import time
        self.nb_priorities = nb_priorities
        self.capacity = capacity       # default for queues created from now on
        self.rate = 0                  # default rate (pps) for queues created from now on
        self.clock = clock or time.monotonic
        self.ports: dict[int, list[_Queue]] = {}
        self.backlog = 0               # packets queued on all ports
        self.limited = False           # any queue rate-limited: departures must be checked against the clock
        self._seq = 0
        # Without rate limits every queued packet may leave at once: then the
        # queues holding packets are also kept in arrival order per priority
        # (highest first), so the next packet is found without a scan.
        self._ready = [deque() for _ in range(nb_priorities)]
        self._ready_desc = self._ready[::-1]

    # ------------------------------------------------------------------ configuration

    def _port(self, port: int) -> list[_Queue]:
        qs = self.ports.get(port)
        if qs is None:
            now = self.clock()
            qs = self.ports[port] = [_Queue(port, prio, self.capacity, _delay(self.rate), now)
                                     for prio in range(self.nb_priorities)]
        return qs

    def _targets(self, port: int | None, priority: int | None) -> list[_Queue]:
        if port is None:
            return [q for qs in self.ports.values() for q in qs]
        if port < 0:
            raise QueueError(f"port {port} is negative")
        qs = self._port(port)
        if priority is None:
            return qs
        if not 0 <= priority < self.nb_priorities:
            raise QueueError(f"priority {priority} is out of range: the switch has {self.nb_priorities} "
                             "priority queue(s) per port (--priority-queues)")
        return [qs[priority]]

    def set_capacity(self, depth: int, port: int | None = None, priority: int | None = None) -> None:
        """bmv2's set_egress_[priority_]queue_depth / set_all_egress_queue_depths."""
        if depth < 0:
            raise QueueError(f"queue depth {depth} is negative")
        for q in self._targets(port, priority):
            q.capacity = depth
        if port is None:
            self.capacity = depth

    def set_rate(self, pps: int, port: int | None = None, priority: int | None = None) -> None:
        """bmv2's set_egress_[priority_]queue_rate / set_all_egress_queue_rates (0 = unlimited)."""
        if pps < 0:
            raise QueueError(f"queue rate {pps} is negative")
        for q in self._targets(port, priority):
            q.delay = _delay(pps)
        if port is None:
            self.rate = pps
        was = self.limited
        self.limited = bool(self.rate) or any(q.delay for qs in self.ports.values() for q in qs)
        if self.limited != was:
            for ready in self._ready:
                ready.clear()
            if not self.limited:       # back to the fast path: rebuild the arrival order
                waiting = sorted((seq, q) for qs in self.ports.values() for q in qs for _s, seq, _p in q.items)
                for _seq, q in waiting:
                    self._ready[q.prio].append(q)

    def queue(self, port: int, priority: int) -> _Queue:
        return self._port(port)[priority]

    # ------------------------------------------------------------------ packet path

    def size(self, port: int, priority: int) -> int:
        qs = self.ports.get(port)
        return len(qs[priority].items) if qs is not None else 0

    def push(self, port: int, priority: int, packet: Any) -> int:
        """Enqueue; the queue's occupancy before (bmv2's enq_qdepth), or -1
        (and nothing queued) when that queue is full."""
        qs = self.ports.get(port)
        q = (qs if qs is not None else self._port(port))[priority]
        depth = len(q.items)
        if depth >= q.capacity:
            return -1
        send = self.clock()
        if q.delay and q.last_sent + q.delay > send:
            send = q.last_sent + q.delay
        q.last_sent = send
        self._seq += 1
        q.items.append((send, self._seq, packet))
        if not self.limited:
            self._ready[priority].append(q)
        self.backlog += 1
        return depth

    def pop(self) -> tuple[int, int, Any, int] | None:
        """The next packet to leave now, as (port, priority, packet, occupancy
        left behind -- bmv2's deq_qdepth), or None.

        Strict priority: the highest priority with an eligible head wins; among
        ports at that priority the earliest departure (then arrival) goes first.
        """
        if not self.backlog:
            return None
        if not self.limited:
            for ready in self._ready_desc:
                if ready:
                    q = ready.popleft()
                    packet = q.items.popleft()[2]
                    self.backlog -= 1
                    return q.port, q.prio, packet, len(q.items)
        now = self.clock()
        best = None
        best_key = None
        for qs in self.ports.values():
            for q in reversed(qs):
                items = q.items
                if items and items[0][0] <= now:
                    key = (q.prio, -items[0][0], -items[0][1])
                    if best_key is None or key > best_key:
                        best, best_key = q, key
                    break
        if best is None:
            return None
        packet = best.items.popleft()[2]
        self.backlog -= 1
        return best.port, best.prio, packet, len(best.items)

    def next_departure(self) -> float | None:
        """Clock time at which the earliest waiting packet may leave (None: nothing waits)."""
        if not self.backlog:
            return None
        return min((q.items[0][0] for qs in self.ports.values() for q in qs if q.items), default=None)

    def clear(self) -> None:
        for qs in self.ports.values():
            for q in qs:
                q.items.clear()
        for ready in self._ready:
            ready.clear()
        self.backlog = 0
