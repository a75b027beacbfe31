"""The MD keeps its intercepts alive at the IAP (RFC 3924 §3.1: the MD must
notice an IAP that lost its intercepts and provision them again).

Every `audit_interval` seconds (sooner after a TimedOut or Switchover
notification) the keeper reads the IAP's mediation, stream and filter tables
over SNMPv3 and, for each intercept it wants:

- present and as wanted: nothing, except refreshing cTap2MediationTimeout
  once less than half of the lifetime is left (an MD that stops caring, or
  dies, lets the intercept lapse on its own);
- missing, partial or different (the IAP restarted without its intercepts, or
  said ciscoTap2Switchover; a row was destroyed, a stream disabled): whatever
  is left of it is torn down and it is provisioned again with the three-PDU
  createAndGo sequence.

The MIB allows an IAP to keep its rows across a restart or to lose them;
the keeper learns which from the tables it reads after sysUpTime went back,
so it works with both (p4tap's IAP keeps them).

Intercepts come and go while it runs: the IRI function wants a target's
data tap when its session starts and unwants it at Stop
(mediation/keeper_changes.py); the next audit checks them like any other.

An IAP that does not answer is reported once when it stops and once when it
answers again (and when it restarted: a new snmpEngineID or snmpEngineBoots,
or sysUpTime went back). The keeper
never blocks the content receiver: it runs in its own thread with its own
SNMP client.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from mediation.config import IapSettings, InterceptSpec
from mediation.informs import Notification
from mediation.keeper_changes import InterceptChanges
from mediation.snmp_client import TapClient, TapClientError
from mediation.stream_filter import Filter
from mediation.tap_mib import ACTIVE, IapIntercept, Provisioning

log = logging.getLogger("p4tap.md")
EVENTS_KEPT = 50
PROVISION_WINDOW = 8  # intercepts in flight when several need provisioning at once


def client_for(iap: IapSettings) -> TapClient:
    return TapClient(iap.address.host, iap.address.port, iap.user, iap.auth_key, iap.priv_key,
                     auth_protocol=iap.auth_protocol, priv_protocol=iap.priv_protocol, timeout=iap.timeout,
                     retries=iap.retries)


def _key(f: Filter | None) -> tuple:
    """A filter as a sortable, comparable tuple."""
    return ("",) if f is None else (f.src or "", f.dst or "", f.protocol, tuple(f.dst_ports), tuple(f.src_ports))


def settling(spec: InterceptSpec, have: IapIntercept) -> bool:
    """The IAP holds every wanted stream, enabled, on the right mediation row,
    and no other, but not all of them are active yet: streams a change just
    created (notInService until the IAP's switch write is done, which a loaded
    IAP takes its time over), or ones its switch refused. Neither is mended by
    tearing the intercept down and provisioning it again: that would leave the
    target untapped meanwhile (completeness), and refuse again."""
    if have.status != ACTIVE or have.dest != (spec.md.host, spec.md.port):
        return False
    present = [s for s in have.streams.values() if s.filter is not None and s.enabled]
    return len(present) == len(have.streams) and \
        sorted(_key(s.filter) for s in present) == sorted(_key(f) for f in spec.filters)


def problem(spec: InterceptSpec, have: IapIntercept | None) -> str | None:
    """Why the IAP's rows are not the intercept the MD wants, or None."""
    if have is None:
        return "missing at the IAP"
    if have.status != ACTIVE:
        return f"mediation row not active (status {have.status})"
    if have.dest != (spec.md.host, spec.md.port):
        return f"delivers to {have.dest}, not {spec.md}"
    active = have.active_streams()
    if sorted(_key(s.filter) for s in active) != sorted(_key(f) for f in spec.filters):
        return f"{len(active)} of {len(spec.filters)} streams active as wanted"
    return None


@dataclass
class KeptIntercept:
    content_id: int
    state: str = "pending"  # pending, active, failed
    provisioned: int = 0  # 1 = provisioned once; more = provisioned again after a loss
    refreshed: int = 0
    timeout: str | None = None
    iap_packets: int = 0  # InterceptedPackets summed over its streams, as the IAP counts
    iap_drops: int = 0
    active_notifications: int = 0
    last_problem: str = ""  # why it was last (re)provisioned
    last_error: str = ""  # the IAP's refusal, while it lasts
    derived_from: str = ""  # "" for the config's; else what made it (mediation/derived_taps.py)
    provisioned_at: float | None = None  # time.time() of the last provisioning that succeeded


@dataclass
class KeeperStatus:
    iap: str
    reachable: bool | None = None
    down_since: float | None = None
    restarts_seen: int = 0
    # Of the intercepts wanted, how many the IAP still held as wanted after
    # its last restart: p4tap keeps its intent across a restart, a volatile
    # IAP keeps none (README, "Intercepts across an IAP restart").
    kept_across_last_restart: int | None = None
    audits: int = 0
    intercepts: dict[int, KeptIntercept] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)


class Keeper(InterceptChanges):
    def __init__(self, iap: IapSettings, intercepts: Sequence[InterceptSpec],
                 client_factory: Callable[[IapSettings], TapClient] = client_for,
                 progress: Callable[[str], None] | None = None) -> None:
        """`progress` hears how provisioning goes (for a CLI to show): every
        SET where intercepts go one at a time, every intercept where several
        are in flight."""
        self.iap = iap
        self.progress = progress
        self.specs = list(intercepts)
        self.client_factory = client_factory
        self.client: TapClient | None = None
        self.status = KeeperStatus(str(iap.address), intercepts={
            s.content_id: KeptIntercept(s.content_id, derived_from=s.derived_from) for s in self.specs})
        self._pending: dict[int, InterceptSpec | None] = {}  # want/unwant, applied by the keeper's thread
        self._orphans: set[int] = set()  # unwanted, but their rows may still be at the IAP
        self._indexes: dict[int, dict[Filter, int]] = {}  # stream index of each filter, as this keeper made them
        self._lock = threading.Lock()
        # (sysUpTime, snmpEngineID, snmpEngineBoots) at the last audit: a change says the IAP restarted
        self._last_incarnation: tuple[int | None, bytes | None, int | None] | None = None
        self._answered = False  # the IAP answered at least once
        self._wake = threading.Event()
        self._audit_asked = False  # a notification asks for an audit before the interval is up
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- events -------------------------------------------------------------------

    def _event(self, message: str, level: int = logging.INFO) -> None:
        log.log(level, "%s", message)
        self.status.events.append(f"{datetime.now():%H:%M:%S} {message}")
        del self.status.events[:-EVENTS_KEPT]

    def on_notification(self, note: Notification) -> None:
        """From the inform receiver's thread: react to what the IAP says."""
        kept = self.status.intercepts.get(note.content_id) if note.content_id else None
        if note.kind == "active" and kept is not None:
            kept.active_notifications += 1
        elif note.kind in ("timed_out", "switchover") and (kept is not None or note.kind == "switchover"):
            self._event(f"IAP says {note.kind.replace('_', ' ')}"
                        f"{f' for intercept {note.content_id}' if note.content_id else ''}: auditing now")
            self._audit_asked = True
            self._wake.set()

    @staticmethod
    def kept_for(spec: InterceptSpec) -> KeptIntercept:
        return KeptIntercept(spec.content_id, derived_from=spec.derived_from)

    # -- one audit ------------------------------------------------------------------

    def _client(self) -> TapClient:
        if self.client is None:
            self.client = self.client_factory(self.iap)
        return self.client

    def close(self) -> None:
        """Release the SNMP client (for a keeper used without its thread)."""
        self._drop_client()

    def _drop_client(self) -> None:
        """After a failure start afresh: a restarted agent has a new engine ID and boot count."""
        if self.client is not None:
            try:
                self.client.close()
            except Exception:
                log.debug("closing the SNMP client", exc_info=True)
            self.client = None

    def audit(self) -> None:
        """Read the IAP's tables and put right what is not as wanted."""
        try:
            client = self._client()
            uptime, engine, boots = client.incarnation()
            table = client.intercepts()
        except TapClientError as error:
            if self.status.reachable is not False:
                self.status.down_since = time.time()
                if self._answered:
                    self._event(f"IAP {self.iap.address} stopped answering: {error}", logging.WARNING)
                else:
                    self._event(f"IAP {self.iap.address} does not answer yet ({error}); "
                                f"asking again every {self.iap.audit_interval:g}s")
            self.status.reachable = False
            self._drop_client()
            return
        if self.status.reachable is False:
            self._event(f"IAP {self.iap.address} answers{' again' if self._answered else ''} after "
                        f"{time.time() - (self.status.down_since or time.time()):.1f}s")
        self._answered = True
        before = self._last_incarnation
        restarted = before is not None and (
            (uptime is not None and before[0] is not None and uptime < before[0])
            or (engine is not None and before[1] is not None and engine != before[1])
            or (boots is not None and before[2] is not None and boots != before[2]))
        self._last_incarnation = (uptime, engine, boots)
        if restarted:
            self.status.restarts_seen += 1
            kept = sum(problem(spec, table.get(spec.content_id)) is None for spec in self.specs)
            self.status.kept_across_last_restart = kept
            self._event(f"IAP {self.iap.address} restarted (new engine, or sysUpTime went back): it kept {kept} of the "
                        f"{len(self.specs)} intercept(s) kept here; provisioning again what it lost", logging.WARNING)
        self.status.reachable, self.status.down_since = True, None
        self.status.audits += 1
        self._expire(client, table)
        wanted: list[tuple[InterceptSpec, Provisioning]] = []
        for spec in self.specs:
            try:
                provisioning = self._keep(client, spec, table.get(spec.content_id))
            except TapClientError as error:
                if not self._failed(spec, error):
                    return
                continue
            if provisioning is not None:
                wanted.append((spec, provisioning))
        if wanted:
            self._provision(client, wanted)

    def _failed(self, spec: InterceptSpec, error: TapClientError) -> bool:
        """Note a refusal or a silence; False if the IAP went away (the audit stops)."""
        kept = self.status.intercepts[spec.content_id]
        if kept.last_error != str(error):  # said once, not at every audit
            self._event(f"intercept {spec.content_id}: {error}", logging.WARNING)
        kept.state, kept.last_error = "failed", str(error)
        if error.status is None:  # no answer: the IAP went away mid-audit
            self.status.reachable = False
            self.status.down_since = time.time()
            self._drop_client()
            return False
        return True

    def _keep(self, client: TapClient, spec: InterceptSpec, have: IapIntercept | None) -> Provisioning | None:
        """Leave an intercept that is as wanted (refreshing its Timeout when
        due); otherwise tear down what is left of it and return what to
        provision."""
        kept = self.status.intercepts[spec.content_id]
        now = datetime.now(timezone.utc)
        wrong = problem(spec, have)
        if wrong is None:
            kept.state, kept.last_error = "active", ""
            if spec.content_id not in self._indexes:  # kept from before this MD (its restart): its streams as found
                at = {_key(s.filter): s.index for s in have.active_streams()}
                self._indexes[spec.content_id] = {f: at[_key(f)] for f in spec.filters}
            kept.iap_packets = sum(s.packets for s in have.streams.values())
            kept.iap_drops = sum(s.drops for s in have.streams.values())
            self._refresh(client, spec, have, now)
            return None
        if have is not None and settling(spec, have):
            if kept.state != "settling":
                self._event(f"intercept {spec.content_id}: {wrong}; the others are there, not active yet: "
                            "left to the IAP, not provisioned again")
            kept.state, kept.last_problem = "settling", wrong
            self._refresh(client, spec, have, now)  # its active streams must not lapse meanwhile
            return None
        again = kept.provisioned > 0
        if kept.state != "failed":  # a failing provisioning is reported once, by audit()
            self._event(f"intercept {spec.content_id}: {wrong}: {'provisioning again' if again else 'provisioning'}",
                        logging.WARNING if again else logging.INFO)
        kept.last_problem = wrong
        if have is not None:
            self.tear_down(client, have)
        return self._provisioning(spec, now)

    def _refresh(self, client: TapClient, spec: InterceptSpec, have: IapIntercept, now: datetime) -> None:
        """Move the mediation's Timeout on when half its lifetime is gone, never past the warrant's end."""
        kept = self.status.intercepts[spec.content_id]
        due = have.timeout is None or (have.timeout - now).total_seconds() < spec.lifetime / 2
        if due and (spec.until is None or have.timeout is None or have.timeout < spec.until):
            timeout = self._timeout(spec, now)
            client.refresh(spec.content_id, timeout)
            kept.refreshed += 1
            kept.timeout = timeout.isoformat(timespec="seconds")
            log.info("intercept %d: Timeout refreshed to %s", spec.content_id, kept.timeout)
        else:
            kept.timeout = have.timeout.isoformat(timespec="seconds")

    def _provision(self, client: TapClient, wanted: list[tuple[InterceptSpec, Provisioning]]) -> None:
        """Provision every intercept that needs it, PROVISION_WINDOW at a time
        (after an IAP restart that is all of them: the round trips overlap)."""
        results = client.provision_many([p for _, p in wanted], PROVISION_WINDOW, self.progress)
        refused = [spec for spec, _ in wanted
                   if results[spec.content_id] is not None and results[spec.content_id].status is not None]
        if refused:  # refused part-way: leave nothing half provisioned
            try:
                table = client.intercepts()
                for spec in refused:
                    if table.get(spec.content_id) is not None:
                        self.tear_down(client, table[spec.content_id])
            except TapClientError as error:
                log.warning("cannot clear what refused provisionings left: %s", error)
        for spec, provisioning in wanted:
            error = results[spec.content_id]
            if error is not None:
                if not self._failed(spec, error):
                    return
                continue
            kept = self.status.intercepts[spec.content_id]
            kept.state, kept.last_error = "active", ""
            kept.timeout = provisioning.timeout.isoformat(timespec="seconds")
            self._indexes[spec.content_id] = {f: i for i, f in enumerate(spec.filters, start=1)}
            kept.provisioned += 1
            kept.provisioned_at = time.time()
            self._event(f"intercept {spec.content_id}: provisioned over SNMPv3 ({1 + 2 * len(spec.filters)} SETs), "
                        f"copies to {spec.md}")

    @staticmethod
    def tear_down(client: TapClient, have: IapIntercept) -> None:
        """Remove what is left of an intercept, in the MIB's order."""
        client.remove(have.content_id, [i for i, s in sorted(have.streams.items()) if s.status],
                      [i for i, s in sorted(have.streams.items()) if s.filter_status], mediation=bool(have.status))

    def remove_all(self) -> None:
        """Tear down every intercept this MD keeps (best effort: the IAP may be gone)."""
        try:
            table = self._client().intercepts()
        except TapClientError as error:
            self._event(f"cannot tear down: IAP does not answer ({error})", logging.WARNING)
            return
        for spec in self.specs:
            have = table.get(spec.content_id)
            if have is None:
                continue
            try:
                self.tear_down(self._client(), have)
                self.status.intercepts[spec.content_id].state = "removed"
                self._event(f"intercept {spec.content_id}: torn down")
            except TapClientError as error:
                self._event(f"intercept {spec.content_id}: tear-down failed: {error}", logging.WARNING)

    # -- the thread -----------------------------------------------------------------

    def start(self, remove_on_exit: bool = False) -> None:
        self._thread = threading.Thread(target=self._run, args=(remove_on_exit,), name="md-keeper", daemon=True)
        self._thread.start()

    def _run(self, remove_on_exit: bool) -> None:
        next_audit = 0.0
        try:
            try:  # the IAP's tables first: a change that comes at once must find what is already there
                self.audit()
                next_audit = time.monotonic() + self.iap.audit_interval
            except Exception:
                log.exception("audit failed")
                self._drop_client()
            while not self._stop.is_set():
                self._wake.clear()
                try:
                    self.apply_pending()  # a target's session started or ended: at once
                    if time.monotonic() >= next_audit or self._audit_asked:
                        self._audit_asked = False
                        next_audit = time.monotonic() + self.iap.audit_interval
                        self.audit()
                except Exception:  # an unexpected answer must not end the keeping
                    log.exception("audit failed")
                    self._drop_client()
                self._wake.wait(max(0.0, next_audit - time.monotonic()))
            if remove_on_exit:
                self.remove_all()
        finally:
            self._drop_client()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def summary(self) -> dict:
        with self._lock:  # the IRI function's changes add and remove intercepts
            out = asdict(self.status)
        out["intercepts"] = {str(k): v for k, v in out["intercepts"].items()}
        return out
