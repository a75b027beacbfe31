"""What the store holds: intercepts, the switches' refusals, and the id allocators."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence

from controller.model import InterceptError, Mediation, Stream
from controller.plan_ids import IdAllocator, IdChanges, Replica

from .database import Database
from .rows import (
    _IDS_PER_QUERY,
    _INSERT_MEDIATION,
    _INSERT_STREAM,
    Intent,
    _mediation_of,
    _mediation_row,
    _placeholders,
    _session_text,
    _stream_of,
    _stream_row,
    _write_id_changes,
)
from .schema import StoreError


class IntentStore(Database):
    """Intercepts (mediation, streams, switches) and id allocators, in SQLite.

    Safe to share between threads: one connection, serialized by a lock (the
    controller's timers and its request handlers all use the same store).
    """

    # -- intercepts -----------------------------------------------------------

    def put_intercept(self, mediation: Mediation, streams: Sequence[Stream],
                      switches: Sequence[str] = ("default",)) -> None:
        """Replace one intercept (its mediation, all its streams, its switches).

        One transaction: after a crash the store holds either the old
        intercept or the new one, never a mix. Streams not in `streams` are
        gone afterwards, as a replaced intercept must not keep stale filters.
        """
        self.put_intercepts([(mediation, streams, switches)])

    def put_intercepts(self, intercepts: Iterable[tuple[Mediation, Sequence[Stream], Sequence[str]]]) -> None:
        """Replace several intercepts in ONE transaction (bulk provisioning).

        Also much faster than one `put_intercept` each: a commit costs an
        fsync, and this is one commit for the whole batch.
        """
        self.change(put=intercepts)

    def change(self, put: Iterable[tuple[Mediation, Sequence[Stream], Sequence[str]]] = (),
               remove: Iterable[int] = (), ids: Mapping[str, IdChanges] | None = None,
               intent_seq: int | None = None) -> None:
        """Replace intercepts, remove others and record switches' id changes, in
        ONE transaction: the controller's intent and the ids that carry it out
        never disagree on disk, and a provisioning step costs one fsync.

        Every intercept put or removed is marked with `intent_seq`, the seq of
        the audit log's write-ahead record of the change, in the same
        transaction: the audit log can then be checked against the store
        (controller.intent_trail). None marks it as changed with no audit
        record (a tool writing the store directly), which that check reports."""
        rows = [self._rows(m, s, sw) for m, s, sw in put]
        seen: set[int] = set()
        for (content_id, *_rest) in rows:
            if content_id in seen:
                raise InterceptError(f"intercept {content_id} given twice in one write")
            seen.add(content_id)
        removed = list(remove)

        def work(db: sqlite3.Connection) -> None:
            db.executemany("DELETE FROM mediations WHERE content_id = ?", [(c,) for c in removed])
            for content_id, mediation_row, stream_rows, placement_rows in rows:
                # The cascade removes the old streams and placements with it.
                db.execute("DELETE FROM mediations WHERE content_id = ?", (content_id,))
                db.execute(_INSERT_MEDIATION, mediation_row)
                db.executemany(_INSERT_STREAM, stream_rows)
                db.executemany("INSERT INTO placements (content_id, switch, position) VALUES (?, ?, ?)",
                               placement_rows)
            marks = [(c, intent_seq, 1) for c, *_ in rows] + [(c, intent_seq, 0) for c in removed]
            db.executemany("INSERT OR REPLACE INTO intent_marks (content_id, intent_seq, present) VALUES (?, ?, ?)",
                           marks)
            for switch, changes in (ids or {}).items():
                _write_id_changes(db, switch, changes)

        self._write(work)

    @staticmethod
    def _rows(mediation: Mediation, streams: Sequence[Stream], switches: Sequence[str]
              ) -> tuple[int, tuple[object, ...], list[tuple[object, ...]], list[tuple[object, ...]]]:
        """Check an intercept is self-consistent and turn it into rows, before any write."""
        if not isinstance(mediation, Mediation):
            raise InterceptError(f"expected a Mediation, got {mediation!r}")
        if isinstance(switches, str):
            raise InterceptError(f"switches must be a sequence of names, got the string {switches!r}")
        content_id = mediation.content_id
        indices: set[int] = set()
        for stream in streams:
            if not isinstance(stream, Stream):
                raise InterceptError(f"expected a Stream, got {stream!r}")
            if stream.content_id != content_id:
                raise InterceptError(f"stream {stream.key} does not belong to mediation {content_id}")
            if stream.index in indices:
                raise InterceptError(f"stream {stream.key} given twice")
            indices.add(stream.index)
        names = list(dict.fromkeys(switches))
        if not names:
            raise InterceptError(f"intercept {content_id} is placed on no switch")
        for name in names:
            if not isinstance(name, str) or not name:
                raise InterceptError(f"intercept {content_id}: bad switch name {name!r}")
        return (
            content_id,
            _mediation_row(mediation),
            [_stream_row(s) for s in streams],
            [(content_id, name, position) for position, name in enumerate(names)],
        )

    def remove_intercept(self, content_id: int) -> bool:
        """Forget an intercept (streams and placements with it); False if there was none."""
        def work(db: sqlite3.Connection) -> bool:
            gone = db.execute("DELETE FROM mediations WHERE content_id = ?", (content_id,)).rowcount > 0
            if gone:  # unaudited, as every change made through this method
                db.execute("INSERT OR REPLACE INTO intent_marks (content_id, intent_seq, present) VALUES (?, NULL, 0)",
                           (content_id,))
            return gone

        return self._write(work)

    def get(self, content_id: int) -> Intent | None:
        """One intercept as (mediation, streams by index, switches in given order)."""
        found = self._read(lambda db: self._load(db, [content_id]))
        return found[0] if found else None

    def get_many(self, content_ids: Iterable[int]) -> dict[int, Intent]:
        """The intercepts among these content ids, from one snapshot (absent ones left out)."""
        wanted = sorted(set(content_ids))

        def work(db: sqlite3.Connection) -> dict[int, Intent]:
            found: dict[int, Intent] = {}
            for start in range(0, len(wanted), _IDS_PER_QUERY):
                found.update((i[0].content_id, i) for i in self._load(db, wanted[start:start + _IDS_PER_QUERY]))
            return found

        return self._read(work)

    def all(self) -> list[Intent]:
        """Every intercept, ordered by content id, read from one consistent snapshot."""
        def work(db: sqlite3.Connection) -> list[Intent]:
            version = db.execute("PRAGMA data_version").fetchone()[0]
            if self._cache is None or version != self._cache_version:
                self._cache, self._cache_version = self._load(db, None), version
            # Fresh lists, so a caller's edits cannot change the cache.
            return [(m, list(streams), list(switches)) for m, streams, switches in self._cache]

        return self._read(work)

    def content_ids(self, switch: str) -> list[int]:
        """The content ids of the intercepts placed on `switch`, in order: what
        an outage record names, without decoding every intercept (which, when
        the store changed since the last `all`, costs ~0.3 s at 10,000)."""
        def work(db: sqlite3.Connection) -> list[int]:
            return [r[0] for r in db.execute(
                "SELECT content_id FROM placements WHERE switch = ? ORDER BY content_id", (switch,))]

        return self._read(work)

    def _load(self, db: sqlite3.Connection, content_ids: Sequence[int] | None) -> list[Intent]:
        """These intercepts (None: all of them)."""
        if content_ids is None:
            where, args = "", ()
        else:
            where, args = f"WHERE content_id IN ({_placeholders(len(content_ids))})", tuple(content_ids)
        mediations = db.execute(f"SELECT * FROM mediations {where} ORDER BY content_id", args).fetchall()
        stream_rows = db.execute(f"SELECT * FROM streams {where} ORDER BY content_id, stream_index", args).fetchall()
        placement_rows = db.execute(
            f"SELECT content_id, switch FROM placements {where} ORDER BY content_id, position", args
        ).fetchall()
        streams: dict[int, list[Stream]] = {}
        switches: dict[int, list[str]] = {}
        try:
            for row in stream_rows:
                streams.setdefault(row["content_id"], []).append(_stream_of(row))
            for row in placement_rows:
                switches.setdefault(row["content_id"], []).append(row["switch"])
            return [(_mediation_of(row), streams.get(row["content_id"], []), switches.get(row["content_id"], []))
                    for row in mediations]
        except (ValueError, TypeError) as error:
            # InterceptError is a ValueError: a row the model refuses was damaged
            # outside this module; refusing it beats reconciling a wrong tap.
            raise StoreError(f"intent store {self.path} holds an invalid intercept row: {error}") from error

    # -- refusals -------------------------------------------------------------

    def refusals(self) -> dict[int, dict[str, str]]:
        """Intercepts a switch refused (content id -> switch -> the switch's reason).

        A refused intercept stays intent (it was asked for and is not removed
        behind the requester's back) but is not planned on that switch until a
        reconcile finds the switch accepts it. Removing the intercept removes
        its refusals with it."""
        def work(db: sqlite3.Connection) -> dict[int, dict[str, str]]:
            out: dict[int, dict[str, str]] = {}
            for r in db.execute("SELECT content_id, switch, reason FROM refusals ORDER BY content_id, switch"):
                out.setdefault(r["content_id"], {})[r["switch"]] = r["reason"]
            return out

        return self._read(work)

    def set_refusals(self, switch: str, refused: Mapping[int, str]) -> None:
        """Replace `switch`'s refusals by `refused` (content id -> reason), in one transaction."""
        rows = [(content_id, switch, reason, content_id) for content_id, reason in refused.items()]

        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM refusals WHERE switch = ?", (switch,))
            db.executemany("INSERT INTO refusals (content_id, switch, reason) SELECT ?, ?, ? "
                           "WHERE EXISTS (SELECT 1 FROM mediations WHERE content_id = ?)", rows)

        self._write(work, intents=False)

    # -- id allocators --------------------------------------------------------

    def save_ids(self, switch: str, ids: IdAllocator) -> None:
        """Replace `switch`'s allocator state, so ids survive a restart unchanged."""
        replicas = [(switch, content_id, rid) for content_id, rid in ids.replica_ids.items()]
        sessions = [(switch, _session_text(key), session_id) for key, session_id in ids.session_ids.items()]

        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM replica_ids WHERE switch = ?", (switch,))
            db.execute("DELETE FROM session_ids WHERE switch = ?", (switch,))
            db.executemany("INSERT INTO replica_ids (switch, content_id, rid) VALUES (?, ?, ?)", replicas)
            db.executemany("INSERT INTO session_ids (switch, replicas, session_id) VALUES (?, ?, ?)", sessions)

        self._write(work, intents=False)

    def load_ids(self, switch: str) -> IdAllocator:
        """`switch`'s allocator as last saved; empty for a switch never saved."""
        def work(db: sqlite3.Connection) -> IdAllocator:
            replica_ids = {
                r["content_id"]: r["rid"]
                for r in db.execute("SELECT content_id, rid FROM replica_ids WHERE switch = ?", (switch,))
            }
            session_ids: dict[frozenset[Replica], int] = {}
            for r in db.execute("SELECT replicas, session_id FROM session_ids WHERE switch = ?", (switch,)):
                try:
                    key = frozenset(Replica(int(port), int(rid)) for port, rid in json.loads(r["replicas"]))
                except (ValueError, TypeError) as error:
                    raise StoreError(f"intent store {self.path}: damaged session key {r['replicas']!r}") from error
                session_ids[key] = r["session_id"]
            return IdAllocator(replica_ids, session_ids)

        return self._read(work)
