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

The log is put together from one part per concern, each a module that imports
only from those below it: :mod:`.records` (the record format: canonical JSON,
hashes, what a well-formed record is) < :mod:`.verifier` (:func:`verify`, the
auditor's check) and :mod:`.writer` (:class:`AuditLog`, the one writer) <
:mod:`.cli` (``python -m controller.audit verify PATH``).
"""

from __future__ import annotations

# The writer's os calls are patched as controller.audit.os.write/fsync (tests
# filling the disk); os is one module object, so patching it here reaches them.
import os  # noqa: F401

# Everything the single module exported is still importable from controller.audit.
from .cli import main
from .records import FIELDS, GENESIS, canonical, line_hash, record_hash
from .verifier import VerifyResult, verify
from .writer import AuditError, AuditLog

__all__ = [
    "FIELDS",
    "GENESIS",
    "AuditError",
    "AuditLog",
    "VerifyResult",
    "canonical",
    "line_hash",
    "main",
    "record_hash",
    "verify",
]
