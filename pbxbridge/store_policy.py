"""The one failure policy of pbxbridge's SQLite files (the outbox, the callback list).

A write that fails (disk full, an I/O error) is not lost: the store keeps it in memory
and retries with backoff (:func:`pbxbridge.backoff.full_jitter`) until it succeeds,
while ``/ready`` says the store is failing and why, and a metric counts every failure.
Only when the memory kept for unwritten records passes its bound does a write fail for
good, and the error says how many records could not be kept. The first failure and the
recovery are logged, not every retry.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from pbxbridge.backoff import full_jitter

log = structlog.get_logger("pbxbridge.store")

RETRY_BASE_SECONDS = 0.2
RETRY_CAP_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """What ``/ready`` and the metrics show of a store."""

    writable: bool
    reason: str | None  # the last failure while not writable
    failures: int  # failed write attempts since start
    unwritten: int  # records held in memory, waiting for a write to succeed


class WritePolicy:
    """Decides, for one store, what a failed write means. Called from the store's
    writer thread; read (health) from the event loop. ``limit``: records it may hold
    in memory (None: bounded by the data itself, as the callback list is)."""

    def __init__(
        self,
        store: str,
        *,
        limit: int | None,
        rng: Callable[[], float] = random.random,
        base: float = RETRY_BASE_SECONDS,
        cap: float = RETRY_CAP_SECONDS,
    ) -> None:
        self.store = store
        self.limit = limit
        self._rng, self._base, self._cap = rng, base, cap
        self._attempt = 0
        self._failures = 0
        self._reason: str | None = None
        self._unwritten = 0

    @property
    def health(self) -> StoreHealth:
        return StoreHealth(self._reason is None, self._reason, self._failures, self._unwritten)

    def failed(self, exc: BaseException, unwritten: int) -> float | None:
        """A write failed with ``unwritten`` records held: the seconds until the retry,
        or None when that is more than the store may hold (the write fails for good)."""
        self._failures += 1
        self._unwritten = unwritten
        first = self._reason is None
        self._reason = f"{type(exc).__name__}: {exc}"
        if self.limit is not None and unwritten > self.limit:
            log.error(
                "store_unwritten_limit", store=self.store, unwritten=unwritten, limit=self.limit
            )
            return None
        if first:
            log.error(
                "store_write_failed", store=self.store, error=self._reason, unwritten=unwritten
            )
        delay = full_jitter(self._attempt, base=self._base, cap=self._cap, rng=self._rng)
        self._attempt += 1
        return delay

    def succeeded(self) -> None:
        if self._reason is not None:
            log.info("store_write_recovered", store=self.store, attempts=self._attempt + 1)
        self._reason, self._attempt, self._unwritten = None, 0, 0


def create_private(path: Path) -> None:
    """Create the database file (and its directory) readable by the service alone,
    whatever the umask: caller numbers are in it. SQLite gives its -wal and -shm files
    the database file's permissions."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
