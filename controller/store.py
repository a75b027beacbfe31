"""The controller's durable intent: which intercepts exist, and where.

RFC 3924 requires that a tap, once provisioned, stays in force until it is
removed or times out, and that nobody learns of it who should not. The
controller therefore writes an intercept here *before* it touches any switch,
and after a restart reads everything back and reconciles the switches with
it. That makes three demands on this module:

* All or nothing. A mediation without its streams (or with half of them)
  would, after a crash, be reconciled onto the switches as a different tap
  from the one that was asked for. Every write is one SQLite transaction, and
  SQLite's write-ahead log makes a transaction either wholly visible after a
  crash or not at all.
* Exact. What is read back must equal (``==``) what was written, field for
  field, including the MIB's negative wildcards and microsecond timeouts,
  or a restart would silently change taps. Rows are decoded through the
  model's constructors, so a damaged row is refused, never half trusted.
* Secret. The file lists targets' addresses and where their traffic goes.
  It is created owner-only (0600) before SQLite opens it, and an existing
  file that group or others may read is refused rather than used.

The id allocators of each switch are kept here too, so that replica and clone
session ids (and so the entries on the switches) stay stable over a restart.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from controller.model import (
    InetAddressType,
    InterceptError,
    IpFilter,
    Mediation,
    Stream,
    Transport,
)
from controller.plan import IdAllocator, IdChanges, Replica
from controller.private_files import fsync_dir, open_private

Intent = tuple[Mediation, list[Stream], list[str]]
T = TypeVar("T")

#: Bump when the tables change, and teach `_migrate` the way up. A store with
#: a higher version was written by a newer p4tap whose rows this one might
#: misread, so it is refused rather than guessed at.
SCHEMA_VERSION = 2

# Columns per model field. Kept explicit, not derived, so the on-disk format
# only changes on purpose; tests/test_store.py fails if the model gains a field
# that is not listed here (it would otherwise be dropped on every restart).
MEDIATION_COLUMNS = (
    "content_id", "dest_address", "dest_port", "src_interface", "dscp", "transport", "timeout",
    "notification_enable", "active",
)
STREAM_COLUMNS = ("content_id", "stream_index", "enabled")
FILTER_COLUMNS = (
    "addr_type", "dst_address", "dst_length", "src_address", "src_length", "interface", "tos_byte", "tos_mask",
    "flow_id", "protocol", "dst_port_min", "dst_port_max", "src_port_min", "src_port_max", "vrf",
)

_SCHEMA = """
CREATE TABLE schema_version (
    version INTEGER NOT NULL
);
CREATE TABLE mediations (
    content_id          INTEGER PRIMARY KEY,
    dest_address        TEXT    NOT NULL,
    dest_port           INTEGER NOT NULL,
    src_interface       INTEGER NOT NULL,
    dscp                INTEGER NOT NULL,
    transport           INTEGER NOT NULL,
    timeout             TEXT,              -- ISO 8601 with offset and microseconds, NULL: none given
    notification_enable INTEGER NOT NULL CHECK (notification_enable IN (0, 1)),
    active              INTEGER NOT NULL CHECK (active IN (0, 1))
);
CREATE TABLE streams (
    content_id   INTEGER NOT NULL REFERENCES mediations(content_id) ON DELETE CASCADE,
    stream_index INTEGER NOT NULL,
    enabled      INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    addr_type    INTEGER NOT NULL,
    dst_address  TEXT,
    dst_length   INTEGER NOT NULL,
    src_address  TEXT,
    src_length   INTEGER NOT NULL,
    interface    INTEGER NOT NULL,
    tos_byte     INTEGER NOT NULL,
    tos_mask     INTEGER NOT NULL,
    flow_id      INTEGER NOT NULL,
    protocol     INTEGER NOT NULL,
    dst_port_min INTEGER NOT NULL,
    dst_port_max INTEGER NOT NULL,
    src_port_min INTEGER NOT NULL,
    src_port_max INTEGER NOT NULL,
    vrf          TEXT    NOT NULL,
    PRIMARY KEY (content_id, stream_index)
);
CREATE TABLE placements (
    content_id INTEGER NOT NULL REFERENCES mediations(content_id) ON DELETE CASCADE,
    switch     TEXT    NOT NULL,
    position   INTEGER NOT NULL,           -- keeps the order the switches were given in
    PRIMARY KEY (content_id, switch)
);
CREATE TABLE replica_ids (
    switch     TEXT    NOT NULL,
    content_id INTEGER NOT NULL,
    rid        INTEGER NOT NULL,
    PRIMARY KEY (switch, content_id),
    UNIQUE (switch, rid)
);
CREATE TABLE refusals (
    content_id INTEGER NOT NULL REFERENCES mediations(content_id) ON DELETE CASCADE,
    switch     TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    PRIMARY KEY (content_id, switch)
);
CREATE TABLE session_ids (
    switch     TEXT    NOT NULL,
    replicas   TEXT    NOT NULL,           -- JSON: sorted list of [port, rid]
    session_id INTEGER NOT NULL,
    PRIMARY KEY (switch, replicas),
    UNIQUE (switch, session_id)
);
"""


# Version 2's addition, also run on its own to migrate a version 1 store.
_REFUSALS = _SCHEMA[_SCHEMA.index("CREATE TABLE refusals"):_SCHEMA.index("CREATE TABLE session_ids")].strip().rstrip(";")


class StoreError(Exception):
    """The intent store cannot be used as it is; the message says what to do."""


def _ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    return None if text is None else ipaddress.ip_address(text)


def _timeout_text(timeout: datetime | None) -> str | None:
    if timeout is None:
        return None
    if timeout.utcoffset() is None:
        raise InterceptError("cTap2MediationTimeout must carry a timezone")
    # Always microseconds, so the text is one fixed format whatever the value.
    return timeout.isoformat(timespec="microseconds")


def _mediation_row(m: Mediation) -> tuple[object, ...]:
    return (
        m.content_id, str(m.dest_address), m.dest_port, m.src_interface, m.dscp, int(m.transport),
        _timeout_text(m.timeout), int(m.notification_enable), int(m.active),
    )


def _stream_row(s: Stream) -> tuple[object, ...]:
    f = s.filter
    return (
        s.content_id, s.index, int(s.enabled),
        int(f.addr_type), None if f.dst_address is None else str(f.dst_address), f.dst_length,
        None if f.src_address is None else str(f.src_address), f.src_length, int(f.interface),
        f.tos_byte, f.tos_mask, f.flow_id, f.protocol,
        f.dst_port_min, f.dst_port_max, f.src_port_min, f.src_port_max, f.vrf,
    )


def _mediation_of(row: sqlite3.Row) -> Mediation:
    return Mediation(
        content_id=row["content_id"],
        dest_address=ipaddress.ip_address(row["dest_address"]),
        dest_port=row["dest_port"],
        src_interface=row["src_interface"],
        dscp=row["dscp"],
        transport=Transport(row["transport"]),
        timeout=None if row["timeout"] is None else datetime.fromisoformat(row["timeout"]),
        notification_enable=bool(row["notification_enable"]),
        active=bool(row["active"]),
    )


def _stream_of(row: sqlite3.Row) -> Stream:
    return Stream(
        content_id=row["content_id"],
        index=row["stream_index"],
        enabled=bool(row["enabled"]),
        filter=IpFilter(
            addr_type=InetAddressType(row["addr_type"]),
            dst_address=_ip(row["dst_address"]),
            dst_length=row["dst_length"],
            src_address=_ip(row["src_address"]),
            src_length=row["src_length"],
            interface=row["interface"],
            tos_byte=row["tos_byte"],
            tos_mask=row["tos_mask"],
            flow_id=row["flow_id"],
            protocol=row["protocol"],
            dst_port_min=row["dst_port_min"],
            dst_port_max=row["dst_port_max"],
            src_port_min=row["src_port_min"],
            src_port_max=row["src_port_max"],
            vrf=row["vrf"],
        ),
    )


def _session_text(replicas: frozenset[Replica]) -> str:
    return json.dumps(sorted([r.port, r.rid] for r in replicas))


def _write_id_changes(db: sqlite3.Connection, switch: str, changes: IdChanges) -> None:
    """Forget every changed id first, then write the current ones, so that an
    id that moved between keys never collides with itself."""
    db.executemany("DELETE FROM replica_ids WHERE switch = ? AND content_id = ?",
                   [(switch, c) for c in changes.replicas])
    db.executemany("DELETE FROM session_ids WHERE switch = ? AND replicas = ?",
                   [(switch, _session_text(key)) for key in changes.sessions])
    db.executemany("INSERT INTO replica_ids (switch, content_id, rid) VALUES (?, ?, ?)",
                   [(switch, c, rid) for c, rid in changes.replicas.items() if rid is not None])
    db.executemany("INSERT INTO session_ids (switch, replicas, session_id) VALUES (?, ?, ?)",
                   [(switch, _session_text(key), sid) for key, sid in changes.sessions.items() if sid is not None])


def _placeholders(n: int) -> str:
    return ", ".join("?" * n)


_IDS_PER_QUERY = 500  # well under SQLite's limit on bound parameters

_INSERT_MEDIATION = (
    f"INSERT INTO mediations ({', '.join(MEDIATION_COLUMNS)}) VALUES ({_placeholders(len(MEDIATION_COLUMNS))})"
)
_INSERT_STREAM = (
    f"INSERT INTO streams ({', '.join(STREAM_COLUMNS + FILTER_COLUMNS)}) "
    f"VALUES ({_placeholders(len(STREAM_COLUMNS) + len(FILTER_COLUMNS))})"
)


class IntentStore:
    """Intercepts (mediation, streams, switches) and id allocators, in SQLite.

    Safe to share between threads: one connection, serialized by a lock (the
    controller's timers and its request handlers all use the same store).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        # all() is called on every provisioning step and timer tick; with
        # 10,000 taps decoding them costs ~0.3 s. The decoded list is kept
        # while nothing has changed: this connection's writes drop it, and
        # PRAGMA data_version tells of commits by any other connection.
        self._cache: list[Intent] | None = None
        self._cache_version: int | None = None
        existed = self.path.exists()
        try:
            os.close(open_private(self.path, os.O_RDWR, StoreError))
        except OSError as error:
            raise StoreError(f"cannot open intent store {self.path}: {error}") from error
        # SQLite creates -wal/-shm with the main file's mode, but leftovers
        # from an earlier, careless setup would keep theirs: check them too.
        for suffix in ("-wal", "-shm", "-journal"):
            side = self.path.with_name(self.path.name + suffix)
            if side.exists() and side.stat().st_mode & 0o077:
                raise StoreError(
                    f"{side} is accessible by group/others (mode {stat.S_IMODE(side.stat().st_mode):04o}) and it "
                    f"reveals intercepts: run `chmod 600 {side}`"
                )
        if not existed:
            fsync_dir(self.path)
        try:
            # Autocommit mode: every transaction below is an explicit BEGIN..COMMIT,
            # so none is opened or committed behind this module's back.
            self._db: sqlite3.Connection | None = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=30.0
            )
        except sqlite3.Error as error:
            raise StoreError(f"cannot open intent store {self.path}: {error}") from error
        self._db.row_factory = sqlite3.Row
        try:
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{self.path}: SQLite refused WAL mode (got {mode!r})")
            # FULL: a commit is on disk when put_intercept returns, so an
            # acknowledged tap survives a power cut, not just a process crash.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._init_schema()
        except sqlite3.DatabaseError as error:
            self.close()
            raise StoreError(f"{self.path} is not a usable intent store: {error}") from error
        except BaseException:
            self.close()
            raise

    # -- lifecycle ------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> IntentStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(f"intent store {self.path} is closed")
        return self._db

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work(conn)` in one IMMEDIATE transaction: all of it, or none."""
        with self._lock:
            db = self._conn()
            self._cache = None
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    result = work(db)
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:  # a failed COMMIT may have rolled back already
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as error:
                raise StoreError(f"intent store {self.path}: write failed, nothing changed: {error}") from error
            return result

    def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work(conn)` in one read transaction, so its queries see one snapshot."""
        with self._lock:
            db = self._conn()
            try:
                db.execute("BEGIN")
                try:
                    return work(db)
                finally:
                    db.execute("COMMIT")
            except sqlite3.Error as error:
                raise StoreError(f"intent store {self.path}: read failed: {error}") from error

    def _init_schema(self) -> None:
        def work(db: sqlite3.Connection) -> None:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            tables = {t for t in tables if not t.startswith("sqlite_")}
            if not tables:
                # One statement at a time inside this transaction (executescript
                # would COMMIT first), so a crash never leaves half a schema.
                # Hence no ";" in _SCHEMA other than between statements.
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                return
            if "schema_version" not in tables:
                raise StoreError(f"{self.path} is an SQLite file but not a p4tap intent store (no schema_version)")
            versions = [r[0] for r in db.execute("SELECT version FROM schema_version")]
            if len(versions) != 1 or not isinstance(versions[0], int):
                raise StoreError(f"{self.path}: damaged schema_version table ({versions!r})")
            version = versions[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} was written by a newer p4tap (store schema {version}; this one reads up to "
                    f"{SCHEMA_VERSION}): run the newer p4tap, or restore a backup made for this version"
                )
            if version < 1:
                raise StoreError(f"{self.path}: unknown store schema version {version}")
            if version < 2:  # 1 -> 2: intercepts a switch refused (see `refusals`)
                db.execute(_REFUSALS)
                db.execute("UPDATE schema_version SET version = 2")

        self._write(work)

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
               remove: Iterable[int] = (), ids: Mapping[str, IdChanges] | None = None) -> None:
        """Replace intercepts, remove others and record switches' id changes, in
        ONE transaction: the controller's intent and the ids that carry it out
        never disagree on disk, and a provisioning step costs one fsync."""
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
            return db.execute("DELETE FROM mediations WHERE content_id = ?", (content_id,)).rowcount > 0

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

        self._write(work)

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

        self._write(work)

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
