"""The intent store's tables, their version, and the error every part of the
store raises: the on-disk format in one place, so it only changes on purpose."""

from __future__ import annotations

#: Bump when the tables change, and teach `_migrate` the way up. A store with
#: a higher version was written by a newer p4tap whose rows this one might
#: misread, so it is refused rather than guessed at.
SCHEMA_VERSION = 3

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
CREATE TABLE intent_marks (
    content_id INTEGER PRIMARY KEY,        -- no foreign key: a removed intercept keeps its mark
    intent_seq INTEGER,                    -- the audit log's write-ahead record (NULL: changed unaudited)
    present    INTEGER NOT NULL CHECK (present IN (0, 1))
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
_REFUSALS = _SCHEMA[_SCHEMA.index("CREATE TABLE refusals"):_SCHEMA.index("CREATE TABLE intent_marks")].strip().rstrip(";")

# Version 3's addition: per intercept, the seq of the audit log's write-ahead
# record of the change that last put or removed it, committed in the same
# transaction as the change, so `p4tap audit verify` can tell a log that lags
# the intent (controller.intent_trail). A store upgraded from version 2 has no
# marks for its older intercepts; they are not checked.
_INTENT_MARKS = (
    _SCHEMA[_SCHEMA.index("CREATE TABLE intent_marks"):_SCHEMA.index("CREATE TABLE session_ids")].strip().rstrip(";")
)


class StoreError(Exception):
    """The intent store cannot be used as it is; the message says what to do."""

