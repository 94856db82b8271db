"""The call store against its budgets, one table per run.

    .venv/bin/python -m tests.benchmarks.bench_store [--calls N] [--seed S]
        [--only build,query,export,live,migrate,pg] [--migrate-calls N] [--pg-calls N]
        [--no-pg] [--live-calls N] [--rounds N] [--cache-dir DIR]

The calls are made up by a seeded generator shaped like a 112 center's five years
(2021-2025, Asia/Jakarta): a daily curve (quiet before dawn, busiest in the evening), a
weekly one (Friday to Sunday busier), seasons, slow growth and a few disaster days;
answered 74%, abandoned 19% (before the queue, in the queue, while ringing),
unanswered 4.5%, interrupted 2.5%; the calltakers queue and its backup overflow, 30
call takers, categories, dispatches to agencies, caller numbers that come back, and
most unanswered callers called back (the row is then the callback's call.updated).
Each record is what the tracker makes of a call (``queue`` is the answering queue: an
abandoned call has none, its ``queues`` say where it waited).

1. build: N calls (default 2,000,000) written straight into the store's ``calls``
   table (OutboxDB's connection, executemany of store_sql.Writes("sqlite", local=True)
   in large transactions), cached under --cache-dir by N, seed, generator and schema,
   so a rerun starts at once. Reported only.
2. query: one month in the middle (2023-07) with two filters, exactly as
   ``GET /v1/calls`` does it (parse_calls, open_reader per request, Reader.calls, the
   JSON body and its cursor): the first page (limit 100) and every page of the month
   (following the cursors, limit 100 and 1000); medians of --rounds runs, and once
   "cold", the file's pages dropped from the page cache first (posix_fadvise). The
   pages' total is checked against a plain COUNT.
3. export: a year (2024) to CSV as the API streams it (Reader.pages of 1,000 and
   CsvRows, to a counting sink), each export in a fresh child process: the time, and
   its peak memory (tracemalloc peak, and RSS high-water mark over the RSS before the
   export) against a one-month export: constant memory means a ratio of about 1.
4. live: the pipeline's commits with the store on (each incident submitted with its
   call row from rows_of, as OutboxSink does) against the store off (incidents only):
   a disaster day's stream (calls 60 ms apart, 3 incidents each: offered, answered,
   ended, interleaved by time), handed over flat out; capacity in calls/s against 50x
   a disaster day (1,000 calls a minute: 50x = 833 calls/s). Medians of --rounds; into
   new files, and (when part 1's store is built) into a copy of it, as the five years'
   store the daemon writes into.
5. migrate: a version-1 outbox (events only, the v1 DDL, user_version=1) holding
   --migrate-calls calls (default 1,000,000; call.offered and call.ended each),
   opened by OutboxDB, which migrates it to version 2 (the store's tables and their
   backfill from the events). Against the floor of one SQL pass reading the same JSON.
6. pg: the same month's queries against the regional store, a throwaway PostgreSQL
   (tests/support/postgres.py) holding --pg-calls calls (default 200,000; written with
   pg_store.write). Reported only; --no-pg skips it.

Machines are shared and noisy: runs take turns and medians are reported; the ratios
(against a floor measured in the same run) say more than the rates. Exits 1 when a
budget is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import gc
import hashlib
import json
import math
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pbxbridge import callbacks as cb
from pbxbridge import incidents as inc
from pbxbridge import local_schema, pg_store, store_api, store_query, store_sql
from pbxbridge.outbox import Outbox
from pbxbridge.outbox_db import OutboxDB
from pbxbridge.records import CallRecord
from pbxbridge.store_read import Target, open_reader
from pbxbridge.store_rows import Row as StoreRow
from pbxbridge.store_rows import call_row, rows_of
from tests.benchmarks.verdicts import Row, print_table

TZ = ZoneInfo("Asia/Jakarta")
FIRST_DAY = date(2021, 1, 1)
LAST_DAY = date(2025, 12, 31)
INSTANCE = "bench"
PBX = "pbx1"
# Bump when the generator changes: cached files are keyed by it.
GENERATOR = 3

MONTH = {"from": "2023-07-01", "to": "2023-07-31"}
# Two filters each, every first page judged. ``queue`` is any queue the call waited in;
# the last question matches nothing (an interrupted call has no abandon stage), so its
# first page reads the whole month: the worst case.
QUERIES: tuple[tuple[str, dict[str, str]], ...] = (
    ("answered by backup", {"outcome": "answered", "queue": "backup"}),
    ("abandoned in queue", {"outcome": "abandoned", "stage": "queue"}),
    ("abandoned + calltakers", {"outcome": "abandoned", "queue": "calltakers"}),
    ("answered + fire dispatch", {"outcome": "answered", "agency": "fire"}),
    ("none: interrupted + ringing", {"outcome": "interrupted", "stage": "ringing"}),
)
EXPORT_MONTH = {"from": "2024-06-01", "to": "2024-06-30"}
EXPORT_YEAR = {"from": "2024-01-01", "to": "2024-12-31"}

FIRST_PAGE_BUDGET = 0.200
EXPORT_BUDGET = 10.0
EXPORT_MEMORY_RATIO = 1.5  # ~1 when constant; a year holds 12x a month
MIGRATE_BUDGET = 60.0
DISASTER_CALLS_PER_MIN = 1_000
CAPACITY_FACTOR = 50
CAPACITY_CALLS_PER_S = CAPACITY_FACTOR * DISASTER_CALLS_PER_MIN / 60  # 833

BUILD_BATCH = 50_000
SUBMITS_PER_TURN = 16  # incidents the pipeline hands over between two loop turns

# -- the calls ----------------------------------------------------------------------------

# Share of the day's calls per local hour (a 112 center: quiet before dawn, the evening
# busiest), per weekday (Monday first) and the outcomes.
HOURLY = (
    *(2.0, 1.6, 1.3, 1.1, 1.0, 1.2, 1.8, 2.8, 3.8, 4.4, 4.8, 5.0),
    *(5.0, 4.9, 4.9, 5.1, 5.4, 5.8, 6.2, 6.4, 6.0, 5.1, 3.9, 2.8),
)  # fmt: skip
WEEKLY = (0.95, 0.93, 0.94, 0.96, 1.05, 1.18, 1.12)
OUTCOMES = ("answered", "abandoned", "unanswered", "interrupted")
OUTCOME_SHARES = (74.0, 19.0, 4.5, 2.5)
STAGES = ("before_queue", "queue", "ringing")
STAGE_SHARES = (30.0, 55.0, 15.0)
CALLTAKERS = tuple(f"Taker {1001 + i}" for i in range(24))
BACKUP_TAKERS = tuple(f"Backup {2001 + i}" for i in range(6))
CATEGORIES = ("emergency", "information", "prank", "ghost", "wrong_number", "test")
CATEGORY_SHARES = (46.0, 21.0, 12.0, 13.0, 6.0, 2.0)
AGENCIES = ("police", "ambulance", "fire", "search_and_rescue")
AGENCY_SHARES = (50.0, 30.0, 15.0, 5.0)
# Indonesian mobile prefixes (08xx).
MOBILE = (
    *("11", "12", "13", "21", "22", "23", "52", "53", "55", "56", "57"),
    *("58", "77", "78", "81", "82", "83", "95", "96", "97", "98"),
)  # fmt: skip
CALLBACK_RESULTS = ("answered", "recalled", "no_answer", "busy", "failed")
CALLBACK_SHARES = (55.0, 15.0, 20.0, 7.0, 3.0)
FREQUENT = 3_000  # numbers that call again and again (Zipf-like)


def _cum(weights: Sequence[float]) -> list[float]:
    out, total = [], 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


def _pick(rng: random.Random, items: Sequence[str], cum: list[float]) -> str:
    return items[bisect.bisect(cum, rng.random() * cum[-1])]


class Calls:
    """A seeded stream of call records, as the tracker ends them, in arrival order."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        self.frequent = [self._mobile() for _ in range(FREQUENT)]
        self.taker_cum = _cum([rng.uniform(0.5, 1.5) for _ in CALLTAKERS])
        self.backup_cum = _cum([rng.uniform(0.5, 1.5) for _ in BACKUP_TAKERS])
        self.outcome_cum = _cum(OUTCOME_SHARES)
        self.stage_cum = _cum(STAGE_SHARES)
        self.category_cum = _cum(CATEGORY_SHARES)
        self.agency_cum = _cum(AGENCY_SHARES)
        self.callback_cum = _cum(CALLBACK_SHARES)
        self.hour_cum = _cum(HOURLY)
        self.n = 0

    def _mobile(self) -> str:
        return f"08{self.rng.choice(MOBILE)}{self.rng.randrange(10**8):08d}"

    def number(self) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.03:
            return ""  # withheld
        if r < 0.28:
            return self.frequent[int(FREQUENT * rng.random() ** 3)]
        if r < 0.36:
            return f"021{rng.randrange(10**7):07d}"
        return self._mobile()

    def day_counts(self, total: int, first: date, last: date) -> list[tuple[date, int]]:
        """Calls per day, summing to ``total``: week, season, growth, disaster days."""
        days = [first + timedelta(d) for d in range((last - first).days + 1)]
        disasters = {self.rng.randrange(len(days)) for _ in range(max(1, len(days) // 200))}
        weights = []
        for k, day in enumerate(days):
            season = 1 + 0.08 * math.cos(2 * math.pi * (day.timetuple().tm_yday - 20) / 365.25)
            w = WEEKLY[day.weekday()] * season * (1 + 0.05 * k / 365.25)
            w *= self.rng.uniform(0.9, 1.1) * (self.rng.uniform(3, 6) if k in disasters else 1)
            weights.append(w)
        scale, out, done, acc = total / sum(weights), [], 0, 0.0
        for day, w in zip(days, weights, strict=True):
            acc += w * scale
            n = round(acc) - done
            done += n
            out.append((day, n))
        return out

    def records(
        self, total: int, first: date = FIRST_DAY, last: date = LAST_DAY
    ) -> Iterator[CallRecord]:
        for day, count in self.day_counts(total, first, last):
            start = datetime(day.year, day.month, day.day, tzinfo=TZ).timestamp()
            rng, cum = self.rng, self.hour_cum
            times = sorted(
                round(start + 3600 * (bisect.bisect(cum, rng.random() * cum[-1]) + rng.random()), 6)
                for _ in range(count)
            )
            for t in times:
                yield self.call(t)

    def call(self, t: float, outcome: str | None = None) -> CallRecord:
        rng = self.rng
        self.n += 1
        linkedid = f"{int(t)}.{self.n}"
        rec = CallRecord(
            call_id=f"{PBX}:{linkedid}",
            linkedid=linkedid,
            service="112",
            caller_number=self.number(),
            caller_name="",
            offered_at=t,
        )
        fate = outcome or _pick(rng, OUTCOMES, self.outcome_cum)
        queued = round(t + rng.uniform(2.5, 6.0), 6)  # the greeting
        if fate == "abandoned":
            stage = _pick(rng, STAGES, self.stage_cum)
            if stage == "before_queue":
                return replace(
                    rec,
                    ended_at=round(t + rng.uniform(0.5, 5.0), 6),
                    outcome=fate,
                    abandon_stage=stage,
                )
            wait = min(rng.lognormvariate(3.0, 0.9), 600)  # median ~20 s
            rings = 1 if stage == "ringing" else int(wait > 15)
            return replace(
                rec,
                queued_at=queued,
                queues=("calltakers", "backup") if wait > 45 else ("calltakers",),
                ring_attempts=rings,
                ring_no_answer=max(0, rings - 1),
                ended_at=round(queued + wait, 6),
                outcome=fate,
                abandon_stage=stage,
            )
        if fate == "unanswered":
            rings = rng.randint(3, 8)
            return replace(
                rec,
                queued_at=queued,
                queues=("calltakers", "backup"),
                ring_attempts=rings,
                ring_no_answer=rings,
                ended_at=round(queued + rng.uniform(90, 180), 6),
                outcome=fate,
            )
        # Answered, or interrupted (the AMI session lost; half of them were talking).
        wait = min(rng.lognormvariate(2.0, 0.8), 300)  # median ~7 s
        backup = wait > 45 or rng.random() < 0.08
        rings = 1 + (rng.random() < 0.15) + (rng.random() < 0.03)
        answered = round(queued + wait, 6)
        rec = replace(
            rec,
            queued_at=queued,
            queues=("calltakers", "backup") if backup else ("calltakers",),
            ring_attempts=rings,
            ring_no_answer=rings - 1,
        )
        if fate == "interrupted" and rng.random() < 0.5:
            return replace(rec, ended_at=round(queued + rng.uniform(1, wait), 6), outcome=fate)
        rec = replace(
            rec,
            answered_at=answered,
            queue="backup" if backup else "calltakers",
            agent=(
                _pick(rng, BACKUP_TAKERS, self.backup_cum)
                if backup
                else _pick(rng, CALLTAKERS, self.taker_cum)
            ),
        )
        talk = min(rng.lognormvariate(4.5, 0.7), 3600)  # median ~90 s
        ended = round(answered + talk, 6)
        if rng.random() < 0.85:
            category = _pick(rng, CATEGORIES, self.category_cum)
            rec = replace(rec, category=category)
            if category == "emergency" and rng.random() < 0.7:
                at = answered + rng.uniform(20, talk)
                first_agency = _pick(rng, AGENCIES, self.agency_cum)
                sent = [(first_agency, round(at, 6))]
                if rng.random() < 0.25:
                    other = _pick(rng, AGENCIES, self.agency_cum)
                    if other != first_agency:
                        sent.append((other, round(at + rng.uniform(5, 60), 6)))
                rec = replace(rec, dispatched_to=tuple(sent))
        return replace(rec, ended_at=ended, outcome=fate)


def ended(rec: CallRecord) -> inc.Incident:
    assert rec.ended_at is not None
    return inc.incident(rec, inc.ENDED, rec.ended_at)


def last_incident(gen: Calls, rec: CallRecord) -> inc.Incident:
    """The call's newest incident, the one its store row holds: call.ended, or for most
    calls not answered the call.updated of their callback leaving the list."""
    rng = gen.rng
    if rec.outcome == "answered" or not rec.caller_number or rng.random() < 0.2:
        return ended(rec)
    assert rec.ended_at is not None and rec.outcome is not None
    first = round(rec.ended_at + rng.uniform(30, 900), 6)
    attempts = 1 + (rng.random() < 0.3) + (rng.random() < 0.1)
    entry = cb.Callback(
        call_id=rec.call_id,
        service=rec.service,
        number=rec.caller_number,
        abandoned_at=rec.ended_at,
        outcome=rec.outcome,
        attempts=attempts,
        first_attempt_at=first,
        closed_at=round(first + (attempts - 1) * rng.uniform(120, 600) + 20, 6),
        result=_pick(rng, CALLBACK_RESULTS, gen.callback_cum),
        record=rec,
    )
    i = inc.from_effect(cb.Closed(entry))
    assert i is not None
    return i


def offered(rec: CallRecord) -> CallRecord:
    """The record as call.offered carried it."""
    return CallRecord(
        call_id=rec.call_id,
        linkedid=rec.linkedid,
        service=rec.service,
        caller_number=rec.caller_number,
        caller_name=rec.caller_name,
        offered_at=rec.offered_at,
    )


# -- cached files ---------------------------------------------------------------------------


def _digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:10]


def schema_key() -> str:
    """The statements that make the ``calls`` table and its indexes (a change to another
    table does not make the cached store stale)."""
    calls = [
        s for m in local_schema.MIGRATIONS for s in m.statements if " calls " in s or " calls(" in s
    ]
    return _digest(calls, store_sql.CALL_COLUMNS)


def cached(path: Path, stale: str, build: Callable[[Path], None]) -> tuple[Path, float | None]:
    """``path`` built once (to a temporary name, renamed when complete); the build's
    seconds, or None when it was there already. Files matching ``stale`` (the same
    calls made by another generator or schema) are removed first."""
    if path.exists():
        return path, None
    for old in path.parent.glob(stale):
        print(f"  removing the stale {old}")
        old.unlink()
    part = path.with_name(path.name + ".part")
    for leftover in (part, *(part.with_name(part.name + s) for s in ("-wal", "-shm"))):
        leftover.unlink(missing_ok=True)
    start = time.perf_counter()
    build(part)
    seconds = time.perf_counter() - start
    part.rename(path)
    return path, seconds


def build_store(path: Path, calls: int, seed: int) -> None:
    db = OutboxDB(path)
    conn = db.conn
    conn.execute("PRAGMA synchronous=OFF")  # a benchmark fixture: no fsync while building
    writes = store_sql.Writes("sqlite", local=True)
    batch: list[tuple[Any, ...]] = []
    done = 0
    start = time.perf_counter()

    def flush() -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(writes.call, batch)
        conn.execute("COMMIT")
        batch.clear()

    gen = Calls(seed)
    for rec in gen.records(calls):
        batch.append(store_sql.call_params(call_row(last_incident(gen, rec))))
        if len(batch) >= BUILD_BATCH:
            flush()
            done += BUILD_BATCH
            if done % 500_000 == 0:
                rate = done / (time.perf_counter() - start)
                print(f"    {done:,} calls ({rate:,.0f}/s)", flush=True)
    if batch:
        flush()
    # No ANALYZE: the daemon never runs one, so its planner has no statistics either.
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def store_path(args: argparse.Namespace) -> Path:
    name = f"pbxbridge-bench-store-{args.calls}-s{args.seed}-g{GENERATOR}-{schema_key()}.sqlite3"
    return Path(args.cache_dir) / name


def store_file(args: argparse.Namespace, rows: list[Row]) -> Path:
    path = store_path(args)
    print(f"\n[1] build: {args.calls:,} calls in {path}")
    stale = f"pbxbridge-bench-store-{args.calls}-s{args.seed}-*"
    path, seconds = cached(path, stale, lambda p: build_store(p, args.calls, args.seed))
    size = path.stat().st_size / 2**20
    if seconds is None:
        print(f"  cached ({size:,.0f} MiB)")
        result = f"cached, {size:,.0f} MiB"
    else:
        print(f"  built in {seconds:.1f} s ({args.calls / seconds:,.0f} calls/s), {size:,.0f} MiB")
        result = f"{seconds:.1f} s ({args.calls / seconds:,.0f} calls/s), {size:,.0f} MiB"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        count = conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    assert count == args.calls, (count, args.calls)
    rows.append(Row(f"build: {args.calls:,} calls", result, "(reported)", None))
    return path


# -- 2. the month's query ------------------------------------------------------------------


def api_page(target: Target, params: dict[str, str]) -> tuple[int, str | None]:
    """What ``GET /v1/calls`` does for one page, short of HTTP: rows and the next cursor."""
    page = store_query.parse_calls(params, TZ)
    with open_reader(target) as reader:
        rows = reader.calls(page)
    body: dict[str, Any] = {"calls": [json.loads(doc) for doc, _, _ in rows], "next": None}
    if len(rows) == page.limit:
        _, at, call_id = rows[-1]
        body["next"] = store_query.cursor(page.query, at, call_id)
    json.dumps(body)  # web.json_response's body
    return len(rows), body["next"]


def api_all_pages(target: Target, params: dict[str, str]) -> tuple[int, int]:
    """Every page, following the cursors as a client does: rows and pages."""
    total = pages = 0
    cursor: str | None = None
    while True:
        n, cursor = api_page(target, {**params, **({"cursor": cursor} if cursor else {})})
        total += n
        pages += 1
        if cursor is None:
            return total, pages


def evict(target: Target) -> None:
    """The SQLite file out of the page cache (its own pages only: posix_fadvise), for a
    first query as after a reboot. PostgreSQL's own buffers stay: its first run is
    reported as it comes."""
    if target.url is not None:
        return
    fd = os.open(target.path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def plan(conn: Any, params: dict[str, str], after: tuple[float, str] | None = None) -> str:
    page = store_query.parse_calls(params, TZ)
    sql, args = store_query.calls_sql(store_query.Page(page.query, page.limit, after))
    steps = conn.execute(f"EXPLAIN QUERY PLAN {sql}", args).fetchall()
    return "; ".join(str(s[-1]) for s in steps)


def expected(conn: Any, dialect: str, params: dict[str, str]) -> int:
    """How many calls match, counted without the pages' SQL (the paging is checked)."""
    q = store_query.parse_calls(params, TZ).query
    where = ["offered_at >= ?", "offered_at < ?"]
    args: list[Any] = [q.period.start, q.period.end]
    for column, value in (("outcome", q.outcome), ("abandon_stage", q.stage)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    for column, value in (("queues", q.queue), ("agencies", q.agency)):
        if value is not None:
            where.append(f"{column} LIKE ?")
            args.append(f"%,{value},%")
    sql = store_sql.placeholders(f"SELECT COUNT(*) FROM calls WHERE {' AND '.join(where)}", dialect)
    cur = conn.cursor()
    try:
        cur.execute(sql, args)
        return int(cur.fetchone()[0])
    finally:
        cur.close()


def measure_queries(target: Target, rounds: int, label: str, rows: list[Row], judged: bool) -> None:
    """First page and every page of the month, per question; medians, taking turns."""
    with open_reader(target) as reader:
        counts = {
            name: expected(reader.conn, reader.dialect, {**MONTH, **f}) for name, f in QUERIES
        }
        if reader.dialect == "postgresql":
            reader.conn.rollback()
    firsts: dict[str, list[float]] = {name: [] for name, _ in QUERIES}
    alls: dict[tuple[str, int], list[float]] = {}
    got: dict[tuple[str, int], tuple[int, int]] = {}
    cold: dict[str, float] = {}
    for name, filters in QUERIES:
        evict(target)
        cold[name], _ = timed(lambda f=filters: api_page(target, {**MONTH, **f}))  # type: ignore[misc]
    for _ in range(rounds):
        for name, filters in QUERIES:
            params = {**MONTH, **filters}
            gc.collect()
            seconds, _ = timed(lambda p=params: api_page(target, p))  # type: ignore[misc]
            firsts[name].append(seconds)
            for limit in (100, 1000):
                p = {**params, "limit": str(limit)}
                seconds, result = timed(lambda p=p: api_all_pages(target, p))  # type: ignore[misc]
                alls.setdefault((name, limit), []).append(seconds)
                got[(name, limit)] = result
    print(
        f"  {'question (2023-07 + two filters)':<28} {'matches':>8} {'first page':>11}"
        f" {'cold' if target.url is None else '1st run':>10} {'all pages by 100':>22}"
        f" {'all by 1000':>12}"
    )
    for name, _ in QUERIES:
        first = statistics.median(firsts[name])
        n, pages = got[(name, 100)]
        by100 = statistics.median(alls[(name, 100)])
        by1000 = statistics.median(alls[(name, 1000)])
        assert n == got[(name, 1000)][0] == counts[name], (name, got, counts[name])
        print(
            f"  {name:<28} {n:>8,} {first * 1000:>8.1f} ms {cold[name] * 1000:>7.1f} ms"
            f" {by100 * 1000:>9.0f} ms ({pages:>3} pages) {by1000 * 1000:>9.0f} ms"
        )
        rows.append(
            Row(
                f"{label}: {name}, first page",
                f"{first * 1000:.1f} ms, {'cold' if target.url is None else '1st'}"
                f" {cold[name] * 1000:.0f} ms ({n:,} matches)",
                f"< {FIRST_PAGE_BUDGET * 1000:.0f} ms" if judged else "(reported)",
                first < FIRST_PAGE_BUDGET if judged else None,
            )
        )
        rows.append(
            Row(
                f"{label}: {name}, whole month",
                f"{by100 * 1000:.0f} ms by 100 ({pages} pages), {by1000 * 1000:.0f} ms by 1000",
                "(reported)",
                None,
            )
        )


def part_query(path: Path, rounds: int, rows: list[Row]) -> None:
    print(f"\n[2] query: {MONTH['from']}..{MONTH['to']}, as GET /v1/calls; medians of {rounds}")
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        page = store_query.parse_calls(MONTH, TZ)
        assert page.query.period.start is not None and page.query.period.end is not None
        print(f"  the month holds {expected(conn, 'sqlite', MONTH):,} calls")
        for name, filters in QUERIES:
            params = {**MONTH, **filters}
            print(f"  plan, {name}: {plan(conn, params)}")
        mid = (page.query.period.start + page.query.period.end) / 2
        print(f"  plan, a later page: {plan(conn, {**MONTH, **QUERIES[0][1]}, (mid, 'x'))}")
        # The floor: the first page's SQL alone, on a connection already open.
        params = {**MONTH, **QUERIES[0][1]}
        sql, args = store_query.calls_sql(store_query.parse_calls(params, TZ))
        floor = statistics.median(
            timed(lambda: conn.execute(sql, args).fetchall())[0] for _ in range(rounds)
        )
        print(f"  floor: the first page's SQL alone, open connection: {floor * 1000:.1f} ms")
    measure_queries(Target(str(path)), rounds, "query", rows, judged=True)


# -- 3. the year's export --------------------------------------------------------------------


class CountingSink:
    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.bytes += len(data)


def export_csv(target: Target, params: dict[str, str], sink: CountingSink) -> int:
    """What the API's CSV answer does (store_api._csv), a counting sink for the socket."""
    page = store_query.parse_calls(params, TZ)
    n = 0
    with open_reader(target) as reader:
        pages = reader.pages(store_query.Page(page.query, store_api.CSV_PAGE, page.after))
        csv_rows = store_query.CsvRows(TZ)
        sink.write(csv_rows.header().encode())
        for rows in pages:
            n += len(rows)
            sink.write(csv_rows.page(json.loads(d) for d, _, _ in rows).encode("utf-8"))
    return n


def export_sql_only(target: Target, params: dict[str, str]) -> int:
    page = store_query.parse_calls(params, TZ)
    with open_reader(target) as reader:
        pages = reader.pages(store_query.Page(page.query, store_api.CSV_PAGE, page.after))
        return sum(len(rows) for rows in pages)


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def export_main(path: str, params: dict[str, str], mode: str) -> None:
    """Child process: one export; prints a JSON report."""
    target = Target(path)
    sink = CountingSink()
    gc.collect()
    if mode == "trace":
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        start = time.perf_counter()
        n = export_csv(target, params, sink)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        report = {"rows": n, "bytes": sink.bytes, "seconds": seconds, "traced_peak": peak}
    else:
        rss = _status("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # the high-water mark := RSS now
        start = time.perf_counter()
        n = export_sql_only(target, params) if mode == "sql" else export_csv(target, params, sink)
        seconds = time.perf_counter() - start
        report = {
            "rows": n,
            "bytes": sink.bytes,
            "seconds": seconds,
            "rss_peak": _status("VmHWM") - rss,
        }
    print(json.dumps(report), flush=True)


def export_child(path: Path, params: dict[str, str], mode: str) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.benchmarks.bench_store",
            "--export-child",
            str(path),
            json.dumps(params),
            mode,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return json.loads(out.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def part_export(path: Path, rounds: int, rows: list[Row]) -> None:
    print(
        f"\n[3] export: {EXPORT_YEAR['from']}..{EXPORT_YEAR['to']} as CSV (pages of "
        f"{store_api.CSV_PAGE}), one child process per export; medians of {rounds}"
    )
    runs: dict[str, list[dict[str, Any]]] = {}
    for _ in range(rounds):
        for name, params, mode in (
            ("year", EXPORT_YEAR, "csv"),
            ("year, SQL only", EXPORT_YEAR, "sql"),
            ("month", EXPORT_MONTH, "csv"),
        ):
            runs.setdefault(name, []).append(export_child(path, params, mode))
    traced = {
        "month": export_child(path, EXPORT_MONTH, "trace"),
        "year": export_child(path, EXPORT_YEAR, "trace"),
    }

    def med(name: str, key: str) -> float:
        return float(statistics.median(r[key] for r in runs[name]))

    year, month = runs["year"][0], runs["month"][0]
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        for name, params in (("year", EXPORT_YEAR), ("month", EXPORT_MONTH)):
            want = expected(conn, "sqlite", params)
            assert all(r["rows"] == want for r in runs[name]), (name, want, runs[name])
    seconds, sql = med("year", "seconds"), med("year, SQL only", "seconds")
    print(
        f"  year: {year['rows']:,} calls, {year['bytes'] / 2**20:,.0f} MiB of CSV in "
        f"{seconds:.2f} s ({year['rows'] / seconds:,.0f} calls/s); the SQL alone "
        f"{sql:.2f} s ({sql / seconds:.0%})"
    )
    print(f"  month: {month['rows']:,} calls in {med('month', 'seconds'):.2f} s")
    rss_y, rss_m = med("year", "rss_peak"), med("month", "rss_peak")
    tr_y, tr_m = traced["year"]["traced_peak"], traced["month"]["traced_peak"]
    print(
        f"  peak memory over the export, year / month: tracemalloc {tr_y / 2**20:.2f} / "
        f"{tr_m / 2**20:.2f} MiB = {tr_y / tr_m:.2f}; RSS high-water mark "
        f"{rss_y / 2**20:.2f} / {rss_m / 2**20:.2f} MiB = {rss_y / max(rss_m, 1):.2f}"
    )
    rows.append(
        Row(
            f"export: a year to CSV ({year['rows']:,} calls)",
            f"{seconds:.2f} s ({year['rows'] / seconds:,.0f} calls/s)",
            f"< {EXPORT_BUDGET:.0f} s",
            seconds < EXPORT_BUDGET,
        )
    )
    rows.append(
        Row(
            "export: peak memory, year / month (traced)",
            f"{tr_y / tr_m:.2f} ({tr_y / 2**20:.2f} / {tr_m / 2**20:.2f} MiB)",
            f"< {EXPORT_MEMORY_RATIO:g}x",
            tr_y / tr_m < EXPORT_MEMORY_RATIO,
        )
    )
    # RSS also counts SQLite's page cache and the allocator's arenas: a floor of 8 MiB.
    rss_ratio = max(rss_y, 8 * 2**20) / max(rss_m, 8 * 2**20)
    rows.append(
        Row(
            "export: peak RSS, year / month",
            f"{rss_y / max(rss_m, 1):.2f} ({rss_y / 2**20:.1f} / {rss_m / 2**20:.1f} MiB)",
            f"< {EXPORT_MEMORY_RATIO:g}x (over 8 MiB)",
            rss_ratio < EXPORT_MEMORY_RATIO,
        )
    )


# -- 4. live capacity -------------------------------------------------------------------------


def disaster_stream(calls: int, seed: int) -> list[inc.Incident]:
    """``calls`` answered calls 60 ms apart, 3 incidents each, interleaved by time."""
    gen = Calls(seed)
    # A Monday after the five years: into the built store, these are its newest calls.
    t0 = datetime(2026, 1, 5, 9, tzinfo=TZ).timestamp()
    stream = []
    for k in range(calls):
        rec = gen.call(round(t0 + k * 60 / DISASTER_CALLS_PER_MIN, 6), outcome="answered")
        assert rec.answered_at is not None and rec.ended_at is not None
        answered = replace(
            offered(rec),
            queued_at=rec.queued_at,
            queues=rec.queues,
            answered_at=rec.answered_at,
            queue=rec.queue,
            agent=rec.agent,
            ring_attempts=rec.ring_attempts,
            ring_no_answer=rec.ring_no_answer,
        )
        stream += [
            inc.incident(offered(rec), inc.OFFERED, rec.offered_at),
            inc.incident(answered, inc.ANSWERED, rec.answered_at),
            ended(rec),
        ]
    stream.sort(key=lambda i: i.occurred_at)
    return stream


async def live_submit(path: Path, stream: list[inc.Incident], store: bool) -> float:
    """The stream handed over flat out, one submit per incident as the pipeline's sink
    does; seconds until all is committed."""
    async with Outbox(path) as outbox:
        futures: list[asyncio.Future[int]] = []
        start = time.perf_counter()
        for k, i in enumerate(stream):
            rows: list[StoreRow] = rows_of((), [i], INSTANCE) if store else []
            futures.append(outbox.submit([i], rows))
            if k % SUBMITS_PER_TURN == SUBMITS_PER_TURN - 1:
                await asyncio.sleep(0)
        added = await asyncio.gather(*futures)
        seconds = time.perf_counter() - start
    assert sum(added) == len(stream), (sum(added), len(stream))
    return seconds


def live_round(path: Path, stream: list[inc.Incident], store: bool) -> float:
    def calls() -> int:
        if not path.exists():
            return 0
        with contextlib.closing(sqlite3.connect(path)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    before = calls()
    seconds = asyncio.run(live_submit(path, stream, store))
    added = calls() - before
    assert added == (len(stream) // 3 if store else 0), added
    return seconds


def undo_live(path: Path, stream: list[inc.Incident]) -> None:
    """The stream's events and calls out of ``path`` again (they are its newest)."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM events")
        conn.execute("DELETE FROM calls WHERE offered_at >= ?", (stream[0].occurred_at,))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def part_live(args: argparse.Namespace, big: Path | None, rows: list[Row]) -> None:
    calls, rounds = args.live_calls, args.rounds
    print(
        f"\n[4] live: a disaster day's stream, {calls:,} calls x 3 incidents, flat out into "
        f"the Outbox (WAL, synchronous=FULL, group commit); medians of {rounds}, taking turns"
    )
    stream = disaster_stream(calls, args.seed)
    kinds = ["off", "on", *(["on, big"] if big is not None else [])]
    results: dict[str, list[float]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory(prefix="pbxbridge-bench-live-", dir=args.cache_dir) as tmp:
        copy = Path(tmp) / "big.sqlite3"
        if big is not None:
            print(f"  copying {big.name} for the store-on runs into {args.calls:,} calls")
            shutil.copyfile(big, copy)
        for r in range(rounds):
            for kind in kinds:
                path = copy if kind == "on, big" else Path(tmp) / f"live-{r}-{kind}.sqlite3"
                gc.collect()
                results[kind].append(live_round(path, stream, kind != "off"))
                if kind == "on, big":
                    undo_live(copy, stream)
                else:
                    for p in path.parent.glob(path.name + "*"):
                        p.unlink()
    rate = {kind: calls / statistics.median(results[kind]) for kind in kinds}
    on, off = rate["on"], rate["off"]
    print(
        f"  store off (incidents only): {off:,.0f} calls/s ({3 * off:,.0f} incidents/s); "
        f"store on (incidents + call rows): {on:,.0f} calls/s ({3 * on:,.0f} incidents/s)"
    )
    disaster = DISASTER_CALLS_PER_MIN / 60
    targets = [("live: capacity, store on (a new file)", on)]
    if big is not None:
        print(f"  store on, into the file of {args.calls:,} calls: {rate['on, big']:,.0f} calls/s")
        targets.append((f"live: capacity, store on ({args.calls:,} calls in it)", rate["on, big"]))
    for what, value in targets:
        rows.append(
            Row(
                what,
                f"{value:,.0f} calls/s = {value / disaster:.0f}x disaster day",
                f">= {CAPACITY_FACTOR}x ({CAPACITY_CALLS_PER_S:,.0f} calls/s)",
                value >= CAPACITY_CALLS_PER_S,
            )
        )
    rows.append(
        Row(
            "live: store on / store off (new files)",
            f"{on / off:.2f} ({off:,.0f} calls/s off)",
            "(reported)",
            None,
        )
    )


# -- 5. migration ------------------------------------------------------------------------------


_V1_INSERT = (
    "INSERT INTO events (event_id, call_id, type, seq, occurred_at, body, state, attempts,"
    " next_attempt_at, created_at, delivered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def build_v1(path: Path, calls: int, seed: int) -> None:
    """A version-1 outbox (bbc44b0's schema): events only, 2 per call."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN IMMEDIATE")
    for statement in local_schema.MIGRATIONS[0].statements:
        conn.execute(statement)
    conn.execute("PRAGMA user_version=1")
    conn.execute("COMMIT")
    batch: list[tuple[Any, ...]] = []

    def flush() -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_V1_INSERT, batch)
        conn.execute("COMMIT")
        batch.clear()

    for k, rec in enumerate(Calls(seed).records(calls)):
        assert rec.ended_at is not None
        pending = k >= calls - 1000  # the newest calls are not delivered yet
        for seq, i in enumerate(
            (inc.incident(offered(rec), inc.OFFERED, rec.offered_at), ended(rec))
        ):
            batch.append(
                (
                    i.event_id,
                    i.call_id,
                    i.type,
                    seq,
                    i.occurred_at,
                    i.body,
                    "pending" if pending else "delivered",
                    0 if pending else 1,
                    i.occurred_at,
                    i.occurred_at,
                    None if pending else i.occurred_at + 0.05,
                )
            )
        if len(batch) >= BUILD_BATCH:
            flush()
    if batch:
        flush()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def migrate_floor(path: Path) -> float:
    """One SQL pass parsing every call's last JSON body (the backfill's reading alone)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        seconds, _ = timed(
            lambda: conn.execute(
                "SELECT COUNT(json_extract(body, '$.call.outcome')) FROM events"
                " WHERE type = 'call.ended'"
            ).fetchone()
        )
    return seconds


def part_migrate(args: argparse.Namespace, rows: list[Row]) -> None:
    n = args.migrate_calls
    key = _digest(local_schema.MIGRATIONS[0].statements)
    name = f"pbxbridge-bench-v1-{n}-s{args.seed}-g{GENERATOR}-{key}.sqlite3"
    src = Path(args.cache_dir) / name
    print(f"\n[5] migrate: a version-1 outbox of {n:,} calls ({2 * n:,} events) to version 2")
    stale = f"pbxbridge-bench-v1-{n}-s{args.seed}-*"
    src, seconds = cached(src, stale, lambda p: build_v1(p, n, args.seed))
    size = src.stat().st_size / 2**20
    print(
        f"  {src}: {'cached' if seconds is None else f'built in {seconds:.1f} s'}, {size:,.0f} MiB"
    )
    with tempfile.TemporaryDirectory(prefix="pbxbridge-bench-migrate-", dir=args.cache_dir) as tmp:
        path = Path(tmp) / "outbox.sqlite3"
        shutil.copyfile(src, path)
        floor = migrate_floor(path)
        gc.collect()
        start = time.perf_counter()
        db = OutboxDB(path)
        seconds = time.perf_counter() - start
        version = db.conn.execute("PRAGMA user_version").fetchone()[0]
        count = db.conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
        ended_calls = db.conn.execute(
            "SELECT COUNT(*) FROM calls WHERE outcome IS NOT NULL"
        ).fetchone()[0]
        db.close()
    assert version == local_schema.LATEST and count == ended_calls == n, (version, count, n)
    print(
        f"  OutboxDB(path): {seconds:.1f} s ({n / seconds:,.0f} calls/s) to schema {version}, "
        f"{count:,} calls backfilled; the floor (one JSON pass over the call.ended bodies): "
        f"{floor:.1f} s = {seconds / floor:.1f}x"
    )
    rows.append(
        Row(
            f"migrate: v1 -> v2, {n:,} calls",
            f"{seconds:.1f} s ({seconds / floor:.1f}x one JSON pass)",
            f"< {MIGRATE_BUDGET:.0f} s",
            seconds < MIGRATE_BUDGET,
        )
    )


# -- 6. PostgreSQL -------------------------------------------------------------------------------


def part_pg(args: argparse.Namespace, rows: list[Row]) -> None:
    from tests.support.postgres import PostgresServer  # noqa: PLC0415 (needs pytest, initdb)

    n = args.pg_calls
    print(
        f"\n[6] pg: the month's queries against PostgreSQL (tests/support/postgres.py), {n:,} calls"
    )
    server = PostgresServer()
    try:
        server.start()
        url = server.create_database("bench_store")
        start = time.perf_counter()
        with contextlib.closing(pg_store.connect_writer(url)) as conn:
            batch: list[StoreRow] = []
            gen = Calls(args.seed)
            for rec in gen.records(n):
                batch.append(call_row(last_incident(gen, rec)))
                if len(batch) >= 5000:
                    pg_store.write(conn, batch)
                    batch.clear()
            if batch:
                pg_store.write(conn, batch)
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE calls")  # as autovacuum would, in time
        seconds = time.perf_counter() - start
        print(f"  written in {seconds:.1f} s ({n / seconds:,.0f} calls/s, pg_store.write by 5,000)")
        with contextlib.closing(open_reader(Target("", url))) as reader:
            for name, filters in QUERIES[:1]:
                page = store_query.parse_calls({**MONTH, **filters}, TZ)
                sql, qargs = store_query.calls_sql(page)
                cur = reader.conn.execute(
                    "EXPLAIN " + store_sql.placeholders(sql, "postgresql"), qargs
                )
                lines = [r[0].strip() for r in cur.fetchall()]
                print(f"  plan, {name}: {' / '.join(lines)}")
                reader.conn.rollback()
                pg_sql = store_sql.placeholders(sql, "postgresql")
                floor = statistics.median(
                    timed(lambda s=pg_sql, a=qargs: reader.conn.execute(s, a).fetchall())[0]  # type: ignore[misc]
                    for _ in range(args.rounds)
                )
                reader.conn.rollback()
        connect = statistics.median(
            timed(lambda: open_reader(Target("", url)).close())[0] for _ in range(args.rounds)
        )
        print(
            f"  floors: the first page's SQL alone on an open connection {floor * 1000:.1f} ms;"
            f" open_reader + close (a connection per request) {connect * 1000:.1f} ms"
        )
        measure_queries(Target("", url), args.rounds, "pg", rows, judged=False)
    finally:
        server.cleanup()


# -- the table -------------------------------------------------------------------------------------


PARTS = ("build", "query", "export", "live", "migrate", "pg")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.benchmarks.bench_store")
    p.add_argument("--calls", type=int, default=2_000_000, help="calls in the store")
    p.add_argument("--seed", type=int, default=112)
    p.add_argument("--only", default=",".join(PARTS), help=f"some of {','.join(PARTS)}")
    p.add_argument("--rounds", type=int, default=5, help="runs per measure (medians)")
    p.add_argument("--live-calls", type=int, default=10_000)
    p.add_argument("--migrate-calls", type=int, default=1_000_000)
    p.add_argument("--pg-calls", type=int, default=200_000)
    p.add_argument("--no-pg", action="store_true", help="skip the PostgreSQL part")
    p.add_argument("--cache-dir", default="/tmp", help="where built files are kept")
    args = p.parse_args(argv)
    args.parts = set(args.only.split(","))
    unknown = args.parts - set(PARTS)
    if unknown:
        p.error(f"--only: unknown part(s) {', '.join(sorted(unknown))} (known: {', '.join(PARTS)})")
    if args.no_pg:
        args.parts.discard("pg")
    return args


def main(argv: list[str]) -> int:
    if argv[:1] == ["--export-child"]:
        export_main(argv[1], json.loads(argv[2]), argv[3])
        return 0
    args = parse_args(argv)
    rows: list[Row] = []
    print(f"pbxbridge call store benchmark; SQLite {sqlite3.sqlite_version}, seed {args.seed}")
    if args.parts & {"build", "query", "export"}:
        path = store_file(args, rows)
        if "query" in args.parts:
            part_query(path, args.rounds, rows)
        if "export" in args.parts:
            part_export(path, max(1, args.rounds // 2), rows)
    if "live" in args.parts:
        # Into the built store too, when there is one (it is not built for this part).
        big = store_path(args) if store_path(args).exists() else None
        part_live(args, big, rows)
    if "migrate" in args.parts:
        part_migrate(args, rows)
    if "pg" in args.parts:
        part_pg(args, rows)
    print_table(rows, target="budget", missed="FAIL")
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
