"""Call takers' states from app_queue's own events (a lab transcript), and the board."""

from __future__ import annotations

from pathlib import Path

from pbxbridge import events as ev
from pbxbridge import replay
from pbxbridge import tracker as tr
from pbxbridge.members import MemberBoard
from pbxbridge.pipeline import Pipeline
from pbxbridge.records import MemberChanged
from tests.support import settings

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "transcripts"


def replayed(name: str) -> list[object]:
    data = replay.strip_header((TRANSCRIPTS / f"{name}.ami").read_bytes())
    pipeline = Pipeline(tr.Tracker(settings.tracker()))
    effects: list[object] = []
    for event in replay.events(replay.messages(replay.chunks(data))):
        effects += pipeline.handle(event)
    return effects


def test_log_in_pause_with_reason_unpause_and_log_out_are_each_a_change() -> None:
    """tests/lab/record.py member_sessions: QueueAdd, QueuePause (istirahat), unpause,
    QueueRemove of Taker 1099 in the backup queue."""
    changes = [e for e in replayed("member_sessions") if isinstance(e, MemberChanged)]
    assert [(c.queue, c.member, c.state, c.reason) for c in changes] == [
        ("backup", "Taker 1099", "available", ""),
        ("backup", "Taker 1099", "paused", "istirahat"),
        ("backup", "Taker 1099", "available", ""),
        ("backup", "Taker 1099", "logged_out", ""),
    ]
    times = [c.at for c in changes]
    assert times == sorted(times) and times[-1] - times[0] > 0.5  # Asterisk's Timestamps


def member_states(name: str) -> list[tuple[str, str]]:
    return [(c.member, c.state) for c in replayed(name) if isinstance(c, MemberChanged)]


def test_ringing_is_a_state_of_its_own_until_answered_refused_or_abandoned() -> None:
    """From app_queue's AgentCalled, AgentConnect, AgentRingNoAnswer and the hang-up of
    the rung channel: the store tells ringing from talking (the metrics count both as
    in a call)."""
    assert member_states("answered_quickly") == [
        ("Taker 1001", "ringing"),
        ("Taker 1001", "in_call"),
        ("Taker 1001", "available"),
    ]
    assert member_states("ring_no_answer_then_answered") == [
        ("Taker 1004", "ringing"),
        ("Taker 1004", "available"),  # let it ring out: AgentRingNoAnswer
        ("Taker 1001", "ringing"),
        ("Taker 1001", "in_call"),
        ("Taker 1001", "available"),
    ]
    # The caller gave up while Taker 1003 was being rung: its channel is hung up.
    assert member_states("abandoned_while_ringing") == [
        ("Taker 1003", "ringing"),
        ("Taker 1003", "available"),
    ]


def test_a_repeated_status_is_no_change_and_a_relisted_board_logs_out_the_missing() -> None:
    board = MemberBoard()
    a = ev.MemberStatus(1.0, "q", "A", 1, False)
    b = ev.MemberStatus(1.0, "q", "B", 2, False)
    assert len(board.update(a)) == 1 and board.update(a) == []
    board.update(b)
    # After a gap, the QueueStatus list has only A, now paused.
    changes = board.resync(9.0, [ev.MemberStatus(9.0, "q", "A", 1, True, "rapat")])
    assert changes == [
        MemberChanged(9.0, "q", "A", "paused", "rapat"),
        MemberChanged(9.0, "q", "B", "logged_out"),
    ]
    assert board.counts() == {
        ("q", "available"): 0,
        ("q", "in_call"): 0,
        ("q", "paused"): 1,
        ("q", "unavailable"): 0,
    }
    assert board.update(ev.MemberStatus(10.0, "q", "B", 1, False, removed=True)) == []
