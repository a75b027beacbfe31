"""The keeper's intercepts that come and go while it runs (issue 15).

Why apart from keeper.py: the keeper audits what the config wants; the IRI
function adds and removes taps derived from signalling at any moment
(want / unwant from its own thread). Such a change is made at once by the
keeper's thread, between audits, with no table walk first (a tap should be
live within milliseconds of the signalling that asks for it); a tap that
moves (a new address) gets its new streams on the same mediation row before
the old ones go, so nothing of the target goes untapped meanwhile. A tap
with an `until` (a warrant's end) never gets a Timeout past it and is torn
down when it comes. Mixed into Keeper, whose state it shares.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone

from mediation.config import InterceptSpec
from mediation.snmp_client import TapClient, TapClientError
from mediation.stream_filter import Filter
from mediation.tap_mib import IapIntercept, Provisioning, filter_varbinds, stream_varbinds

log = logging.getLogger("p4tap.md")


class InterceptChanges:
    """want / unwant / apply_pending and the warrant's end, for Keeper."""

    _lock: threading.Lock
    _pending: dict[int, InterceptSpec | None]
    _orphans: set[int]
    _indexes: dict[int, dict[Filter, int]]

    def want(self, spec: InterceptSpec) -> None:
        """Keep `spec` from now on (replacing one with its content ID): made at once by the keeper's thread."""
        with self._lock:
            self._pending[spec.content_id] = spec
        self._wake.set()

    def unwant(self, content_id: int) -> None:
        """Stop keeping `content_id` and tear it down at the IAP, at once."""
        with self._lock:
            self._pending[content_id] = None
        self._wake.set()

    def keep_from_start(self, specs: list[InterceptSpec]) -> None:
        """Before start(): intercepts wanted from the first audit on, as the config's are (the derived
        taps an MD restored after its restart, mediation/derived_state.py): one found at the IAP as wanted
        is kept as it is, not removed and provisioned again."""
        self._adopt({s.content_id: s for s in specs})

    def claim(self, content_ids: set[int]) -> None:
        """Content IDs only this MD provisions (its warrants' CCCIDs): the next audit tears down any of them
        the IAP holds and nobody here wants (a tap whose Stop came while the MD was down and whose state
        was lost, or one a crash left between the IAP's SET and the state's write)."""
        self._orphans |= set(content_ids)

    def apply_pending(self) -> None:
        """Make the wanted and unwanted changes: tear down the old streams, provision the new."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            client = self._client()
        except TapClientError as error:
            self._event(f"cannot change intercepts now ({error}); the next audit does", logging.WARNING)
            self._adopt(pending)
            return
        # provisioned here, or found at the IAP as wanted by an audit (its stream indexes known then)
        olds = {cid: (next((s for s in self.specs if s.content_id == cid), None),
                      getattr(self.status.intercepts.get(cid), "provisioned", 0) or cid in self._indexes)
                for cid in pending}
        self._adopt(pending)
        for content_id, spec in pending.items():
            old, was_provisioned = olds[content_id]
            try:
                if old is not None and was_provisioned and spec is not None and (old.md, old.dscp) == \
                        (spec.md, spec.dscp):
                    self._move(client, content_id, spec)
                    self._event(f"intercept {content_id}: moved for {spec.derived_from}")
                    continue
                if old is not None and was_provisioned:
                    self._orphans.add(content_id)  # until its rows are gone
                    indexes = self._indexes.pop(content_id, None)
                    client.remove(content_id, sorted(indexes.values()) if indexes else len(old.filters))
                    self._orphans.discard(content_id)
                if spec is None:
                    if old is not None:
                        if not was_provisioned:  # restored, but the IAP not read yet: the next audit removes it
                            self._orphans.add(content_id)
                        self._event(f"intercept {content_id}: removed ({old.derived_from or 'config'})")
                    continue
                provisioning = self._provisioning(spec, datetime.now(timezone.utc))
                client.provision(content_id, provisioning.md_address, provisioning.md_port, provisioning.timeout,
                                 list(spec.filters), spec.dscp)
                self._indexes[content_id] = {f: i for i, f in enumerate(spec.filters, start=1)}
            except TapClientError as error:
                if spec is not None and not self._failed(spec, error):
                    return  # the IAP went away: the next audit provisions what is wanted
                continue
            kept = self.status.intercepts[content_id]
            kept.state, kept.last_error, kept.provisioned = "active", "", kept.provisioned + 1
            kept.timeout = provisioning.timeout.isoformat(timespec="seconds")
            kept.provisioned_at = time.time()
            self._event(f"intercept {content_id}: provisioned for {spec.derived_from or 'the config'} "
                        f"({1 + 2 * len(spec.filters)} SETs)")

    def _move(self, client: TapClient, content_id: int, spec: InterceptSpec) -> None:
        """Make before break: the new filters' streams first, at fresh indexes of the same mediation row, then
        the old ones go; the target's traffic is tapped all along (a new address from an Interim)."""
        indexes = self._indexes.setdefault(content_id, {})
        fresh = max(indexes.values(), default=0) + 1
        for f in spec.filters:
            if f not in indexes:
                client.set(filter_varbinds(content_id, fresh, f), answer=False)
                client.set(stream_varbinds(content_id, fresh), answer=False)
                indexes[f], fresh = fresh, fresh + 1
        gone = {f: i for f, i in indexes.items() if f not in spec.filters}
        if gone:
            client.remove(content_id, sorted(gone.values()), mediation=False)
            for f in gone:
                del indexes[f]
        kept = self.status.intercepts[content_id]
        kept.state, kept.last_error, kept.provisioned_at = "active", "", time.time()

    def _adopt(self, changes: dict[int, InterceptSpec | None]) -> None:
        """Take changes into the wanted list and the status (the keeper's thread only)."""
        for content_id, spec in changes.items():
            self.specs = [s for s in self.specs if s.content_id != content_id] + ([spec] if spec else [])
            with self._lock:
                if spec is None:
                    self.status.intercepts.pop(content_id, None)
                else:
                    old = self.status.intercepts.get(content_id)
                    self.status.intercepts[content_id] = self.kept_for(spec)
                    if old is not None:  # what the IAP holds of it until the change is made
                        new = self.status.intercepts[content_id]
                        new.provisioned, new.timeout, new.provisioned_at = \
                            old.provisioned, old.timeout, old.provisioned_at

    @staticmethod
    def _timeout(spec: InterceptSpec, now: datetime) -> datetime:
        """Now plus the lifetime, never past the warrant's end."""
        timeout = now + timedelta(seconds=spec.lifetime)
        return min(timeout, spec.until) if spec.until is not None else timeout

    def _provisioning(self, spec: InterceptSpec, now: datetime) -> Provisioning:
        return Provisioning(spec.content_id, spec.md.host, spec.md.port, self._timeout(spec, now),
                            tuple(spec.filters), spec.dscp)

    def _expire(self, client: TapClient, table: dict[int, IapIntercept]) -> None:
        """Tear down what is no longer wanted but a failed removal left, and what
        outlived its warrant (the IAP's Timeout ends its copies anyway)."""
        for content_id in sorted(self._orphans):
            if content_id in table and all(s.content_id != content_id for s in self.specs):
                try:
                    self.tear_down(client, table[content_id])
                except TapClientError as error:
                    log.warning("intercept %d: tear-down failed: %s", content_id, error)
                    continue
            self._orphans.discard(content_id)
        now = datetime.now(timezone.utc)
        for spec in [s for s in self.specs if s.until is not None and s.until <= now]:
            self._adopt({spec.content_id: None})
            self._event(f"intercept {spec.content_id}: its warrant ended at {spec.until.isoformat()}: removed")
            if table.get(spec.content_id) is not None:
                try:
                    self.tear_down(client, table[spec.content_id])
                except TapClientError as error:
                    log.warning("intercept %d: tear-down failed: %s", spec.content_id, error)

