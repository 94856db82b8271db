"""The PostgreSQL fixture itself: a real server, unprivileged, unix socket only, that
keeps committed data across a stop and across a SIGKILL, one fresh database per test."""

from __future__ import annotations

import os
import pwd

import psycopg
import pytest

from tests.support import postgres
from tests.support.postgres import PostgresServer, postgres_server, postgres_url  # noqa: F401

_seen_databases: list[str] = []


def _rows(url: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT id, note FROM calls ORDER BY id").fetchall()


def _write_row(url: str, id_: int, note: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS calls (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO calls VALUES (%s, %s)", (id_, note))


def test_runs_unprivileged_on_a_unix_socket_only(
    postgres_server: PostgresServer,  # noqa: F811
    postgres_url: str,  # noqa: F811
) -> None:
    with psycopg.connect(postgres_url) as conn:
        listen, socket_dirs, encoding, fsync, sync_commit, addr = conn.execute(
            "SELECT current_setting('listen_addresses'),"
            " current_setting('unix_socket_directories'),"
            " current_setting('server_encoding'), current_setting('fsync'),"
            " current_setting('synchronous_commit'), inet_server_addr()"
        ).fetchone()  # type: ignore[misc]
    assert listen == ""
    assert addr is None  # this very connection came over the unix socket
    assert socket_dirs == str(postgres_server.socket_dir)
    assert (encoding, fsync, sync_commit) == ("UTF8", "off", "on")
    assert os.stat(postgres_server.socket_dir).st_mode & 0o077 == 0  # private
    expected = pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.geteuid()
    owners = {os.stat(f"/proc/{pid}").st_uid for pid in postgres_server.cluster_pids()}
    assert owners == {expected}


def test_committed_row_survives_stop_and_start(
    postgres_server: PostgresServer,  # noqa: F811
    postgres_url: str,  # noqa: F811
) -> None:
    _write_row(postgres_url, 1, "answered")
    postgres_server.stop()
    assert not postgres_server.is_running()
    assert postgres_server.cluster_pids() == set()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(postgres_url, connect_timeout=2).close()
    postgres_server.start()
    assert _rows(postgres_url) == [(1, "answered")]


def test_kill_then_start_recovers_committed_rows_only(
    postgres_server: PostgresServer,  # noqa: F811
    postgres_url: str,  # noqa: F811
) -> None:
    _write_row(postgres_url, 1, "committed")
    # A client in the middle of a transaction when the server dies: its backend must
    # go too, and its row must not come back.
    pending = psycopg.connect(postgres_url)
    pending.execute("INSERT INTO calls VALUES (2, 'uncommitted')")
    postgres_server.kill()
    assert not postgres_server.is_running()
    assert postgres_server.cluster_pids() == set()
    with pytest.raises(psycopg.OperationalError):
        pending.commit()
    pending.close()

    postgres_server.start()
    assert _rows(postgres_url) == [(1, "committed")]
    # It really was a crash: the server ran crash recovery.
    assert "automatic recovery in progress" in postgres_server.log_tail(200)
    _write_row(postgres_url, 3, "after recovery")
    assert [r[0] for r in _rows(postgres_url)] == [1, 3]


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_its_own_fresh_database(
    run: int,
    postgres_server: PostgresServer,  # noqa: F811
    postgres_url: str,  # noqa: F811
) -> None:
    with psycopg.connect(postgres_url) as conn:
        (name,) = conn.execute("SELECT current_database()").fetchone()  # type: ignore[misc]
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        conn.execute("CREATE TABLE calls (id int PRIMARY KEY, note text)")
    assert tables == []  # nothing left over from the other run
    assert name not in _seen_databases
    with psycopg.connect(postgres_server.url("postgres")) as conn:
        existing = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
    assert name in existing
    assert not existing & set(_seen_databases)  # the earlier test's database was dropped
    _seen_databases.append(name)


def test_a_server_that_cannot_start_raises_with_its_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(postgres.SETTINGS, "shared_buffers", "plenty")
    server = PostgresServer()
    try:
        with pytest.raises(RuntimeError, match=r"(?s)not running.*shared_buffers"):
            server.start(timeout=20)
        assert not server.is_running()
    finally:
        server.cleanup()
    assert not server.base.exists()
