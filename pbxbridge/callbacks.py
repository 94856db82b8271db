"""The callback list: abandoned and unanswered emergency calls still owed a call back.

NENA-STA-020.1 §2.2.7: an abandoned emergency call SHOULD be documented and the
caller called back at least once. Pure: effects and claims in, changes out; the
shell persists them (callback_store.py) and serves them (http.py, the AGI script).

An entry leaves the list when a call taker's callback is answered, or when the same
number calls the service again and is answered. A failed attempt is recorded and
the entry goes back to the list. A claim is a lease: two call takers pressing the
feature code at once get different callers, and a claim nobody used expires.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from pbxbridge import dialplan_vars as dv
from pbxbridge import tracker as tr

CLAIM_SECONDS = 120.0
OWED = ("abandoned", "unanswered")
RESULTS = ("answered", "recalled", "no_answer", "busy", "failed")

# Dial's DIALSTATUS -> callback result.
DIAL_RESULTS = {
    "ANSWER": "answered",
    "NOANSWER": "no_answer",
    "BUSY": "busy",
}


@dataclass(frozen=True, slots=True)
class Callback:
    call_id: str
    service: str
    number: str
    abandoned_at: float
    outcome: str  # of the original call: abandoned | unanswered
    attempts: int = 0
    first_attempt_at: float | None = None
    claimed_by: str | None = None
    claimed_until: float | None = None
    closed_at: float | None = None
    result: str | None = None  # set when the entry leaves the list
    record: tr.CallRecord | None = None  # the call as it ended (for call.updated)

    @property
    def pending(self) -> bool:
        return self.closed_at is None


@dataclass(frozen=True, slots=True)
class Closed:
    """A callback left the list (for metrics and the incident ``call.updated``)."""

    entry: Callback

    @property
    def at(self) -> float:
        return self.entry.closed_at or 0.0


@dataclass(frozen=True, slots=True)
class Attempted:
    entry: Callback
    result: str
    at: float


Change = Closed | Attempted


def dialable(number: str) -> bool:
    """Only a real number can be called back (not "anonymous", not a withheld id)."""
    return dv.DIAL_NUMBER.fullmatch(number) is not None


class CallbackBook:
    def __init__(self, entries: Iterable[Callback] = ()) -> None:
        self._entries: dict[str, Callback] = {e.call_id: e for e in entries if e.pending}

    def pending(self) -> list[Callback]:
        """Still owed a callback, oldest abandonment first."""
        return sorted(self._entries.values(), key=lambda e: e.abandoned_at)

    def get(self, call_id: str) -> Callback | None:
        return self._entries.get(call_id)

    def apply(self, effects: Iterable[tr.Effect]) -> tuple[list[Callback], list[Change]]:
        """Track the effects of the call tracker; returns (entries to persist, changes)."""
        saved: list[Callback] = []
        changes: list[Change] = []
        for effect in effects:
            match effect:
                case tr.CallEnded(record=rec) if rec.outcome in OWED and dialable(
                    rec.caller_number
                ):
                    entry = Callback(
                        rec.call_id,
                        rec.service,
                        rec.caller_number,
                        rec.ended_at or 0.0,
                        rec.outcome,
                        record=rec,
                    )
                    self._entries[entry.call_id] = entry
                    saved.append(entry)
                case tr.CallAnswered(record=rec) if rec.caller_number:
                    # The same number called again and a call taker answered it.
                    for owed in self.pending():
                        if owed.number == rec.caller_number and owed.service == rec.service:
                            closed = self._close(owed, rec.answered_at or 0.0, "recalled")
                            saved.append(closed)
                            changes.append(Closed(closed))
                case tr.CallbackResult(at=at, call_id=call_id, status=status):
                    held = self._entries.get(call_id)
                    if held is None:
                        continue
                    result = DIAL_RESULTS.get(status, "failed")
                    entry = replace(
                        held,
                        attempts=held.attempts + 1,
                        first_attempt_at=held.first_attempt_at or at,
                        claimed_by=None,
                        claimed_until=None,
                    )
                    self._entries[call_id] = entry
                    changes.append(Attempted(entry, result, at))
                    if result == "answered":
                        entry = self._close(entry, at, "answered")
                        changes.append(Closed(entry))
                    saved.append(entry)
        return saved, changes

    def claim(self, who: str, now: float) -> Callback | None:
        """The oldest pending entry nobody holds, leased to ``who``; None if none."""
        for entry in self.pending():
            if entry.claimed_until is None or entry.claimed_until <= now:
                claimed = replace(entry, claimed_by=who, claimed_until=now + CLAIM_SECONDS)
                self._entries[entry.call_id] = claimed
                return claimed
        return None

    def _close(self, entry: Callback, at: float, result: str) -> Callback:
        closed = replace(entry, closed_at=at, result=result, claimed_by=None, claimed_until=None)
        self._entries.pop(entry.call_id, None)
        return closed
