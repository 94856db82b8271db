"""The call tracker: pure, no I/O, no clock. Events in (with their own time), effects out.

One call = one caller Linkedid. A call becomes an emergency call when its channel
runs the ``offered`` hook or joins a configured emergency queue; until then it is a
candidate whose channels are followed only to learn ``offered_at`` (the creation of
its first channel) and to forget it when it ends.

The life of an emergency call is the state machine in ``TRANSITIONS``; the outcome
is decided by the state the call was in when the caller hung up (``END_OF_CALL``).
Asterisk's QueueCallerAbandon cannot decide it: app_queue emits it on a queue
timeout too. What tells a caller's hang-up apart is the HangupRequest (or the
Hangup) on a caller-side channel, which Asterisk emits before the queue cleans up.

AMI has no replay. When the session drops, and for the calls the outbox says were
open when pbxbridge stopped, an unanswered call's state is ``UNKNOWN``: it may have
been answered meanwhile. The first snapshot after the login (CoreShowChannels: is
the caller's channel in ``Queue()``, bridged to a call taker, is a call taker's phone
ringing for it) sets its state from what Asterisk has now. A caller who hangs up
while the state is unknown ends ``interrupted``, never ``abandoned``; answered is
never undone.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from pbxbridge import events as ev
from pbxbridge.call_states import (
    END_OF_CALL,
    LIVE,
    SEEN,
    TRANSITIONS,
    UNANSWERED,
    CallState,
    State,
    TrackerSettings,
    seen_now,
)
from pbxbridge.records import (
    ABANDON_STAGES,
    OUTCOMES,
    Anomaly,
    CallAnswered,
    CallbackResult,
    CallEnded,
    CallOffered,
    CallRecord,
    CallUpdated,
    Effect,
    Resynced,
    RingNoAnswer,
    SessionChanged,
)
from pbxbridge.tracker_hooks import CallTakerHooks

# The record and the effects live in records.py, the state machine in call_states.py;
# users of the tracker find them here too.
__all__ = [
    "ABANDON_STAGES",
    "END_OF_CALL",
    "LIVE",
    "OUTCOMES",
    "SEEN",
    "TRANSITIONS",
    "UNANSWERED",
    "Anomaly",
    "CallAnswered",
    "CallEnded",
    "CallOffered",
    "CallRecord",
    "CallUpdated",
    "CallbackResult",
    "Effect",
    "Resynced",
    "RingNoAnswer",
    "SessionChanged",
    "State",
    "Tracker",
    "TrackerSettings",
    "replay",
]


class Tracker(CallTakerHooks):
    def __init__(self, settings: TrackerSettings) -> None:
        self.settings = settings
        self._calls: dict[str, CallState] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._last_by_device: OrderedDict[str, CallRecord] = OrderedDict()
        # Set by a shutdown hang-up (or the Shutdown event) until the next login's
        # snapshot: hang-ups in between are the PBX's, so unanswered calls end
        # interrupted, not abandoned.
        self._pbx_stopping = False

    # -- queries (read by metrics and the HTTP API at scrape time) ---------------------

    def active(self) -> list[tuple[CallRecord, State]]:
        """Emergency calls in progress with their state."""
        return [(c.record, c.state) for c in self._calls.values() if c.record is not None]

    def open_call_count(self) -> int:
        return len(self._calls)

    def restore(self, records: Iterable[CallRecord]) -> None:
        """Take back the calls announced before a restart (their last state, from the
        outbox) before any event is handled. An unanswered one is UNKNOWN until the
        first snapshot says what it is doing now, or that it is gone (interrupted)."""
        for record in records:
            known = self._calls.get(record.linkedid)
            if record.linkedid in self._finished or (known is not None and known.record):
                continue
            call = CallState(
                record.linkedid,
                record.offered_at,
                estimated=record.offered_at_estimated,
                state=State.UNKNOWN,
                record=record,
            )
            call.caller_side.add(record.linkedid)
            self._calls[record.linkedid] = call
            if record.answered_at is not None:
                self._move(call, "agent_answered")

    # -- the one entry point ------------------------------------------------------------

    def handle(self, event: ev.Event) -> list[Effect]:
        # Events with no handler (Booted, MemberStatus, ...) change no call.
        handler = HANDLERS.get(type(event))
        if handler is None:
            return []
        return handler(self, event)

    def expire(self, now: float) -> list[Effect]:
        """Close calls open past the limit (a lost Hangup must not hold memory forever)."""
        limit = now - self.settings.max_call_seconds
        effects: list[Effect] = []
        for call in [c for c in self._calls.values() if c.first_seen < limit]:
            if call.record is not None:
                effects.append(Anomaly("call_stuck", call.linkedid))
                effects.extend(self._end(call, now, ("interrupted", None)))
            else:
                self._forget(call)
        return effects

    # -- handlers -------------------------------------------------------------------------

    def _channel_created(self, e: ev.ChannelCreated) -> list[Effect]:
        call = self._get(e.ref, e.at)
        if call is not None:
            call.channels.add(e.ref.uniqueid)
            if e.ref.uniqueid == e.ref.linkedid:
                call.caller_side.add(e.ref.uniqueid)
            # An attended transfer dials Local/<exten>@<transfer context> on the call's
            # Linkedid; the exten says which agency is being consulted.
            agency = self.settings.agencies.get(e.ref.exten)
            if agency and call.record is not None and e.ref.channel.startswith("Local/"):
                call.consult_agency = agency
        return []

    def _offered(self, e: ev.Offered) -> list[Effect]:
        call = self._get(e.ref, e.at)
        if call is None:
            return []
        return self._promote(call, e.ref, e.service or self.settings.default_service)

    def _queue_joined(self, e: ev.QueueJoined) -> list[Effect]:
        call = self._get(e.ref, e.at)
        if call is None:
            return []
        effects: list[Effect] = []
        if call.record is None:
            if e.queue not in self.settings.emergency_queues:
                return []
            effects += self._promote(call, e.ref, self.settings.default_service)
        rec = call.record
        assert rec is not None
        call.record = replace(
            rec,
            queued_at=rec.queued_at if rec.queued_at is not None else e.at,
            queues=(*rec.queues, e.queue),
        )
        call.caller_side.add(e.ref.uniqueid)
        call.hangup_requested = None  # a redirect into a queue is not a hang-up
        return effects + self._move(call, "queue_joined")

    def _queue_left(self, e: ev.QueueLeft) -> list[Effect]:
        call = self._emergency(e.ref)
        if call is None or call.hangup_requested is not None:
            return []
        call.ringing.clear()
        return self._move(call, "queue_left")

    def _agent_ringing(self, e: ev.AgentRinging) -> list[Effect]:
        call = self._emergency(e.ref)
        if call is None:
            return []
        call.ringing.add(e.agent_uniqueid or e.agent)
        rec = call.record
        assert rec is not None
        call.record = replace(rec, ring_attempts=rec.ring_attempts + 1)
        return self._move(call, "agent_ringing")

    def _agent_no_answer(self, e: ev.AgentNoAnswer) -> list[Effect]:
        call = self._emergency(e.ref)
        if call is None:
            return []
        rec = call.record
        assert rec is not None
        call.record = replace(rec, ring_no_answer=rec.ring_no_answer + 1)
        call.ringing.discard(e.agent_uniqueid or e.agent)
        effects: list[Effect] = [RingNoAnswer(e.at, rec.service, e.queue, e.agent)]
        if not call.ringing and call.state is State.RINGING:
            effects += self._move(call, "last_ring_ended")
        return effects

    def _agent_answered(self, e: ev.AgentAnswered) -> list[Effect]:
        call = self._emergency(e.ref)
        if call is None:
            return []
        rec = call.record
        assert rec is not None
        if rec.answered_at is not None:
            return [Anomaly("answered_twice", call.linkedid, e.queue)]
        effects = self._move(call, "agent_answered")
        call.ringing.clear()
        call.agent_device = ev.device_of(e.agent_channel)
        call.record = replace(rec, answered_at=e.at, queue=e.queue, agent=e.agent)
        return [*effects, CallAnswered(call.record)]

    def _hangup_requested(self, e: ev.HangupRequested) -> list[Effect]:
        if e.by_shutdown:
            self._pbx_stopping = True
        call = self._calls.get(e.ref.linkedid)
        if (
            call is not None
            and e.ref.uniqueid in call.caller_side
            and call.hangup_requested is None
        ):
            call.hangup_requested = call.state
        return []

    def _hung_up(self, e: ev.ChannelHungUp) -> list[Effect]:
        call = self._calls.get(e.ref.linkedid)
        if call is None:
            return []
        call.channels.discard(e.ref.uniqueid)
        if call.record is not None and e.ref.uniqueid in call.caller_side:
            # Answered stays answered, whatever state a hang-up request caught earlier.
            state = (
                call.state if call.state is State.TALKING else (call.hangup_requested or call.state)
            )
            if self._pbx_stopping and state is not State.TALKING:
                return self._end(call, e.at, ("interrupted", None))
            return self._end(call, e.at, END_OF_CALL[state])
        if call.record is None and not call.channels:
            self._forget(call)
        return []

    def _snapshot(self, e: ev.Snapshot) -> list[Effect]:
        """Resynchronise after a (re)connect: AMI has no replay, so trust only this."""
        self._pbx_stopping = False
        live: dict[str, list[ev.LiveChannel]] = {}
        for ch in e.channels:
            live.setdefault(ch.ref.linkedid, []).append(ch)
        effects: list[Effect] = []
        closed = adopted = 0
        for call in list(self._calls.values()):
            channels = live.get(call.linkedid)
            if channels is None:
                if call.record is not None:
                    closed += 1
                    effects += self._end(call, e.at, ("interrupted", None))
                else:
                    self._forget(call)
            elif call.record is not None:
                effects += self._settle(call, channels, e.at)
        for linkedid, channels in live.items():
            if linkedid not in self._finished:
                found = self._adopt(linkedid, channels, e.at)
                adopted += bool(found)
                effects += found
        states = Counter(c.state.value for c in self._calls.values() if c.record is not None)
        summary = Resynced(
            e.at, sum(states.values()), closed, adopted, tuple(sorted(states.items()))
        )
        return [*effects, summary]

    def _session_up(self, e: ev.AmiConnected) -> list[Effect]:
        return [SessionChanged(e.at, True, e.banner)]

    def _session_lost(self, e: ev.AmiDisconnected) -> list[Effect]:
        effects: list[Effect] = []
        for call in self._calls.values():
            if call.record is not None and call.state in UNANSWERED:
                call.ringing.clear()
                call.hangup_requested = None  # what it was asked is unknown after the gap
                effects += self._move(call, "session_lost")
        unknown = sum(1 for c in self._calls.values() if c.state is State.UNKNOWN)
        return [*effects, SessionChanged(e.at, False, e.reason, unknown)]

    def _pbx_shutdown(self, e: ev.PbxShutdown) -> list[Effect]:
        self._pbx_stopping = True
        return []

    # -- helpers ----------------------------------------------------------------------

    def _get(self, ref: ev.ChannelRef, at: float) -> CallState | None:
        """The call for this channel's Linkedid, created on first sight."""
        if not ref.linkedid or ref.linkedid in self._finished:
            return None
        call = self._calls.get(ref.linkedid)
        if call is None:
            call = self._calls[ref.linkedid] = CallState(ref.linkedid, at)
        if not call.caller_number and _known(ref.caller_number):
            call.caller_number, call.caller_name = ref.caller_number, _known(ref.caller_name)
        return call

    def _emergency_by_id(self, linkedid: str) -> CallState | None:
        call = self._calls.get(linkedid)
        return call if call is not None and call.record is not None else None

    def _promote(self, call: CallState, ref: ev.ChannelRef, service: str) -> list[Effect]:
        call.caller_side.add(ref.uniqueid)
        if call.record is not None:
            return []
        known_here = _known(ref.caller_number)
        call.record = CallRecord(
            call_id=f"{self.settings.pbx_name}:{call.linkedid}",
            linkedid=call.linkedid,
            service=service,
            caller_number=known_here or call.caller_number,
            caller_name=_known(ref.caller_name) if known_here else call.caller_name,
            offered_at=call.first_seen,
            offered_at_estimated=call.estimated,
        )
        return [CallOffered(call.record)]

    def _move(self, call: CallState, what: str) -> list[Effect]:
        nxt = TRANSITIONS.get((call.state, what))
        if nxt is None:
            return [Anomaly(f"unexpected_{what}", call.linkedid, call.state.value)]
        call.state = nxt
        return []

    def _end(self, call: CallState, at: float, result: tuple[str, str | None]) -> list[Effect]:
        rec = call.record
        assert rec is not None
        outcome, stage = result
        effects = self._move(call, "ended")
        call.record = replace(rec, ended_at=at, outcome=outcome, abandon_stage=stage)
        self._forget(call)
        if call.agent_device:
            self._last_by_device[call.agent_device] = call.record
            self._last_by_device.move_to_end(call.agent_device)
            while len(self._last_by_device) > self.settings.remember_devices:
                self._last_by_device.popitem(last=False)
        return [*effects, CallEnded(call.record)]

    def _forget(self, call: CallState) -> None:
        self._calls.pop(call.linkedid, None)
        if call.record is not None:
            self._finished[call.linkedid] = None
            while len(self._finished) > self.settings.remember_finished:
                self._finished.popitem(last=False)

    def _adopt(self, linkedid: str, channels: list[ev.LiveChannel], at: float) -> list[Effect]:
        """Take in a call that was already up when pbxbridge (re)connected."""
        born = at - max(ch.duration for ch in channels)
        call = self._calls.get(linkedid)
        if call is None:
            call = self._calls[linkedid] = CallState(linkedid, born, estimated=True)
        elif call.record is None and born < call.first_seen - 1.0:
            # Seen only from a later channel (e.g. a call taker's): the call is older.
            call.first_seen, call.estimated = born, True
        if call.record is not None:
            return []
        call.channels = {ch.ref.uniqueid for ch in channels}
        call.caller_side |= {ch.ref.uniqueid for ch in channels if ch.ref.uniqueid == linkedid}
        for ch in channels:
            if ch.queue in self.settings.emergency_queues:
                effects = self._promote(call, ch.ref, self.settings.default_service)
                rec = call.record
                assert rec is not None
                call.record = replace(rec, queues=(ch.queue,), queue=ch.queue)
                return [
                    *effects,
                    *self._settle(call, channels, at),
                    Anomaly("call_adopted", linkedid),
                ]
        return []

    def _settle(self, call: CallState, channels: list[ev.LiveChannel], at: float) -> list[Effect]:
        """Set a live call's state from what a snapshot shows it doing now."""
        now = seen_now(call, channels)
        seen, in_queue = now.state, now.in_queue
        rec = call.record
        assert rec is not None
        call.channels = {ch.ref.uniqueid for ch in channels}
        call.caller_side |= {ch.ref.uniqueid for ch in in_queue}
        # The caller's channel is alive: a hang-up request seen earlier did not end it.
        call.hangup_requested = None
        if seen is None or (call.state is State.TALKING and seen is not State.TALKING):
            return []  # nothing definite; or answered, then transferred: still answered
        call.ringing = set(now.ringing)
        effects = self._move(call, f"seen_{seen.value}")
        if seen is State.TALKING and rec.answered_at is None:
            # Answered while pbxbridge could not see it: AMI tells no answer time, so
            # the snapshot's time stands in, the latest moment it can have been (an
            # answer time never better than the real one), and the record says so.
            queue = in_queue[0].queue
            call.record = replace(
                rec, answered_at=at, answered_at_estimated=True, queue=queue, agent=None
            )
            effects.append(CallAnswered(call.record))
        return effects


def _known(value: str) -> str:
    """Asterisk writes ``<unknown>`` for an absent caller id; that is not a number."""
    return "" if value in ("<unknown>", "unknown") else value


E = TypeVar("E")


def _on(
    event_type: type[E], handler: Callable[[Tracker, E], list[Effect]]
) -> tuple[type, Callable[[Tracker, Any], list[Effect]]]:
    """One row of HANDLERS; the type checker holds each handler to its event type."""
    return event_type, handler


# The table of contents of the tracker: event type -> handler.
HANDLERS: Mapping[type, Callable[[Tracker, Any], list[Effect]]] = dict(
    [
        _on(ev.ChannelCreated, Tracker._channel_created),
        _on(ev.Offered, Tracker._offered),
        _on(ev.QueueJoined, Tracker._queue_joined),
        _on(ev.QueueLeft, Tracker._queue_left),
        _on(ev.AgentRinging, Tracker._agent_ringing),
        _on(ev.AgentNoAnswer, Tracker._agent_no_answer),
        _on(ev.AgentAnswered, Tracker._agent_answered),
        _on(ev.HangupRequested, Tracker._hangup_requested),
        _on(ev.ChannelHungUp, Tracker._hung_up),
        _on(ev.Snapshot, Tracker._snapshot),
        _on(ev.AmiConnected, Tracker._session_up),
        _on(ev.AmiDisconnected, Tracker._session_lost),
        _on(ev.PbxShutdown, Tracker._pbx_shutdown),
        _on(ev.Classified, Tracker._classified),
        _on(ev.DispatchHooked, Tracker._dispatch_hooked),
        _on(ev.BlindTransferred, Tracker._blind_transferred),
        _on(ev.AttendedTransferred, Tracker._attended_transferred),
        _on(ev.CallbackDialed, Tracker._callback_dialed),
    ]
)


def replay(events: Iterable[ev.Event], settings: TrackerSettings) -> list[Effect]:
    """Every effect of a whole event stream: the offline path used by ``pbxbridge replay``."""
    tracker = Tracker(settings)
    out: list[Effect] = []
    for e in events:
        out += tracker.handle(e)
    return out
