# cython: language_level=3
"""The store writer's hot statements, prepared once and run through SQLite's C API on the
writer's own `sqlite3.Connection` (its handle, its transaction).

The pure-Python twin is `gateway.store.statements.PureStatements`; both give the same return
values, rows and exceptions (class and message). The handle is read from CPython's
`sqlite3.Connection` object, whose first field after the object header is the `sqlite3 *` in
CPython 3.11 to 3.13; on anything else `Unsupported` is raised and the caller uses the twin.

Steps run holding the GIL: each is a few microseconds of in-cache B-tree work inside the
writer's open transaction (the COMMIT, which does the I/O, still goes through the module and
releases it). Dropping the GIL per step, as the module does, makes the writer queue for it
again after every statement while the event loop runs.
"""

import os
import sqlite3 as _sqlite3
import sys

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.float cimport PyFloat_AsDouble
from cpython.long cimport PyLong_AsLongLong
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cpython.unicode cimport PyUnicode_AsUTF8AndSize


cdef extern from "sqlite3.h":
    ctypedef struct sqlite3:
        pass
    ctypedef struct sqlite3_stmt:
        pass
    ctypedef long long sqlite3_int64
    ctypedef void (*sqlite3_destructor_type)(void *)
    sqlite3_destructor_type SQLITE_STATIC
    sqlite3_destructor_type SQLITE_TRANSIENT
    enum:
        SQLITE_OK
        SQLITE_ERROR
        SQLITE_INTERNAL
        SQLITE_PERM
        SQLITE_ABORT
        SQLITE_BUSY
        SQLITE_LOCKED
        SQLITE_NOMEM
        SQLITE_READONLY
        SQLITE_INTERRUPT
        SQLITE_IOERR
        SQLITE_CORRUPT
        SQLITE_NOTFOUND
        SQLITE_FULL
        SQLITE_CANTOPEN
        SQLITE_PROTOCOL
        SQLITE_EMPTY
        SQLITE_SCHEMA
        SQLITE_TOOBIG
        SQLITE_CONSTRAINT
        SQLITE_MISMATCH
        SQLITE_MISUSE
        SQLITE_RANGE
        SQLITE_ROW
        SQLITE_DONE
        SQLITE_PREPARE_PERSISTENT
        SQLITE_INTEGER
        SQLITE_FLOAT
        SQLITE_TEXT
        SQLITE_BLOB
        SQLITE_NULL
    int sqlite3_prepare_v3(sqlite3 *db, const char *sql, int nbyte, unsigned int flags,
                           sqlite3_stmt **stmt, const char **tail)
    int sqlite3_bind_null(sqlite3_stmt *stmt, int i)
    int sqlite3_bind_int64(sqlite3_stmt *stmt, int i, sqlite3_int64 value)
    int sqlite3_bind_double(sqlite3_stmt *stmt, int i, double value)
    int sqlite3_bind_text(sqlite3_stmt *stmt, int i, const char *text, int n,
                          sqlite3_destructor_type destructor)
    int sqlite3_bind_blob(sqlite3_stmt *stmt, int i, const void *data, int n,
                          sqlite3_destructor_type destructor)
    int sqlite3_bind_parameter_count(sqlite3_stmt *stmt)
    int sqlite3_step(sqlite3_stmt *stmt)
    int sqlite3_reset(sqlite3_stmt *stmt)
    int sqlite3_clear_bindings(sqlite3_stmt *stmt)
    int sqlite3_finalize(sqlite3_stmt *stmt)
    int sqlite3_changes(sqlite3 *db)
    int sqlite3_column_count(sqlite3_stmt *stmt)
    int sqlite3_column_type(sqlite3_stmt *stmt, int i)
    sqlite3_int64 sqlite3_column_int64(sqlite3_stmt *stmt, int i)
    double sqlite3_column_double(sqlite3_stmt *stmt, int i)
    const unsigned char *sqlite3_column_text(sqlite3_stmt *stmt, int i)
    const void *sqlite3_column_blob(sqlite3_stmt *stmt, int i)
    int sqlite3_column_bytes(sqlite3_stmt *stmt, int i)
    sqlite3_int64 sqlite3_last_insert_rowid(sqlite3 *db)
    const char *sqlite3_errmsg(sqlite3 *db)
    int sqlite3_extended_errcode(sqlite3 *db)
    int sqlite3_libversion_number()
    const char *sqlite3_db_filename(sqlite3 *db, const char *name)


cdef extern from *:
    """
    /* CPython 3.11-3.13 Modules/_sqlite/connection.h: pysqlite_Connection starts so. */
    typedef struct { PyObject_HEAD sqlite3 *db; } gw_pysqlite_head;
    static sqlite3 *gw_connection_db(PyObject *conn) { return ((gw_pysqlite_head *)conn)->db; }
    """
    sqlite3 *gw_connection_db(object conn)


class Unsupported(Exception):
    """This Python's sqlite3.Connection cannot be used from here (see the module docstring)."""


cdef object _error_class(int code):
    # as CPython's Modules/_sqlite/util.c maps result codes to exceptions
    code &= 0xff
    if code == SQLITE_INTERNAL or code == SQLITE_NOTFOUND:
        return _sqlite3.InternalError
    if code == SQLITE_NOMEM:
        return MemoryError
    if code in (SQLITE_ERROR, SQLITE_PERM, SQLITE_ABORT, SQLITE_BUSY, SQLITE_LOCKED,
                SQLITE_READONLY, SQLITE_INTERRUPT, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN,
                SQLITE_PROTOCOL, SQLITE_EMPTY, SQLITE_SCHEMA):
        return _sqlite3.OperationalError
    if code == SQLITE_CORRUPT:
        return _sqlite3.DatabaseError
    if code == SQLITE_TOOBIG:
        return _sqlite3.DataError
    if code == SQLITE_CONSTRAINT or code == SQLITE_MISMATCH:
        return _sqlite3.IntegrityError
    if code == SQLITE_MISUSE or code == SQLITE_RANGE:
        return _sqlite3.InterfaceError
    return _sqlite3.DatabaseError


cdef class NativeStatements:
    """`NativeStatements(conn, path, sql)`: `sql[i]` prepared on `conn`, which must be the
    `sqlite3.Connection` opened on `path`. Use from one thread (the writer's)."""

    cdef sqlite3 *db
    cdef object conn  # kept alive: the handle is its
    cdef sqlite3_stmt **prepared
    cdef Py_ssize_t count
    cdef public str backend

    def __cinit__(self):
        self.db = NULL
        self.prepared = NULL
        self.count = 0

    def __init__(self, conn, str path, sql):
        impl = sys.implementation.name
        if impl != "cpython" or not (3, 11) <= sys.version_info[:2] <= (3, 13):
            raise Unsupported(f"{impl} {sys.version_info[:2]}: sqlite3.Connection layout unknown")
        if type(conn) is not _sqlite3.Connection and not isinstance(conn, _sqlite3.Connection):
            raise Unsupported(f"not a sqlite3.Connection: {type(conn).__name__}")
        wanted = tuple(_sqlite3.sqlite_version_info)
        number = sqlite3_libversion_number()
        found = (number // 1000000, number // 1000 % 1000, number % 1000)
        if found != wanted:
            raise Unsupported(f"built against SQLite {found}, the sqlite3 module uses {wanted}")
        cdef sqlite3 *db = gw_connection_db(conn)
        if db == NULL:
            raise Unsupported("the connection is closed")
        cdef const char *name = sqlite3_db_filename(db, b"main")
        opened = "" if name == NULL else name.decode("utf-8", "replace")
        if not opened or os.path.realpath(opened) != os.path.realpath(path):
            raise Unsupported(f"the handle's database is {opened!r}, not {path!r}")
        self.db = db
        self.conn = conn
        self.backend = "native"
        cdef Py_ssize_t n = len(sql)
        self.prepared = <sqlite3_stmt **>PyMem_Calloc(n, sizeof(sqlite3_stmt *))
        if self.prepared == NULL:
            raise MemoryError()
        self.count = n
        cdef bytes text
        cdef sqlite3_stmt *stmt
        cdef int rc
        for i in range(n):
            text = sql[i].encode("utf-8")
            stmt = NULL
            rc = sqlite3_prepare_v3(db, PyBytes_AS_STRING(text), <int>PyBytes_GET_SIZE(text) + 1,
                                    SQLITE_PREPARE_PERSISTENT, &stmt, NULL)
            if rc != SQLITE_OK:
                raise _error_class(rc)(sqlite3_errmsg(db).decode("utf-8", "replace"))
            self.prepared[i] = stmt

    def __dealloc__(self):
        self._finalize()

    cdef void _finalize(self):
        if self.prepared != NULL:
            for i in range(self.count):
                if self.prepared[i] != NULL:
                    sqlite3_finalize(self.prepared[i])
            PyMem_Free(self.prepared)
            self.prepared = NULL
        self.count = 0

    def close(self):
        """Finalize the statements; call before the connection is closed."""
        self._finalize()
        self.conn = None
        self.db = NULL

    cdef sqlite3_stmt *_stmt(self, Py_ssize_t which) except NULL:
        if which < 0 or which >= self.count or self.prepared == NULL:
            raise _sqlite3.ProgrammingError(f"no statement {which}")
        return self.prepared[which]

    cdef int _step(self, sqlite3_stmt *stmt, tuple params) except -1:
        _check_count(stmt, params)
        cdef int rc
        try:
            _bind_all(stmt, params)
            rc = sqlite3_step(stmt)
            while rc == SQLITE_ROW:  # RETURNING: not used by these, but never leave it active
                rc = sqlite3_step(stmt)
            if rc != SQLITE_DONE:
                rc = sqlite3_extended_errcode(self.db)
                raise _error_class(rc)(sqlite3_errmsg(self.db).decode("utf-8", "replace"))
        finally:
            # Bound text and blobs point into the params' own buffers (SQLITE_STATIC): clear
            # them with the reset, so no pointer outlives the call.
            sqlite3_reset(stmt)
            sqlite3_clear_bindings(stmt)
        return 0

    def run(self, Py_ssize_t which, tuple params):
        """Run statement `which` with `params`; the number of rows it changed."""
        self._step(self._stmt(which), params)
        return sqlite3_changes(self.db)

    def insert(self, Py_ssize_t which, tuple params):
        """Run INSERT statement `which` with `params`; the rowid of the row it added."""
        self._step(self._stmt(which), params)
        return sqlite3_last_insert_rowid(self.db)

    def first_row(self, Py_ssize_t which, tuple params):
        """Run query `which` with `params`; its first row as a tuple, or None."""
        cdef sqlite3_stmt *stmt = self._stmt(which)
        _check_count(stmt, params)
        cdef int rc
        try:
            _bind_all(stmt, params)
            rc = sqlite3_step(stmt)
            if rc == SQLITE_ROW:
                return _row(stmt)
            if rc != SQLITE_DONE:
                rc = sqlite3_extended_errcode(self.db)
                raise _error_class(rc)(sqlite3_errmsg(self.db).decode("utf-8", "replace"))
            return None
        finally:
            sqlite3_reset(stmt)
            sqlite3_clear_bindings(stmt)


cdef int _check_count(sqlite3_stmt *stmt, tuple params) except -1:
    cdef Py_ssize_t n = len(params)
    cdef int expected = sqlite3_bind_parameter_count(stmt)
    if n != expected:
        raise _sqlite3.ProgrammingError(
            f"Incorrect number of bindings supplied. The current statement uses {expected},"
            f" and there are {n} supplied."
        )
    return 0


cdef int _bind_all(sqlite3_stmt *stmt, tuple params) except -1:
    for i in range(len(params)):
        _bind(stmt, <int>i + 1, params[i])
    return 0


cdef tuple _row(sqlite3_stmt *stmt):
    # the sqlite3 module's conversion (text_factory=str, no converters)
    cdef int count = sqlite3_column_count(stmt)
    cdef list values = []
    cdef int kind
    cdef int size
    for i in range(count):
        kind = sqlite3_column_type(stmt, i)
        if kind == SQLITE_INTEGER:
            values.append(sqlite3_column_int64(stmt, i))
        elif kind == SQLITE_FLOAT:
            values.append(sqlite3_column_double(stmt, i))
        elif kind == SQLITE_TEXT:
            text = sqlite3_column_text(stmt, i)
            size = sqlite3_column_bytes(stmt, i)
            try:
                values.append(text[:size].decode("utf-8"))
            except UnicodeDecodeError:
                raise _sqlite3.OperationalError(
                    f"Could not decode to UTF-8 column '{i}'"
                ) from None
        elif kind == SQLITE_BLOB:
            size = sqlite3_column_bytes(stmt, i)
            values.append((<const char *>sqlite3_column_blob(stmt, i))[:size] if size else b"")
        else:
            values.append(None)
    return tuple(values)


cdef int _bind(sqlite3_stmt *stmt, int i, object value) except -1:
    # the sqlite3 module's adaptation: None, int (bool too), float, str, bytes-like
    cdef int rc
    cdef Py_ssize_t size
    cdef const char *text
    cdef sqlite3_int64 number
    if value is None:
        rc = sqlite3_bind_null(stmt, i)
    elif isinstance(value, int):
        try:
            number = PyLong_AsLongLong(value)
        except OverflowError:
            raise OverflowError("Python int too large to convert to SQLite INTEGER") from None
        rc = sqlite3_bind_int64(stmt, i, number)
    elif isinstance(value, float):
        rc = sqlite3_bind_double(stmt, i, PyFloat_AsDouble(value))
    elif isinstance(value, str):
        text = PyUnicode_AsUTF8AndSize(value, &size)
        if size > 0x7FFFFFFF:
            raise OverflowError("string longer than INT_MAX bytes")
        rc = sqlite3_bind_text(stmt, i, text, <int>size, SQLITE_STATIC)
    elif isinstance(value, bytes):
        size = PyBytes_GET_SIZE(value)
        if size > 0x7FFFFFFF:
            raise OverflowError("BLOB longer than INT_MAX bytes")
        rc = sqlite3_bind_blob(stmt, i, PyBytes_AS_STRING(value), <int>size, SQLITE_STATIC)
    elif isinstance(value, (bytearray, memoryview)):
        copy = bytes(value)  # a temporary: SQLite copies it (SQLITE_TRANSIENT)
        size = PyBytes_GET_SIZE(copy)
        if size > 0x7FFFFFFF:
            raise OverflowError("BLOB longer than INT_MAX bytes")
        rc = sqlite3_bind_blob(stmt, i, PyBytes_AS_STRING(copy), <int>size, SQLITE_TRANSIENT)
    else:
        raise _sqlite3.ProgrammingError(
            f"Error binding parameter {i}: type '{type(value).__name__}' is not supported"
        )
    if rc != SQLITE_OK:
        raise _sqlite3.InterfaceError(f"Error binding parameter {i}")
    return 0
