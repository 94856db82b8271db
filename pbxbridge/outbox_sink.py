"""The pipeline's sink for the local file: effects -> outbox events and call-store rows,
committed together, never blocking the pipeline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import structlog

from pbxbridge import callbacks as cb
from pbxbridge import incidents as inc
from pbxbridge import tracker as tr
from pbxbridge.outbox import Outbox, OutboxError
from pbxbridge.store_rows import Row, rows_of

log = structlog.get_logger("pbxbridge.outbox")


class OutboxSink:
    """The pipeline's EffectSink for incidents: effects -> outbox rows, never blocking.

    :meth:`apply` (called synchronously by the pipeline task) serialises the events and
    hands them to the outbox's writer thread. :meth:`run` (a task of the daemon) waits
    for each commit in order, wakes delivery once it is durable, and keeps house
    (counts for metrics, retention). A failing commit is retried by the outbox
    (store_policy) while it can hold the events; past that, OutboxError from
    :meth:`run` ends the daemon, saying how many events it could not keep.
    :meth:`flush` waits for every event handed over so far (shutdown).
    """

    def __init__(
        self,
        outbox: Outbox,
        *,
        instance: str = "",
        store_retention_seconds: float = 1825 * 86400.0,
        replicated_only: bool = False,
        on_durable: Callable[[], None] | None = None,
        counts_every: float = 1.0,
        prune_every: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outbox = outbox
        self.instance = instance  # this pbxbridge, in the AMI session rows
        self._store_retention = store_retention_seconds
        self._replicated_only = replicated_only
        self._on_durable = on_durable
        self._writes: asyncio.Queue[asyncio.Future[int]] = asyncio.Queue()
        self._outstanding: set[asyncio.Future[int]] = set()
        self._counts_every = counts_every
        self._prune_every = prune_every
        self._clock = clock
        self.enqueued = 0  # events handed to the writer
        self.committed = 0  # new events committed (a re-announced event is not new)

    def apply(self, effects: Sequence[tr.Effect | cb.Change]) -> None:
        incidents = [i for e in effects if (i := inc.from_effect(e)) is not None]
        rows = rows_of(effects, incidents, self.instance)
        if rows:  # every incident has its call's row
            self._enqueue(incidents, rows)

    def _enqueue(self, incidents: Sequence[inc.Incident], rows: Sequence[Row]) -> None:
        fut = self.outbox.submit(incidents, rows)
        self.enqueued += len(incidents)
        self._outstanding.add(fut)
        fut.add_done_callback(self._outstanding.discard)
        self._writes.put_nowait(fut)

    async def run(self) -> None:
        last_prune = -float("inf")  # prune once soon after start, then every prune_every
        while True:
            try:
                async with asyncio.timeout(self._counts_every):
                    fut = await self._writes.get()
            except TimeoutError:
                pass
            else:
                await self._settled(fut)
                # Everything already committed is settled in one go.
                while not self._writes.empty():
                    await self._settled(self._writes.get_nowait())
                if self._on_durable is not None:
                    self._on_durable()
            try:
                if self._clock() - last_prune >= self._prune_every:
                    last_prune = self._clock()
                    pruned = await self.outbox.prune()
                    if pruned:
                        log.info("outbox_pruned", events=pruned)
                    pruned = await self.outbox.prune_store(
                        self._store_retention, replicated_only=self._replicated_only
                    )
                    if pruned:
                        log.info("store_pruned", rows=pruned)
                await self.outbox.refresh_counts()
            except OutboxError as exc:
                # Housekeeping waits for a disk that works again; the writes' own
                # failure policy (store_policy) is what keeps events.
                log.warning("outbox_housekeeping_failed", error=str(exc))

    async def _settled(self, fut: asyncio.Future[int]) -> None:
        try:
            added = await fut
        except OutboxError as exc:
            log.error("outbox_write_failed", error=str(exc))
            raise
        self.committed += added

    async def flush(self) -> None:
        """Wait until every event handed over so far is committed; raise if one failed."""
        if self._outstanding:
            await asyncio.gather(*list(self._outstanding))
        await self.outbox.flush()
