"""The demo: the lab Asterisk, pbxbridge, a handful of emergency calls, and what it saw.

make demo        (as root; builds the lab on first use, about a minute)
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.lab import confs
from tests.lab.amilink import AmiLink
from tests.lab.asterisk import Lab, LabError
from tests.lab.calls import SCENARIOS, CallGenerator, wait_idle
from tests.support.daemon import Daemon, write_config


def say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def _fmt(value: Any) -> str:
    if value is None:
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
        "caller",
    ]
    print("  ".join(h.ljust(w) for h, (_, w) in zip(heads, cols, strict=True)))
    for rec in sorted(records, key=lambda r: str(r.get("offered_at"))):
        print("  ".join(_fmt(rec.get(k)).ljust(w)[:w] for k, w in cols))


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


async def place_calls(lab: Lab) -> int:
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
    await driver.close()
    return len(names)


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
        with tempfile.TemporaryDirectory(prefix="pbxbridge-demo-") as tmp:
            config = write_config(lab, Path(tmp))
            say(f"starting pbxbridge: pbxbridge run --config {config}")
            daemon = Daemon(config).start()
            daemon.wait_for(lambda line: line.get("event") == "ami_session_up")
            say("pbxbridge is connected to Asterisk")
            asyncio.run(place_calls(lab))
            time.sleep(0.5)
            daemon.stop()
            records = [line for line in daemon.lines if line.get("event") == "call_ended"]
            print()
            say("what pbxbridge saw (one record per emergency call; internal calls ignored):")
            print()
            print_records(records)
            print_summary(records)
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
