"""The call store against the real Asterisk: call takers' sessions from app_queue's own
events, and every call of a lab mix kept exactly as delivered (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pbxbridge import config as cfg
from tests.lab import confs
from tests.lab.amilink import AmiLink, split_raw
from tests.lab.asterisk import Lab
from tests.lab.calls import SCENARIOS, CallGenerator, lab_links, wait_idle
from tests.lab.record import member_sessions
from tests.support.backend import Backend, free_port, serve
from tests.support.daemon import Daemon, write_config

pytestmark = pytest.mark.asterisk

TOKEN = "lab-store-token-0123456789"


def api_get(config: Path, path: str) -> bytes:
    listen = cfg.load(config).metrics.listen
    request = urllib.request.Request(
        f"http://{listen}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return bytes(response.read())


async def test_a_call_takers_log_in_pause_and_log_out_are_kept(lab: Lab, tmp_path: Path) -> None:
    """QueueAdd, QueuePause (with a reason), unpause, QueueRemove through AMI, as a
    supervisor's panel or a phone's feature code would (tests/lab/record.py): the store
    holds each state with Asterisk's times, and the pause's reason."""
    config = write_config(lab, tmp_path, pbx={"timezone": "Asia/Jakarta"}, api={"token": TOKEN})
    daemon = Daemon(config).start()
    driver, recorder = await lab_links(lab.settings)
    try:
        await asyncio.to_thread(daemon.wait_for, lambda x: x.get("event") == "ami_session_up")
        name = "Taker 1099"
        await member_sessions(driver)
        await asyncio.sleep(0.5)
        raw = bytes(recorder.raw)
    finally:
        daemon.stop()
        await driver.close()
        await recorder.close()
    # What Asterisk itself said (the pbxbridge user's event mask, recorded separately).
    events = [m for m in split_raw(raw) if m.get("MemberName") == name]
    kinds = [m.get("Event") for m in events]
    assert kinds[0] == "QueueMemberAdded" and "QueueMemberRemoved" in kinds
    pauses = [m for m in events if m.get("Event") == "QueueMemberPause"]
    assert [p.get("Paused") for p in pauses] == ["1", "0"]
    assert pauses[0].get("PausedReason") == "istirahat"
    # A pause is QueueMemberPause only: no QueueMemberStatus says Paused: 1.
    assert not [
        m for m in events if m.get("Event") == "QueueMemberStatus" and m.get("Paused") == "1"
    ]

    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "pbxbridge.cli", "calls", "list", "--config", str(config)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr  # the store is readable with the daemon stopped

    added = float(events[0]["Timestamp"])
    removed = float(next(m for m in events if m.get("Event") == "QueueMemberRemoved")["Timestamp"])
    daemon = Daemon(config).start()  # /v1/agents is served by the daemon
    try:
        await asyncio.to_thread(daemon.wait_for, lambda x: x.get("event") == "http_listening")
        body = json.loads(api_get(config, "/v1/agents?from=2020-01-01&to=2020-03-01"))
        assert body["sessions"] == []
        day = datetime.fromtimestamp(added, ZoneInfo("Asia/Jakarta")).date().isoformat()
        body = json.loads(api_get(config, f"/v1/agents?from={day}&to={day}"))
    finally:
        daemon.stop()
    mine = [s for s in body["sessions"] if s["agent"] == name]
    assert [(s["queue"], s["state"], s["reason"]) for s in mine] == [
        # A Local channel's device state is "unknown": app_queue would ring it.
        ("backup", "available", None),
        ("backup", "paused", "istirahat"),
        ("backup", "available", None),
    ]
    total = sum(s["seconds"] for s in mine)
    assert abs(total - (removed - added)) < 1e-3


async def test_every_call_of_a_lab_mix_is_kept_as_delivered(
    lab: Lab, tmp_path: Path, postgres_url: str
) -> None:
    """A mix covering every scenario: the local store and the regional PostgreSQL store
    hold exactly the calls delivered to the backend, each as its last delivered event."""
    port = free_port()
    backend = Backend()
    config = write_config(
        lab,
        tmp_path,
        backend={"url": f"http://127.0.0.1:{port}/incidents"},
        store={"url": postgres_url},
    )
    async with serve(backend, port):
        daemon = Daemon(config).start()
        try:
            await asyncio.to_thread(daemon.wait_for, lambda x: x.get("event") == "ami_session_up")
            link = AmiLink(
                "127.0.0.1", lab.settings.ami_port, confs.DRIVER_USER,
                lab.settings.driver_secret, events="off",
            )  # fmt: skip
            await link.connect()
            placed = await CallGenerator(link).mix(len(SCENARIOS), concurrency=3)
            assert {c.scenario.name for c in placed} == set(SCENARIOS)
            await wait_idle(link, within=90)
            await link.close()
            emergency = {f"lab:{c.linkedid}" for c in placed if c.scenario.emergency}
            await backend.wait_for(
                lambda: emergency <= {r.doc["call"]["call_id"] for r in backend.accepted()
                                      if r.doc["type"] == "call.ended"},
                within=30,
            )  # fmt: skip
            metrics = f"http://{cfg.load(config).metrics.listen}/metrics"

            def waiting() -> float:
                with urllib.request.urlopen(metrics, timeout=5) as response:
                    for line in response.read().decode().splitlines():
                        if line.startswith("pbxbridge_store_regional_waiting_rows "):
                            return float(line.split()[1])
                return -1.0

            for _ in range(100):
                if await asyncio.to_thread(waiting) == 0:
                    break
                await asyncio.sleep(0.1)
            assert await asyncio.to_thread(waiting) == 0
        finally:
            daemon.stop()
    last: dict[str, dict[str, object]] = {}
    for r in backend.accepted():  # in delivery order, which is each call's event order
        last[r.doc["call"]["call_id"]] = r.doc["call"]
    assert set(last) == emergency

    def export(*extra: str) -> dict[str, dict[str, object]]:
        out = subprocess.run(
            [sys.executable, "-m", "pbxbridge.cli", "calls", "export", "--format", "json",
             "--config", str(config), *extra],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        docs = [json.loads(line) for line in out.stdout.splitlines()]
        return {str(d["call_id"]): d for d in docs}

    assert export() == last  # the regional store ([store] url is set)
    local = tmp_path / "local.toml"
    local.write_text(config.read_text().replace(f'url = "{postgres_url}"', ""))
    assert 'url = "postgresql' not in local.read_text()
    local_docs = export("--config", str(local))
    assert local_docs == last

    # The report of the lab's day, from either store, against the delivered calls.
    zone = cfg.load(config).pbx.zone
    days = sorted(
        {
            datetime.fromisoformat(str(c["offered_at"])).astimezone(zone).date()
            for c in last.values()
        }
    )

    def report(conf: Path) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "-m", "pbxbridge.cli", "report", "--format", "json",
             "--config", str(conf), "--from", str(days[0]), "--to", str(days[-1])],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        doc: dict[str, Any] = json.loads(out.stdout)
        return doc

    regional, embedded = report(config), report(local)
    # The calls' figures are the same from either store. (The rows written as the daemon
    # stopped, its AMI session's end among them, reach PostgreSQL at its next start.)
    for key in ("headline", "days", "heatmap", "answer_distribution", "abandon_distribution"):
        assert regional[key] == embedded[key], key
    for key in ("classification", "dispatch", "callbacks"):
        assert regional[key] == embedded[key], key
    calls = list(last.values())
    head = embedded["headline"]
    assert head["offered"] == len(calls)
    for outcome in ("answered", "abandoned", "unanswered", "interrupted"):
        assert head[outcome] == sum(c["outcome"] == outcome for c in calls), outcome
    for stage in ("before_queue", "queue", "ringing"):
        assert head["abandoned_by_stage"][stage] == sum(c["abandon_stage"] == stage for c in calls)
    answers = sorted(
        float(str(c["answer_seconds"])) for c in calls if c["answer_seconds"] is not None
    )
    assert head["within"]["15"]["calls"] == sum(a <= 15 for a in answers)
    assert head["answer_seconds"]["median"] == answers[(len(answers) + 1) // 2 - 1]
    taken = {
        (r["queue"], r["agent"]): r["answered"] for r in embedded["call_takers"] if r["answered"]
    }
    want: dict[tuple[object, object], int] = {}
    for c in calls:
        if c["outcome"] == "answered":
            want[(c["queue"], c["agent"])] = want.get((c["queue"], c["agent"]), 0) + 1
    assert taken == want
    # The lab's call takers were logged in while the calls rang them.
    assert all(r["logged_in_seconds"] > 0 for r in embedded["call_takers"] if r["answered"])
    assert embedded["data_quality"]["ami_sessions"] >= 1
