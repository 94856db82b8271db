"""The outbox on a real SQLite file: durability, order, dedupe, retention, open calls."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from pbxbridge import cli
from pbxbridge import tracker as tr
from pbxbridge.outbox import Outbox, OutboxDB, OutboxError
from pbxbridge.outbox_sink import OutboxSink
from tests.support.calls import lifecycle, record


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def other_connection_sees(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT event_id, state FROM events ORDER BY created_at").fetchall()


async def test_put_returns_after_commit(tmp_path: Path) -> None:
    """When put() returns, the event is committed: another connection already sees it."""
    path = tmp_path / "outbox.sqlite3"
    async with Outbox(path) as outbox:
        event = lifecycle(1)[0]
        assert await outbox.put(event) == 1
        assert other_connection_sees(path) == [(event.event_id, "pending")]


async def test_events_survive_close_and_reopen_and_resume_pending(tmp_path: Path) -> None:
    """Pending events survive a close/reopen and are sendable again on start."""
    path = tmp_path / "outbox.sqlite3"
    events = lifecycle(1) + lifecycle(2)
    async with Outbox(path) as outbox:
        await outbox.put(*events)
        await outbox.mark_delivered(events[0].event_id)
    async with Outbox(path) as outbox:
        rows = await outbox.rows()
        assert [r.event_id for r in rows] == [e.event_id for e in events]
        assert [r.body for r in rows] == [e.body for e in events]
        assert [r.state for r in rows] == ["delivered"] + ["pending"] * 5
        due = await outbox.due(exclude=(), limit=10)
        assert [r.event_id for r in due] == [events[1].event_id, events[3].event_id]


async def test_the_journal_is_wal_with_full_sync(tmp_path: Path) -> None:
    """The outbox runs in WAL mode with synchronous=FULL."""
    db = OutboxDB(tmp_path / "o.sqlite3")
    try:
        assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        db.close()


async def test_a_reannounced_event_is_stored_once(tmp_path: Path) -> None:
    """Putting an event id again (restart, re-adoption) keeps the first row untouched."""
    async with Outbox(tmp_path / "o.sqlite3") as outbox:
        first = lifecycle(1)[0]
        assert await outbox.put(first) == 1
        again = replace(first, body=b'{"other": true}')
        assert await outbox.put(again) == 0
        rows = await outbox.rows()
        assert len(rows) == 1 and rows[0].body == first.body and rows[0].seq == 0


async def test_only_the_first_pending_event_of_a_call_is_sendable(tmp_path: Path) -> None:
    """Within a call events go in seq order; a call waiting on a retry blocks only itself."""
    clock = Clock()
    async with Outbox(tmp_path / "o.sqlite3", clock=clock) as outbox:
        a, b = lifecycle(1), lifecycle(2)
        await outbox.put(*a, *b)
        assert [r.seq for r in await outbox.rows()] == [0, 1, 2, 0, 1, 2]
        await outbox.mark_failed(a[0].event_id, "timeout", clock.now + 60)
        due = await outbox.due(exclude=(), limit=10)
        assert [r.event_id for r in due] == [b[0].event_id]
        assert await outbox.next_due(exclude=(b[0].call_id,)) == clock.now + 60
        await outbox.mark_delivered(b[0].event_id)
        assert [r.event_id for r in await outbox.due((), 10)] == [b[1].event_id]
        assert await outbox.due(exclude=(b[0].call_id,), limit=10) == []


async def test_a_parked_event_does_not_block_its_call(tmp_path: Path) -> None:
    """A parked event is skipped: the call's later events still go (each carries full state)."""
    async with Outbox(tmp_path / "o.sqlite3") as outbox:
        a = lifecycle(1)
        await outbox.put(*a)
        await outbox.park(a[0].event_id, "http_4xx (400)")
        assert [r.event_id for r in await outbox.due((), 10)] == [a[1].event_id]
        assert (await outbox.refresh_counts()).parked == 1
        assert await outbox.retry(a[0].event_id) == 1
        assert [r.event_id for r in await outbox.due((), 10)] == [a[0].event_id]


async def test_retention_prunes_delivered_events_only(tmp_path: Path) -> None:
    """Pruning deletes delivered events older than the retention, never pending or parked."""
    clock = Clock()
    path = tmp_path / "o.sqlite3"
    async with Outbox(path, retention_seconds=3600, clock=clock) as outbox:
        old, recent = lifecycle(1), lifecycle(2)
        await outbox.put(*old, *recent)
        await outbox.mark_delivered(old[0].event_id)
        await outbox.park(old[1].event_id, "http_4xx (422)")
        clock.now += 7200
        await outbox.mark_delivered(recent[0].event_id)
        clock.now += 60
        assert await outbox.prune() == 1
        states = {r.event_id: r.state for r in await outbox.rows()}
        assert old[0].event_id not in states
        assert states[old[1].event_id] == "parked"
        assert states[old[2].event_id] == "pending"
        assert states[recent[0].event_id] == "delivered"


async def test_open_calls_are_offered_but_not_ended(tmp_path: Path) -> None:
    """open_calls() lists calls with call.offered and no call.ended, with their last state."""
    async with Outbox(tmp_path / "o.sqlite3") as outbox:
        done, answered, offered = lifecycle(1), lifecycle(2), lifecycle(3)
        await outbox.put(*done, *answered[:2], offered[0])
        await outbox.mark_delivered(answered[0].event_id)
        calls = await outbox.open_calls()
    assert [(c.call_id, c.last_type) for c in calls] == [
        (answered[0].call_id, "call.answered"),
        (offered[0].call_id, "call.offered"),
    ]
    assert calls[0].record.answered_at == record(2).offered_at + 9
    assert calls[0].record.agent == "ct1"
    assert calls[1].record == record(3)


async def test_sink_turns_effects_into_durable_rows_without_blocking(tmp_path: Path) -> None:
    """OutboxSink.apply returns at once; after flush() every incident effect is committed."""
    woken = asyncio.Event()
    async with Outbox(tmp_path / "o.sqlite3") as outbox:
        sink = OutboxSink(outbox, on_durable=woken.set)
        task = asyncio.create_task(sink.run())
        rec = record(1)
        ended = replace(rec, ended_at=rec.offered_at + 30, outcome="abandoned")
        sink.apply([tr.CallOffered(rec), tr.RingNoAnswer(rec.offered_at, "112", "q", "a")])
        sink.apply([tr.CallEnded(ended), tr.Anomaly("x", rec.linkedid)])
        await sink.flush()
        rows = await outbox.rows()
        assert [r.type for r in rows] == ["call.offered", "call.ended"]
        async with asyncio.timeout(5):
            await woken.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert sink.committed == 2


async def test_a_burst_is_committed_completely(tmp_path: Path) -> None:
    """Hundreds of submissions in one burst are all committed, each future after its commit."""
    async with Outbox(tmp_path / "o.sqlite3") as outbox:
        futures = [outbox.submit(lifecycle(n)) for n in range(300)]
        assert await asyncio.gather(*futures) == [3] * 300
        assert (await outbox.refresh_counts()).pending == 900


async def test_a_failed_commit_waits_and_is_retried_until_it_succeeds(tmp_path: Path) -> None:
    """A commit that fails (here another process holds the write lock past the busy
    timeout) is kept and retried: the store reports not writable with the reason,
    and once the lock goes every event is committed, none lost."""
    path = tmp_path / "o.sqlite3"
    async with Outbox(path) as outbox:
        sink = OutboxSink(outbox)
        task = asyncio.create_task(sink.run())
        async with _locked_by_another_process(outbox, path):
            sink.apply([tr.CallOffered(record(1))])
            sink.apply([tr.CallOffered(record(2))])
            await _until(lambda: outbox.policy.health.failures >= 2)
            health = outbox.policy.health
            assert not health.writable and "locked" in (health.reason or "")
            assert health.unwritten >= 1
        await asyncio.wait_for(sink.flush(), 10)
        assert outbox.policy.health.writable and outbox.policy.health.unwritten == 0
        assert not task.done()
        task.cancel()
        rows = await outbox.rows()
    assert sorted(r.call_id for r in rows) == [record(1).call_id, record(2).call_id]


async def test_past_the_memory_bound_the_sink_stops_the_daemon_and_says_how_many(
    tmp_path: Path,
) -> None:
    """Only when more events wait than the outbox may hold does a commit fail for good;
    the error names how many events could not be kept."""
    path = tmp_path / "o.sqlite3"
    async with Outbox(path, max_unwritten=1) as outbox:
        sink = OutboxSink(outbox)
        task = asyncio.create_task(sink.run())
        async with _locked_by_another_process(outbox, path):
            sink.apply([tr.CallOffered(record(1)), tr.CallOffered(record(2))])
            with pytest.raises(OutboxError, match="2 events could not be kept"):
                async with asyncio.timeout(5):
                    await task


@contextlib.asynccontextmanager
async def _locked_by_another_process(outbox: Outbox, path: Path) -> AsyncIterator[None]:
    """Another process holds the write lock past the outbox's (shortened) busy timeout."""
    await outbox._run(outbox.db.conn.execute, "PRAGMA busy_timeout = 50")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


async def _until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 (a bounded test poll)
            await asyncio.sleep(0.01)


def test_cli_lists_and_retries_parked_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`outbox list --state parked` shows a parked event; `outbox retry` makes it pending."""
    path = tmp_path / "o.sqlite3"
    db = OutboxDB(path)
    events = lifecycle(1)
    db.insert(events, 1_800_000_000.0)
    db.park(events[0].event_id, "http_4xx (400)")
    db.close()
    assert cli.main(["outbox", "list", "--outbox", str(path), "--state", "parked", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(x["event_id"], x["state"], x["last_error"]) for x in lines] == [
        (events[0].event_id, "parked", "http_4xx (400)")
    ]
    assert cli.main(["outbox", "retry", "--outbox", str(path), "nope"]) == 1
    assert cli.main(["outbox", "retry", "--outbox", str(path)]) == 0
    assert "1 event(s) back to pending" in capsys.readouterr().out
    assert cli.main(["outbox", "list", "--outbox", str(path)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["STATE", "ATTEMPTS", "CREATED", "EVENT_ID"]
    assert len(table) == 4 and all(line.startswith("pending") for line in table[1:])


class _CommitFailsOnce:
    """The real connection, whose first COMMIT fails as SQLITE_FULL may: the transaction
    is left open."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn, self._fail = conn, True

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if sql == "COMMIT" and self._fail:
            self._fail = False
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)


async def test_a_commit_that_fails_and_leaves_its_transaction_open_is_retried(
    tmp_path: Path,
) -> None:
    """A failed COMMIT that SQLite leaves open is rolled back before the retry, so the
    events are written once the disk works (before, every retry failed with "cannot
    start a transaction within a transaction" until the daemon gave up)."""
    async with Outbox(tmp_path / "o.sqlite3") as outbox:
        outbox.db.conn = _CommitFailsOnce(outbox.db.conn)  # type: ignore[assignment]
        added = await asyncio.wait_for(outbox.submit(lifecycle(1)[:1]), 5)
        assert added == 1
        assert outbox.policy.health.writable and outbox.policy.health.failures == 1
