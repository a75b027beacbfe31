"""The lifetime timer: past its Timeout an intercept delivers nothing.

Two clocks end a tap, and this thread keeps both: the controller's, which
removes a mediation and its streams at its timeout (within a second) and
tells the `on_expired` listeners (the SNMP agent turns that into
ciscoTap2MediationTimedOut); and each switch's own lease (controller.clock),
which stops every copy at the lease end should the controller be gone, and
is renewed here while it is not. Kept apart from the controller
(controller.service) so that the rule "never more than a second late" is
read in one place; the removal itself is the controller's, handed in.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from controller.audit import AuditError
from controller.carry import ProvisionError
from controller.lifetime import ExpirySchedule
from controller.managed_switch import ManagedSwitch
from controller.model import Mediation
from controller.store import IntentStore, StoreError
from controller.switch import SwitchError

__all__ = ["ExpiryListener", "LifetimeTimer"]

log = logging.getLogger("p4tap.controller")

ExpiryListener = Callable[[Mediation], None]
Remove = Callable[..., bool]  # the controller's remove(content_id, actor, action=...)


class LifetimeTimer:
    """Expires intercepts at their timeout and renews switch leases, on one thread."""

    def __init__(self, store: IntentStore, switches: Mapping[str, ManagedSwitch], lock: threading.RLock,
                 clock: Callable[[], datetime], remove: Remove) -> None:
        self.store = store
        self.switches = switches
        self.lock = lock
        self.clock = clock
        self.remove = remove
        self.listeners: list[ExpiryListener] = []
        self.schedule = ExpirySchedule()  # follows the store: set where an intercept is stored or removed
        self.schedule.reset((m.content_id, m.timeout) for m, _, _ in store.all())
        self.wake = threading.Event()  # the next timeout may be sooner than the timer sleeps

    def expire_due(self) -> list[Mediation]:
        """Remove every intercept whose timeout has passed; tell the listeners."""
        now = self.clock()
        expired = []
        for content_id in self.schedule.due(now):
            intent = self.store.get(content_id)
            if intent is None or not intent[0].expired(now):
                self.schedule.set(content_id, intent[0].timeout if intent else None)  # out of step: follow the store
                continue
            mediation = intent[0]
            self.remove(content_id, "controller", action="expire")
            expired.append(mediation)
            for listener in self.listeners:
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

    def sooner_than_scheduled(self, timeouts: Iterable[datetime | None]) -> bool:
        """Whether any of these timeouts comes before the next one the timer waits for."""
        scheduled = self.schedule.next()
        return any(t is not None and (scheduled is None or t < scheduled) for t in timeouts)

    def _next_timeout(self) -> float | None:
        scheduled = self.schedule.next()
        return None if scheduled is None else max(0.0, (scheduled - self.clock()).total_seconds())

    def run(self, stop: threading.Event) -> None:
        """The timer thread's loop, until `stop` is set (and `wake` with it)."""
        while not stop.is_set():
            self.wake.clear()
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
            self.wake.wait(timeout=1.0 if wait is None else min(max(wait, 0.01), 1.0))
