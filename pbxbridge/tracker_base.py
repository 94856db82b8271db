"""The tracker's state and the moves every handler shares: finding a call, making it
an emergency call, moving it through ``TRANSITIONS``, ending and forgetting it. The
handlers build on this: :mod:`pbxbridge.tracker` (a call's flow),
:mod:`pbxbridge.tracker_hooks` (the call takers' hooks) and
:mod:`pbxbridge.tracker_resync` (restarts and AMI gaps)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace

from pbxbridge import events as ev
from pbxbridge.call_states import (
    TRANSITIONS,
    CallState,
    State,
    TrackerSettings,
)
from pbxbridge.records import (
    Anomaly,
    CallEnded,
    CallOffered,
    CallRecord,
    Effect,
)


class TrackerBase:
    """Pure: no I/O, no clock. Events in, effects out."""

    def __init__(self, settings: TrackerSettings) -> None:
        self.settings = settings
        self._calls: dict[str, CallState] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._last_by_device: OrderedDict[str, CallRecord] = OrderedDict()
        # Set by a shutdown hang-up (or the Shutdown event) until the next login's
        # snapshot: hang-ups in between are the PBX's, so unanswered calls end
        # interrupted, not abandoned.
        self._pbx_stopping = False

    def active(self) -> list[tuple[CallRecord, State]]:
        """Emergency calls in progress with their state."""
        return [(c.record, c.state) for c in self._calls.values() if c.record is not None]

    def open_call_count(self) -> int:
        return len(self._calls)

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


def _known(value: str) -> str:
    """Asterisk writes ``<unknown>`` for an absent caller id; that is not a number."""
    return "" if value in ("<unknown>", "unknown") else value
