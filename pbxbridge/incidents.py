"""The call record and incident event as the dispatch backend receives them. Pure.

An incident event is serialised once, here, into the exact bytes that are stored in
the outbox and POSTed on every attempt: a retry re-sends identical bytes under the
same ``Idempotency-Key``. Event ids are deterministic from the call, so an event
announced again after a restart (or by a second pbxbridge watching the same PBX) has
the same id and is deduplicated by the outbox and by the backend.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from pbxbridge import callbacks as cb
from pbxbridge.tracker import CallAnswered, CallEnded, CallOffered, CallRecord, CallUpdated, Effect

SCHEMA = "pbxbridge.incident/1"

OFFERED = "call.offered"
ANSWERED = "call.answered"
ENDED = "call.ended"
UPDATED = "call.updated"  # hook-driven updates; repeated, so its id carries a number
TYPES = (OFFERED, ANSWERED, ENDED, UPDATED)


def rfc3339(ts: float | None) -> str | None:
    """Unix seconds as RFC 3339 UTC with microseconds (Asterisk's Timestamp precision)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_rfc3339(text: str | None) -> float | None:
    """The inverse of :func:`rfc3339` (to the microsecond)."""
    if text is None:
        return None
    return datetime.fromisoformat(text).timestamp()  # Python 3.11 reads the "Z" itself


def call_json(rec: CallRecord) -> dict[str, Any]:
    """The call record: times in RFC 3339 UTC, durations in seconds as numbers."""
    return {
        "call_id": rec.call_id,
        "linkedid": rec.linkedid,
        "service": rec.service,
        "caller": {"number": rec.caller_number, "name": rec.caller_name},
        "offered_at": rfc3339(rec.offered_at),
        "offered_at_estimated": rec.offered_at_estimated,
        "queued_at": rfc3339(rec.queued_at),
        "answered_at": rfc3339(rec.answered_at),
        "answered_at_estimated": rec.answered_at_estimated,
        "ended_at": rfc3339(rec.ended_at),
        "outcome": rec.outcome,
        "abandon_stage": rec.abandon_stage,
        "queue": rec.queue,
        "agent": rec.agent,
        "queues": list(rec.queues),
        "answer_seconds": rec.answer_seconds,
        "wait_seconds": rec.wait_seconds,
        "talk_seconds": rec.talk_seconds,
        "ring_attempts": rec.ring_attempts,
        "ring_no_answer": rec.ring_no_answer,
        "category": rec.category,
        "dispatched_to": [{"agency": a, "at": rfc3339(at)} for a, at in rec.dispatched_to],
    }


def record_from_json(call: dict[str, Any]) -> CallRecord:
    """The record back from :func:`call_json` (the outbox's last known state of a call)."""
    offered_at = parse_rfc3339(call["offered_at"])
    assert offered_at is not None
    return CallRecord(
        call_id=call["call_id"],
        linkedid=call["linkedid"],
        service=call["service"],
        caller_number=call["caller"]["number"],
        caller_name=call["caller"]["name"],
        offered_at=offered_at,
        offered_at_estimated=call["offered_at_estimated"],
        queued_at=parse_rfc3339(call["queued_at"]),
        answered_at=parse_rfc3339(call["answered_at"]),
        answered_at_estimated=call.get("answered_at_estimated", False),
        ended_at=parse_rfc3339(call["ended_at"]),
        queue=call["queue"],
        agent=call["agent"],
        queues=tuple(call["queues"]),
        ring_attempts=call["ring_attempts"],
        ring_no_answer=call["ring_no_answer"],
        outcome=call["outcome"],
        abandon_stage=call["abandon_stage"],
        category=call.get("category"),
        dispatched_to=tuple(
            (d["agency"], parse_rfc3339(d["at"]) or 0.0) for d in call.get("dispatched_to", ())
        ),
    )


@dataclass(frozen=True, slots=True)
class Incident:
    """One incident event, ready for the outbox: ``body`` is the exact bytes to POST.

    ``record`` and ``call`` (the JSON text of the body's ``call`` object) are what the
    call store keeps of it: the same call record, never a second definition.
    """

    event_id: str
    call_id: str
    type: str
    occurred_at: float  # Unix seconds
    body: bytes
    record: CallRecord | None = field(default=None, compare=False)
    call: str = field(default="", compare=False)


def event_id(call_id: str, type_: str, n: int | None = None) -> str:
    """``<call id>:<type>``; a repeated type (call.updated) adds its number: ``...:<n>``."""
    if (type_ == UPDATED) != (n is not None):
        raise ValueError("a number is required for call.updated and only for it")
    return f"{call_id}:{type_}" if n is None else f"{call_id}:{type_}:{n}"


def incident(
    rec: CallRecord,
    type_: str,
    at: float,
    n: int | None = None,
    extra: dict[str, Any] | None = None,
) -> Incident:
    """The event ``type_`` of call ``rec`` that happened at ``at`` (Unix seconds);
    ``extra`` adds keys to the call (the callback state)."""
    if type_ not in TYPES:
        raise ValueError(f"unknown incident type {type_!r}")
    eid = event_id(rec.call_id, type_, n)
    call = _dumps({**call_json(rec), **(extra or {})})
    # The call object is serialised once and spliced in: the bytes are json.dumps's of
    # the whole document, and the store keeps exactly the text the backend receives.
    head = _dumps({"schema": SCHEMA, "event_id": eid, "type": type_, "occurred_at": rfc3339(at)})
    body = f'{head[:-1]},"call":{call}}}'
    return Incident(eid, rec.call_id, type_, at, body.encode("utf-8"), rec, call)


def _dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def callback_json(e: cb.Callback) -> dict[str, Any]:
    """A callback list entry as the local API and ``call.updated`` show it."""
    data = {f.name: getattr(e, f.name) for f in fields(e) if f.name != "record"}
    for key in ("abandoned_at", "first_attempt_at", "claimed_until", "closed_at"):
        data[key] = rfc3339(data[key])
    return data


def from_effect(effect: Effect | cb.Change) -> Incident | None:
    """The incident event for an effect, or None when dispatch does not need it."""
    match effect:
        case CallOffered(record=rec):
            return incident(rec, OFFERED, rec.offered_at)
        case CallAnswered(record=rec) if rec.answered_at is not None:
            return incident(rec, ANSWERED, rec.answered_at)
        case CallEnded(record=rec) if rec.ended_at is not None:
            return incident(rec, ENDED, rec.ended_at)
        case CallUpdated(record=rec, at=at):
            # Asterisk's microsecond Timestamp of the hook makes the id deterministic.
            return incident(rec, UPDATED, at, update_number(at))
        case cb.Attempted(entry=entry) | cb.Closed(entry=entry) if entry.record is not None:
            # The callback state rides on a call.updated of the original call.
            state = callback_json(entry)
            if isinstance(effect, cb.Attempted):
                state["last_attempt"] = {"result": effect.result, "at": rfc3339(effect.at)}
            return incident(
                entry.record,
                UPDATED,
                effect.at,
                # An answered callback is an attempt and a close at the same instant: two ids.
                update_number(effect.at) + isinstance(effect, cb.Closed),
                extra={"callback": state},
            )
    return None


def update_number(at: float) -> int:
    """The ``n`` of a ``call.updated`` event id: its time in microseconds."""
    return round(at * 1_000_000)
