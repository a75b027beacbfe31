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
The store is put together from one part per concern, each a module that
imports only from those below it: :mod:`.schema` (the tables, their version,
:class:`StoreError`) < :mod:`.rows` (model objects to rows and back) <
:mod:`.database` (the private file, WAL, one transaction per call, migration)
< :mod:`.intents` (:class:`IntentStore`: intercepts, refusals, id allocators).
"""

from __future__ import annotations

# Everything the single module exported is still importable from controller.store.
from .intents import IntentStore
from .rows import Intent
from .schema import FILTER_COLUMNS, MEDIATION_COLUMNS, SCHEMA_VERSION, STREAM_COLUMNS, StoreError

__all__ = [
    "FILTER_COLUMNS",
    "MEDIATION_COLUMNS",
    "SCHEMA_VERSION",
    "STREAM_COLUMNS",
    "Intent",
    "IntentStore",
    "StoreError",
]
