"""The writer's hot statements: the native backend and its pure-Python twin give the same
return values, rows and exceptions, and the native one shares the connection's transaction."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.store import statements as hot
from gateway.store.schema import migrate
from gateway.store.statements import (
    FIND_PART,
    INSERT_EVENT,
    INSERT_MESSAGE,
    INSERT_PART,
    INSERT_PART_SUBMITTED,
    SQL,
    UPDATE_RECEIPT,
    UPDATE_RESP,
    UPDATE_SUBMIT,
    PureStatements,
    write_step,
)

REPO = Path(__file__).resolve().parent.parent


def native_module() -> Any:
    try:
        from gateway.store import _native_statements  # type: ignore[attr-defined]
    except ImportError as exc:  # a missing build fails, never skips
        pytest.fail(f"the native store statements are not built ({exc}); run scripts/setup.sh")
    return _native_statements


def open_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA foreign_keys=ON")
    migrate(conn)
    return conn


BACKENDS: dict[str, Callable[[sqlite3.Connection, Path], Any]] = {
    "pure": lambda conn, path: PureStatements(conn),
    "native": lambda conn, path: native_module().NativeStatements(conn, str(path), SQL),
}


def message_row(message_id: str, **over: Any) -> tuple[Any, ...]:
    row: dict[str, Any] = {
        "id": message_id,
        "client_id": "acme",
        "client_ref": "ref-1",
        "idempotency_key": None,
        "source_addr": "ACME",
        "dest_addr": "+447700900123",
        "data_coding": 0,
        "payload": b"hello\x00\xff",
        "carrier": "sim0",
        "parts_total": 2,
        "created_at": "2026-11-28T19:00:00.000Z",
        "text": "héllo €",
        "concat_ref": 7,
        "validity_s": None,
        "priority": 1,
        "accepted_us": 1_764_356_400_000_000,
    }
    row.update(over)
    return tuple(row.values())


# (method, statement, params): a message's life, then every way a call can be refused
SCRIPT: list[tuple[str, int, tuple[Any, ...]]] = [
    ("run", INSERT_MESSAGE, message_row("m1")),
    ("run", INSERT_PART, ("m1", 1)),
    ("run", INSERT_PART, ("m1", 2)),
    ("step", UPDATE_SUBMIT, ("sim0", "2026-11-28T19:00:00.001Z", 10, "m1", 1)),
    ("step", UPDATE_SUBMIT, ("sim0", "2026-11-28T19:00:00.002Z", 11, "m1", 1)),  # resent
    ("step", UPDATE_RESP, ("carrier_accepted", "sim0", 0, "t", 12, "0A", "a", "m1", 1)),
    ("step", UPDATE_RESP, ("carrier_rejected", "sim0", 0x58, "t", 13, None, None, "m1", 2)),
    ("step", UPDATE_RECEIPT, ("enroute", None, "t", 14, '{"state":"enroute"}', None, "m1", 1)),
    ("step", UPDATE_RECEIPT, ("delivered", "000", "t", 15, '{"a":1}', "delivered", "m1", 1)),
    ("insert", INSERT_EVENT, (7, "t", 1.5, "receipt", '{"message_id":"m1"}')),
    ("insert", INSERT_EVENT, (8, "t", 2.25, "receipt", "{}")),
    ("insert", INSERT_EVENT, (8, "t", 3.0, "receipt", "{}")),  # the number is taken
    ("step", UPDATE_SUBMIT, ("sim0", "t", 16, "nobody", 1)),  # no such part: 0 rows
    ("run", INSERT_MESSAGE, message_row("m1")),  # the same id again
    ("run", INSERT_PART, ("ghost", 1)),  # foreign key
    ("run", INSERT_MESSAGE, message_row("m2", client_id=None)),  # NOT NULL
    ("run", INSERT_PART, ("m1", 3, "extra")),  # too many bindings
    ("run", INSERT_PART, ("m1",)),  # too few
    ("run", INSERT_PART, ("m1", object())),  # not bindable
    ("run", INSERT_PART, ("m1", 2**70)),  # too big for an INTEGER
    ("run", INSERT_MESSAGE, message_row("m3", payload=bytearray(b"ba"), text="\U0001f600")),
    ("run", INSERT_PART, ("m3", True)),  # bool binds as 1
    ("run", INSERT_MESSAGE, message_row("m4", parts_total=1)),
    ("run", INSERT_PART_SUBMITTED, ("m4", 1, "sim0", "2026-11-28T19:00:01.000Z", 17)),
    ("step", UPDATE_SUBMIT, ("sim0", "t", 18, "m4", 1)),  # resent: the first one to history
    ("run", INSERT_PART_SUBMITTED, ("m4", 1, "sim0", "t", 19)),  # the part exists
    ("first_row", FIND_PART, ("sim0", "a")),  # m1's part 1, by its normalised carrier id
    ("first_row", FIND_PART, ("sim0", "nothing")),  # no row: None
    ("first_row", FIND_PART, ("sim0",)),  # too few bindings
    ("run", 99, ("m1", 1)),  # no such statement
]


def outcome(statements: Any, method: str, which: int, params: tuple[Any, ...]) -> tuple[Any, ...]:
    try:
        if method == "step":
            return ("ok", write_step(statements, which, params))
        return ("ok", getattr(statements, method)(which, params))
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc))


def dump(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    tables = ["messages", "message_parts", "history", "events"]
    return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in tables}


def test_both_backends_give_the_same_results_rows_and_errors(tmp_path: Path) -> None:
    results, rows = {}, {}
    for name, make in BACKENDS.items():
        path = tmp_path / f"{name}.db"
        conn = open_db(path)
        statements = make(conn, path)
        conn.execute("BEGIN IMMEDIATE")
        results[name] = [outcome(statements, *step) for step in SCRIPT]
        conn.execute("COMMIT")
        rows[name] = dump(conn)
        statements.close()
        conn.close()
    pure = results["pure"]
    # the pure backend reports "no statement" as an IndexError of its SQL tuple; the native one
    # as a ProgrammingError: an index outside SQL is the caller's bug either way
    assert pure[-1][:2] == ("error", "IndexError")
    assert results["native"][-1][:2] == ("error", "ProgrammingError")
    assert results["native"][:-1] == pure[:-1]
    assert rows["native"] == rows["pure"]
    assert [r[0] for r in pure[:11]] == ["ok"] * 11  # the life of a message went through
    assert pure[3][1] == pure[4][1] == 1 and pure[12] == ("ok", 0)
    assert pure[9] == ("ok", 7) and pure[10] == ("ok", 8)  # the event numbers given
    assert pure[11][:2] == ("error", "IntegrityError")  # a number is never given twice
    errors = {r[1] for r in pure[13:20]}
    assert errors == {"IntegrityError", "ProgrammingError", "OverflowError"}
    history = rows["pure"]["history"]
    # the first submit and the enroute receipt were overwritten: both kept in history, and so
    # was the submit that m4 was inserted with
    assert [(h[0], h[1], h[3]) for h in history] == [
        ("m1", 10, "submitted"),
        ("m1", 14, "receipt"),
        ("m4", 17, "submitted"),
    ]
    assert history[1][4] == '{"state":"enroute"}'
    assert pure[-7:-4] == [("ok", 1), ("ok", 1), ("error", "IntegrityError", pure[-5][2])]
    assert pure[-4:-2] == [("ok", ("m1", 1)), ("ok", None)]
    assert pure[-2][:2] == ("error", "ProgrammingError")
    assert json.loads(history[0][4]) == {"part": 1, "carrier": "sim0"}


# what a column can hold (bool binds as an int: only on the way in)
SQL_VALUES = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(),
    st.binary(),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(SQL_VALUES | st.booleans(), min_size=3, max_size=3))
def test_values_bind_as_the_sqlite3_module_binds_them(values: list[Any]) -> None:
    sql = ("INSERT INTO t VALUES (?, ?, ?)",)
    stored = []
    for backend in ("pure", "native"):
        conn = sqlite3.connect(":memory:", isolation_level=None)
        conn.execute("CREATE TABLE t (a, b, c)")
        if backend == "pure":
            conn.execute(sql[0], tuple(values))
        else:
            # the native backend needs a file-backed connection to check its handle against
            stored.append(_native_insert(values))
            continue
        stored.append(
            conn.execute("SELECT a, typeof(a), b, typeof(b), c, typeof(c) FROM t").fetchall()
        )
    assert stored[0] == stored[1]


_scratch: dict[str, Any] = {}


def _native_insert(values: list[Any]) -> list[tuple[Any, ...]]:
    # one scratch database for every example (hypothesis runs many)
    if not _scratch:
        import tempfile

        path = Path(tempfile.mkdtemp()) / "bind.db"
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("CREATE TABLE t (a, b, c)")
        sql = ("INSERT INTO t VALUES (?, ?, ?)",)
        _scratch.update(conn=conn, stmts=native_module().NativeStatements(conn, str(path), sql))
    conn = _scratch["conn"]
    conn.execute("DELETE FROM t")
    _scratch["stmts"].run(0, tuple(values))
    return conn.execute("SELECT a, typeof(a), b, typeof(b), c, typeof(c) FROM t").fetchall()


def test_native_writes_share_the_connections_transaction(tmp_path: Path) -> None:
    path = tmp_path / "tx.db"
    conn = open_db(path)
    statements = BACKENDS["native"](conn, path)
    conn.execute("BEGIN IMMEDIATE")
    statements.run(INSERT_MESSAGE, message_row("kept"))
    conn.execute("SAVEPOINT job")
    statements.run(INSERT_MESSAGE, message_row("undone"))
    conn.execute("ROLLBACK TO job")
    conn.execute("RELEASE job")
    assert conn.in_transaction
    conn.execute("COMMIT")
    conn.execute("BEGIN IMMEDIATE")
    statements.run(INSERT_MESSAGE, message_row("rolled back"))
    conn.execute("ROLLBACK")
    other = sqlite3.connect(path)
    assert other.execute("SELECT id FROM messages").fetchall() == [("kept",)]
    other.close()
    statements.close()
    conn.close()


def test_native_refuses_a_handle_it_cannot_vouch_for(tmp_path: Path) -> None:
    native = native_module()
    path = tmp_path / "a.db"
    conn = open_db(path)
    with pytest.raises(native.Unsupported, match="not"):
        native.NativeStatements(conn, str(tmp_path / "b.db"), SQL)  # another file's handle
    with pytest.raises(native.Unsupported):
        native.NativeStatements(object(), str(path), SQL)
    conn.close()
    with pytest.raises(native.Unsupported, match="closed"):
        native.NativeStatements(conn, str(path), SQL)
    with pytest.raises(sqlite3.OperationalError):  # SQL that does not prepare
        native.NativeStatements(open_db(path), str(path), ("INSERT INTO nowhere VALUES (1)",))


def test_load_statements_picks_native_and_honours_gateway_pure(tmp_path: Path) -> None:
    code = (
        "import sqlite3, sys; from gateway.store.statements import load_statements;"
        "from gateway.store.schema import migrate;"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None); migrate(c);"
        "print(load_statements(c, sys.argv[1]).backend)"
    )
    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_PURE"}
    for extra, expected in (({}, "native"), ({"GATEWAY_PURE": "1"}, "pure")):
        result = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / "x.db")],
            env={**env, **extra},
            capture_output=True,
            text=True,
            cwd=REPO,
            check=True,
        )
        assert result.stdout.strip() == expected
    conn = open_db(tmp_path / "y.db")
    assert hot.load_statements(conn, str(tmp_path / "elsewhere.db")).backend == "pure"
    conn.close()


_texts = st.one_of(st.none(), st.text())


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=1, max_value=255),
    st.text(),
    st.text(),
    _texts,
    _texts,
    _texts,
    st.one_of(st.just(()), st.tuples(_texts)),
    st.dictionaries(st.text(), st.one_of(st.none(), st.text(), st.integers())),
)
def test_the_receipt_detail_is_written_as_the_json_encoder_writes_it(
    part: int,
    carrier: str,
    norm: str,
    state: str | None,
    err: str | None,
    stat: str | None,
    raw: tuple[str | None, ...],
    other: dict[str, Any],
) -> None:
    from gateway.store.sqlite_store import _json, _receipt_detail_json

    detail: dict[str, Any] = {
        "part": part,
        "carrier": carrier,
        "carrier_message_id": norm,
        "state": state,
        "err": err,
        "stat": stat,
    }
    if raw:
        detail["carrier_message_id_raw"] = raw[0]
    assert _receipt_detail_json(detail) == _json(detail)
    assert json.loads(_receipt_detail_json(detail)) == detail
    assert _receipt_detail_json(other) == _json(other)  # any other shape: the encoder itself
    assert _receipt_detail_json({**detail, "part": str(part)}) == _json(
        {**detail, "part": str(part)}
    )


_rows: dict[str, Any] = {}


@settings(max_examples=200, deadline=None)
@given(st.lists(SQL_VALUES, min_size=3, max_size=3))
def test_rows_read_back_as_the_sqlite3_module_reads_them(values: list[Any]) -> None:
    """first_row converts each column as the sqlite3 module does (and None for no row)."""
    if not _rows:
        import tempfile

        path = Path(tempfile.mkdtemp()) / "rows.db"
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, a, b, c)")
        sql = ("SELECT a, b, c FROM t WHERE k = ?",)
        native = native_module().NativeStatements(conn, str(path), sql)
        _rows.update(conn=conn, native=native, sql=sql[0])
    conn, native = _rows["conn"], _rows["native"]
    conn.execute("DELETE FROM t")
    conn.execute("INSERT INTO t VALUES (1, ?, ?, ?)", tuple(values))
    expected = conn.execute(_rows["sql"], (1,)).fetchone()  # what the pure twin returns
    row = native.first_row(0, (1,))
    assert row == expected and [type(v) for v in row] == [type(v) for v in expected]
    assert native.first_row(0, (2,)) is None
