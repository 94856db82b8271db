"""The regional store's feed: rows from the local file to PostgreSQL, never the reverse.

The pipeline never waits for PostgreSQL: it commits to the local file (outbox_db),
where every row is marked ``replicated = 0``. This task copies marked rows in batches,
then clears the mark of each row it copied, unless the row changed meanwhile (a newer
version of a call is copied again). PostgreSQL down or slow: rows wait in the local
file (full_jitter retries), ``/ready`` says degraded and the metrics count what waits;
the local file's retention never prunes a row PostgreSQL has not taken.
"""

from __future__ import annotations

import asyncio
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog

from pbxbridge import pg_store
from pbxbridge.backoff import full_jitter
from pbxbridge.local_schema import SchemaError
from pbxbridge.outbox import Outbox
from pbxbridge.store_policy import StoreHealth

log = structlog.get_logger("pbxbridge.store")

BATCH = 500
IDLE_SECONDS = 1.0
PRUNE_EVERY_SECONDS = 600.0
PRUNE_BATCH = 2000


@dataclass
class ReplicaStats:
    reachable: bool = False
    reason: str | None = "not connected yet"
    failures: int = 0
    waiting: int = 0  # rows in the local file PostgreSQL has not taken
    copied: int = 0

    def health(self) -> StoreHealth:
        return StoreHealth(self.reachable, self.reason, self.failures, 0)


class Replica:
    def __init__(
        self,
        outbox: Outbox,
        url: str,
        *,
        retention_seconds: float,
        retry_cap: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.outbox = outbox
        self.url = url
        self.where = pg_store.redacted(url)
        self.retention_seconds = retention_seconds
        self.retry_cap = retry_cap
        self.stats = ReplicaStats()
        self._rng = rng or random.Random()
        # One thread owns the connection: psycopg calls block.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pbxbridge-pg")
        self._conn: psycopg.Connection[Any] | None = None
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New rows are durable locally (the outbox sink's on_durable)."""
        self._wake.set()

    async def _pg(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _ensure(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = pg_store.connect_writer(self.url)
        return self._conn

    def _write(self, rows: list[Any]) -> None:
        pg_store.write(self._ensure(), rows)

    def _prune(self, before: float) -> int:
        return pg_store.prune(self._ensure(), before, PRUNE_BATCH)

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def run(self) -> None:
        attempt, last_prune = 0, -float("inf")
        try:
            while True:
                self.stats.waiting = await self.outbox.unreplicated_count()
                rows = await self.outbox.unreplicated(BATCH)
                try:
                    if rows:
                        await self._pg(self._write, rows)
                    elif time.monotonic() - last_prune >= PRUNE_EVERY_SECONDS:
                        last_prune = time.monotonic()
                        before = time.time() - self.retention_seconds
                        while await self._pg(self._prune, before):
                            pass
                    else:
                        await self._pg(self._ensure)
                except (psycopg.Error, OSError, SchemaError) as exc:
                    await self._pg(self._drop)
                    self._failed(exc)
                    attempt += 1
                    delay = full_jitter(attempt, base=0.5, cap=self.retry_cap, rng=self._rng.random)
                    await asyncio.sleep(delay)
                    continue
                if not self.stats.reachable:
                    log.info("store_regional_up", store=self.where, waiting=self.stats.waiting)
                self.stats.reachable, self.stats.reason, attempt = True, None, 0
                if rows:
                    await self.outbox.mark_replicated(rows)
                    self.stats.copied += len(rows)
                    if len(rows) >= BATCH:
                        continue  # a backlog: on at once
                self._wake.clear()
                try:
                    async with asyncio.timeout(IDLE_SECONDS):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            await asyncio.to_thread(self._close)

    def _close(self) -> None:
        self._executor.submit(self._drop).result()
        self._executor.shutdown(wait=True)

    def _failed(self, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
        if self.stats.reachable or self.stats.failures == 0:
            log.warning(
                "store_regional_down",
                store=self.where,
                error=reason,
                waiting=self.stats.waiting,
                hint="rows wait in the local file and are copied when PostgreSQL is back",
            )
        self.stats.reachable, self.stats.reason = False, reason
        self.stats.failures += 1
