"""Single-row commit rate of pbxbridge.outbox against plain sqlite3, in the same run.

Run: .venv/bin/python tests/benchmarks/bench_outbox.py [rows] [rounds] [directory]

Machines and disks are noisy, so read the ratios, not the absolute rates. Each mode
commits ``rows`` events of realistic size (~700-byte bodies) to a fresh file:

- reference: sqlite3 INSERT + COMMIT in a loop, WAL + synchronous=FULL, one thread;
- outbox put: ``await outbox.put(event)`` one at a time (every event waits for its own
  COMMIT, as the slowest possible caller would);
- outbox burst: every event submitted at once through ``submit`` (the pipeline's path),
  where group commit folds concurrent submissions into fewer transactions.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pbxbridge import incidents as inc
from pbxbridge.outbox import Outbox
from tests.support.calls import lifecycle


def events(n: int) -> list[inc.Incident]:
    """call.offered / call.answered / call.ended of n/3 calls."""
    return [e for call in range(n // 3 + 1) for e in lifecycle(call)][:n]


def reference(path: Path, rows: list[inc.Incident]) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE events (event_id TEXT PRIMARY KEY, call_id TEXT, type TEXT,"
        " occurred_at REAL, body BLOB, created_at REAL)"
    )
    started = time.perf_counter()
    for e in rows:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
            (e.event_id, e.call_id, e.type, e.occurred_at, e.body, time.time()),
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return len(rows) / elapsed


async def outbox_put(path: Path, rows: list[inc.Incident]) -> float:
    async with Outbox(path) as outbox:
        started = time.perf_counter()
        for e in rows:
            await outbox.put(e)
        return len(rows) / (time.perf_counter() - started)


async def outbox_burst(path: Path, rows: list[inc.Incident]) -> float:
    async with Outbox(path) as outbox:
        started = time.perf_counter()
        await asyncio.gather(*(outbox.submit([e]) for e in rows))
        return len(rows) / (time.perf_counter() - started)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    base = sys.argv[3] if len(sys.argv) > 3 else None
    rows = events(n)
    size = sum(len(e.body) for e in rows) // len(rows)
    results: dict[str, list[float]] = {"ref": [], "put": [], "burst": []}
    # Interleaved rounds, medians: the disk's mood changes from second to second.
    for r in range(rounds):
        with tempfile.TemporaryDirectory(dir=base) as tmp:
            d = Path(tmp)
            results["ref"].append(reference(d / f"ref{r}.sqlite3", rows))
            results["put"].append(asyncio.run(outbox_put(d / f"put{r}.sqlite3", rows)))
            results["burst"].append(asyncio.run(outbox_burst(d / f"burst{r}.sqlite3", rows)))
    ref, put, burst = (statistics.median(results[k]) for k in ("ref", "put", "burst"))
    print(
        f"{n} rows x {rounds} interleaved rounds (medians), {size}-byte bodies,"
        f" WAL + synchronous=FULL, directory {base or tempfile.gettempdir()}"
    )
    print(f"reference sqlite3 insert+commit : {ref:9.0f} commits/s")
    print(f"outbox put (await each)         : {put:9.0f} rows/s   ratio {put / ref:.2f}")
    print(f"outbox burst (group commit)     : {burst:9.0f} rows/s   ratio {burst / ref:.2f}")


if __name__ == "__main__":
    main()
