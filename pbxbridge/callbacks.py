"""The callback list: abandoned and unanswered emergency calls still owed a call back.

NENA-STA-020.1 §2.2.7: an abandoned emergency call SHOULD be documented and the
caller called back at least once. Pure: the tracker's effects and call takers' claims
in, changes out. Each change is an effect the pipeline fans out like the tracker's
(persisted by callback_store.py, counted by metrics, sent as ``call.updated``).

Owed a callback: abandoned and unanswered calls, and interrupted calls that were never
answered (pbxbridge lost sight of them: the caller may never have been helped).

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
# A phone may claim this often (a call taker presses the feature code a few times a
# minute at most); more is refused and counted: a stuck or looping script on one phone
# cannot drain the list. Who may name a phone at all is the socket's group (README).
CLAIMS_PER_MINUTE = 6
OWED = ("abandoned", "unanswered", "interrupted")
RESULTS = ("answered", "recalled", "no_answer", "busy", "failed")

MAX_CLAIMANTS = 1_000
CLAIM_RESULTS = ("granted", "empty", "limited")

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
    outcome: str  # of the original call: abandoned | unanswered | interrupted
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
class Queued:
    """A caller joined the list."""

    entry: Callback


@dataclass(frozen=True, slots=True)
class Claimed:
    """A call taker's feature code leased the entry (``POST /v1/callbacks/claim``)."""

    entry: Callback


@dataclass(frozen=True, slots=True)
class ClaimRefused:
    """A claim that got no caller: the list is empty (for this phone), or the phone
    claimed too often."""

    who: str
    at: float
    reason: str  # "empty" | "limited"


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


Change = Queued | Claimed | ClaimRefused | Closed | Attempted


def owed(rec: tr.CallRecord) -> bool:
    """Whether the caller of this ended call is owed a call back."""
    return is_owed(rec.outcome, rec.caller_number, answered=rec.answered_at is not None)


def is_owed(outcome: str | None, number: str, *, answered: bool) -> bool:
    """:func:`owed` of a call known only by these (a stored record, in the report)."""
    if outcome not in OWED or not dialable(number):
        return False
    return outcome != "interrupted" or not answered


def dialable(number: str) -> bool:
    """Only a real number can be called back (not "anonymous", not a withheld id)."""
    return dv.DIAL_NUMBER.fullmatch(number) is not None


class CallbackBook:
    def __init__(self, entries: Iterable[Callback] = ()) -> None:
        self._entries: dict[str, Callback] = {e.call_id: e for e in entries if e.pending}
        self._claims: dict[str, list[float]] = {}  # phone -> its claims in the last minute

    def pending(self) -> list[Callback]:
        """Still owed a callback, oldest abandonment first."""
        return sorted(self._entries.values(), key=lambda e: e.abandoned_at)

    def get(self, call_id: str) -> Callback | None:
        return self._entries.get(call_id)

    def apply(self, effects: Iterable[tr.Effect]) -> list[Change]:
        """Follow the call tracker's effects; returns what changed on the list."""
        changes: list[Change] = []
        for effect in effects:
            match effect:
                case tr.CallEnded(record=rec) if owed(rec):
                    entry = Callback(
                        rec.call_id,
                        rec.service,
                        rec.caller_number,
                        rec.ended_at or 0.0,
                        rec.outcome or "",
                        record=rec,
                    )
                    self._entries[entry.call_id] = entry
                    changes.append(Queued(entry))
                case tr.CallAnswered(record=rec) if rec.caller_number:
                    # The same number called again and a call taker answered it.
                    # Picked by number before sorting: a busy day's list is not sorted
                    # for every answered call.
                    owed_here = [
                        e
                        for e in self._entries.values()
                        if e.number == rec.caller_number and e.service == rec.service
                    ]
                    for pending in sorted(owed_here, key=lambda e: e.abandoned_at):
                        closed = self._close(pending, rec.answered_at or 0.0, "recalled")
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
                        changes.append(Closed(self._close(entry, at, "answered")))
        return changes

    def claim(self, who: str, now: float) -> Claimed | ClaimRefused:
        """Lease the oldest pending entry nobody holds to the phone ``who``. A phone
        holds one lease at a time (claiming again returns it, unextended) and may claim
        CLAIMS_PER_MINUTE times a minute."""
        recent = [t for t in self._claims.get(who, ()) if t > now - 60.0]
        if len(recent) >= CLAIMS_PER_MINUTE:
            self._claims[who] = recent
            return ClaimRefused(who, now, "limited")
        self._claims.pop(who, None)  # re-inserted last: the dict runs oldest claim first
        self._claims[who] = [*recent, now]
        while len(self._claims) > MAX_CLAIMANTS:  # phones quiet for a minute go first
            oldest, times = next(iter(self._claims.items()))
            if times[-1] > now - 60.0:
                break
            del self._claims[oldest]
        pending = self.pending()
        for entry in pending:
            if entry.claimed_by == who and entry.claimed_until and entry.claimed_until > now:
                return Claimed(entry)
        for entry in pending:
            if entry.claimed_until is None or entry.claimed_until <= now:
                claimed = replace(entry, claimed_by=who, claimed_until=now + CLAIM_SECONDS)
                self._entries[entry.call_id] = claimed
                return Claimed(claimed)
        return ClaimRefused(who, now, "empty")

    def _close(self, entry: Callback, at: float, result: str) -> Callback:
        closed = replace(entry, closed_at=at, result=result, claimed_by=None, claimed_until=None)
        self._entries.pop(entry.call_id, None)
        return closed
