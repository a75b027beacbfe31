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
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from controller.audit import AuditError, AuditLog
from controller import crashpoints, ets
from controller.incremental import Intercept
from controller.intent_trail import record_lost_intent
from controller.lifetime import ExpirySchedule
from controller.managed_switch import Intent, ManagedSwitch, StreamCounters, SwitchChange, SwitchConfig
from controller.model import InterceptError, Mediation, Stream, StreamKey
from controller.pipeline import Pipeline
from controller.tofino_config import artifacts_for

if TYPE_CHECKING:  # controller.config builds on this module's SwitchConfig
    from controller.config import ControllerSettings
from controller.plan import IdChanges
from controller.reconcile import Diff
from controller.recovery import announce, intent_detail, recover
from controller.store import IntentStore, StoreError
from controller.switch import SwitchError, WriteError

__all__ = ["Controller", "ManagedSwitch", "ProvisionError", "StreamCounters", "SwitchConfig", "utcnow"]

log = logging.getLogger("p4tap.controller")

ExpiryListener = Callable[[Mediation], None]
SwitchStateListener = Callable[[str, bool], None]  # (switch name, up): after an outage begins / once reconciled
Refusals = dict[int, str]  # content id -> why a switch refused it
REASON_MAX = 300  # characters of a switch's refusal kept per intercept
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
        self.switches = {c.name: ManagedSwitch(c, self.pipeline, ids=self.store.load_ids(c.name), now=clock)
                         for c in switches}
        recover(self.audit, self.store)  # before anything new is recorded
        #: Intercepts the audit log says were held but the store did not keep
        #: (it was lost, or damaged and moved aside): the SNMP agent sends
        #: ciscoTap2Switchover so the mediation devices provision them again.
        self.intent_lost = record_lost_intent(self.audit, self.store, self.clock())
        self.refused: dict[str, Refusals] = {name: {} for name in self.switches}
        for content_id, by_switch in self.store.refusals().items():
            for name, reason in by_switch.items():
                self.refused.setdefault(name, {})[content_id] = reason
        self.lock = threading.RLock()
        # Outcome records of finished changes the audit log could not take yet
        # (a full disk): written ahead of the next change's intent record, which
        # cannot be written without them, or found by `recover` at the next start.
        self._owed: list[tuple[str, str, dict]] = []
        self._expiry_listeners: list[ExpiryListener] = []
        self._switch_listeners: list[SwitchStateListener] = []
        #: Outages of each switch since start: its stream lost until it was reconnected and reconciled.
        self.outages: dict[str, int] = {name: 0 for name in self.switches}
        self._down_since: dict[str, float] = {}  # switch -> time.monotonic() its outage was noticed
        self.expiry = ExpirySchedule()  # follows the store: set where an intercept is stored or removed
        self.expiry.reset((m.content_id, m.timeout) for m, _, _ in self.store.all())
        self._stop = threading.Event()
        self._watch_wake = threading.Event()  # a stream lost: the watch loop looks at once, not at its next tick
        self._wake = threading.Event()
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
                    self._connect(switch, connect_timeout)
                    self.reconcile(switch.name)
                except (SwitchError, OSError) as error:
                    log.error("%s: not available at start (%s); serving the others and retrying it", switch.name,
                              error)
                    self._outage_began(switch)
        self._stop.clear()
        for target, name in ((self._lifetime_loop, "lifetime"), (self._watch_loop, "switch-watch")):
            thread = threading.Thread(target=target, name=f"p4tap-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop timers and close connections. The switches keep what they hold."""
        self._stop.set()
        self._watch_wake.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        for switch in self.switches.values():
            if switch.conn is not None:
                switch.conn.close()
        with self.lock:
            if self._owed:
                try:
                    self.audit.append_many(self._owed)
                    self._owed = []
                except (AuditError, OSError) as error:  # the next start's recover records it
                    log.error("stopping with %d outcome record(s) unwritten (%s); the next start recovers them",
                              len(self._owed), error)
        self.store.close()
        self.audit.close()

    def __enter__(self) -> Controller:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def on_expired(self, listener: ExpiryListener) -> None:
        self._expiry_listeners.append(listener)

    def on_switch_state(self, listener: SwitchStateListener) -> None:
        """`listener(name, up)`: False when a switch's outage is noticed, True
        once it is connected again and holds the intent (reconciled). Runs on
        the watch thread, holding the controller's lock: it must not block."""
        self._switch_listeners.append(listener)

    # -- the API ------------------------------------------------------------

    def intercepts(self) -> list[Intent]:
        return self.store.all()

    def refusals(self) -> dict[int, dict[str, str]]:
        """Intercepts of the intent a switch refused: content id -> switch -> reason."""
        with self.lock:
            out: dict[int, dict[str, str]] = {}
            for name, refused in self.refused.items():
                for content_id, reason in refused.items():
                    out.setdefault(content_id, {})[name] = reason
            return out

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
                unrecorded = self.record_refusal(actor, str(error), content_ids=content_ids)
                if unrecorded:
                    raise InterceptError(f"{error} ({unrecorded})") from error
                raise
            put = [(m, s, targets) for m, s in intercepts]
            seq = self._announce(staged, actor, "provision", put)
            try:
                self._carry(staged, previous, seq, put=put)
            except SwitchError as error:
                self._conclude(actor, "refuse", intent_seq=seq, content_ids=content_ids, reason=f"switch: {error}")
                raise ProvisionError(f"intercept not installed, nothing changed: {error}") from error
            except (StoreError, InterceptError) as error:
                self._conclude(actor, "refuse", intent_seq=seq, content_ids=content_ids, reason=str(error))
                raise
            for name in staged:
                for content_id in content_ids:  # provisioned anew: any refusal of the old one is moot
                    self.refused[name].pop(content_id, None)
            sooner = self._sooner_than_scheduled(m.timeout for m, _ in intercepts)
            for mediation, _ in intercepts:
                self.expiry.set(mediation.content_id, mediation.timeout)
            crashpoints.reached("after-write")
            if len(intercepts) == 1:
                mediation, streams = intercepts[0]
                self._conclude(actor, "provision", intent_seq=seq, content_id=mediation.content_id,
                               switches=targets, md=f"{mediation.dest_address}:{mediation.dest_port}",
                               timeout=mediation.timeout.isoformat() if mediation.timeout else None,
                               streams=[s.index for s in streams if s.enabled])
            else:
                self._conclude(actor, "provision", intent_seq=seq, content_ids=content_ids, switches=targets)
            crashpoints.reached("after-audit")
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
            seq = self._announce(staged, actor, action, content_ids=[content_id], late_ok=action == "expire")
            try:
                self._carry(staged, {content_id: old}, seq, remove=[content_id], keep_intent=action == "expire")
            except SwitchError as error:
                if action != "expire":
                    self._conclude(actor, "refuse", intent_seq=seq, content_id=content_id,
                                   reason=f"removal failed: {error}")
                    raise ProvisionError(f"intercept {content_id} still installed: {error}") from error
                log.warning("intercept %d expired; switch update deferred to reconcile: %s", content_id, error)
            except StoreError as error:
                self._conclude(actor, "refuse", intent_seq=seq, content_id=content_id, reason=str(error))
                raise
            self.expiry.discard(content_id)
            for name, refused in self.refused.items():
                held_here = refused.pop(content_id, None) is None
                if held_here and refused and name in staged:
                    self.switches[name].stale = True  # room freed: the watch loop retries what it refused
            crashpoints.reached("after-write")
            self._conclude(actor, action, intent_seq=seq, content_id=content_id)
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

    def _announce(self, staged: Mapping[str, SwitchChange], actor: str, op: str, put: Sequence[Intent] = (),
                  content_ids: Sequence[int] = (), late_ok: bool = False) -> int:
        """The write-ahead audit record of a change; if it cannot be written,
        nothing is changed (the staged plans are rolled back) and the caller is told.

        `late_ok` (an expiry: past its Timeout nothing may be delivered, full
        disk or not): the record is owed instead, written ahead of anything
        else once the log has room, with `late` saying why."""
        try:
            if self._owed:  # the log must conclude the changes before this one first
                self.audit.append_many(self._owed)
                self._owed = []
            seq = announce(self.audit, actor, op, put, content_ids)
        except (AuditError, OSError) as error:
            if late_ok:
                for owed in self._owed:  # outcomes of earlier changes stay ahead of this one
                    self.audit.owe(owed[0], owed[1], **owed[2])
                self._owed = []
                seq = self.audit.owe(actor, f"{op}-intent", **intent_detail(put, content_ids),
                                     late=f"the audit log could not take it at {self.clock().isoformat()}: {error}")
                log.error("%s of %s carried out though the audit log cannot record it yet (%s): its record (seq %d) "
                          "is written once there is room", op, ", ".join(map(str, content_ids)), error, seq)
                crashpoints.reached("before-store")
                return seq
            for name in staged:
                self.switches[name].rollback()
            raise ProvisionError(f"not changed: the audit log cannot record it: {error}") from error
        crashpoints.reached("before-store")
        return seq

    def _conclude(self, actor: str, action: str, **detail) -> None:
        """Append the outcome record of an announced change. Never raises: the
        change is done (or undone) whatever the disk says, and the requester
        must hear which; an outcome the log cannot take now (ENOSPC) is owed,
        kept in memory and written ahead of the next intent record, or, if the
        controller stops first, found by `recover` at the next start (the
        change's intent record is then the newest without an outcome)."""
        self._owed.append((actor, action, detail))
        try:
            self.audit.append_many(self._owed)
        except (AuditError, OSError) as error:
            log.error("audit log cannot record the outcome of change %s (%s): %s; owed until it can",
                      detail.get("intent_seq"), action, error)
            return
        self._owed = []

    def record_refusal(self, actor: str, reason: str, **detail) -> str | None:
        """Audit a refused request; None if recorded, else a note for the
        requester saying it could not be (a refusal changes nothing, so it is
        not owed like an outcome; the requester is told instead)."""
        try:
            self.audit.append(actor, "refuse", **detail, reason=reason)
        except (AuditError, OSError) as error:
            log.error("audit log cannot record a refusal (%s): %s", reason, error)
            return f"the refusal could not be audited: {error}"
        return None

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

    def _carry(self, staged: Mapping[str, SwitchChange], previous: Mapping[int, Intent], seq: int,
               put: Sequence[Intent] = (), remove: Sequence[int] = (), keep_intent: bool = False) -> None:
        """Store the intent with the ids it uses, marked with `seq` (its
        write-ahead audit record), then write every switch's part.

        If a switch fails, the switches already written are undone and every
        switch's state rolled back; the stored intent goes back to `previous`
        (the changed intercepts as they were), unless `keep_intent` (an expiry:
        the switches are left to reconcile)."""
        written = {name: self.switches[name].ids.take_changes() for name in staged}
        try:
            self.store.change(put=put, remove=remove, ids=written, intent_seq=seq)
        except (StoreError, InterceptError):
            for name in staged:
                self.switches[name].rollback()
            raise
        crashpoints.reached("after-store")
        if keep_intent:
            self._carry_regardless(staged, written)
            return
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
                self.store.change(put=previous.values(), remove=fresh, ids=ids, intent_seq=seq)
                for name, refused in self.refused.items():  # putting them back dropped their refusals
                    if refused.keys() & previous.keys():
                        self.store.set_refusals(name, refused)
            raise
        for name in staged:
            self.switches[name].commit()

    def _carry_regardless(self, staged: Mapping[str, SwitchChange], written: Mapping[str, IdChanges]) -> None:
        """Write an expiry to every switch that takes it. It is not negotiable:
        one switch that is down (or refuses) must not keep the intercept on
        the others, so each is written on its own; one that fails is rolled
        back, marked stale and left to reconcile when it answers, where the
        expired intercept is never planned again. Raises the first failure
        after all were tried, for the caller to log."""
        failure: SwitchError | None = None
        for name, change in staged.items():
            switch = self.switches[name]
            try:
                switch.retire_counters(change)
                switch.apply(change)
            except SwitchError as error:
                switch.rollback()
                switch.stale = True
                failure = failure or error
            else:
                switch.commit()
        if failure is not None:  # the store holds the ids the failed switches gave back, as after a rollback
            self.store.change(ids={name: self.switches[name].ids.current(changes) for name, changes in written.items()})
            raise failure

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
                d, refused = self._reconcile_what_fits(switch, intents, now)
            self._record_refusals(name, refused, actor)
            if d:
                self.audit.append(actor, "reconcile", switch=name, inserted=len(d.inserts),
                                  modified=len(d.modifies), deleted=len(d.deletes))
                log.info("%s: reconciled: %s", name, d.summary())
            switch.apply_ets_meters()
            if switch.ids.changed_replicas or switch.ids.changed_sessions:  # else the store holds them already
                self.store.save_ids(name, switch.ids)
            switch.ids.take_changes()
            return d

    def _reconcile_what_fits(self, switch: ManagedSwitch, intents: Sequence[Intent],
                             now: datetime) -> tuple[Diff, Refusals]:
        """The switch refused the whole intent: install the longest prefix it
        accepts, found by bisection (each try a full reconcile, so about
        log2(n) of them), then offer each later intercept on its own as a small
        incremental change, keeping those it accepts. The order puts the
        intercepts the switch already holds first (then by content id), so
        that finding room never takes a working tap off the switch.

        Returns the diff that was finally written and the refused intercepts
        with the switch's reason. A switch that refuses even no intercept
        (its forwarding entries) raises."""
        held = switch.held_intercepts()  # from the failed try's plan and read-back: keep these in place
        undo_failures = switch.undo_failures  # tries trust `believed`, which a failed undo falsifies
        ordered = sorted(intents, key=lambda i: (i[0].content_id not in held, i[0].content_id))
        fits, fails = 0, len(ordered)  # prefix `fits` is accepted, prefix `fails` is not
        holds: int | None = None  # the prefix the switch and its plan hold now (None: a refused one)
        result = Diff()
        while fails - fits > 1:
            middle = (fits + fails) // 2
            try:
                result, holds, fits = switch.reconcile(ordered[:middle], now, read=False), middle, middle
            except (WriteError, InterceptError):
                holds, fails = None, middle
        if holds != fits:
            result = switch.reconcile(ordered[:fits], now, read=False)  # raises if even that is refused
        refused: Refusals = {}
        for mediation, streams, _ in ordered[fits:]:  # each tried alone, so each gets its own reason
            try:
                change = switch.stage({mediation.content_id: (mediation, streams)}, now)
                switch.apply(change)
            except (WriteError, InterceptError) as refusal:
                switch.rollback()
                refused[mediation.content_id] = self._reason(refusal)
                continue
            switch.commit()
            result.inserts += change.diff.inserts
            result.modifies += change.diff.modifies
        switch.stale = switch.undo_failures != undo_failures  # if so, the watch loop reads and tries again
        return result, refused

    @staticmethod
    def _reason(error: Exception) -> str:
        text = f"refused by the switch: {error}" if isinstance(error, WriteError) else str(error)
        return text if len(text) <= REASON_MAX else text[:REASON_MAX - 3] + "..."

    def _record_refusals(self, name: str, refused: Refusals, actor: str) -> None:
        """Audit (first) and store which intercepts `name` refuses now, where that changed."""
        before = self.refused.get(name, {})
        if refused == before:
            return
        newly = {c: r for c, r in refused.items() if before.get(c) != r}
        accepted = sorted(set(before) - set(refused))
        if newly:
            by_reason: dict[str, list[int]] = {}
            for content_id, reason in sorted(newly.items()):
                by_reason.setdefault(reason, []).append(content_id)
            self.audit.append(actor, "switch-refuse", switch=name, content_ids=sorted(newly),
                              reasons=[{"reason": r, "content_ids": ids} for r, ids in by_reason.items()])
            log.error("%s: refuses %d intercept(s) of the intent (%s): %s", name, len(newly),
                      ", ".join(map(str, sorted(newly)[:10])) + (" ..." if len(newly) > 10 else ""),
                      next(iter(by_reason)))
        if accepted:
            self.audit.append(actor, "switch-accept", switch=name, content_ids=accepted)
        self.store.set_refusals(name, refused)
        self.refused[name] = dict(refused)

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

    def renew_leases(self) -> None:
        """Extend each switch's lease when half of it is gone (controller.clock):
        the switch stops every copy at its lease end unless this runs."""
        now = self.clock()
        for switch in self.switches.values():
            if switch.conn is None or not switch.conn.connected or not switch.lease_due(now):
                continue
            try:
                written = switch.renew_lease()
                log.info("%s: lease renewed until %s (%d entries rewritten)", switch.name,
                         switch.builder.lease_end.isoformat(timespec="seconds"), written)
            except SwitchError as error:
                log.error("%s: lease not renewed (%s); its copies stop at %s unless a reconnect renews it",
                          switch.name, error, switch.builder.lease_end)

    def _sooner_than_scheduled(self, timeouts: Iterable[datetime | None]) -> bool:
        scheduled = self.expiry.next()
        return any(t is not None and (scheduled is None or t < scheduled) for t in timeouts)

    def _next_timeout(self) -> float | None:
        scheduled = self.expiry.next()
        return None if scheduled is None else max(0.0, (scheduled - self.clock()).total_seconds())

    def _lifetime_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            wait: float | None = 1.0
            with self.lock:
                try:
                    self.expire_due()
                except (ProvisionError, StoreError, AuditError, OSError) as error:  # a full disk: try again
                    log.error("expiry deferred: %s", error)
                else:
                    wait = self._next_timeout()
                self.renew_leases()
            # Sleep until the next timeout, but never more than a second, so an
            # intercept stops delivering within 1 s of its timeout.
            self._wake.wait(timeout=1.0 if wait is None else min(max(wait, 0.01), 1.0))

    def _outage_began(self, switch: ManagedSwitch) -> None:
        """A switch's stream is gone (the switch died, restarts, or the link is
        down): its intercepts deliver nothing until it is back. Logged, counted
        and audited, since an intercept not delivered is an event for the LEA."""
        with self.lock:
            self._down_since[switch.name] = time.monotonic()
            self.outages[switch.name] += 1
            number = self.outages[switch.name]
            conn = switch.conn
            why = conn.stream_error if conn is not None else None
            if conn is not None and conn.connected and not conn.is_primary:
                why = f"another controller is primary (election id {conn.primary_election_id})"
            held = self.store.content_ids(switch.name)
            log.error("%s: switch lost (outage %d): %s; intercepts not delivered meanwhile: %s", switch.name, number,
                      why or "not connected", ", ".join(map(str, held)) or "none")
            self.audit.append("controller", "switch-down", switch=switch.name, outage=number,
                              reason=str(why or "not connected")[:REASON_MAX], content_ids=held)
            self._tell_switch_state(switch.name, False)

    def _outage_ended(self, switch: ManagedSwitch, d: Diff) -> None:
        """Connected again and reconciled: the switch holds the intent again."""
        seconds = time.monotonic() - self._down_since.pop(switch.name)
        number = self.outages[switch.name]
        log.warning("%s: switch back after %.1f s (outage %d); reconciled: %s", switch.name, seconds, number,
                    d.summary())
        self.audit.append("controller", "switch-up", switch=switch.name, outage=number, seconds=round(seconds, 3),
                          inserted=len(d.inserts), deleted=len(d.deletes))
        self._tell_switch_state(switch.name, True)

    def _tell_switch_state(self, name: str, up: bool) -> None:
        for listener in self._switch_listeners:
            try:
                listener(name, up)
            except Exception:  # a listener's fault must not stop the watch
                log.exception("switch-state listener failed for %s", name)

    def _connect(self, switch: ManagedSwitch, timeout: float) -> None:
        """Connect, and have every change of the stream wake the watch loop:
        after a switch restart each second until reconcile is content lost."""
        try:
            switch.connect(timeout=timeout)
        finally:
            if switch.conn is not None:
                switch.conn.on_state_change(lambda conn, state: self._watch_wake.set())

    def _watch_loop(self) -> None:
        """Reconnect (with backoff) to switches that dropped, then reconcile;
        reconcile switches whose contents may differ from their plan (stale)."""
        backoff: dict[str, float] = {}
        next_try: dict[str, float] = {}  # per switch: one that is down waits without holding up the others
        while not self._stop.is_set():
            self._watch_wake.wait(0.25)
            self._watch_wake.clear()
            for switch in self.switches.values():
                up = (switch.conn is not None and switch.conn.connected and switch.conn.is_primary
                      and switch.builder.clock is not None)  # without its clock nothing is written to it
                if up and not switch.stale:
                    backoff.pop(switch.name, None)
                    continue
                if not up and switch.name not in self._down_since:
                    self._outage_began(switch)
                if time.monotonic() < next_try.get(switch.name, 0.0):
                    continue
                delay = backoff.get(switch.name, 0.25)
                try:
                    with self.lock:
                        if not up:
                            self._connect(switch, 2.0)
                        d = self.reconcile(switch.name)
                        if switch.name in self._down_since:
                            self._outage_ended(switch, d)
                    log.info("%s: %s and reconciled", switch.name, "in step again" if up else "connection restored")
                    backoff.pop(switch.name, None)
                except (SwitchError, OSError) as error:
                    log.warning("%s: unavailable (%s); retrying in %.1fs", switch.name, error, delay)
                    backoff[switch.name] = min(delay * 2, 10.0)
                    next_try[switch.name] = time.monotonic() + delay

