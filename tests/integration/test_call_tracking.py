"""pbxbridge against the real Asterisk lab: every emergency call measured right."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from tests.lab import truth
from tests.lab.asterisk import Lab
from tests.lab.calls import SCENARIOS, CallGenerator, lab_links, wait_idle
from tests.support.daemon import Daemon, write_config

pytestmark = pytest.mark.asterisk


def _expected_queue_log(records: list[dict[str, object]]) -> Counter[tuple[str, str]]:
    """What queue_log must say, derived from pbxbridge's records."""
    counts: Counter[tuple[str, str]] = Counter()
    for rec in records:
        queues = list(rec["queues"])  # type: ignore[call-overload]
        if not queues:
            continue
        *earlier, last = queues
        for q in earlier:
            counts[(q, "EXITWITHTIMEOUT")] += 1
        verb = {"answered": "CONNECT", "abandoned": "ABANDON", "unanswered": "EXITWITHTIMEOUT"}
        counts[(last, verb[str(rec["outcome"])])] += 1
    return counts


async def test_random_mix_of_calls_is_measured_exactly(lab: Lab, tmp_path: Path) -> None:
    """Each emergency call of a 33-call random mix yields exactly one record with the
    scenario's outcome and stage, answer time within 50 ms of the raw AMI truth, no
    record for internal calls, and per-queue counts equal to Asterisk's queue_log."""
    daemon = Daemon(write_config(lab, tmp_path)).start()
    try:
        daemon.wait_for(lambda line: line.get("event") == "ami_session_up")
        driver, recorder = await lab_links(lab.settings)
        log_before = len(lab.queue_log())
        gen = CallGenerator(driver)
        placed = await gen.mix(33, concurrency=3)
        await wait_idle(driver, within=90)
        await asyncio.sleep(0.5)
        raw = bytes(recorder.raw)
        (tmp_path / "capture.ami").write_bytes(raw)  # kept by pytest for post-mortems
        await driver.close()
        await recorder.close()
    finally:
        daemon.stop()

    ended = {line["linkedid"]: line for line in daemon.events("call_ended")}
    assert len(daemon.events("call_ended")) == len(ended), "a call was reported twice"
    real = truth.from_raw(raw)
    emergency = [c for c in placed if c.scenario.emergency]
    assert {c.scenario.name for c in placed} == set(SCENARIOS), "every scenario is covered"
    assert set(ended) == {c.linkedid for c in emergency}, "internal calls must not be reported"
    for call in emergency:
        rec, want = ended[call.linkedid], call.scenario
        assert (rec["outcome"], rec["abandon_stage"]) == (want.outcome, want.stage), call
        if want.queue is not None:
            assert rec["queue"] == want.queue
        assert rec["ring_no_answer"] == want.ring_no_answer, call
        t = real[call.linkedid]
        if t.answer_seconds is None:
            assert rec["answer_seconds"] is None
        else:
            assert abs(rec["answer_seconds"] - t.answer_seconds) < 0.05, (rec, t)
        assert rec["caller_number"].endswith(call.caller_number[-3:])
        assert call.caller_number not in str(rec), "caller numbers are masked in logs"

    queue_log = truth.queue_log_counts(lab.queue_log()[log_before:])
    assert queue_log == _expected_queue_log(list(ended.values()))
