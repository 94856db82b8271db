"""pbxbridge_killed: kill -9 during enqueue and delivery, restart, and lose nothing."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sqlite3
import sys
import time
from collections import defaultdict
from pathlib import Path

from aiohttp import web

from tests.support.backend import Backend, serve

ROOT = Path(__file__).resolve().parents[2]
KILLS = 5


async def start_child(
    db: Path, url: str, acks: Path, start: int, count: int
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.outbox_child",
        str(db), url, str(acks), str(start), str(count),
        cwd=ROOT, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


def assert_store_matches_outbox(db: Path) -> None:
    """After any number of kills: a call is in the store exactly when the outbox holds an
    event of it, and its row is the state of its newest event (one transaction)."""
    conn = sqlite3.connect(db)
    try:
        newest: dict[str, tuple[float, str, bytes]] = {}
        for call_id, type_, at, body in conn.execute(
            "SELECT call_id, type, occurred_at, body FROM events ORDER BY call_id, seq"
        ):
            newest[call_id] = (at, type_, body)
        stored = dict(conn.execute("SELECT call_id, doc FROM calls").fetchall())
    finally:
        conn.close()
    assert len(newest) > 100
    assert set(stored) == set(newest)
    for call_id, (_, _, body) in newest.items():
        assert json.loads(stored[call_id]) == json.loads(body)["call"]


async def test_kill_9_repeatedly_loses_nothing(tmp_path: Path) -> None:
    """Every event acknowledged (committed) before any of 5 kill -9s is delivered in the
    end, and an event delivered more than once always has the same key and bytes."""
    rng = random.Random(11)

    async def busy(request: web.Request, n: int) -> web.StreamResponse:
        await asyncio.sleep(rng.random() * 0.01)
        return web.Response(status=500 if rng.random() < 0.1 else 200)

    backend = Backend(busy)
    db, acks = tmp_path / "outbox.sqlite3", tmp_path / "acks"
    acks.touch()
    started = time.monotonic()
    async with serve(backend) as url:
        for run in range(KILLS):
            child = await start_child(db, url, acks, start=run * 10_000, count=10_000)
            await asyncio.sleep(rng.uniform(0.6, 1.6))
            assert child.returncode is None, "the child ended before it was killed"
            child.kill()  # SIGKILL
            assert await child.wait() == -signal.SIGKILL
        drain = await start_child(db, url, acks, start=0, count=0)
        async with asyncio.timeout(15):
            assert await drain.wait() == 0
    assert time.monotonic() - started < 30

    lines = acks.read_text().split("\n")
    acked = {line for line in lines[:-1] if line}  # the last piece may be cut by the kill
    assert len(acked) > 100, "too few events to mean anything"
    assert acked <= backend.accepted_keys()
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for r in backend.received:
        bodies[r.key].add(r.body)
        assert json.loads(r.body)["event_id"] == r.key
    assert all(len(b) == 1 for b in bodies.values())
    assert_store_matches_outbox(db)
    print(
        f"acked={len(acked)} accepted={len(backend.accepted_keys())}"
        f" requests={len(backend.received)} repeats={len(backend.received) - len(bodies)}"
    )
