"""The live wallboard against its budgets, one table per run.

    .venv/bin/python -m tests.benchmarks.bench_wallboard [--seconds N] [--viewers 50]
        [--rounds 3] [--calls 4000] [--seed 0]

The event path is bench_pipeline's part 2 "live", reused by import: a replay server in a
child process streams the recorded lab calls (tests/benchmarks/streams, Events: on, each
Timestamp rewritten to "now" as it is sent) over loopback TCP into pbxbridge's real
AmiClient + Pipeline (Metrics sink, JSON logs to /dev/null). For the runs "with the
wallboard", a thin wrapper adds one more sink at the end, as pbxbridge/app.py does: a
:class:`wallboard_api.Streams` over a fresh :class:`Wallboard`, whose
``wallboard_api.routes(...)`` are served by a real aiohttp server on 127.0.0.1, port 0
(no access guard). The viewers (--viewers, default 50) are aiohttp client sessions, one
each, in a child process of their own at nice 10 (the wall's screens are other machines),
so that reading and parsing the streams does not land on the pipeline's core; each
reads ``GET /wallboard/events`` as a browser's EventSource does and parses every
snapshot's JSON. All viewers have their first snapshot before the replay server starts.

Per round (--rounds, default 3; round robin, each round starting one contender further
on, so a slow spell of the shared machine hits every contender):

1. capacity flat out: the whole stream (--calls calls, ~115 messages each) as fast as
   the socket takes it, events/s parsed and handled (bench_pipeline's figure): without
   the wallboard sink, with the sink and no viewer (reported, to tell the board's own
   cost from the streams'), and with the sink and the viewers. Budget: best with the
   viewers >= 90% of best without (the medians are printed beside). Reported beside:
   this process's CPU time per event over each live run (best of the rounds), which a
   busy neighbour on the shared machine disturbs less than the wall-clock rate.
2. event-to-viewer latency, paced at 10x a disaster day (16,667 events/s, --seconds,
   default 10) with the sink and the viewers: for every snapshot a viewer receives,
   receipt wall time - the snapshot's ``last_event_at`` (the Asterisk Timestamp of the
   newest event on the board: the replay server's clock at send, the same machine's
   clock). p50/p99/max over all viewers of all rounds; budget p99 < 1 s. Beside it
   (reported): the split at the snapshot's ``at`` (when the server began computing it:
   event-to-compute is the pipeline's lag plus the wait for a viewer's turn), and an
   upper bound for the oldest change a snapshot newly shows (receipt - the previous
   snapshot's ``last_event_at``, once the previous one showed a call and while the AMI
   session is up: every change it newly shows came after that event). Dropped viewers
   (the server's count, and streams a viewer saw end) must be 0.

Also reported: how many snapshots the server computed per second and the share of the
pipeline's core spent computing and encoding them (``Streams.message``, timed in place,
counted between the first and the last effect the sink got), and the cost of one
snapshot + JSON as today's ended calls grow (a board seeded with N ended calls: the board
recomputes over the whole day on every snapshot). --seed N puts N ended calls of today on
the board before each run (a restart's seed from the store), to see the budgets later in
a busy day; the default (0) starts each run empty.
Bounded: every run has a timeout, the viewer child stops itself after its limit; loopback
only. Exits 1 when a budget is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

from pbxbridge import ami_translate as at
from pbxbridge import wallboard_api
from pbxbridge.pipeline import Effect, Pipeline
from pbxbridge.wallboard import Ended, Wallboard, today_since
from tests.benchmarks import bench_pipeline as bp
from tests.benchmarks.verdicts import Row, print_table

ZONE = ZoneInfo("Asia/Jakarta")
RATE = 10 * bp.DISASTER_EVENTS_PER_S  # 10x a disaster day, as bench_pipeline's part 2
CAPACITY_SHARE = 0.90
LATENCY_P99 = 1.0
VIEWER_SLACK = 300.0  # the viewer child stops by itself this long after a run should end
SEED_SIZES = (1_000, 10_000, 100_000)


# -- the viewers (child process) ---------------------------------------------------------


async def watch(url: str, log: dict[str, Any], first: asyncio.Event) -> None:
    """One viewer: reads the stream as EventSource does, stamps each snapshot on receipt."""
    prev_last: float | None = None
    prev_showed_call = False
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url) as resp,
        ):
            log["status"] = resp.status
            if resp.status != 200:
                return
            buf = bytearray()
            async for chunk in resp.content.iter_any():
                now = time.time()
                log["bytes"] += len(chunk)
                buf += chunk
                while (end := buf.find(b"\n\n")) >= 0:
                    message = bytes(buf[:end])
                    del buf[: end + 2]
                    if not message.startswith(b"event: snapshot\n"):
                        log["pings"] += message.startswith(b"event: ping\n")
                        continue
                    doc = json.loads(message[message.index(b"data: ") + 6 :])
                    log["snapshots"] += 1
                    first.set()
                    last = doc["last_event_at"]
                    if last is None:
                        continue
                    log["span"] = [log["span"][0] if log["span"] else now, now]
                    log["latency"].append(now - last)
                    log["compute"].append(doc["at"] - last)
                    log["transfer"].append(now - doc["at"])
                    if prev_showed_call and doc["ami_up"] and prev_last is not None:
                        log["bound"].append(now - prev_last)
                    prev_last = last
                    prev_showed_call = bool(
                        doc["today"]["offered"] or doc["waiting"] or doc["talking"]
                    )
            log["ended"] = True  # the server ended the stream: a drop seen by the viewer
    except (aiohttp.ClientError, OSError) as exc:
        log["error"] = repr(exc)
    finally:
        first.set()


async def viewers(url: str, n: int, limit: float) -> None:
    logs: list[dict[str, Any]] = [
        {
            "status": None,
            "snapshots": 0,
            "pings": 0,
            "bytes": 0,
            "ended": False,
            "error": None,
            "latency": [],
            "compute": [],
            "transfer": [],
            "bound": [],
            "span": None,  # first and last receipt of a snapshot with an event
        }
        for _ in range(n)
    ]
    firsts = [asyncio.Event() for _ in range(n)]
    tasks = [asyncio.create_task(watch(url, log, f)) for log, f in zip(logs, firsts, strict=True)]
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(limit):
            for f in firsts:
                await f.wait()
            print("ready", flush=True)
            await stdin.readline()  # the parent's "stop" (or its end)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"viewers": logs, "cpu": time.process_time()}), flush=True)


def viewers_main(url: str, n: int, limit: float) -> None:
    # The wall's screens are other machines: on this one, the viewers yield the cores to
    # the pipeline and the replay server when they are short.
    os.nice(10)
    asyncio.run(viewers(url, n, limit))


# -- the server side (this process) ------------------------------------------------------


class Timed:
    """``Streams`` timed in place: when the pipeline fed it (the window of the run), each
    snapshot computed, each ``message`` call (compute + JSON, or the cached bytes)."""

    def __init__(self, streams: wallboard_api.Streams) -> None:
        self.first = self.last = 0.0  # the first and last Streams.apply
        self.computed: list[float] = []
        self.messages: list[tuple[float, float]] = []  # (at, seconds)
        self.largest = 0
        board, apply, message = streams.board, streams.apply, streams.message
        snapshot = board.snapshot

        def timed_apply(effects: Sequence[Effect]) -> None:
            self.last = time.perf_counter()
            self.first = self.first or self.last
            apply(effects)

        def timed_snapshot(now: float, queue: str | None = None) -> dict[str, Any]:
            self.computed.append(time.perf_counter())
            return snapshot(now, queue)

        def timed_message(queue: str | None) -> tuple[int, bytes]:
            t = time.perf_counter()
            out = message(queue)
            self.messages.append((t, time.perf_counter() - t))
            self.largest = max(self.largest, len(out[1]))
            return out

        streams.apply = timed_apply  # type: ignore[method-assign]
        board.snapshot = timed_snapshot  # type: ignore[method-assign]
        streams.message = timed_message  # type: ignore[method-assign]

    def window(self) -> dict[str, float]:
        """Snapshots computed per s and the core's share in ``message`` while events flowed."""
        span = self.last - self.first
        if span <= 0:
            return {"computed_per_s": 0.0, "message_share": 0.0}
        inside = sum(1 for t in self.computed if self.first <= t <= self.last)
        busy = sum(d for t, d in self.messages if self.first <= t <= self.last)
        return {"computed_per_s": inside / span, "message_share": busy / span}


@contextlib.contextmanager
def one_more_sink(sink: wallboard_api.Streams) -> Iterator[None]:
    """bench_pipeline.live_run builds its pipeline with ``new_pipeline()``: for the
    length of one run, that pipeline gets the wallboard as its last sink (as in app.py)."""
    original = bp.new_pipeline

    def with_board() -> tuple[Pipeline, at.Translator]:
        pipeline, translator = original()
        pipeline.sinks.append(sink)
        return pipeline, translator

    bp.new_pipeline = with_board
    try:
        yield
    finally:
        bp.new_pipeline = original


async def live_run(rate: float, seconds: float, calls: int) -> dict[str, Any]:
    """bench_pipeline's live run, and this process's CPU seconds per event received over
    it (its fixed costs, the replay child's start, the login, the drain, are the same with
    and without the wallboard)."""
    t = time.process_time()
    report = await bp.live_run(rate, seconds, calls, wanted=True)
    return report | {"cpu_per_event": (time.process_time() - t) / report["received"]}


async def board_run(
    rate: float, seconds: float, calls: int, n: int, seed: int = 0
) -> dict[str, Any]:
    """One live run with the wallboard sink, its server, and ``n`` viewers (0: none);
    ``seed`` ended calls of today on the board before it starts."""
    board = Wallboard(ZONE)
    board.seed(earlier_today(seed, time.time()), ())
    streams = wallboard_api.Streams(board)
    timed = Timed(streams)
    app = web.Application()
    app.add_routes(wallboard_api.routes(streams, "en"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, shutdown_timeout=1.0)
    await site.start()
    port = runner.addresses[0][1]
    child = None
    logs: list[dict[str, Any]] = []
    try:
        if n:
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.benchmarks.bench_wallboard",
                "--viewers-child",
                f"http://127.0.0.1:{port}/wallboard/events",
                str(n),
                str(seconds + VIEWER_SLACK),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            assert child.stdin is not None
            assert child.stdout is not None
            async with asyncio.timeout(60):
                line = await child.stdout.readline()
            assert line == b"ready\n", line
            assert streams.viewers == n, (streams.viewers, n)
        with one_more_sink(streams):
            report = await live_run(rate, seconds, calls)
        report |= timed.window() | {
            "dropped": streams.dropped,
            "open_at_end": streams.viewers,
            "largest": timed.largest,
        }
        if child is not None:
            assert child.stdin is not None
            assert child.stdout is not None
            child.stdin.write(b"stop\n")
            await child.stdin.drain()
            async with asyncio.timeout(60):
                out = await child.stdout.read()
                await child.wait()
            child_report = json.loads(out.splitlines()[-1])
            logs = child_report["viewers"]
            report["viewer_cpu"] = child_report["cpu"]
    finally:
        if child is not None and child.returncode is None:
            child.kill()
            await child.wait()
        await runner.cleanup()
    report["viewers"] = logs
    return report


# -- the snapshot's cost as the day grows ------------------------------------------------


def earlier_today(ended: int, now: float) -> Iterator[tuple[str, Ended]]:
    """``ended`` calls of today (within the last hour, as seed() reads them from the
    store): 1 in 7 abandoned, 1 in 3 dispatched."""
    start = max(today_since(ZONE, now), now - 3_600)
    for k in range(ended):
        yield (
            f"seed.{k}",
            Ended(
                start + (now - start) * k / ended,
                ("calltakers",),
                "answered" if k % 7 else "abandoned",
                None if k % 7 else "in_queue",
                float(k % 40),
                ("police",) if k % 3 == 0 else (),
            ),
        )


def snapshot_cost(ended: int) -> float:
    """Seconds for one snapshot + JSON of a board holding ``ended`` calls of today."""
    board = Wallboard(ZONE)
    board.seed(earlier_today(ended, time.time()), ())
    streams = wallboard_api.Streams(board)
    best = float("inf")
    for _ in range(5):
        board.version += 1
        t = time.perf_counter()
        streams.message(None)
        best = min(best, time.perf_counter() - t)
    return best


# -- the table ---------------------------------------------------------------------------


def pct(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(len(xs) * q))] if xs else float("nan")


def ms(x: float) -> str:
    return f"{x * 1000:,.0f} ms" if x >= 0.01 else f"{x * 1000:.1f} ms"


def pooled(runs: list[dict[str, Any]], key: str) -> list[float]:
    return sorted(x for r in runs for v in r["viewers"] for x in v[key])


def viewer_drops(r: dict[str, Any]) -> int:
    """Streams the server dropped or a viewer saw end or fail (before the stop)."""
    seen = sum(1 for v in r["viewers"] if v["ended"] or v["error"] or v["status"] != 200)
    return max(int(r["dropped"]), seen)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--viewers-child"]:
        viewers_main(argv[1], int(argv[2]), float(argv[3]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.bench_wallboard")
    parser.add_argument("--seconds", type=float, default=10.0, help="paced run length")
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=4_000, help="calls in the replayed stream")
    parser.add_argument(
        "--seed", type=int, default=0, help="ended calls of today on the board before each run"
    )
    args = parser.parse_args(argv)
    n = args.viewers
    if not 0 < n <= wallboard_api.MAX_VIEWERS:
        parser.error(f"--viewers: 1 to {wallboard_api.MAX_VIEWERS}")
    # The paced run must not run out of stream (~115 messages a call).
    calls = max(args.calls, int(RATE * args.seconds / 100) + 1)
    print(
        f"pbxbridge wallboard benchmark: {n} SSE viewers (child process), {calls} calls, "
        f"{args.rounds} rounds round robin; paced at {RATE:,.0f} events/s for {args.seconds:g} s"
        + (f"; {args.seed:,} ended calls of today seeded" if args.seed else "")
    )
    flat: dict[str, list[dict[str, Any]]] = {"without": [], "sink": [], "viewers": []}
    paced: list[dict[str, Any]] = []
    with bp.quiet_logs():
        contenders: list[tuple[list[dict[str, Any]], Callable[[], Coroutine[Any, Any, Any]]]] = [
            (flat["without"], lambda: live_run(0, args.seconds, calls)),
            (flat["sink"], lambda: board_run(0, args.seconds, calls, 0, args.seed)),
            (flat["viewers"], lambda: board_run(0, args.seconds, calls, n, args.seed)),
            (paced, lambda: board_run(RATE, args.seconds, calls, n, args.seed)),
        ]
        for k in range(args.rounds):
            # Round robin, and each round starts one further on: no contender always first.
            for results, run in contenders[k % 4 :] + contenders[: k % 4]:
                results.append(asyncio.run(run()))
            w, s, v, p = (flat["without"][-1], flat["sink"][-1], flat["viewers"][-1], paced[-1])
            lat = sorted(x for viewer in p["viewers"] for x in viewer["latency"])
            print(
                f"  round {k + 1}: flat out {w['handled_per_s']:,.0f} / "
                f"{s['handled_per_s']:,.0f} / {v['handled_per_s']:,.0f} events/s "
                f"(without / sink / sink + viewers; CPU {w['cpu_per_event'] * 1e6:.2f} / "
                f"{s['cpu_per_event'] * 1e6:.2f} / {v['cpu_per_event'] * 1e6:.2f} us/event; "
                f"{v['computed_per_s']:,.0f} snapshots/s "
                f"computed, {v['message_share']:.0%} of the core); paced: "
                f"{p['received']:,} of {p['sent']:,} events, viewer latency p50 "
                f"{ms(pct(lat, 0.5))} p99 {ms(pct(lat, 0.99))}, "
                f"{p['computed_per_s']:,.0f} snapshots/s computed "
                f"({p['message_share']:.0%} of the core), dropped {viewer_drops(p)}",
                flush=True,
            )
        costs = {size: snapshot_cost(size) for size in SEED_SIZES}

    rates = {k: [r["handled_per_s"] for r in runs] for k, runs in flat.items()}
    cpu = {k: min(r["cpu_per_event"] for r in runs) for k, runs in flat.items()}
    best = {k: max(v) for k, v in rates.items()}
    med = {k: statistics.median(v) for k, v in rates.items()}
    for name, runs in flat.items():
        assert all(r["received"] == r["sent"] for r in runs), (name, "events lost flat out")
    lat = pooled(paced, "latency")
    compute, transfer, bound = (pooled(paced, key) for key in ("compute", "transfer", "bound"))
    snapshots = [v["snapshots"] for r in paced for v in r["viewers"]]
    per_viewer = statistics.median(
        (len(v["latency"]) - 1) / (v["span"][1] - v["span"][0])
        for r in paced
        for v in r["viewers"]
        if v["span"] and v["span"][1] > v["span"][0]
    )
    dropped_paced = sum(viewer_drops(r) for r in paced)
    dropped_flat = sum(viewer_drops(r) for r in flat["viewers"])
    lost = sum(r["sent"] - r["received"] for r in paced)
    sent_rate = min(r["sent"] / r["seconds"] for r in paced)
    share = best["viewers"] / best["without"]
    mb = sum(v["bytes"] for r in paced for v in r["viewers"]) / 1e6
    paced_wall = sum(r["seconds"] for r in paced)
    largest = max(r["largest"] for r in paced)
    rows = [
        Row(
            "capacity flat out, without wallboard (best / median)",
            f"{best['without']:,.0f} / {med['without']:,.0f} events/s",
            "(reference)",
            None,
        ),
        Row(
            "capacity, Streams sink, no viewer / without",
            f"{best['sink'] / best['without']:.0%} (median {med['sink'] / med['without']:.0%})",
            "(reported)",
            None,
        ),
        Row(
            f"capacity, sink + {n} SSE viewers / without",
            f"{share:.0%} (median {med['viewers'] / med['without']:.0%}; "
            f"{best['viewers']:,.0f} events/s)",
            f">= {CAPACITY_SHARE:.0%}",
            share >= CAPACITY_SHARE,
        ),
        Row(
            "flat out, CPU per event here: without / sink / viewers",
            " / ".join(f"{cpu[k] * 1e6:.2f}" for k in ("without", "sink", "viewers"))
            + f" us (without / viewers = {cpu['without'] / cpu['viewers']:.0%})",
            "(reported)",
            None,
        ),
        Row(
            f"flat out, {n} viewers: snapshots computed / core",
            f"{statistics.median(r['computed_per_s'] for r in flat['viewers']):,.0f}/s, "
            f"{statistics.median(r['message_share'] for r in flat['viewers']):.0%} of the core, "
            f"dropped {dropped_flat}",
            "(reported)",
            None,
        ),
        Row(
            "10x: events handled with the viewers",
            f"{sent_rate:,.0f}/s, {lost} lost",
            f">= {RATE * 0.97:,.0f}/s, 0 lost",
            lost == 0 and sent_rate >= RATE * 0.97,
        ),
        Row(
            "10x: event-to-viewer p50 / p99 / max",
            f"{ms(pct(lat, 0.5))} / {ms(pct(lat, 0.99))} / {ms(lat[-1] if lat else float('nan'))}"
            f" ({len(lat):,} snapshots)",
            f"p99 < {LATENCY_P99:g} s",
            bool(lat) and pct(lat, 0.99) < LATENCY_P99,
        ),
        Row(
            "10x: of which event-to-compute / compute-to-receipt p99",
            f"{ms(pct(compute, 0.99))} / {ms(pct(transfer, 0.99))}",
            "(reported)",
            None,
        ),
        Row(
            "10x: oldest newly shown change, bound p50 / p99",
            f"{ms(pct(bound, 0.5))} / {ms(pct(bound, 0.99))}",
            "(reported)",
            None,
        ),
        Row(
            "10x: snapshots per viewer per s / server computed",
            f"{per_viewer:.1f} / "
            f"{statistics.median(r['computed_per_s'] for r in paced):,.0f}/s "
            f"({statistics.median(r['message_share'] for r in paced):.0%} of the core; "
            f"{mb / paced_wall:.1f} MB/s out, largest {largest:,} B)",
            "(reported)",
            None,
        ),
        Row(
            "10x: dropped viewers",
            str(dropped_paced),
            "0",
            dropped_paced == 0 and all(snapshots),
        ),
        Row(
            "one snapshot + JSON, today's ended calls: " + " / ".join(f"{s:,}" for s in costs),
            " / ".join(ms(c) for c in costs.values()),
            "(reported)",
            None,
        ),
    ]
    print_table(rows)
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
