"""The outbox's SQLite file: one connection used by one thread (the CLI, or Outbox's
writer thread). The asynchronous facade is :mod:`pbxbridge.outbox`.

Event ids are primary keys and inserts are ``INSERT OR IGNORE``: an event announced
again (after a restart, by a tracker re-adopting a call) is stored once. ``seq`` numbers
the events of one call in insertion order; delivery follows it within a call.

States: ``pending`` (to deliver), ``delivered``, ``parked`` (refused by the backend with a
4xx: kept, never retried until ``pbxbridge outbox retry``). Delivered rows are pruned
after the retention; pending and parked rows never are.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pbxbridge import incidents as inc
from pbxbridge import local_schema, store_sql
from pbxbridge import tracker as tr
from pbxbridge.local_schema import SchemaError
from pbxbridge.store_policy import create_private
from pbxbridge.store_rows import AgentRow, AmiRow, CallRow
from pbxbridge.store_rows import Row as StoreRow

STATES = ("pending", "delivered", "parked")
SCHEMA_VERSION = local_schema.LATEST
# Store rows pruned per transaction: a prune never holds the writer thread for long.
PRUNE_BATCH = 2000

_COLUMNS = (
    "event_id, call_id, type, seq, occurred_at, body, state, attempts, next_attempt_at, "
    "last_error, created_at, delivered_at"
)

# The first pending event of its call: only such a row may be sent (in-order per call).
_IS_HEAD = (
    "e.seq = (SELECT MIN(p.seq) FROM events p WHERE p.call_id = e.call_id AND p.state = 'pending')"
)


# The store's tables and the time their retention runs from.
_STORE_TIMES = (("calls", "offered_at"), ("agent_events", "at"), ("ami_sessions", "at"))


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
        local_schema.refuse_newer(self.path)
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
        try:
            local_schema.migrate(self.conn, str(self.path))
        except (SchemaError, sqlite3.Error):
            self.conn.close()
            raise
        self._writes = store_sql.Writes("sqlite", local=True)

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

    def insert(
        self, incidents: Iterable[inc.Incident], now: float, rows: Sequence[StoreRow] = ()
    ) -> int:
        """Commit ``incidents`` and the store's ``rows`` (one transaction); returns how
        many events were new."""
        return self.insert_batches([(incidents, rows, now)])[0]

    def insert_batches(
        self, batches: Sequence[tuple[Iterable[inc.Incident], Sequence[StoreRow], float]]
    ) -> list[int]:
        """Commit several submitters' events and store rows in one transaction (an event
        and its call's record are durable together or not at all); new events per batch."""
        added: list[int] = []
        with self._tx():
            for incidents, rows, now in batches:
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
                for statement, params in self._writes.grouped(rows):
                    self.conn.executemany(statement, params)
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

    def prune_store(self, before: float, *, replicated_only: bool) -> int:
        """Delete up to PRUNE_BATCH store rows older than ``before`` from each table (with
        a regional store, only rows it already holds); call again while it returns any."""
        mark = " AND replicated = 1" if replicated_only else ""
        n = 0
        with self._tx():
            for table, when in _STORE_TIMES:
                n += self.conn.execute(
                    f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table}"
                    f" WHERE {when} < ?{mark} LIMIT {PRUNE_BATCH})",
                    (before,),
                ).rowcount
        return n

    def unreplicated(self, limit: int) -> list[StoreRow]:
        """Up to ``limit`` store rows of each kind the regional store has not taken."""
        cols = ", ".join(store_sql.CALL_COLUMNS)
        calls = self.conn.execute(
            f"SELECT {cols} FROM calls WHERE replicated = 0 LIMIT ?", (limit,)
        ).fetchall()
        agents = self.conn.execute(
            f"SELECT {', '.join(store_sql.AGENT_COLUMNS)} FROM agent_events"
            " WHERE replicated = 0 LIMIT ?",
            (limit,),
        ).fetchall()
        amis = self.conn.execute(
            f"SELECT {', '.join(store_sql.AMI_COLUMNS)} FROM ami_sessions"
            " WHERE replicated = 0 LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            *(CallRow(*r) for r in calls),
            *(AgentRow(*r) for r in agents),
            *(AmiRow(r[0], r[1], bool(r[2]), r[3]) for r in amis),
        ]

    def mark_replicated(self, rows: Sequence[StoreRow]) -> None:
        """The regional store holds ``rows``: a call changed since keeps its mark."""
        with self._tx():
            for r in rows:
                match r:
                    case CallRow(call_id=call_id, version=version):
                        self.conn.execute(
                            "UPDATE calls SET replicated = 1 WHERE call_id = ? AND version = ?",
                            (call_id, version),
                        )
                    case AgentRow():
                        self.conn.execute(
                            "UPDATE agent_events SET replicated = 1 WHERE queue = ?"
                            " AND agent = ? AND at = ? AND state = ?",
                            (r.queue, r.agent, r.at, r.state),
                        )
                    case AmiRow():
                        self.conn.execute(
                            "UPDATE ami_sessions SET replicated = 1 WHERE instance = ?"
                            " AND at = ? AND up = ?",
                            (r.instance, r.at, r.up),
                        )

    def unended_session(self, instance: str) -> float | None:
        """When ``instance`` was last alive, if its last AMI session never ended (a kill,
        a crash, a power cut): the start of a time nobody watched from here."""
        alive = self.conn.execute(
            "SELECT alive_at FROM instances WHERE instance = ?", (instance,)
        ).fetchone()
        last = self.conn.execute(
            "SELECT at, up FROM ami_sessions WHERE instance = ? ORDER BY at DESC, up LIMIT 1",
            (instance,),
        ).fetchone()
        if last is None or not last[1]:
            return None
        # Before its first heartbeat, the session's start is the last sign of life.
        return max(float(alive[0]) if alive is not None else 0.0, float(last[0]))

    def unreplicated_count(self) -> int:
        return sum(
            self.conn.execute(f"SELECT COUNT(*) FROM {t} WHERE replicated = 0").fetchone()[0]
            for t in store_sql.TABLES
        )

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
