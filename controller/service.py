"""The controller: owns every switch's intercept state and keeps it true.

Intent first: an intercept is validated (planned, incrementally, on every
switch it goes to, and checked against what each switch can hold), announced
in the audit log (write-ahead: the audit never lags the intent), written to
the durable store, then carried to each of its switches as a small diff. If
any write fails part-way, every update already applied is undone and the
previous intent restored, so no tap is ever half installed. A controller
restart records what became of a change it died in (controller.recovery),
reads the intent back and reconciles; the data plane keeps tapping meanwhile
because nothing is removed on the way down.

Reconcile is not all or nothing: intent a switch refuses (more clone
sessions than its replication engine holds, say, committed before a crash
let the switch say so) is marked refused, per intercept and switch, in the
store and the audit log, and the rest is installed; the controller always
comes up and keeps serving. A refused intercept stays intent (shown as
refused by `p4tap tap list` and as notInService by the MIB) and is tried
again at every reconcile of its switch.

Each change costs O(what it touches), not O(all taps): only the overlap
groups the changed filters are in are re-planned, only changed plan items
become entities, and the intent and the ids it needs are stored in one
transaction (see controller.managed_switch and controller.incremental).

Lifetime: a timer removes a mediation and its streams at its timeout (within
a second) and reports it to `on_expired` listeners (the SNMP agent turns it
into ciscoTap2MediationTimedOut). Expired intercepts are never planned, so a
switch that restarts gets back only what is still within its lifetime.

This module is the API and the order of the steps; each step is a module of
its own: the request's checks (controller.requests), staging and carrying a
change (controller.carry), its audit records (controller.change_records),
what a switch refuses (controller.refusals), the lifetime timer
(controller.lifetime_timer) and the switch watch (controller.switch_watch).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from controller import crashpoints, ets
from controller.audit import AuditError, AuditLog
from controller.carry import Changes, ProvisionError, carry, stage
from controller.change_records import ChangeRecords
from controller.intent_trail import record_lost_intent
from controller.lifetime_timer import ExpiryListener, LifetimeTimer
from controller.managed_switch import Intent, ManagedSwitch, StreamCounters, SwitchChange, SwitchConfig
from controller.model import InterceptError, Mediation, Stream, StreamKey
from controller.pipeline import Pipeline
from controller.reconcile import Diff
from controller.recovery import recover
from controller.refusals import Refusals, by_intercept, load_refusals, reconcile_what_fits, record_refusals
from controller.requests import check_new
from controller.store import IntentStore, StoreError
from controller.switch import SwitchError, WriteError
from controller.switch_watch import SwitchStateListener, SwitchWatch
from controller.tofino_config import artifacts_for

if TYPE_CHECKING:  # only for from_settings' annotation: the config reader need not load the controller
    from controller.config import ControllerSettings

# ProvisionError, StreamCounters and SwitchConfig live below (controller.carry,
# controller.managed_switch) and are imported from here by the callers as before.
__all__ = ["Controller", "ManagedSwitch", "ProvisionError", "StreamCounters", "SwitchConfig", "utcnow"]

log = logging.getLogger("p4tap.controller")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


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
        self.switches = {c.name: ManagedSwitch(c, self.pipeline, ids=self.store.load_ids(c.name), now=clock)
                         for c in switches}
        recover(self.audit, self.store)  # before anything new is recorded
        #: Intercepts the audit log says were held but the store did not keep
        #: (it was lost, or damaged and moved aside): the SNMP agent sends
        #: ciscoTap2Switchover so the mediation devices provision them again.
        self.intent_lost = record_lost_intent(self.audit, self.store, self.clock())
        self.refused: dict[str, Refusals] = load_refusals(self.store, self.switches)
        self.lock = threading.RLock()
        self.records = ChangeRecords(self.audit, self.clock)
        self.lifetime = LifetimeTimer(self.store, self.switches, self.lock, self.clock, self.remove)
        self.expiry = self.lifetime.schedule
        self.watch = SwitchWatch(self.switches, self.store, self.audit, self.lock, self.reconcile)
        #: Outages of each switch since start: its stream lost until it was reconnected and reconciled.
        self.outages = self.watch.outages
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @classmethod
    def from_settings(cls, settings: ControllerSettings) -> Controller:
        """The controller a config file describes: its switches, state files and
        the pipeline of its target (bmv2, or Tofino in the device-config layout
        its P4Runtime server takes). The command line and the SNMP agent's
        process both start it this way."""
        pipeline = Pipeline.load(artifacts_for(settings.target, settings.device_config))
        return cls(settings.switches, settings.store_path, settings.audit_path, pipeline=pipeline)

    # -- lifecycle ----------------------------------------------------------

    def start(self, connect_timeout: float = 10.0) -> None:
        """Connect to every switch, reconcile it with the intent, start timers.

        A switch that does not answer (or refuses the pipeline) does not stop
        the start: the controller serves the switches that answer, and the
        watch loop keeps trying the others, reconciling each when it comes.
        Lifetime is enforced meanwhile on every switch that can be written."""
        with self.lock:
            self.expire_due()
            for switch in self.switches.values():
                try:
                    self.watch.connect(switch, connect_timeout)
                    self.reconcile(switch.name)
                except (SwitchError, OSError) as error:
                    log.error("%s: not available at start (%s); serving the others and retrying it", switch.name,
                              error)
                    self.watch.outage_began(switch)
        self._stop.clear()
        for loop, name in ((self.lifetime.run, "lifetime"), (self.watch.run, "switch-watch")):
            thread = threading.Thread(target=loop, args=(self._stop,), name=f"p4tap-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop timers and close connections. The switches keep what they hold."""
        self._stop.set()
        self.watch.wake.set()
        self.lifetime.wake.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        for switch in self.switches.values():
            if switch.conn is not None:
                switch.conn.close()
        with self.lock:
            self.records.flush()  # what the log cannot take yet, the next start's recover records
        self.store.close()
        self.audit.close()

    def __enter__(self) -> Controller:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def on_expired(self, listener: ExpiryListener) -> None:
        self.lifetime.listeners.append(listener)

    def on_switch_state(self, listener: SwitchStateListener) -> None:
        """`listener(name, up)`: False when a switch's outage is noticed, True
        once it is connected again and holds the intent (reconciled). Runs on
        the watch thread, holding the controller's lock: it must not block."""
        self.watch.listeners.append(listener)

    # -- the API ------------------------------------------------------------

    def intercepts(self) -> list[Intent]:
        return self.store.all()

    def refusals(self) -> dict[int, dict[str, str]]:
        """Intercepts of the intent a switch refused: content id -> switch -> reason."""
        with self.lock:
            return by_intercept(self.refused)

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
                check_new(intercepts, targets, self.switches, self.clock())
                previous = self.store.get_many(content_ids)
                changes: Changes = {name: {} for name in set(targets) | self._switches_of(previous.values())}
                for mediation, streams in intercepts:
                    for name, per_switch in changes.items():
                        per_switch[mediation.content_id] = (mediation, streams) if name in targets else None
                staged = stage(self.switches, changes, self.clock())
            except InterceptError as error:
                unrecorded = self.record_refusal(actor, str(error), content_ids=content_ids)
                if unrecorded:
                    raise InterceptError(f"{error} ({unrecorded})") from error
                raise
            put = [(m, s, targets) for m, s in intercepts]
            seq = self._announce(staged, actor, "provision", put)
            try:
                carry(self.switches, self.store, self.refused, staged, previous, seq, put=put)
            except SwitchError as error:
                self.records.conclude(actor, "refuse", intent_seq=seq, content_ids=content_ids,
                                      reason=f"switch: {error}")
                raise ProvisionError(f"intercept not installed, nothing changed: {error}") from error
            except (StoreError, InterceptError) as error:
                self.records.conclude(actor, "refuse", intent_seq=seq, content_ids=content_ids, reason=str(error))
                raise
            for name in staged:
                for content_id in content_ids:  # provisioned anew: any refusal of the old one is moot
                    self.refused[name].pop(content_id, None)
            sooner = self.lifetime.sooner_than_scheduled(m.timeout for m, _ in intercepts)
            for mediation, _ in intercepts:
                self.expiry.set(mediation.content_id, mediation.timeout)
            crashpoints.reached("after-write")
            if len(intercepts) == 1:
                mediation, streams = intercepts[0]
                self.records.conclude(actor, "provision", intent_seq=seq, content_id=mediation.content_id,
                                      switches=targets, md=f"{mediation.dest_address}:{mediation.dest_port}",
                                      timeout=mediation.timeout.isoformat() if mediation.timeout else None,
                                      streams=[s.index for s in streams if s.enabled])
            else:
                self.records.conclude(actor, "provision", intent_seq=seq, content_ids=content_ids, switches=targets)
            crashpoints.reached("after-audit")
        if sooner:
            self.lifetime.wake.set()  # the timer sleeps until the next timeout: it may now be sooner

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
            staged = stage(self.switches, {name: {content_id: None} for name in old[2] if name in self.switches},
                           self.clock())
            seq = self._announce(staged, actor, action, content_ids=[content_id], late_ok=action == "expire")
            try:
                carry(self.switches, self.store, self.refused, staged, {content_id: old}, seq, remove=[content_id],
                      keep_intent=action == "expire")
            except SwitchError as error:
                if action != "expire":
                    self.records.conclude(actor, "refuse", intent_seq=seq, content_id=content_id,
                                          reason=f"removal failed: {error}")
                    raise ProvisionError(f"intercept {content_id} still installed: {error}") from error
                log.warning("intercept %d expired; switch update deferred to reconcile: %s", content_id, error)
            except StoreError as error:
                self.records.conclude(actor, "refuse", intent_seq=seq, content_id=content_id, reason=str(error))
                raise
            self.expiry.discard(content_id)
            for name, refused in self.refused.items():
                held_here = refused.pop(content_id, None) is None
                if held_here and refused and name in staged:
                    self.switches[name].stale = True  # room freed: the watch loop retries what it refused
            crashpoints.reached("after-write")
            self.records.conclude(actor, action, intent_seq=seq, content_id=content_id)
            crashpoints.reached("after-audit")
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
                if switch is None or switch.conn is None or not switch.conn.connected or \
                        content_id in self.refused.get(name, {}):
                    total = {k: c + StreamCounters(held=False) for k, c in total.items()}
                    continue
                for key, c in switch.stream_counters(content_id, keys).items():
                    total[key] += c
            return total

    # -- internals ----------------------------------------------------------

    @staticmethod
    def _switches_of(intents: Iterable[Intent]) -> set[str]:
        return {name for _, _, switches in intents for name in switches}

    def _announce(self, staged: Mapping[str, SwitchChange], actor: str, op: str, put: Sequence[Intent] = (),
                  content_ids: Sequence[int] = (), late_ok: bool = False) -> int:
        """The write-ahead audit record of a change (controller.change_records);
        if it cannot be written, nothing is changed (the staged plans are
        rolled back) and the caller is told."""
        try:
            return self.records.announce(actor, op, put, content_ids, late_ok=late_ok)
        except (AuditError, OSError) as error:
            for name in staged:
                self.switches[name].rollback()
            raise ProvisionError(f"not changed: the audit log cannot record it: {error}") from error

    def record_refusal(self, actor: str, reason: str, **detail) -> str | None:
        """Audit a refused request; None if recorded, else a note for the
        requester saying it could not be (controller.change_records)."""
        return self.records.refusal(actor, reason, **detail)

    def reconcile(self, name: str, actor: str = "controller") -> Diff:
        """Make one switch hold exactly the intent: read it, delete what is not
        ours or has expired, install what is missing. Every correction is audited.

        What the switch refuses (or cannot hold) is found per intercept,
        marked refused and audited, and the rest installed: a switch that
        cannot hold all of the intent still gets all it can, and this returns."""
        with self.lock:
            switch = self.switches[name]
            now = self.clock()
            intents = [i for i in self.store.all() if name in i[2]]
            try:
                d = switch.reconcile(intents, now)
                refused: Refusals = {}
            except (WriteError, InterceptError) as error:
                log.warning("%s: cannot hold all of the intent (%s); finding what it accepts", name, error)
                d, refused = reconcile_what_fits(switch, intents, now)
            record_refusals(self.audit, self.store, self.refused, name, refused, actor)
            if d:
                self.audit.append(actor, "reconcile", switch=name, inserted=len(d.inserts),
                                  modified=len(d.modifies), deleted=len(d.deletes))
                log.info("%s: reconciled: %s", name, d.summary())
            switch.apply_ets_meters()
            if switch.ids.changed_replicas or switch.ids.changed_sessions:  # else the store holds them already
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

    # -- lifetime ---------------------------------------------------------

    def expire_due(self) -> list[Mediation]:
        """Remove every intercept whose timeout has passed; tell the listeners
        (controller.lifetime_timer)."""
        return self.lifetime.expire_due()

    def renew_leases(self) -> None:
        """Extend each switch's lease when half of it is gone (controller.lifetime_timer)."""
        self.lifetime.renew_leases()
