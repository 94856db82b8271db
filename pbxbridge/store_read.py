"""Reading the call store: the embedded SQLite file or the regional PostgreSQL, one
code path over DB-API connections. Synchronous: the daemon runs it in a thread, the
CLI directly (the daemon may be stopped: the file is opened read-only).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pbxbridge import local_schema, pg_store, store_query, store_sql
from pbxbridge.store_rows import AgentRow, AmiRow
from pbxbridge.store_sql import StoreUnavailable


@dataclass(frozen=True, slots=True)
class Target:
    """Where the calls are: a PostgreSQL url (the regional store) or the local file."""

    path: str
    url: str | None = None


class Reader:
    def __init__(self, conn: Any, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _all(self, sql: str, args: Sequence[Any]) -> list[Any]:
        cur = self.conn.cursor()
        try:
            cur.execute(store_sql.placeholders(sql, self.dialect), tuple(args))
            return list(cur.fetchall())
        finally:
            cur.close()

    def calls(self, page: store_query.Page) -> list[tuple[str, float, str]]:
        """(call JSON text, offered_at, call_id) of one page."""
        sql, args = store_query.calls_sql(page)
        return [(str(doc), float(at), str(cid)) for doc, at, cid in self._all(sql, args)]

    def pages(self, page: store_query.Page) -> Iterator[list[tuple[str, float, str]]]:
        """Every row of ``page``'s query from its cursor on, ``page.limit`` at a time."""
        while True:
            rows = self.calls(page)
            if rows:
                yield rows
            if len(rows) < page.limit:
                return
            page = store_query.Page(page.query, page.limit, (rows[-1][1], rows[-1][2]))

    def report_rows(self, period: store_query.Period) -> Iterator[tuple[Any, ...]]:
        """store_query.report_sql's rows, a batch at a time (a month is 100,000 calls)."""
        sql, args = store_query.report_sql(period, self.dialect)
        cur = self.conn.cursor()
        try:
            cur.execute(store_sql.placeholders(sql, self.dialect), tuple(args))
            while rows := cur.fetchmany(5000):
                yield from rows
        finally:
            cur.close()

    def call(self, call_id: str) -> str | None:
        rows = self._all("SELECT doc FROM calls WHERE call_id = ?", [call_id])
        return str(rows[0][0]) if rows else None

    def member_changes(self, period: store_query.Period) -> list[AgentRow]:
        """Every call taker's changes in ``period``, each member's state before it first."""
        cols = ", ".join(store_sql.AGENT_COLUMNS)
        before = self._all(
            f"SELECT {', '.join('a.' + c for c in store_sql.AGENT_COLUMNS)} FROM agent_events a"
            " JOIN (SELECT queue, agent, MAX(at) AS at FROM agent_events WHERE at < ?"
            " GROUP BY queue, agent) b ON a.queue = b.queue AND a.agent = b.agent"
            " AND a.at = b.at",
            [period.start],
        )
        within = self._all(
            f"SELECT {cols} FROM agent_events WHERE at >= ? AND at < ? ORDER BY at",
            [period.start, period.end],
        )
        return [AgentRow(*r) for r in [*before, *within]]

    def ami_sessions(self, period: store_query.Period) -> list[AmiRow]:
        """AMI sessions up and down in ``period``, each instance's last change before it first."""
        cols = ", ".join("s." + c for c in store_sql.AMI_COLUMNS)
        before = self._all(
            f"SELECT {cols} FROM ami_sessions s JOIN (SELECT instance, MAX(at) AS at"
            " FROM ami_sessions WHERE at < ? GROUP BY instance) b"
            " ON s.instance = b.instance AND s.at = b.at",
            [period.start],
        )
        within = self._all(
            f"SELECT {', '.join(store_sql.AMI_COLUMNS)} FROM ami_sessions"
            " WHERE at >= ? AND at < ? ORDER BY at",
            [period.start, period.end],
        )
        return [AmiRow(r[0], float(r[1]), bool(r[2]), r[3]) for r in [*before, *within]]


def open_reader(target: Target) -> Reader:
    if target.url is not None:
        return Reader(pg_store.connect_reader(target.url), "postgresql")
    return Reader(_open_sqlite(Path(target.path)), "sqlite")


def _open_sqlite(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise StoreUnavailable(
            f"{path}: no call store here (pbxbridge creates it at its first start; "
            "check [outbox] path)"
        )
    try:
        # One reader is used by one thread at a time, not always the same (to_thread).
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, timeout=5.0, check_same_thread=False
        )
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"{path}: cannot be read: {exc}") from None
    if version > local_schema.LATEST:
        conn.close()
        raise StoreUnavailable(
            f"{path}: written by a newer pbxbridge (schema {version}): upgrade pbxbridge"
        )
    if version < local_schema.STORE_SINCE:
        conn.close()
        raise StoreUnavailable(
            f"{path}: schema {version} has no call store yet: start pbxbridge once to migrate it"
        )
    return conn
