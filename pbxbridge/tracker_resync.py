"""Restarts and AMI gaps: calls restored from the outbox and calls held through a gap
are UNKNOWN until the first snapshot after the login sets them from what Asterisk has
now (what a snapshot can tell: :func:`pbxbridge.call_states.seen_now`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import replace

from pbxbridge import events as ev
from pbxbridge.call_states import (
    UNANSWERED,
    CallState,
    State,
    seen_now,
)
from pbxbridge.records import (
    Anomaly,
    CallAnswered,
    CallRecord,
    Effect,
    Resynced,
    SessionChanged,
)
from pbxbridge.tracker_base import TrackerBase


class Resync(TrackerBase):
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
