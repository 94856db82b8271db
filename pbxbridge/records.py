"""The call record and the tracker's effects: what the tracker tells the rest of pbxbridge.

Pure data, shared by the tracker (which produces it) and every sink (outbox, metrics,
callbacks, logs) that consumes it.
"""

from __future__ import annotations

from pbxbridge.values import value

OUTCOMES = ("answered", "abandoned", "unanswered", "interrupted")
ABANDON_STAGES = ("before_queue", "queue", "ringing")


@value
class CallRecord:
    """A call as the dispatch backend and the metrics see it (times: Unix seconds)."""

    call_id: str
    linkedid: str
    service: str
    caller_number: str
    caller_name: str
    offered_at: float
    offered_at_estimated: bool = False  # adopted after a gap: from the channel's Duration
    queued_at: float | None = None
    answered_at: float | None = None
    # Answered while pbxbridge could not see it (a restart, an AMI gap): the time of the
    # first snapshot that showed the caller bridged, the latest the answer can have been.
    answered_at_estimated: bool = False
    ended_at: float | None = None
    queue: str | None = None
    agent: str | None = None
    queues: tuple[str, ...] = ()
    ring_attempts: int = 0
    ring_no_answer: int = 0
    outcome: str | None = None
    abandon_stage: str | None = None
    category: str | None = None
    dispatched_to: tuple[tuple[str, float], ...] = ()  # (agency, when), in order

    @property
    def answer_seconds(self) -> float | None:
        if self.answered_at is None:
            return None
        return round(self.answered_at - self.offered_at, 6)

    @property
    def wait_seconds(self) -> float | None:
        end = self.answered_at if self.answered_at is not None else self.ended_at
        if self.queued_at is None or end is None:
            return None
        return round(max(0.0, end - self.queued_at), 6)

    @property
    def talk_seconds(self) -> float | None:
        if self.answered_at is None or self.ended_at is None:
            return None
        return round(max(0.0, self.ended_at - self.answered_at), 6)

    @property
    def abandon_seconds(self) -> float | None:
        if self.outcome != "abandoned" or self.ended_at is None:
            return None
        return round(self.ended_at - self.offered_at, 6)


@value
class CallOffered:
    record: CallRecord


@value
class CallAnswered:
    record: CallRecord


@value
class CallEnded:
    record: CallRecord


@value
class CallUpdated:
    """A call taker classified or dispatched the call (during it or right after)."""

    record: CallRecord
    what: str  # "category" | "dispatch"
    at: float  # when the call taker acted (Asterisk's Timestamp)


@value
class CallbackResult:
    """The callback feature dialled an abandoned caller back (dialplan DIALSTATUS)."""

    at: float
    call_id: str
    status: str
    device: str


@value
class RingNoAnswer:
    at: float
    service: str
    queue: str
    agent: str


@value
class Anomaly:
    """Something the tracker did not expect; counted and logged by the shell."""

    kind: str
    linkedid: str
    detail: str = ""


@value
class SessionChanged:
    """The AMI session came up (``detail``: the banner) or went down (the reason);
    ``unknown``: unanswered calls whose state is unknown until the next snapshot."""

    at: float
    up: bool
    detail: str
    unknown: int = 0


@value
class Resynced:
    """A snapshot set every held call from Asterisk's present: ``live`` calls by the
    state now seen (``states``), ``closed`` as interrupted, ``adopted`` newly found."""

    at: float
    live: int
    closed: int
    adopted: int
    states: tuple[tuple[str, int], ...]


@value
class MemberChanged:
    """A call taker's state in one queue changed (``state``: members.STATES; ``reason``:
    Asterisk's pause reason while paused)."""

    at: float
    queue: str
    member: str
    state: str
    reason: str = ""


@value
class Heartbeat:
    """The pipeline is alive (each housekeeping tick). The store keeps the last one, so
    that after a crash the time pbxbridge stopped watching is known (within a tick)."""

    at: float


Effect = (
    CallOffered
    | CallAnswered
    | CallEnded
    | CallUpdated
    | CallbackResult
    | RingNoAnswer
    | Anomaly
    | SessionChanged
    | Resynced
    | MemberChanged
    | Heartbeat
)
