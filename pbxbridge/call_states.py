"""The life of an emergency call as a state machine: its states, every transition,
and the outcome each state at hang-up means. Pure data, read by the tracker (which
moves calls only through ``TRANSITIONS``) and by metrics (state labels, anomaly kinds).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


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
SEEN = (State.ARRIVING, State.WAITING, State.RINGING, State.TALKING, State.LEFT_QUEUE)

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
