"""A seeded mix of made-up calls, each with its incident events and store rows, so
that store tests can check queries against the records themselves."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from pbxbridge import incidents as inc
from pbxbridge import tracker as tr
from pbxbridge.store_rows import Row, rows_of

# 2026-11-01 00:00 in Asia/Jakarta (UTC+7), a Sunday.
NOV_1_JAKARTA = 1_793_466_000.0
AGENTS = ("Taker 1001", "Taker 1002", "Taker 1003")
AGENCIES = ("police", "fire", "ambulance", "search_and_rescue")
CATEGORIES = ("emergency", "information", "prank", "ghost")


@dataclass(frozen=True)
class MixedCall:
    record: tr.CallRecord  # as it ended (the oracle)
    incidents: tuple[inc.Incident, ...]

    @property
    def rows(self) -> list[Row]:
        return rows_of((), self.incidents, "test")


def call(n: int, rng: random.Random, start: float, pbx: str = "pbx1") -> MixedCall:
    offered_at = round(start + rng.uniform(0, 86400 * 3), 6)
    linkedid = f"{offered_at:.6f}"
    rec = tr.CallRecord(
        call_id=f"{pbx}:{linkedid}.{n}",
        linkedid=linkedid,
        service="112",
        caller_number=f"0812{rng.randrange(20):04d}",  # repeats: 20 numbers
        caller_name="",
        offered_at=offered_at,
        queued_at=offered_at + 4,
        # One in five overflows to the backup queue; the answering queue is set at the
        # answer, as the tracker does.
        queues=("calltakers",) if rng.random() < 0.8 else ("calltakers", "backup"),
    )
    events = [inc.incident(rec, inc.OFFERED, offered_at)]
    fate = rng.choices(["answered", "abandoned", "unanswered", "interrupted"], [70, 20, 5, 5])[0]
    if fate == "answered":
        answered_at = round(offered_at + rng.uniform(3, 40), 6)
        rec = replace(rec, answered_at=answered_at, agent=rng.choice(AGENTS), queue=rec.queues[-1])
        events.append(inc.incident(rec, inc.ANSWERED, answered_at))
        if rng.random() < 0.6:
            at = round(answered_at + 20, 6)
            rec = replace(rec, category=rng.choice(CATEGORIES))
            events.append(inc.incident(rec, inc.UPDATED, at, inc.update_number(at)))
        if rng.random() < 0.4:
            at = round(answered_at + 30, 6)
            agencies = rng.sample(AGENCIES, rng.choice([1, 1, 2]))
            rec = replace(rec, dispatched_to=tuple((a, at) for a in agencies))
            events.append(inc.incident(rec, inc.UPDATED, at, inc.update_number(at)))
        ended_at = round(answered_at + rng.uniform(30, 300), 6)
    else:
        ended_at = round(offered_at + rng.uniform(2, 60), 6)
    stage = rng.choice(["before_queue", "queue", "ringing"]) if fate == "abandoned" else None
    rec = replace(rec, ended_at=ended_at, outcome=fate, abandon_stage=stage)
    events.append(inc.incident(rec, inc.ENDED, ended_at))
    return MixedCall(rec, tuple(events))


def mix(count: int, seed: int = 7, start: float = NOV_1_JAKARTA) -> list[MixedCall]:
    rng = random.Random(seed)
    return [call(n, rng, start) for n in range(count)]
