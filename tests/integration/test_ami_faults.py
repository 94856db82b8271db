"""Named failure scenarios on the real lab: the AMI link drops, Asterisk hangs."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import time
from pathlib import Path

import pytest

from tests.lab import confs, truth
from tests.lab.amilink import AmiLink
from tests.lab.asterisk import Lab
from tests.lab.calls import SCENARIOS, CallGenerator, wait_idle
from tests.support.daemon import Daemon, write_config
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.asterisk


async def _link(lab: Lab, user: str, secret: str, events: str) -> AmiLink:
    link = AmiLink("127.0.0.1", lab.settings.ami_port, user, secret, events=events)
    await link.connect()
    return link


async def test_ami_drops_mid_call(lab: Lab, tmp_path: Path) -> None:
    """After an AMI gap, a call still up is measured as if nothing happened and a call
    that ended unseen is closed once as interrupted, never counted as abandoned."""
    proxy = await TcpProxy(lab.settings.ami_port).start()
    daemon = Daemon(write_config(lab, tmp_path, ami={"port": proxy.port})).start()
    driver = await _link(lab, confs.DRIVER_USER, lab.settings.driver_secret, "off")
    recorder = await _link(
        lab, confs.PBXBRIDGE_USER, lab.settings.pbxbridge_secret, "call,agent,user,system"
    )
    try:
        await asyncio.to_thread(daemon.wait_for, lambda x: x.get("event") == "ami_session_up")
        gen = CallGenerator(driver)
        quick = SCENARIOS["answered_quickly"]
        long_talk = dataclasses.replace(quick, variables={**quick.variables, "TALK": "20"})
        talking = await gen.place(long_talk)
        vanishing = await gen.place(SCENARIOS["abandoned_in_queue"])
        await asyncio.to_thread(
            daemon.wait_for,
            lambda x: x.get("event") == "call_answered" and talking.linkedid in x["call_id"],
        )
        await proxy.cut()
        await asyncio.sleep(4)  # the abandoned call ends while pbxbridge is blind
        await proxy.restore()
        await asyncio.to_thread(
            daemon.wait_for,
            lambda x: x.get("event") == "call_ended" and talking.linkedid == x["linkedid"],
            40,
        )
        await wait_idle(driver)
    finally:
        daemon.stop()
        await proxy.cut()
        raw = bytes(recorder.raw)
        await driver.close()
        await recorder.close()

    ups = [x for x in daemon.lines if x.get("event") == "ami_session_up"]
    assert len(ups) == 2, "pbxbridge reconnected exactly once"
    ended = {x["linkedid"]: x for x in daemon.events("call_ended")}
    assert len(ended) == len(daemon.events("call_ended")) == 2
    rec = ended[talking.linkedid]
    real = truth.from_raw(raw)[talking.linkedid]
    assert rec["outcome"] == "answered"
    assert abs(rec["answer_seconds"] - real.answer_seconds) < 0.05
    assert rec["talk_seconds"] > 19
    gone = ended[vanishing.linkedid]
    assert (gone["outcome"], gone["abandon_stage"]) == ("interrupted", None)


async def test_hung_asterisk_is_noticed_within_ten_seconds(lab: Lab, tmp_path: Path) -> None:
    """With default ping settings, a PBX that stops answering is detected within 10 s and
    the session comes back by itself once it answers again."""
    defaults = {"ping_interval_seconds": 3.0, "ping_timeout_seconds": 5.0}
    daemon = Daemon(write_config(lab, tmp_path, ami=defaults)).start()
    assert lab.proc is not None
    try:
        daemon.wait_for(lambda x: x.get("event") == "ami_session_up")
        os.kill(lab.proc.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            daemon.wait_for(lambda x: x.get("event") == "ami_session_down", within=12)
            detected = time.monotonic() - stopped
        finally:
            os.kill(lab.proc.pid, signal.SIGCONT)
        assert detected <= 10.0
        daemon.wait_for(
            lambda x: len(daemon.events("ami_session_up")) >= 2,
            within=40,
        )
        assert len(daemon.events("ami_session_up")) == 2
    finally:
        daemon.stop()


async def test_asterisk_restarts_mid_call(lab: Lab, tmp_path: Path) -> None:
    """An Asterisk restart never turns a waiting caller into an abandoned call (interrupted,
    once), pbxbridge reconnects by itself, and calls after it are measured normally."""
    daemon = Daemon(write_config(lab, tmp_path)).start()
    driver = await _link(lab, confs.DRIVER_USER, lab.settings.driver_secret, "off")
    try:
        await asyncio.to_thread(daemon.wait_for, lambda x: x.get("event") == "ami_session_up")
        gen = CallGenerator(driver)
        quick = SCENARIOS["answered_quickly"]
        talking = await gen.place(
            dataclasses.replace(quick, variables={**quick.variables, "TALK": "30"})
        )
        held = SCENARIOS["abandoned_in_queue"]
        waiting = await gen.place(
            dataclasses.replace(held, variables={**held.variables, "PATIENCE": "30"})
        )
        await asyncio.to_thread(daemon.wait_for, lambda x: x.get("event") == "call_answered", 10)
        await driver.close()
        await asyncio.to_thread(lab.stop)
        await asyncio.to_thread(lab.start)
        await asyncio.to_thread(
            daemon.wait_for, lambda x: len(daemon.events("ami_session_up")) >= 2, 20
        )
        driver = await _link(lab, confs.DRIVER_USER, lab.settings.driver_secret, "off")
        after = await CallGenerator(driver, run_id=f"{gen.run_id}r").place(quick)
        await asyncio.to_thread(
            daemon.wait_for,
            lambda x: x.get("event") == "call_ended" and x["linkedid"] == after.linkedid,
            15,
        )
    finally:
        daemon.stop()
        await driver.close()
    ended = {x["linkedid"]: x for x in daemon.events("call_ended")}
    assert len(ended) == len(daemon.events("call_ended")) == 3
    # Answered before the restart: it was answered (the PBX ended the conversation).
    assert ended[talking.linkedid]["outcome"] == "answered"
    # Waiting when Asterisk stopped: the hang-up was the PBX's, not the caller's.
    gone = ended[waiting.linkedid]
    assert (gone["outcome"], gone["abandon_stage"]) == ("interrupted", None)
    assert ended[after.linkedid]["outcome"] == "answered"
