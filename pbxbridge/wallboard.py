"""What the supervisors' wallboard shows: now and today. Pure: effects in, snapshots out.

One more sink of :meth:`Pipeline.apply` (no side door): it follows the tracker's and the
callback book's effects and keeps only what the board shows. No caller number or name
is kept or shown. Today starts at local midnight (``[pbx] timezone``) and is seeded from
the call store at start, so a restart does not reset it; a call is counted once by its
id, whatever order its effects arrive in. Times are Asterisk's own event times.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
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


class Wallboard:
    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self.version = 0  # +1 on every change a viewer could see
        self.ami_up = False
        self.last_event_at: float | None = None
        self._waiting: dict[str, tuple[float, tuple[str, ...]]] = {}  # call -> arrival, queues
        self._talking: dict[str, tuple[str, ...]] = {}
        self._ended: dict[str, Ended] = {}  # today's ended calls, by call id
        self._dispatched: dict[str, tuple[str, ...]] = {}  # today's calls' agencies so far
        self._members: dict[tuple[str, str], tuple[str, str, float]] = {}
        self._owed: dict[str, float] = {}  # callback list: call -> abandoned at
        self._day: date | None = None

    # -- in -------------------------------------------------------------------------

    def seed(self, ended: Iterable[tuple[str, Ended]], owed: Iterable[cb.Callback]) -> None:
        """Today's calls from the store, and the callback list, at start."""
        for call_id, e in ended:
            self._ended.setdefault(call_id, e)
            self._dispatched.setdefault(call_id, e.agencies)
        for entry in owed:
            self._owed[entry.call_id] = entry.abandoned_at
        self.version += 1

    def apply(self, effects: Sequence[object]) -> None:
        changed = False
        for effect in effects:
            changed |= self._one(effect)
        if changed:
            self.version += 1

    def _one(self, effect: object) -> bool:
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
                    self._ended[rec.call_id] = ended_of(rec)
                    self._dispatched[rec.call_id] = ended_of(rec).agencies
            case tr.CallUpdated(record=rec, at=at):
                self._seen(at)
                if self._today(rec.offered_at):
                    self._dispatched[rec.call_id] = tuple(a for a, _ in rec.dispatched_to)
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
        day = datetime.fromtimestamp(at, self.tz).date()
        if self._day is None or day > self._day:
            self._day = day
            start = self.midnight(day)
            for call_id in [c for c, e in self._ended.items() if e.offered_at < start]:
                del self._ended[call_id]
                self._dispatched.pop(call_id, None)

    def midnight(self, day: date) -> float:
        return datetime.combine(day, time(), self.tz).timestamp()

    def _today(self, at: float) -> bool:
        return self._day is None or at >= self.midnight(self._day)

    # -- out ------------------------------------------------------------------------

    def snapshot(self, now: float, queue: str | None = None) -> dict[str, Any]:
        """The board for one queue (or all): no caller data, JSON-ready."""
        day = datetime.fromtimestamp(now, self.tz).date()
        start = self.midnight(day)

        def mine(queues: Iterable[str]) -> bool:
            return queue is None or queue in queues

        ended = [e for e in self._ended.values() if e.offered_at >= start and mine(e.queues)]
        outcomes = Counter(e.outcome for e in ended)
        stages = Counter(e.stage for e in ended if e.outcome == "abandoned")
        within = {t: sum(1 for e in ended if _within(e, t)) for t in WITHIN}
        offered = len(ended)
        agencies: Counter[str] = Counter()
        for call_id, names in self._dispatched.items():
            e = self._ended.get(call_id)
            if e is None or (e.offered_at >= start and mine(e.queues)):
                agencies.update(names)
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
                **{o: outcomes[o] for o in ("answered", "abandoned", "unanswered", "interrupted")},
                "abandoned_by_stage": {s: stages[s] for s in ABANDON_STAGES},
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
            "dispatches": dict(sorted(agencies.items())),
            "sparkline": _sparkline(ended, now),
        }


def _within(e: Ended, seconds: int) -> bool:
    return e.answer_seconds is not None and e.answer_seconds <= seconds


def _sparkline(ended: Sequence[Ended], now: float) -> list[dict[str, Any]]:
    """Share answered within 15 s of the calls that arrived in each of the last two
    hours' five-minute buckets (ended calls: a call still waiting has no verdict)."""
    last = now - now % SPARK_BUCKET
    first = last - (SPARK_BUCKETS - 1) * SPARK_BUCKET
    offered = [0] * SPARK_BUCKETS
    within = [0] * SPARK_BUCKETS
    for e in ended:
        if e.offered_at >= first:
            n = min(SPARK_BUCKETS - 1, int((e.offered_at - first) // SPARK_BUCKET))
            offered[n] += 1
            within[n] += _within(e, 15)
    return [
        {
            "at": first + n * SPARK_BUCKET,
            "share_15": share(within[n], offered[n]),
            "offered": offered[n],
        }
        for n in range(SPARK_BUCKETS)
    ]


def today_since(tz: ZoneInfo, now: float) -> float:
    """The start of the local day of ``now``: where the store's seed begins."""
    day = datetime.fromtimestamp(now, tz).date()
    return datetime.combine(day, time(), tz).timestamp()
