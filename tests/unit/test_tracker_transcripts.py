"""The tracker against raw AMI transcripts recorded from the lab (tests/transcripts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbxbridge import replay
from pbxbridge import tracker as tr
from pbxbridge.ami_parser import AmiStreamParser
from pbxbridge.ami_translate import WANTED_EVENTS
from tests.lab import truth
from tests.support.settings import tracker as tracker_settings

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "transcripts"
SETTINGS = tracker_settings("lab", ("calltakers", "backup"))


def load(name: str) -> bytes:
    return replay.strip_header((TRANSCRIPTS / f"{name}.ami").read_bytes())


def records(data: bytes, pieces: list[bytes] | None = None) -> list[tr.CallRecord]:
    stream = replay.events(replay.messages(pieces if pieces is not None else [data]))
    return [e.record for e in tr.replay(stream, SETTINGS) if isinstance(e, tr.CallEnded)]


# transcript -> (outcome, abandon_stage, answering queue, ring attempts, ring-no-answers)
EXPECTED: dict[str, tuple[str, str | None, str | None, int, int]] = {
    "answered_quickly": ("answered", None, "calltakers", 1, 0),
    "answered_after_long_wait": ("answered", None, "calltakers", 3, 2),
    "abandoned_in_greeting": ("abandoned", "before_queue", None, 0, 0),
    "abandoned_in_queue": ("abandoned", "queue", None, 0, 0),
    "abandoned_while_ringing": ("abandoned", "ringing", None, 1, 0),
    "ring_no_answer_then_answered": ("answered", None, "calltakers", 2, 1),
    "overflow_to_backup": ("answered", None, "backup", 1, 0),
    "unanswered": ("unanswered", None, None, 0, 0),
    "classified_during_call": ("answered", None, "calltakers", 1, 0),
    "blind_transfer_to_fire": ("answered", None, "calltakers", 1, 0),
    "attended_transfer_to_police": ("answered", None, "calltakers", 1, 0),
}

# transcript -> (category, agencies dispatched to), from the call taker's actions.
HOOKED = {
    "classified_during_call": ("prank", []),
    "blind_transfer_to_fire": (None, ["fire"]),
    "attended_transfer_to_police": (None, ["police"]),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_scenario_yields_one_record_with_its_outcome(name: str) -> None:
    """One recorded call gives exactly one final record with the scenario's outcome."""
    [rec] = records(load(name))
    outcome, stage, queue, attempts, rna = EXPECTED[name]
    assert (rec.outcome, rec.abandon_stage, rec.queue) == (outcome, stage, queue)
    assert (rec.ring_attempts, rec.ring_no_answer) == (attempts, rna)
    assert rec.call_id == f"lab:{rec.linkedid}"
    assert rec.caller_number.startswith("0812") and rec.service == "112"


@pytest.mark.parametrize("name", sorted(HOOKED))
def test_classification_and_transfers_from_recorded_bytes(name: str) -> None:
    """A DTMF classification and blind/attended transfers to agency numbers, as the lab
    recorded them, reach the call's record."""
    [rec] = records(load(name))
    category, agencies = HOOKED[name]
    assert rec.category == category
    assert [agency for agency, _ in rec.dispatched_to] == agencies


def test_replay_cli_keeps_the_configs_agencies(tmp_path: Path) -> None:
    """`pbxbridge replay --config` uses the config's agency map, also with --pbx-name."""
    cfg = tmp_path / "pbxbridge.toml"
    blind = TRANSCRIPTS / "blind_transfer_to_fire.ami"
    cfg.write_text('[ami]\nsecret = "x"\n[emergency]\nagencies = { "113" = "firebrigade" }\n')
    out = subprocess.run(
        [sys.executable, "-m", "pbxbridge.cli", "replay", str(blind),
         "--config", str(cfg), "--pbx-name", "north"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    [doc] = [json.loads(line) for line in out.stdout.splitlines()]
    assert doc["call_id"].startswith("north:")
    assert [d["agency"] for d in doc["dispatched_to"]] == ["firebrigade"]


@pytest.mark.parametrize("name", [*sorted(EXPECTED), "burst"])
def test_times_are_asterisks_timestamps_from_arrival(name: str) -> None:
    """offered_at is the first Newchannel and answer time runs from it to AgentConnect,
    exactly as computed independently from the raw bytes."""
    data = load(name)
    real = truth.from_raw(data)
    recs = records(data)
    assert recs
    for rec in recs:
        t = real[rec.linkedid]
        assert rec.offered_at == t.offered_at
        if t.answered_at is None:
            assert rec.answered_at is None and rec.answer_seconds is None
        else:
            assert rec.answer_seconds == pytest.approx(t.answered_at - t.offered_at, abs=1e-6)
            assert rec.queue == t.answered_queue


def test_answer_time_includes_the_greeting_but_queue_wait_does_not() -> None:
    """answer_seconds runs from arrival; wait_seconds only from queue entry."""
    [rec] = records(load("answered_after_long_wait"))
    assert rec.queued_at is not None and rec.answered_at is not None
    assert rec.answer_seconds == pytest.approx(rec.answered_at - rec.offered_at, abs=1e-6)
    assert rec.wait_seconds == pytest.approx(rec.answered_at - rec.queued_at, abs=1e-6)
    assert rec.answer_seconds - rec.wait_seconds >= 0.5  # the 0.5 s greeting at least


def test_internal_calls_are_never_reported_and_leave_no_state() -> None:
    """A call that never runs the hook nor joins an emergency queue yields nothing."""
    tracker = tr.Tracker(SETTINGS)
    effects = []
    for event in replay.events(replay.messages([load("internal_call")])):
        effects += tracker.handle(event)
    assert effects == []
    assert tracker.open_call_count() == 0


def test_burst_larger_than_the_team_answers_everyone_once() -> None:
    """Six simultaneous callers for four call takers: six answered records, no anomaly."""
    stream = replay.events(replay.messages([load("burst")]))
    effects = tr.replay(stream, SETTINGS)
    ended = [e.record for e in effects if isinstance(e, tr.CallEnded)]
    assert len(ended) == 6 and len({r.linkedid for r in ended}) == 6
    assert {r.outcome for r in ended} == {"answered"}
    assert not [e for e in effects if isinstance(e, tr.Anomaly)]
    waits = sorted(r.wait_seconds or 0 for r in ended)
    assert waits[-1] > 2.0  # the last callers waited for a call taker to be free


def test_resync_snapshot_keeps_live_calls_and_adopts_unknown_ones() -> None:
    """After a (re)connect the snapshot keeps known live calls and adopts unknown live
    emergency calls with an estimated arrival, each ending exactly once."""
    effects = tr.replay(replay.events(replay.messages([load("resync_mid_call")])), SETTINGS)
    ended = {e.record.linkedid: e.record for e in effects if isinstance(e, tr.CallEnded)}
    seen_whole = {k: v for k, v in ended.items() if not v.offered_at_estimated}
    adopted = {k: v for k, v in ended.items() if v.offered_at_estimated}
    assert sorted((r.outcome, r.abandon_stage) for r in seen_whole.values()) == [
        ("abandoned", "before_queue"),
        ("abandoned", "queue"),
        ("answered", None),
    ]
    assert sorted(adopted) == ["labrec.12", "labrec.13", "labrec.14", "labrec.15"]
    assert {r.outcome for r in adopted.values()} == {"answered"}
    adoptions = [e for e in effects if isinstance(e, tr.Anomaly) and e.kind == "call_adopted"]
    assert len(adoptions) == 4
    # Their arrival comes from the channels' Duration: whole seconds before the snapshot.
    first_whole = min(r.offered_at for r in seen_whole.values())
    assert all(0 < first_whole - r.offered_at < 30 for r in adopted.values())


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from([*sorted(EXPECTED), "burst", "resync_mid_call", "internal_call"]),
    cuts=st.lists(st.integers(min_value=0), max_size=40),
)
def test_slicing_the_byte_stream_anywhere_gives_the_same_records(
    name: str, cuts: list[int]
) -> None:
    """However TCP splits the stream, the records are identical."""
    data = load(name)
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert records(data, [p for p in pieces if p]) == records(data)


STREAMS = Path(__file__).resolve().parents[1] / "benchmarks" / "streams"


@pytest.mark.parametrize("name", sorted(p.stem for p in STREAMS.glob("*.ami")))
@pytest.mark.parametrize("filtered", [False, True], ids=["every-message", "wanted-only"])
def test_the_same_calls_recorded_with_every_event_give_the_same_records(
    name: str, filtered: bool
) -> None:
    """The benchmark's Events: on recordings (VarSet, Newexten, TestEvent, ... around
    the same kinds of call) give each scenario's outcome, read message by message or
    through the event filter, cut into 4 KiB reads: the noise changes nothing."""
    data = replay.strip_header((STREAMS / f"{name}.ami").read_bytes())
    parser = AmiStreamParser(wanted=WANTED_EVENTS if filtered else None)
    msgs = [m for i in range(0, len(data), 4096) for m in parser.feed(data[i : i + 4096])]
    ended = [
        e.record for e in tr.replay(replay.events(msgs), SETTINGS) if isinstance(e, tr.CallEnded)
    ]
    if name == "internal_call":
        assert ended == []
        return
    [rec] = ended
    outcome, stage, queue, attempts, rna = EXPECTED[name]
    assert (rec.outcome, rec.abandon_stage, rec.queue) == (outcome, stage, queue)
    assert (rec.ring_attempts, rec.ring_no_answer) == (attempts, rna)
    if filtered:  # most of the stream was skipped on its first line
        assert parser.skipped > len(msgs)
    else:  # and it was there: the replay above read every message
        assert parser.skipped == 0 and any(m.event == "VarSet" for m in msgs)
