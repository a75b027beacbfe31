"""Rows to intercepts and back: what the controller must hold for the MIB's
rows, carried out through its API, and the rows for what it holds.

An active mediation row with at least one active stream row whose filter row
is active is one intercept: `controller.provision(mediation, streams)` (every
such stream, with InterceptEnable as `enabled`). Changes become `provision`
(replace), `update_timeout` or `remove`. An active mediation without such a
stream has nothing on any switch; the agent keeps its row and its lifetime
(see agent.py) until a stream arrives.

The controller's intent is the truth the tables show: rows of intercepts it
no longer holds (expired, or removed another way) disappear, and intercepts
it holds that the rows do not show (after an agent restart, or provisioned
another way) appear as active rows.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from controller.model import InterceptError, Mediation, Stream, StreamKey
from controller.service import Controller, ProvisionError, StreamCounters
from controller.switch import SwitchError
from mib_bridge.mib import Staging, TapTables
from mib_bridge.rowstatus import RowStatus
from mib_bridge.syntax import SetError

log = logging.getLogger("p4tap.snmp")

COUNTER_TTL = 1.0  # seconds a counter reading serves repeated reads (a walk)


@dataclass(frozen=True)
class Intercept:
    mediation: Mediation
    streams: tuple[Stream, ...]
    switches: tuple[str, ...] | None = None

    def same(self, other: Intercept | None) -> bool:
        return other is not None and (self.mediation, self.streams) == (other.mediation, other.streams)

    @property
    def enabled(self) -> set[StreamKey]:
        return {s.key for s in self.streams if s.enabled}


class Bridge:
    def __init__(self, controller: Controller, tables: TapTables, switches: Sequence[str] | None = None) -> None:
        self.controller = controller
        self.tables = tables
        self.switches = tuple(switches) if switches else None
        self.installed: dict[int, Intercept] = {}
        self._seen_seq = -1
        self._counters: dict[int, tuple[float, dict[StreamKey, StreamCounters]]] = {}
        self._last_counts: dict[StreamKey, StreamCounters] = {}
        self._reported: dict[int, dict[str, str]] = {}  # refusals already shown in the debug table
        self.new_refusals: list[tuple[int, str, str]] = []  # (content id, switch, reason) not yet shown

    # -- rows -> intercepts -------------------------------------------------------

    def desired(self, staging: Staging, content_id: int) -> Intercept | None:
        """The intercept the rows (as `staging` would leave them) stand for."""
        t = self.tables
        mediation_row = staging.row(t.mediations, (content_id,))
        if mediation_row is None or mediation_row.status != RowStatus.ACTIVE:
            return None
        streams = []
        for index in staging.keys_under(t.streams, (content_id,)):
            stream_row, filter_row = staging.row(t.streams, index), staging.row(t.ip_streams, index)
            if stream_row.status == RowStatus.ACTIVE and filter_row is not None and filter_row.status == RowStatus.ACTIVE:
                streams.append(Stream(content_id, index[1], t.ip_streams.model(filter_row), t.streams.enabled(stream_row)))
        if not streams:
            return None
        known = self.installed.get(content_id)
        return Intercept(t.mediations.model(content_id, mediation_row), tuple(streams),
                         known.switches if known is not None else self.switches)

    def apply(self, changes: dict[int, Intercept | None], actor: str) -> None:
        """Carry changed intercepts to the controller, all or none of them.

        Raises SetError: inconsistentValue when the controller refuses an
        intercept, commitFailed when a switch failed (and everything was
        undone), undoFailed when undoing failed too. `error.content_id` names
        the intercept."""
        if not changes:
            return
        with self.controller.lock:  # no other change to the intent meanwhile: the audit records are ours
            unseen = self.controller.audit.seq != self._seen_seq
            self._apply(changes, actor)
            if not unseen:
                self._seen_seq = self.controller.audit.seq

    def _apply(self, changes: dict[int, Intercept | None], actor: str) -> None:
        done: list[tuple[int, Intercept | None, Intercept | None]] = []
        for content_id, want in changes.items():
            have = self.installed.get(content_id)
            try:
                self._carry(content_id, have, want, actor)
            except (InterceptError, ProvisionError, SwitchError) as error:
                status = "inconsistentValue" if isinstance(error, InterceptError) else "commitFailed"
                failure = SetError(status, f"intercept {content_id}: {error}")
                for undo_id, undo_have, undo_want in reversed(done):
                    try:
                        self._carry(undo_id, undo_want, undo_have, f"{actor} (undo)")
                    except (InterceptError, ProvisionError, SwitchError) as undo_error:
                        log.error("undo of intercept %d failed: %s", undo_id, undo_error)
                        failure = SetError("undoFailed", f"intercept {content_id}: {error}; "
                                                         f"undo of intercept {undo_id} failed: {undo_error}")
                failure.content_id = content_id
                raise failure from None
            done.append((content_id, have, want))
        for content_id, _, want in done:
            if want is None:
                self.installed.pop(content_id, None)
            else:
                self.installed[content_id] = want

    def _carry(self, content_id: int, have: Intercept | None, want: Intercept | None, actor: str) -> None:
        if want is None:
            if have is not None:
                self.controller.remove(content_id, actor)
            return
        if have is not None and have.streams == want.streams and \
                dataclasses.replace(have.mediation, timeout=want.mediation.timeout) == want.mediation:
            self.controller.update_timeout(content_id, want.mediation.timeout, actor)
        else:
            self.controller.provision(want.mediation, list(want.streams), actor, want.switches)

    # -- intercepts -> rows -------------------------------------------------------

    def sync(self, force: bool = False) -> list[Mediation]:
        """Make the rows show the controller's intent, if anything may have
        changed since the last look (every change is audited, so the audit
        log's sequence number says so). Returns the mediations that went
        away without a SET of ours: their mediation device must be told."""
        seq = self.controller.audit.seq
        if seq == self._seen_seq and not force:
            return []
        intents = {m.content_id: Intercept(m, tuple(sorted(s, key=lambda x: x.index)), tuple(sw))
                   for m, s, sw in self.controller.intercepts()}
        self._seen_seq = seq
        refusals = self.controller.refusals()  # every change of them is audited, so seq tells
        self.new_refusals += [(c, switch, reason) for c, by_switch in sorted(refusals.items())
                              for switch, reason in sorted(by_switch.items())
                              if self._reported.get(c, {}).get(switch) != reason]
        self._reported = refusals
        gone = []
        for content_id in set(self.installed) - set(intents):
            gone.append(self.installed.pop(content_id).mediation)
            self.drop(content_id)
        for content_id, intercept in intents.items():
            if not intercept.same(self.installed.get(content_id)):
                self._show(intercept)
            self.installed[content_id] = intercept
        return gone

    def _show(self, intercept: Intercept) -> None:
        """Rows for an intercept the controller holds; active rows it does not
        hold go, rows not (yet) active are kept."""
        t = self.tables
        content_id = intercept.mediation.content_id
        wanted = {s.index: s for s in intercept.streams}
        for table in (t.streams, t.ip_streams):
            for index in table.keys_under((content_id,)):
                if index[1] not in wanted and table.rows[index].status == RowStatus.ACTIVE:
                    table.remove(index)
        t.mediations.put((content_id,), t.mediations.row_of(intercept.mediation))
        for index, stream in wanted.items():
            t.streams.put((content_id, index), t.streams.row_of(stream.enabled))
            t.ip_streams.put((content_id, index), t.ip_streams.row_of(stream.filter))

    def expired(self, mediation: Mediation) -> bool:
        """The controller removed `mediation` at its timeout: drop its rows.
        False if the rows stand for something else by now (re-provisioned)."""
        have = self.installed.get(mediation.content_id)
        if have is None or have.mediation != mediation:
            return False
        del self.installed[mediation.content_id]
        self.drop(mediation.content_id)
        return True

    def drop(self, content_id: int) -> None:
        """Forget a mediation: its rows and its streams' counter readings."""
        self.tables.drop(content_id)
        self._counters.pop(content_id, None)
        for key in [k for k in self._last_counts if k.content_id == content_id]:
            del self._last_counts[key]

    def lapsed(self, now: datetime) -> list[int]:
        """Active mediations with nothing on the switches whose Timeout has
        passed: the agent itself ends them (the controller never saw them)."""
        out = []
        for (content_id,), row in self.tables.mediations.iter_rows():
            if row.status == RowStatus.ACTIVE and content_id not in self.installed:
                timeout = self.tables.mediations.timeout(row)
                if timeout is not None and timeout <= now:
                    out.append(content_id)
        return out

    # -- counters -------------------------------------------------------------------

    def counters(self, key: StreamKey) -> StreamCounters:
        """What the switch counted for a stream (read at most once per COUNTER_TTL).
        A stream not on the switch keeps its last reading: counters never run backwards."""
        now = time.monotonic()
        cached = self._counters.get(key.content_id)
        if cached is None or now - cached[0] > COUNTER_TTL:
            readings: dict[StreamKey, StreamCounters] = {}
            if key.content_id in self.installed:
                try:
                    readings = self.controller.counters(key.content_id)
                except (SwitchError, OSError) as error:
                    log.warning("counters of intercept %d unavailable: %s", key.content_id, error)
                    readings = {k: dataclasses.replace(c, held=False) for k, c in self._last_counts.items()
                                if k.content_id == key.content_id}
            self._last_counts.update(readings)
            cached = self._counters[key.content_id] = (now, readings)
        return cached[1].get(key) or self._last_counts.get(key) or StreamCounters(held=False)

    def held(self, key: StreamKey) -> bool:
        """Whether the switches really hold this stream's entries, as last read."""
        return self.counters(key).held

    def forget_counters(self, keys: Sequence[StreamKey]) -> None:
        """Streams whose rows were destroyed: their next life starts from fresh readings."""
        for key in keys:
            self._last_counts.pop(key, None)
            self._counters.pop(key.content_id, None)
