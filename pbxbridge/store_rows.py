"""What the call store keeps, derived from the pipeline's effects. Pure.

Three kinds of row, each idempotent so that a row written twice (a restart re-announcing
a call, two pbxbridge instances watching one PBX, a replica catching up) is kept once:

- a call: one row per call id, replaced only by a version at least as new. The version
  orders a call's events by Asterisk's time, then by how far the call had got, so a
  late or repeated older event never overwrites a newer state;
- a call taker's change of state in a queue (members.STATES), keyed by its time;
- an AMI session going up or down, per pbxbridge instance, keyed by its time;
- (local only) each instance's last heartbeat.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pbxbridge import incidents as inc
from pbxbridge.records import Heartbeat, MemberChanged, SessionChanged
from pbxbridge.values import value

# How far a call had got: at the same instant, an end outranks an answer or an update.
_RANK = {inc.OFFERED: 0, inc.UPDATED: 1, inc.ANSWERED: 2, inc.ENDED: 3}


@value
class CallRow:
    call_id: str
    version: int
    offered_at: float
    outcome: str | None
    abandon_stage: str | None
    queue: str | None
    agent: str | None
    category: str | None
    queues: str  # ",calltakers,backup,": every queue the call waited in
    agencies: str  # ",police,fire,": one LIKE '%,police,%' finds a dispatch
    caller_number: str
    doc: str  # the incident's call object, as JSON text


@value
class AgentRow:
    at: float
    queue: str
    agent: str
    state: str
    reason: str


@value
class AmiRow:
    instance: str
    at: float
    up: bool
    detail: str


@value
class AliveRow:
    """This instance's last heartbeat (local only: what a restart reads)."""

    instance: str
    at: float


Row = CallRow | AgentRow | AmiRow | AliveRow


def version(occurred_at: float, type_: str) -> int:
    return round(occurred_at * 1_000_000) * 4 + _RANK[type_]


def call_row(i: inc.Incident) -> CallRow:
    rec = i.record
    assert rec is not None, "an incident built by incidents.incident carries its record"
    agencies = "".join(f",{a}" for a, _ in rec.dispatched_to)
    queues = "".join(f",{q}" for q in rec.queues)
    return CallRow(
        call_id=i.call_id,
        version=version(i.occurred_at, i.type),
        offered_at=rec.offered_at,
        outcome=rec.outcome,
        abandon_stage=rec.abandon_stage,
        queue=rec.queue,
        agent=rec.agent,
        category=rec.category,
        queues=f"{queues}," if queues else "",
        agencies=f"{agencies}," if agencies else "",
        caller_number=rec.caller_number,
        doc=i.call,
    )


def rows_of(
    effects: Iterable[object], incidents: Sequence[inc.Incident], instance: str
) -> list[Row]:
    """The store's rows for one batch of effects and the incidents made of them."""
    rows: list[Row] = [call_row(i) for i in incidents]
    for e in effects:
        if isinstance(e, MemberChanged):
            rows.append(AgentRow(e.at, e.queue, e.member, e.state, e.reason))
        elif isinstance(e, SessionChanged):
            rows.append(AmiRow(instance, e.at, e.up, e.detail))
        elif isinstance(e, Heartbeat):
            rows.append(AliveRow(instance, e.at))
    return rows
