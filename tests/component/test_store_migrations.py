"""Schema migrations of the outbox's SQLite file and of the regional PostgreSQL store.

The version-1 outbox is tests/fixtures/outbox_v1.sql: a dump of a file written by the
code of commit bbc44b0 from the lab transcripts (tests/fixtures/make_outbox_v1.py).
What the backfill must make of it is computed here from the stored event bodies alone,
with the standard library: never with the code under test.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pbxbridge import local_schema, pg_store, store_rows
from pbxbridge.local_schema import Migration, SchemaError
from pbxbridge.outbox_db import OutboxDB

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "outbox_v1.sql"
STORE_TABLES = ("calls", "agent_events", "ami_sessions")
EVENT_COLUMNS = (
    "event_id, call_id, type, seq, occurred_at, body, typeof(body), state, attempts,"
    " next_attempt_at, last_error, created_at, delivered_at"
)


# -- SQLite: files at each earlier version --------------------------------------------


def write_v1(path: Path) -> None:
    """The fixture as the old pbxbridge left it: a WAL file at user_version 1."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(FIXTURE.read_text(encoding="utf-8"))


def write_empty(path: Path) -> None:
    path.touch()  # a new, empty file: version 0


EARLIER = {"v0-empty-file": write_empty, "v0-no-file": lambda path: None, "v1": write_v1}


@contextlib.contextmanager
def plain(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def user_version(path: Path) -> int:
    with plain(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def events(path: Path) -> list[tuple[Any, ...]]:
    """Every column of every event, and the storage class of its body."""
    with plain(path) as conn:
        if "events" not in tables(conn):
            return []
        return conn.execute(f"SELECT {EVENT_COLUMNS} FROM events ORDER BY event_id").fetchall()


def schema(path: Path) -> list[tuple[str, str, str, str]]:
    """sqlite_master, whitespace aside (the v1 DDL was written with other indentation)."""
    with plain(path) as conn:
        rows = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master"
            " WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
        ).fetchall()
    return [(t, n, tbl, " ".join((sql or "").split())) for t, n, tbl, sql in rows]


def sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def file_hashes(path: Path) -> dict[str, str | None]:
    """The file and its write-ahead log (None: absent)."""
    return {p.name: sha256(p) for p in (path, path.with_name(path.name + "-wal"))}


# -- the oracle: what a call row must be, from the event bodies alone -------------------


def utc_seconds(text: str) -> float:
    """RFC 3339 with microseconds and a Z, as incident bodies write times."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def expected_calls(rows: list[tuple[Any, ...]]) -> dict[str, dict[str, Any]]:
    """Per call, from its highest-seq event's body."""
    latest: dict[str, tuple[Any, ...]] = {}
    for row in rows:
        call_id, seq = row[1], row[3]
        if call_id not in latest or seq > latest[call_id][3]:
            latest[call_id] = row
    out: dict[str, dict[str, Any]] = {}
    for call_id, (event_id, _, type_, _, occurred_at, body, *_) in latest.items():
        doc = json.loads(bytes(body).decode("utf-8"))
        assert (doc["event_id"], doc["type"]) == (event_id, type_)
        call = doc["call"]
        assert call["call_id"] == call_id
        agencies = [d["agency"] for d in call["dispatched_to"]]
        queues = call["queues"]
        out[call_id] = {
            "version": store_rows.version(occurred_at, type_),
            "offered_at": utc_seconds(call["offered_at"]),
            "outcome": call["outcome"],
            "abandon_stage": call["abandon_stage"],
            "queue": call["queue"],
            "agent": call["agent"],
            "category": call["category"],
            "queues": f",{','.join(queues)}," if queues else "",
            "agencies": f",{','.join(agencies)}," if agencies else "",
            "caller_number": call["caller"]["number"],
            "doc": call,
            "replicated": 0,  # the regional store has not taken it yet
        }
    return out


CALL_SELECT = (
    "SELECT call_id, version, offered_at, outcome, abandon_stage, queue, agent, category,"
    " queues, agencies, caller_number, doc, replicated FROM calls"
)


def stored_calls(path: Path) -> dict[str, dict[str, Any]]:
    with plain(path) as conn:
        cur = conn.execute(CALL_SELECT)
        names = [d[0] for d in cur.description]
        out = {}
        for row in cur.fetchall():
            values = dict(zip(names, row, strict=True))
            out[values.pop("call_id")] = values
        return out


def assert_backfilled(path: Path, before: list[tuple[Any, ...]]) -> None:
    expected = expected_calls(before)
    got = stored_calls(path)
    assert sorted(got) == sorted(expected)
    for call_id, want in expected.items():
        row = got[call_id]
        assert isinstance(row["version"], int), call_id
        assert row["offered_at"] == pytest.approx(want["offered_at"], abs=1e-6), call_id
        assert json.loads(row["doc"]) == want["doc"], call_id
        rest = {k: v for k, v in row.items() if k not in ("offered_at", "doc")}
        assert rest == {k: v for k, v in want.items() if k not in ("offered_at", "doc")}, call_id


# -- SQLite: the v1 fixture holds what the tests below rely on -------------------------


def test_the_v1_fixture_is_a_varied_v1_outbox(tmp_path: Path) -> None:
    """Without these the backfill tests would pass on too little: every delivery state,
    a dispatch, a classification, a callback, an open call, a pruned call start."""
    path = tmp_path / "outbox.sqlite3"
    write_v1(path)
    assert user_version(path) == 1
    with plain(path) as conn:
        assert tables(conn) == {"events"}
    rows = events(path)
    assert {r[6] for r in rows} == {"blob"}
    assert {r[7] for r in rows} == {"pending", "delivered", "parked"}
    calls = expected_calls(rows)
    assert len(calls) >= 20
    agencies = {c["agencies"] for c in calls.values()}
    assert {",police,", ",fire,"} <= agencies
    assert any(c["category"] is not None for c in calls.values())
    assert any("callback" in c["doc"] for c in calls.values())
    assert any(c["outcome"] is None for c in calls.values())  # still open
    assert {c["outcome"] for c in calls.values()} >= {"answered", "abandoned", "unanswered"}
    first_seq: dict[str, int] = {}
    for r in rows:
        first_seq[r[1]] = min(first_seq.get(r[1], r[3]), r[3])
    assert any(seq > 0 for seq in first_seq.values())  # its first events were pruned


# -- SQLite: migrating up --------------------------------------------------------------


@pytest.mark.parametrize("earlier", sorted(EARLIER))
def test_each_earlier_version_migrates_to_latest(tmp_path: Path, earlier: str) -> None:
    """Open with OutboxDB: the latest version, the events untouched, and one call row
    per call from its latest event."""
    path = tmp_path / "outbox.sqlite3"
    EARLIER[earlier](path)
    before = events(path)
    db = OutboxDB(path)
    db.close()
    assert user_version(path) == local_schema.LATEST
    assert events(path) == before
    with plain(path) as conn:
        assert set(STORE_TABLES) <= tables(conn)
        assert conn.execute("SELECT COUNT(*) FROM agent_events").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM ami_sessions").fetchone()[0] == 0
    assert_backfilled(path, before)


def test_a_migrated_file_has_the_schema_of_a_new_one(tmp_path: Path) -> None:
    old, new = tmp_path / "old.sqlite3", tmp_path / "new.sqlite3"
    write_v1(old)
    for path in (old, new):
        OutboxDB(path).close()
    assert schema(old) == schema(new)


def call_text(body: bytes) -> str:
    """The text of a body's "call" value: its last key, after the four head keys."""
    text = bytes(body).decode("utf-8")
    head, mark, call = text.partition(',"call":')
    assert mark and call.endswith("}") and "call" not in json.loads(head + "}")
    assert json.loads(call[:-1]) == json.loads(text)["call"]
    return call[:-1]


def test_backfilled_doc_is_the_text_the_backend_received(tmp_path: Path) -> None:
    """The store keeps the call object's own text (incidents.Incident.call): the
    backfill's doc is the bytes of the body's "call" value, not a re-rendering."""
    path = tmp_path / "outbox.sqlite3"
    write_v1(path)
    before = events(path)
    OutboxDB(path).close()
    latest: dict[str, tuple[Any, ...]] = {}
    for row in before:
        if row[1] not in latest or row[3] > latest[row[1]][3]:
            latest[row[1]] = row
    got = stored_calls(path)
    for call_id, row in latest.items():
        assert got[call_id]["doc"] == call_text(row[5]), call_id


def test_the_migrated_outbox_resumes_its_open_calls(tmp_path: Path) -> None:
    """The events are the outbox still: after the upgrade, the calls that were open
    when the old pbxbridge stopped are the ones it re-adopts."""
    path = tmp_path / "outbox.sqlite3"
    write_v1(path)
    rows = events(path)
    ended = {r[1] for r in rows if r[2] == "call.ended"}
    offered = {r[1] for r in rows if r[2] == "call.offered"}
    db = OutboxDB(path)
    try:
        assert {c.call_id for c in db.open_calls()} == offered - ended
        assert db.open_calls()  # the fixture stops mid-call
        assert db.counts().pending == sum(r[7] == "pending" for r in rows)
    finally:
        db.close()


def add_v1_event(conn: sqlite3.Connection, event_id: str, type_: str, call: dict[str, Any]) -> None:
    """An event as v1 stored it (json.dumps, compact, not ASCII-escaped), next in its call."""
    at = utc_seconds(call["offered_at"]) + 30.0
    when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    doc = {"schema": "pbxbridge.incident/1", "event_id": event_id, "type": type_}
    body = json.dumps(
        {**doc, "occurred_at": when, "call": call}, ensure_ascii=False, separators=(",", ":")
    )
    conn.execute(
        "INSERT INTO events (event_id, call_id, type, seq, occurred_at, body, next_attempt_at,"
        " created_at) VALUES (?, ?, ?, (SELECT COALESCE(MAX(seq) + 1, 0) FROM events"
        " WHERE call_id = ?), ?, ?, ?, ?)",
        (event_id, call["call_id"], type_, call["call_id"], at, body.encode(), at, at),
    )


def test_backfill_of_unusual_but_valid_bodies(tmp_path: Path) -> None:
    """Two dispatches (kept in their order), text beyond ASCII and with quotes, a
    whole-second offered_at, an agency name with a hyphen."""
    path = tmp_path / "outbox.sqlite3"
    write_v1(path)
    with plain(path) as conn:
        updates = conn.execute("SELECT body FROM events WHERE type = 'call.updated'")
        [call] = [
            c
            for c in (json.loads(body)["call"] for (body,) in updates)
            if [d["agency"] for d in c["dispatched_to"]] == ["police"]
        ]
        twice = {
            **call,
            "dispatched_to": [*call["dispatched_to"], {"agency": "fire", "at": call["offered_at"]}],
        }
        add_v1_event(conn, f"{call['call_id']}:call.updated:1", "call.updated", twice)
        other = {
            **call,
            "call_id": "lab:edge",
            "linkedid": "edge",
            "offered_at": "2026-11-29T17:00:00.000000Z",
            "caller": {"number": '+62 21 "112"', "name": 'Ibu Siti \u2013 救急 "A"'},
            "category": "kebakaran hutan ✓",
            "dispatched_to": [
                {"agency": "sar-basarnas", "at": None},
                {"agency": "police", "at": None},
            ],
        }
        add_v1_event(conn, "lab:edge:call.offered", "call.offered", other)
    before = events(path)
    OutboxDB(path).close()
    assert_backfilled(path, before)
    got = stored_calls(path)
    assert got[call["call_id"]]["agencies"] == ",police,fire,"
    assert got["lab:edge"]["agencies"] == ",sar-basarnas,police,"
    assert got["lab:edge"]["offered_at"] == utc_seconds("2026-11-29T17:00:00.000000Z")
    added = {f"{call['call_id']}:call.updated:1", "lab:edge:call.offered"}
    for r in before:
        if r[0] in added:  # escapes and all, as it was sent
            assert got[r[1]]["doc"] == call_text(r[5]), r[0]


@pytest.mark.parametrize("earlier", sorted(EARLIER))
def test_migrating_twice_is_a_no_op(tmp_path: Path, earlier: str) -> None:
    path = tmp_path / "outbox.sqlite3"
    EARLIER[earlier](path)
    OutboxDB(path).close()
    with plain(path) as conn:
        dumped = list(conn.iterdump())
        steps: list[Migration] = []
        assert local_schema.migrate(conn, str(path), on_step=steps.append) == local_schema.LATEST
        assert steps == []
    OutboxDB(path).close()
    with plain(path) as conn:
        assert list(conn.iterdump()) == dumped
    assert user_version(path) == local_schema.LATEST


def test_each_step_alone_then_the_rest(tmp_path: Path) -> None:
    """target=1 on a new file makes the v1 outbox (no store tables); migrating again
    applies only what is left. Each step is committed before the next begins."""
    path = tmp_path / "outbox.sqlite3"
    seen: list[tuple[int, int, bool]] = []

    def on_step(m: Migration) -> None:  # another connection sees the committed steps
        seen.append((m.version, user_version(path), conn.in_transaction))

    with plain(path) as conn:
        assert local_schema.migrate(conn, str(path), target=1, on_step=on_step) == 0
        assert int(conn.execute("PRAGMA user_version").fetchone()[0]) == 1
        assert tables(conn) == {"events"}
        assert local_schema.migrate(conn, str(path), on_step=on_step) == 1
        assert int(conn.execute("PRAGMA user_version").fetchone()[0]) == local_schema.LATEST
        assert set(STORE_TABLES) <= tables(conn)
    assert seen == [(v, v - 1, False) for v in range(1, local_schema.LATEST + 1)]
    fresh = tmp_path / "fresh.sqlite3"
    OutboxDB(fresh).close()
    assert schema(path) == schema(fresh)


def test_one_migration_from_zero_commits_each_step_on_its_own(tmp_path: Path) -> None:
    """Before each step, another connection already sees the step before committed."""
    path = tmp_path / "outbox.sqlite3"
    seen: list[tuple[int, int, bool]] = []
    with plain(path) as conn:
        found = local_schema.migrate(
            conn,
            str(path),
            on_step=lambda m: seen.append((m.version, user_version(path), conn.in_transaction)),
        )
        assert found == 0
    assert seen == [(m.version, m.version - 1, False) for m in local_schema.MIGRATIONS]
    assert user_version(path) == local_schema.LATEST


# -- SQLite: a newer file is refused untouched ----------------------------------------


def newer_wal_file(path: Path) -> None:
    """A file of a newer pbxbridge, closed cleanly (WAL mode, no -wal left)."""
    db = OutboxDB(path)
    db.conn.execute(
        "INSERT INTO events (event_id, call_id, type, seq, occurred_at, body,"
        " next_attempt_at, created_at) VALUES ('c:call.offered', 'c', 'call.offered', 0,"
        " 1.5, x'7b7d', 1.5, 1.5)"
    )
    db.conn.execute(f"PRAGMA user_version={local_schema.LATEST + 1}")
    db.close()


def newer_file_with_its_wal(path: Path) -> None:
    """A newer pbxbridge killed: its last commits are still in the -wal file."""
    source = path.with_name("running.sqlite3")
    db = OutboxDB(source)
    db.conn.execute("PRAGMA wal_autocheckpoint=0")
    db.conn.execute(
        "INSERT INTO events (event_id, call_id, type, seq, occurred_at, body,"
        " next_attempt_at, created_at) VALUES ('c:call.offered', 'c', 'call.offered', 0,"
        " 1.5, x'7b7d', 1.5, 1.5)"
    )
    db.conn.execute(f"PRAGMA user_version={local_schema.LATEST + 1}")
    for suffix in ("", "-wal"):  # what a kill leaves on disk
        shutil.copyfile(f"{source}{suffix}", f"{path}{suffix}")
    db.close()
    assert Path(f"{path}-wal").stat().st_size > 0


def newer_rollback_journal_file(path: Path) -> None:
    """A newer file in SQLite's default (rollback journal) mode."""
    with plain(path) as conn:
        conn.execute("CREATE TABLE events (event_id TEXT PRIMARY KEY)")
        conn.execute(f"PRAGMA user_version={local_schema.LATEST + 1}")


NEWER: dict[str, Callable[[Path], None]] = {
    "wal-closed-cleanly": newer_wal_file,
    "wal-left-behind": newer_file_with_its_wal,
    "rollback-journal": newer_rollback_journal_file,
}


@pytest.mark.parametrize("shape", sorted(NEWER))
def test_a_newer_file_is_refused_and_left_as_it_was(tmp_path: Path, shape: str) -> None:
    path = tmp_path / "outbox.sqlite3"
    NEWER[shape](path)
    before = file_hashes(path)
    with pytest.raises(SchemaError, match="newer") as refused:
        OutboxDB(path)
    assert str(path) in str(refused.value)
    assert file_hashes(path) == before


def test_migrate_refuses_a_newer_file_before_any_step(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    newer_wal_file(path)
    steps: list[Migration] = []
    with plain(path) as conn:
        dumped = list(conn.iterdump())
        with pytest.raises(SchemaError, match="newer"):
            local_schema.migrate(conn, str(path), on_step=steps.append)
        assert not conn.in_transaction
        assert list(conn.iterdump()) == dumped
    assert steps == []
    assert user_version(path) == local_schema.LATEST + 1


# -- SQLite: a failed step rolls back --------------------------------------------------


def broken_last_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last migration does all its work, then one statement fails."""
    *earlier, last = local_schema.MIGRATIONS
    broken = Migration(
        last.version, last.what, [*last.statements, "INSERT INTO nowhere VALUES (1)"]
    )
    monkeypatch.setattr(local_schema, "MIGRATIONS", (*earlier, broken))


def test_a_failed_step_leaves_the_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "outbox.sqlite3"
    write_v1(path)
    before_events, before_schema = events(path), schema(path)
    with monkeypatch.context() as m:
        broken_last_step(m)
        with pytest.raises(sqlite3.OperationalError, match="nowhere"):
            OutboxDB(path)
    assert user_version(path) == local_schema.LATEST - 1
    assert schema(path) == before_schema  # no store table, no index, no backfill
    assert events(path) == before_events
    OutboxDB(path).close()  # the real migration still applies afterwards
    assert user_version(path) == local_schema.LATEST
    assert_backfilled(path, before_events)


def test_a_failed_step_keeps_the_steps_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a new file: step 1 is committed, the failed last step is not."""
    path = tmp_path / "outbox.sqlite3"
    broken_last_step(monkeypatch)
    with plain(path) as conn:
        with pytest.raises(sqlite3.OperationalError, match="nowhere"):
            local_schema.migrate(conn, str(path))
        assert not conn.in_transaction
        assert tables(conn) == {"events"}
        assert int(conn.execute("PRAGMA user_version").fetchone()[0]) == local_schema.LATEST - 1
    assert events(path) == []


# -- PostgreSQL -----------------------------------------------------------------------


def pg(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True, connect_timeout=10)


def pg_catalog(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[Any, ...]]]:
    """Every relation and column of the public schema, and the schema table's rows."""
    relations = conn.execute(
        "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n"
        " ON n.oid = c.relnamespace WHERE n.nspname = 'public' ORDER BY 1"
    ).fetchall()
    columns = conn.execute(
        "SELECT table_name, column_name, data_type, is_nullable, column_default"
        " FROM information_schema.columns WHERE table_schema = 'public'"
        " ORDER BY table_name, ordinal_position"
    ).fetchall()
    names = {r[0] for r in relations}
    versions = (
        conn.execute("SELECT version, what, applied_at FROM pbxbridge_schema ORDER BY 1").fetchall()
        if "pbxbridge_schema" in names
        else []
    )
    return {"relations": relations, "columns": columns, "versions": versions}


def test_pg_migrate_creates_the_store_and_records_its_version(postgres_url: str) -> None:
    with pg(postgres_url) as conn:
        assert pg_catalog(conn)["relations"] == []
        assert pg_store.migrate(conn) == 0
        cat = pg_catalog(conn)
        relations = dict(cat["relations"])
        assert {t: relations.get(t) for t in (*STORE_TABLES, "pbxbridge_schema")} == {
            t: "r" for t in (*STORE_TABLES, "pbxbridge_schema")
        }
        assert {"calls_offered", "calls_number", "agent_events_at"} <= set(relations)
        calls = [c[1] for c in cat["columns"] if c[0] == "calls"]
        assert calls == [
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
        ]  # the regional store carries no replication mark
        assert [v for v, _, _ in cat["versions"]] == list(range(1, pg_store.LATEST + 1))
        conn.execute(
            "INSERT INTO calls (call_id, version, offered_at, doc) VALUES ('c', 4, 1.5, '{}')"
        )
        assert conn.execute("SELECT agencies, caller_number FROM calls").fetchall() == [("", "")]


def test_pg_migrating_twice_is_a_no_op(postgres_url: str) -> None:
    with pg(postgres_url) as conn:
        pg_store.migrate(conn)
        conn.execute(
            "INSERT INTO calls (call_id, version, offered_at, doc) VALUES ('c', 4, 1.5, '{}')"
        )
        before = pg_catalog(conn)
        assert pg_store.migrate(conn) == pg_store.LATEST
        assert pg_catalog(conn) == before  # applied_at too: no step ran again
        assert conn.execute("SELECT call_id, version FROM calls").fetchall() == [("c", 4)]


def _advisory_waiters(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_pg_two_concurrent_migrations_both_succeed_once(postgres_url: str) -> None:
    """Two pbxbridge instances starting together: held at the advisory lock until both
    wait on it, then released at once. Both succeed; each version is recorded once."""
    results: list[int] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            with pg(postgres_url) as conn:
                results.append(pg_store.migrate(conn))
        except BaseException as exc:
            errors.append(exc)

    with pg(postgres_url) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (pg_store._LOCK,))
        threads = [threading.Thread(target=start) for _ in range(2)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20.0
        while _advisory_waiters(holder) < 2 and not errors:
            assert time.monotonic() < deadline, "the migrations never waited on the lock"
            time.sleep(0.02)
        assert not errors, errors
        holder.execute("SELECT pg_advisory_unlock(%s)", (pg_store._LOCK,))
        for t in threads:
            t.join(timeout=30.0)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
        assert sorted(results) == [0, pg_store.LATEST]
        counts = holder.execute(
            "SELECT version, COUNT(*) FROM pbxbridge_schema GROUP BY version ORDER BY version"
        ).fetchall()
        assert counts == [(v, 1) for v in range(1, pg_store.LATEST + 1)]
        relations = dict(pg_catalog(holder)["relations"])
        assert all(relations.get(t) == "r" for t in STORE_TABLES)


def test_pg_a_newer_store_is_refused_and_not_altered(postgres_url: str) -> None:
    """A newer pbxbridge recorded LATEST+1 and dropped an index of ours: a migration
    that ran anyway would put it back."""
    with pg(postgres_url) as conn:
        pg_store.migrate(conn)
        conn.execute(
            "INSERT INTO pbxbridge_schema (version, what) VALUES (%s, 'from a newer pbxbridge')",
            (pg_store.LATEST + 1,),
        )
        conn.execute("DROP INDEX calls_number")
        conn.execute(
            "INSERT INTO calls (call_id, version, offered_at, doc) VALUES ('c', 4, 1.5, '{}')"
        )
        before = pg_catalog(conn)
        with pytest.raises(SchemaError, match="newer"):
            pg_store.migrate(conn)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert pg_catalog(conn) == before
        assert conn.execute("SELECT call_id, version FROM calls").fetchall() == [("c", 4)]
    with pytest.raises(SchemaError, match="newer"):
        pg_store.connect_writer(postgres_url)
    with pg(postgres_url) as conn:
        assert pg_catalog(conn) == before
