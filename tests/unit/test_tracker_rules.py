"""Tracker rules that recorded transcripts cannot reach: gaps, restarts, stuck calls."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pbxbridge import events as ev
from pbxbridge import tracker as tr
from tests.support import settings

S = settings.tracker(max_call_seconds=100, remember_finished=3)


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
    assert effects == [tr.Resynced(500, live=0, closed=0, adopted=0, states=())]


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
    t.restore([answered])
    run([ev.Snapshot(150, (live("L1", "L1", 50, bridged=True),))], t)
    [rec] = ended(run([ev.ChannelHungUp(160, R, "16")], t))
    assert (rec.outcome, rec.answer_seconds, rec.talk_seconds) == ("answered", 4.0, 56.0)


# -- restarts and AMI gaps: the snapshot after the login decides ------------------------

CALLER, IN_QUEUE, TAKER = "L1", "L1b", "T1"  # the lab's shape: ;1 caller, ;2 in Queue


def restored(**changes: object) -> tr.CallRecord:
    """A call as the outbox last announced it: offered (and maybe queued), not answered."""
    rec = tr.CallRecord("pbx:L1", "L1", "112", "0812000111", "", offered_at=100.0)
    return replace(rec, **changes)  # type: ignore[arg-type]


def present(*, bridged: bool = False, ringing: bool = False, in_queue: bool = True):
    """What CoreShowChannels shows of call L1 now."""
    caller = live(CALLER, "L1", 30, app="Wait")
    queue_leg = live(IN_QUEUE, "L1", 30, app="Queue" if in_queue else "Playback", bridged=bridged)
    legs = [caller, queue_leg]
    if bridged or ringing:
        # app_queue's channel to the call taker; after a Queue b() pre-dial Gosub its
        # application is the last one that handler ran (Return), not AppQueue.
        legs.append(ev.LiveChannel(ref(TAKER, "L1"), 5, "Return", "", bridged))
    return tuple(legs)


def restarted(rec: tr.CallRecord) -> tr.Tracker:
    t = tr.Tracker(S)
    t.restore([rec])
    return t


def test_a_call_answered_while_pbxbridge_was_down_ends_answered_with_an_estimated_answer() -> None:
    """Restored unanswered, seen bridged by the first snapshot: answered at the snapshot
    time (the latest it can have been), marked estimated; its hang-up is answered."""
    t = restarted(restored(queued_at=102.0))
    effects = run([ev.Snapshot(130, present(bridged=True))], t)
    [answered] = [e.record for e in effects if isinstance(e, tr.CallAnswered)]
    assert (answered.answered_at, answered.answered_at_estimated) == (130, True)
    assert answered.queue == "q112"
    [rec] = ended(
        run([ev.HangupRequested(150, ref(CALLER)), ev.ChannelHungUp(150, ref(CALLER), "16")], t)
    )
    assert (rec.outcome, rec.abandon_stage, rec.answer_seconds) == ("answered", None, 30)
    assert rec.answered_at_estimated


def test_a_call_waiting_through_the_gap_and_answered_after_is_exact() -> None:
    """Restored while in its greeting, seen waiting in the queue: the answer after the
    restart is Asterisk's own, not estimated."""
    t = restarted(restored())
    run([ev.Snapshot(110, present())], t)
    assert [s for _, s in t.active()] == [tr.State.WAITING]
    leg = ref(IN_QUEUE)
    effects = run([ev.AgentAnswered(112, leg, "q112", "Taker", TAKER)], t)
    [answered] = [e.record for e in effects if isinstance(e, tr.CallAnswered)]
    assert (answered.answered_at, answered.answered_at_estimated) == (112, False)
    [rec] = ended(run([ev.ChannelHungUp(120, ref(CALLER), "16")], t))
    assert rec.outcome == "answered"


def test_a_call_ringing_through_the_gap_and_abandoned_after_is_abandoned_while_ringing() -> None:
    """A call taker's phone ringing for the caller in the snapshot makes the hang-up
    that follows an abandonment while ringing."""
    t = restarted(restored(queued_at=102.0))
    run([ev.Snapshot(110, present(ringing=True))], t)
    [rec] = ended(
        run([ev.HangupRequested(111, ref(CALLER)), ev.ChannelHungUp(111, ref(CALLER), "16")], t)
    )
    assert (rec.outcome, rec.abandon_stage) == ("abandoned", "ringing")


def test_a_restored_call_that_hangs_up_before_the_snapshot_is_interrupted() -> None:
    """Until the snapshot the state of a restored unanswered call is unknown: a hang-up
    then is interrupted, never abandoned."""
    t = restarted(restored(queued_at=102.0))
    [rec] = ended(run([ev.ChannelHungUp(105, ref(CALLER), "16")], t))
    assert (rec.outcome, rec.abandon_stage) == ("interrupted", None)


def test_an_ami_gap_makes_unanswered_calls_unknown_until_the_snapshot() -> None:
    """A call waiting when AMI drops and answered during the gap is not abandoned: the
    snapshot after the reconnect sees it bridged."""
    t = tr.Tracker(S)
    r = ref(CALLER)
    run(
        [
            ev.ChannelCreated(100, r),
            ev.Offered(100, r, "112"),
            ev.QueueJoined(101, ref(IN_QUEUE), "q112"),
        ],
        t,
    )
    down = run([ev.AmiDisconnected(103, "ping timeout")], t)
    assert down == [tr.SessionChanged(103, False, "ping timeout", 1)]
    assert [s for _, s in t.active()] == [tr.State.UNKNOWN]
    run(
        [
            ev.AmiConnected(108, "Asterisk Call Manager/11.0.0"),
            ev.Snapshot(108, present(bridged=True)),
        ],
        t,
    )
    [rec] = ended(run([ev.ChannelHungUp(120, r, "16")], t))
    assert (rec.outcome, rec.answered_at, rec.answered_at_estimated) == ("answered", 108, True)


def test_an_answered_call_stays_answered_through_a_gap() -> None:
    """Answered is never undone: a talking call is not made unknown by a gap."""
    t = restarted(restored(queued_at=102.0, answered_at=104.0, queue="q112"))
    run([ev.AmiDisconnected(105, "closed"), ev.Snapshot(110, present(in_queue=False))], t)
    [rec] = ended(run([ev.ChannelHungUp(120, ref(CALLER), "16")], t))
    assert (rec.outcome, rec.answered_at, rec.answered_at_estimated) == ("answered", 104.0, False)


def test_every_state_change_is_in_the_transition_table() -> None:
    """The snapshot can set any unanswered call to any state it can see, and END_OF_CALL
    covers every state a call can end in."""
    for state in tr.UNANSWERED:
        for seen in tr.SEEN:
            assert tr.TRANSITIONS[(state, f"seen_{seen.value}")] is seen
    assert set(tr.END_OF_CALL) == set(tr.LIVE)


def test_the_other_half_of_the_callers_local_channel_is_not_a_ringing_phone() -> None:
    """A caller routed to the queue through a Local channel (trunk -> Local;1 -> Local;2
    in Queue) is waiting, not ringing: only channels app_queue dialled ring."""
    t = restarted(restored(queued_at=102.0))

    def chan(uid: str, name: str, app: str, bridged: bool = False) -> ev.LiveChannel:
        return ev.LiveChannel(replace(ref(uid, "L1"), channel=name), 30, app, "q112", bridged)

    waiting = (
        chan("L1", "PJSIP/trunk-00000001", "Dial", bridged=True),
        chan("L1c", "Local/112@entry-00000002;1", "AppDial", bridged=True),
        chan("L1d", "Local/112@entry-00000002;2", "Queue"),
    )
    run([ev.Snapshot(110, waiting)], t)
    assert [s for _, s in t.active()] == [tr.State.WAITING]


def test_a_caller_bridged_outside_the_queue_after_a_gap_is_never_abandoned() -> None:
    """Answered and blind-transferred to an agency while pbxbridge was down (restart) or
    blind (AMI gap): the caller is bridged outside Queue(). No snapshot reading makes
    that abandoned or unanswered: the state stays unknown and the end is interrupted."""
    trunk = ev.LiveChannel(ref(CALLER), 110, "Dial", "PJSIP/fire", True)
    agency = ev.LiveChannel(ref("F1"), 20, "AppDial", "(Outgoing Line)", True)
    restarted_call = restarted(restored())
    run([ev.Snapshot(200, (trunk, agency))], restarted_call)
    [rec] = ended(run([ev.ChannelHungUp(300, ref(CALLER), "16")], restarted_call))
    assert (rec.outcome, rec.abandon_stage) == ("interrupted", None)
    t = tr.Tracker(S)
    run([*arrive(CALLER), ev.AmiDisconnected(102, "x"), ev.Snapshot(200, (trunk, agency))], t)
    [rec] = ended(run([ev.ChannelHungUp(300, ref(CALLER), "16")], t))
    assert (rec.outcome, rec.abandon_stage) == ("interrupted", None)


def test_a_hangup_request_before_a_gap_does_not_outlive_it() -> None:
    """A SoftHangupRequest that did not end the caller (a redirect) is forgotten once
    the snapshot shows the caller alive; the call answered during the gap ends answered."""
    t = tr.Tracker(S)
    run([*arrive(CALLER), ev.HangupRequested(102, ref(CALLER), cause=1)], t)
    run([ev.AmiDisconnected(103, "x"), ev.Snapshot(200, present(bridged=True))], t)
    [rec] = ended(run([ev.ChannelHungUp(300, ref(CALLER), "16")], t))
    assert (rec.outcome, rec.answered_at) == ("answered", 200)
