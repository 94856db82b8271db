"""The wallboard's state, fed by the pipeline replaying the lab's recorded AMI: what a
supervisor sees while a call waits, talks and ends; no caller data; today's counts once
per call; a queue filter; the day turning at local midnight."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from pbxbridge import replay
from pbxbridge import tracker as tr
from pbxbridge.pipeline import Pipeline
from pbxbridge.wallboard import Wallboard, ended_of
from tests.support import settings

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "transcripts"
JAKARTA = ZoneInfo("Asia/Jakarta")


def steps(name: str) -> list[tuple[list[object], dict[str, object]]]:
    """Each event's effects and the board's snapshot right after them."""
    data = replay.strip_header((TRANSCRIPTS / f"{name}.ami").read_bytes())
    board = Wallboard(JAKARTA)
    pipeline = Pipeline(tr.Tracker(settings.tracker()), sinks=[board])
    out = []
    for event in replay.events(replay.messages(replay.chunks(data))):
        effects = pipeline.handle(event)
        if effects:
            now = board.last_event_at or 0.0
            out.append((list(effects), board.snapshot(now + 0.5)))
    return out


def after(name: str, kind: type) -> dict[str, object]:
    """The snapshot right after the first effect of ``kind``."""
    return next(snap for effects, snap in steps(name) if any(isinstance(e, kind) for e in effects))


def ended(name: str) -> tr.CallRecord:
    return next(e.record for e, _ in _flat(steps(name)) if isinstance(e, tr.CallEnded))


def _flat(seq: list[tuple[list[object], dict[str, object]]]) -> list[tuple[object, object]]:
    return [(e, s) for effects, s in seq for e in effects]


def test_a_waiting_caller_shows_from_arrival_then_talking_then_today() -> None:
    rec = ended("answered_after_long_wait")
    offered = after("answered_after_long_wait", tr.CallOffered)
    assert [w["since"] for w in offered["waiting"]] == [rec.offered_at]  # from arrival
    answered = after("answered_after_long_wait", tr.CallAnswered)
    assert answered["waiting"] == [] and answered["talking"] == 1
    done = steps("answered_after_long_wait")[-1][1]
    today = done["today"]
    assert (today["offered"], today["answered"], done["talking"]) == (1, 1, 0)
    assert rec.answer_seconds is not None
    for seconds in (10, 15, 20):
        assert today["within"][str(seconds)] == float(rec.answer_seconds <= seconds)
    nena = {s["seconds"]: s["met"] for s in today["standards"]}
    assert nena == {15: rec.answer_seconds <= 15, 20: rec.answer_seconds <= 20}


def test_an_abandoned_caller_is_counted_by_stage_and_owed_a_callback() -> None:
    done = steps("abandoned_in_queue")[-1][1]
    assert done["today"]["abandoned"] == 1
    assert done["today"]["abandoned_by_stage"]["queue"] == 1
    assert done["callbacks"]["owed"] == 1
    assert done["callbacks"]["oldest_since"] == ended("abandoned_in_queue").ended_at


def test_no_caller_number_or_name_reaches_the_board() -> None:
    raw = (TRANSCRIPTS / "answered_quickly.ami").read_text(errors="replace")
    numbers = set(re.findall(r"CallerIDNum: (\d{5,})", raw))
    assert numbers  # the transcript has the caller's number
    text = json.dumps([s for _, s in steps("answered_quickly")])
    assert not any(n in text for n in numbers)


def test_a_paused_call_taker_shows_the_reason_until_logged_out() -> None:
    snaps = [s for _, s in steps("member_sessions")]
    paused = [m for s in snaps for m in s["members"] if m["state"] == "paused"]
    assert paused and paused[0]["reason"] == "istirahat" and paused[0]["name"] == "Taker 1099"
    assert not [m for m in snaps[-1]["members"] if m["name"] == "Taker 1099"]


def test_a_queue_filter_shows_only_its_calls() -> None:
    data = replay.strip_header((TRANSCRIPTS / "overflow_to_backup.ami").read_bytes())
    board = Wallboard(JAKARTA)
    pipeline = Pipeline(tr.Tracker(settings.tracker()), sinks=[board])
    for event in replay.events(replay.messages(replay.chunks(data))):
        pipeline.handle(event)
    now = (board.last_event_at or 0) + 1
    assert board.snapshot(now, "backup")["today"]["offered"] == 1
    assert board.snapshot(now, "calltakers")["today"]["offered"] == 1  # it waited there first
    assert board.snapshot(now, "elsewhere")["today"]["offered"] == 0


def test_today_is_counted_once_per_call_and_starts_at_local_midnight() -> None:
    rec = ended("answered_quickly")
    board = Wallboard(JAKARTA)
    board.seed([(rec.call_id, ended_of(rec))], [])
    board.apply([tr.CallEnded(rec)])  # the same call again, live
    now = (rec.ended_at or 0) + 1
    assert board.snapshot(now)["today"]["offered"] == 1
    # The next local day: yesterday's call is not today's.
    day = datetime.fromtimestamp(now, JAKARTA).date()
    midnight = board.midnight(day + timedelta(days=1))
    later = replace(rec, call_id="other", offered_at=midnight + 60, ended_at=midnight + 90)
    board.apply([tr.CallEnded(later)])
    tomorrow = board.snapshot(midnight + 100)["today"]
    assert (tomorrow["offered"], tomorrow["date"]) == (1, (day + timedelta(days=1)).isoformat())


def test_the_sparkline_covers_two_hours_in_five_minute_buckets() -> None:
    rec = ended("answered_quickly")
    line = steps("answered_quickly")[-1][1]["sparkline"]
    assert len(line) == 24
    assert [b["at"] for b in line] == [line[0]["at"] + 300 * n for n in range(24)]
    assert [b["offered"] for b in line] == [0] * 23 + [1]  # the call, in the newest bucket
    assert rec.answer_seconds is not None
    assert line[-1]["share_15"] == float(rec.answer_seconds <= 15)
    assert line[0]["share_15"] is None  # nothing offered: no share, not 0
