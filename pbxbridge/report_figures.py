"""The monthly report's figures of the calls themselves. Pure: call records in, numbers out.

Every figure is defined in the README (The monthly report). A call belongs to the period
it arrived in; calls still in progress are counted as open and in nothing else; shares
are of the calls offered, so an abandoned call counts against the level as NENA measures
it. Nothing to measure gives ``None``, never 0 or NaN.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from pbxbridge import callbacks
from pbxbridge.records import ABANDON_STAGES

# (standard, seconds, share): NENA-STA-020.1 §2.2.1 and NFPA 1225.
STANDARDS = (("NENA-STA-020.1", 15, 0.90), ("NENA-STA-020.1", 20, 0.95), ("NFPA 1225", 10, 0.90))
WITHIN = (10, 15, 20)
EDGES = (0, 5, 10, 15, 20, 30, 45, 60, 90, 120)


def nearest_rank(values: Sequence[float], q: float) -> float | None:
    """The smallest value with at least ``q`` of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def spread(values: Sequence[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "median": nearest_rank(values, 0.5),
        "p90": nearest_rank(values, 0.9),
    }


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def bin_of(seconds: float) -> int:
    """The distribution bin: ``EDGES[i] < s <= EDGES[i+1]``, 0 included in the first."""
    for i, edge in enumerate(EDGES[1:]):
        if seconds <= edge:
            return i
    return len(EDGES) - 1


class StoredCall(NamedTuple):
    """What the report reads of a call (``store_query.REPORT_COLUMNS`` and ``_FIELDS``)."""

    offered_at: float
    outcome: str | None
    abandon_stage: str | None
    queue: str | None
    agent: str | None
    category: str | None
    caller_number: str
    answer_seconds: float | None
    wait_seconds: float | None
    talk_seconds: float | None
    queued_at: str | None
    ended_at: str | None
    answered_at: str | None
    offered_at_estimated: bool | int | None
    answered_at_estimated: bool | int | None
    dispatched_to: str | None  # JSON text
    callback: str | None  # JSON text


def _at(text: str) -> float:
    """An RFC 3339 time of the stored call as Unix seconds (Python 3.11 reads the Z)."""
    return datetime.fromisoformat(text).timestamp()


@dataclass(slots=True)
class Day:
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    within: dict[int, int] = field(default_factory=lambda: dict.fromkeys(WITHIN, 0))
    categories: Counter[str] = field(default_factory=Counter)
    agencies: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class Cell:
    offered: int = 0
    within_15: int = 0


class CallFigures:
    """Folds the period's calls, one at a time (a month of a large center is 100,000)."""

    def __init__(self, first: date, last: date, tz: ZoneInfo, categories: Sequence[str]) -> None:
        self.tz = tz
        self.dates = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        self.days: dict[date, Day] = {d: Day() for d in self.dates}
        self.cells = [[Cell() for _ in range(24)] for _ in range(7)]
        self.categories = list(categories)
        self.open = 0
        self.outcomes: Counter[str] = Counter()
        self.stages: Counter[str] = Counter()
        self.within = dict.fromkeys(WITHIN, 0)
        self.answer_seconds: list[float] = []
        self.answer_bins = [0] * len(EDGES)
        self.abandon_bins = {s: [0] * len(EDGES) for s in ABANDON_STAGES}
        self.estimated = 0
        self.unclassified = 0
        self.to_dispatch: list[float] = []
        self.owed = self.attempted = self.reached = self.recalled = 0
        self.first_attempt: list[float] = []
        # What call takers did with the calls they answered, by (queue, agent).
        self.taken: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0, 0, 0, 0])
        # What the staffing model is fed, by (weekday, half hour) of arrival.
        self.slot_offered: Counter[tuple[int, int]] = Counter()
        self.slot_talk: dict[tuple[int, int], list[float]] = defaultdict(list)
        self.greetings: list[float] = []
        self.waited = 0.0
        self.gave_up = 0
        # Local (day, weekday, hour) by quarter hour: every zone's offset is a whole
        # number of quarter hours, and a month's calls fall in under 3,000 of them.
        self._local: dict[int, tuple[date, int, int, int]] = {}

    def _local_of(self, at: float) -> tuple[date, int, int, int]:
        quarter = int(at // 900)
        known = self._local.get(quarter)
        if known is None:
            local = datetime.fromtimestamp(quarter * 900, self.tz)
            known = (local.date(), local.weekday(), local.hour, local.minute // 30)
            self._local[quarter] = known
        return known

    def add(self, row: Sequence[Any]) -> None:
        """One stored call: a row of ``store_query.report_sql``."""
        call = StoredCall(*row)
        outcome = call.outcome
        if outcome is None:
            self.open += 1
            return
        offered_at = call.offered_at
        on, weekday, hour, half = self._local_of(offered_at)
        day = self.days.get(on)
        if day is None:  # a clock step put it outside the period's days
            return
        slot = hour * 2 + half
        cell = self.cells[weekday][hour]
        day.offered += 1
        cell.offered += 1
        self.outcomes[outcome] += 1
        self.slot_offered[(weekday, slot)] += 1
        if call.offered_at_estimated or call.answered_at_estimated:
            self.estimated += 1
        if call.queued_at is not None:
            self.greetings.append(max(0.0, _at(call.queued_at) - offered_at))
        if call.wait_seconds is not None:
            self.waited += call.wait_seconds
        answer = call.answer_seconds
        if answer is not None:
            self.answer_seconds.append(answer)
            self.answer_bins[bin_of(answer)] += 1
            for t in WITHIN:
                if answer <= t:
                    self.within[t] += 1
                    day.within[t] += 1
            if answer <= 15:
                cell.within_15 += 1
        if outcome == "answered":
            day.answered += 1
            self._answered(call, day, (weekday, slot))
        elif outcome == "abandoned":
            day.abandoned += 1
            stage = call.abandon_stage or ""
            self.stages[stage] += 1
            if stage in ("queue", "ringing"):
                self.gave_up += 1
            if call.ended_at is not None and stage in self.abandon_bins:
                self.abandon_bins[stage][bin_of(_at(call.ended_at) - offered_at)] += 1
        if outcome in callbacks.OWED:
            self._callback(call)

    def _answered(self, call: StoredCall, day: Day, slot: tuple[int, int]) -> None:
        category = call.category
        dispatched = json.loads(call.dispatched_to) if call.dispatched_to else []
        if category is None:
            self.unclassified += 1
        else:
            day.categories[category] += 1
            if category not in self.categories:
                self.categories.append(category)
        for d in dispatched:
            day.agencies[d["agency"]] += 1
        if dispatched and call.answered_at is not None:
            first = _at(dispatched[0]["at"])
            self.to_dispatch.append(max(0.0, first - _at(call.answered_at)))
        talk = call.talk_seconds
        if talk is not None:
            self.slot_talk[slot].append(talk)
        taken = self.taken[(call.queue or "", call.agent or "")]
        taken[0] += 1
        taken[1] += talk or 0.0
        taken[2] += talk is not None
        taken[3] += category is not None
        taken[4] += len(dispatched)

    def _callback(self, call: StoredCall) -> None:
        answered = call.answered_at is not None
        if not callbacks.is_owed(call.outcome, call.caller_number, answered=answered):
            return
        self.owed += 1
        if call.callback is None:
            return
        state = json.loads(call.callback)
        if state["attempts"]:
            self.attempted += 1
        self.reached += state["result"] == "answered"
        self.recalled += state["result"] == "recalled"
        first, abandoned = state["first_attempt_at"], state["abandoned_at"]
        if first is not None and abandoned is not None:
            self.first_attempt.append(max(0.0, _at(first) - _at(abandoned)))

    # -- the JSON ---------------------------------------------------------------------

    @property
    def offered(self) -> int:
        return sum(self.outcomes.values())

    def callbacks_json(self) -> dict[str, Any]:
        return {
            "owed": self.owed,
            "attempted": self.attempted,
            "reached": self.reached,
            "recalled": self.recalled,
            "never_reached": self.owed - self.reached - self.recalled,
        }

    def headline(self) -> dict[str, Any]:
        offered = self.offered
        return {
            "offered": offered,
            "open": self.open,
            **{o: self.outcomes[o] for o in ("answered", "abandoned", "unanswered", "interrupted")},
            "abandoned_by_stage": {s: self.stages[s] for s in ABANDON_STAGES},
            "within": {
                str(t): {"calls": self.within[t], "share": share(self.within[t], offered)}
                for t in WITHIN
            },
            "standards": [
                {
                    "standard": name,
                    "seconds": seconds,
                    "target": target,
                    "share": share(self.within[seconds], offered),
                    "met": None if not offered else self.within[seconds] / offered >= target,
                }
                for name, seconds, target in STANDARDS
            ],
            "answer_seconds": {
                "median": nearest_rank(self.answer_seconds, 0.5),
                "p90": nearest_rank(self.answer_seconds, 0.9),
            },
            "callbacks": self.callbacks_json(),
        }

    def days_json(self) -> list[dict[str, Any]]:
        return [
            {
                "date": d.isoformat(),
                "offered": day.offered,
                "answered": day.answered,
                "abandoned": day.abandoned,
                "within_15": day.within[15],
                "share_15": share(day.within[15], day.offered),
                "share_20": share(day.within[20], day.offered),
            }
            for d, day in self.days.items()
        ]

    def heatmap(self) -> dict[str, Any]:
        return {
            "offered": [[c.offered for c in row] for row in self.cells],
            "share_15": [[share(c.within_15, c.offered) for c in row] for row in self.cells],
        }

    def distributions(self) -> dict[str, Any]:
        return {
            "answer_distribution": {"edges": list(EDGES), "counts": self.answer_bins},
            "abandon_distribution": {"edges": list(EDGES), "by_stage": self.abandon_bins},
        }

    def mixes(self) -> dict[str, Any]:
        agencies = sorted({a for day in self.days.values() for a in day.agencies})
        days = self.days.values()
        return {
            "classification": {
                "categories": self.categories,
                "total": {
                    c: sum(d.categories[c] for d in self.days.values()) for c in self.categories
                },
                "unclassified": self.unclassified,
                "by_day": [
                    {"date": d.isoformat(), **{c: day.categories[c] for c in self.categories}}
                    for d, day in self.days.items()
                ],
            },
            "dispatch": {
                "agencies": agencies,
                "total": {a: sum(d.agencies[a] for d in days) for a in agencies},
                "by_day": [
                    {"date": d.isoformat(), **{a: day.agencies[a] for a in agencies}}
                    for d, day in self.days.items()
                ],
                "answer_to_dispatch_seconds": spread(self.to_dispatch),
            },
            "callbacks": {
                **self.callbacks_json(),
                "first_attempt_seconds": spread(self.first_attempt),
                "reached_share": share(self.reached + self.recalled, self.owed),
            },
        }
