"""Durable callback list: SQLite beside the outbox, written off the event loop.

The book (callbacks.py) is the truth while running; every change to it is an effect
of the pipeline, written here (:meth:`CallbackStore.apply`) through a single writer
thread (WAL, synchronous=FULL), so a restart resumes the list.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import structlog

from pbxbridge import callbacks as cb
from pbxbridge import incidents
from pbxbridge.callbacks import Callback

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
        self.path = Path(path)
        self.write_errors = 0
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="callbacks")
        self._db: sqlite3.Connection = self._pool.submit(self._open).result()

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
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
        future = self._pool.submit(self._write, rows)
        future.add_done_callback(self._check)
        return future

    def _write(self, rows: list[tuple[str, int, str]]) -> None:
        if not rows:
            return
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR REPLACE INTO callbacks VALUES (?, ?, ?)", rows)

    def _check(self, future: concurrent.futures.Future[None]) -> None:
        exc = future.exception()
        if exc is not None:
            self.write_errors += 1
            log.error("callback_write_failed", error=str(exc), path=str(self.path))

    def close(self) -> None:
        self._pool.submit(self._db.close).result()
        self._pool.shutdown(wait=True)
