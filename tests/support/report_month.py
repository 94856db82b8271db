"""One seeded month of made-up data for the monthly report, and an oracle of its numbers.

``month()`` builds November 2026 in Asia/Jakarta the way pbxbridge would have stored
it: calls (every outcome and abandon stage, categories, dispatches, callbacks, arrival
and answer times estimated after a gap, callers that cannot be called back, calls the
day before and after the period, two calls still open), four call takers' changes of
state and two pbxbridge instances' AMI sessions, with a blind start of the month and
a gap of a few hours. Each call keeps every step it went through (the incident, the
record as it then was, the callback state), so the store can be written as it stood
at any time (``Month.rows(until)``) and the oracle can see the same moment.

``oracle()`` computes every number of the report from the generator's own records
(CallRecord objects, CallbackState values, AgentRow and AmiRow lists) with plain
Python: never from the stored documents, never through pbxbridge's report code (only
``pbxbridge.callbacks.owed`` is borrowed, as the definition of owed, and
``pbxbridge.staffing`` for the Erlang models, fed with inputs computed here). The
readings it takes where the report's specification is open are listed at the top of
tests/component/test_report_numbers.py.
"""

from __future__ import annotations

import functools
import math
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pbxbridge import callbacks as cb
from pbxbridge import incidents as inc
from pbxbridge import staffing
from pbxbridge import tracker as tr
from pbxbridge.records import CallRecord
from pbxbridge.store_rows import AgentRow, AmiRow, Row, rows_of
from tests.support.call_mix import NOV_1_JAKARTA

JAKARTA = ZoneInfo("Asia/Jakarta")
FIRST = date(2026, 11, 1)
LAST = date(2026, 11, 30)
START = NOV_1_JAKARTA  # 2026-11-01 00:00 local, a Sunday
END = START + 30 * 86400  # 2026-12-01 00:00 local, excluded

QUEUE = "calltakers"
BACKUP = "backup"
T1, T2, T3, T4 = "Taker 1001", "Taker 1002", "Taker 1003", "Taker 1004"
# The configuration's categories: the last two are never used in the month.
CONFIGURED = ("emergency", "information", "prank", "ghost", "silent", "misdial")
UNCONFIGURED = ("hoax", "test_call")  # used by call takers, not in the configuration
AGENCIES = ("police", "fire", "ambulance", "search_and_rescue")
EDGES = (0, 5, 10, 15, 20, 30, 45, 60, 90, 120)
STAGES = ("before_queue", "queue", "ringing")
OUTCOMES = ("answered", "abandoned", "unanswered", "interrupted")
ACTIVE = ("available", "ringing", "in_call")  # staffing's "logged_in"
STANDARDS = (("NENA-STA-020.1", 15, 0.90), ("NENA-STA-020.1", 20, 0.95), ("NFPA 1225", 10, 0.90))
LEVEL = 0.9  # staffing: 90% ...
WITHIN = 15.0  # ... within 15 s of arrival
UP = "Asterisk Call Manager/9.0.0"
DOWN = "connection lost"


def local(day: date, hour: int = 0, minute: int = 0, second: float = 0.0) -> float:
    """Unix seconds of a Jakarta wall-clock time, on the microsecond grid."""
    whole = datetime(day.year, day.month, day.day, hour, minute, tzinfo=JAKARTA)
    return round(whole.timestamp() + second, 6)


def nov(day: int, hour: int = 0, minute: int = 0, second: float = 0.0) -> float:
    return local(date(2026, 11, day), hour, minute, second)


OCT_31 = date(2026, 10, 31)
DEC_1 = date(2026, 12, 1)
# The report's time for the whole month (after it), and a time inside the month's gap.
REPORT_NOW = local(date(2026, 12, 3), 9, 0, 0.5)
UNFINISHED_NOW = nov(14, 12, 0, 0.25)

# pbxbridge's AMI sessions (instance, at, up). Unobserved in November:
#   [Nov 1 00:00, 02:10:00.5)   blind start: pbx1-a lost its session on Oct 31, pbx1-b
#                               had none yet;
#   [Nov 14 11:30, 13:40:00.25) both down (pbx1-b covered pbx1-a from 10:05 to 11:30);
#   [Nov 22 03:00, 03:00:07.5)  a flap of pbx1-a while pbx1-b was down.
AMI_TRUTH: tuple[tuple[str, float, bool], ...] = (
    ("pbx1-a", local(date(2026, 10, 20), 8), True),
    ("pbx1-a", local(OCT_31, 23, 30), False),
    ("pbx1-a", nov(1, 2, 10, 0.5), True),
    ("pbx1-a", nov(14, 10, 5), False),
    ("pbx1-a", nov(14, 13, 40, 0.25), True),
    ("pbx1-a", nov(22, 3, 0), False),
    ("pbx1-a", nov(22, 3, 0, 7.5), True),
    ("pbx1-b", nov(10, 9), True),
    ("pbx1-b", nov(14, 11, 30), False),
    ("pbx1-b", nov(25, 8), True),
    ("pbx1-b", nov(28, 17), False),
)
# Slots the mix shapes on purpose: no call at all on Wednesdays 04:00-04:30, and only
# abandoned calls on Tuesdays 03:30-04:00 (its handle time is the period's).
EMPTY_SLOT = (2, "04:00")
ABANDONED_SLOT = (1, "03:30")


@dataclass(frozen=True)
class CallbackState:
    """The callback state of a call as the generator made it (not as stored)."""

    abandoned_at: float
    attempts: int
    first_attempt_at: float | None
    result: str | None  # answered | recalled once closed


@dataclass(frozen=True)
class Step:
    at: float  # when the event happened (the store's version order)
    incident: inc.Incident
    record: CallRecord  # the call as it was then
    callback: CallbackState | None


@dataclass(frozen=True)
class MonthCall:
    steps: tuple[Step, ...]

    @property
    def record(self) -> CallRecord:
        return self.steps[-1].record

    def as_of(self, now: float) -> Step | None:
        """The last step that had happened at ``now`` (None: the call had not arrived)."""
        seen = [s for s in self.steps if s.at <= now]
        return seen[-1] if seen else None


@dataclass(frozen=True)
class Month:
    calls: tuple[MonthCall, ...]
    agent_rows: tuple[AgentRow, ...]
    ami_rows: tuple[AmiRow, ...]

    def rows(self, until: float = math.inf) -> list[Row]:
        """The store's rows as they stood at ``until``."""
        incidents = [s.incident for c in self.calls for s in c.steps if s.at <= until]
        return [
            *rows_of((), incidents, "pbx1-a"),
            *(r for r in self.agent_rows if r.at <= until),
            *(r for r in self.ami_rows if r.at <= until),
        ]

    def pruned(self, before: float) -> Month:
        """What retention leaves: every row older than ``before`` deleted."""
        return Month(
            tuple(c for c in self.calls if c.record.offered_at >= before),
            tuple(r for r in self.agent_rows if r.at >= before),
            tuple(r for r in self.ami_rows if r.at >= before),
        )


# -- the generator ----------------------------------------------------------------------


def _weekday_slot(ts: float, tz: ZoneInfo = JAKARTA) -> tuple[int, str]:
    t = datetime.fromtimestamp(ts, tz)
    return t.weekday(), f"{t.hour:02d}:{30 * (t.minute >= 30):02d}"


def observed_spans(amis: Iterable[AmiRow]) -> list[tuple[float, float]]:
    """Every instance's up spans (an instance with no row yet is not watching)."""
    spans: list[tuple[float, float]] = []
    by_instance: dict[str, list[AmiRow]] = defaultdict(list)
    for r in amis:
        by_instance[r.instance].append(r)
    for rows in by_instance.values():
        up_since: float | None = None
        for r in sorted(rows, key=lambda r: r.at):
            if r.up and up_since is None:
                up_since = r.at
            elif not r.up and up_since is not None:
                spans.append((up_since, r.at))
                up_since = None
        if up_since is not None:
            spans.append((up_since, math.inf))
    return spans


def unobserved(amis: Iterable[AmiRow], lo: float, hi: float) -> list[tuple[float, float]]:
    """The maximal spans of [lo, hi) in which no instance had a session."""
    out: list[tuple[float, float]] = []
    t = lo
    for a, b in sorted(observed_spans(amis)):
        if b <= t:
            continue
        if a > t:
            out.append((t, min(a, hi)))
        t = max(t, b)
        if t >= hi:
            break
    if t < hi:
        out.append((t, hi))
    return [(a, b) for a, b in out if b > a]


AMI_ROWS = tuple(AmiRow(i, at, up, UP if up else DOWN) for i, at, up in AMI_TRUTH)
# Where the generator lets nothing happen unseen (the whole time it writes).
BLIND = tuple(unobserved(AMI_ROWS, local(date(2026, 10, 25)), local(date(2026, 12, 5))))


def _in_blind(t0: float, t1: float) -> bool:
    return any(t0 < b and t1 >= a for a, b in BLIND)


class _Call:
    """A call as it goes on: each change is a step (incident + record)."""

    def __init__(
        self,
        n: int,
        offered_at: float,
        number: str,
        queues: tuple[str, ...] = (QUEUE,),
        *,
        queued_at: float | None,
        estimated: bool = False,
        seen_at: float | None = None,
    ) -> None:
        offered_at = round(offered_at, 6)
        queued_at = round(queued_at, 6) if queued_at is not None else None
        linkedid = f"{offered_at:.6f}"
        self.rec = CallRecord(
            call_id=f"pbx1:{linkedid}.{n}",
            linkedid=linkedid,
            service="112",
            caller_number=number,
            caller_name="",
            offered_at=offered_at,
            offered_at_estimated=estimated,
            queued_at=queued_at,
            queues=queues,
            ring_attempts=0,
        )
        self.steps: list[Step] = []
        self.answered_rec: CallRecord | None = None
        self._step(seen_at if seen_at is not None else offered_at, inc.OFFERED)

    def _step(self, at: float, type_: str) -> None:
        n = inc.update_number(at) if type_ == inc.UPDATED else None
        self.steps.append(Step(at, inc.incident(self.rec, type_, at, n), self.rec, None))

    def answer(
        self, at: float, agent: str, *, estimated: bool = False, seen_at: float | None = None
    ) -> None:
        self.rec = replace(
            self.rec,
            answered_at=at,
            answered_at_estimated=estimated,
            queue=self.rec.queues[-1],
            agent=agent,
            ring_attempts=self.rec.ring_attempts + 1,
        )
        self.answered_rec = self.rec
        self._step(seen_at if seen_at is not None else at, inc.ANSWERED)

    def classify(self, at: float, category: str) -> None:
        self.rec = replace(self.rec, category=category)
        self._step(at, inc.UPDATED)

    def dispatch(self, at: float, agency: str) -> None:
        self.rec = replace(self.rec, dispatched_to=(*self.rec.dispatched_to, (agency, at)))
        self._step(at, inc.UPDATED)

    def end(self, at: float, outcome: str, stage: str | None = None) -> None:
        rings = 1 if stage == "ringing" and not self.rec.ring_attempts else 0
        self.rec = replace(
            self.rec,
            ended_at=at,
            outcome=outcome,
            abandon_stage=stage,
            ring_attempts=self.rec.ring_attempts + rings,
        )
        self._step(at, inc.ENDED)

    def callback(self, change: cb.Attempted | cb.Closed) -> None:
        e = change.entry
        made = inc.from_effect(change)
        assert made is not None and e.record is not None
        state = CallbackState(e.abandoned_at, e.attempts, e.first_attempt_at, e.result)
        at = change.at
        self.steps.append(Step(at, made, e.record, state))

    def done(self) -> MonthCall:
        return MonthCall(tuple(self.steps))


def _number(rng: random.Random, pool: str = "0812") -> str:
    r = rng.random()
    if r < 0.04:
        return "anonymous"
    if r < 0.05:
        return ""
    if r < 0.06:
        return "unknown"
    # 3,000 numbers for ~3,300 calls: some callers call again.
    return f"{pool}{rng.randrange(3000):07d}"


def _wait(rng: random.Random) -> float:
    """Seconds in the queue: mostly short, a long tail past two minutes."""
    r = rng.random()
    if r < 0.55:
        return rng.uniform(0.2, 9)
    if r < 0.85:
        return rng.uniform(9, 40)
    if r < 0.96:
        return rng.uniform(40, 130)
    return rng.uniform(130, 300)


def _agent(rng: random.Random, queue: str) -> str:
    if queue == BACKUP:
        return rng.choices((T4, T1, T2), (6, 3, 1))[0]
    return rng.choice((T1, T2, T3))


CATEGORY_WEIGHTS = {"emergency": 40, "information": 25, "prank": 15, "ghost": 12}
CATEGORY_WEIGHTS |= {"hoax": 5, "test_call": 3}


def _answered_life(c: _Call, rng: random.Random, answered_at: float) -> None:
    """Classified and dispatched (sometimes), then the call ends."""
    c.answer(answered_at, _agent(rng, c.rec.queues[-1]))
    updates: list[tuple[float, str, str]] = []
    if rng.random() < 0.65:
        cat = rng.choices(list(CATEGORY_WEIGHTS), list(CATEGORY_WEIGHTS.values()))[0]
        updates.append((round(answered_at + rng.uniform(5, 60), 6), "category", cat))
    if rng.random() < 0.4:
        at = round(answered_at + rng.uniform(10, 240), 6)
        for agency in rng.sample(AGENCIES, rng.choice((1, 1, 2))):
            updates.append((at, "dispatch", agency))
            at = round(at + rng.uniform(5, 90), 6)
    for at, what, value in sorted(updates):
        (c.classify if what == "category" else c.dispatch)(at, value)
    last = max([answered_at, *(u[0] for u in updates)])
    ended = max(answered_at + rng.uniform(30, 420), last + rng.uniform(1, 30))
    c.end(round(ended, 6), "answered")


def _random_call(n: int, rng: random.Random, offered_at: float, pool: str) -> _Call:
    number = _number(rng, pool)
    queues = (QUEUE,) if rng.random() < 0.85 else (QUEUE, BACKUP)
    fate = rng.choices(
        ("answered", "before_queue", "queue", "ringing", "unanswered", "int_wait", "int_talk"),
        (70, 4, 8, 5, 5, 4, 3),
    )[0]
    greeting = rng.uniform(1.5, 9)
    if fate == "before_queue":
        c = _Call(n, offered_at, number, queues[:1], queued_at=None)
        c.end(round(offered_at + rng.uniform(0.5, greeting), 6), "abandoned", "before_queue")
        return c
    queued_at = round(offered_at + greeting, 6)
    c = _Call(n, offered_at, number, queues, queued_at=queued_at)
    if fate == "answered":
        _answered_life(c, rng, round(queued_at + _wait(rng), 6))
    elif fate in ("queue", "ringing"):
        c.end(round(queued_at + _wait(rng), 6), "abandoned", fate)
    elif fate == "unanswered":
        c.end(round(queued_at + rng.uniform(60, 180), 6), "unanswered")
    elif fate == "int_wait":
        c.end(round(queued_at + rng.uniform(2, 100), 6), "interrupted")
    else:  # interrupted after the answer: not owed a callback
        answered_at = round(queued_at + _wait(rng), 6)
        c.answer(answered_at, _agent(rng, queues[-1]))
        c.end(round(answered_at + rng.uniform(10, 200), 6), "interrupted")
    return c


HOUR_WEIGHTS = (2, 1.5, 1, 1, 1, 1.5, 3, 5, 7, 8, 8, 8, 8, 8, 7, 7, 7, 8, 9, 9, 8, 6, 4, 3)


def _arrival(rng: random.Random, day0: float, days: int) -> float:
    day = rng.randrange(days)
    hour = rng.choices(range(24), HOUR_WEIGHTS)[0]
    return round(day0 + day * 86400 + hour * 3600 + rng.uniform(0, 3600), 6)


def _shaped(c: _Call) -> bool:
    """Not a call the mix keeps: in a shaped slot, or seen only while nobody watched."""
    slot = _weekday_slot(c.rec.offered_at)
    end = c.rec.ended_at if c.rec.ended_at is not None else c.rec.offered_at
    return slot in (EMPTY_SLOT, ABANDONED_SLOT) or _in_blind(c.rec.offered_at, end)


def _handmade(n: int) -> list[_Call]:
    """Calls with exact times: boundaries of the period, days, bins and gaps."""
    out: list[_Call] = []

    def answered(offered_at: float, answer: float, agent: str = T2, *, queue: str = QUEUE) -> None:
        queues = (QUEUE,) if queue == QUEUE else (QUEUE, BACKUP)
        c = _Call(n + len(out), offered_at, "081234500001", queues, queued_at=offered_at + 2)
        answered_at = round(offered_at + answer, 6)
        c.answer(answered_at, agent)
        c.end(round(answered_at + 95.5, 6), "answered")
        out.append(c)

    # Answered exactly on the bins' edges (an edge belongs to the bin below it) and on
    # the standards' limits ("at most 10/15/20 s").
    for k, answer in enumerate((5.0, 10.0, 10.0, 15.0, 15.0, 15.0, 20.0, 30.0, 45.0, 60.0)):
        answered(nov(3 + k, 10, 17, 0.123457), answer)
    answered(nov(16, 15, 1, 0.5), 90.0)
    answered(nov(17, 15, 1, 0.5), 120.0)
    answered(nov(18, 15, 1, 0.5), 120.000001)
    # Abandoned exactly on edges, one of each stage.
    for k, (stage, seconds) in enumerate(
        (("before_queue", 5.0), ("queue", 15.0), ("ringing", 120.0))
    ):
        offered_at = nov(19 + k, 9, 30, 0.25)
        queued_at = None if stage == "before_queue" else offered_at + 3
        c = _Call(n + len(out), offered_at, "081234500002", queued_at=queued_at)
        c.end(round(offered_at + seconds, 6), "abandoned", stage)
        out.append(c)
    # Day and hour boundaries: local midnight belongs to the day it starts.
    answered(nov(10), 12.0)
    answered(round(nov(10) - 0.000001, 6), 12.0)
    # The period's end: the last microsecond is in it, its end is not; a call that
    # arrived in the period counts whenever it ended.
    answered(round(END - 0.000001, 6), 14.0, T1, queue=BACKUP)
    answered(END, 14.0)
    answered(END - 120, 8.0)
    # The slot of abandoned calls only (Tuesdays 03:30): no answered call there.
    for k, (day, stage) in enumerate(((3, "queue"), (10, "ringing"), (17, "before_queue"))):
        offered_at = nov(day, 3, 30 + 7 * k, 3.5)
        queued_at = None if stage == "before_queue" else round(offered_at + 4, 6)
        c = _Call(n + len(out), offered_at, "anonymous", queued_at=queued_at)
        c.end(round(offered_at + 25 + k, 6), "abandoned", stage)
        out.append(c)

    # Adopted after the blind start (snapshot 02:10:01): arrival from the channel's
    # Duration (whole seconds). The first arrived at the period's very start, talking
    # when seen (answer estimated too); the second arrived before the period.
    snap = nov(1, 2, 10, 1.0)
    c = _Call(
        n + len(out), START, "081234500003", queued_at=START + 5, estimated=True, seen_at=snap
    )
    c.answer(snap, T3, estimated=True)
    c.end(round(snap + 900.25, 6), "answered")
    out.append(c)
    before = round(START - 2.0, 6)
    c = _Call(n + len(out), before, "081234500004", queued_at=None, estimated=True, seen_at=snap)
    c.answer(round(snap + 19.5, 6), T3)
    c.end(round(snap + 240, 6), "answered")
    out.append(c)
    c = _Call(
        n + len(out), snap - 95, "081234500005", queued_at=snap - 90, estimated=True, seen_at=snap
    )
    c.answer(round(snap + 11.0, 6), T3)
    c.end(round(snap + 300, 6), "answered")
    out.append(c)
    # Adopted after the gap of Nov 14 (snapshot 13:40:00.6).
    snap = nov(14, 13, 40, 0.6)
    c = _Call(
        n + len(out), snap - 300, "081234500006", queued_at=snap - 296, estimated=True, seen_at=snap
    )
    c.answer(snap, T1, estimated=True)
    c.end(round(snap + 420, 6), "answered")
    out.append(c)
    c = _Call(
        n + len(out), snap - 40, "081234500007", queued_at=snap - 35, estimated=True, seen_at=snap
    )
    c.answer(round(snap + 8.4, 6), T1)
    c.end(round(snap + 200, 6), "answered")
    out.append(c)
    c = _Call(
        n + len(out), snap - 12, "081234500008", queued_at=snap - 8, estimated=True, seen_at=snap
    )
    c.end(round(snap + 29.4, 6), "abandoned", "queue")
    out.append(c)
    # Known before the gap, gone when it ended: interrupted (one talking, one waiting;
    # only the one never answered is owed a callback, and only with a real number).
    t = nov(14, 11, 20)
    c = _Call(n + len(out), t, "081234500009", queued_at=t + 5)
    c.answer(t + 30, T2)
    c.end(snap, "interrupted")
    out.append(c)
    for k, number in enumerate(("081234500010", "anonymous")):
        t = nov(14, 11, 28, 10.0 * k)
        c = _Call(n + len(out), t, number, queued_at=t + 6)
        c.end(snap, "interrupted")
        out.append(c)
    # Still open when the report is made: one stuck in the queue, one answered and
    # classified; and one open from the day before the period.
    t = nov(20, 9)
    out.append(_Call(n + len(out), t, "081234500011", queued_at=t + 4))
    t = nov(27, 16)
    c = _Call(n + len(out), t, "081234500012", queued_at=t + 4)
    c.answer(t + 9, T2)
    c.classify(t + 40, "emergency")
    out.append(c)
    t = local(OCT_31, 12)
    out.append(_Call(n + len(out), t, "081234500013", queued_at=t + 4))
    return out


def _plans(rng: random.Random, rec: CallRecord) -> list[tuple[float, str]]:
    """Callback attempts (time, DIALSTATUS) a call taker would make for an owed call."""
    assert rec.ended_at is not None
    first = round(rec.ended_at + rng.uniform(30, 1800), 6)
    later = round(first + rng.uniform(120, 1200), 6)
    r = rng.random()
    if r < 0.25:
        return []
    if r < 0.5:
        return [(first, "NOANSWER")]
    if r < 0.6:
        return [(first, "NOANSWER"), (later, "BUSY")]
    if r < 0.75:
        return [(first, "ANSWER")]
    if r < 0.9:
        return [(first, "NOANSWER"), (later, "ANSWER")]
    return [(first, "CHANUNAVAIL")]


def _recall(n: int, rng: random.Random, rec: CallRecord) -> _Call | None:
    """The same caller calls again and is answered."""
    assert rec.ended_at is not None
    offered_at = round(rec.ended_at + rng.uniform(300, 7200), 6)
    c = _Call(n, offered_at, rec.caller_number, queued_at=round(offered_at + 3.5, 6))
    _answered_life(c, rng, round(offered_at + 3.5 + _wait(rng), 6))
    return None if _shaped(c) or (c.rec.ended_at or 0) >= END - 3600 else c


def _callbacks(calls: list[_Call], rng: random.Random) -> list[_Call]:
    """Run the callback list over the calls (callbacks.CallbackBook, as the pipeline
    does), with attempts and recalls drawn at random: the calls' callback steps."""
    extra: list[_Call] = []
    plans: list[tuple[float, int, tr.Effect]] = []
    for c in calls:
        if not cb.owed(c.rec) or (c.rec.ended_at or 0) >= END - 6 * 3600:
            continue
        for at, status in _plans(rng, c.rec):
            if not _in_blind(at, at):
                plans.append((at, 2, tr.CallbackResult(at, c.rec.call_id, status, "PJSIP/1001")))
        if rng.random() < 0.12:
            again = _recall(len(calls) + len(extra) + 10_000, rng, c.rec)
            if again is not None:
                extra.append(again)
    by_id = {c.rec.call_id: c for c in [*calls, *extra]}
    for c in by_id.values():
        if c.answered_rec is not None and c.answered_rec.answered_at is not None:
            plans.append((c.answered_rec.answered_at, 1, tr.CallAnswered(c.answered_rec)))
        if c.rec.ended_at is not None:
            plans.append((c.rec.ended_at, 0, tr.CallEnded(c.rec)))
    book = cb.CallbackBook()
    for _, _, effect in sorted(plans, key=lambda p: (p[0], p[1])):
        for change in book.apply([effect]):
            if isinstance(change, cb.Attempted | cb.Closed):
                by_id[change.entry.call_id].callback(change)
    return extra


def _calls(rng: random.Random) -> list[MonthCall]:
    made: list[_Call] = []
    for n in range(3300):
        made.append(_random_call(n, rng, _arrival(rng, START, 30), "0812"))
    for n in range(3300, 3400):  # the day before: its callers may call again in November
        made.append(_random_call(n, rng, _arrival(rng, START - 86400, 1), "0812"))
    for n in range(3400, 3500):  # the day after: callers of their own
        made.append(_random_call(n, rng, _arrival(rng, END, 1), "0813"))
    made = [c for c in made if not _shaped(c)]
    made += _handmade(5000)
    made += _callbacks(made, rng)
    return [c.done() for c in made]


# -- call takers --------------------------------------------------------------------------

_Change = tuple[float, str, str]  # (at, state, reason)
PAUSE_REASONS = ("istirahat", "istirahat", "", "makan", "briefing")
# Ringing never spans these instants (a ring cut by the period's end, by the report's
# time or by a gap would be neither answered nor unanswered yet).
_NO_RING_ACROSS = (START, END, UNFINISHED_NOW, REPORT_NOW)


def _ring_ok(t0: float, t1: float) -> bool:
    return not any(t0 <= p <= t1 for p in _NO_RING_ACROSS) and not _in_blind(t0, t1)


def _shift(rng: random.Random, start: float, end: float) -> list[_Change]:
    """One shift of a call taker, logged in to logged out."""
    out: list[_Change] = [(start, "available", "")]
    t = start
    while True:
        t += rng.expovariate(1 / 360)
        if t >= end:
            break
        r = rng.random()
        if r < 0.70:
            ring = rng.uniform(2, 18)
            if not _ring_ok(t, t + ring):
                continue
            out.append((t, "ringing", ""))
            t += ring
            fate = rng.random()
            if fate < 0.8:
                out.append((t, "in_call", ""))
                t += rng.uniform(40, 420)
            elif fate < 0.95:
                pass  # ring no answer, back to available
            else:  # ring no answer and app_queue's autopause
                out.append((t, "paused", ""))
                t += rng.uniform(30, 240)
        elif r < 0.86:
            out.append((t, "paused", rng.choice(PAUSE_REASONS)))
            t += rng.uniform(120, 1800)
        else:
            out.append((t, "unavailable", ""))
            t += rng.uniform(20, 300)
        out.append((t, "available", ""))
    out.append((max(end, out[-1][0] + 0.5), "logged_out", ""))
    return [(round(at, 6), state, reason) for at, state, reason in out]


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]


def _timelines(rng: random.Random) -> dict[tuple[str, str], list[_Change]]:
    def jitter() -> float:
        return rng.uniform(-600, 600)

    lines: dict[tuple[str, str], list[_Change]] = defaultdict(list)
    for day in _days(OCT_31, DEC_1):
        if not (day.month == 11 and day.day in (5, 12, 19, 26)):
            lines[QUEUE, T1] += _shift(rng, local(day, 7) + jitter(), local(day, 15) + jitter())
        if not (day.month == 11 and day.day in (7, 21)):
            lines[QUEUE, T2] += _shift(rng, local(day, 15) + jitter(), local(day, 23) + jitter())
        if day < DEC_1:  # the night shift, across midnight
            night = local(day, 23) + jitter(), local(day + timedelta(days=1), 7) + jitter()
            lines[QUEUE, T3] += _shift(rng, *night)
        if day.month == 11 and 2 <= day.day <= 27 and day.weekday() < 5:
            lines[BACKUP, T4] += _shift(rng, local(day, 10) + jitter(), local(day, 22) + jitter())
    # The state before the period: Taker 1003 went on a break just before the session
    # was lost on Oct 31, so it is paused ("istirahat") when the month starts.
    pause = local(OCT_31, 23, 20)
    back = nov(1, 0, 30)
    t3 = [x for x in lines[QUEUE, T3] if not pause <= x[0] < back]
    lines[QUEUE, T3] = sorted([*t3, (pause, "paused", "istirahat")])
    # Taker 1001 is in the backup queue too: the same phone (same ringing and calls),
    # but its pauses are for the main queue only (QueueMemberPause with a queue).
    lines[BACKUP, T1] = [
        (at, "available" if state == "paused" else state, "") for at, state, _ in lines[QUEUE, T1]
    ]
    return {key: _changes_only(sorted(line)) for key, line in lines.items()}


def _changes_only(line: Sequence[_Change]) -> list[_Change]:
    out: list[_Change] = []
    for x in line:
        if not out or out[-1][1:] != x[1:]:
            out.append(x)
    return out


def _as_observed(line: list[_Change]) -> list[_Change]:
    """What the store holds of a timeline: nothing while no AMI session was up; after
    each reconnection, QueueStatus's view where it differs from the last change seen."""
    kept = [x for x in line if not any(a <= x[0] < b for a, b in BLIND)]
    for _, b in BLIND:
        truth = [x for x in line if x[0] <= b]
        seen = [x for x in kept if x[0] < b]
        if truth and (not seen or seen[-1][1:] != truth[-1][1:]) and truth[-1][0] != b:
            kept.append((b, *truth[-1][1:]))
    return _changes_only(sorted(kept))


def _agent_rows(rng: random.Random) -> list[AgentRow]:
    rows = [
        AgentRow(at, queue, agent, state, reason)
        for (queue, agent), line in _timelines(rng).items()
        for at, state, reason in _as_observed(line)
    ]
    return sorted(rows, key=lambda r: (r.at, r.queue, r.agent))


@functools.cache
def month(seed: int = 2026) -> Month:
    rng = random.Random(seed)
    calls = _calls(rng)
    agents = _agent_rows(rng)
    return Month(tuple(calls), tuple(agents), AMI_ROWS)


# -- the oracle ------------------------------------------------------------------------


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _secs(a: float, b: float) -> float:
    """A duration as the call record gives it: to the microsecond."""
    return round(b - a, 6)


def rank(values: Iterable[float], num: int, den: int) -> float | None:
    """Nearest rank: the smallest value with at least num/den of the values at or below."""
    v = sorted(values)
    if not v:
        return None
    k = -(-num * len(v) // den)  # ceil, in integers
    return v[k - 1]


def _stats(values: Sequence[float]) -> dict[str, Any]:
    return {"count": len(values), "median": rank(values, 1, 2), "p90": rank(values, 9, 10)}


def _share(n: int, d: int) -> float | None:
    return n / d if d else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _bin(seconds: float) -> int:
    for i in range(1, len(EDGES)):
        if seconds <= EDGES[i]:
            return i - 1
    return len(EDGES) - 1


def _counts(values: Iterable[float]) -> list[int]:
    out = [0] * len(EDGES)
    for s in values:
        out[_bin(s)] += 1
    return out


# Reading 1 of tests/component/test_report_numbers.py: the answer-time figures
# (headline.within and .answer_seconds, days' within/shares, the heatmap's share_15,
# answer_distribution) count the calls whose outcome is "answered". True would count
# too the calls interrupted after an answer (answered_at set): the one switch to flip if
# the specification settles on that reading.
INTERRUPTED_ANSWERS_COUNT = True


def answer_counts(r: CallRecord) -> bool:
    """Whether a call's answer time is one of the answer-time figures' values."""
    if r.outcome == "answered":
        return True
    return INTERRUPTED_ANSWERS_COUNT and r.outcome == "interrupted" and r.answered_at is not None


def answer_of(r: CallRecord) -> float:
    assert r.answered_at is not None
    return _secs(r.offered_at, r.answered_at)


def talk_of(r: CallRecord) -> float:
    assert r.answered_at is not None and r.ended_at is not None
    return round(max(0.0, r.ended_at - r.answered_at), 6)


def wait_of(r: CallRecord) -> float:
    end = r.answered_at if r.answered_at is not None else r.ended_at
    assert r.queued_at is not None and end is not None
    return round(max(0.0, end - r.queued_at), 6)


def midnight(day: date, tz: ZoneInfo) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


@dataclass(frozen=True)
class _Span:
    queue: str
    agent: str
    state: str
    reason: str
    start: float
    end: float
    next_state: str | None  # the state that followed (None: cut by the period)

    @property
    def seconds(self) -> float:
        return self.end - self.start


def _spans(rows: Sequence[AgentRow], start: float, until: float) -> list[_Span]:
    """Each call taker's states in [start, until): the state before the period first."""
    by_key: dict[tuple[str, str], list[AgentRow]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: r.at):
        by_key[r.queue, r.agent].append(r)
    out: list[_Span] = []
    for (queue, agent), line in by_key.items():
        before = [r for r in line if r.at < start]
        within = [r for r in line if start <= r.at < until]
        steps = [(start, before[-1])] if before else []
        steps += [(r.at, r) for r in within]
        for k, (at, r) in enumerate(steps):
            nxt = steps[k + 1] if k + 1 < len(steps) else None
            stop = nxt[0] if nxt else until
            state = nxt[1].state if nxt else None
            out.append(_Span(queue, agent, r.state, r.reason, at, stop, state))
    return out


def _call_takers(answered: Sequence[CallRecord], spans: Sequence[_Span]) -> list[dict[str, Any]]:
    keys = {(r.queue or "", r.agent or "") for r in answered}
    keys |= {(s.queue, s.agent) for s in spans if s.state != "logged_out"}
    out = []
    for queue, agent in sorted(keys):
        mine = [r for r in answered if (r.queue, r.agent) == (queue, agent)]
        talks = [talk_of(r) for r in mine]
        states = [s for s in spans if (s.queue, s.agent) == (queue, agent)]

        def time_in(*names: str, states: list[_Span] = states) -> float:
            return sum(s.seconds for s in states if s.state in names)

        rings = [s for s in states if s.state == "ringing" and s.next_state is not None]
        by_reason: dict[str, float] = defaultdict(float)
        for s in states:
            if s.state == "paused":
                by_reason[s.reason] += s.seconds
        busy = time_in("ringing", "in_call")
        out.append(
            {
                "queue": queue,
                "agent": agent,
                "answered": len(mine),
                "talk_seconds": sum(talks),
                "talk_seconds_mean": _mean(talks),
                "classified": sum(r.category is not None for r in mine),
                "dispatches": sum(len(r.dispatched_to) for r in mine),
                "ring_no_answer": sum(s.next_state != "in_call" for s in rings),
                "ring_seconds_median": rank(
                    [s.seconds for s in rings if s.next_state == "in_call"], 1, 2
                ),
                "logged_in_seconds": sum(s.seconds for s in states if s.state != "logged_out"),
                "paused_seconds": time_in("paused"),
                "paused_by_reason": dict(by_reason),
                "occupancy": busy / d if (d := time_in("available") + busy) else None,
            }
        )
    return out


def _active_by_slot(spans: Sequence[_Span], tz: ZoneInfo) -> dict[tuple[int, str], float]:
    """Call-taker seconds (each call taker once, whatever queues) available, ringing or
    in a call, per half hour of the week."""
    by_agent: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for s in spans:
        if s.state in ACTIVE and s.end > s.start:
            by_agent[s.agent].append((s.start, s.end))
    out: dict[tuple[int, str], float] = defaultdict(float)
    for intervals in by_agent.values():
        merged: list[list[float]] = []
        for a, b in sorted(intervals):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        for a, b in merged:
            t = a
            while t < b:
                lt = datetime.fromtimestamp(t, tz)
                slot_start = lt.replace(minute=30 * (lt.minute >= 30), second=0, microsecond=0)
                stop = min(b, slot_start.timestamp() + 1800)
                out[_weekday_slot(t, tz)] += stop - t
                t = stop
    return out


def _staffing(
    offered: Sequence[CallRecord],
    spans: Sequence[_Span],
    days: Sequence[date],
    tz: ZoneInfo,
    until: float,
) -> dict[str, Any]:
    answered = [r for r in offered if r.outcome == "answered"]
    queued = [r for r in offered if r.queued_at is not None]
    greeting = _mean([_secs(r.offered_at, r.queued_at) for r in queued if r.queued_at])
    queue_seconds = WITHIN - greeting if greeting is not None else None
    waited = sum(wait_of(r) for r in queued)
    gave_up = sum(
        r.outcome == "abandoned" and r.abandon_stage in ("queue", "ringing") for r in offered
    )
    patience = waited / gave_up if gave_up else None
    period_handle = _mean([talk_of(r) for r in answered])
    occurrences: dict[tuple[int, str], int] = defaultdict(int)
    for day in days:
        for h in range(48):
            begins = datetime(day.year, day.month, day.day, h // 2, 30 * (h % 2), tzinfo=tz)
            if begins.timestamp() < until:  # begun (all of them, once the period ended)
                occurrences[begins.weekday(), f"{h // 2:02d}:{30 * (h % 2):02d}"] += 1
    active = _active_by_slot(spans, tz)
    by_slot: dict[tuple[int, str], list[CallRecord]] = defaultdict(list)
    for r in offered:
        by_slot[_weekday_slot(r.offered_at, tz)].append(r)
    slots = []
    for w in range(7):
        for h in range(48):
            key = (w, f"{h // 2:02d}:{30 * (h % 2):02d}")
            mine = by_slot[key]
            talks = [talk_of(r) for r in mine if r.outcome == "answered"]
            handle = _mean(talks) if talks else period_handle
            occ = occurrences[key]
            per_second = len(mine) / (occ * 1800) if occ else None
            need_c = need_a = None
            if per_second is not None and handle is not None and queue_seconds is not None:
                load = staffing.traffic(per_second, handle)
                need_c = staffing.agents_needed(load, handle, queue_seconds, LEVEL)
                if patience is not None:
                    theta = gave_up / waited
                    need_a = staffing.agents_needed_a(
                        per_second, handle, theta, queue_seconds, LEVEL
                    )
            slots.append(
                {
                    "weekday": w,
                    "start": key[1],
                    "occurrences": occ,
                    "offered": len(mine),
                    "arrivals_per_hour": len(mine) / (occ * 0.5) if occ else None,
                    "handle_seconds": handle,
                    "logged_in": active.get(key, 0.0) / (occ * 1800) if occ else None,
                    "needed_erlang_c": need_c,
                    "needed_erlang_a": need_a,
                }
            )
    return {
        "slots": slots,
        "greeting_seconds": greeting,
        "queue_seconds": queue_seconds,
        "patience_seconds": patience,
        "model": "erlang_a" if patience is not None else "erlang_c",
    }


def oracle(
    month: Month,
    first: date,
    last: date,
    tz: ZoneInfo,
    now: float,
    *,
    retention_days: int = 1825,
    categories: Sequence[str] = (),
) -> dict[str, Any]:
    """Every number of the report (the readings of tests/component/test_report_numbers.py)."""
    start, end = midnight(first, tz), midnight(last + timedelta(days=1), tz)
    until = min(end, now)
    days = _days(first, last)
    known = [(s.record, s.callback) for c in month.calls if (s := c.as_of(now)) is not None]
    arrived = [(r, b) for r, b in known if start <= r.offered_at < end]
    ended = [(r, b) for r, b in arrived if r.ended_at is not None]
    offered = [r for r, _ in ended]
    n = len(offered)
    answered = [r for r in offered if r.outcome == "answered"]
    timed = [r for r in offered if answer_counts(r)]  # the answer times measured
    abandoned = [r for r in offered if r.outcome == "abandoned"]

    arrival = {id(r): datetime.fromtimestamp(r.offered_at, tz) for r in offered}

    def day_of(r: CallRecord) -> date:
        return arrival[id(r)].date()

    def within(limit: float, calls: Iterable[CallRecord] = timed) -> int:
        return sum(answer_of(r) <= limit for r in calls)

    within_ = {str(s): {"calls": within(s), "share": _share(within(s), n)} for s in (10, 15, 20)}
    # Callbacks: owed by the definition in pbxbridge.callbacks, states as generated.
    owed = [(r, b) for r, b in ended if cb.owed(r)]
    attempted = [(r, b) for r, b in owed if b is not None and b.attempts > 0]
    reached = sum(b is not None and b.result == "answered" for _, b in owed)
    recalled = sum(b is not None and b.result == "recalled" for _, b in owed)
    cb_head = {
        "owed": len(owed),
        "attempted": len(attempted),
        "reached": reached,
        "recalled": recalled,
        "never_reached": len(owed) - reached - recalled,
    }
    first_attempts = [
        _secs(b.abandoned_at, b.first_attempt_at)
        for _, b in attempted
        if b is not None and b.first_attempt_at is not None
    ]
    headline = {
        "offered": n,
        **{o: sum(r.outcome == o for r in offered) for o in OUTCOMES},
        "open": len(arrived) - n,
        "abandoned_by_stage": {s: sum(r.abandon_stage == s for r in abandoned) for s in STAGES},
        "within": within_,
        "standards": [
            {
                "standard": name,
                "seconds": seconds,
                "target": target,
                "share": within_[str(seconds)]["share"],
                "met": (within(seconds) / n >= target) if n else None,
            }
            for name, seconds, target in STANDARDS
        ],
        "answer_seconds": {
            "median": rank(map(answer_of, timed), 1, 2),
            "p90": rank(map(answer_of, timed), 9, 10),
        },
        "callbacks": cb_head,
    }
    by_day: dict[date, list[CallRecord]] = defaultdict(list)
    for r in offered:
        by_day[day_of(r)].append(r)
    per_day = []
    for day in days:
        mine = by_day[day]
        mine_answered = [r for r in mine if r.outcome == "answered"]
        mine_timed = [r for r in mine if answer_counts(r)]
        per_day.append(
            {
                "date": day.isoformat(),
                "offered": len(mine),
                "answered": len(mine_answered),
                "abandoned": sum(r.outcome == "abandoned" for r in mine),
                "within_15": within(15, mine_timed),
                "share_15": _share(within(15, mine_timed), len(mine)),
                "share_20": _share(within(20, mine_timed), len(mine)),
            }
        )
    heat_n = [[0] * 24 for _ in range(7)]
    heat_15 = [[0] * 24 for _ in range(7)]
    for r in offered:
        t = arrival[id(r)]
        heat_n[t.weekday()][t.hour] += 1
        heat_15[t.weekday()][t.hour] += answer_counts(r) and answer_of(r) <= 15
    heatmap = {
        "offered": heat_n,
        "share_15": [[_share(heat_15[w][h], heat_n[w][h]) for h in range(24)] for w in range(7)],
    }
    abandon_seconds: dict[str, list[float]] = {s: [] for s in STAGES}
    for r in abandoned:
        assert r.abandon_stage is not None and r.ended_at is not None
        abandon_seconds[r.abandon_stage].append(_secs(r.offered_at, r.ended_at))
    spans = _spans([r for r in month.agent_rows if r.at <= now], start, until)
    seen_categories = sorted({r.category for r in answered if r.category} - set(categories))
    all_categories = [*categories, *seen_categories]
    dispatched = [r for r in answered if r.dispatched_to]
    seen_agencies = sorted({a for r in dispatched for a, _ in r.dispatched_to})
    amis = [r for r in month.ami_rows if r.at <= now]
    gaps = unobserved(amis, start, until)
    sessions = [(a, b) for a, b in observed_spans(amis) if a < until and b > start]
    before = now - retention_days * 86400
    return {
        "period": {
            "from": first.isoformat(),
            "to": last.isoformat(),
            "timezone": tz.key,
            "start": start,
            "end": end,
            "days": len(days),
            "observed_until": now if now < end else None,
        },
        "empty": not arrived,
        "missing": (
            {"before": rfc3339(before), "retention_days": retention_days}
            if start < before
            else None
        ),
        "headline": headline,
        "days": per_day,
        "heatmap": heatmap,
        "answer_distribution": {
            "edges": list(EDGES),
            "counts": _counts(map(answer_of, timed)),
        },
        "abandon_distribution": {
            "edges": list(EDGES),
            "by_stage": {s: _counts(v) for s, v in abandon_seconds.items()},
        },
        "call_takers": _call_takers(answered, spans),
        "classification": {
            "categories": all_categories,
            "total": sum(r.category is not None for r in answered),
            "unclassified": sum(r.category is None for r in answered),
            "by_day": [
                {
                    "date": day.isoformat(),
                    **{
                        c: sum(r.category == c for r in by_day[day] if r.outcome == "answered")
                        for c in all_categories
                    },
                }
                for day in days
            ],
        },
        "dispatch": {
            "agencies": seen_agencies,
            "total": sum(len(r.dispatched_to) for r in dispatched),
            "by_day": [
                {
                    "date": day.isoformat(),
                    **{
                        a: sum(
                            g == a
                            for r in by_day[day]
                            if r.outcome == "answered"
                            for g, _ in r.dispatched_to
                        )
                        for a in seen_agencies
                    },
                }
                for day in days
            ],
            "answer_to_dispatch_seconds": _stats(
                [
                    _secs(r.answered_at, r.dispatched_to[0][1])
                    for r in dispatched
                    if r.answered_at is not None
                ]
            ),
        },
        "callbacks": {
            **cb_head,
            "first_attempt_seconds": _stats(first_attempts),
            "reached_share": _share(reached + recalled, len(owed)),
        },
        "staffing": _staffing(offered, spans, days, tz, until),
        "data_quality": {
            "interrupted": headline["interrupted"],
            "estimated_times": sum(
                r.offered_at_estimated or r.answered_at_estimated for r in offered
            ),
            "unobserved": [{"start": a, "end": b, "seconds": b - a} for a, b in gaps],
            "unobserved_seconds": sum(b - a for a, b in gaps),
            "ami_sessions": len(sessions),
        },
    }
