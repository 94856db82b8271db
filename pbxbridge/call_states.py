"""The life of an emergency call: its states, every transition, the outcome each state
at hang-up means, the working state the tracker keeps per call, and what a snapshot
shows a call doing now. Pure; read by the tracker (which moves calls only through
``TRANSITIONS``) and by metrics (state labels, anomaly kinds).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pbxbridge import events as ev
from pbxbridge.records import CallRecord


class State(enum.Enum):
    ARRIVING = "arriving"  # greeting / IVR, not yet in a queue
    WAITING = "waiting"  # in a queue, no call taker's phone ringing
    RINGING = "ringing"  # in a queue, at least one call taker's phone ringing
    TALKING = "talking"  # a call taker answered
    LEFT_QUEUE = "left_queue"  # the last queue timed out; the PBX is giving up
    UNKNOWN = "unknown"  # not seen since an AMI gap or a restart: maybe answered meanwhile
    ENDED = "ended"


UNANSWERED = (State.ARRIVING, State.WAITING, State.RINGING, State.LEFT_QUEUE, State.UNKNOWN)
LIVE = (*UNANSWERED, State.TALKING)
# What a snapshot can see a call doing (see Tracker._seen).
# What a snapshot can tell of an unanswered call (see seen_now): UNKNOWN when it shows
# something that has no safe reading (a caller bridged outside Queue()).
SEEN = (State.WAITING, State.RINGING, State.TALKING, State.UNKNOWN)

# (state, what happened) -> next state. Every state change of an emergency call.
TRANSITIONS: Mapping[tuple[State, str], State] = {
    (State.ARRIVING, "queue_joined"): State.WAITING,
    (State.LEFT_QUEUE, "queue_joined"): State.WAITING,
    (State.WAITING, "agent_ringing"): State.RINGING,
    (State.RINGING, "agent_ringing"): State.RINGING,
    (State.RINGING, "last_ring_ended"): State.WAITING,
    (State.WAITING, "agent_answered"): State.TALKING,
    (State.RINGING, "agent_answered"): State.TALKING,
    # app_queue emits QueueCallerLeave just before AgentConnect when a call taker answers.
    (State.LEFT_QUEUE, "agent_answered"): State.TALKING,
    (State.WAITING, "queue_left"): State.LEFT_QUEUE,
    (State.RINGING, "queue_left"): State.LEFT_QUEUE,
    # After a gap, what is seen happening is exact again.
    (State.UNKNOWN, "queue_joined"): State.WAITING,
    (State.UNKNOWN, "agent_ringing"): State.RINGING,
    (State.UNKNOWN, "agent_answered"): State.TALKING,
    (State.UNKNOWN, "queue_left"): State.LEFT_QUEUE,
    # AMI dropped: anything may happen to an unanswered call until the next snapshot.
    **{(s, "session_lost"): State.UNKNOWN for s in UNANSWERED},
    # A snapshot is the present: it overrides whatever an unanswered call was last seen
    # doing; an answered call stays answered.
    **{(s, f"seen_{seen.value}"): seen for s in UNANSWERED for seen in SEEN},
    (State.TALKING, "seen_talking"): State.TALKING,
    **{(s, "ended"): State.ENDED for s in LIVE},
}

# State when the caller hung up -> (outcome, abandon stage).
END_OF_CALL: Mapping[State, tuple[str, str | None]] = {
    State.ARRIVING: ("abandoned", "before_queue"),
    State.WAITING: ("abandoned", "queue"),
    State.RINGING: ("abandoned", "ringing"),
    State.TALKING: ("answered", None),
    State.LEFT_QUEUE: ("unanswered", None),
    State.UNKNOWN: ("interrupted", None),
}


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    """Built from the config by :func:`pbxbridge.config.tracker_settings`; the fields
    with defaults are memory bounds, not configuration."""

    pbx_name: str
    emergency_queues: frozenset[str]
    default_service: str
    # An emergency call open longer than this is closed as interrupted: the tracker's
    # memory stays bounded even if a Hangup is ever lost.
    max_call_seconds: float
    categories: frozenset[str]
    agencies: Mapping[str, str]
    remember_finished: int = 10_000
    # Post-call hooks find "the call taker's last call" by phone; one entry per phone.
    remember_devices: int = 2_000


@dataclass(slots=True)
class CallState:
    """The mutable working state of one Linkedid; never leaves the tracker."""

    linkedid: str
    first_seen: float
    estimated: bool = False
    channels: set[str] = field(default_factory=set)
    caller_side: set[str] = field(default_factory=set)
    record: CallRecord | None = None  # set once the call is known to be an emergency call
    state: State = State.ARRIVING
    ringing: set[str] = field(default_factory=set)
    hangup_requested: State | None = None
    caller_number: str = ""
    caller_name: str = ""
    agent_device: str = ""
    consult_agency: str | None = None  # an attended transfer's consultation leg


@dataclass(frozen=True, slots=True)
class Sighting:
    """What a snapshot shows a live call doing now."""

    state: State | None  # one of SEEN; None: nothing definite (keep what is known)
    in_queue: tuple[ev.LiveChannel, ...]  # the caller's channels in Queue()
    ringing: frozenset[str]  # Uniqueids of the call takers' phones being dialled


def seen_now(call: CallState, channels: Sequence[ev.LiveChannel]) -> Sighting:
    """Read a call's live channels (CoreShowChannels): bridged in Queue() -> talking; in
    Queue() with a call taker's phone dialled -> ringing; in Queue() -> waiting. Outside
    Queue() a snapshot cannot tell a greeting from the goodbye after a queue timeout,
    nor a call taker's transfer from any other bridge: None when the caller is not
    bridged (what is known stands), UNKNOWN when it is (never abandoned, never
    unanswered from a guess)."""
    in_queue = tuple(ch for ch in channels if ch.queue is not None)
    # The caller's side: its first channel, the channel in Queue(), and the other halves
    # of those that are Local channels. Any other channel of the call is one app_queue
    # dialled: a call taker's phone (ringing while nobody is bridged). Its Application
    # is not reliably AppQueue: a Queue b() pre-dial Gosub leaves "Return" there.
    caller = {ch.pair for ch in channels if ch in in_queue or ch.ref.uniqueid == call.linkedid}
    ringing = frozenset(
        ch.ref.uniqueid for ch in channels if ch.pair not in caller and not ch.bridged
    )
    state: State | None
    if any(ch.bridged for ch in in_queue):
        state = State.TALKING
    elif in_queue:
        state = State.RINGING if ringing else State.WAITING
    elif any(ch.bridged for ch in channels if ch.pair in caller):
        state = State.UNKNOWN
    else:
        state = None
    return Sighting(state, in_queue, ringing if state is State.RINGING else frozenset())
