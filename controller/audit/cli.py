"""`python -m controller.audit verify PATH` (also `p4tap audit verify PATH`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .verifier import verify

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

