"""The regional call store in PostgreSQL: its schema, migrations and writes (psycopg 3).

Every write is idempotent (store_sql): calls are upserted by call id and version,
session rows inserted once by their natural keys, so two pbxbridge instances watching
one PBX, or one instance re-sending after a crash, keep one row per call. The schema's
version is the row of ``pbxbridge_schema``; migrations run under an advisory lock (two
instances starting together migrate once) and a newer schema is refused untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import psycopg

from pbxbridge import store_sql
from pbxbridge.local_schema import Migration, SchemaError
from pbxbridge.store_rows import Row
from pbxbridge.store_sql import StoreUnavailable

CONNECT_TIMEOUT_SECONDS = 5
STATEMENT_TIMEOUT_MS = 30_000
_LOCK = 0x706278  # pg_advisory_xact_lock key: "pbx"


MIGRATIONS: Sequence[Migration] = (
    Migration(
        1,
        "the call store: calls, call-taker and AMI sessions",
        store_sql.ddl("postgresql", local=False),
    ),
)
LATEST = MIGRATIONS[-1].version


def redacted(url: str) -> str:
    """The url without its password (in the authority or a ``password=`` parameter),
    for logs and errors."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        host = parts.netloc.rpartition("@")[2]
        netloc = f"{parts.username}:***@{host}"
    query = "&".join(
        f"{k}=***" if k.lower() == "password" else (f"{k}={v}" if v or "=" in pair else k)
        for pair in parts.query.split("&")
        if pair
        for k, _, v in [pair.partition("=")]
    )
    # urlunsplit would drop an empty authority ("postgresql:///db" is a valid url).
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def _connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        url,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
        application_name="pbxbridge",
    )


def connect_writer(url: str) -> psycopg.Connection[Any]:
    """A connection with the schema brought to LATEST."""
    conn = _connect(url)
    try:
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def connect_reader(url: str) -> psycopg.Connection[Any]:
    try:
        conn = _connect(url)
        conn.read_only = True
        found = _version(conn)
        conn.rollback()
    except psycopg.Error as exc:
        raise StoreUnavailable(f"{redacted(url)}: {type(exc).__name__}: {exc}") from None
    if found > LATEST:
        conn.close()
        raise StoreUnavailable(
            f"{redacted(url)}: written by a newer pbxbridge (schema {found}): upgrade pbxbridge"
        )
    if found == 0:
        conn.close()
        raise StoreUnavailable(f"{redacted(url)}: no call store yet: start pbxbridge once")
    return conn


def _version(conn: psycopg.Connection[Any]) -> int:
    exists = conn.execute("SELECT to_regclass('pbxbridge_schema')").fetchone()
    if exists is None or exists[0] is None:
        return 0
    row = conn.execute("SELECT MAX(version) FROM pbxbridge_schema").fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


def migrate(conn: psycopg.Connection[Any]) -> int:
    """Bring the database to LATEST, every step in one transaction (all or nothing);
    returns the version found."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS pbxbridge_schema (version INTEGER PRIMARY KEY,"
            " what TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        found = _version(conn)
        if found > LATEST:
            raise SchemaError(
                f"the regional store was written by a newer pbxbridge (schema {found}; this "
                f"one knows up to {LATEST}): upgrade pbxbridge; nothing was changed"
            )
        for m in MIGRATIONS:
            if found < m.version:
                for statement in m.statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO pbxbridge_schema (version, what) VALUES (%s, %s)",
                    (m.version, m.what),
                )
    return found


_WRITES = store_sql.Writes("postgresql", local=False)


def write(conn: psycopg.Connection[Any], rows: Sequence[Row]) -> None:
    """Keep ``rows`` (one transaction)."""
    with conn.transaction(), conn.cursor() as cur:
        for statement, params in _WRITES.grouped(rows):
            cur.executemany(statement, params)


def prune(conn: psycopg.Connection[Any], before: float, batch: int) -> int:
    """Delete up to ``batch`` rows older than ``before`` from each table."""
    n = 0
    with conn.transaction():
        for table, key, when in (
            ("calls", "call_id", "offered_at"),
            ("agent_events", "ctid", "at"),
            ("ami_sessions", "ctid", "at"),
        ):
            cur = conn.execute(
                f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table}"
                f" WHERE {when} < %s LIMIT {batch})",
                (before,),
            )
            n += cur.rowcount
    return n
