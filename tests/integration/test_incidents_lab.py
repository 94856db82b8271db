"""Incidents from real calls reach a real backend: nothing lost through outages and kills."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.lab import confs
from tests.lab.amilink import AmiLink
from tests.lab.asterisk import Lab
from tests.lab.calls import SCENARIOS, CallGenerator, wait_idle
from tests.support.backend import Backend, free_port, serve
from tests.support.daemon import Daemon, write_config

pytestmark = pytest.mark.asterisk


async def driver_link(lab: Lab) -> AmiLink:
    s = lab.settings
    link = AmiLink("127.0.0.1", s.ami_port, confs.DRIVER_USER, s.driver_secret, events="off")
    await link.connect()
    return link


def by_call(backend: Backend) -> dict[str, list[str]]:
    """call id -> incident types accepted, in arrival order (duplicates collapsed)."""
    seen: dict[str, list[str]] = {}
    keys: set[str] = set()
    for r in backend.accepted():
        if r.key in keys:
            continue
        keys.add(r.key)
        doc = r.doc
        seen.setdefault(doc["call"]["call_id"], []).append(doc["type"])
    return seen


async def test_backend_down_while_calls_flow_loses_nothing(lab: Lab, tmp_path: Path) -> None:
    """With the backend down while calls come and go, every call's offered/answered/ended
    events are delivered once it returns (within 10 s), each call's in order."""
    port = free_port()
    backend = Backend()
    url = f"http://127.0.0.1:{port}/incidents"
    config = write_config(lab, tmp_path, backend={"url": url})
    daemon = Daemon(config).start()
    driver = await driver_link(lab)
    try:
        await asyncio.to_thread(daemon.wait_for, lambda x: x.get("event") == "ami_session_up")
        gen = CallGenerator(driver)
        calls = [await gen.place(SCENARIOS[n]) for n in ("answered_quickly", "abandoned_in_queue")]
        await asyncio.sleep(6)
        await wait_idle(driver)
        await asyncio.to_thread(daemon.wait_for, lambda x: x.get("event") == "call_ended", 10)
        assert backend.received == []  # nothing listening yet: all of it is pending
        async with serve(backend, port):
            loop = asyncio.get_running_loop()
            up = loop.time()
            expected = {f"lab:{c.linkedid}" for c in calls}
            await backend.wait_for(
                lambda: all(
                    by_call(backend).get(cid, [])[-1:] == ["call.ended"] for cid in expected
                ),
                within=20,
            )
            recovered_in = loop.time() - up
    finally:
        daemon.stop()
        await driver.close()
    seen = by_call(backend)
    answered, abandoned = (seen[f"lab:{c.linkedid}"] for c in calls)
    assert answered == ["call.offered", "call.answered", "call.ended"]
    assert abandoned == ["call.offered", "call.ended"]
    assert recovered_in < 10
    for r in backend.accepted():
        assert r.headers["Idempotency-Key"] == r.doc["event_id"]


async def test_kill_9_mid_call_then_restart_leaves_no_call_dangling(
    lab: Lab, tmp_path: Path
) -> None:
    """pbxbridge killed with -9 during calls: after a restart, a call still up is tracked to
    its real end and a call that ended meanwhile is closed as interrupted; the backend
    gets exactly one call.ended per call, never an abandoned call invented."""
    backend = Backend()
    driver = await driver_link(lab)
    async with serve(backend) as url:
        config = write_config(lab, tmp_path, backend={"url": url})
        first = Daemon(config).start()
        second: Daemon | None = None
        try:
            await asyncio.to_thread(first.wait_for, lambda x: x.get("event") == "ami_session_up")
            gen = CallGenerator(driver)
            quick = SCENARIOS["answered_quickly"]
            long_talk = dataclasses.replace(quick, variables={**quick.variables, "TALK": "12"})
            short_talk = dataclasses.replace(quick, variables={**quick.variables, "TALK": "3"})
            survivor = await gen.place(long_talk)
            vanished = await gen.place(short_talk)
            await backend.wait_for(
                lambda: sum(1 for r in backend.accepted() if r.doc["type"] == "call.answered") >= 2,
                within=15,
            )
            first.stop(sig=signal.SIGKILL)
            await asyncio.sleep(4)  # the short call ends while nobody watches
            second = Daemon(config).start()
            await asyncio.to_thread(second.wait_for, lambda x: x.get("event") == "ami_resynced", 15)
            await asyncio.sleep(8)
            await wait_idle(driver)
            ids = {f"lab:{survivor.linkedid}", f"lab:{vanished.linkedid}"}
            await backend.wait_for(
                lambda: all("call.ended" in by_call(backend).get(cid, []) for cid in ids),
                within=15,
            )
        finally:
            first.stop()
            if second is not None:
                second.stop()
            await driver.close()
    ended = {
        r.doc["call"]["call_id"]: r.doc["call"]
        for r in backend.accepted()
        if r.doc["type"] == "call.ended"
    }
    kept = ended[f"lab:{survivor.linkedid}"]
    assert kept["outcome"] == "answered"
    assert kept["talk_seconds"] > 10, "tracked to its real end after the restart"
    assert kept["answer_seconds"] is not None
    lost = ended[f"lab:{vanished.linkedid}"]
    assert (lost["outcome"], lost["abandon_stage"]) == ("interrupted", None)
    bodies = {r.key: r.body for r in backend.accepted()}
    for r in backend.accepted():
        assert bodies[r.key] == r.body, "a duplicate is the same event, byte for byte"
    ends = Counter(
        json.loads(b)["call"]["call_id"] for k, b in bodies.items() if k.endswith("ended")
    )
    assert ends == {f"lab:{survivor.linkedid}": 1, f"lab:{vanished.linkedid}": 1}
