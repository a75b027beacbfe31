"""`AuditLog`: the one writer of a log (flock), appending whole records with
fsync, and cutting back or recovering a torn tail (module doc of
:mod:`controller.audit`)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from controller.private_files import fsync_dir, open_private

from .records import GENESIS, _valid_record, canonical, line_hash

log = logging.getLogger("p4tap.audit")

_BLOCK = 64 * 1024


class AuditError(Exception):
    """The audit log cannot be used as it is; the message says what to do."""


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _lines_backwards(fd: int, end: int) -> Iterator[bytes]:
    """The newline-separated pieces of the file's first `end` bytes, last first.

    Reads from the end in blocks, so opening a long log costs only its tail.
    """
    pos, buf = end, b""
    while pos > 0:
        n = min(_BLOCK, pos)
        pos -= n
        buf = os.pread(fd, n, pos) + buf
        parts = buf.split(b"\n")
        buf = parts[0]
        yield from reversed(parts[1:])
    yield buf


class AuditLog:
    """The writer: appends records, each on disk (fsync) before `append` returns.

    One writer per file: an exclusive lock (flock) is held while open, since
    two writers would fork the chain. Thread-safe within the process.
    """

    def __init__(self, path: Path | str, clock: Callable[[], datetime] = _utcnow) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        existed = self.path.exists()
        try:
            fd = open_private(self.path, os.O_RDWR | os.O_APPEND, AuditError, what="audit log ")
        except OSError as error:
            raise AuditError(f"cannot open audit log {self.path}: {error}") from error
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise AuditError(f"audit log {self.path} is open for writing by another process") from None
            if not existed:
                fsync_dir(self.path)  # the new file's name must survive a crash too
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd
        self._seq, self._prev = 0, GENESIS
        self._needs_resync = False
        self._owed: list[tuple[str, str, dict[str, Any]]] = []  # recovery records not yet written
        try:
            self._resync()
            if self._owed:
                try:
                    self._append_locked_many([])
                except OSError as error:  # the disk is still full: written ahead of the next record
                    log.warning("audit log %s: cannot record its recovery yet: %s", self.path, error)
        except BaseException:
            self.close()
            raise

    # -- state ----------------------------------------------------------------

    @property
    def seq(self) -> int:
        """The seq of the last record written (0 for an empty log)."""
        return self._seq

    @property
    def head(self) -> str:
        """The hash the next record's prev will carry."""
        return self._prev

    def _resync(self) -> None:
        """Take seq/prev from the last valid record on disk, after cutting off a
        torn tail (bytes after the last newline); what was found is owed to the
        log as an "audit-recover" record.

        Used on open and after an append whose cut-back failed, when memory
        may not match the file.
        """
        fd = self._require_open()
        size = os.fstat(fd).st_size
        invalid = 0  # whole lines after the last valid record
        tail = b""
        last: tuple[dict[str, Any], bytes] | None = None
        for index, piece in enumerate(_lines_backwards(fd, size)):
            if index == 0:
                tail = piece
                continue
            record = _valid_record(piece)
            if record is not None:
                last = (record, piece)
                break
            invalid += 1
        if tail:  # a write cut off: no record may be glued onto it, and the log must verify again
            os.ftruncate(fd, size - len(tail))
            os.fsync(fd)
        self._seq, self._prev = (last[0]["seq"], line_hash(last[1])) if last else (0, GENESIS)
        self._needs_resync = False
        if invalid or tail:
            total = self._count_lines()
            bad = list(range(total - invalid + 1, total + 1))
            detail: dict[str, Any] = {"invalid_lines": bad, "torn": bool(tail), "continues_after_seq": self._seq}
            if tail:
                detail["cut"] = {"bytes": len(tail), "sha256": hashlib.sha256(tail).hexdigest(),
                                 "start": tail[:200].decode("ascii", "backslashreplace")}
            log.warning("audit log %s: %s after seq %d; continuing after seq %d", self.path,
                        ", ".join(filter(None, (f"line(s) {bad} are not valid records" if bad else "",
                                                f"a torn tail of {len(tail)} bytes was cut off" if tail else ""))),
                        self._seq, self._seq)
            self._owed.append(("controller", "audit-recover", detail))

    def _count_lines(self) -> int:
        fd = self._require_open()
        count, pos, size = 0, 0, os.fstat(fd).st_size
        while pos < size:
            block = os.pread(fd, _BLOCK, pos)
            count += block.count(b"\n")
            pos += len(block)
        return count

    def _require_open(self) -> int:
        if self._fd is None:
            raise AuditError(f"audit log {self.path} is closed")
        return self._fd

    def _write_all(self, data: bytes) -> None:
        fd = self._require_open()
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]

    # -- the API --------------------------------------------------------------

    def append(self, actor: str, action: str, /, **detail: Any) -> dict[str, Any]:
        """Record that `actor` did `action`; returns the record as written.

        Durable (fsync-ed) when it returns. A detail value with no JSON form
        raises TypeError before anything is written.
        """
        for name, value in (("actor", actor), ("action", action)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"audit {name} must be a non-empty string, got {value!r}")
        with self._lock:
            return self._append_locked(actor, action, detail)

    def append_many(self, entries: Sequence[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Record several (actor, action, detail) at once: one write and one
        fsync for all of them (a flood of refusals must not cost a disk
        flush each). Durable when it returns, as `append`."""
        for actor, action, _ in entries:
            for name, value in (("actor", actor), ("action", action)):
                if not isinstance(value, str) or not value:
                    raise ValueError(f"audit {name} must be a non-empty string, got {value!r}")
        if not entries:
            return []
        with self._lock:
            return self._append_locked_many(entries)

    def owe(self, actor: str, action: str, /, **detail: Any) -> int:
        """Queue a record the disk cannot take now, to be written ahead of the
        next append (nothing can overtake it); returns the seq it will have.
        For what must happen whatever the disk says (an expiry: a warrant's
        end is not negotiable), recorded as soon as there is room. Lost if
        the process ends first: the store's mark then names a seq beyond the
        log's end, and `p4tap audit verify` reports the log lagging."""
        for name, value in (("actor", actor), ("action", action)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"audit {name} must be a non-empty string, got {value!r}")
        with self._lock:
            if self._needs_resync:  # the seq must be the file's, not memory's
                self._resync()
            self._owed.append((actor, action, detail))
            return self._seq + len(self._owed)

    def _append_locked(self, actor: str, action: str, detail: dict[str, Any]) -> dict[str, Any]:
        return self._append_locked_many([(actor, action, detail)])[0]

    def _append_locked_many(self, entries: Sequence[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
        fd = self._require_open()
        if self._needs_resync:
            self._resync()
        entries = [*self._owed, *entries]
        now = self._clock()
        if now.utcoffset() is None:
            raise ValueError("the audit clock must return timezone-aware datetimes")
        seq, prev, lines = self._seq, self._prev, []
        for actor, action, detail in entries:
            seq += 1
            record: dict[str, Any] = {
                "seq": seq,
                "time": now.astimezone(timezone.utc).isoformat(timespec="microseconds"),
                "actor": actor,
                "action": action,
                "detail": detail,
                "prev": prev,
            }
            record["hash"] = hashlib.sha256(canonical(record)).hexdigest()
            line = canonical(record)
            lines.append(line)
            prev = line_hash(line)
        size = os.fstat(fd).st_size
        try:
            try:
                self._write_all(b"".join(line + b"\n" for line in lines))
                os.fsync(fd)
            except OSError as error:  # name the file: "No space left on device" alone does not say which disk
                raise OSError(error.errno, error.strerror, str(self.path)) from error
        except BaseException:
            # Whole or not at all: cut the file back to where this write began
            # (shrinking needs no free space). If even that fails, memory may
            # not match the file: the next append re-reads it first.
            try:
                os.ftruncate(fd, size)
                os.fsync(fd)
            except OSError:
                self._needs_resync = True
            raise
        self._seq, self._prev = seq, prev
        owed, self._owed = len(self._owed), []
        return [json.loads(line) for line in lines][owed:]

    def last(self, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        """The newest valid record for which `wanted` holds, read from the end
        back (start-up recovery looks only at the last change's records)."""
        with self._lock:
            fd = self._require_open()
            for piece in _lines_backwards(fd, os.fstat(fd).st_size):
                record = _valid_record(piece) if piece else None
                if record is not None and wanted(record):
                    return record
            return None

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)  # releases the flock
                self._fd = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
