"""The incident outbox: a SQLite file where every event is committed before any POST.

Durability: WAL with ``synchronous=FULL``; :meth:`Outbox.put` (and the future returned
by :meth:`Outbox.submit`) completes only after COMMIT. All database work runs on one
dedicated thread that owns the one connection, so the event loop never blocks on
SQLite and the connection needs no lock. Writes submitted while a commit is in progress
are committed together (group commit): a burst costs one fsync, not one per event.

Event ids are primary keys and inserts are ``INSERT OR IGNORE``: an event announced
again (after a restart, by a tracker re-adopting a call) is stored once. ``seq`` numbers
the events of one call in insertion order; delivery follows it within a call.

States: ``pending`` (to deliver), ``delivered``, ``parked`` (refused by the backend with a
4xx: kept, never retried until ``pbxbridge outbox retry``). Delivered rows are pruned
after the retention; pending and parked rows never are.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

import structlog

from pbxbridge import incidents as inc
from pbxbridge import tracker as tr
from pbxbridge.store_policy import WritePolicy, create_private

log = structlog.get_logger("pbxbridge.outbox")

STATES = ("pending", "delivered", "parked")
SCHEMA_VERSION = 1

_DDL = """
CREATE TABLE IF NOT EXISTS events (
    event_id        TEXT PRIMARY KEY,
    call_id         TEXT NOT NULL,
    type            TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    occurred_at     REAL NOT NULL,
    body            BLOB NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'parked')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error      TEXT,
    created_at      REAL NOT NULL,
    delivered_at    REAL
);
CREATE INDEX IF NOT EXISTS events_call ON events (call_id, seq);
CREATE INDEX IF NOT EXISTS events_pending
    ON events (call_id, seq, next_attempt_at, created_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS events_delivered ON events (delivered_at) WHERE state = 'delivered';
CREATE INDEX IF NOT EXISTS events_parked ON events (created_at) WHERE state = 'parked';
"""

_COLUMNS = (
    "event_id, call_id, type, seq, occurred_at, body, state, attempts, next_attempt_at, "
    "last_error, created_at, delivered_at"
)

# The first pending event of its call: only such a row may be sent (in-order per call).
_IS_HEAD = (
    "e.seq = (SELECT MIN(p.seq) FROM events p WHERE p.call_id = e.call_id AND p.state = 'pending')"
)


# Events kept in memory while commits fail (disk full): about 1.5 KB each.
MAX_UNWRITTEN = 50_000

_Write = tuple[Sequence[inc.Incident], float, "asyncio.Future[int]"]


class OutboxError(Exception):
    """The outbox could not commit: events would be lost, so the daemon must stop."""


@dataclass(frozen=True, slots=True)
class Row:
    event_id: str
    call_id: str
    type: str
    seq: int
    occurred_at: float
    body: bytes
    state: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: float
    delivered_at: float | None


@dataclass(frozen=True, slots=True)
class OutboxCounts:
    """Pending/parked counts and the creation time of the oldest pending event."""

    pending: int = 0
    parked: int = 0
    oldest_pending_created_at: float | None = None


@dataclass(frozen=True, slots=True)
class OpenCall:
    """A call announced (call.offered) but not ended in the outbox, with its last state."""

    call_id: str
    last_type: str
    record: tr.CallRecord

    @property
    def linkedid(self) -> str:
        return self.record.linkedid


# -- the synchronous core: one connection, used by one thread ---------------------------


class OutboxDB:
    """The SQLite file. Not thread-safe: use it from one thread (the CLI, or Outbox's)."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        create_private(self.path)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
        self.conn = sqlite3.connect(
            self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            self.conn.close()
            raise OutboxError(f"{self.path}: the filesystem does not support WAL (got {mode})")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            self.conn.close()
            raise OutboxError(f"{self.path}: written by a newer pbxbridge (schema {version})")
        with self._tx():
            for statement in _DDL.split(";"):
                if statement.strip():
                    self.conn.execute(statement)
            self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        if self.conn.in_transaction:
            # A failed COMMIT (disk full, I/O error, busy) may leave its transaction
            # open (SQLite: "may or may not" roll back): end it, or nothing is ever
            # written again.
            self.conn.execute("ROLLBACK")
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    # -- writes -------------------------------------------------------------------------

    def insert(self, incidents: Iterable[inc.Incident], now: float) -> int:
        """Commit ``incidents`` (one transaction); returns how many were new."""
        return self.insert_batches([(incidents, now)])[0]

    def insert_batches(self, batches: Sequence[tuple[Iterable[inc.Incident], float]]) -> list[int]:
        """Commit several submitters' events in one transaction; new events per batch."""
        added: list[int] = []
        with self._tx():
            for incidents, now in batches:
                n = 0
                for i in incidents:
                    seq = self.conn.execute(
                        "SELECT COALESCE(MAX(seq) + 1, 0) FROM events WHERE call_id = ?",
                        (i.call_id,),
                    ).fetchone()[0]
                    cur = self.conn.execute(
                        "INSERT OR IGNORE INTO events (event_id, call_id, type, seq, occurred_at,"
                        " body, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (i.event_id, i.call_id, i.type, seq, i.occurred_at, i.body, now, now),
                    )
                    n += cur.rowcount
                added.append(n)
        return added

    def mark_delivered(self, event_id: str, now: float) -> None:
        # No fsync for this one: a "delivered" mark lost to an OS crash only re-sends the
        # event under the same Idempotency-Key, and a process kill loses nothing (WAL).
        # With an fsync per mark, a backlog drained at ~320 events/s (bench_pipeline).
        self.conn.execute("PRAGMA synchronous=NORMAL")
        try:
            with self._tx():
                self.conn.execute(
                    "UPDATE events SET state = 'delivered', delivered_at = ?,"
                    " attempts = attempts + 1, last_error = NULL"
                    " WHERE event_id = ? AND state = 'pending'",
                    (now, event_id),
                )
        finally:
            self.conn.execute("PRAGMA synchronous=FULL")

    def mark_failed(self, event_id: str, error: str, next_attempt_at: float) -> None:
        with self._tx():
            self.conn.execute(
                "UPDATE events SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?"
                " WHERE event_id = ? AND state = 'pending'",
                (error, next_attempt_at, event_id),
            )

    def park(self, event_id: str, error: str) -> None:
        with self._tx():
            self.conn.execute(
                "UPDATE events SET state = 'parked', attempts = attempts + 1, last_error = ?"
                " WHERE event_id = ? AND state = 'pending'",
                (error, event_id),
            )

    def reschedule(self, now: float) -> int:
        """Make every pending event due now (start-up; the backend came back)."""
        with self._tx():
            cur = self.conn.execute(
                "UPDATE events SET next_attempt_at = ? WHERE state = 'pending'"
                " AND next_attempt_at > ?",
                (now, now),
            )
        return cur.rowcount

    def retry(self, event_id: str | None, now: float) -> int:
        """Parked -> pending, due now: one event, or every parked event without an id."""
        where, args = (
            ("state = 'parked'", ())
            if event_id is None
            else (
                "state = 'parked' AND event_id = ?",
                (event_id,),
            )
        )
        with self._tx():
            cur = self.conn.execute(
                f"UPDATE events SET state = 'pending', next_attempt_at = ? WHERE {where}",
                (now, *args),
            )
        return cur.rowcount

    def prune(self, before: float) -> int:
        """Delete delivered events delivered before ``before``; nothing else is touched."""
        with self._tx():
            cur = self.conn.execute(
                "DELETE FROM events WHERE state = 'delivered' AND delivered_at < ?", (before,)
            )
        return cur.rowcount

    # -- reads --------------------------------------------------------------------------

    def due(self, now: float, exclude: Collection[str], limit: int) -> list[Row]:
        """Up to ``limit`` sendable events, oldest first: the first pending event of each
        call (calls in ``exclude`` skipped) whose next attempt is due."""
        marks = ",".join("?" * len(exclude))
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM events e WHERE e.state = 'pending'"
            f" AND e.next_attempt_at <= ? AND {_IS_HEAD}"
            f" AND e.call_id NOT IN ({marks}) ORDER BY e.created_at, e.call_id LIMIT ?",
            (now, *exclude, limit),
        ).fetchall()
        return [Row(*r) for r in rows]

    def next_due(self, exclude: Collection[str]) -> float | None:
        """When the next sendable event (outside ``exclude``) becomes due."""
        marks = ",".join("?" * len(exclude))
        return self.conn.execute(  # type: ignore[no-any-return]
            f"SELECT MIN(e.next_attempt_at) FROM events e WHERE e.state = 'pending'"
            f" AND {_IS_HEAD} AND e.call_id NOT IN ({marks})",
            tuple(exclude),
        ).fetchone()[0]

    def rows(self, state: str | None = None, limit: int | None = None) -> list[Row]:
        where, args = ("", ()) if state is None else ("WHERE state = ?", (state,))
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM events {where} ORDER BY created_at, call_id, seq LIMIT ?",
            (*args, -1 if limit is None else limit),
        ).fetchall()
        return [Row(*r) for r in rows]

    def get(self, event_id: str) -> Row | None:
        r = self.conn.execute(
            f"SELECT {_COLUMNS} FROM events WHERE event_id = ?", (event_id,)
        ).fetchone()
        return None if r is None else Row(*r)

    def counts(self) -> OutboxCounts:
        pending, oldest = self.conn.execute(
            "SELECT COUNT(*), MIN(created_at) FROM events WHERE state = 'pending'"
        ).fetchone()
        parked = self.conn.execute("SELECT COUNT(*) FROM events WHERE state = 'parked'").fetchone()[
            0
        ]
        return OutboxCounts(pending, parked, oldest)

    def open_calls(self) -> list[OpenCall]:
        """Calls with a call.offered and no call.ended, each with its latest event."""
        rows = self.conn.execute(
            "SELECT e.call_id, e.type, e.body FROM events e JOIN ("
            " SELECT call_id, MAX(seq) AS seq FROM events GROUP BY call_id"
            " HAVING SUM(type = ?) > 0 AND SUM(type = ?) = 0"
            ") o ON e.call_id = o.call_id AND e.seq = o.seq ORDER BY e.created_at",
            (inc.OFFERED, inc.ENDED),
        ).fetchall()
        return [
            OpenCall(call_id, type_, inc.record_from_json(json.loads(body)["call"]))
            for call_id, type_, body in rows
        ]


# -- the asynchronous facade for the daemon ---------------------------------------------

P = ParamSpec("P")
T = TypeVar("T")


class Outbox:
    """The outbox for the event loop: every call runs on the outbox's own thread.

    ``async with Outbox(path) as outbox:`` opens the file (creating it) and, on exit,
    waits for every submitted write and closes it.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        retention_seconds: float = 168 * 3600.0,
        max_unwritten: int = MAX_UNWRITTEN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.retention_seconds = retention_seconds
        self.policy = WritePolicy("outbox", limit=max_unwritten)
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pbxbridge-outbox")
        self._db: OutboxDB | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Group commit: writes waiting for the writer thread, guarded by _lock.
        self._lock = threading.Lock()
        self._inbox: list[_Write] = []
        # A failed group commit waits here, ahead of newer writes, for its retry.
        self._unwritten: list[_Write] = []
        self._drain_scheduled = False
        self._retry: asyncio.TimerHandle | None = None
        self.counts = OutboxCounts()  # as of the last refresh_counts()

    async def open(self) -> Outbox:
        self._loop = asyncio.get_running_loop()
        self._db = await self._run(OutboxDB, self.path)
        self.counts = await self._run(self._db.counts)
        return self

    async def close(self) -> None:
        if self._db is None:
            return
        try:
            await self.flush()
        finally:
            self._give_up_unwritten()
            db, self._db = self._db, None
            await self._run(db.close)
            await asyncio.to_thread(self._executor.shutdown, True)

    async def __aenter__(self) -> Outbox:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox: {exc}") from exc

    @property
    def db(self) -> OutboxDB:
        if self._db is None:
            raise OutboxError("the outbox is not open")
        return self._db

    # -- writes -------------------------------------------------------------------------

    def submit(self, incidents: Sequence[inc.Incident]) -> asyncio.Future[int]:
        """Hand ``incidents`` to the writer without blocking (event loop thread only).

        The future resolves to the number of new events once they are committed, or
        raises OutboxError if the commit failed.
        """
        assert self._loop is not None, "open() the outbox first"
        fut: asyncio.Future[int] = self._loop.create_future()
        with self._lock:
            self._inbox.append((incidents, self._clock(), fut))
            schedule = not self._drain_scheduled
            self._drain_scheduled = True
        if schedule:
            self._executor.submit(self._drain)
        return fut

    async def put(self, *incidents: inc.Incident) -> int:
        """Commit ``incidents``; returns after COMMIT with the number of new events."""
        return await self.submit(incidents)

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed (or has failed)."""
        # The executor is FIFO and one thread: a no-op queued now runs after every
        # drain scheduled before it.
        await self._run(lambda: None)

    def _drain(self) -> None:
        """Writer thread: commit every waiting write in one transaction. A failed commit
        is kept, in order, and retried (store_policy); nothing newer overtakes it."""
        # _drain_scheduled stays set until this drain is done: a write submitted
        # meanwhile waits for it (or for its retry), never overtakes it.
        with self._lock:
            batch, self._unwritten, self._inbox = [*self._unwritten, *self._inbox], [], []
        if not batch or self._db is None:
            self._drain_done()
            return
        error: BaseException | None = None
        try:
            added = self._db.insert_batches([(items, now) for items, now, _ in batch])
        except sqlite3.Error as exc:
            delay = self.policy.failed(exc, sum(len(items) for items, _, _ in batch))
            if delay is not None:
                with self._lock:
                    self._unwritten = batch  # newer writes wait behind it
                self._call_in_loop(self._retry_in, delay)
                return
            kept = sum(len(items) for items, _, _ in batch)
            error = OutboxError(f"outbox: {kept} events could not be kept: {exc}")
            added = [0] * len(batch)
        else:
            self.policy.succeeded()
        self._call_in_loop(_settle, [f for _, _, f in batch], added, error)
        self._drain_done()

    def _drain_done(self) -> None:
        """Writer thread: what was submitted during the drain goes next."""
        with self._lock:
            more = bool(self._inbox)
            self._drain_scheduled = more
        if more:
            self._executor.submit(self._drain)

    def _call_in_loop(self, fn: Callable[..., object], *args: object) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            self._loop.call_soon_threadsafe(fn, *args)

    def _retry_in(self, delay: float) -> None:
        """Loop thread: schedule the retry of the unwritten commit (there is one at most:
        no drain runs while it waits)."""
        assert self._loop is not None
        self._retry = self._loop.call_later(delay, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        if self._db is not None:
            self._executor.submit(self._drain)

    def _give_up_unwritten(self) -> None:
        """On close: what a failing disk still holds back is lost; say how much."""
        if self._retry is not None:
            self._retry.cancel()
        with self._lock:
            batch, self._unwritten, self._inbox = [*self._unwritten, *self._inbox], [], []
        if batch:
            lost = sum(len(items) for items, _, _ in batch)
            log.error("outbox_unwritten_at_exit", events=lost, error=self.policy.health.reason)
            error = OutboxError(f"outbox: {lost} events not written before exit")
            _settle([f for _, _, f in batch], [0] * len(batch), error)

    async def mark_delivered(self, event_id: str) -> None:
        await self._run(self.db.mark_delivered, event_id, self._clock())

    async def mark_failed(self, event_id: str, error: str, next_attempt_at: float) -> None:
        await self._run(self.db.mark_failed, event_id, error, next_attempt_at)

    async def park(self, event_id: str, error: str) -> None:
        await self._run(self.db.park, event_id, error)

    async def reschedule(self) -> int:
        return await self._run(self.db.reschedule, self._clock())

    async def retry(self, event_id: str | None = None) -> int:
        return await self._run(self.db.retry, event_id, self._clock())

    async def prune(self) -> int:
        return await self._run(self.db.prune, self._clock() - self.retention_seconds)

    # -- reads --------------------------------------------------------------------------

    async def due(self, exclude: Collection[str], limit: int) -> list[Row]:
        return await self._run(self.db.due, self._clock(), tuple(exclude), limit)

    async def next_due(self, exclude: Collection[str]) -> float | None:
        return await self._run(self.db.next_due, tuple(exclude))

    async def rows(self, state: str | None = None, limit: int | None = None) -> list[Row]:
        return await self._run(self.db.rows, state, limit)

    async def get(self, event_id: str) -> Row | None:
        return await self._run(self.db.get, event_id)

    async def refresh_counts(self) -> OutboxCounts:
        self.counts = await self._run(self.db.counts)
        return self.counts

    async def open_calls(self) -> list[OpenCall]:
        return await self._run(self.db.open_calls)


def _settle(
    futures: list[asyncio.Future[int]], added: list[int], error: BaseException | None
) -> None:
    """Loop thread: resolve the futures of one group commit."""
    for fut, n in zip(futures, added, strict=True):
        if fut.done():  # the waiter was cancelled
            continue
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(n)
