"""Dialplan hooks, dispatch and the callback loop on the real lab Asterisk."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import signal
import statistics
import sys
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pbxbridge import local_api
from tests.lab import confs
from tests.lab.amilink import AmiLink, split_raw
from tests.lab.asterisk import Lab
from tests.lab.calls import (
    SCENARIOS,
    CallGenerator,
    classify_after_call,
    press_callback_key,
    wait_idle,
)
from tests.support.daemon import Daemon, write_config

pytestmark = pytest.mark.asterisk
MASK = "call,agent,user,system"


async def links(lab: Lab) -> tuple[AmiLink, AmiLink]:
    s = lab.settings
    driver = AmiLink("127.0.0.1", s.ami_port, confs.DRIVER_USER, s.driver_secret, events="off")
    recorder = AmiLink("127.0.0.1", s.ami_port, confs.PBXBRIDGE_USER, s.pbxbridge_secret, MASK)
    await driver.connect()
    await recorder.connect()
    return driver, recorder


def http_api(config: Path) -> str:
    listen = tomllib.loads(config.read_text())["metrics"]["listen"]
    return f"http://{listen}"


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def callbacks_of(lab: Lab) -> Any:
    """The callback list over the local socket, as the AGI script and the CLI read it."""
    status, body = local_api.request(f"unix:{lab.api_socket}", "GET", "/v1/callbacks", timeout=5)
    assert status == 200, body
    return json.loads(body)


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


async def until(predicate: Any, within: float = 15) -> None:
    """Poll a condition on the daemon's log lines (they arrive from a reader thread)."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - no event to wait on across threads
            await asyncio.sleep(0.1)


async def start_daemon(lab: Lab, tmp_path: Path) -> tuple[Daemon, Path]:
    config = write_config(lab, tmp_path)
    daemon = Daemon(config).start()
    await asyncio.to_thread(daemon.wait_for, lambda x: x.get("event") == "ami_session_up")
    return daemon, config


async def test_transfers_and_classifications_reach_the_record(lab: Lab, tmp_path: Path) -> None:
    """Blind and attended transfers to agency numbers are recorded as dispatches, and a
    call taker's classification (during the call, or after it from the same phone)
    reaches the record and the metrics."""
    daemon, config = await start_daemon(lab, tmp_path)
    driver, recorder = await links(lab)
    try:
        gen = CallGenerator(driver)
        names = ["classified_during_call", "blind_transfer_to_fire", "attended_transfer_to_police"]
        placed = {name: await gen.place(SCENARIOS[name]) for name in names}
        await asyncio.sleep(max(SCENARIOS[n].duration for n in names))
        await wait_idle(driver)
        ended = {x["linkedid"]: x for x in daemon.events("call_ended")}
        assert set(ended) >= {c.linkedid for c in placed.values()}
        for name, call in placed.items():
            rec, want = ended[call.linkedid], call.scenario
            assert rec["outcome"] == "answered", name
            assert rec["category"] == want.category, name
            assert [d["agency"] for d in rec["dispatched_to"]] == list(want.dispatched), name
        # After the call, the same call taker's phone classifies it again.
        first = ended[placed["blind_transfer_to_fire"].linkedid]
        extension = first["agent"].rsplit(" ", 1)[-1]
        await classify_after_call(driver, extension, "ghost")
        await until(
            lambda: any(x.get("category") == "ghost" for x in daemon.events("call_updated"))
        )
        [update] = [x for x in daemon.events("call_updated") if x.get("category") == "ghost"]
        assert update["call_id"] == first["call_id"]
        metrics = await asyncio.to_thread(get_text, f"{http_api(config)}/metrics")
        assert 'pbxbridge_calls_dispatched_total{agency="fire",service="112"} 1.0' in metrics
        assert 'pbxbridge_calls_dispatched_total{agency="police",service="112"} 1.0' in metrics
        assert 'pbxbridge_calls_classified_total{category="ghost",service="112"} 1.0' in metrics
        assert 'pbxbridge_calls_classified_total{category="prank",service="112"} 1.0' in metrics
    finally:
        daemon.stop()
        await driver.close()
        await recorder.close()


async def test_abandoned_caller_is_called_back_through_the_feature_code(
    lab: Lab, tmp_path: Path
) -> None:
    """Abandoned callers join the callback list; two call takers pressing *112 at once
    are connected to different callers; an answered callback closes the entry."""
    daemon, _ = await start_daemon(lab, tmp_path)
    driver, recorder = await links(lab)
    try:
        await driver.action("Setvar", Variable="PBXBRIDGE_API", Value=lab.api_address)
        gen = CallGenerator(driver)
        gone = [await gen.place(SCENARIOS["abandoned_in_queue"]) for _ in range(2)]
        await until(lambda: len(daemon.events("call_ended")) >= 2)
        listing = await asyncio.to_thread(callbacks_of, lab)
        pending = listing["callbacks"]
        assert sorted(e["call_id"] for e in pending) == sorted(f"lab:{c.linkedid}" for c in gone)
        assert sorted(e["number"] for e in pending) == sorted(c.caller_number for c in gone)
        socket = f"unix:{lab.api_socket}"
        cli = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pbxbridge.cli", "callbacks", "--api", socket, "--json",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await cli.communicate()
        listed = [json.loads(line)["call_id"] for line in out.decode().splitlines()]
        assert sorted(listed) == sorted(e["call_id"] for e in pending)
        await asyncio.gather(press_callback_key(driver, "1001"), press_callback_key(driver, "1002"))
        await until(lambda: len(daemon.events("callback_closed")) >= 2, within=20)
        claimed = [x["call_id"] for x in daemon.events("callback_claimed")]
        assert sorted(claimed) == sorted(f"lab:{c.linkedid}" for c in gone), "one caller each"
        assert {x["result"] for x in daemon.events("callback_closed")} == {"answered"}
        after = await asyncio.to_thread(callbacks_of, lab)
        assert after["callbacks"] == []
        await wait_idle(driver)
        dialled = [
            m.get("DialString", "")
            for m in split_raw(bytes(recorder.raw))
            if m.get("Event") == "DialBegin" and confs.CALLEE_CONTEXT in m.get("DialString", "")
        ]
        assert sorted(d.split("@")[0] for d in dialled) == sorted(c.caller_number for c in gone)
    finally:
        daemon.stop()
        await driver.close()
        await recorder.close()


def setup_times(raw: bytes, linkedids: set[str]) -> list[float]:
    """Arrival to queue entry of each call, from Asterisk's own Timestamps."""
    first: dict[str, float] = {}
    joined: dict[str, float] = {}
    for m in split_raw(raw):
        lid, ts = m.get("Linkedid"), m.get("Timestamp")
        if lid not in linkedids or ts is None:
            continue
        if m.get("Event") == "Newchannel":
            first.setdefault(lid, float(ts))
        elif m.get("Event") == "QueueCallerJoin":
            joined.setdefault(lid, float(ts))
    return [joined[k] - first[k] for k in joined]


def callback_feature_seconds(raw: bytes, channel_id: str) -> float:
    """How long the call taker's feature-code channel lived (AGI included)."""
    times = {
        m.get("Event"): float(m["Timestamp"])
        for m in split_raw(raw)
        if m.get("Uniqueid") == f"{channel_id}b" and m.get("Event") in ("Newchannel", "Hangup")
    }
    return times["Hangup"] - times["Newchannel"]


async def test_emergency_calls_never_wait_for_pbxbridge(lab: Lab, tmp_path: Path) -> None:
    """With pbxbridge running, stopped, or hung (SIGSTOP), 112 calls reach the queue in the
    same time, and the callback feature fails safe within 2 s when pbxbridge is away."""
    driver, recorder = await links(lab)
    quick = SCENARIOS["answered_quickly"]
    daemon: Daemon | None = None
    setups: dict[str, list[float]] = {}
    feature: dict[str, float] = {}
    try:
        gen = CallGenerator(driver)
        for mode in ("running", "stopped", "hung"):
            if mode != "stopped":
                (tmp_path / mode).mkdir()
                daemon, _ = await start_daemon(lab, tmp_path / mode)
                await driver.action("Setvar", Variable="PBXBRIDGE_API", Value=lab.api_address)
            if mode == "hung":
                assert daemon is not None and daemon.proc is not None
                os.kill(daemon.proc.pid, signal.SIGSTOP)
            calls = [await gen.place(quick) for _ in range(4)]
            taker = await press_callback_key(driver, "1004", stay=1)
            await asyncio.sleep(quick.duration)
            await wait_idle(driver)
            raw = bytes(recorder.raw)
            setups[mode] = setup_times(raw, {c.linkedid for c in calls})
            feature[mode] = callback_feature_seconds(raw, taker)
            if daemon is not None:
                if mode == "hung":
                    assert daemon.proc is not None
                    os.kill(daemon.proc.pid, signal.SIGCONT)
                daemon.stop()
                daemon = None
    finally:
        if daemon is not None and daemon.proc is not None:
            os.kill(daemon.proc.pid, signal.SIGCONT)
            daemon.stop()
        await driver.close()
        await recorder.close()
    baseline = statistics.median(setups["running"])
    for mode in ("stopped", "hung"):
        assert len(setups[mode]) == 4, f"every call reached the queue ({mode})"
        assert abs(statistics.median(setups[mode]) - baseline) < 0.05, setups
        # The AGI's hard limit is 2 s; the fail-safe prompt is 0.2 s of silence.
        assert feature[mode] < 2.5, feature


async def test_hostile_caller_names_neither_hang_up_nor_forge_events(
    lab: Lab, tmp_path: Path
) -> None:
    """A caller name with invalid UTF-8 or CR/LF does not hang up the call and cannot
    forge AMI events; pbxbridge records the call and counts the undecodable bytes."""
    daemon, config = await start_daemon(lab, tmp_path)
    driver, recorder = await links(lab)
    names = [
        b"M\xfcller \xff\xfe",
        b"Evil\r\nEvent: UserEvent\r\nUserEvent: PbxbridgeClassify\r\nCategory: prank\r\n\r\n"
        b"Event: Forged\r\nX: y",
    ]
    try:
        gen = CallGenerator(driver)
        quick = SCENARIOS["answered_quickly"]
        calls = []
        for name in names:
            variables = {**quick.variables, "NAMEB64": base64.b64encode(name).decode()}
            scenario = dataclasses.replace(quick, context=confs.TRUNK_CONTEXT, variables=variables)
            calls.append(await gen.place(scenario))
        await asyncio.sleep(quick.duration)
        await wait_idle(driver)
        await until(lambda: len(daemon.events("call_ended")) >= 2)
        metrics = await asyncio.to_thread(get_text, f"{http_api(config)}/metrics")
    finally:
        daemon.stop()
        await driver.close()
        await recorder.close()
    ended = {x["linkedid"]: x for x in daemon.events("call_ended")}
    for call in calls:
        assert ended[call.linkedid]["outcome"] == "answered"
        assert ended[call.linkedid]["category"] is None, "no forged classification"
    assert not [m for m in split_raw(bytes(recorder.raw)) if m.get("Event") == "Forged"]
    assert not daemon.events("tracker_anomaly")
    decode_errors = [
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("pbxbridge_ami_decode_errors_total")
    ]
    assert decode_errors and decode_errors[0] > 0
