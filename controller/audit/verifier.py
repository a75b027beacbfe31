"""`verify`: the auditor's check of a whole log, reporting every problem by line.

Apart from the writer because it must not trust it: it reads the file as it
is, with no lock and no recovery, and needs only the record format."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .records import GENESIS, _shape_problem, canonical, line_hash, record_hash

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

