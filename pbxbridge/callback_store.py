"""Durable callback list: SQLite beside the outbox, written off the event loop.

The book (callbacks.py) is the truth while running; every change to it is an effect
of the pipeline, written here (:meth:`CallbackStore.apply`) through a single writer
thread (WAL, synchronous=FULL), so a restart resumes the list.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import structlog

from pbxbridge import callbacks as cb
from pbxbridge import incidents
from pbxbridge.callbacks import Callback
from pbxbridge.store_policy import WritePolicy, create_private

log = structlog.get_logger("pbxbridge.callbacks")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS callbacks (
    call_id TEXT PRIMARY KEY,
    pending INTEGER NOT NULL,
    entry TEXT NOT NULL
)
"""


_CHANGES = (cb.Queued, cb.Claimed, cb.Attempted, cb.Closed)


def _row(e: Callback) -> dict[str, Any]:
    data = {f.name: getattr(e, f.name) for f in dataclasses.fields(e)}
    data["record"] = incidents.call_json(e.record) if e.record is not None else None
    return data


def _entry(data: dict[str, Any]) -> Callback:
    record = data.pop("record", None)
    return Callback(**data, record=incidents.record_from_json(record) if record else None)


class CallbackStore:
    def __init__(self, path: str | Path) -> None:
        """Open (creating) the file; raises sqlite3.Error or OSError if it is unusable."""
        self.path = Path(path)
        # One row per call id, so what waits for a failing disk is bounded by the list.
        self.policy = WritePolicy("callbacks", limit=None)
        self._unwritten: dict[str, tuple[str, int, str]] = {}  # writer thread only
        self._retry: threading.Timer | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="callbacks")
        try:
            self._db: sqlite3.Connection = self._pool.submit(self._open).result()
        except BaseException:
            self._pool.shutdown(wait=True)
            raise

    def _open(self) -> sqlite3.Connection:
        create_private(self.path)
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(_SCHEMA)
        return db

    def load(self) -> list[Callback]:
        """Every entry still owed a callback."""

        def read() -> list[Callback]:
            rows = self._db.execute("SELECT entry FROM callbacks WHERE pending = 1").fetchall()
            return [_entry(json.loads(row[0])) for row in rows]

        return self._pool.submit(read).result()

    def apply(self, effects: Sequence[object]) -> None:
        """The pipeline's sink: every change to the list is written."""
        entries = [e.entry for e in effects if isinstance(e, _CHANGES)]
        if entries:
            self.save(entries)

    def save(self, entries: Iterable[Callback]) -> concurrent.futures.Future[None]:
        rows = [(e.call_id, int(e.pending), json.dumps(_row(e))) for e in entries]
        return self._pool.submit(self._write, rows)

    def _write(self, rows: list[tuple[str, int, str]]) -> None:
        """Writer thread. A failed write is kept (the latest row per call) and retried
        with the stores' one policy (store_policy)."""
        for row in rows:
            self._unwritten.pop(row[0], None)
            self._unwritten[row[0]] = row
        if not self._unwritten or (rows and self._retry is not None):
            return  # nothing to write, or a retry is pending: it writes these too
        try:
            if self._db.in_transaction:  # a failed COMMIT may leave it open
                self._db.execute("ROLLBACK")
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT OR REPLACE INTO callbacks VALUES (?, ?, ?)",
                    list(self._unwritten.values()),
                )
        except sqlite3.Error as exc:
            delay = self.policy.failed(exc, len(self._unwritten))
            self._retry = threading.Timer(delay or 0.0, self._retry_now)  # the only one
            self._retry.daemon = True
            self._retry.start()
            return
        self._unwritten.clear()
        self._retry = None
        self.policy.succeeded()

    def _retry_now(self) -> None:
        with contextlib.suppress(RuntimeError):  # closed meanwhile
            self._pool.submit(self._retried)

    def _retried(self) -> None:
        self._retry = None
        self._write([])

    def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        left = self._pool.submit(lambda: len(self._unwritten)).result()
        if left:
            log.error("callbacks_unwritten_at_exit", entries=left, path=str(self.path))
        self._pool.submit(self._db.close).result()
        self._pool.shutdown(wait=True)
