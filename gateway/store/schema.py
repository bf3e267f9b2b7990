"""Tables of the SQLite store and the migrations that build them.

`MIGRATIONS[i]` takes the schema from version i to i + 1; `migrate` applies the missing ones in
one transaction and records each in `schema_version`. Never edit a released migration: append
a new one.
"""

from __future__ import annotations

import sqlite3
import time

_V1 = """
CREATE TABLE messages (
    id              TEXT PRIMARY KEY,          -- UUIDv7, see gateway.store.ids
    client_id       TEXT NOT NULL,
    client_ref      TEXT,
    idempotency_key TEXT,
    source_addr     TEXT NOT NULL,
    dest_addr       TEXT NOT NULL,
    data_coding     INTEGER NOT NULL,
    payload         BLOB NOT NULL,
    state           TEXT NOT NULL,
    carrier         TEXT,
    parts_total     INTEGER NOT NULL,
    created_at      TEXT NOT NULL,             -- wall clock UTC, ISO 8601 with milliseconds
    updated_at      TEXT NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX messages_idempotency ON messages (client_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE message_parts (
    message_id              TEXT NOT NULL REFERENCES messages (id),
    part_no                 INTEGER NOT NULL,
    state                   TEXT NOT NULL,
    carrier                 TEXT,
    carrier_message_id_raw  TEXT,
    carrier_message_id_norm TEXT,
    submitted_at            TEXT,
    resp_status             INTEGER,
    resp_at                 TEXT,
    receipt_state           TEXT,
    receipt_err             TEXT,
    receipt_at              TEXT,
    PRIMARY KEY (message_id, part_no)
) WITHOUT ROWID;
CREATE INDEX message_parts_carrier_id ON message_parts (carrier, carrier_message_id_norm)
    WHERE carrier_message_id_norm IS NOT NULL;
CREATE INDEX message_parts_open ON message_parts (state) WHERE state IN ('pending', 'submitted');

CREATE TABLE history (
    message_id TEXT NOT NULL REFERENCES messages (id),
    seq        INTEGER NOT NULL,
    at         TEXT NOT NULL,
    event      TEXT NOT NULL,
    detail     TEXT NOT NULL,                  -- JSON, carrier codes verbatim
    PRIMARY KEY (message_id, seq)
) WITHOUT ROWID;

CREATE TABLE unmatched_receipts (
    id          INTEGER PRIMARY KEY,
    carrier     TEXT NOT NULL,
    norm_id     TEXT NOT NULL,
    payload     TEXT NOT NULL,                 -- JSON
    received_at TEXT NOT NULL,
    expires_at  REAL NOT NULL                  -- Unix seconds
);
CREATE INDEX unmatched_receipts_key ON unmatched_receipts (carrier, norm_id);
CREATE INDEX unmatched_receipts_expiry ON unmatched_receipts (expires_at);

-- AUTOINCREMENT: a sequence number is never reused, even after pruning every row
CREATE TABLE events (
    seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    at    TEXT NOT NULL,
    at_ts REAL NOT NULL,                       -- Unix seconds, for retention
    kind  TEXT NOT NULL,
    body  TEXT NOT NULL                        -- JSON
);

CREATE TABLE consumer_cursors (
    name      TEXT PRIMARY KEY,
    acked_seq INTEGER NOT NULL
);
"""

# What start-up needs to rebuild the PDUs of a message the crash left unsent: the text (NULL for
# binary messages, whose payload is the raw octets) and the concatenation reference.
_V2 = """
ALTER TABLE messages ADD COLUMN text TEXT;
ALTER TABLE messages ADD COLUMN concat_ref INTEGER;
"""

# The client's validity (seconds, NULL: the SMSC default) and priority_flag, so the start-up
# resend rebuilds identical parts and can tell a message that expired while it waited.
_V3 = """
ALTER TABLE messages ADD COLUMN validity_s INTEGER;
ALTER TABLE messages ADD COLUMN priority INTEGER;
"""

# A message's state and last change are derived from its parts and history when it is read
# (`sqlite_store.message_state`): keeping copies here cost two statements per receipt and resp.
_V4 = """
ALTER TABLE messages DROP COLUMN state;
ALTER TABLE messages DROP COLUMN updated_at;
"""

# History without a row per step. The lifecycle of each part (submitted, resp, receipt) is read
# off the part's own columns, the `*_us` ones giving each step's place in the message's history
# (the writer's clock: strictly increasing microseconds, its high-water mark kept in
# writer_clock so a restart never goes back); "accepted" is read off the message. A history row
# is written only for what the columns cannot hold: a step about to be overwritten (a part sent
# again, a second resp, an intermediate receipt followed by the final one: the triggers below
# copy the old values, keyed by their own `*_us`) and expiry. Rows written before this version
# stay as they are; their columns have no `*_us`, so nothing is read twice. Writing four history
# rows per message had cost about as much as all the other writes of the message together.
_V5 = """
ALTER TABLE messages ADD COLUMN accepted_us INTEGER;
ALTER TABLE message_parts ADD COLUMN submitted_us INTEGER;
ALTER TABLE message_parts ADD COLUMN resp_us INTEGER;
ALTER TABLE message_parts ADD COLUMN receipt_us INTEGER;
ALTER TABLE message_parts ADD COLUMN receipt_detail TEXT;          -- the receipt's history detail
CREATE TABLE writer_clock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    us INTEGER NOT NULL
);
INSERT INTO writer_clock (id, us) VALUES (1, 0);
CREATE TRIGGER history_keeps_submit BEFORE UPDATE OF submitted_us ON message_parts
WHEN OLD.submitted_us IS NOT NULL
BEGIN
    INSERT INTO history (message_id, seq, at, event, detail) VALUES (
        OLD.message_id, OLD.submitted_us, OLD.submitted_at, 'submitted',
        json_object('part', OLD.part_no, 'carrier', OLD.carrier));
END;
CREATE TRIGGER history_keeps_resp BEFORE UPDATE OF resp_us ON message_parts
WHEN OLD.resp_us IS NOT NULL
BEGIN
    INSERT INTO history (message_id, seq, at, event, detail) VALUES (
        OLD.message_id, OLD.resp_us, OLD.resp_at, 'resp',
        json_object('part', OLD.part_no, 'carrier', OLD.carrier, 'status', OLD.resp_status,
                    'carrier_message_id', OLD.carrier_message_id_raw));
END;
CREATE TRIGGER history_keeps_receipt BEFORE UPDATE OF receipt_us ON message_parts
WHEN OLD.receipt_us IS NOT NULL
BEGIN
    INSERT INTO history (message_id, seq, at, event, detail) VALUES (
        OLD.message_id, OLD.receipt_us, OLD.receipt_at, 'receipt', OLD.receipt_detail);
END;
"""

# The writer archives an overwritten step itself (gateway.store.statements: each step's UPDATE
# only matches a part whose column is still empty; only when it does not, the old value is
# copied into history and the column emptied first). Exactly what the triggers did, but the
# triggers ran their program on every UPDATE of those columns, the common first write included:
# about a sixth of the store's SQLite time per message.
_V6 = """
DROP TRIGGER history_keeps_submit;
DROP TRIGGER history_keeps_resp;
DROP TRIGGER history_keeps_receipt;
"""

# Events numbered by the writer (the committed head plus one) rather than by AUTOINCREMENT,
# whose sqlite_sequence row was one more page in the WAL for every commit that appended an
# event. A number is still never reused: event_floor keeps the highest number a prune may have
# deleted (here, the old sequence), and the head is the larger of it and the newest row.
_V7 = """
CREATE TABLE event_floor (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO event_floor (id, seq)
    VALUES (1, COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0));
CREATE TABLE events_v7 (
    seq   INTEGER PRIMARY KEY,
    at    TEXT NOT NULL,
    at_ts REAL NOT NULL,                       -- Unix seconds, for retention
    kind  TEXT NOT NULL,
    body  TEXT NOT NULL                        -- JSON
);
INSERT INTO events_v7 (seq, at, at_ts, kind, body) SELECT seq, at, at_ts, kind, body FROM events;
DROP TABLE events;
ALTER TABLE events_v7 RENAME TO events;
"""

# Numbers whose owner opted out of our messages (a provider reported them unsubscribed: Twilio's
# 21610 and the like): sms.send refuses them. The first report is kept; `detail` is its JSON.
_V8 = """
CREATE TABLE opt_outs (
    number TEXT PRIMARY KEY,                   -- E.164 with the "+"
    source TEXT NOT NULL,                      -- who said so, e.g. "twilio:21610"
    detail TEXT NOT NULL,                      -- JSON
    at     TEXT NOT NULL
) WITHOUT ROWID;
"""

MIGRATIONS: list[str] = [_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(conn: sqlite3.Connection) -> int:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version"
        " (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return row[0] or 0


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to SCHEMA_VERSION; returns the version found before.

    `conn` must be in autocommit mode (isolation_level=None). A database newer than this code
    is refused rather than written to.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = current_version(conn)
        if found > SCHEMA_VERSION:
            raise RuntimeError(
                f"database schema version {found} is newer than this code ({SCHEMA_VERSION})"
            )
        for version in range(found, SCHEMA_VERSION):
            for statement in _statements(MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (version + 1, time.time()),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT on its own; split so the migration stays one transaction
    # (a trigger's body holds semicolons of its own: a statement ends where SQLite says it does)
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    statements, pending = [], ""
    for piece in "\n".join(lines).split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip().removesuffix(";"))
            pending = ""
    if pending.strip(" \n;"):
        raise ValueError(f"incomplete statement in migration: {pending.strip()[:60]!r}")
    return statements
