"""Tracker rules that recorded transcripts cannot reach: gaps, restarts, stuck calls."""

from __future__ import annotations

import pytest

from pbxbridge import events as ev
from pbxbridge import tracker as tr

S = tr.TrackerSettings("pbx", frozenset({"q112"}), max_call_seconds=100, remember_finished=3)


def ref(uid: str, linkedid: str = "L1", number: str = "0812000111") -> ev.ChannelRef:
    return ev.ChannelRef(uid, linkedid, f"PJSIP/trunk-{uid}", number, "Name")


def live(uid: str, linkedid: str, duration: float, app: str = "Queue", bridged: bool = False):
    return ev.LiveChannel(ref(uid, linkedid), duration, app, "q112,,,,30", bridged)


def arrive(linkedid: str = "L1", at: float = 100.0) -> list[ev.Event]:
    """A caller's channel appears, runs the hook and joins the queue."""
    r = ref(linkedid, linkedid)
    return [
        ev.ChannelCreated(at, r),
        ev.Offered(at + 0.1, r, "112"),
        ev.QueueJoined(at + 2, r, "q112"),
    ]


def run(events: list[ev.Event], tracker: tr.Tracker | None = None) -> list[tr.Effect]:
    t = tracker or tr.Tracker(S)
    out: list[tr.Effect] = []
    for e in events:
        out += t.handle(e)
    return out


def ended(effects: list[tr.Effect]) -> list[tr.CallRecord]:
    return [e.record for e in effects if isinstance(e, tr.CallEnded)]


R = ref("L1", "L1")
AGENT = "A1"
CASES: dict[str, tuple[list[ev.Event], tuple[str, str | None]]] = {
    # hang-up request arrives while waiting; queue clean-up events follow it
    "hangup_request_freezes_the_stage": (
        [
            *arrive(),
            ev.HangupRequested(105, R),
            ev.QueueLeft(105.1, R, "q112"),
            ev.ChannelHungUp(105.2, R, "16"),
        ],
        ("abandoned", "queue"),
    ),
    "caller_leaves_while_phone_rings": (
        [
            *arrive(),
            ev.AgentRinging(103, R, "q112", "Taker", AGENT),
            ev.ChannelHungUp(104, R, "16"),
        ],
        ("abandoned", "ringing"),
    ),
    "ring_no_answer_back_to_waiting": (
        [
            *arrive(),
            ev.AgentRinging(103, R, "q112", "Taker", AGENT),
            ev.AgentNoAnswer(107, R, "q112", "Taker", AGENT, 4000),
            ev.ChannelHungUp(108, R, "16"),
        ],
        ("abandoned", "queue"),
    ),
    "queue_timeout_then_pbx_hangs_up": (
        [*arrive(), ev.QueueLeft(130, R, "q112"), ev.ChannelHungUp(130.1, R, "16")],
        ("unanswered", None),
    ),
    "hangup_during_greeting": (
        [ev.ChannelCreated(100, R), ev.Offered(100.1, R, "112"), ev.ChannelHungUp(101, R, "16")],
        ("abandoned", "before_queue"),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_outcome_is_the_state_when_the_caller_hung_up(name: str) -> None:
    """The outcome and stage follow the END_OF_CALL table for the state at hang-up."""
    events, expected = CASES[name]
    [rec] = ended(run(events))
    assert (rec.outcome, rec.abandon_stage) == expected


def test_snapshot_closes_vanished_calls_as_interrupted_never_abandoned() -> None:
    """A call the tracker holds that Asterisk no longer has is closed as interrupted."""
    effects = run([*arrive("L1"), *arrive("L2"), ev.Snapshot(200, (live("L2", "L2", 100),))])
    [rec] = ended(effects)
    assert (rec.linkedid, rec.outcome, rec.abandon_stage) == ("L1", "interrupted", None)
    assert rec.ended_at == 200


def test_snapshot_adopts_a_live_call_in_an_emergency_queue() -> None:
    """An unknown live call in an emergency queue is offered, arrival from its Duration."""
    t = tr.Tracker(S)
    effects = run([ev.Snapshot(500, (live("X", "X", 12),))], t)
    offered = [e.record for e in effects if isinstance(e, tr.CallOffered)]
    assert [(r.linkedid, r.offered_at, r.offered_at_estimated) for r in offered] == [
        ("X", 488, True)
    ]
    rx = ref("X", "X")
    [rec] = ended(
        run([ev.AgentAnswered(503, rx, "q112", "Taker", AGENT), ev.ChannelHungUp(520, rx, "16")], t)
    )
    assert (rec.outcome, rec.answer_seconds, rec.talk_seconds) == ("answered", 15, 17)


def test_unknown_live_call_outside_emergency_queues_is_not_adopted() -> None:
    """Adoption needs evidence: a live call in some other application is not an emergency."""
    effects = run([ev.Snapshot(500, (live("Y", "Y", 12, app="Dial"),))])
    assert effects == []


def test_stuck_call_is_closed_and_memory_released() -> None:
    """A call open past max_call_seconds is closed as interrupted and counted."""
    t = tr.Tracker(S)
    run(arrive("L1", at=100), t)
    assert t.expire(150) == []
    effects = t.expire(201)
    assert [type(e) for e in effects] == [tr.Anomaly, tr.CallEnded]
    assert ended(effects)[0].outcome == "interrupted"
    assert t.open_call_count() == 0


def test_late_events_of_a_finished_call_are_ignored() -> None:
    """Events after a call ended never resurrect it or produce a second record."""
    t = tr.Tracker(S)
    first = run([*arrive(), ev.ChannelHungUp(105, R, "16")], t)
    late = run(
        [
            ev.QueueLeft(105.1, R, "q112"),
            ev.ChannelCreated(105.2, ref("A9", "L1")),
            ev.ChannelHungUp(105.3, ref("A9", "L1"), "16"),
        ],
        t,
    )
    assert len(ended(first)) == 1 and late == []
    assert t.open_call_count() == 0


def test_finished_call_memory_is_bounded() -> None:
    """The set of finished Linkedids kept for late events never exceeds its limit."""
    t = tr.Tracker(S)
    for i in range(10):
        r = ref(f"L{i}", f"L{i}")
        run([ev.ChannelCreated(i, r), ev.Offered(i, r, "112"), ev.ChannelHungUp(i + 1, r, "16")], t)
    assert len(t._finished) == S.remember_finished


def test_a_second_answer_is_an_anomaly_not_a_new_answer() -> None:
    """AgentConnect twice for one call keeps the first answer and reports an anomaly."""
    effects = run(
        [
            *arrive(),
            ev.AgentAnswered(105, R, "q112", "T1", "A1"),
            ev.AgentAnswered(106, R, "q112", "T2", "A2"),
            ev.ChannelHungUp(110, R, "16"),
        ]
    )
    assert [e.kind for e in effects if isinstance(e, tr.Anomaly)] == ["answered_twice"]
    [rec] = ended(effects)
    assert (rec.agent, rec.answered_at) == ("T1", 105)


def test_agent_channels_hanging_up_do_not_end_the_call() -> None:
    """Only a caller-side channel's hang-up ends the call; a call taker's does not."""
    t = tr.Tracker(S)
    effects = run(
        [
            *arrive(),
            ev.ChannelCreated(103, ref("A1", "L1")),
            ev.AgentAnswered(104, R, "q112", "T1", "A1"),
            ev.HangupRequested(110, ref("A1", "L1")),
            ev.ChannelHungUp(110, ref("A1", "L1"), "16"),
        ],
        t,
    )
    assert ended(effects) == []
    [rec] = ended(run([ev.ChannelHungUp(111, R, "16")], t))
    assert (rec.outcome, rec.talk_seconds) == ("answered", 7)


def test_queue_membership_alone_makes_an_emergency_call() -> None:
    """Without the hook, joining a configured emergency queue makes a call an emergency call,
    with arrival still at its first channel."""
    r = ref("Q1", "Q1")
    effects = run(
        [ev.ChannelCreated(50, r), ev.QueueJoined(53, r, "q112"), ev.ChannelHungUp(60, r, "16")]
    )
    [rec] = ended(effects)
    assert (rec.offered_at, rec.service, rec.outcome) == (50, "112", "abandoned")


def test_a_shutdown_hangup_is_the_pbxs_not_the_callers() -> None:
    """Hang-ups flagged AST_SOFTHANGUP_SHUTDOWN end unanswered calls as interrupted
    (Asterisk's Shutdown event only arrives after them), until the next snapshot."""
    t = tr.Tracker(S)
    effects = run(
        [*arrive(), ev.HangupRequested(105, R, cause=4), ev.ChannelHungUp(105, R, "0")], t
    )
    [rec] = ended(effects)
    assert (rec.outcome, rec.abandon_stage) == ("interrupted", None)
    r2 = ref("L2", "L2")
    run([ev.Snapshot(200, ())], t)
    later = [
        ev.ChannelCreated(300, r2),
        ev.Offered(300, r2, "112"),
        ev.ChannelHungUp(301, r2, "16"),
    ]
    [rec2] = ended(run(later, t))
    assert (rec2.outcome, rec2.abandon_stage) == ("abandoned", "before_queue")


def test_restored_call_from_the_outbox_keeps_its_answer() -> None:
    """A call restored after a restart keeps its answer time and ends answered once."""
    t = tr.Tracker(S)
    answered = tr.CallRecord(
        "pbx:L1",
        "L1",
        "112",
        "0812",
        "",
        offered_at=100.0,
        queued_at=102.0,
        answered_at=104.0,
        queue="q112",
    )
    t.restore(answered)
    run([ev.Snapshot(150, (live("L1", "L1", 50, bridged=True),))], t)
    [rec] = ended(run([ev.ChannelHungUp(160, R, "16")], t))
    assert (rec.outcome, rec.answer_seconds, rec.talk_seconds) == ("answered", 4.0, 56.0)
