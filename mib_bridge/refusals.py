"""Refused SNMP messages: audited in batches, logged at most once per kind
per interval.

Why: every refusal used to be one audit record with its own fsync, and an
exception in pysnmp's decoder one 2 KB traceback, so a few hundred junk
datagrams a second kept the disk and the log busy and the loop away from
the mediation device (issue 12). Here nothing refused goes unaudited, but
identical refusals (same requester name, host, version and reason) within
FLUSH_INTERVAL become one record that says how many there were and from
which ports, and all the records of an interval are written with a single
fsync (AuditLog.append_many) by a thread of their own, off the agent's loop.
The log says one line per kind of refusal per LOG_INTERVAL, with the count
of those it did not print.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from mib_bridge.security import safe_name

log = logging.getLogger("p4tap.snmp")

FLUSH_INTERVAL = 0.5  # seconds between audit batches
LOG_INTERVAL = 10.0  # seconds: one log line per kind of refusal at most
MAX_KEYS = 512  # distinct refusals kept per batch; beyond, folded per host (an attacker picks user names)
MAX_PORTS = 8  # source ports named per aggregated record


@dataclass
class _Pending:
    count: int = 0
    first: float = 0.0  # time.time()
    last: float = 0.0
    ports: list[int] = field(default_factory=list)
    users: set[str | bytes] = field(default_factory=set)


@dataclass
class _LogState:
    last: float = float("-inf")
    unlogged: int = 0


def host_port(address) -> tuple[str, int | None]:
    """('127.0.0.1', 5000) from ('127.0.0.1', 5000) or '127.0.0.1:5000';
    ('[::1]', 5000) from ('::1', 5000, 0, 0) or '[::1]:5000'."""
    if isinstance(address, tuple):
        try:
            host, port = str(address[0]), int(address[1])
        except (IndexError, TypeError, ValueError):
            return "?", None
        return (f"[{host}]" if ":" in host else host), port
    host, sep, port = str(address).rpartition(":")
    if not sep or not port.isdigit() or (host.count(":") and not host.endswith("]")):
        return address, None
    return host, int(port)


class Refusals:
    """Collects refusals from the agent's loop (and pysnmp's observer, on
    the same loop); a background thread appends them to the audit log."""

    def __init__(self, append_many: Callable[[list[tuple[str, str, dict[str, Any]]]], Any],
                 flush_interval: float = FLUSH_INTERVAL, log_interval: float = LOG_INTERVAL) -> None:
        self._append_many = append_many
        self.flush_interval, self.log_interval = flush_interval, log_interval
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._pending: dict[tuple[str, str, str, str], _Pending] = {}
        self._logged: dict[str, _LogState] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.total = 0  # every refusal ever added

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="p4tap-snmp-audit", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.flush()

    def add(self, kind: str, user: str | bytes, address, version: str, reason: str) -> None:
        """One refused message: `kind` names it in the log ('undecodable',
        'SNMPv1/v2c', 'replay', ...); `user` as it came (made printable when
        written); `address` the transport address, or host:port as address_text writes it."""
        host, port = host_port(address)
        now = time.time()
        key = (user, host, version, reason)
        with self._lock:
            self.total += 1
            pending = self._pending.get(key)
            if pending is None:
                if len(self._pending) >= MAX_KEYS:
                    key = ("*", host, version, reason)
                    pending = self._pending.get(key)
                if pending is None:
                    pending = self._pending[key] = _Pending(first=now)
            pending.count += 1
            pending.last = now
            if key[0] == "*" and len(pending.users) < MAX_PORTS:
                pending.users.add(user)
            if port is not None and len(pending.ports) < MAX_PORTS and port not in pending.ports:
                pending.ports.append(port)
            state = self._logged.setdefault(kind, _LogState())
            clock = time.monotonic()
            if clock - state.last < self.log_interval:
                state.unlogged += 1
                return
            unlogged, state.unlogged, state.last = state.unlogged, 0, clock
        more = f"; {unlogged} more of this kind in the last {self.log_interval:g} s, counted, not logged" \
            if unlogged else ""
        log.warning("SNMP message refused (%s) from %s: %s%s", kind, host, reason, more)

    def flush(self) -> None:
        """Write what is pending now (one fsync); the tests and stop() call it.
        Also says, once its interval is over, how many of a kind went unlogged."""
        clock = time.monotonic()
        with self._lock:
            quiet = [(kind, state.unlogged) for kind, state in self._logged.items()
                     if state.unlogged and clock - state.last >= self.log_interval]
            for kind, _ in quiet:
                self._logged[kind] = _LogState(last=clock)
        for kind, unlogged in quiet:
            log.warning("SNMP messages refused (%s): %d more in the last %g s, counted, not logged", kind, unlogged,
                        self.log_interval)
        with self._write_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
            if not pending:
                return
            entries = []
            for (user, host, version, reason), p in pending.items():
                detail: dict[str, Any] = {"op": "message", "version": version, "reason": reason, "count": p.count,
                                          "first": _iso(p.first), "last": _iso(p.last)}
                if p.ports:
                    detail["ports"] = p.ports
                if p.users:
                    detail["users"] = sorted({safe_name(u) for u in p.users})
                entries.append((f"snmp:{safe_name(user)} from {host}", "snmp-refuse", detail))
            try:
                self._append_many(entries)
            except Exception as error:  # kept for the next batch: a refusal is never dropped unaudited
                log.error("could not write %d audit records of refused SNMP messages (%s); retrying", len(entries),
                          error)
                with self._lock:
                    for key, p in pending.items():
                        mine = self._pending.setdefault(key, _Pending(first=p.first))
                        mine.count += p.count
                        mine.first, mine.last = p.first, mine.last or p.last

    def _run(self) -> None:
        """Every flush_interval, until stopped."""
        while not self._stop.wait(self.flush_interval):
            self.flush()


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, timezone.utc).isoformat(timespec="microseconds")
