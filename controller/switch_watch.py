"""The switch watch: outages noticed, audited, and ended by a reconcile.

A switch's stream may go at any time (the switch died, restarts, the link is
down, another controller became primary); meanwhile its intercepts deliver
nothing, which is an event for the LEA, so each outage is logged, counted and
audited when noticed and again when it ends. This thread reconnects (with
backoff, per switch, so one switch that is down does not hold up the others)
and reconciles, and reconciles too any switch whose contents may differ from
its plan (`stale`). Kept apart from the controller (controller.service),
which hands in its lock and its reconcile; `on_switch_state` listeners (the
SNMP agent) hear of each outage's start and end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from controller.audit import AuditLog
from controller.managed_switch import ManagedSwitch
from controller.reconcile import Diff
from controller.refusals import REASON_MAX
from controller.store import IntentStore
from controller.switch import SwitchError

__all__ = ["SwitchStateListener", "SwitchWatch"]

log = logging.getLogger("p4tap.controller")

SwitchStateListener = Callable[[str, bool], None]  # (switch name, up): after an outage begins / once reconciled


class SwitchWatch:
    """Each switch's outages, and the loop that ends them."""

    def __init__(self, switches: Mapping[str, ManagedSwitch], store: IntentStore, audit: AuditLog,
                 lock: threading.RLock, reconcile: Callable[[str], Diff]) -> None:
        self.switches = switches
        self.store = store
        self.audit = audit
        self.lock = lock
        self.reconcile = reconcile
        self.listeners: list[SwitchStateListener] = []
        #: Outages of each switch since start: its stream lost until it was reconnected and reconciled.
        self.outages: dict[str, int] = {name: 0 for name in switches}
        self._down_since: dict[str, float] = {}  # switch -> time.monotonic() its outage was noticed
        self.wake = threading.Event()  # a stream lost: the watch loop looks at once, not at its next tick

    def outage_began(self, switch: ManagedSwitch) -> None:
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
            self._tell(switch.name, False)

    def _outage_ended(self, switch: ManagedSwitch, d: Diff) -> None:
        """Connected again and reconciled: the switch holds the intent again."""
        seconds = time.monotonic() - self._down_since.pop(switch.name)
        number = self.outages[switch.name]
        log.warning("%s: switch back after %.1f s (outage %d); reconciled: %s", switch.name, seconds, number,
                    d.summary())
        self.audit.append("controller", "switch-up", switch=switch.name, outage=number, seconds=round(seconds, 3),
                          inserted=len(d.inserts), deleted=len(d.deletes))
        self._tell(switch.name, True)

    def _tell(self, name: str, up: bool) -> None:
        for listener in self.listeners:
            try:
                listener(name, up)
            except Exception:  # a listener's fault must not stop the watch
                log.exception("switch-state listener failed for %s", name)

    def connect(self, switch: ManagedSwitch, timeout: float) -> None:
        """Connect, and have every change of the stream wake the watch loop:
        after a switch restart each second until reconcile is content lost."""
        try:
            switch.connect(timeout=timeout)
        finally:
            if switch.conn is not None:
                switch.conn.on_state_change(lambda conn, state: self.wake.set())

    def run(self, stop: threading.Event) -> None:
        """Reconnect (with backoff) to switches that dropped, then reconcile;
        reconcile switches whose contents may differ from their plan (stale).
        Runs until `stop` is set (and `wake` with it)."""
        backoff: dict[str, float] = {}
        next_try: dict[str, float] = {}  # per switch: one that is down waits without holding up the others
        while not stop.is_set():
            self.wake.wait(0.25)
            self.wake.clear()
            for switch in self.switches.values():
                up = (switch.conn is not None and switch.conn.connected and switch.conn.is_primary
                      and switch.builder.clock is not None)  # without its clock nothing is written to it
                if up and not switch.stale:
                    backoff.pop(switch.name, None)
                    continue
                if not up and switch.name not in self._down_since:
                    self.outage_began(switch)
                if time.monotonic() < next_try.get(switch.name, 0.0):
                    continue
                delay = backoff.get(switch.name, 0.25)
                try:
                    with self.lock:
                        if not up:
                            self.connect(switch, 2.0)
                        d = self.reconcile(switch.name)
                        if switch.name in self._down_since:
                            self._outage_ended(switch, d)
                    log.info("%s: %s and reconciled", switch.name, "in step again" if up else "connection restored")
                    backoff.pop(switch.name, None)
                except (SwitchError, OSError) as error:
                    log.warning("%s: unavailable (%s); retrying in %.1fs", switch.name, error, delay)
                    backoff[switch.name] = min(delay * 2, 10.0)
                    next_try[switch.name] = time.monotonic() + delay
