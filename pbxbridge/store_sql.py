"""The call store's tables and writes, in the SQL that SQLite and PostgreSQL share.

The same statements serve the embedded store (tables in the outbox's SQLite file,
written in the outbox's own transaction) and the regional one (PostgreSQL): only the
placeholder differs (``?`` or ``%s``) and the local tables carry ``replicated``, the
mark of a row the regional store has not yet taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pbxbridge.store_rows import AgentRow, AliveRow, AmiRow, CallRow, Row

CALL_COLUMNS = (
    "call_id",
    "version",
    "offered_at",
    "outcome",
    "abandon_stage",
    "queue",
    "agent",
    "category",
    "queues",
    "agencies",
    "caller_number",
    "doc",
)
AGENT_COLUMNS = ("at", "queue", "agent", "state", "reason")
AMI_COLUMNS = ("instance", "at", "up", "detail")
TABLES = ("calls", "agent_events", "ami_sessions")


class StoreUnavailable(Exception):
    """The store cannot be read; the message says why and what to do."""


def _types(dialect: str) -> dict[str, str]:
    pg = dialect == "postgresql"
    return {
        "time": "DOUBLE PRECISION" if pg else "REAL",
        "int": "BIGINT" if pg else "INTEGER",
        "bool": "BOOLEAN" if pg else "INTEGER",
    }


def ddl(dialect: str, *, local: bool) -> list[str]:
    """CREATE statements of the store's tables (``local``: with the replication mark)."""
    t = _types(dialect)
    mark = ", replicated INTEGER NOT NULL DEFAULT 0" if local else ""
    statements = [
        f"""CREATE TABLE IF NOT EXISTS calls (
            call_id TEXT PRIMARY KEY, version {t["int"]} NOT NULL,
            offered_at {t["time"]} NOT NULL, outcome TEXT, abandon_stage TEXT, queue TEXT,
            agent TEXT, category TEXT, queues TEXT NOT NULL DEFAULT '',
            agencies TEXT NOT NULL DEFAULT '',
            caller_number TEXT NOT NULL DEFAULT '', doc TEXT NOT NULL{mark})""",
        "CREATE INDEX IF NOT EXISTS calls_offered ON calls (offered_at, call_id)",
        "CREATE INDEX IF NOT EXISTS calls_number ON calls (caller_number, offered_at)",
        f"""CREATE TABLE IF NOT EXISTS agent_events (
            at {t["time"]} NOT NULL, queue TEXT NOT NULL, agent TEXT NOT NULL,
            state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT ''{mark},
            PRIMARY KEY (queue, agent, at, state))""",
        "CREATE INDEX IF NOT EXISTS agent_events_at ON agent_events (at)",
        f"""CREATE TABLE IF NOT EXISTS ami_sessions (
            instance TEXT NOT NULL, at {t["time"]} NOT NULL, up {t["bool"]} NOT NULL,
            detail TEXT NOT NULL{mark}, PRIMARY KEY (instance, at, up))""",
        "CREATE INDEX IF NOT EXISTS ami_sessions_at ON ami_sessions (at)",
    ]
    if local:
        statements.append(
            f"CREATE TABLE IF NOT EXISTS instances (instance TEXT PRIMARY KEY,"
            f" alive_at {t['time']} NOT NULL)"
        )
        statements += [
            f"CREATE INDEX IF NOT EXISTS {table}_unreplicated ON {table} (replicated)"
            f" WHERE replicated = 0"
            for table in TABLES
        ]
    return statements


def placeholders(sql: str, dialect: str) -> str:
    """``?`` (written here) as the dialect's placeholder."""
    return sql.replace("?", "%s") if dialect == "postgresql" else sql


def _upsert_call(local: bool) -> str:
    cols = ", ".join(CALL_COLUMNS)
    marks = ", ".join("?" * len(CALL_COLUMNS))
    sets = ", ".join(f"{c} = excluded.{c}" for c in CALL_COLUMNS[1:])
    mark_col, mark_val, mark_set = (
        (", replicated", ", 0", ", replicated = 0") if local else ("", "", "")
    )
    # Only a version at least as new replaces the row: events may arrive out of order
    # (a replica catching up, a second instance) and a newer state must never regress.
    return (
        f"INSERT INTO calls ({cols}{mark_col}) VALUES ({marks}{mark_val})"
        f" ON CONFLICT (call_id) DO UPDATE SET {sets}{mark_set}"
        f" WHERE excluded.version >= calls.version"
    )


def _insert(table: str, columns: Sequence[str]) -> str:
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        f" ON CONFLICT DO NOTHING"
    )


class Writes:
    """The store's write statements for one dialect."""

    def __init__(self, dialect: str, *, local: bool) -> None:
        self.call = placeholders(_upsert_call(local), dialect)
        self.agent = placeholders(_insert("agent_events", AGENT_COLUMNS), dialect)
        self.ami = placeholders(_insert("ami_sessions", AMI_COLUMNS), dialect)
        self.alive = (
            "INSERT INTO instances (instance, alive_at) VALUES (?, ?) ON CONFLICT (instance)"
            " DO UPDATE SET alive_at = excluded.alive_at WHERE excluded.alive_at > alive_at"
            if local
            else None
        )

    def grouped(self, rows: Sequence[Row]) -> list[tuple[str, list[tuple[Any, ...]]]]:
        """(statement, parameter rows) in the rows' order per kind, for executemany."""
        calls = [call_params(r) for r in rows if isinstance(r, CallRow)]
        agents = [agent_params(r) for r in rows if isinstance(r, AgentRow)]
        amis = [ami_params(r) for r in rows if isinstance(r, AmiRow)]
        every = [(self.call, calls), (self.agent, agents), (self.ami, amis)]
        if self.alive is not None:
            alive = [(r.instance, r.at) for r in rows if isinstance(r, AliveRow)]
            every.append((self.alive, alive))
        return [(sql, params) for sql, params in every if params]


def call_params(r: CallRow) -> tuple[Any, ...]:
    return (
        r.call_id,
        r.version,
        r.offered_at,
        r.outcome,
        r.abandon_stage,
        r.queue,
        r.agent,
        r.category,
        r.queues,
        r.agencies,
        r.caller_number,
        r.doc,
    )


def agent_params(r: AgentRow) -> tuple[Any, ...]:
    return (r.at, r.queue, r.agent, r.state, r.reason)


def ami_params(r: AmiRow) -> tuple[Any, ...]:
    return (r.instance, r.at, r.up, r.detail)
