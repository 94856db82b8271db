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
    State,
    TrackerSettings,
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
from pbxbridge.tracker_resync import Resync

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


class Tracker(CallTakerHooks, Resync):
    """One call = one caller Linkedid; see the module docstring."""

    # -- queries (read by metrics and the HTTP API at scrape time) ---------------------

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

    def _pbx_shutdown(self, e: ev.PbxShutdown) -> list[Effect]:
        self._pbx_stopping = True
        return []

    # -- helpers ----------------------------------------------------------------------


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
