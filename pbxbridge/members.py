"""Queue members (call takers) and what each is doing right now. Pure: no I/O, no clock.

The board is updated by the pipeline task from the QueueMember* events and replaced
whole by each QueueStatus list (taken after every login: AMI has no replay, so after a
gap only that list is trusted). Each change of a member's state is an effect
(:class:`MemberChanged`): the call store keeps them as the call takers' sessions. The
metrics read :meth:`MemberBoard.counts` at scrape time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from pbxbridge import events as ev
from pbxbridge.records import MemberChanged

# What the metrics count (pbxbridge_queue_members{status=}).
STATUSES = ("available", "in_call", "paused", "unavailable")
# What the call store keeps: finer (ringing apart from talking) and with log-outs.
STATES = ("available", "ringing", "in_call", "paused", "unavailable", "logged_out")
_STATUS_OF_STATE = {"ringing": "in_call"}

# Asterisk device state (enum ast_device_state) -> what the call taker can do.
# UNKNOWN (0) counts as available because app_queue rings such members; RINGING (6)
# is a call taker app_queue will not offer a second call.
DEVICE_STATES: Mapping[int, str] = {
    0: "available",  # unknown
    1: "available",  # not in use
    2: "in_call",  # in use
    3: "in_call",  # busy
    4: "unavailable",  # invalid
    5: "unavailable",  # unavailable
    6: "ringing",  # ringing
    7: "ringing",  # ring in use
    8: "in_call",  # on hold
}


def member_state(device_state: int, paused: bool) -> str:
    """A paused member is paused whatever its phone does; an unknown code is unavailable."""
    if paused:
        return "paused"
    return DEVICE_STATES.get(device_state, "unavailable")


def member_status(device_state: int, paused: bool) -> str:
    """The metrics' status: a ringing member counts as in a call."""
    state = member_state(device_state, paused)
    return _STATUS_OF_STATE.get(state, state)


_Key = tuple[str, str]  # (queue, member)
_State = tuple[str, str]  # (state, pause reason)

# The calls app_queue offers a member, seen from its own events: device states alone
# miss the ringing (a Local-channel member is "in use" from the first ring, a phone
# behind a PBX may report nothing).
RINGING_EVENTS = (ev.AgentRinging, ev.AgentAnswered, ev.AgentNoAnswer, ev.ChannelHungUp)
RingingEvent = ev.AgentRinging | ev.AgentAnswered | ev.AgentNoAnswer | ev.ChannelHungUp


class MemberBoard:
    def __init__(self) -> None:
        self._state: dict[_Key, _State] = {}
        # The member's channel being rung (DestUniqueid) -> the member, its state before.
        self._ringing: dict[str, tuple[_Key, _State]] = {}

    def _set(self, at: float, key: _Key, now: _State) -> list[MemberChanged]:
        if self._state.get(key) == now:
            return []
        self._state[key] = now
        return [MemberChanged(at, key[0], key[1], *now)]

    def update(self, event: ev.MemberStatus) -> list[MemberChanged]:
        if not (event.queue and event.member):
            return []
        key = (event.queue, event.member)
        if event.removed:
            if self._state.pop(key, None) is None:
                return []
            return [MemberChanged(event.at, event.queue, event.member, "logged_out")]
        state = member_state(event.status, event.paused)
        return self._set(event.at, key, (state, event.reason if state == "paused" else ""))

    def observe(self, event: RingingEvent) -> list[MemberChanged]:
        """A member rung (AgentCalled), answering, not answering, or its ringing channel
        gone (the caller gave up). Hang-ups are most of these and nearly never end a
        ring: they are looked at first."""
        if isinstance(event, ev.ChannelHungUp):
            leg = event.ref.uniqueid
            return self._rang(event.at, leg) if leg in self._ringing else []
        if isinstance(event, ev.AgentRinging):
            key = (event.queue, event.agent)
            self._ringing[event.agent_uniqueid] = (key, self._state.get(key, ("available", "")))
            return self._set(event.at, key, ("ringing", ""))
        leg = event.agent_uniqueid
        if leg not in self._ringing:
            return []
        if isinstance(event, ev.AgentAnswered):
            key, _ = self._ringing.pop(leg)
            return self._set(event.at, key, ("in_call", ""))
        return self._rang(event.at, leg)  # AgentNoAnswer

    def _rang(self, at: float, leg: str) -> list[MemberChanged]:
        key, before = self._ringing.pop(leg)
        if self._state.get(key) != ("ringing", ""):
            return []  # a newer status has said what the member does
        return self._set(at, key, before)

    def resync(self, at: float, events: Iterable[ev.MemberStatus]) -> list[MemberChanged]:
        """Replace everything with a full QueueStatus list taken at ``at``: a member no
        longer listed has logged out (when, the gap hid)."""
        events = list(events)
        before = set(self._state)
        self._ringing.clear()  # the list says what each member does now
        changes = [c for event in events for c in self.update(event)]
        listed = {(e.queue, e.member) for e in events}
        for queue, member in sorted(before - listed):
            del self._state[(queue, member)]
            changes.append(MemberChanged(at, queue, member, "logged_out"))
        return changes

    def counts(self) -> dict[tuple[str, str], int]:
        """(queue, status) -> members, every status present (0) for every known queue."""
        counts: Counter[tuple[str, str]] = Counter(
            (queue, _STATUS_OF_STATE.get(state, state))
            for (queue, _), (state, _) in self._state.items()
        )
        queues = {queue for queue, _ in self._state}
        return {(q, s): counts[(q, s)] for q in sorted(queues) for s in STATUSES}
