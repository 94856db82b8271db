"""pbxbridge's HTTP face against the real Asterisk lab: metrics equal the call records,
and /ready follows Asterisk going away and coming back."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pbxbridge import tracker as tr
from tests.lab import confs
from tests.lab.amilink import AmiLink
from tests.lab.asterisk import Lab
from tests.lab.calls import CallGenerator, wait_idle
from tests.support.daemon import Daemon, write_config

pytestmark = pytest.mark.asterisk

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(base: str) -> tuple[str, Samples]:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    found = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, found


async def ready(base: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/ready") as resp:
        return resp.status, await resp.json()


async def health(base: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/health") as resp:
        return resp.status


async def wait_ready(base: str, want: int, within: float) -> tuple[float, dict[str, Any]]:
    """Seconds until /ready answers ``want``, and that answer's body."""
    start = time.monotonic()
    while True:
        try:
            status, body = await ready(base)
        except aiohttp.ClientConnectionError:
            status, body = -1, {}
        if status == want:
            return time.monotonic() - start, body
        if time.monotonic() - start > within:
            raise TimeoutError(f"/ready still {status} {body} after {within} s")
        await asyncio.sleep(0.1)


def total(found: Samples, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and want <= ls)


def durations(records: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in records if r[key] is not None]


async def test_metrics_after_a_call_mix_equal_the_call_records(lab: Lab, tmp_path: Path) -> None:
    """After a 12-call mix, every counter and histogram count equals the call_ended records
    (sums within rounding), nothing is in progress, and no caller number is on the page."""
    config = write_config(lab, tmp_path)
    daemon = Daemon(config).start()
    base = f"http://{_listen(config)}"
    try:
        daemon.wait_for(lambda line: line.get("event") == "http_listening")
        await wait_ready(base, 200, within=15)
        s = lab.settings
        driver = AmiLink("127.0.0.1", s.ami_port, confs.DRIVER_USER, s.driver_secret, events="off")
        await driver.connect()
        try:
            placed = await CallGenerator(driver).mix(12, concurrency=3)
            await wait_idle(driver, within=90)
        finally:
            await driver.close()
        emergency = [c for c in placed if c.scenario.emergency]
        await asyncio.to_thread(_wait_records, daemon, len(emergency), 10.0)
        text, found = await scrape(base)
        (tmp_path / "metrics.txt").write_text(text)  # kept by pytest for post-mortems
    finally:
        daemon.stop()

    records = daemon.events("call_ended")
    assert len(records) == len(emergency) > 0
    outcomes = Counter(r["outcome"] for r in records)
    assert total(found, "pbxbridge_calls_offered_total", service="112") == len(records)
    assert total(found, "pbxbridge_calls_answered_total") == outcomes["answered"]
    assert total(found, "pbxbridge_calls_unanswered_total") == outcomes["unanswered"]
    assert total(found, "pbxbridge_calls_interrupted_total") == outcomes["interrupted"] == 0
    for stage in tr.ABANDON_STAGES:
        n = sum(r["abandon_stage"] == stage for r in records)
        assert total(found, "pbxbridge_calls_abandoned_total", stage=stage) == n, stage
    for queue, n in Counter(r["queue"] for r in records if r["outcome"] == "answered").items():
        assert total(found, "pbxbridge_calls_answered_total", queue=queue) == n, queue
    assert total(found, "pbxbridge_agent_ring_no_answer_total") == sum(
        r["ring_no_answer"] for r in records
    )
    abandoned = [r for r in records if r["outcome"] == "abandoned"]
    abandon_seconds = [(_seconds(r["ended_at"]) - _seconds(r["offered_at"])) for r in abandoned]
    histograms = {
        "pbxbridge_answer_time_seconds": durations(records, "answer_seconds"),
        "pbxbridge_queue_wait_seconds": durations(records, "wait_seconds"),
        "pbxbridge_talk_time_seconds": durations(records, "talk_seconds"),
        "pbxbridge_abandon_time_seconds": abandon_seconds,
    }
    for name, values in histograms.items():
        assert total(found, f"{name}_count") == len(values), name
        assert total(found, f"{name}_sum") == pytest.approx(sum(values), abs=1e-3), name
    answers = durations(records, "answer_seconds")
    for le in ("5.0", "10.0", "15.0", "20.0"):
        n = sum(a <= float(le) for a in answers)
        assert total(found, "pbxbridge_answer_time_seconds_bucket", le=le) == n, le
    assert total(found, "pbxbridge_calls_in_progress") == 0
    assert total(found, "pbxbridge_oldest_waiting_call_seconds") == 0
    assert total(found, "pbxbridge_ami_up") == 1
    assert total(found, "pbxbridge_ami_events_total") > 0
    assert total(found, "pbxbridge_ami_event_lag_seconds_count") > 0
    assert total(found, "pbxbridge_pipeline_errors_total") == 0
    assert total(found, "pbxbridge_queue_members", queue="calltakers") == 4
    for call in placed:
        assert call.caller_number not in text
        assert call.linkedid not in text
    assert lab.settings.pbxbridge_secret not in text


async def test_ready_follows_asterisk_stopping_and_returning(lab: Lab, tmp_path: Path) -> None:
    """/ready turns 503 within 5 s of Asterisk stopping while /health stays 200, and is
    200 again once Asterisk is back."""
    config = write_config(lab, tmp_path)
    daemon = Daemon(config).start()
    base = f"http://{_listen(config)}"
    try:
        daemon.wait_for(lambda line: line.get("event") == "http_listening")
        await wait_ready(base, 200, within=15)
        stopping = time.monotonic()
        await asyncio.to_thread(lab.stop)
        await wait_ready(base, 503, within=10)
        went_down = time.monotonic() - stopping
        assert went_down < 5
        _, body = await ready(base)
        assert body["ready"] is False
        assert body["components"]["ami"]["ok"] is False
        assert body["components"]["ami"]["state"]
        assert await health(base) == 200
        _, found = await scrape(base)
        assert total(found, "pbxbridge_ami_up") == 0
        await asyncio.to_thread(lab.start)
        came_back, body = await wait_ready(base, 200, within=45)
        assert body["components"]["ami"] == {"ok": True, "state": "logged in", "degraded": False}
        _, found = await scrape(base)
        assert total(found, "pbxbridge_ami_up") == 1
        assert total(found, "pbxbridge_ami_reconnects_total") >= 1
        text = (await _text(base, "/ready")) + (await _text(base, "/health"))
        assert lab.settings.pbxbridge_secret not in text
    finally:
        daemon.stop()
        # The lab is shared by the session: leave it running.
        if lab.proc is None or lab.proc.poll() is not None:
            lab.start()
    print(f"/ready went 503 after {went_down:.2f} s; 200 again {came_back:.2f} s after start")


async def _text(base: str, path: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(base + path) as resp:
        return await resp.text()


def _wait_records(daemon: Daemon, count: int, within: float) -> None:
    """Until ``count`` call_ended lines are logged (the last hang-up may still be in flight)."""
    deadline = time.monotonic() + within
    while len(daemon.events("call_ended")) < count and time.monotonic() < deadline:
        time.sleep(0.1)


def _listen(config: Path) -> str:
    for line in config.read_text().splitlines():
        if line.startswith("listen = "):
            return line.split("=", 1)[1].strip().strip('"')
    raise AssertionError("no [metrics] listen in the config")


def _seconds(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()
