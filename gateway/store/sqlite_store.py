"""The message store on SQLite: WAL mode, one writer thread, group commit.

Durability contract: every write method returns an `asyncio.Future` that resolves only after
the COMMIT of the batch holding it has returned. The write is queued by the call itself, so
writes are applied in call order, and StoreBusy / StoreClosed are raised by the call. With
`synchronous="normal"` (the default) a committed batch survives a process crash (kill -9) but
may be lost in a power cut; `"full"` fsyncs the WAL on every commit and survives both, at the
price of one fsync per batch.

Writer: a single thread owns the only writing connection. Callers enqueue a job (a function of
the connection) and get an `asyncio.Future`. The writer opens a transaction, runs jobs as they
arrive and commits when `group_commit_ms` has passed since the batch opened or
`group_commit_rows` jobs are in it, whichever comes first. With the default of 0 it commits as
soon as it has taken every queued job: writes arriving during a commit form the next batch, so
batches grow with load and a lone write waits for nothing. Jobs run without savepoints; when
one raises (rare: an unknown part, a bad ack), the whole batch is rolled back and run again
with each job inside its own SAVEPOINT, so the failing one is rolled back alone and the others
still commit. Futures are resolved through one `loop.call_soon_threadsafe` per batch after the
COMMIT; if the COMMIT fails every job of the batch gets the error. Cancelling an awaiting
caller does not cancel its write.

Bound: at most `max_queue` jobs wait for the writer. `accept` then raises `StoreBusy` at once
(retriable: answer the client with a throttling error); writes about messages already accepted
(submit, resp, receipts, events) may use a reserve up to twice that before they raise it too.

Readers: a small thread pool, each thread with its own read-only connection; WAL lets them read
the last committed state while the writer works.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import c_make_encoder  # type: ignore[attr-defined]
from json.encoder import encode_basestring as _encode_str  # the C one
from typing import Any, Literal, TypeVar, overload

from gateway.running_loop import running_loop
from gateway.store.ids import new_message_id
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
    Statements,
    load_statements,
    write_step,
)

T = TypeVar("T")
CHECKPOINT_IDLE_S = 1.0  # the checkpointer's longest wait while nothing is written
CLOCK_LEAD_US = 1_000_000  # how far ahead of the writer's clock its saved mark is
# The page size of a new database (an existing one keeps its own). 8 KiB rather than SQLite's
# 4 KiB default: a commit of a batch writes about a third fewer WAL frames (each two pwrite
# calls) and the checkpoints copy fewer pages; the writer's CPU per message was about 5% less
# in a store-only replay (16 KiB was no better than 4).
PAGE_SIZE = 8192
WAL_RESTART_FRAMES = 2048  # about 16 MiB of 8 KiB pages: then the writer makes it start over
WAL_SIZE_LIMIT = 32 * 1024 * 1024  # a WAL that grew past this is cut back when it restarts
# Page caches bound the store's memory: the writer's holds the tails of its tables (what it
# writes next), readers and the checkpointer read little.
WRITER_CACHE_KIB = 1024
READER_CACHE_KIB = 512
ANSWERED_KEPT = 10_000  # parts whose receipt the writer finds without the index (~3 MiB at most)
log = logging.getLogger(__name__)
Job = Callable[["_WriterConnection"], Any]
EventListener = Callable[[int, "list[Event]"], None]
#: ``then(error, result)``: called on the caller's loop once the write's batch has committed
#: (error None) or failed (result None). Cheaper than a future for hot paths: no callback has
#: to be scheduled on the loop when it completes.
Then = Callable[[BaseException | None, T], None]

#: part states: pending -> submitted -> carrier_accepted | carrier_rejected -> delivered | failed;
#: pending | submitted -> expired (validity ran out before it was sent)
FINAL_FAILED_RECEIPTS = frozenset({"expired", "deleted", "undeliverable", "rejected"})


class StoreError(Exception):
    """Base of the store's own errors."""


class StoreBusy(StoreError):
    """The writer queue is full. Nothing was written; the operation may be retried later."""


class StoreClosed(StoreError):
    """The store is closed (or its writer failed); nothing was written."""


class UnknownPart(StoreError, LookupError):
    """A write named a message id / part number that is not in the store."""


# not frozen: built per message (docs/ARCHITECTURE.md, "Per-message objects")
@dataclass(slots=True)
class NewMessage:
    client_id: str
    source_addr: str
    dest_addr: str
    payload: bytes
    data_coding: int = 0
    parts_total: int = 1
    client_ref: str | None = None
    idempotency_key: str | None = None
    carrier: str | None = None
    text: str | None = None  # kept to rebuild the parts after a restart; None for binary
    concat_ref: int | None = None  # the concatenation reference the parts were built with
    validity_s: int | None = None  # None: the SMSC's default validity
    priority: int | None = None
    # Part 1 is recorded as submitted to `carrier` in the same write (the carrier link reserved
    # room to send it as soon as this commits), instead of pending and a submit record later.
    first_part_submitted: bool = False


@dataclass(frozen=True, slots=True)
class PartRecord:
    part_no: int
    state: str
    carrier: str | None
    carrier_message_id_raw: str | None
    carrier_message_id_norm: str | None
    submitted_at: str | None
    resp_status: int | None
    resp_at: str | None
    receipt_state: str | None
    receipt_err: str | None
    receipt_at: str | None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    seq: int
    at: str
    event: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class MessageRecord:
    id: str
    client_id: str
    client_ref: str | None
    idempotency_key: str | None
    source_addr: str
    dest_addr: str
    data_coding: int
    payload: bytes
    state: str
    carrier: str | None
    parts_total: int
    created_at: str
    updated_at: str
    parts: list[PartRecord] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)
    text: str | None = None
    concat_ref: int | None = None
    validity_s: int | None = None
    priority: int | None = None

    def expires_at(self) -> float | None:
        """Unix seconds after which the message must not be sent (None: no validity given)."""
        if self.validity_s is None:
            return None
        created = datetime.fromisoformat(self.created_at.replace("Z", "+00:00"))
        return created.timestamp() + self.validity_s


@dataclass(frozen=True, slots=True)
class PendingPart:
    """A part to (re)send after a restart: never submitted, or submitted with no resp recorded."""

    message_id: str
    part_no: int
    state: str
    carrier: str | None


# not frozen: built per message (docs/ARCHITECTURE.md, "Per-message objects")
@dataclass(slots=True)
class ReceiptMatch:
    message_id: str
    part_no: int


# not frozen: built per message (docs/ARCHITECTURE.md, "Per-message objects")
@dataclass(slots=True)
class Event:
    seq: int
    at: str
    kind: str
    body: Any


class _WriterConnection(sqlite3.Connection):
    """The writer's connection, carrying the events appended by the open batch and the
    writer's clock (see schema._V5)."""

    appended: list[Event]
    history: list[tuple[str, int, str, str, str]]  # rows for _INSERT_HISTORY, in order
    clock_us: int  # the last step's place in history: strictly increasing microseconds
    clock_saved_us: int  # what writer_clock holds: never below clock_us once committed
    event_head: int  # the highest event number committed (or reserved by a prune)
    hot: Statements  # the writes every message makes (gateway.store.statements)
    steps: Any  # the compiled per-message steps (gateway.store._native_writer), or None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.appended = []
        self.history = []
        self.clock_us = self.clock_saved_us = self.event_head = 0
        self.hot = PureStatements(self)
        self.steps = None

    def tick(self, ts: float) -> int:
        """The place in history of a step written now (`ts`: its time, Unix seconds)."""
        us = int(ts * 1_000_000)
        self.clock_us = us = us if us > self.clock_us else self.clock_us + 1
        return us

    def save_clock(self) -> None:
        """Keep a high-water mark of the clock with the batch, so a restart never goes back.

        Saved CLOCK_LEAD_US ahead of the clock, so that only about one commit a second writes
        it (that row's page had been one more page in the WAL for every commit): a restart
        starts from the mark, ahead of anything used, which changes only how far apart the
        next steps' places are, never their order."""
        if self.clock_us > self.clock_saved_us:
            saved = self.clock_us + CLOCK_LEAD_US
            self.execute("UPDATE writer_clock SET us = ? WHERE id = 1", (saved,))
            self.clock_saved_us = saved

    def flush_history(self) -> None:
        if self.history:
            self.executemany(_INSERT_HISTORY, self.history)
            self.history.clear()


# A queued write: (function, caller's loop, future or None, then-callback or None). A plain
# tuple: one is built per write, and a class's __init__ costs several times more.
_Job = tuple[Job, asyncio.AbstractEventLoop, "asyncio.Future[Any] | None", "Then[Any] | None"]


_second_cache: list[Any] = [None, ""]  # [whole second, its "YYYY-MM-DDTHH:MM:SS" text]


def iso_utc(ts: float) -> str:
    """Unix seconds as ISO 8601 UTC with milliseconds, e.g. 2026-11-28T15:30:00.123Z."""
    ms = round(ts * 1000)
    second, millis = divmod(ms, 1000)
    cache = _second_cache
    if cache[0] != second:  # formatted once per second: this runs several times per message
        text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        cache[1], cache[0] = text, second
    return f"{cache[1]}.{millis:03d}Z"


# The C encoder without JSONEncoder.encode's Python frames (no circular-reference check: the
# store only serialises the plain dicts and lists it builds itself).
def _not_serialisable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_c_encode = c_make_encoder(None, _not_serialisable, _encode_str, None, ":", ",", False, False, True)


def _json(value: Any) -> str:
    return "".join(_c_encode(value, 0))


_RECEIPT_KEYS = ("part", "carrier", "carrier_message_id", "state", "err", "stat")
_RECEIPT_KEYS_RAW = (*_RECEIPT_KEYS, "carrier_message_id_raw")


def _receipt_detail_json(detail: dict[str, Any]) -> str:
    """`_json(detail)` for the receipt details the carrier links give (these keys in this
    order, an int part, str or None values) formatted in one f-string: a fifth of the C
    encoder's time, once per receipt. Any other detail goes to `_json`."""
    keys = tuple(detail)
    if keys != _RECEIPT_KEYS_RAW and keys != _RECEIPT_KEYS:
        return _json(detail)
    values = list(detail.values())
    if type(values[0]) is not int or not all(
        value is None or type(value) is str for value in values[1:]
    ):
        return _json(detail)
    part, carrier, norm, state, err, stat, *raw = values
    # each field's None test inline: a helper call per field was a third of this one's time
    enc = _encode_str
    text = (
        f'{{"part":{part},'
        f'"carrier":{"null" if carrier is None else enc(carrier)},'
        f'"carrier_message_id":{"null" if norm is None else enc(norm)},'
        f'"state":{"null" if state is None else enc(state)},'
        f'"err":{"null" if err is None else enc(err)},'
        f'"stat":{"null" if stat is None else enc(stat)}'
    )
    if raw:
        return f'{text},"carrier_message_id_raw":{"null" if raw[0] is None else enc(raw[0])}}}'
    return text + "}"


class SqliteStore:
    """See the module docstring. Open with `SqliteStore(path)`; `close()` flushes and stops."""

    def __init__(
        self,
        path: str,
        *,
        synchronous: Literal["normal", "full"] = "normal",
        group_commit_ms: float = 0.0,
        group_commit_rows: int = 256,
        max_queue: int = 10_000,
        readers: int = 2,
        unmatched_ttl_s: float = 3600.0,
        checkpoint_interval_s: float = 0.02,
    ) -> None:
        if synchronous not in ("normal", "full"):
            raise ValueError(f"synchronous must be 'normal' or 'full', not {synchronous!r}")
        if path == ":memory:" or not path:
            raise ValueError("the store needs a file path (readers use their own connections)")
        if group_commit_rows < 1 or max_queue < 1 or readers < 1:
            raise ValueError("group_commit_rows, max_queue and readers must be >= 1")
        self.path = path
        self.synchronous = synchronous
        self.unmatched_ttl_s = unmatched_ttl_s
        self._commit_s = max(group_commit_ms, 0.0) / 1000.0
        self._batch_rows = group_commit_rows
        self._max_queue = max_queue
        #: "native" or "pure": which backend runs the writer's hot statements
        self.statements_backend = ""
        #: number of COMMITs done by the writer, and jobs committed (for tests and benchmarks)
        self.commits = 0
        self.jobs_committed = 0
        self._event_listeners: list[tuple[asyncio.AbstractEventLoop, EventListener]] = []
        # writer thread only: the event log's head after the last commit, the head last
        # announced, and the (carrier, norm_id) keys that have unmatched receipts waiting
        self._event_head = 0
        self._unmatched_keys: set[tuple[str, str]] = set()
        # parts accepted by the carrier and awaiting a final receipt, by (carrier, normalised
        # id), newest last: most receipts find their part here instead of by an index lookup.
        # A subset of what the index would give: dropped when the part is sent again or its
        # final receipt is in, the oldest dropped past ANSWERED_KEPT, all after a rollback.
        self._answered: collections.OrderedDict[tuple[str, str], ReceiptMatch]
        self._answered = collections.OrderedDict()  # popitem(last=False): O(1), unlike a dict
        self._answered_key: dict[tuple[str, int], tuple[str, str]] = {}

        self._queue: collections.deque[_Job] = collections.deque()
        # Callers take the plain lock (cheap) to enqueue and wake only a writer that waits. The
        # writer sleeps on a SimpleQueue of wake-ups (C code on both sides, where a
        # threading.Condition runs Python for every notify and wait); a wake-up that arrives
        # after the writer stopped waiting only makes it look at the queue once more.
        self._lock = threading.Lock()
        self._wakeups: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._writer_waiting = False
        self._closing = False
        self._failure: BaseException | None = None
        self._ready = threading.Event()
        self._writer = threading.Thread(target=self._writer_main, name="store-writer", daemon=True)
        self._writer.start()
        self._ready.wait()
        if self._failure is not None:
            self._writer.join()
            raise self._failure

        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._read_pool = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="store-read")
        #: the checkpointer's checkpoints that copied something, and the WAL's length in frames
        #: at the last one (tests, status)
        self.checkpoints = 0
        self.checkpoint_runs = 0  # every PRAGMA wal_checkpoint, whether it copied or not
        self.wal_frames = 0
        self._checkpoint_interval = checkpoint_interval_s
        self._stop_checkpoints = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpointer_main, name="store-checkpoint", daemon=True
        )
        self._checkpointer.start()

    # ------------------------------------------------------------------ connections

    def _connect(self, *, read_only: bool) -> sqlite3.Connection:
        factory = sqlite3.Connection if read_only else _WriterConnection
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, factory=factory
        )
        conn.execute("PRAGMA busy_timeout=5000")
        if read_only:
            conn.execute("PRAGMA query_only=1")
            conn.execute(f"PRAGMA cache_size=-{READER_CACHE_KIB}")
        else:
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # before anything is written
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"cannot put {self.path} in WAL mode (got {mode})")
            conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            conn.execute("PRAGMA foreign_keys=ON")
            # The checkpointer thread copies the WAL into the database as it grows. The WAL only
            # starts over when a write transaction begins with every frame copied, which a
            # steady stream of writes never allows; so past WAL_RESTART_FRAMES the writer's own
            # COMMIT checkpoints too (copying only what the checkpointer has not, plus a sync),
            # and its next transaction reuses the WAL from the start, cut back to the limit.
            conn.execute(f"PRAGMA wal_autocheckpoint={WAL_RESTART_FRAMES}")
            conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            conn.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
        return conn

    def _checkpointer_main(self) -> None:
        """PASSIVE checkpoints from a connection of their own: they never block the writer or
        the readers (each copies what no reader still needs; the next ones copy the rest).

        Run often (every `checkpoint_interval_s`, 20 ms by default) while the WAL grows, each
        has little to copy and usually finishes with every frame copied, so the writer's next
        transaction starts the WAL over and its own checkpoint (a stall of several ms for the
        jobs waiting on it) is rarely reached. While nothing is written the interval doubles,
        up to CHECKPOINT_IDLE_S."""
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            conn.execute(f"PRAGMA cache_size=-{READER_CACHE_KIB}")
        except sqlite3.Error as exc:
            log.error("store checkpointer cannot open %s: %s", self.path, exc)
            return
        wait, last = self._checkpoint_interval, None
        try:
            while not self._stop_checkpoints.wait(wait):
                self.checkpoint_runs += 1
                try:
                    row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # e.g. the disk: say so, try again next interval
                    log.warning("store checkpoint failed: %s", exc)
                    continue
                _busy, frames, copied = row
                if (frames, copied) == last:  # nothing written since the last one
                    wait = min(wait * 2, max(CHECKPOINT_IDLE_S, self._checkpoint_interval))
                    continue
                wait, last = self._checkpoint_interval, (frames, copied)
                if frames > 0 and copied > 0:
                    self.checkpoints += 1
                    self.wal_frames = frames  # frames in the WAL at the last checkpoint
        finally:
            conn.close()

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(read_only=True)
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return conn

    # ------------------------------------------------------------------ writer thread

    def _writer_main(self) -> None:
        try:
            conn = self._connect(read_only=False)
            migrate(conn)
            conn.hot = load_statements(conn, self.path)
            conn.steps = _writer_steps(conn.hot)
            self.statements_backend = conn.hot.backend
            self._reload_caches(conn)
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                with self._lock:
                    pending = bool(self._queue)
                    if not pending and self._closing:
                        break  # everything queued has been written
                    self._writer_waiting = not pending
                if pending:
                    self._write_batch(conn)
                else:
                    self._wakeups.get()
        except BaseException as exc:  # a bug or a dead database: fail loudly, never hang callers
            with self._lock:
                self._failure = exc
                self._closing = True
                left = list(self._queue)
                self._queue.clear()
            error = StoreClosed(f"store writer failed: {exc!r}")
            self._resolve([(job, False, error) for job in left])
            log.critical("store writer failed; the store is closed", exc_info=exc)
        finally:
            conn.hot.close()
            conn.close()

    def _write_batch(self, conn: _WriterConnection) -> None:
        conn.appended.clear()
        conn.history.clear()
        taken: list[_Job] = []  # every job popped for this batch, run or not
        done: list[tuple[_Job, bool, Any]] = []
        deadline = time.monotonic() + self._commit_s
        try:
            # inside the try: a busy database (another process writing) is retried, not fatal
            conn.execute("BEGIN IMMEDIATE")
            failed = False
            while len(taken) < self._batch_rows:
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    with self._lock:
                        idle = not self._queue and not self._closing
                        self._writer_waiting = idle
                    if idle:
                        with contextlib.suppress(queue.Empty):
                            self._wakeups.get(timeout=remaining)
                        self._writer_waiting = False
                with self._lock:
                    queued = self._queue
                    take = min(len(queued), self._batch_rows - len(taken))
                    if take == len(queued):  # the usual case: all of them, copied in C
                        jobs = list(queued)
                        queued.clear()
                    else:
                        jobs = [queued.popleft() for _ in range(take)]
                if not jobs:
                    break
                taken.extend(jobs)
                failed = self._run_jobs(conn, jobs, done)
                if failed or time.monotonic() >= deadline:
                    break
            if failed:
                # Rare: a job raised. Undo the batch and run every job again, each inside its
                # own SAVEPOINT, so the failing one is rolled back alone.
                conn.execute("ROLLBACK")
                conn.appended.clear()
                conn.history.clear()
                self._reload_caches(conn)
                conn.execute("BEGIN IMMEDIATE")
                done = [self._run_isolated(conn, job) for job in taken]
            conn.flush_history()
            conn.save_clock()
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            with contextlib.suppress(sqlite3.Error):
                self._reload_caches(conn)
            error = StoreError(f"batch not committed: {exc!r}")
            error.__cause__ = exc
            self._resolve([(job, False, error) for job in taken])
            if not isinstance(exc, sqlite3.Error):
                raise
            return
        self.commits += 1
        self.jobs_committed += len(done)
        self._resolve(done)
        if conn.appended:
            self._event_head = conn.event_head = conn.appended[-1].seq
            self._announce_events(conn.appended)
            conn.appended = []

    def _reload_caches(self, conn: _WriterConnection) -> None:
        """The writer's in-memory views of the database, read again after a rollback."""
        self._answered.clear()
        self._answered_key.clear()
        saved = conn.execute("SELECT us FROM writer_clock WHERE id = 1").fetchone()[0]
        conn.clock_saved_us = saved
        conn.clock_us = max(conn.clock_us, saved)
        self._unmatched_keys = {
            (carrier, norm)
            for carrier, norm in conn.execute(
                "SELECT DISTINCT carrier, norm_id FROM unmatched_receipts"
            )
        }
        self._event_head = conn.event_head = _event_head(conn)

    def add_event_listener(self, loop: asyncio.AbstractEventLoop, callback: EventListener) -> None:
        """Call ``callback(head_seq, events)`` on ``loop`` after each commit that appended
        events, whichever job appended them (receipts and MO come from the carrier links).
        ``events`` are the committed events in order, equal to what `read_events` returns for
        them: a consumer that follows the log live need not read it back."""
        self._event_listeners.append((loop, callback))

    def _announce_events(self, events: list[Event]) -> None:
        head = events[-1].seq
        for loop, callback in tuple(self._event_listeners):
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(callback, head, events)

    @staticmethod
    def _run_jobs(
        conn: sqlite3.Connection, jobs: list[_Job], done: list[tuple[_Job, bool, Any]]
    ) -> bool:
        """Run jobs in one go, no savepoints; True (stop) at the first one that raises."""
        for job in jobs:
            try:
                done.append((job, True, job[0](conn)))
            except Exception:
                return True
        return False

    @staticmethod
    def _run_isolated(conn: _WriterConnection, job: _Job) -> tuple[_Job, bool, Any]:
        conn.execute("SAVEPOINT job")
        history, appended = len(conn.history), len(conn.appended)
        try:
            result = job[0](conn)
        except Exception as exc:
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            del conn.history[history:], conn.appended[appended:]
            return job, False, exc
        conn.execute("RELEASE job")
        return job, True, result

    @staticmethod
    def _resolve(items: list[tuple[_Job, bool, Any]]) -> None:
        if not items:
            return
        first = items[0][0][1]
        for item in items:
            if item[0][1] is not first:
                break
        else:  # the usual case: every write came from one loop
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is left to tell
                first.call_soon_threadsafe(_set_futures, items)
            return
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, bool, Any]]] = {}
        for item in items:
            by_loop.setdefault(item[0][1], []).append(item)
        for loop, batch in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is left to tell
                loop.call_soon_threadsafe(_set_futures, batch)

    @overload
    def _submit(
        self, fn: Job, *, admission: bool = ..., then: None = None
    ) -> asyncio.Future[Any]: ...

    @overload
    def _submit(self, fn: Job, *, admission: bool = ..., then: Then[Any]) -> None: ...

    def _submit(
        self, fn: Job, *, admission: bool = False, then: Then[Any] | None = None
    ) -> asyncio.Future[Any] | None:
        loop = running_loop()
        future = loop.create_future() if then is None else None
        limit = self._max_queue if admission else 2 * self._max_queue
        with self._lock:
            if self._closing:
                why = "" if self._failure is None else f" (writer failed: {self._failure!r})"
                raise StoreClosed("store is closed" + why)
            if len(self._queue) >= limit:
                raise StoreBusy(f"store writer queue full ({len(self._queue)} waiting)")
            self._queue.append((fn, loop, future, then))
            if self._writer_waiting:
                self._writer_waiting = False
                self._wakeups.put(None)
        return future

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closing:
            raise StoreClosed("store is closed")
        loop = asyncio.get_running_loop()
        try:
            pending = loop.run_in_executor(self._read_pool, lambda: fn(self._reader()))
        except RuntimeError as exc:  # the pool was shut down by a concurrent close()
            raise StoreClosed("store is closed") from exc
        return await pending

    # ------------------------------------------------------------------ messages

    @overload
    def accept(
        self, msg: NewMessage, now: float | None = None, *, then: None = None
    ) -> asyncio.Future[tuple[str, bool]]: ...

    @overload
    def accept(
        self, msg: NewMessage, now: float | None = None, *, then: Then[tuple[str, bool]]
    ) -> None: ...

    def accept(
        self,
        msg: NewMessage,
        now: float | None = None,
        *,
        then: Then[tuple[str, bool]] | None = None,
    ) -> asyncio.Future[tuple[str, bool]] | None:
        """Store a new message and its parts; returns (message_id, created).

        With an idempotency key already used by the same client the existing id comes back with
        created=False and nothing is written. Raises StoreBusy when the writer queue is full.
        With ``msg.first_part_submitted`` part 1 is written as submitted to ``msg.carrier``
        (state, carrier, time: as `record_submit` would), the other parts as pending.
        """
        _check_new(msg)
        return self._submit(
            lambda conn: self._write_accept(conn, msg, now), admission=True, then=then
        )

    def accept_many(
        self,
        items: list[tuple[NewMessage, float | None]],
        *,
        then: Then[list[tuple[str, bool]]],
    ) -> None:
        """`accept` for several messages, each (message, now), in one write: ``then`` gets
        their (message_id, created) in order, or one error for all of them (nothing of any is
        written). Raises StoreBusy when the writer queue is full, as `accept` does."""
        for msg, _ in items:
            _check_new(msg)

        def job(conn: _WriterConnection) -> list[tuple[str, bool]]:
            steps = conn.steps
            if steps is None:
                return [self._write_accept(conn, msg, now) for msg, now in items]
            write, own = steps.write_accept, self._write_accept
            return [write(conn, msg, now) or own(conn, msg, now) for msg, now in items]

        self._submit(job, admission=True, then=then)

    @staticmethod
    def _write_accept(
        conn: _WriterConnection, msg: NewMessage, now: float | None
    ) -> tuple[str, bool]:
        if msg.idempotency_key is not None:
            row = conn.execute(
                "SELECT id FROM messages WHERE client_id = ? AND idempotency_key = ?",
                (msg.client_id, msg.idempotency_key),
            ).fetchone()
            if row is not None:
                return row[0], False
        message_id = new_message_id()
        ts = time.time() if now is None else now
        at = iso_utc(ts)
        run = conn.hot.run
        run(
            INSERT_MESSAGE,
            (
                message_id,
                msg.client_id,
                msg.client_ref,
                msg.idempotency_key,
                msg.source_addr,
                msg.dest_addr,
                msg.data_coding,
                msg.payload,
                msg.carrier,
                msg.parts_total,
                at,
                msg.text,
                msg.concat_ref,
                msg.validity_s,
                msg.priority,
                conn.tick(ts),
            ),
        )
        first = 1
        if msg.first_part_submitted:
            run(INSERT_PART_SUBMITTED, (message_id, 1, msg.carrier, at, conn.tick(ts)))
            first = 2
        for n in range(first, msg.parts_total + 1):
            run(INSERT_PART, (message_id, n))
        return message_id, True

    @overload
    def record_submit(
        self,
        message_id: str,
        part: int,
        carrier: str,
        now: float | None = None,
        *,
        then: None = None,
    ) -> asyncio.Future[None]: ...

    @overload
    def record_submit(
        self,
        message_id: str,
        part: int,
        carrier: str,
        now: float | None = None,
        *,
        then: Then[None],
    ) -> None: ...

    def record_submit(
        self,
        message_id: str,
        part: int,
        carrier: str,
        now: float | None = None,
        *,
        then: Then[None] | None = None,
    ) -> asyncio.Future[None] | None:
        """A part is about to be (re)sent to `carrier`: state submitted, resp fields cleared."""

        return self._submit(
            lambda conn: self._write_submits(conn, [(message_id, part)], carrier, now), then=then
        )

    def record_submits(
        self,
        parts: list[tuple[str, int]],
        carrier: str,
        now: float | None = None,
        *,
        then: Then[None],
    ) -> None:
        """`record_submit` for several parts, (message_id, part) each, in one write: all of them
        are recorded, or (an unknown part, a failed batch) none is and ``then`` gets the error.
        The carrier link records the parts it takes ahead of the windows this way."""
        parts = list(parts)
        self._submit(lambda conn: self._write_submits(conn, parts, carrier, now), then=then)

    def _write_submits(
        self,
        conn: _WriterConnection,
        parts: list[tuple[str, int]],
        carrier: str,
        now: float | None,
    ) -> None:
        ts = time.time() if now is None else now
        at = iso_utc(ts)
        for message_id, part in parts:
            changed = write_step(
                conn.hot, UPDATE_SUBMIT, (carrier, at, conn.tick(ts), message_id, part)
            )
            _require(changed, message_id, part)
            self._forget_answered(message_id, part)

    @overload
    def record_submit_resp(
        self,
        message_id: str,
        part: int,
        carrier: str,
        status: int,
        carrier_message_id_raw: str | None,
        carrier_message_id_norm: str | None,
        now: float | None = None,
        *,
        then: None = None,
    ) -> asyncio.Future[int]: ...

    @overload
    def record_submit_resp(
        self,
        message_id: str,
        part: int,
        carrier: str,
        status: int,
        carrier_message_id_raw: str | None,
        carrier_message_id_norm: str | None,
        now: float | None = None,
        *,
        then: Then[int],
    ) -> None: ...

    def record_submit_resp(
        self,
        message_id: str,
        part: int,
        carrier: str,
        status: int,
        carrier_message_id_raw: str | None,
        carrier_message_id_norm: str | None,
        now: float | None = None,
        *,
        then: Then[int] | None = None,
    ) -> asyncio.Future[int] | None:
        """The carrier's submit_sm_resp for a part (status 0 = accepted); with ``then``, it is
        called instead of a future being returned (as for `accept`).

        Receipts that arrived before it and wait as unmatched under the same normalised id are
        applied in the same transaction; returns how many.
        """
        resp = (message_id, part, status, carrier_message_id_raw, carrier_message_id_norm)

        def job(conn: _WriterConnection) -> int:
            ts = time.time() if now is None else now
            applied = self._write_resp(conn, carrier, resp, iso_utc(ts), ts)
            if applied < 0:
                raise _unknown_part(message_id, part)
            return applied

        return self._submit(job, then=then)

    def record_answers(
        self,
        carrier: str,
        answers: list[tuple[Any, ...]],
        now: float | None = None,
        *,
        then: Then[list[Any]],
    ) -> None:
        """A carrier link's answers of one loop iteration in one write, in their order. Each is
        ("resp", message_id, part, status, raw id, normalised id), as `record_submit_resp`
        takes it, or ("receipt", normalised id, state, err, detail, ttl_s or None), as
        `record_receipt`. ``then`` gets one result per answer: for a resp the receipts applied
        with it, or an UnknownPart when the store has no such part (nothing is written for that
        one, the others are); for a receipt its ReceiptMatch, or None (kept as unmatched)."""

        def job(conn: _WriterConnection) -> list[Any]:
            ts = time.time() if now is None else now
            at = iso_utc(ts)
            results: list[Any] = []
            steps = conn.steps
            for answer in answers:
                if steps is not None:  # the compiled steps take the common cases
                    if answer[0] == "resp":
                        done = steps.write_resp(self, conn, carrier, answer[1:], at, ts)
                    else:
                        done = steps.write_receipt(self, conn, carrier, answer, ts, at)
                    if done is not None:
                        results.append(done)
                        continue
                if answer[0] == "resp":
                    applied = self._write_resp(conn, carrier, answer[1:], at, ts)
                    results.append(_unknown_part(answer[1], answer[2]) if applied < 0 else applied)
                else:
                    _, norm_id, state, err, detail, ttl_s = answer
                    payload = _receipt_payload(state, err, detail)
                    ttl = self.unmatched_ttl_s if ttl_s is None else ttl_s
                    results.append(self._write_receipt(conn, carrier, norm_id, payload, ttl, ts))
            return results

        self._submit(job, then=then)

    def _write_resp(
        self,
        conn: _WriterConnection,
        carrier: str,
        resp: tuple[str, int, int, str | None, str | None],
        at: str,
        ts: float,
    ) -> int:
        """One response's writes: the receipts applied with it, or -1 (nothing written) for an
        unknown part."""
        message_id, part, status, raw, norm = resp
        changed = write_step(
            conn.hot,
            UPDATE_RESP,
            (
                "carrier_accepted" if status == 0 else "carrier_rejected",
                carrier,
                status,
                at,
                conn.tick(ts),
                raw,
                norm,
                message_id,
                part,
            ),
        )
        if changed == 0:
            return -1
        applied = 0
        if status == 0 and norm is not None:
            self._remember_answered(carrier, norm, message_id, part)
            for payload in self._take_unmatched(conn, carrier, norm, ts):
                _apply_receipt(conn, message_id, part, carrier, norm, payload, ts)
                applied += 1
                if _is_final(payload["state"]):
                    self._forget_answered(message_id, part)
        return applied

    @overload
    def record_expired(
        self,
        message_id: str,
        detail: dict[str, Any],
        now: float | None = None,
        *,
        then: None = None,
    ) -> asyncio.Future[list[int]]: ...

    @overload
    def record_expired(
        self,
        message_id: str,
        detail: dict[str, Any],
        now: float | None = None,
        *,
        then: Then[list[int]],
    ) -> None: ...

    def record_expired(
        self,
        message_id: str,
        detail: dict[str, Any],
        now: float | None = None,
        *,
        then: Then[list[int]] | None = None,
    ) -> asyncio.Future[list[int]] | None:
        """The message's validity ran out before its remaining parts could be sent.

        Every part still pending or submitted without a response becomes `expired` (never to be
        resent), with an "expired" history entry and an "expired" event; returns those parts.
        Nothing is written when no part was open (the message finished meanwhile).
        """

        def job(conn: _WriterConnection) -> list[int]:
            ts = time.time() if now is None else now
            at = iso_utc(ts)
            parts = [
                r[0]
                for r in conn.execute(
                    "UPDATE message_parts SET state = 'expired' WHERE message_id = ?"
                    " AND state IN ('pending', 'submitted') RETURNING part_no",
                    (message_id,),
                )
            ]
            if not parts:
                return []
            parts.sort()
            body = {**detail, "parts": parts}
            _history(conn, message_id, conn.tick(ts), at, "expired", body)
            row = conn.execute(
                "SELECT client_ref FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
            event = {"message_id": message_id, "client_ref": row[0] if row else None, **body}
            _append_event(conn, "expired", event, ts)
            return parts

        return self._submit(job, then=then)

    @overload
    def record_receipt(
        self,
        carrier: str,
        norm_id: str,
        state: str,
        err: str | None = None,
        detail: dict[str, Any] | None = None,
        now: float | None = None,
        *,
        ttl_s: float | None = None,
        then: None = None,
    ) -> asyncio.Future[ReceiptMatch | None]: ...

    @overload
    def record_receipt(
        self,
        carrier: str,
        norm_id: str,
        state: str,
        err: str | None = None,
        detail: dict[str, Any] | None = None,
        now: float | None = None,
        *,
        ttl_s: float | None = None,
        then: Then[ReceiptMatch | None],
    ) -> None: ...

    def record_receipt(
        self,
        carrier: str,
        norm_id: str,
        state: str,
        err: str | None = None,
        detail: dict[str, Any] | None = None,
        now: float | None = None,
        *,
        ttl_s: float | None = None,
        then: Then[ReceiptMatch | None] | None = None,
    ) -> asyncio.Future[ReceiptMatch | None] | None:
        """A delivery receipt for the carrier's normalised message id (``then``: as for
        `accept`).

        Correlated and applied (part state, history, a "receipt" event) in one transaction; if no
        part carries that id yet it is kept as unmatched (for `ttl_s`, default `unmatched_ttl_s`)
        and None is returned: `record_submit_resp` applies it when the id shows up. Lookup and
        store happen in the writer, so a receipt racing its submit_sm_resp is never orphaned.
        """
        payload = _receipt_payload(state, err, detail)
        ttl = self.unmatched_ttl_s if ttl_s is None else ttl_s

        def job(conn: _WriterConnection) -> ReceiptMatch | None:
            ts = time.time() if now is None else now
            return self._write_receipt(conn, carrier, norm_id, payload, ttl, ts)

        return self._submit(job, then=then)

    def _write_receipt(
        self,
        conn: _WriterConnection,
        carrier: str,
        norm_id: str,
        payload: dict[str, Any],
        ttl: float,
        ts: float,
    ) -> ReceiptMatch | None:
        match = self._answered.get((carrier, norm_id)) or _writer_find_part(conn, carrier, norm_id)
        if match is None:
            self._keep_unmatched(conn, carrier, norm_id, payload, ts, ttl)
            return None
        if _is_final(payload["state"]):
            self._forget_answered(match.message_id, match.part_no)
        _apply_receipt(conn, match.message_id, match.part_no, carrier, norm_id, payload, ts)
        return match

    def _remember_answered(self, carrier: str, norm_id: str, message_id: str, part: int) -> None:
        self._forget_answered(message_id, part)
        key = (carrier, norm_id)
        older = self._answered.pop(key, None)  # the id reused: the newest part has it now
        if older is not None:
            del self._answered_key[older.message_id, older.part_no]
        self._answered[key] = ReceiptMatch(message_id, part)
        self._answered_key[message_id, part] = key
        if len(self._answered) > ANSWERED_KEPT:
            _, oldest = self._answered.popitem(last=False)
            del self._answered_key[oldest.message_id, oldest.part_no]

    def _forget_answered(self, message_id: str, part: int) -> None:
        key = self._answered_key.pop((message_id, part), None)
        if key is not None:
            del self._answered[key]

    def _keep_unmatched(
        self,
        conn: sqlite3.Connection,
        carrier: str,
        norm_id: str,
        payload: dict[str, Any],
        ts: float,
        ttl_s: float,
    ) -> int:
        cur = conn.execute(
            "INSERT INTO unmatched_receipts (carrier, norm_id, payload, received_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (carrier, norm_id, _json(payload), iso_utc(ts), ts + ttl_s),
        )
        self._unmatched_keys.add((carrier, norm_id))
        return int(cur.lastrowid or 0)

    def _take_unmatched(
        self, conn: sqlite3.Connection, carrier: str, norm_id: str, ts: float
    ) -> list[dict[str, Any]]:
        # Most responses have no receipt waiting: the key set spares them the DELETE.
        key = (carrier, norm_id)
        if key not in self._unmatched_keys:
            return []
        self._unmatched_keys.discard(key)
        rows = conn.execute(
            "DELETE FROM unmatched_receipts WHERE carrier = ? AND norm_id = ?"
            " RETURNING id, payload, expires_at",
            key,
        ).fetchall()
        return [json.loads(payload) for _, payload, expires in sorted(rows) if expires > ts]

    def store_unmatched_receipt(
        self,
        carrier: str,
        norm_id: str,
        payload: dict[str, Any],
        ttl_s: float | None = None,
        now: float | None = None,
    ) -> asyncio.Future[int]:
        """Keep a receipt nobody matched yet; returns its row id."""
        ttl = self.unmatched_ttl_s if ttl_s is None else ttl_s

        def job(conn: sqlite3.Connection) -> int:
            ts = time.time() if now is None else now
            return self._keep_unmatched(conn, carrier, norm_id, payload, ts, ttl)

        return self._submit(job)

    def take_unmatched(
        self, carrier: str, norm_id: str, now: float | None = None
    ) -> asyncio.Future[list[dict[str, Any]]]:
        """Remove and return the unexpired unmatched receipts for this id, oldest first."""
        return self._submit(
            lambda conn: self._take_unmatched(
                conn, carrier, norm_id, time.time() if now is None else now
            )
        )

    def prune_unmatched(self, now: float | None = None) -> asyncio.Future[int]:
        """Delete expired unmatched receipts; returns how many."""

        def job(conn: sqlite3.Connection) -> int:
            ts = time.time() if now is None else now
            pruned = conn.execute(
                "DELETE FROM unmatched_receipts WHERE expires_at <= ?", (ts,)
            ).rowcount
            if pruned:
                self._reload_caches(conn)
            return pruned

        return self._submit(job)

    async def find_by_carrier_id(self, carrier: str, norm_id: str) -> ReceiptMatch | None:
        """The part that carries this normalised carrier id (the newest if it was reused)."""
        return await self._read(lambda conn: _find_part(conn, carrier, norm_id))

    async def get_message(self, message_id: str) -> MessageRecord | None:
        """The message with its parts and its history in order, or None."""

        def read(conn: sqlite3.Connection) -> MessageRecord | None:
            conn.execute("BEGIN")  # one snapshot for the three reads
            try:
                row = conn.execute(
                    "SELECT id, client_id, client_ref, idempotency_key, source_addr, dest_addr,"
                    " data_coding, payload, carrier, parts_total, created_at,"
                    " text, concat_ref, validity_s, priority, accepted_us"
                    " FROM messages WHERE id = ?",
                    (message_id,),
                ).fetchone()
                if row is None:
                    return None
                part_rows = conn.execute(
                    "SELECT part_no, state, carrier, carrier_message_id_raw,"
                    " carrier_message_id_norm, submitted_at, resp_status, resp_at,"
                    " receipt_state, receipt_err, receipt_at,"
                    " submitted_us, resp_us, receipt_us, receipt_detail"
                    " FROM message_parts WHERE message_id = ?"
                    " ORDER BY part_no",
                    (message_id,),
                ).fetchall()
                stored = conn.execute(
                    "SELECT seq, at, event, detail FROM history WHERE message_id = ?",
                    (message_id,),
                ).fetchall()
            finally:
                conn.execute("COMMIT")
            *fixed, carrier, parts_total, created_at = row[:11]
            text, concat_ref, validity_s, priority, accepted_us = row[11:]
            parts = [PartRecord(*r[:11]) for r in part_rows]
            history = _read_history(row[2], parts_total, created_at, accepted_us, part_rows, stored)
            return MessageRecord(
                *fixed,
                state=message_state(p.state for p in parts),
                carrier=carrier or next((p.carrier for p in parts if p.carrier), None),
                parts_total=parts_total,
                created_at=created_at,
                updated_at=max((h.at for h in history), default=created_at),
                parts=parts,
                history=history,
                text=text,
                concat_ref=concat_ref,
                validity_s=validity_s,
                priority=priority,
            )

        return await self._read(read)

    async def pending_after_restart(self) -> list[PendingPart]:
        """Parts to resend (at least once): never submitted, or submitted without a resp."""
        return await self._read(
            lambda conn: [
                PendingPart(*r)
                for r in conn.execute(
                    "SELECT message_id, part_no, state, carrier FROM message_parts"
                    " WHERE state IN ('pending', 'submitted') ORDER BY message_id, part_no"
                )
            ]
        )

    # ------------------------------------------------------------------ event log

    def append_event(self, kind: str, body: Any, now: float | None = None) -> asyncio.Future[int]:
        """Append to the ordered event log; returns its sequence number (never reused)."""
        # listeners get the body as read back (a caller's tuples become lists, and so on)
        native = json.loads(_json(body))
        return self._submit(
            lambda conn: _append_event(conn, kind, native, time.time() if now is None else now)
        )

    async def last_event_seq(self) -> int:
        """The highest sequence number ever appended (0 for none)."""

        return await self._read(_event_head)

    async def read_events(
        self, consumer: str, after_seq: int | None = None, limit: int = 100
    ) -> list[Event]:
        """Up to `limit` events after `after_seq`, or after the consumer's acked cursor."""

        def read(conn: sqlite3.Connection) -> list[Event]:
            after = after_seq
            if after is None:
                row = conn.execute(
                    "SELECT acked_seq FROM consumer_cursors WHERE name = ?", (consumer,)
                ).fetchone()
                after = row[0] if row else 0
            return [
                Event(seq, at, kind, json.loads(body))
                for seq, at, kind, body in conn.execute(
                    "SELECT seq, at, kind, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                    (after, limit),
                )
            ]

        return await self._read(read)

    def ack_events(self, consumer: str, seq: int) -> asyncio.Future[None]:
        """Advance the consumer's cursor to `seq` (never backwards; registers the consumer)."""

        def job(conn: sqlite3.Connection) -> None:
            # the head after the last commit covers every event a consumer can have seen
            if seq < 0 or (seq > self._event_head and seq > _event_head(conn)):
                raise ValueError(f"cannot ack event {seq}: it was never appended")
            conn.execute(
                "INSERT INTO consumer_cursors (name, acked_seq) VALUES (?, ?) ON CONFLICT (name)"
                " DO UPDATE SET acked_seq = MAX(acked_seq, excluded.acked_seq)",
                (consumer, seq),
            )

        return self._submit(job)

    def record_rerouted(
        self, message_id: str, carrier: str, detail: dict[str, Any], now: float | None = None
    ) -> asyncio.Future[bool]:
        """The message now goes through `carrier` (a failover moved it before any part went
        out): the message's carrier changes, with a "rerouted" history entry. False for an
        unknown message."""

        def job(conn: _WriterConnection) -> bool:
            ts = time.time() if now is None else now
            changed = conn.execute(
                "UPDATE messages SET carrier = ? WHERE id = ?", (carrier, message_id)
            ).rowcount
            if changed:
                _history(conn, message_id, conn.tick(ts), iso_utc(ts), "rerouted", detail)
            return changed == 1

        return self._submit(job)

    def record_opt_out(
        self, number: str, source: str, detail: dict[str, Any], now: float | None = None
    ) -> asyncio.Future[bool]:
        """Keep `number` (E.164) as opted out; True if it was not yet (the first report is
        kept)."""
        text = _json(detail)

        def job(conn: sqlite3.Connection) -> bool:
            at = iso_utc(time.time() if now is None else now)
            cur = conn.execute(
                "INSERT OR IGNORE INTO opt_outs (number, source, detail, at) VALUES (?, ?, ?, ?)",
                (number, source, text, at),
            )
            return cur.rowcount == 1

        return self._submit(job)

    def remove_opt_out(self, number: str) -> asyncio.Future[bool]:
        """Forget an opt-out (the recipient opted in again); True if there was one."""
        return self._submit(
            lambda conn: (
                conn.execute("DELETE FROM opt_outs WHERE number = ?", (number,)).rowcount == 1
            )
        )

    async def opted_out(self) -> set[str]:
        """Every opted-out number."""
        return await self._read(
            lambda conn: {row[0] for row in conn.execute("SELECT number FROM opt_outs")}
        )

    async def cursor(self, consumer: str) -> int:
        """The consumer's acked sequence number (0 if it never acked)."""

        def read(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT acked_seq FROM consumer_cursors WHERE name = ?", (consumer,)
            ).fetchone()
            return row[0] if row else 0

        return await self._read(read)

    def prune_events(
        self, retention_s: float, now: float | None = None, *, keep_unacked: bool = True
    ) -> asyncio.Future[int]:
        """Delete events older than `retention_s`; returns how many.

        With keep_unacked (the default) an event is kept while any known consumer has not acked
        it, however old; keep_unacked=False makes the retention a hard limit (a consumer lagging
        more than that misses events, visible as a gap in the sequence numbers).
        """

        def job(conn: sqlite3.Connection) -> int:
            cutoff = (time.time() if now is None else now) - retention_s
            bound = None
            if keep_unacked:
                bound = conn.execute("SELECT MIN(acked_seq) FROM consumer_cursors").fetchone()[0]
            if bound is None:
                deleted = conn.execute("DELETE FROM events WHERE at_ts < ?", (cutoff,)).rowcount
            else:
                deleted = conn.execute(
                    "DELETE FROM events WHERE at_ts < ? AND seq <= ?", (cutoff, bound)
                ).rowcount
            if deleted:  # the newest may have gone: its number must stay taken
                head = conn.appended[-1].seq if conn.appended else conn.event_head
                conn.execute("UPDATE event_floor SET seq = ? WHERE id = 1", (head,))
            return int(deleted)

        return self._submit(job)

    # ------------------------------------------------------------------ lifecycle

    @property
    def queued(self) -> int:
        """Jobs waiting for the writer."""
        return len(self._queue)

    def close(self) -> None:
        """Write and commit everything queued, then stop the writer and close all connections.

        Blocks until the last batch is committed; from async code prefer `aclose()`.
        Idempotent.
        """
        with self._lock:
            self._closing = True
            self._wakeups.put(None)
        self._writer.join()
        self._stop_checkpoints.set()
        self._checkpointer.join()
        self._read_pool.shutdown(wait=True)
        with self._reader_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()

    async def aclose(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)


def _set_futures(items: list[tuple[_Job, bool, Any]]) -> None:
    for (_fn, loop, future, then), ok, value in items:
        if then is not None:
            try:
                then(None, value) if ok else then(value, None)
            except Exception as exc:  # the caller's bug: report it, finish the others
                loop.call_exception_handler(
                    {"message": "store write callback failed", "exception": exc}
                )
            continue
        assert future is not None
        if future.done():
            continue  # the caller gave up waiting; the write stands
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


# ---------------------------------------------------------------------- writer-side helpers


def _receipt_payload(state: str, err: str | None, detail: dict[str, Any] | None) -> dict[str, Any]:
    """A receipt as it is applied, and kept while it waits unmatched (as JSON)."""
    return {"state": str(state), "err": err, "detail": detail or {}}


def _check_new(msg: NewMessage) -> None:
    if msg.parts_total < 1:
        raise ValueError("parts_total must be >= 1")
    if msg.first_part_submitted and msg.carrier is None:
        raise ValueError("first_part_submitted needs the carrier")


def _require(changed: int, message_id: str, part: int) -> None:
    if changed == 0:
        raise _unknown_part(message_id, part)


def _unknown_part(message_id: str, part: int) -> UnknownPart:
    return UnknownPart(f"no part {part} of message {message_id}")


def _history(
    conn: _WriterConnection,
    message_id: str,
    seq: int,
    at: str,
    event: str,
    detail: dict[str, Any],
) -> None:
    """A history row for what the part columns cannot hold (see schema._V5), at `seq` (a tick
    of the writer's clock); written with the batch's other history rows just before its COMMIT
    (only readers of committed data ever see history)."""
    conn.history.append((message_id, seq, at, event, _json(detail)))


_INSERT_HISTORY = "INSERT INTO history (message_id, seq, at, event, detail) VALUES (?, ?, ?, ?, ?)"


def _read_history(
    client_ref: str | None,
    parts_total: int,
    created_at: str,
    accepted_us: int | None,
    part_rows: list[tuple[Any, ...]],
    stored: list[tuple[int, str, str, str]],
) -> list[HistoryEntry]:
    """A message's history: its history rows and the steps its columns hold (schema._V5), in
    the order they were written, numbered from 1."""
    steps: list[tuple[int, str, str, dict[str, Any]]] = [
        (seq, at, event, json.loads(detail)) for seq, at, event, detail in stored
    ]
    if accepted_us is not None:
        detail = {"client_ref": client_ref, "parts_total": parts_total}
        steps.append((accepted_us, created_at, "accepted", detail))
    for part, _state, carrier, raw, _norm, submitted_at, status, resp_at, *rest in part_rows:
        _r_state, _r_err, receipt_at, submitted_us, resp_us, receipt_us, receipt_detail = rest
        if submitted_us is not None:
            steps.append(
                (submitted_us, submitted_at, "submitted", {"part": part, "carrier": carrier})
            )
        if resp_us is not None:
            detail = {"part": part, "carrier": carrier, "status": status, "carrier_message_id": raw}
            steps.append((resp_us, resp_at, "resp", detail))
        if receipt_us is not None:
            steps.append((receipt_us, receipt_at, "receipt", json.loads(receipt_detail)))
    steps.sort(key=lambda step: step[0])
    return [HistoryEntry(n, at, event, detail) for n, (_, at, event, detail) in enumerate(steps, 1)]


def message_state(part_states: Iterable[str]) -> str:
    """The message state summarises its parts: accepted (none sent yet), failed (a part was
    rejected or failed), expired (a part's validity ran out before it was sent), delivered (all
    parts delivered), otherwise in_flight. Derived when read, so no write has to maintain it."""
    states = set(part_states)
    if states <= {"pending"}:
        return "accepted"
    if states & {"carrier_rejected", "failed"}:
        return "failed"
    if "expired" in states:
        return "expired"
    if states == {"delivered"}:
        return "delivered"
    return "in_flight"


def part_state_after(receipt_state: str | None) -> str | None:
    """The part's state once this receipt is in; None for an intermediate one (enroute,
    accepted, unknown), which leaves the lifecycle state as it is."""
    if receipt_state == "delivered":
        return "delivered"
    if receipt_state in FINAL_FAILED_RECEIPTS:
        return "failed"
    return None


def _is_final(receipt_state: str) -> bool:
    return part_state_after(receipt_state) is not None


def _event_head(conn: sqlite3.Connection) -> int:
    """The highest event number ever committed: the newest row's, or one a prune deleted."""
    row = conn.execute(
        "SELECT MAX(COALESCE((SELECT MAX(seq) FROM events), 0),"
        " (SELECT seq FROM event_floor WHERE id = 1))"
    ).fetchone()
    return int(row[0])


def _find_part(conn: sqlite3.Connection, carrier: str, norm_id: str) -> ReceiptMatch | None:
    row = conn.execute(SQL[FIND_PART], (carrier, norm_id)).fetchone()
    return ReceiptMatch(row[0], row[1]) if row else None


def _writer_find_part(conn: _WriterConnection, carrier: str, norm_id: str) -> ReceiptMatch | None:
    """`_find_part` through the writer's prepared statements."""
    row = conn.hot.first_row(FIND_PART, (carrier, norm_id))
    return ReceiptMatch(row[0], row[1]) if row else None


def _apply_receipt(
    conn: _WriterConnection,
    message_id: str,
    part: int,
    carrier: str,
    norm_id: str,
    payload: dict[str, Any],
    ts: float,
) -> None:
    at = iso_utc(ts)
    state, err = payload.get("state"), payload.get("err")
    part_state = part_state_after(state)
    detail = {
        "part": part,
        "carrier": carrier,
        "carrier_message_id": norm_id,
        "state": state,
        "err": err,
        **(payload.get("detail") or {}),
    }
    detail_json = _receipt_detail_json(detail)
    write_step(
        conn.hot,
        UPDATE_RECEIPT,
        (state, err, at, conn.tick(ts), detail_json, part_state, message_id, part),
    )
    body = {"message_id": message_id, **detail}
    # the event body is the history detail with the message id first: spliced, not encoded again
    body_json = (
        None
        if "message_id" in detail
        else f'{{"message_id":{_encode_str(message_id)},{detail_json[1:]}'
    )
    _append_event(conn, "receipt", body, ts, at=at, body_json=body_json)


def _append_event(
    conn: _WriterConnection,
    kind: str,
    body: Any,
    ts: float,
    *,
    at: str | None = None,
    body_json: str | None = None,
) -> int:
    """`body` must be JSON-native (str keys; str, int, float, bool, None, list, dict): the
    listeners get it as is, and it must equal what reading the log back gives (`body_json`, when
    the caller has it, must be its encoding)."""
    at = iso_utc(ts) if at is None else at
    appended = conn.appended  # this batch's, after the committed ones (see schema._V7)
    seq = (appended[-1].seq if appended else conn.event_head) + 1
    conn.hot.run(INSERT_EVENT, (seq, at, ts, kind, _json(body) if body_json is None else body_json))
    appended.append(Event(seq, at, kind, body))
    return seq


def _writer_steps(hot: Statements) -> Any:
    """The compiled steps for a writer whose hot statements are the native ones; None (the
    store's own Python steps) with the pure statements or without the build."""
    if hot.backend != "native":
        return None
    try:
        from gateway.store import _native_writer  # type: ignore[attr-defined]
    except ImportError as exc:
        log.warning("native store writer steps unavailable (%s); using Python's", exc)
        return None
    _native_writer.bind(
        Event,
        ReceiptMatch,
        _encode_str,
        FINAL_FAILED_RECEIPTS,
        new_message_id,
        iso_utc,
        time.time,
        ANSWERED_KEPT,
    )
    return _native_writer
