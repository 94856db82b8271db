"""The regional store (a real PostgreSQL server) fed from the local file: PostgreSQL
stopped, killed and restarted mid-run loses nothing, and the pipeline never waits."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from pbxbridge.outbox import Outbox
from pbxbridge.store_replica import Replica
from tests.support.call_mix import mix
from tests.support.postgres import PostgresServer


async def wait_until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def regional_calls(url: str) -> dict[str, dict[str, object]]:
    with psycopg.connect(url) as conn:
        return {cid: json.loads(doc) for cid, doc in conn.execute("SELECT call_id, doc FROM calls")}


async def test_postgresql_down_and_back_loses_nothing(
    tmp_path: Path, postgres_server: PostgresServer, postgres_url: str
) -> None:
    calls = mix(300, seed=5)
    async with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        replica = Replica(outbox, postgres_url, retention_seconds=1e9, retry_cap=0.5)
        task = asyncio.create_task(replica.run())
        try:
            for c in calls[:100]:
                await outbox.submit(c.incidents, c.rows)
            replica.wake()
            await wait_until(lambda: replica.stats.copied >= 100, 20, "the first copy")

            postgres_server.stop()
            # The pipeline's commits go on at the local file's pace while PostgreSQL is down.
            started = time.monotonic()
            for c in calls[100:200]:
                await outbox.submit(c.incidents, c.rows)
                replica.wake()
            committing = time.monotonic() - started
            await wait_until(lambda: not replica.stats.reachable, 20, "the outage to be seen")
            assert replica.stats.reason
            await wait_until(lambda: replica.stats.waiting > 0, 5, "rows to wait")

            postgres_server.start()
            postgres_server.kill()  # and a crash of PostgreSQL while it catches up
            postgres_server.start()
            for c in calls[200:]:
                await outbox.submit(c.incidents, c.rows)
                replica.wake()
            await wait_until(
                lambda: replica.stats.reachable and replica.stats.waiting == 0, 30, "catch-up"
            )
            assert await outbox.unreplicated_count() == 0
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    stored = regional_calls(postgres_url)
    assert set(stored) == {c.record.call_id for c in calls}
    for c in calls:
        assert stored[c.record.call_id] == json.loads(c.incidents[-1].body)["call"]
    print(f"committed 100 calls in {committing:.2f}s while PostgreSQL was down")


async def test_a_call_that_changes_while_being_copied_is_copied_again(
    tmp_path: Path, postgres_url: str
) -> None:
    """The local mark is cleared only for the version that was copied."""
    c = mix(1, seed=9)[0]
    async with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        await outbox.submit(c.incidents[:1], c.rows[:1])
        rows = await outbox.unreplicated(10)
        await outbox.submit(c.incidents[1:], c.rows[1:])  # the call goes on meanwhile
        await outbox.mark_replicated(rows)  # the copy of the first version lands
        assert await outbox.unreplicated_count() == 1
        replica = Replica(outbox, postgres_url, retention_seconds=1e9)
        task = asyncio.create_task(replica.run())
        try:
            await wait_until(lambda: replica.stats.copied >= 1, 20, "the copy")
            await wait_until(lambda: replica.stats.waiting == 0, 5, "nothing waiting")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert regional_calls(postgres_url)[c.record.call_id]["outcome"] == c.record.outcome
