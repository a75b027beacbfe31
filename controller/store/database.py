"""The intent store's SQLite connection: a private file, WAL, one transaction per
call (all or nothing), and the schema created or migrated on open."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from controller.private_files import disk_trouble, fsync_dir, open_private

from .rows import Intent
from .schema import _INTENT_MARKS, _REFUSALS, _SCHEMA, SCHEMA_VERSION, StoreError

T = TypeVar("T")


class Database:
    """The store's SQLite file: opened private and in WAL mode, its schema
    created or migrated, and every read or write one transaction.

    Kept apart from what is stored so that the durability and secrecy rules
    (module doc of :mod:`controller.store`) are read in one place.
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
        #: True when this open created the store (no file, or a file with no
        #: tables): a controller whose audit log names intercepts then knows
        #: its intent was lost (controller.intent_trail).
        self.created = False
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
            trouble = disk_trouble(self.path)
            raise StoreError(f"cannot open intent store {self.path}: {trouble or error}") from error
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
            trouble = disk_trouble(self.path)
            if trouble is not None:
                raise StoreError(f"cannot open intent store {self.path}: {trouble} (SQLite: {error})") from error
            raise StoreError(f"{self.path} is not a usable intent store: {error} (keep it for the record and move it "
                             "aside to start with no intent: the mediation devices are told to provision again)"
                             ) from error
        except BaseException:
            self.close()
            raise

    # -- lifecycle ------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(f"intent store {self.path} is closed")
        return self._db

    def _write(self, work: Callable[[sqlite3.Connection], T], intents: bool = True) -> T:
        """Run `work(conn)` in one IMMEDIATE transaction: all of it, or none.
        `intents=False`: it changes no intercept (ids, refusals), so what `all`
        decoded stays good; decoding 10,000 again costs ~0.3 s, in the middle
        of a switch's restore if the reconcile before saved its ids."""
        with self._lock:
            db = self._conn()
            if intents:
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
                self.created = True
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
            if version < 3:  # 2 -> 3: which audited change last touched each intercept (`intent_marks`)
                db.execute(_INTENT_MARKS)
                db.execute("UPDATE schema_version SET version = 3")

        self._write(work)
