"""A durable, bounded queue on disk between the MD and one agency connection.

Every record meant for an agency's HI2 or HI3 connection is appended here first
and leaves only when the agency has acknowledged it (ETSI keep-alive answered:
everything sent before the keep-alive arrived). So an agency that is down, slow
or reconnecting loses nothing while the spool has room, and an MD that is
killed and restarted finds the spool as it was and delivers the rest, in order.

Layout of the directory:

- `<position>.seg`: append-only segment files, named by the stream position of
  their first octet; each record is a 12-octet header (length, key, sequence
  number; big-endian) and the record;
- `cursor.json`: the acknowledged position and the next sequence number per key,
  replaced atomically (written, fsynced, renamed) at every acknowledgement;
- `audit.jsonl`: one line per alarm and overflow event, appended, never rewritten.

Sequence numbers are assigned here, under the same lock as the append, so they
follow the spool's order and survive a restart (the cursor's counters, raised
past any record still spooled). The bound is on octets not yet acknowledged; past
it the `overflow` policy decides: `drop-newest` refuses new records (the agency
sees the gap in sequence numbers at the end), `drop-oldest` discards the oldest
segment. Either way every dropped record is counted and audited, and an alarm is
raised from 80 % full until the spool is back under 50 %.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from controller.private_files import open_private

log = logging.getLogger("p4tap.md")
HEADER = struct.Struct("!III")
POLICIES = ("drop-newest", "drop-oldest")
ALARM_AT, CLEAR_AT = 0.8, 0.5


def _private(path: Path, flags: int) -> int:
    """Owner-only files (they hold intercepted content and LIIDs); a file others can read is refused."""
    return open_private(path, flags, OSError, "spool file ")


@dataclass
class SpoolCounts:
    appended: int = 0
    acknowledged: int = 0
    dropped: int = 0
    overflows: int = 0


class Spool:
    def __init__(self, directory: Path, max_bytes: int, overflow: str = "drop-newest",
                 segment_bytes: int = 4 << 20, name: str = "") -> None:
        if overflow not in POLICIES:
            raise ValueError(f"overflow must be one of {', '.join(POLICIES)}, got {overflow!r}")
        if max_bytes < 2 * segment_bytes and overflow == "drop-oldest":
            segment_bytes = max(4096, max_bytes // 4)
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.max_bytes, self.overflow, self.segment_bytes = max_bytes, overflow, segment_bytes
        self.name = name or str(directory)
        self.counts = SpoolCounts()
        self.alarm = False
        self._overflowing = False
        self._lock = threading.Condition()
        self.acked, self.next_seq = self._read_cursor()
        self.segments: list[int] = self._recover()
        self.end = self._segment_end(self.segments[-1]) if self.segments else self.acked
        self._file = None
        pending = self.pending_records()
        if pending:
            self._audit("recovered", records=pending, octets=self.end - self.acked)
            log.warning("spool %s: %d records from before the restart still to deliver", self.name, pending)

    # -- state on disk ---------------------------------------------------------------------------

    def _read_cursor(self) -> tuple[int, dict[int, int]]:
        try:
            raw = json.loads((self.directory / "cursor.json").read_text())
            return int(raw["acked"]), {int(k): int(v) for k, v in raw["next_seq"].items()}
        except FileNotFoundError:
            return 0, {}

    def _write_cursor(self) -> None:
        tmp = self.directory / "cursor.json.tmp"
        with os.fdopen(_private(tmp, os.O_WRONLY | os.O_TRUNC), "w") as f:
            json.dump({"acked": self.acked, "next_seq": {str(k): v for k, v in self.next_seq.items()}}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.directory / "cursor.json")

    def _path(self, start: int) -> Path:
        return self.directory / f"{start:020d}.seg"

    def _records(self, start: int, position: int = 0):
        """(position, key, seq, record) of each complete record in segment `start`, from `position`
        (a record's first octet) on."""
        offset = max(0, position - start)
        with open(self._path(start), "rb") as f:
            f.seek(offset)
            data = f.read()
        offset_in_data = offset
        offset = 0
        start += offset_in_data
        while offset + HEADER.size <= len(data):
            length, key, seq = HEADER.unpack_from(data, offset)
            if offset + HEADER.size + length > len(data):
                break
            yield start + offset, key, seq, data[offset + HEADER.size: offset + HEADER.size + length]
            offset += HEADER.size + length

    def _segment_end(self, start: int) -> int:
        return start + self._path(start).stat().st_size

    def _recover(self) -> list[int]:
        """Segments still holding unacknowledged records; a torn last record (a crash mid-write) cut off;
        sequence numbers raised past every record still here."""
        starts = sorted(int(p.stem) for p in self.directory.glob("*.seg"))
        kept = []
        for start in starts:
            end = None
            for position, key, seq, record in self._records(start):
                self.next_seq[key] = max(self.next_seq.get(key, 0), seq + 1)
                end = position + HEADER.size + len(record)
            end = start if end is None else end
            if end <= self.acked:
                self._path(start).unlink()
                continue
            if end < self._segment_end(start):
                os.truncate(self._path(start), end - start)
            kept.append(start)
        if kept and kept[0] > self.acked:   # drop-oldest removed what the cursor pointed into
            self.acked = kept[0]
        return kept

    def _audit(self, event: str, **details) -> None:
        line = json.dumps({"time": time.time(), "spool": self.name, "event": event, **details})
        with os.fdopen(_private(self.directory / "audit.jsonl", os.O_WRONLY | os.O_APPEND), "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    # -- the writer's side -----------------------------------------------------------------------

    def pending_bytes(self) -> int:
        """Octets not yet acknowledged (read under the lock: an acknowledgement settles the alarm with it)."""
        with self._lock:
            return self.end - self.acked

    def pending_records(self) -> int:
        return sum(1 for start in self.segments for _ in self._records(start, self.acked))

    def append(self, key: int, encode: Callable[[int], bytes]) -> bool:
        """Append encode(seq) with the next sequence number of `key`; False if overflow dropped it."""
        with self._lock:
            seq = self.next_seq.get(key, 0)
            self.next_seq[key] = (seq + 1) & 0xFFFFFFFF
            record = encode(seq)
            size = HEADER.size + len(record)
            if self.pending_bytes() + size > self.max_bytes and not self._make_room(size):
                self.counts.dropped += 1
                return False
            if self._file is None or self.end - self.segments[-1] >= self.segment_bytes:
                self._roll()
            self._file.write(HEADER.pack(len(record), key, seq) + record)
            self._file.flush()     # in the kernel: survives the MD's death; fsync at each acknowledgement
            self.end += size
            self.counts.appended += 1
            self._check_alarm()
            self._lock.notify_all()
            return True

    def _roll(self) -> None:
        if self._file is not None:
            self._file.close()
        if not self.segments or self._segment_end(self.segments[-1]) != self.end \
                or self.end - self.segments[-1] >= self.segment_bytes:
            self.segments.append(self.end)
        self._file = os.fdopen(_private(self._path(self.segments[-1]), os.O_WRONLY | os.O_APPEND), "ab")

    def _make_room(self, size: int) -> bool:
        if not self._overflowing:
            self._overflowing = True
            self.counts.overflows += 1
            self._audit("overflow", policy=self.overflow, pending_octets=self.pending_bytes(),
                        max_bytes=self.max_bytes)
            log.error("spool %s: full (%d octets unacknowledged); overflow policy %s",
                      self.name, self.pending_bytes(), self.overflow)
        if self.overflow == "drop-newest":
            return False
        while self.pending_bytes() + size > self.max_bytes and len(self.segments) > 1:
            oldest = self.segments.pop(0)
            lost = sum(1 for _ in self._records(oldest, self.acked))
            self._path(oldest).unlink()
            self.acked = self.segments[0]
            self.counts.dropped += lost
            self._audit("dropped-oldest", records=lost, segment=oldest)
        self._write_cursor()
        return self.pending_bytes() + size <= self.max_bytes

    def _check_alarm(self) -> None:
        used = self.pending_bytes() / self.max_bytes
        if self._overflowing and used < CLEAR_AT:
            self._overflowing = False
            self._audit("overflow-ended", dropped=self.counts.dropped)
        if not self.alarm and (used >= ALARM_AT or self._overflowing):
            self.alarm = True
            self._audit("alarm-raised", pending_octets=self.pending_bytes(), max_bytes=self.max_bytes)
            log.warning("spool %s: alarm: %.0f%% full, the agency is not taking its records", self.name, used * 100)
        elif self.alarm and used < CLEAR_AT and not self._overflowing:
            self.alarm = False
            self._audit("alarm-cleared", pending_octets=self.pending_bytes(), dropped=self.counts.dropped)
            log.warning("spool %s: alarm cleared (%d records dropped in all)", self.name, self.counts.dropped)

    # -- the sender's side -----------------------------------------------------------------------

    def read(self, position: int, max_bytes: int = 256 << 10) -> tuple[int, list[bytes]]:
        """Records from `position` (at least one if any), and the position after them."""
        with self._lock:
            position = max(position, self.acked)
            starts = [s for s in self.segments if self._segment_end(s) > position]
        out, size = [], 0
        try:
            for start in starts:
                for where, _key, _seq, record in self._records(start, position):
                    if out and size + len(record) > max_bytes:
                        return position, out
                    out.append(record)
                    size += len(record)
                    position = where + HEADER.size + len(record)
        except FileNotFoundError:   # drop-oldest removed it meanwhile: the sender goes on from `acked`
            pass
        return position, out

    def wait(self, position: int, timeout: float) -> None:
        """Until something lies past `position`, or `timeout`."""
        with self._lock:
            if self.end <= position:
                self._lock.wait(timeout)

    def ack(self, position: int) -> None:
        """Everything before `position` is with the agency: persist that, free whole segments."""
        with self._lock:
            if position <= self.acked:
                return
            self.counts.acknowledged += sum(1 for s in self.segments if s < position
                                            for p, *_ in self._records(s, self.acked) if p < position)
            self.acked = position
            if self._file is not None:
                os.fsync(self._file.fileno())
            self._write_cursor()
            while len(self.segments) > 1 and self._segment_end(self.segments[0]) <= position:
                self._path(self.segments.pop(0)).unlink()
            self._check_alarm()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
                self._file = None
            self._write_cursor()
