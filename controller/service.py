"""The controller: owns every switch's intercept state and keeps it true.

Intent first: an intercept is validated (planned, incrementally, on every
switch it goes to), written to the durable store, then carried to each of
its switches as a small diff. If any write fails part-way, every update
already applied is undone and the previous intent restored, so no tap is ever
half installed. A controller restart reads the intent back and reconciles;
the data plane keeps tapping meanwhile because nothing is removed on the way
down.

Each change costs O(what it touches), not O(all taps): only the overlap
groups the changed filters are in are re-planned, only changed plan items
become entities, and the intent and the ids it needs are stored in one
transaction (see controller.managed_switch and controller.incremental).

Lifetime: a timer removes a mediation and its streams at its timeout (within
a second) and reports it to `on_expired` listeners (the SNMP agent turns it
into ciscoTap2MediationTimedOut). Expired intercepts are never planned, so a
switch that restarts gets back only what is still within its lifetime.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from controller.audit import AuditLog
from controller import ets
from controller.incremental import Intercept
from controller.lifetime import ExpirySchedule
from controller.managed_switch import Intent, ManagedSwitch, StreamCounters, SwitchChange, SwitchConfig
from controller.model import InterceptError, Mediation, Stream, StreamKey
from controller.pipeline import Pipeline
from controller.reconcile import Diff
from controller.store import IntentStore, StoreError
from controller.switch import SwitchError

__all__ = ["Controller", "ManagedSwitch", "ProvisionError", "StreamCounters", "SwitchConfig", "utcnow"]

log = logging.getLogger("p4tap.controller")

ExpiryListener = Callable[[Mediation], None]
Changes = dict[str, dict[int, Intercept | None]]  # per switch: content id -> new intercept, None to remove


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class ProvisionError(Exception):
    """An intercept could not be carried out; nothing of it remains installed."""


class Controller:
    """Intercepts in, P4Runtime state out, on every configured switch."""

    def __init__(self, switches: Sequence[SwitchConfig], store_path: Path, audit_path: Path,
                 pipeline: Pipeline | None = None, clock: Callable[[], datetime] = utcnow) -> None:
        if not switches:
            raise ValueError("a controller needs at least one switch")
        self.pipeline = pipeline or Pipeline.load()
        self.store = IntentStore(store_path)
        self.audit = AuditLog(audit_path)
        self.clock = clock
        self.switches = {c.name: ManagedSwitch(c, self.pipeline, ids=self.store.load_ids(c.name)) for c in switches}
        self.lock = threading.RLock()
        self._expiry_listeners: list[ExpiryListener] = []
        self.expiry = ExpirySchedule()  # follows the store: set where an intercept is stored or removed
        self.expiry.reset((m.content_id, m.timeout) for m, _, _ in self.store.all())
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle ----------------------------------------------------------

    def start(self, connect_timeout: float = 10.0) -> None:
        """Connect to every switch, reconcile it with the intent, start timers."""
        with self.lock:
            self.expire_due()
            for switch in self.switches.values():
                switch.connect(timeout=connect_timeout)
                self.reconcile(switch.name)
        self._stop.clear()
        for target, name in ((self._lifetime_loop, "lifetime"), (self._watch_loop, "switch-watch")):
            thread = threading.Thread(target=target, name=f"p4tap-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop timers and close connections. The switches keep what they hold."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        for switch in self.switches.values():
            if switch.conn is not None:
                switch.conn.close()
        self.store.close()
        self.audit.close()

    def __enter__(self) -> Controller:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def on_expired(self, listener: ExpiryListener) -> None:
        self._expiry_listeners.append(listener)

    # -- the API ------------------------------------------------------------

    def intercepts(self) -> list[Intent]:
        return self.store.all()

    def provision(self, mediation: Mediation, streams: Sequence[Stream], actor: str,
                  switches: Sequence[str] | None = None) -> None:
        """Install (or replace) one intercept on its switches, all or nothing."""
        self.provision_many([(mediation, list(streams))], actor, switches)

    def provision_many(self, intercepts: Sequence[tuple[Mediation, list[Stream]]], actor: str,
                       switches: Sequence[str] | None = None) -> None:
        """Install several intercepts in one diff per switch (bulk provisioning)."""
        targets = list(switches) if switches else list(self.switches)
        content_ids = [m.content_id for m, _ in intercepts]
        with self.lock:
            try:
                self._check_new(intercepts, targets)
                previous = self.store.get_many(content_ids)
                changes: Changes = {name: {} for name in set(targets) | self._switches_of(previous.values())}
                for mediation, streams in intercepts:
                    for name, per_switch in changes.items():
                        per_switch[mediation.content_id] = (mediation, streams) if name in targets else None
                staged = self._stage(changes)
            except InterceptError as error:
                self.audit.append(actor, "refuse", content_ids=content_ids, reason=str(error))
                raise
            try:
                self._carry(staged, previous, put=[(m, s, targets) for m, s in intercepts])
            except SwitchError as error:
                self.audit.append(actor, "refuse", content_ids=content_ids, reason=f"switch: {error}")
                raise ProvisionError(f"intercept not installed, nothing changed: {error}") from error
            sooner = self._sooner_than_scheduled(m.timeout for m, _ in intercepts)
            for mediation, _ in intercepts:
                self.expiry.set(mediation.content_id, mediation.timeout)
            if len(intercepts) == 1:
                mediation, streams = intercepts[0]
                self.audit.append(actor, "provision", content_id=mediation.content_id, switches=targets,
                                  md=f"{mediation.dest_address}:{mediation.dest_port}",
                                  timeout=mediation.timeout.isoformat() if mediation.timeout else None,
                                  streams=[s.index for s in streams if s.enabled])
            else:
                self.audit.append(actor, "provision", content_ids=content_ids, switches=targets)
        if sooner:
            self._wake.set()  # the timer sleeps until the next timeout: it may now be sooner

    def remove(self, content_id: int, actor: str, action: str = "remove") -> bool:
        """Remove an intercept from the intent and its switches.

        A removal asked for by a person is all or nothing: if a switch cannot
        be changed, the intercept stays (and the caller is told). An expiry is
        not negotiable: the intent goes at once and a switch that cannot be
        reached now is corrected by reconcile when it comes back, where the
        expired intercept is never planned again.
        """
        with self.lock:
            old = self.store.get(content_id)
            if old is None:
                return False
            staged = self._stage({name: {content_id: None} for name in old[2] if name in self.switches})
            try:
                self._carry(staged, {content_id: old}, remove=[content_id], keep_intent=action == "expire")
            except SwitchError as error:
                if action != "expire":
                    self.audit.append(actor, "refuse", content_id=content_id, reason=f"removal failed: {error}")
                    raise ProvisionError(f"intercept {content_id} still installed: {error}") from error
                log.warning("intercept %d expired; switch update deferred to reconcile: %s", content_id, error)
            self.expiry.discard(content_id)
            self.audit.append(actor, action, content_id=content_id)
            return True

    def update_timeout(self, content_id: int, timeout: datetime, actor: str) -> None:
        """cTap2MediationTimeout may change while the row is active."""
        with self.lock:
            old = self.store.get(content_id)
            if old is None:
                raise InterceptError(f"no intercept {content_id}")
            mediation, streams, switches = old
            self.provision(dataclasses.replace(mediation, timeout=timeout), streams, actor, switches)

    def counters(self, content_id: int) -> dict[StreamKey, StreamCounters]:
        """InterceptedPackets / InterceptDrops per stream, summed over switches,
        and whether every switch holds the stream's entries (read, not assumed).
        Raises SwitchError if a connected switch cannot be read."""
        with self.lock:
            intent = self.store.get(content_id)
            if intent is None:
                return {}
            keys = [s.key for s in intent[1]]
            total = {k: StreamCounters() for k in keys}
            for name in intent[2]:
                switch = self.switches.get(name)
                if switch is None or switch.conn is None or not switch.conn.connected:
                    total = {k: c + StreamCounters(held=False) for k, c in total.items()}
                    continue
                for key, c in switch.stream_counters(content_id, keys).items():
                    total[key] += c
            return total

    # -- internals ----------------------------------------------------------

    @staticmethod
    def _switches_of(intents: Iterable[Intent]) -> set[str]:
        return {name for _, _, switches in intents for name in switches}

    def _check_new(self, intercepts: Sequence[tuple[Mediation, list[Stream]]], targets: list[str]) -> None:
        unknown = [t for t in targets if t not in self.switches]
        if unknown:
            raise InterceptError(f"unknown switch {', '.join(unknown)}")
        now = self.clock()
        seen: set[int] = set()
        for mediation, streams in intercepts:
            if mediation.content_id in seen:
                raise InterceptError(f"intercept {mediation.content_id} given twice")
            seen.add(mediation.content_id)
            if mediation.timeout is None:
                raise InterceptError(f"mediation {mediation.content_id}: no cTap2MediationTimeout given")
            if mediation.expired(now):
                raise InterceptError(f"mediation {mediation.content_id}: timeout {mediation.timeout} has passed")
            for stream in streams:
                if stream.content_id != mediation.content_id:
                    raise InterceptError(f"stream {stream.key} does not belong to mediation {mediation.content_id}")

    def _stage(self, changes: Changes) -> dict[str, SwitchChange]:
        """Plan the change on every switch it touches; on InterceptError none keeps it."""
        now = self.clock()
        staged: dict[str, SwitchChange] = {}
        try:
            for name in sorted(changes):
                staged[name] = self.switches[name].stage(changes[name], now)
        except BaseException:
            for name in staged:
                self.switches[name].rollback()
            raise
        return staged

    def _carry(self, staged: Mapping[str, SwitchChange], previous: Mapping[int, Intent],
               put: Sequence[Intent] = (), remove: Sequence[int] = (), keep_intent: bool = False) -> None:
        """Store the intent with the ids it uses, then write every switch's part.

        If a switch fails, the switches already written are undone and every
        switch's state rolled back; the stored intent goes back to `previous`
        (the changed intercepts as they were), unless `keep_intent` (an expiry:
        the switches are left to reconcile)."""
        written = {name: self.switches[name].ids.take_changes() for name in staged}
        try:
            self.store.change(put=put, remove=remove, ids=written)
        except (StoreError, InterceptError):
            for name in staged:
                self.switches[name].rollback()
            raise
        done: list[ManagedSwitch] = []
        try:
            for name, change in staged.items():
                switch = self.switches[name]
                switch.retire_counters(change)
                switch.apply(change)
                done.append(switch)
        except SwitchError:
            for switch in reversed(done):
                switch.undo(staged[switch.name])
            for name in staged:
                self.switches[name].rollback()
                if keep_intent:
                    self.switches[name].stale = True
            ids = {name: self.switches[name].ids.current(changes) for name, changes in written.items()}
            if keep_intent:
                self.store.change(ids=ids)
            else:
                fresh = [m.content_id for m, _, _ in put if m.content_id not in previous]
                self.store.change(put=previous.values(), remove=fresh, ids=ids)
            raise
        for name in staged:
            self.switches[name].commit()

    def reconcile(self, name: str, actor: str = "controller") -> Diff:
        """Make one switch hold exactly the intent: read it, delete what is not
        ours or has expired, install what is missing. Every correction is audited."""
        with self.lock:
            switch = self.switches[name]
            d = switch.reconcile(self.store.all(), self.clock())
            if d:
                self.audit.append(actor, "reconcile", switch=name, inserted=len(d.inserts),
                                  modified=len(d.modifies), deleted=len(d.deletes))
                log.info("%s: reconciled: %s", name, d.summary())
            switch.apply_ets_meters()
            self.store.save_ids(name, switch.ids)
            switch.ids.take_changes()
            return d

    # -- ETS (RFC 4190) -----------------------------------------------------

    def set_ets(self, name: str, cfg: ets.EtsConfig | None, actor: str) -> Diff:
        """Replace one switch's ETS conditioning (None: none) and carry it to
        the switch. Runtime only: the config file stays the source at start.
        If the switch refuses, the previous settings are restored."""
        with self.lock:
            switch = self.switches.get(name)
            if switch is None:
                raise KeyError(f"no switch named {name!r}")
            old = switch.config.topology.ets
            switch.set_ets(cfg)
            try:
                d = self.reconcile(name, actor)
            except Exception:
                switch.set_ets(old)
                self.reconcile(name, actor)
                raise
            self.audit.append(actor, "ets", switch=name, config=None if cfg is None else repr(cfg))
            return d

    def ets_counters(self, name: str) -> dict[str, tuple[int, int]]:
        with self.lock:
            switch = self.switches.get(name)
            if switch is None:
                raise KeyError(f"no switch named {name!r}")
            return switch.ets_counters()

    def expire_due(self) -> list[Mediation]:
        """Remove every intercept whose timeout has passed; tell the listeners."""
        now = self.clock()
        expired = []
        for content_id in self.expiry.due(now):
            intent = self.store.get(content_id)
            if intent is None or not intent[0].expired(now):
                self.expiry.set(content_id, intent[0].timeout if intent else None)  # out of step: follow the store
                continue
            mediation = intent[0]
            self.remove(content_id, "controller", action="expire")
            expired.append(mediation)
            for listener in self._expiry_listeners:
                try:
                    listener(mediation)
                except Exception:  # a listener's fault must not stop expiry
                    log.exception("expiry listener failed for %d", mediation.content_id)
        return expired

    def _sooner_than_scheduled(self, timeouts: Iterable[datetime | None]) -> bool:
        scheduled = self.expiry.next()
        return any(t is not None and (scheduled is None or t < scheduled) for t in timeouts)

    def _next_timeout(self) -> float | None:
        scheduled = self.expiry.next()
        return None if scheduled is None else max(0.0, (scheduled - self.clock()).total_seconds())

    def _lifetime_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            with self.lock:
                self.expire_due()
                wait = self._next_timeout()
            # Sleep until the next timeout, but never more than a second, so an
            # intercept stops delivering within 1 s of its timeout.
            self._wake.wait(timeout=1.0 if wait is None else min(max(wait, 0.01), 1.0))

    def _watch_loop(self) -> None:
        """Reconnect (with backoff) to switches that dropped, then reconcile;
        reconcile switches whose contents may differ from their plan (stale)."""
        backoff: dict[str, float] = {}
        while not self._stop.wait(0.25):
            for switch in self.switches.values():
                up = switch.conn is not None and switch.conn.connected and switch.conn.is_primary
                if up and not switch.stale:
                    backoff.pop(switch.name, None)
                    continue
                delay = backoff.get(switch.name, 0.25)
                try:
                    with self.lock:
                        if not up:
                            switch.connect(timeout=2.0)
                        self.reconcile(switch.name)
                    log.info("%s: %s and reconciled", switch.name, "in step again" if up else "connection restored")
                    backoff.pop(switch.name, None)
                except (SwitchError, OSError) as error:
                    log.warning("%s: unavailable (%s); retrying in %.1fs", switch.name, error, delay)
                    backoff[switch.name] = min(delay * 2, 10.0)
                    self._stop.wait(delay)

