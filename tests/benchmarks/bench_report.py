"""The monthly report against its budgets, one table per run.

    .venv/bin/python -m tests.benchmarks.bench_report [--calls N] [--rounds N] [--seed S]

A month (November 2026, Asia/Jakarta) of a large center: N calls (default 100,000) from
the seeded mix of tests/support/call_mix.py, spread over the month, with 30 call takers
whose states (logged in, ringing, in a call, paused) follow the calls they answered.
Written into a real SQLite store through OutboxDB, as the daemon writes it.

Pinned to one core (the issue's budget: HTML under 5 s, JSON under 2 s on one core),
each measurement the median of --rounds, in this process after one warm-up (a daemon
serving GET /v1/report has its imports loaded); the command line's cold start is
reported beside them. The floor is reading and parsing every stored call of the month (as
``GET /v1/calls`` does); the report reads less (the database takes the fields it needs
out of each call's JSON), so its ratio to the floor can be below 1.

The staffing section is also timed with Erlang A's waiting-time chains computed one
start at a time (the plain uniformisation, kept here as the reference): the one-pass
form in pbxbridge/staffing.py stays only while this ratio shows it matters.
Exits 1 when a budget is missed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import numpy as np

from pbxbridge import report, report_html, report_staff, staffing, store_query
from pbxbridge.outbox_db import OutboxDB
from pbxbridge.report_figures import CallFigures
from pbxbridge.store_read import Reader, Target, open_reader
from pbxbridge.store_rows import AgentRow, Row
from tests.benchmarks.verdicts import Row as Verdict
from tests.benchmarks.verdicts import print_table
from tests.support.call_mix import NOV_1_JAKARTA, call

JAKARTA = ZoneInfo("Asia/Jakarta")
FIRST, LAST = date(2026, 11, 1), date(2026, 11, 30)
NOW = NOV_1_JAKARTA + 31 * 86400
TAKERS = [f"Taker {1001 + n}" for n in range(30)]


def build(path: Path, calls: int, seed: int) -> None:
    rng = random.Random(seed)
    db = OutboxDB(path)
    rows: list[Row] = []
    for n in range(calls):
        # call_mix spreads a call over three days from its start: ten starts fill the month.
        made = call(n, rng, NOV_1_JAKARTA + (n % 9) * 3 * 86400)
        rec = made.record
        rows += made.rows
        if rec.answered_at is not None and rec.ended_at is not None:
            agent = TAKERS[n % len(TAKERS)]
            queue = rec.queue or "calltakers"
            rows += [
                AgentRow(rec.answered_at - 3, queue, agent, "ringing", ""),
                AgentRow(rec.answered_at, queue, agent, "in_call", ""),
                AgentRow(rec.ended_at, queue, agent, "available", ""),
            ]
        if len(rows) > 20_000:
            db.insert((), time.time(), rows)
            rows = []
    for day in range(30):
        for n, agent in enumerate(TAKERS):
            at = NOV_1_JAKARTA + day * 86400 + n * 60
            rows += [
                AgentRow(at, "calltakers", agent, "available", ""),
                AgentRow(at + 4 * 3600, "calltakers", agent, "paused", "istirahat"),
                AgentRow(at + 4.5 * 3600, "calltakers", agent, "available", ""),
            ]
    db.insert((), time.time(), rows)
    db.close()


def timed(fn: Callable[[], Any], rounds: int) -> float:
    fn()  # warm-up: imports, page cache
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def floor(reader: Reader) -> int:
    page = store_query.Page(
        store_query.CallQuery(store_query.local_days(FIRST, LAST, JAKARTA)), 2000, None
    )
    return sum(len([json.loads(d) for d, _, _ in rows]) for rows in reader.pages(page))


def _reached_one_start(rates: np.ndarray, within: float) -> np.ndarray:
    """The plain form: one uniformisation per start position."""
    out = []
    for j in range(1, len(rates) + 1):
        chain = rates[:j][::-1]
        top = float(chain.max())
        mean = top * within
        steps = int(mean + 12 * math.sqrt(mean) + 30)
        at = np.zeros(j + 1)
        at[0] = 1.0
        poisson, done = math.exp(-mean), 0.0
        for step in range(steps + 1):
            if step:
                poisson *= mean / step
                move = chain / top
                nxt = np.zeros(j + 1)
                nxt[1:] += at[:-1] * move
                nxt[:-1] += at[:-1] * (1 - move)
                nxt[-1] += at[-1]
                at = nxt
            done += poisson * at[-1]
        out.append(min(1.0, done))
    return np.asarray(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "outbox.sqlite3"
        t = time.perf_counter()
        build(path, args.calls, args.seed)
        print(f"store: {args.calls:,} calls written in {time.perf_counter() - t:.1f} s")
        target = Target(str(path))

        def doc() -> dict[str, Any]:
            with open_reader(target) as reader:
                return report.build(reader, FIRST, LAST, JAKARTA, now=NOW)

        def as_json() -> bytes:
            return json.dumps(doc(), allow_nan=False).encode()

        def as_html() -> str:
            return report_html.html(doc(), "id", service="112")

        with open_reader(target) as reader:
            counted = floor(reader)
        assert counted == args.calls, (counted, args.calls)
        reader = open_reader(target)
        base = timed(lambda: floor(reader), args.rounds)
        reader.close()
        t_json = timed(as_json, args.rounds)
        t_html = timed(as_html, args.rounds)
        page = as_html()
        t_pdf = timed(lambda: report_html.pdf(page), 1)

        figures = CallFigures(FIRST, LAST, JAKARTA, ())
        with open_reader(target) as reader:
            period = store_query.local_days(FIRST, LAST, JAKARTA)
            for row in reader.report_rows(period):
                figures.add(row)
            times = report_staff.member_times(reader.member_changes(period), period)
        t_staff = timed(lambda: report_staff.staffing_json(figures, times, period, JAKARTA), 1)
        with mock.patch.object(staffing, "_reached_within", _reached_one_start):
            t_plain = timed(lambda: report_staff.staffing_json(figures, times, period, JAKARTA), 1)

        config = Path(tmp) / "pbxbridge.toml"
        config.write_text(
            f'[ami]\nsecret = "x"\n[outbox]\npath = "{path}"\n[pbx]\ntimezone = "Asia/Jakarta"\n'
        )
        t = time.perf_counter()
        cli = subprocess.run(
            [
                *(sys.executable, "-m", "pbxbridge.cli", "report", "--config", str(config)),
                *("--from", "2026-11-01", "--to", "2026-11-30", "-o", str(Path(tmp) / "r.html")),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        t_cli = time.perf_counter() - t
        if cli.returncode:
            print(cli.stderr)

    rows = [
        Verdict("floor: read and parse the month's calls", f"{base:.2f} s", "reported", None),
        Verdict(
            "report to JSON", f"{t_json:.2f} s ({t_json / base:.1f}x floor)", "< 2 s", t_json < 2
        ),
        Verdict(
            "report to HTML (charts)",
            f"{t_html:.2f} s ({t_html / base:.1f}x floor)",
            "< 5 s",
            t_html < 5,
        ),
        Verdict("HTML page to PDF (WeasyPrint)", f"{t_pdf:.2f} s", "reported", None),
        Verdict(
            "pbxbridge report, cold start to file",
            f"{t_cli:.2f} s",
            "reported",
            cli.returncode == 0,
        ),
        Verdict(
            "staffing: Erlang A in one pass vs per start",
            f"{t_staff:.2f} s vs {t_plain:.2f} s ({t_plain / t_staff:.0f}x)",
            ">= 3x (else drop it)",
            t_plain / t_staff >= 3,
        ),
    ]
    print_table(rows)
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
