"""The incident event as the backend receives it: schema, ids, times."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from pbxbridge import incidents as inc
from pbxbridge import tracker as tr

T0 = 1_767_225_600.25  # 2026-01-01T00:00:00.25Z

REC = tr.CallRecord(
    call_id="pbx1:1767225600.42",
    linkedid="1767225600.42",
    service="112",
    caller_number="0812345678",
    caller_name="Siti Müller",
    offered_at=T0,
    queued_at=T0 + 8.5,
    queues=("calltakers",),
)
ANSWERED = replace(REC, answered_at=T0 + 12.0, queue="calltakers", agent="PJSIP/ct1")
ENDED = replace(ANSWERED, ended_at=T0 + 90.0, outcome="answered")

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def test_body_has_the_schema_fields() -> None:
    """A body is {schema, event_id, type, occurred_at, call} and nothing else."""
    event = inc.incident(ENDED, inc.ENDED, ENDED.ended_at or 0)
    doc = json.loads(event.body)
    assert set(doc) == {"schema", "event_id", "type", "occurred_at", "call"}
    assert doc["schema"] == "pbxbridge.incident/1"
    assert doc["type"] == "call.ended"
    assert doc["event_id"] == event.event_id
    assert doc["occurred_at"] == "2026-01-01T00:01:30.250000Z"
    assert doc["call"] == inc.call_json(ENDED)
    assert doc["call"]["answer_seconds"] == 12.0
    assert doc["call"]["talk_seconds"] == 78.0
    assert doc["call"]["caller"] == {"number": "0812345678", "name": "Siti Müller"}


def test_body_is_compact_utf8_json() -> None:
    """The body is UTF-8 JSON with non-ASCII names kept as they are (not \\u escapes)."""
    body = inc.incident(REC, inc.OFFERED, T0).body
    assert "Siti Müller".encode() in body
    assert b", " not in body and b": " not in body


def test_event_ids_are_deterministic() -> None:
    """The same effect of the same call always gives the same event id and the same bytes."""
    a = inc.from_effect(tr.CallOffered(REC))
    b = inc.from_effect(tr.CallOffered(REC))
    assert a is not None and b is not None
    assert a.event_id == b.event_id == "pbx1:1767225600.42:call.offered"
    assert a.body == b.body


def test_each_effect_type_has_its_own_id_and_time() -> None:
    """call.offered/answered/ended use <call id>:<type> and the time of that step."""
    events = [
        inc.from_effect(tr.CallOffered(REC)),
        inc.from_effect(tr.CallAnswered(ANSWERED)),
        inc.from_effect(tr.CallEnded(ENDED)),
    ]
    assert [e.event_id.rsplit(":", 1)[1] for e in events if e] == [
        "call.offered",
        "call.answered",
        "call.ended",
    ]
    assert [e.occurred_at for e in events if e] == [T0, T0 + 12.0, T0 + 90.0]


def test_call_updated_ids_carry_a_number() -> None:
    """A repeated type (call.updated) is numbered: <call id>:call.updated:<n>."""
    assert inc.event_id("c", inc.UPDATED, 3) == "c:call.updated:3"
    with pytest.raises(ValueError):
        inc.event_id("c", inc.UPDATED)
    with pytest.raises(ValueError):
        inc.event_id("c", inc.OFFERED, 1)


def test_effects_dispatch_does_not_need_are_skipped() -> None:
    """Ring-no-answer and anomalies are not incident events."""
    assert inc.from_effect(tr.RingNoAnswer(T0, "112", "q", "a")) is None
    assert inc.from_effect(tr.Anomaly("x", "1")) is None


def test_times_are_rfc3339_utc_with_microseconds() -> None:
    """Every time in a body is RFC 3339, UTC ('Z'), microsecond precision; absent is null."""
    doc = json.loads(inc.incident(REC, inc.OFFERED, T0).body)
    assert RFC3339_UTC.match(doc["occurred_at"])
    assert RFC3339_UTC.match(doc["call"]["offered_at"])
    assert doc["call"]["answered_at"] is None
    assert inc.rfc3339(0.0) == "1970-01-01T00:00:00.000000Z"


def test_record_round_trips_through_json() -> None:
    """The outbox's stored call JSON gives back the same record (times to the microsecond)."""
    assert inc.record_from_json(inc.call_json(ENDED)) == ENDED
