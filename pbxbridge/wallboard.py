"""What the supervisors' wallboard shows: now and today. Pure: effects in, snapshots out.

One more sink of :meth:`Pipeline.apply` (no side door): it follows the tracker's and the
callback book's effects and keeps only what the board shows. No caller number or name
is kept or shown. Today starts at local midnight (``[pbx] timezone``) and is seeded from
the call store at start, so a restart does not reset it; a call is counted once by its
id, whatever order its effects arrive in. Times are Asterisk's own event times.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pbxbridge import callbacks as cb
from pbxbridge import tracker as tr
from pbxbridge.records import ABANDON_STAGES, Heartbeat, MemberChanged, SessionChanged
from pbxbridge.report_figures import STANDARDS, WITHIN, share

SPARK_BUCKET = 300.0  # five minutes
SPARK_BUCKETS = 24  # the last two hours


@dataclass(frozen=True, slots=True)
class Ended:
    """What today's figures need of an ended call."""

    offered_at: float
    queues: tuple[str, ...]
    outcome: str
    stage: str | None
    answer_seconds: float | None
    agencies: tuple[str, ...]


def ended_of(rec: tr.CallRecord) -> Ended:
    return Ended(
        rec.offered_at,
        (*rec.queues, *((rec.queue,) if rec.queue and rec.queue not in rec.queues else ())),
        rec.outcome or "interrupted",
        rec.abandon_stage,
        rec.answer_seconds,
        tuple(a for a, _ in rec.dispatched_to),
    )


_SHOWN = frozenset(
    {tr.CallOffered, tr.CallAnswered, tr.CallEnded, tr.CallUpdated, MemberChanged}
    | {SessionChanged, cb.Queued, cb.Closed, Heartbeat}
)


@dataclass(slots=True)
class Tally:
    """Today's figures of one queue (or of all), kept as calls end: a snapshot reads
    them instead of counting the day again (a busy day is 10,000 calls, and viewers ask
    ten times a second: bench_wallboard)."""

    outcomes: Counter[str] = field(default_factory=Counter)
    stages: Counter[str] = field(default_factory=Counter)
    within: Counter[int] = field(default_factory=Counter)
    agencies: Counter[str] = field(default_factory=Counter)
    # Five-minute bucket of arrival -> [offered, answered within 15 s].
    buckets: dict[int, list[int]] = field(default_factory=dict)

    def add(self, e: Ended, sign: int) -> None:
        self.outcomes[e.outcome] += sign
        if e.outcome == "abandoned" and e.stage:
            self.stages[e.stage] += sign
        bucket = self.buckets.setdefault(int(e.offered_at // SPARK_BUCKET), [0, 0])
        bucket[0] += sign
        for t in WITHIN:
            if _within(e, t):
                self.within[t] += sign
                if t == 15:
                    bucket[1] += sign

    @property
    def offered(self) -> int:
        return sum(self.outcomes.values())


class Wallboard:
    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self.version = 0  # +1 on every change a viewer could see
        self.ami_up = False
        self.last_event_at: float | None = None
        self._waiting: dict[str, tuple[float, tuple[str, ...]]] = {}  # call -> arrival, queues
        self._talking: dict[str, tuple[str, ...]] = {}
        self._ended: dict[str, Ended] = {}  # today's ended calls, by call id
        self._dispatched: dict[
            str, tuple[tuple[str, ...], tuple[str, ...]]
        ] = {}  # queues, agencies
        self._tallies: dict[str | None, Tally] = {None: Tally()}
        self._members: dict[tuple[str, str], tuple[str, str, float]] = {}
        self._owed: dict[str, float] = {}  # callback list: call -> abandoned at
        self._day: date | None = None
        self._start = -math.inf  # today's local midnight
        self._tomorrow = -math.inf  # the next one: the day turns there

    # -- in -------------------------------------------------------------------------

    def seed(self, ended: Iterable[tuple[str, Ended]], owed: Iterable[cb.Callback]) -> None:
        """Today's calls from the store, and the callback list, at start."""
        for call_id, e in ended:
            if call_id not in self._ended:
                self._end(call_id, e)
        for entry in owed:
            self._owed[entry.call_id] = entry.abandoned_at
        self.version += 1

    def _tallies_of(self, queues: Iterable[str]) -> list[Tally]:
        return [self._tallies[None], *(self._tallies.setdefault(q, Tally()) for q in queues)]

    def _end(self, call_id: str, e: Ended) -> None:
        """A call ended (or was seeded): replaces what was counted of it, if anything."""
        old = self._ended.get(call_id)
        if old is not None:
            for tally in self._tallies_of(old.queues):
                tally.add(old, -1)
        self._ended[call_id] = e
        for tally in self._tallies_of(e.queues):
            tally.add(e, +1)
        self._dispatch(call_id, e.queues, e.agencies)

    def _dispatch(self, call_id: str, queues: tuple[str, ...], agencies: tuple[str, ...]) -> None:
        old_queues, old = self._dispatched.get(call_id, ((), ()))
        for tally in self._tallies_of(old_queues):
            tally.agencies.subtract(old)
        self._dispatched[call_id] = (queues, agencies)
        for tally in self._tallies_of(queues):
            tally.agencies.update(agencies)

    def apply(self, effects: Sequence[object]) -> None:
        changed = False
        for effect in effects:
            changed |= self._one(effect)
        if changed:
            self.version += 1

    def _one(self, effect: object) -> bool:
        if type(effect) not in _SHOWN:  # most effects (anomalies, rings) change nothing here
            return False
        match effect:
            case tr.CallOffered(record=rec):
                self._seen(rec.offered_at)
                self._waiting[rec.call_id] = (rec.offered_at, rec.queues)
            case tr.CallAnswered(record=rec):
                self._seen(rec.answered_at)
                self._waiting.pop(rec.call_id, None)
                self._talking[rec.call_id] = (rec.queue or "", *rec.queues)
            case tr.CallEnded(record=rec):
                self._seen(rec.ended_at)
                self._waiting.pop(rec.call_id, None)
                self._talking.pop(rec.call_id, None)
                if self._today(rec.offered_at):
                    self._end(rec.call_id, ended_of(rec))
            case tr.CallUpdated(record=rec, at=at):
                self._seen(at)
                if self._today(rec.offered_at):
                    queues = ended_of(rec).queues
                    self._dispatch(rec.call_id, queues, tuple(a for a, _ in rec.dispatched_to))
            case MemberChanged(at=at, queue=queue, member=member, state=state, reason=reason):
                self._seen(at)
                if state == "logged_out":
                    self._members.pop((queue, member), None)
                else:
                    self._members[(queue, member)] = (state, reason, at)
            case SessionChanged(at=at, up=up):
                self._seen(at)
                self.ami_up = up
            case cb.Queued(entry=entry):
                self._owed[entry.call_id] = entry.abandoned_at
            case cb.Closed(entry=entry):
                self._owed.pop(entry.call_id, None)
            case Heartbeat(at=at):
                self._seen(at)
                return False
            case _:
                return False
        return True

    def _seen(self, at: float | None) -> None:
        if at is None:
            return
        if self.last_event_at is None or at > self.last_event_at:
            self.last_event_at = at
        if at >= self._tomorrow:
            self._turn(datetime.fromtimestamp(at, self.tz).date())

    def _turn(self, day: date) -> None:
        """A new local day (or the first event): yesterday's calls leave the figures."""
        if self._day is not None and day <= self._day:
            return
        self._day = day
        self._tomorrow = self.midnight(day + timedelta(days=1))
        self._start = start = self.midnight(day)
        kept = {c: e for c, e in self._ended.items() if e.offered_at >= start}
        dispatched = self._dispatched
        self._ended, self._dispatched, self._tallies = {}, {}, {None: Tally()}
        for call_id, e in kept.items():
            self._end(call_id, e)
            self._dispatch(call_id, e.queues, dispatched.get(call_id, ((), e.agencies))[1])

    def midnight(self, day: date) -> float:
        return datetime.combine(day, time(), self.tz).timestamp()

    def _today(self, at: float) -> bool:
        return at >= self._start

    # -- out ------------------------------------------------------------------------

    def snapshot(self, now: float, queue: str | None = None) -> dict[str, Any]:
        """The board for one queue (or all): no caller data, JSON-ready."""
        day = datetime.fromtimestamp(now, self.tz).date()
        if self._day is None or day > self._day:
            self._turn(day)

        def mine(queues: Iterable[str]) -> bool:
            return queue is None or queue in queues

        tally = self._tallies.get(queue) or Tally()
        offered = tally.offered
        within = tally.within
        return {
            "at": now,
            "ami_up": self.ami_up,
            "last_event_at": self.last_event_at,
            "queue": queue,
            "waiting": [
                {"since": at, "queue": queues[-1] if queues else None}
                for at, queues in sorted(self._waiting.values())
                if mine(queues)
            ],
            "talking": sum(1 for queues in self._talking.values() if mine(queues)),
            "today": {
                "date": day.isoformat(),
                "offered": offered,
                **{
                    o: tally.outcomes[o]
                    for o in ("answered", "abandoned", "unanswered", "interrupted")
                },
                "abandoned_by_stage": {s: tally.stages[s] for s in ABANDON_STAGES},
                "within": {str(t): share(within[t], offered) for t in WITHIN},
                "standards": [
                    {
                        "standard": name,
                        "seconds": seconds,
                        "target": target,
                        "share": share(within[seconds], offered),
                        "met": None if not offered else within[seconds] / offered >= target,
                    }
                    for name, seconds, target in STANDARDS
                    if name.startswith("NENA")
                ],
            },
            "members": [
                {"name": member, "queue": q, "state": state, "reason": reason, "since": since}
                for (q, member), (state, reason, since) in sorted(self._members.items())
                if queue is None or q == queue
            ],
            "callbacks": {
                "owed": len(self._owed),
                "oldest_since": min(self._owed.values()) if self._owed else None,
            },
            "dispatches": {a: n for a, n in sorted(tally.agencies.items()) if n > 0},
            "sparkline": _sparkline(tally.buckets, now),
        }


def _within(e: Ended, seconds: int) -> bool:
    return e.answer_seconds is not None and e.answer_seconds <= seconds


def _sparkline(buckets: dict[int, list[int]], now: float) -> list[dict[str, Any]]:
    """Share answered within 15 s of the calls that arrived in each of the last two
    hours' five-minute buckets (ended calls: a call still waiting has no verdict)."""
    last = int(now // SPARK_BUCKET)
    out = []
    for n in range(last - SPARK_BUCKETS + 1, last + 1):
        offered, within = buckets.get(n, (0, 0))
        out.append({"at": n * SPARK_BUCKET, "share_15": share(within, offered), "offered": offered})
    return out


def today_since(tz: ZoneInfo, now: float) -> float:
    """The start of the local day of ``now``: where the store's seed begins."""
    day = datetime.fromtimestamp(now, tz).date()
    return datetime.combine(day, time(), tz).timestamp()
