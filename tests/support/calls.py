"""Incident events of made-up calls, for outbox and delivery tests."""

from __future__ import annotations

from dataclasses import replace

from pbxbridge import incidents as inc
from pbxbridge import tracker as tr

T0 = 1_767_225_600.0


def record(n: int, pbx: str = "pbx1") -> tr.CallRecord:
    linkedid = f"{T0 + n:.0f}.{n}"
    return tr.CallRecord(
        call_id=f"{pbx}:{linkedid}",
        linkedid=linkedid,
        service="112",
        caller_number=f"08123{n:05d}",
        caller_name="",
        offered_at=T0 + n,
        queued_at=T0 + n + 5,
        queues=("calltakers",),
    )


def lifecycle(n: int, pbx: str = "pbx1") -> list[inc.Incident]:
    """call.offered, call.answered, call.ended of call ``n``."""
    rec = record(n, pbx)
    answered = replace(rec, answered_at=rec.offered_at + 9, queue="calltakers", agent="ct1")
    ended = replace(answered, ended_at=rec.offered_at + 60, outcome="answered")
    return [
        inc.incident(rec, inc.OFFERED, rec.offered_at),
        inc.incident(answered, inc.ANSWERED, rec.offered_at + 9),
        inc.incident(ended, inc.ENDED, rec.offered_at + 60),
    ]
