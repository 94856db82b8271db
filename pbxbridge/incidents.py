"""The call record and incident event as the dispatch backend receives them. Pure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pbxbridge.tracker import CallRecord

SCHEMA = "pbxbridge.incident/1"


def rfc3339(ts: float | None) -> str | None:
    """Unix seconds as RFC 3339 UTC with microseconds (Asterisk's Timestamp precision)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


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
    }
