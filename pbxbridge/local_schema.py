"""The schema of pbxbridge's SQLite file (the outbox and the embedded call store), and
its migrations: applied at open, in order, each in one transaction, forward only.

``PRAGMA user_version`` is the schema's version. A file written by a newer pbxbridge is
refused untouched: an older program cannot know what the newer one's tables mean.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pbxbridge import store_sql

_EVENTS = [
    """CREATE TABLE IF NOT EXISTS events (
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
    )""",
    "CREATE INDEX IF NOT EXISTS events_call ON events (call_id, seq)",
    """CREATE INDEX IF NOT EXISTS events_pending
        ON events (call_id, seq, next_attempt_at, created_at) WHERE state = 'pending'""",
    """CREATE INDEX IF NOT EXISTS events_delivered ON events (delivered_at)
        WHERE state = 'delivered'""",
    "CREATE INDEX IF NOT EXISTS events_parked ON events (created_at) WHERE state = 'parked'",
]

# Version 2 keeps the calls the outbox still holds: the latest event of each call (its
# highest seq) is the call's newest state. SQLite's JSON functions do it in C; a
# million calls take seconds (tests/benchmarks/bench_store.py).
_BACKFILL_CALLS = """
INSERT INTO calls (call_id, version, offered_at, outcome, abandon_stage, queue, agent,
                   category, queues, agencies, caller_number, doc)
SELECT e.call_id,
       CAST(round(e.occurred_at * 1000000) AS INTEGER) * 4
         + CASE e.type WHEN 'call.offered' THEN 0 WHEN 'call.updated' THEN 1
                       WHEN 'call.answered' THEN 2 ELSE 3 END,
       strftime('%s', substr(json_extract(e.body, '$.call.offered_at'), 1, 19))
         + CAST('0' || substr(json_extract(e.body, '$.call.offered_at'), 20, 7) AS REAL),
       json_extract(e.body, '$.call.outcome'),
       json_extract(e.body, '$.call.abandon_stage'),
       json_extract(e.body, '$.call.queue'),
       json_extract(e.body, '$.call.agent'),
       json_extract(e.body, '$.call.category'),
       COALESCE((SELECT ',' || group_concat(q.value, ',') || ','
                 FROM json_each(e.body, '$.call.queues') q), ''),
       COALESCE((SELECT ',' || group_concat(json_extract(d.value, '$.agency'), ',') || ','
                 FROM json_each(e.body, '$.call.dispatched_to') d), ''),
       json_extract(e.body, '$.call.caller.number'),
       json_extract(e.body, '$.call')
FROM events e JOIN (SELECT call_id, MAX(seq) AS seq FROM events GROUP BY call_id) last
  ON e.call_id = last.call_id AND e.seq = last.seq
WHERE json_valid(e.body)
ON CONFLICT (call_id) DO NOTHING
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    what: str
    statements: Sequence[str]


MIGRATIONS: Sequence[Migration] = (
    Migration(1, "the incident outbox", _EVENTS),
    Migration(
        2,
        "the call store: calls, call-taker and AMI sessions",
        [*store_sql.ddl("sqlite", local=True), _BACKFILL_CALLS],
    ),
)
LATEST = MIGRATIONS[-1].version
STORE_SINCE = 2  # the first version with the call store's tables


class SchemaError(Exception):
    """The file's schema cannot be used by this pbxbridge (newer, or unreadable)."""


def refuse_newer(path: Path) -> None:
    """Refuse a file of a newer pbxbridge before anything writes to it: even switching
    to WAL, or closing a connection (a checkpoint of a left-over -wal), changes it. A
    read-only connection reads the version and leaves both as they are."""
    if not path.exists() or path.stat().st_size == 0:
        return
    # Without a -wal the file is the whole database: immutable opens it creating
    # nothing. With one, its commits count, and read-only never checkpoints it.
    has_wal = path.with_name(path.name + "-wal").exists()
    conn = sqlite3.connect(f"file:{path}?{'mode=ro' if has_wal else 'immutable=1'}", uri=True)
    try:
        found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()
    if found > LATEST:
        raise SchemaError(_newer(str(path), found))


def _newer(name: str, found: int) -> str:
    return (
        f"{name}: written by a newer pbxbridge (schema {found}; this one knows up to "
        f"{LATEST}): upgrade pbxbridge, or move the file aside; it was not changed"
    )


def migrate(
    conn: sqlite3.Connection,
    name: str,
    *,
    target: int = LATEST,
    on_step: Callable[[Migration], None] | None = None,
) -> int:
    """Bring ``conn``'s file to ``target``; returns the version it had."""
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found > LATEST:
        raise SchemaError(_newer(name, found))
    for m in MIGRATIONS:
        if found < m.version <= target:
            if on_step is not None:
                on_step(m)
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in m.statements:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={m.version}")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
    return found
