"""The taps derived from signalling, kept on disk across a restart of the MD.

Why: the MD learns a target's session (RADIUS Start) or call (SIP INVITE)
once; the IAP keeps the derived intercept, but an MD that restarted with
the derived state in memory only knew nothing of it: the intercept was left
at the IAP unrefreshed, and a Stop or BYE seen after the restart removed
nothing (the copies went on to the agency until the IAP's Timeout: against
minimality), while a session that went on lost its tap at that Timeout until
its next Interim (against completeness). With `--remove-on-exit` a clean
stop tore it down and the new MD did not provision it again.

So every change of mediation/derived_taps.py's state (per CCCID: each part's
key, filters and why, and when signalling last changed it) and what each
protocol handler needs to end its parts later (`memory`: the SIP calls, with
the last time each was heard of, for the timeout when no BYE comes) is
written here before the keeper is asked to make it, whole, atomically
(a temporary file, fsync, rename, fsync of the directory) and owner-only (it
names intercepts, as the status file and the spool do). At start the MD
reads it before its keeper's first audit: the keeper then finds the derived
intercepts at the IAP as wanted and keeps them (nothing removed, nothing
added again), and the handlers can end them at the Stop or BYE.

Dropped at load: a tap whose warrant is no longer configured or has ended
(the lifetime invariant), and a part of a warrant no longer configured. A
file that cannot be read or makes no sense is said in one log line and the
MD starts without it; the keeper then removes from the IAP the warrants'
intercepts nobody wants (mediation/keeper.py `claim`).

    state = DerivedState(out_dir / "derived-taps.json")
    specs = state.restore(taps, warrants)     # before the keeper starts
    taps.on_change = state.write              # from now on, every change
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from controller.private_files import open_private, replace_private_json
from mediation.config import InterceptSpec
from mediation.derived_taps import DerivedTap, DerivedTaps, Warrant
from mediation.stream_filter import Filter

log = logging.getLogger("p4tap.md")
VERSION = 1
FILE_NAME = "derived-taps.json"


class StateError(ValueError):
    """The state file's content makes no sense (a bug, or damage): it is not used."""


def encode_filter(f: Filter) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(f).items()}


def decode_filter(raw: Any) -> Filter:
    if not isinstance(raw, dict):
        raise StateError(f"a filter is {type(raw).__name__}, not an object")
    try:
        return Filter(src=raw.get("src"), dst=raw.get("dst"), protocol=int(raw.get("protocol", -1)),
                      dst_ports=tuple(raw.get("dst_ports", (0, 65535))),
                      src_ports=tuple(raw.get("src_ports", (0, 65535))))
    except (TypeError, ValueError) as error:
        raise StateError(f"a filter: {error}") from None


def encode(taps: Mapping[int, DerivedTap], memory: Mapping[str, Any]) -> dict[str, Any]:
    return {"version": VERSION,
            "taps": {str(cccid): {"signalled_at": tap.signalled_at,
                                  "parts": {key: {"why": tap.why[key], "filters": [encode_filter(f) for f in filters]}
                                            for key, filters in tap.parts.items()}}
                     for cccid, tap in sorted(taps.items())},
            "memory": dict(memory)}


def decode(data: Any, warrants: Mapping[int, Warrant], now: datetime | None = None
           ) -> tuple[dict[int, DerivedTap], dict[str, Any], list[tuple[int, str]]]:
    """(taps, memory, what was dropped and why) of a state file's content; raises StateError if it makes no sense."""
    now = now or datetime.now(timezone.utc)
    if not isinstance(data, dict) or data.get("version") != VERSION:
        found = data.get("version") if isinstance(data, dict) else "?"
        raise StateError(f"not a version {VERSION} state (version {found})")
    raw_taps, memory = data.get("taps", {}), data.get("memory", {})
    if not isinstance(raw_taps, dict) or not isinstance(memory, dict):
        raise StateError("taps and memory must be objects")
    taps: dict[int, DerivedTap] = {}
    dropped: list[tuple[int, str]] = []
    for name, raw in raw_taps.items():
        try:
            cccid = int(name)
            parts = {str(key): (str(part["why"]), tuple(decode_filter(f) for f in part["filters"]))
                     for key, part in raw["parts"].items()}
            signalled_at = raw.get("signalled_at")
            signalled_at = None if signalled_at is None else float(signalled_at)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise StateError(f"tap {name!r}: {error!r}") from None
        warrant = warrants.get(cccid)
        if warrant is None:
            dropped.append((cccid, "its warrant is no longer configured"))
            continue
        if warrant.until is not None and warrant.until <= now:
            dropped.append((cccid, f"its warrant ended at {warrant.until.isoformat()}"))
            continue
        if not parts:
            continue
        taps[cccid] = DerivedTap(cccid, {k: f for k, (_, f) in parts.items()}, {k: w for k, (w, _) in parts.items()},
                                 signalled_at)
    return taps, memory, dropped


class DerivedState:
    """The state file: read once at start, replaced at every change."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.writes = 0
        self.failed = 0  # writes that failed (logged once per failure streak)
        self.memory: dict[str, Any] = {}  # what load() found for the protocol handlers
        self.dropped: set[int] = set()  # CCCIDs of taps dropped at load: the keeper removes them at the IAP

    def load(self) -> Any | None:
        """The file's JSON, or None (absent; or unreadable, said in one line)."""
        if not self.path.exists():  # the first start (open_private would create it)
            return None
        try:
            fd = open_private(self.path, os.O_RDONLY, OSError, "derived taps state ")
        except OSError as error:
            log.error("derived taps state %s cannot be read (%s): starting without it", self.path, error)
            return None
        try:
            with os.fdopen(fd, "rb") as f:
                return json.loads(f.read())
        except (OSError, ValueError) as error:
            log.error("derived taps state %s is not valid JSON (%s): starting without it; the keeper removes "
                      "the warrants' intercepts nobody wants", self.path, error)
            return None

    def restore(self, taps: DerivedTaps, warrants: Mapping[int, Warrant]) -> list[InterceptSpec]:
        """Load the file into `taps` (not asking its keeper for anything) and
        return the intercepts it derives, for the keeper to keep from its first
        audit. The cleaned state is written back at once."""
        data = self.load()
        found: dict[int, DerivedTap] = {}
        if data is not None:
            try:
                found, self.memory, dropped = decode(data, warrants)
            except StateError as error:
                log.error("derived taps state %s makes no sense (%s): starting without it", self.path, error)
                found, self.memory, dropped = {}, {}, []
            for cccid, why in dropped:
                log.info("derived taps state: dropped the tap of %d: %s", cccid, why)
                self.dropped.add(cccid)
        specs = taps.restore(found, warrants)
        if found:
            log.info("derived taps state: %d tap(s) restored from %s: %s", len(specs), self.path,
                     "; ".join(f"{s.content_id} ({s.derived_from})" for s in specs))
        taps.memory.update(self.memory)
        if data is not None or self.path.exists():  # cleaned, or a damaged file replaced
            self.write(taps.taps, taps.memory)
        return specs

    def write(self, taps: Mapping[int, DerivedTap], memory: Mapping[str, Any]) -> None:
        """Replace the file with this state: temp file, fsync, rename, fsync
        the directory. A failure is logged (once until a write succeeds) and
        the MD goes on: the taps are in the keeper's hands regardless; only a
        restart would not know them (the keeper then removes them)."""
        try:
            replace_private_json(self.path, encode(taps, memory), "derived taps state ", durable=True,
                                 separators=(",", ":"))
        except OSError as error:
            if not self.failed:
                log.error("derived taps state %s cannot be written (%s): a restart now would not know the "
                          "current taps", self.path, error)
            self.failed += 1
            return
        if self.failed:
            log.info("derived taps state %s written again after %d failed writes", self.path, self.failed)
        self.failed = 0
        self.writes += 1
