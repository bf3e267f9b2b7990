"""The writer's hot statements: the few writes every message makes, run by index.

    hot = load_statements(conn, path)
    hot.run(UPDATE_SUBMIT, (carrier, at, us, message_id, part))   # -> rows changed
    hot.insert(INSERT_EVENT, (seq, at, ts, kind, body))           # -> the new rowid

Two backends give identical results (return values, rows written, exception classes and
messages): `PureStatements` over the `sqlite3` module, and the native one
(`gateway.store._native_statements`, built from `native/store_statements.pyx`), which keeps each
statement prepared on the same SQLite connection and binds and steps it without the module's
per-call work (a cursor object, a statement-cache lookup, the GIL dropped and taken back around
every step). It runs in the writer's own transaction, so it changes nothing about batching,
rollback or savepoints. ``GATEWAY_PURE=1`` forces the pure one; so does a build without the
extension, or a Python whose `sqlite3.Connection` layout the extension does not know.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from typing import Any, Protocol

log = logging.getLogger(__name__)

INSERT_MESSAGE = 0
INSERT_PART = 1
UPDATE_SUBMIT = 2
UPDATE_RESP = 3
UPDATE_RECEIPT = 4
INSERT_EVENT = 5
# A step's column already holds an earlier one (a part sent again, a second resp, the final
# receipt after an intermediate one): copy it into history, then empty the columns (schema._V6).
ARCHIVE_SUBMIT = 6
ARCHIVE_RESP = 7
ARCHIVE_RECEIPT = 8
REOPEN_SUBMIT = 9
REOPEN_RESP = 10
REOPEN_RECEIPT = 11
# A new message's first part recorded as submitted with its acceptance (the link had room for
# it, see CarrierLink.reserve_direct): the insert and the step in one statement.
INSERT_PART_SUBMITTED = 12
# The part a carrier's (normalised) message id belongs to, newest first: a receipt the writer's
# memory of recently answered parts no longer holds.
FIND_PART = 13

#: by index above; the native backend prepares exactly these strings
SQL: tuple[str, ...] = (
    "INSERT INTO messages (id, client_id, client_ref, idempotency_key, source_addr,"
    " dest_addr, data_coding, payload, carrier, parts_total, created_at,"
    " text, concat_ref, validity_s, priority, accepted_us)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "INSERT INTO message_parts (message_id, part_no, state) VALUES (?, ?, 'pending')",
    "UPDATE message_parts SET state = 'submitted', carrier = ?, submitted_at = ?,"
    " submitted_us = ?, resp_status = NULL, resp_at = NULL, resp_us = NULL,"
    " carrier_message_id_raw = NULL, carrier_message_id_norm = NULL"
    " WHERE message_id = ? AND part_no = ? AND submitted_us IS NULL AND resp_us IS NULL",
    "UPDATE message_parts SET state = ?, carrier = ?, resp_status = ?, resp_at = ?,"
    " resp_us = ?, carrier_message_id_raw = ?, carrier_message_id_norm = ?"
    " WHERE message_id = ? AND part_no = ? AND resp_us IS NULL",
    "UPDATE message_parts SET receipt_state = ?, receipt_err = ?, receipt_at = ?,"
    " receipt_us = ?, receipt_detail = ?, state = COALESCE(?, state)"
    " WHERE message_id = ? AND part_no = ? AND receipt_us IS NULL",
    "INSERT INTO events (seq, at, at_ts, kind, body) VALUES (?, ?, ?, ?, ?)",
    "INSERT INTO history (message_id, seq, at, event, detail)"
    " SELECT message_id, submitted_us, submitted_at, 'submitted',"
    " json_object('part', part_no, 'carrier', carrier)"
    " FROM message_parts WHERE message_id = ? AND part_no = ? AND submitted_us IS NOT NULL",
    "INSERT INTO history (message_id, seq, at, event, detail)"
    " SELECT message_id, resp_us, resp_at, 'resp',"
    " json_object('part', part_no, 'carrier', carrier, 'status', resp_status,"
    " 'carrier_message_id', carrier_message_id_raw)"
    " FROM message_parts WHERE message_id = ? AND part_no = ? AND resp_us IS NOT NULL",
    "INSERT INTO history (message_id, seq, at, event, detail)"
    " SELECT message_id, receipt_us, receipt_at, 'receipt', receipt_detail"
    " FROM message_parts WHERE message_id = ? AND part_no = ? AND receipt_us IS NOT NULL",
    "UPDATE message_parts SET submitted_us = NULL, resp_us = NULL"
    " WHERE message_id = ? AND part_no = ?",
    "UPDATE message_parts SET resp_us = NULL WHERE message_id = ? AND part_no = ?",
    "UPDATE message_parts SET receipt_us = NULL WHERE message_id = ? AND part_no = ?",
    "INSERT INTO message_parts (message_id, part_no, state, carrier, submitted_at, submitted_us)"
    " VALUES (?, ?, 'submitted', ?, ?, ?)",
    "SELECT message_id, part_no FROM message_parts"
    " WHERE carrier = ? AND carrier_message_id_norm = ? ORDER BY message_id DESC LIMIT 1",
)

#: for each step's UPDATE: what to archive, and how to empty its columns, when it matched nothing
_OVERWRITE = {
    UPDATE_SUBMIT: ((ARCHIVE_SUBMIT, ARCHIVE_RESP), REOPEN_SUBMIT),
    UPDATE_RESP: ((ARCHIVE_RESP,), REOPEN_RESP),
    UPDATE_RECEIPT: ((ARCHIVE_RECEIPT,), REOPEN_RECEIPT),
}


def write_step(statements: Statements, which: int, params: tuple[Any, ...]) -> int:
    """Run a step's UPDATE (UPDATE_SUBMIT, UPDATE_RESP or UPDATE_RECEIPT, whose last two
    parameters are the message id and part); when the part already holds such a step, that one
    goes to history first. The rows changed: 0 only when there is no such part."""
    changed = statements.run(which, params)
    if changed:
        return changed
    archives, reopen = _OVERWRITE[which]
    key = params[-2:]
    for archive in archives:
        statements.run(archive, key)
    if statements.run(reopen, key) == 0:
        return 0  # no such part
    return statements.run(which, params)


class Statements(Protocol):
    backend: str

    def run(self, which: int, params: tuple[Any, ...]) -> int:
        """Run statement `which` with `params`; the number of rows it changed."""
        ...

    def insert(self, which: int, params: tuple[Any, ...]) -> int:
        """Run INSERT statement `which` with `params`; the rowid of the row it added."""
        ...

    def first_row(self, which: int, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """Run query `which` with `params`; its first row, or None."""
        ...

    def close(self) -> None: ...


class PureStatements:
    """The pure-Python twin: the `sqlite3` module's own execute."""

    backend = "pure"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._execute = conn.execute

    def run(self, which: int, params: tuple[Any, ...]) -> int:
        return self._execute(SQL[which], params).rowcount

    def insert(self, which: int, params: tuple[Any, ...]) -> int:
        return int(self._execute(SQL[which], params).lastrowid or 0)

    def first_row(self, which: int, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._execute(SQL[which], params).fetchone()
        return row

    def close(self) -> None:
        pass


def load_statements(conn: sqlite3.Connection, path: str) -> Statements:
    """The hot statements for the writer's connection `conn` (opened on `path`)."""
    if os.environ.get("GATEWAY_PURE", "") not in ("", "0"):
        return PureStatements(conn)
    try:
        from gateway.store import _native_statements as native  # type: ignore[attr-defined]
    except ImportError as exc:
        log.warning("native store statements unavailable (%s); using the sqlite3 module", exc)
        return PureStatements(conn)
    try:
        statements: Statements = native.NativeStatements(conn, path, SQL)
    except native.Unsupported as exc:
        log.warning("native store statements not usable here (%s); using the sqlite3 module", exc)
        return PureStatements(conn)
    return statements
