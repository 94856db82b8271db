"""bad_callback_file: local state fails soft. A broken callback file never stops call
tracking; the real daemon keeps running and says what is degraded."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import time
import urllib.error
import urllib.request
from pathlib import Path

from pbxbridge import callbacks as cb
from pbxbridge.callback_store import CallbackStore
from pbxbridge.incidents import incident
from pbxbridge.outbox import OutboxDB
from tests.component.test_daemon_systemd import config
from tests.lab.asterisk import free_port
from tests.support.calls import record
from tests.support.daemon import Daemon


def ready(listen: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://{listen}/ready", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_a_corrupt_callback_file_degrades_callbacks_and_nothing_else(tmp_path: Path) -> None:
    """With garbage in callbacks.sqlite3 next to a good outbox, the daemon starts, logs
    callbacks_not_persisted once with the file and the error, keeps the outbox ready and
    reports callbacks as degraded (in memory only) in /ready and the metrics."""
    (tmp_path / "callbacks.sqlite3").write_bytes(b"this is not a database\n" * 200)
    path = config(tmp_path, free_port())
    listen = next(
        line.split('"')[1] for line in path.read_text().splitlines() if line.startswith("listen")
    )
    daemon = Daemon(path).start()
    try:
        line = daemon.wait_for(lambda x: x.get("event") == "callbacks_not_persisted")
        assert line["path"].endswith("callbacks.sqlite3") and "not a database" in line["error"]
        daemon.wait_for(lambda x: x.get("event") == "http_listening")
        status, body = ready(listen)
        components = body["components"]
        assert isinstance(components, dict)
        assert body["degraded"] == ["callbacks"]
        assert components["callbacks"]["state"].startswith("in memory only")
        assert components["outbox"]["ok"] is True
        assert status == 503 and components["ami"]["ok"] is False  # nothing listens: AMI down
        with urllib.request.urlopen(f"http://{listen}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        assert 'pbxbridge_store_writable{store="callbacks"} 0.0' in text
        assert 'pbxbridge_store_writable{store="outbox"} 1.0' in text
        assert daemon.proc is not None and daemon.proc.poll() is None, "still running"
    finally:
        assert daemon.stop() == 0
    assert len(daemon.events("callbacks_not_persisted")) == 1


def test_a_callback_write_that_fails_is_kept_and_retried(tmp_path: Path) -> None:
    """The callback file follows the outbox's policy: a failed write (the file locked by
    another process past the busy timeout) is kept, the latest entry per call, and
    written once the file can be written again; a reopened store has it."""
    path = tmp_path / "callbacks.sqlite3"
    store = CallbackStore(path)
    store._pool.submit(store._db.execute, "PRAGMA busy_timeout = 50").result()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    first = cb.Callback("pbx:L1", "112", "0812000111", 10.0, "abandoned")
    try:
        store.save([first]).result()
        store.save([dataclasses.replace(first, attempts=1)]).result()
        health = store.policy.health
        assert not health.writable and health.unwritten == 1 and health.failures >= 1
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    deadline = time.monotonic() + 10
    while not store.policy.health.writable and time.monotonic() < deadline:
        time.sleep(0.05)
    store.close()
    reopened = CallbackStore(path)
    try:
        assert [(e.call_id, e.attempts) for e in reopened.load()] == [("pbx:L1", 1)]
    finally:
        reopened.close()


def test_state_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    """Caller numbers live in the outbox and the callback file: 0600, WAL files too,
    even under a umask of 0."""
    old = os.umask(0)
    try:
        db = OutboxDB(tmp_path / "state" / "outbox.sqlite3")
        db.insert([incident(record(1), "call.offered", 1.0)], 1.0)
        store = CallbackStore(tmp_path / "state" / "callbacks.sqlite3")
        store.save([cb.Callback("pbx:L1", "112", "0812000111", 10.0, "abandoned")]).result()
    finally:
        os.umask(old)
    try:
        files = sorted(p.name for p in (tmp_path / "state").iterdir())
        assert "outbox.sqlite3-wal" in files and "callbacks.sqlite3-wal" in files
        for name in files:
            mode = (tmp_path / "state" / name).stat().st_mode & 0o777
            assert mode == 0o600, (name, oct(mode))
    finally:
        db.close()
        store.close()


def test_an_outbox_of_a_newer_pbxbridge_or_a_corrupt_one_stops_the_start_clearly(
    tmp_path: Path,
) -> None:
    """The outbox holds the call store: if it cannot be used the daemon must not run
    half-blind. It exits 1 with the file, the reason and what to do; the file is kept."""
    path = config(tmp_path, free_port())
    outbox = tmp_path / "outbox.sqlite3"
    OutboxDB(outbox).close()
    with sqlite3.connect(outbox) as conn:
        conn.execute("PRAGMA user_version=99")
    daemon = Daemon(path).start()
    line = daemon.wait_for(lambda x: x.get("event") == "state_unavailable")
    assert daemon.proc is not None and daemon.proc.wait(timeout=15) == 1
    assert "newer pbxbridge (schema 99" in line["error"] and "upgrade" in line["error"]
    with sqlite3.connect(outbox) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 99

    for leftover in tmp_path.glob("outbox.sqlite3*"):
        leftover.unlink()
    outbox.write_bytes(b"not a database at all\n" * 100)
    daemon = Daemon(path).start()
    line = daemon.wait_for(lambda x: x.get("event") == "state_unavailable")
    assert daemon.proc is not None and daemon.proc.wait(timeout=15) == 1
    assert line["path"] == str(outbox) and "not a database" in line["error"]
    assert outbox.read_bytes().startswith(b"not a database at all")
