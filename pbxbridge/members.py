"""Queue members (call takers) and what each can do right now. Pure: no I/O, no clock.

The board is updated by the pipeline task from QueueMemberStatus events and replaced
whole by each QueueStatus list (taken after every login: AMI has no replay, so after a
gap only that list is trusted). The metrics read :meth:`MemberBoard.counts` at scrape
time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from pbxbridge import events as ev

STATUSES = ("available", "in_call", "paused", "unavailable")

# Asterisk device state (enum ast_device_state) -> what the call taker can do.
# UNKNOWN (0) counts as available because app_queue rings such members; RINGING (6)
# counts as in_call because app_queue will not offer that member a second call.
DEVICE_STATES: Mapping[int, str] = {
    0: "available",  # unknown
    1: "available",  # not in use
    2: "in_call",  # in use
    3: "in_call",  # busy
    4: "unavailable",  # invalid
    5: "unavailable",  # unavailable
    6: "in_call",  # ringing
    7: "in_call",  # ring in use
    8: "in_call",  # on hold
}


def member_status(device_state: int, paused: bool) -> str:
    """A paused member is paused whatever its phone does; an unknown code is unavailable."""
    if paused:
        return "paused"
    return DEVICE_STATES.get(device_state, "unavailable")


class MemberBoard:
    def __init__(self) -> None:
        self._status: dict[tuple[str, str], str] = {}

    def update(self, event: ev.MemberStatus) -> None:
        if event.queue and event.member:
            self._status[(event.queue, event.member)] = member_status(event.status, event.paused)

    def resync(self, events: Iterable[ev.MemberStatus]) -> None:
        """Replace everything with a full QueueStatus list (a removed member disappears)."""
        self._status.clear()
        for event in events:
            self.update(event)

    def counts(self) -> dict[tuple[str, str], int]:
        """(queue, status) -> members, every status present (0) for every known queue."""
        counts: Counter[tuple[str, str]] = Counter(
            (queue, status) for (queue, _), status in self._status.items()
        )
        queues = {queue for queue, _ in self._status}
        return {(q, s): counts[(q, s)] for q in sorted(queues) for s in STATUSES}
