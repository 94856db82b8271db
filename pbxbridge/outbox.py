"""The incident outbox: a SQLite file where every event is committed before any POST.

Durability: WAL with ``synchronous=FULL``; :meth:`Outbox.put` (and the future returned
by :meth:`Outbox.submit`) completes only after COMMIT. All database work runs on one
dedicated thread that owns the one connection, so the event loop never blocks on
SQLite and the connection needs no lock. Writes submitted while a commit is in progress
are committed together (group commit): a burst costs one fsync, not one per event.

The file itself (schema, states, the SQL) is :mod:`pbxbridge.outbox_db`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

import structlog

from pbxbridge import incidents as inc
from pbxbridge.outbox_db import STATES, OpenCall, OutboxCounts, OutboxDB, OutboxError, Row
from pbxbridge.store_policy import WritePolicy
from pbxbridge.store_rows import Row as StoreRow

__all__ = ["STATES", "OpenCall", "Outbox", "OutboxCounts", "OutboxDB", "OutboxError", "Row"]

log = structlog.get_logger("pbxbridge.outbox")

# Events kept in memory while commits fail (disk full): about 1.5 KB each.
MAX_UNWRITTEN = 50_000

_Write = tuple[Sequence[inc.Incident], Sequence[StoreRow], float, "asyncio.Future[int]"]
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

    def submit(
        self, incidents: Sequence[inc.Incident], rows: Sequence[StoreRow] = ()
    ) -> asyncio.Future[int]:
        """Hand ``incidents`` and the call store's ``rows`` to the writer without blocking
        (event loop thread only).

        The future resolves to the number of new events once they are committed, or
        raises OutboxError if the commit failed.
        """
        assert self._loop is not None, "open() the outbox first"
        fut: asyncio.Future[int] = self._loop.create_future()
        with self._lock:
            self._inbox.append((incidents, rows, self._clock(), fut))
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
            added = self._db.insert_batches([(items, rows, now) for items, rows, now, _ in batch])
        except sqlite3.Error as exc:
            delay = self.policy.failed(exc, sum(len(items) for items, _, _, _ in batch))
            if delay is not None:
                with self._lock:
                    self._unwritten = batch  # newer writes wait behind it
                self._call_in_loop(self._retry_in, delay)
                return
            kept = sum(len(items) for items, _, _, _ in batch)
            error = OutboxError(f"outbox: {kept} events could not be kept: {exc}")
            added = [0] * len(batch)
        else:
            self.policy.succeeded()
        self._call_in_loop(_settle, [f for *_, f in batch], added, error)
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
            lost = sum(len(items) for items, _, _, _ in batch)
            log.error("outbox_unwritten_at_exit", events=lost, error=self.policy.health.reason)
            error = OutboxError(f"outbox: {lost} events not written before exit")
            _settle([f for *_, f in batch], [0] * len(batch), error)

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

    async def prune_store(self, retention_seconds: float, *, replicated_only: bool) -> int:
        """Prune the call store in small transactions, each its own turn on the writer
        thread: the pipeline's commits go between them."""
        before, total = self._clock() - retention_seconds, 0
        while n := await self._run(self.db.prune_store, before, replicated_only=replicated_only):
            total += n
        return total

    async def unreplicated(self, limit: int) -> list[StoreRow]:
        return await self._run(self.db.unreplicated, limit)

    async def mark_replicated(self, rows: Sequence[StoreRow]) -> None:
        await self._run(self.db.mark_replicated, rows)

    async def unended_session(self, instance: str) -> float | None:
        return await self._run(self.db.unended_session, instance)

    async def unreplicated_count(self) -> int:
        return await self._run(self.db.unreplicated_count)

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
