"""pbxbridge killed with -9 while calls go on: after the restart every call ends as it
really did, decided from what Asterisk has now, never from what the outbox last said."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pbxbridge import local_api
from pbxbridge.incidents import parse_rfc3339
from tests.lab.amilink import split_raw
from tests.lab.asterisk import Lab, free_port
from tests.lab.calls import CallGenerator, PlacedCall, Scenario, lab_links, wait_idle
from tests.support.backend import Backend, Received, serve
from tests.support.daemon import Daemon, write_config

pytestmark = pytest.mark.asterisk

KILL_AT, RESTART_AT = 2.0, 6.0  # seconds after the calls are placed

# Each call's lab variables put it where the test needs it at the kill, during the gap
# and after the restart (see confs.extensions_conf for what the variables do).
GAP_SCENARIOS = {
    # rings 3.5 s, answered ~4 s (during the gap), talks until well after the restart
    "answered_in_gap": Scenario(
        "answered_in_gap", {"GREETING": "0.5", "RINGS": "3.5", "TALK": "14"}, "answered"
    ),
    # nobody eligible in the first queue for 10 s, then answered in the backup queue
    "waiting_through_gap": Scenario(
        "waiting_through_gap",
        {"GREETING": "0.5", "HOLD": "1", "QTIMEOUT": "10", "RINGS": "0.5", "TALK": "2"},
        "answered",
        queue="backup",
    ),
    # one backup call taker's phone rings (15 s ring timeout) from ~1.5 s; the caller
    # gives up at 10 s, while it still rings
    "ringing_through_gap": Scenario(
        "ringing_through_gap",
        {"GREETING": "0.5", "HOLD": "1", "QTIMEOUT": "1", "RINGS": "30", "PATIENCE": "10"},
        "abandoned",
        stage="ringing",
    ),
    # waits with no phone free and hangs up at 4 s, while nobody watches
    "gone_in_gap": Scenario(
        "gone_in_gap",
        {"GREETING": "0.5", "HOLD": "1", "QTIMEOUT": "30", "PATIENCE": "4"},
        "interrupted",
    ),
}


def timeline(raw: bytes) -> dict[str, list[tuple[float, str]]]:
    """Linkedid -> (Asterisk Timestamp, event name) of what really happened, raw AMI."""
    seen: dict[str, list[tuple[float, str]]] = {}
    for msg in split_raw(raw):
        event, linkedid = msg.get("Event", ""), msg.get("Linkedid", "")
        if linkedid and "Timestamp" in msg and event:
            seen.setdefault(linkedid, []).append((float(msg["Timestamp"]), event))
    return seen


def first(events: list[tuple[float, str]], name: str) -> float:
    return next(t for t, e in events if e == name)


def local_callbacks(lab: Lab) -> Any:
    """The callback list as the call takers' AGI script reads it (the local socket)."""
    status, body = local_api.request(f"unix:{lab.api_socket}", "GET", "/v1/callbacks", timeout=5)
    assert status == 200, body
    return json.loads(body)


async def metric(base: str, name: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(base + "/metrics") as resp:
        text = await resp.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


async def test_restart_decides_every_open_call_from_asterisks_present(
    lab: Lab, tmp_path: Path
) -> None:
    """Killed with -9 and restarted while four calls go on: the call answered during the
    gap ends answered (answer time estimated at the snapshot, never before the real
    answer), the one waiting through the gap and answered after has Asterisk's exact
    answer time, the one ringing through the gap and abandoned after is abandoned while
    ringing, and the one gone during the gap ends interrupted, logged, counted and owed
    a callback."""
    driver, recorder = await lab_links(lab.settings)
    backend = Backend()
    listen = f"127.0.0.1:{free_port()}"
    async with serve(backend) as url:
        config = write_config(lab, tmp_path, backend={"url": url}, metrics={"listen": listen})
        first_run, second_run = Daemon(config).start(), Daemon(config)
        try:
            await asyncio.to_thread(
                first_run.wait_for, lambda x: x.get("event") == "ami_session_up"
            )
            gen = CallGenerator(driver)
            placed_at = time.monotonic()
            calls = {name: await gen.place(sc) for name, sc in GAP_SCENARIOS.items()}
            await backend.wait_for(
                lambda: sum(r.doc["type"] == "call.offered" for r in backend.accepted()) >= 4,
                within=KILL_AT,
            )
            await asyncio.sleep(KILL_AT - (time.monotonic() - placed_at))
            first_run.stop(sig=signal.SIGKILL)
            killed_at = time.time()
            await asyncio.sleep(RESTART_AT - (time.monotonic() - placed_at))
            second_run.start()
            resynced = await asyncio.to_thread(
                second_run.wait_for, lambda x: x.get("event") == "ami_resynced", 15
            )
            await wait_idle(driver, within=40)
            ids = {f"lab:{c.linkedid}" for c in calls.values()}
            await backend.wait_for(
                lambda: ids <= {r.doc["call"]["call_id"] for r in ended(backend)}, within=15
            )
            base = f"http://{listen}"
            interrupted = await metric(base, "pbxbridge_calls_interrupted_total")
            owed = await asyncio.to_thread(local_callbacks, lab)
        finally:
            first_run.stop()
            second_run.stop()
            await driver.close()
            await recorder.close()
    (tmp_path / "capture.ami").write_bytes(bytes(recorder.raw))  # kept for post-mortems
    real = timeline(bytes(recorder.raw))
    snapshot_at = float(resynced["snapshot_at"])
    got = {name: by_id(backend, c) for name, c in calls.items()}

    # The premises: each call really was where the test put it.
    a, b, c, d = (real[calls[n].linkedid] for n in GAP_SCENARIOS)
    assert killed_at < first(a, "AgentConnect") < snapshot_at, "answered during the gap"
    assert first(b, "AgentConnect") > snapshot_at, "answered after the restart"
    assert first(c, "AgentCalled") < snapshot_at < first(c, "Hangup"), "rang through the gap"
    assert "AgentRingNoAnswer" not in {e for _, e in c}
    assert killed_at < first(d, "Hangup") < snapshot_at, "gone during the gap"

    answered = got["answered_in_gap"]
    assert (answered["outcome"], answered["answered_at_estimated"]) == ("answered", True)
    assert first(a, "AgentConnect") <= seconds(answered["answered_at"]) <= snapshot_at + 0.01
    assert answered["talk_seconds"] > 5 and answered["queue"] == "calltakers"

    waited = got["waiting_through_gap"]
    assert (waited["outcome"], waited["queue"], waited["answered_at_estimated"]) == (
        "answered",
        "backup",
        False,
    )
    assert seconds(waited["answered_at"]) == pytest.approx(first(b, "AgentConnect"), abs=1e-6)

    rang = got["ringing_through_gap"]
    assert (rang["outcome"], rang["abandon_stage"]) == ("abandoned", "ringing")

    gone = got["gone_in_gap"]
    assert (gone["outcome"], gone["abandon_stage"]) == ("interrupted", None)
    lines = [x for x in second_run.events("call_ended") if x["call_id"] == gone["call_id"]]
    assert [x["outcome"] for x in lines] == ["interrupted"], "logged like any call"
    assert interrupted == 1, "counted like any call"
    owed_ids = {e["call_id"] for e in owed["callbacks"]}
    assert gone["call_id"] in owed_ids and rang["call_id"] in owed_ids
    assert answered["call_id"] not in owed_ids

    for call in calls.values():  # exactly one call.ended each, never a second verdict
        ends = [r for r in ended(backend) if r.doc["call"]["call_id"] == f"lab:{call.linkedid}"]
        assert len({r.key for r in ends}) == 1

    # The store's AMI sessions show the gap: the killed run never said it stopped; the
    # restart writes its end at the last sign of life, before the kill.
    with sqlite3.connect(tmp_path / "outbox.sqlite3") as conn:
        sessions = conn.execute("SELECT at, up, detail FROM ami_sessions ORDER BY at").fetchall()
    (up1, _, _), (down_at, down, why), (up2, up_again, _) = sessions[:3]
    assert (down, up_again, why) == (0, 1, "pbxbridge stopped unexpectedly")
    assert up1 <= down_at <= killed_at < up2


def ended(backend: Backend) -> list[Received]:
    return [r for r in backend.accepted() if r.doc["type"] == "call.ended"]


def by_id(backend: Backend, call: PlacedCall) -> dict[str, Any]:
    [doc] = {
        r.key: r.doc["call"]
        for r in ended(backend)
        if r.doc["call"]["call_id"] == f"lab:{call.linkedid}"
    }.values()
    return doc  # type: ignore[no-any-return]


def seconds(rfc3339: str) -> float:
    value = parse_rfc3339(rfc3339)
    assert value is not None
    return value
