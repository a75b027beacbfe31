"""Append-only, hash-chained audit log of everything done to intercepts.

Lawful intercept must be accountable: every tap provisioned, removed, expired
or refused, and every correction reconcile makes on a switch, is recorded with
who asked for it. An auditor must also be able to tell whether the record was
altered afterwards, so each record is chained to the one before it:

* ``hash`` is the SHA-256 of the record's own canonical JSON (without
  ``hash``): editing any field of a record breaks it;
* ``prev`` is the SHA-256 of the previous record's whole line: deleting,
  inserting or reordering records breaks the next record's ``prev``, and an
  edit whose ``hash`` was recomputed is still caught there;
* ``seq`` counts from 1 without gaps, naming where records went missing.

What a chain cannot show by itself: the *last* records cut off, or the last
record rewritten with a recomputed hash. For that, keep the head hash that
`verify` prints somewhere the controller cannot write (a ticket, a remote log).

Format: JSON Lines, one record per line, each line the canonical JSON of the
record (keys sorted, separators ``,`` and ``:``, ASCII only):
``{"action", "actor", "detail", "hash", "prev", "seq", "time"}``.

Records are written whole or not at all: one ``write`` of whole lines, then
``fsync`` before `append` returns; if either fails (ENOSPC, EIO), the file
is cut back to its size before the write, so a full disk never leaves a torn
line (issue 26). A crash mid-write can still leave a torn last line (bytes
without a newline); the next open cuts it off and records that in the log
itself ("audit-recover", with the cut bytes' length, SHA-256 and start), so
the log verifies intact again and the crash stays visible. Whole lines after
the last valid record (damage, or the newline-ended torn lines of older
versions) are left in place, as evidence, and named in that record; `verify`
keeps reporting them. A recovery record that cannot be written at once (the
disk is still full) is written ahead of the next record that can.
"""

from __future__ import annotations

import argparse
import enum
import fcntl
import hashlib
import ipaddress
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any

from controller.private_files import fsync_dir, open_private

log = logging.getLogger("p4tap.audit")

GENESIS = "0" * 64
FIELDS = frozenset({"seq", "time", "actor", "action", "detail", "prev", "hash"})
_HEX64 = re.compile(r"[0-9a-f]{64}")
_BLOCK = 64 * 1024


class AuditError(Exception):
    """The audit log cannot be used as it is; the message says what to do."""


def _jsonable(value: Any) -> Any:
    """Turn the model's value types into JSON; anything else is refused, not str()-ed
    into something that looks right but cannot be read back."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network,
                          ipaddress.IPv6Network, PurePath)):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=lambda v: (type(v).__name__, str(v)))
    raise TypeError(f"audit detail value {value!r} ({type(value).__name__}) has no JSON form")


def canonical(obj: Any) -> bytes:
    """The one byte string a record hashes and is written as."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False,
                      default=_jsonable).encode("ascii")


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 (hex) of a record's canonical JSON without its "hash" field."""
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def line_hash(line: bytes) -> str:
    """SHA-256 (hex) of a whole record line (no newline): the next record's "prev"."""
    return hashlib.sha256(line).hexdigest()


def _shape_problem(obj: Any) -> str | None:
    """Why `obj` is not a well-formed record, or None if it is."""
    if not isinstance(obj, dict):
        return f"not a record (a JSON {type(obj).__name__})"
    if set(obj) != FIELDS:
        missing, extra = sorted(FIELDS - set(obj)), sorted(set(obj) - FIELDS)
        return "malformed record:" + (f" missing {', '.join(missing)}" if missing else "") + (
            f" unexpected {', '.join(extra)}" if extra else "")
    if not isinstance(obj["seq"], int) or isinstance(obj["seq"], bool) or obj["seq"] < 1:
        return f"malformed record: seq {obj['seq']!r} is not a positive integer"
    for name in ("time", "actor", "action"):
        if not isinstance(obj[name], str) or not obj[name]:
            return f"malformed record: {name} {obj[name]!r} is not a non-empty string"
    try:
        if datetime.fromisoformat(obj["time"]).utcoffset() is None:
            return f"malformed record: time {obj['time']!r} has no timezone"
    except ValueError:
        return f"malformed record: time {obj['time']!r} is not ISO 8601"
    if not isinstance(obj["detail"], dict):
        return "malformed record: detail is not an object"
    for name in ("prev", "hash"):
        if not isinstance(obj[name], str) or not _HEX64.fullmatch(obj[name]):
            return f"malformed record: {name} is not 64 lowercase hex digits"
    return None


def _valid_record(line: bytes) -> dict[str, Any] | None:
    """The record on `line` if it is well formed and its own hash holds."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if _shape_problem(obj) is not None or record_hash(obj) != obj["hash"]:
        return None
    return obj


@dataclass
class VerifyResult:
    """What `verify` found. `head` is the hash to anchor elsewhere (see module doc)."""

    ok: bool
    records: int
    problems: list[str] = field(default_factory=list)
    head: str = GENESIS


def verify(path: Path | str) -> VerifyResult:
    """Check a whole log: every line a well-formed record whose hash holds,
    chained by prev onto the line before, seq counting up by one, every line
    ended by a newline. Each problem names its (1-based) line.

    After a problem the check re-synchronises on the line found, so one
    deletion or edit is reported where it is, not on every line after it.
    `records` counts the lines that are well-formed records.
    """
    data = Path(path).read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline, as it should
    problems: list[str] = []
    records = 0
    prev, expected_seq, prev_line = GENESIS, 1, 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            problems.append(f"line {number}: empty line")
            continue
        try:
            obj = json.loads(line)
        except ValueError as error:
            problems.append(f"line {number}: bad JSON (a torn write, or damage): {error}")
            continue
        shape = _shape_problem(obj)
        if shape is not None:
            problems.append(f"line {number}: {shape}")
            continue
        records += 1
        if record_hash(obj) != obj["hash"]:
            problems.append(f"line {number}: hash mismatch: record seq {obj['seq']} was edited")
        elif line != canonical(obj):
            problems.append(f"line {number}: not in canonical form: the line was rewritten")
        if obj["prev"] != prev:
            after = f"line {prev_line}" if prev_line else "the start of the log"
            problems.append(f"line {number}: prev mismatch: does not follow {after}: "
                            "a record before it was deleted, inserted or reordered")
        if obj["seq"] != expected_seq:
            why = "records missing before it" if obj["seq"] > expected_seq else "repeated or out of order"
            problems.append(f"line {number}: seq gap: seq {obj['seq']}, expected {expected_seq} ({why})")
        prev, expected_seq, prev_line = line_hash(line), obj["seq"] + 1, number
    if tail:
        problems.append(f"line {len(lines) + 1}: torn last line: {len(tail)} bytes without a newline "
                        "(a write was cut off)")
    return VerifyResult(ok=not problems, records=records, problems=problems, head=prev)


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
            self._write_all(b"".join(line + b"\n" for line in lines))
            os.fsync(fd)
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


_VERIFY_HELP = """\
Checks an audit log written by p4tap, line by line:
  * every line is JSON, a record with exactly seq, time, actor, action,
    detail, prev and hash, and is ended by a newline (a missing one means a
    write was cut off: a torn line);
  * hash is the SHA-256 of the record's canonical JSON without hash: a
    mismatch means the record was edited;
  * prev is the SHA-256 of the previous line (64 zeros for the first): a
    mismatch means records before it were deleted, inserted or reordered, or
    the previous one edited;
  * seq counts 1, 2, 3, ... : a gap names where records are missing.
Not detectable from the file alone: records cut off at the end, or the last
record rewritten with a recomputed hash. Compare the printed head hash with
one kept elsewhere to rule that out.

Exit status: 0 intact, 1 not intact (the verdict is on stdout, each problem
with its line number on stderr), 2 the file could not be read.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m controller.audit verify PATH`."""
    parser = argparse.ArgumentParser(
        prog="python -m controller.audit", description="Tools for p4tap's hash-chained audit log.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_VERIFY_HELP,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser("verify", help="check that an audit log is intact",
                                description=_VERIFY_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("path", type=Path, metavar="PATH", help="the audit log (JSON Lines)")
    args = parser.parse_args(argv)
    try:
        result = verify(args.path)
    except OSError as error:
        print(f"{args.path}: cannot check: {error}", file=sys.stderr)
        return 2
    if result.ok:
        print(f"{args.path}: intact: {result.records} records, head {result.head}")
        return 0
    print(f"{args.path}: NOT INTACT: {len(result.problems)} problem(s) in {result.records} records; "
          f"first: {result.problems[0]}")
    for problem in result.problems:
        print(problem, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
