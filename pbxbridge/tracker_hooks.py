"""The call takers' hooks: classification, dispatch (by hook or by transfer to an agency
number) and callback results, as handlers of the tracker (mixed into
:class:`pbxbridge.tracker.Tracker`). A hook that runs after the call, on the call
taker's own phone, applies to that phone's last call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from pbxbridge import events as ev
from pbxbridge.call_states import CallState
from pbxbridge.records import Anomaly, CallbackResult, CallRecord, CallUpdated, Effect
from pbxbridge.tracker_base import TrackerBase


class CallTakerHooks(TrackerBase):
    def _emergency(self, ref: ev.ChannelRef) -> CallState | None:
        return self._emergency_by_id(ref.linkedid)

    def _classified(self, e: ev.Classified) -> list[Effect]:
        if e.category not in self.settings.categories:
            return [Anomaly("unknown_category", e.ref.linkedid, e.category)]
        return self._update(e.ref, e.at, "category", lambda r: replace(r, category=e.category))

    def _dispatch_hooked(self, e: ev.DispatchHooked) -> list[Effect]:
        agency = e.agency
        if not agency or agency not in {*self.settings.agencies.values(), *self.settings.agencies}:
            return [Anomaly("unknown_agency", e.ref.linkedid, agency)]
        agency = self.settings.agencies.get(agency, agency)
        return self._update(e.ref, e.at, "dispatch", _dispatched(agency, e.at))

    def _blind_transferred(self, e: ev.BlindTransferred) -> list[Effect]:
        call = self._emergency_by_id(e.linkedid)
        agency = self.settings.agencies.get(e.exten)
        if call is None or agency is None or not e.success:
            return []
        return self._update_call(call, e.at, "dispatch", _dispatched(agency, e.at))

    def _attended_transferred(self, e: ev.AttendedTransferred) -> list[Effect]:
        call = self._emergency_by_id(e.linkedid)
        if call is None or call.consult_agency is None or not e.success:
            return []
        agency, call.consult_agency = call.consult_agency, None
        return self._update_call(call, e.at, "dispatch", _dispatched(agency, e.at))

    def _callback_dialed(self, e: ev.CallbackDialed) -> list[Effect]:
        return [CallbackResult(e.at, e.call_id, e.status, e.ref.device)]

    def _update(
        self,
        ref: ev.ChannelRef,
        at: float,
        what: str,
        change: Callable[[CallRecord], CallRecord],
    ) -> list[Effect]:
        """Apply a call taker's hook to the call on this Linkedid, or, when the hook ran
        after the call on the call taker's own phone, to that phone's last call."""
        call = self._emergency(ref)
        if call is not None:
            return self._update_call(call, at, what, change)
        last = self._last_by_device.get(ref.device)
        if last is None:
            return [Anomaly(f"{what}_without_call", ref.linkedid, ref.device)]
        self._last_by_device[ref.device] = updated = change(last)
        return [CallUpdated(updated, what, at)]

    def _update_call(
        self, call: CallState, at: float, what: str, change: Callable[[CallRecord], CallRecord]
    ) -> list[Effect]:
        assert call.record is not None
        call.record = change(call.record)
        return [CallUpdated(call.record, what, at)]


def _dispatched(agency: str, at: float) -> Callable[[CallRecord], CallRecord]:
    def change(rec: CallRecord) -> CallRecord:
        return replace(rec, dispatched_to=(*rec.dispatched_to, (agency, at)))

    return change
