"""The store's retention: old rows go in small batches, writes go between them, and a
row the regional store has not taken is never pruned."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from pbxbridge import outbox_db, pg_store
from pbxbridge.outbox import Outbox
from pbxbridge.store_rows import AgentRow, AmiRow, Row
from tests.support.call_mix import MixedCall, mix

DAY = 86400.0


def aged(days: float, count: int, seed: int) -> tuple[list[Row], list[Row], list[MixedCall]]:
    """Calls that arrived ``days`` ago, and as many call-taker and AMI session rows."""
    start = time.time() - days * DAY
    calls = mix(count, seed=seed, start=start)
    extra: list[Row] = [AgentRow(start, "q", f"a{n}", "available", "") for n in range(count)]
    extra += [AmiRow("i", start + n, True, "up") for n in range(count)]
    return [r for c in calls for r in c.rows], extra, calls


async def test_old_rows_go_in_batches_with_writes_between(tmp_path: Path) -> None:
    old_rows, old_extra, old_calls = aged(400, 2500, seed=1)
    new_rows, _, new_calls = aged(10, 50, seed=2)
    async with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        await outbox.submit([i for c in old_calls for i in c.incidents], old_rows + old_extra)
        await outbox.submit([], new_rows)
        prune = asyncio.create_task(outbox.prune_store(365 * DAY, replicated_only=False))
        await asyncio.sleep(0)  # the first batch is on the writer thread
        late = mix(1, seed=3, start=time.time())[0]
        write = outbox.submit(late.incidents, late.rows)
        await write
        assert not prune.done(), "the write went between the prune's batches"
        pruned = await prune
    assert pruned == 3 * 2500
    conn = sqlite3.connect(tmp_path / "outbox.sqlite3")
    kept = {cid for (cid,) in conn.execute("SELECT call_id FROM calls")}
    assert kept == {c.record.call_id for c in [*new_calls, late]}
    assert conn.execute("SELECT COUNT(*) FROM agent_events").fetchone()[0] == 0
    # The outbox's own retention is another matter: the events are all still there.
    assert conn.execute("SELECT COUNT(DISTINCT call_id) FROM events").fetchone()[0] == 2501
    assert outbox_db.PRUNE_BATCH < 2500 * 3


async def test_a_row_not_yet_in_the_regional_store_is_kept(tmp_path: Path) -> None:
    rows, _, _ = aged(400, 20, seed=4)
    async with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        await outbox.submit([], rows)
        copied = (await outbox.unreplicated(100))[:5]
        await outbox.mark_replicated(copied)
        assert await outbox.prune_store(365 * DAY, replicated_only=True) == 5
        assert await outbox.unreplicated_count() == 15


def test_postgresql_prunes_in_batches(postgres_url: str) -> None:
    old_rows, old_extra, _ = aged(400, 30, seed=5)
    new_rows, _, new_calls = aged(1, 5, seed=6)
    conn = pg_store.connect_writer(postgres_url)
    try:
        pg_store.write(conn, old_rows + old_extra + new_rows)
        before = time.time() - 365 * DAY
        batches = []
        while n := pg_store.prune(conn, before, 25):
            batches.append(n)
        assert batches == [75, 15]  # 25 from each table, then what is left
        calls = {cid for (cid,) in conn.execute("SELECT call_id FROM calls")}
    finally:
        conn.close()
    assert calls == {c.record.call_id for c in new_calls}
