"""The demo: the lab Asterisk, pbxbridge, a handful of emergency calls, and what it saw.

make demo        (as root; builds the lab on first use, about a minute)
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from tests.lab import confs
from tests.lab.amilink import AmiLink
from tests.lab.asterisk import Lab, LabError
from tests.lab.calls import SCENARIOS, CallGenerator, press_callback_key, wait_idle
from tests.support.daemon import Daemon, write_config

DEMO_DIR = Path("/var/tmp/pbxbridge-demo")


def say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def _fmt(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def print_records(records: list[dict[str, Any]]) -> None:
    cols = [
        ("call_id", 22),
        ("outcome", 11),
        ("abandon_stage", 13),
        ("queue", 10),
        ("agent", 10),
        ("answer_seconds", 8),
        ("wait_seconds", 8),
        ("talk_seconds", 8),
        ("ring_no_answer", 4),
        ("category", 9),
        ("dispatch", 8),
        ("caller_number", 13),
    ]
    heads = [
        "call",
        "outcome",
        "stage",
        "queue",
        "agent",
        "answer",
        "wait",
        "talk",
        "rna",
        "category",
        "dispatch",
        "caller",
    ]
    print("  ".join(h.ljust(w) for h, (_, w) in zip(heads, cols, strict=True)))
    for rec in sorted(records, key=lambda r: str(r.get("offered_at"))):
        row = {**rec, "dispatch": ",".join(d["agency"] for d in rec.get("dispatched_to", []))}
        print("  ".join(_fmt(row.get(k)).ljust(w)[:w] for k, w in cols))


def print_summary(records: list[dict[str, Any]]) -> None:
    answered = [r for r in records if r["outcome"] == "answered"]
    times = [r["answer_seconds"] for r in answered if r["answer_seconds"] is not None]
    print()
    print(f"emergency calls offered: {len(records)}")
    for outcome in ("answered", "abandoned", "unanswered", "interrupted"):
        n = sum(1 for r in records if r["outcome"] == outcome)
        stages = ""
        if outcome == "abandoned" and n:
            by = {
                s: sum(1 for r in records if r["abandon_stage"] == s)
                for s in ("before_queue", "queue", "ringing")
            }
            stages = "  (" + ", ".join(f"{k} {v}" for k, v in by.items()) + ")"
        print(f"  {outcome:<12} {n}{stages}")
    if times:
        for limit in (10, 15, 20):
            share = sum(1 for t in times if t <= limit) / len(records)
            print(f"  answered within {limit:>2} s of arrival: {share:.0%} of offered calls")


class Receiver:
    """The demo's dispatch backend: a real aiohttp server on loopback keeping incidents."""

    def __init__(self) -> None:
        self.incidents: list[dict[str, Any]] = []
        self.keys: set[str] = set()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/incidents", self._post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/incidents"

    async def _post(self, request: web.Request) -> web.Response:
        doc = await request.json()
        key = request.headers.get("Idempotency-Key", "")
        if key not in self.keys:  # what a backend does with a redelivery
            self.keys.add(key)
            self.incidents.append(doc)
        return web.Response(status=204)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def place_calls(lab: Lab, api: str) -> int:
    s = lab.settings
    driver = AmiLink("127.0.0.1", s.ami_port, confs.DRIVER_USER, s.driver_secret, events="off")
    await driver.connect()
    gen = CallGenerator(driver)
    names = list(SCENARIOS)
    say(f"placing {len(names)} demo calls, one per scenario, 3 at a time:")
    slots = asyncio.Semaphore(3)

    async def one(name: str) -> None:
        async with slots:
            call = await gen.place(SCENARIOS[name])
            say(f"  call {call.linkedid:<22} {name}")
            await asyncio.sleep(call.scenario.duration)

    async with asyncio.TaskGroup() as tg:
        for name in names:
            tg.create_task(one(name))
            await asyncio.sleep(0.3)
    say("waiting for the last calls to end")
    await wait_idle(driver, within=90)
    say("a call taker presses *112: connected to the oldest abandoned caller")
    await driver.action("Setvar", Variable="PBXBRIDGE_API", Value=api)
    await press_callback_key(driver, "1001")
    await asyncio.sleep(4)
    await wait_idle(driver, within=30)
    await driver.close()
    return len(names)


def print_incidents(incidents: list[dict[str, Any]]) -> None:
    counts: dict[str, int] = {}
    for doc in incidents:
        counts[doc["type"]] = counts.get(doc["type"], 0) + 1
    print("incidents received by the local dispatch backend (deduplicated on Idempotency-Key):")
    for type_, n in sorted(counts.items()):
        print(f"  {type_:<14} {n}")
    dispatched = [
        (d["call"]["call_id"], [x["agency"] for x in d["call"]["dispatched_to"]])
        for d in incidents
        if d["type"] == "call.ended" and d["call"]["dispatched_to"]
    ]
    for call_id, agencies in dispatched:
        print(f"  {call_id} dispatched to {', '.join(agencies)}")
    callbacks = [d["call"]["callback"] for d in incidents if "callback" in d["call"]]
    for cb in callbacks:
        print(f"  callback for {cb['call_id']}: {cb.get('result') or 'attempted'}")


def print_metrics(text: str) -> None:
    wanted = (
        "pbxbridge_calls_offered_total",
        "pbxbridge_calls_answered_total",
        "pbxbridge_calls_abandoned_total",
        "pbxbridge_calls_unanswered_total",
        'pbxbridge_answer_time_seconds_bucket{le="15.0"',
        'pbxbridge_answer_time_seconds_bucket{le="20.0"',
        "pbxbridge_answer_time_seconds_count",
        "pbxbridge_calls_classified_total",
        "pbxbridge_calls_dispatched_total",
        "pbxbridge_callbacks_total",
        "pbxbridge_callbacks_pending",
        "pbxbridge_incidents_delivered_total",
        "pbxbridge_outbox_pending",
    )
    print("from /metrics (non-zero series):")
    for line in text.splitlines():
        if line.startswith(wanted) and not line.endswith(" 0.0"):
            print(f"  {line}")


async def _with_receiver(lab: Lab, tmp: Path) -> tuple[Daemon, list[dict[str, Any]], str]:
    receiver = Receiver()
    await receiver.start()
    say(f"local dispatch backend listening on {receiver.url}")
    try:
        # The center's days in reports and exports: Semarang's (WIB, UTC+7).
        config = write_config(
            lab, tmp, backend={"url": receiver.url}, pbx={"timezone": "Asia/Jakarta"}
        )
        http_base = "http://" + tomllib.loads(config.read_text())["metrics"]["listen"]
        say(f"starting pbxbridge: pbxbridge run --config {config}")
        daemon = Daemon(config).start()
        await asyncio.to_thread(daemon.wait_for, lambda x: x.get("event") == "ami_session_up")
        say("pbxbridge is connected to Asterisk")
        await place_calls(lab, lab.api_address)
        await asyncio.sleep(2)  # the last incidents reach the backend
        metrics = await asyncio.to_thread(_get, f"{http_base}/metrics")
        daemon.stop()
        return daemon, receiver.incidents, metrics
    finally:
        await receiver.stop()


def print_export(config: Path) -> None:
    """The call store, read with the daemon stopped, as a manager would export it."""
    command = [".venv/bin/pbxbridge", "calls", "export", "--config", str(config)]
    say(f"the call store, exported as CSV in the center's local time: {' '.join(command)}")
    out = subprocess.run(
        [sys.executable, "-m", "pbxbridge.cli", *command[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    sys.stdout.write(out.stdout or out.stderr)
    say(f"history: .venv/bin/pbxbridge calls list --config {config}")


def write_reports(config: Path) -> None:
    """The service report of the demo's day, as the manager would hand it on."""
    today = datetime.now(ZoneInfo("Asia/Jakarta")).date().isoformat()
    for lang, fmt in (("id", "html"), ("en", "html"), ("id", "pdf"), ("en", "json")):
        out = DEMO_DIR / f"report-{today}-{lang}.{fmt}"
        command = [
            *("report", "--config", str(config), "--from", today, "--to", today),
            *("--lang", lang, "--format", fmt, "-o", str(out)),
        ]
        done = subprocess.run(
            [sys.executable, "-m", "pbxbridge.cli", *command],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode:
            say(f"report FAILED: {done.stderr.strip()}")
            continue
        say(f"report ({lang}, {fmt}): {out}")
    say(f"made with: .venv/bin/pbxbridge report --config {config} --from {today} --to {today}")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def main() -> int:
    started = time.monotonic()
    lab = Lab(say=lambda m: say(f"lab: {m}"))
    try:
        lab.start()
    except LabError as exc:
        say(f"FAILED: {exc}")
        return 1
    daemon: Daemon | None = None
    try:
        # Kept after the demo: its call store can be read (pbxbridge calls ...) and
        # reported on. Each run starts afresh.
        shutil.rmtree(DEMO_DIR, ignore_errors=True)
        DEMO_DIR.mkdir(parents=True)
        result = asyncio.run(_with_receiver(lab, DEMO_DIR))
        daemon, incidents, metrics = result
        records = [line for line in daemon.lines if line.get("event") == "call_ended"]
        print()
        say("what pbxbridge saw (one record per emergency call; internal calls ignored):")
        print()
        print_records(records)
        print_summary(records)
        print()
        print_incidents(incidents)
        print()
        print_metrics(metrics)
        print()
        print_export(DEMO_DIR / "pbxbridge.toml")
        print()
        write_reports(DEMO_DIR / "pbxbridge.toml")
        print()
        say(f"done in {time.monotonic() - started:.0f} s")
        return 0
    except (TimeoutError, OSError) as exc:
        say(f"FAILED: {exc}")
        if daemon is not None:
            sys.stdout.writelines(daemon.raw[-20:])
        return 1
    finally:
        if daemon is not None:
            daemon.stop()
        lab.stop()


if __name__ == "__main__":
    sys.exit(main())
