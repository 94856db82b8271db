"""The monthly report's figures of the call takers: what each did, and how many the
center would have needed in each half hour of the week. Pure.

Call takers' times come from their stored states (``agent_events``), clipped to the
period and to what has happened yet; the calls they answered come from the call
figures. Staffing stands on :mod:`pbxbridge.staffing` (Erlang C, and Erlang A with the
measured patience); the README says what each model assumes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from statistics import fmean
from typing import Any
from zoneinfo import ZoneInfo

from pbxbridge import sessions, staffing
from pbxbridge.report_figures import CallFigures, nearest_rank
from pbxbridge.store_query import Period
from pbxbridge.store_rows import AgentRow

SLOT = 1800.0
TARGET_SECONDS, TARGET_SHARE = 15.0, 0.90
ON_DUTY = ("available", "ringing", "in_call")


@dataclass(slots=True)
class MemberTimes:
    """One call taker's period in one queue."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # by state
    paused: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # by reason
    rings: list[float] = field(default_factory=list)  # rings that became a call
    missed: int = 0  # rings that did not
    on_duty: list[tuple[float, float]] = field(default_factory=list)


def member_times(changes: Iterable[AgentRow], period: Period) -> dict[tuple[str, str], MemberTimes]:
    """Each member's states as :func:`sessions.member_spans` spans them (from a change to
    the next, clipped to the period, logged out left out), folded in one pass: a month of
    a large center is 200,000 changes (bench_report)."""
    assert period.start is not None and period.end is not None
    start, stop = period.start, period.end
    by_member: dict[tuple[str, str], list[AgentRow]] = defaultdict(list)
    for c in changes:
        by_member[(c.queue, c.agent)].append(c)
    out: dict[tuple[str, str], MemberTimes] = {}
    for key, rows in by_member.items():
        rows.sort(key=lambda r: r.at)
        m = out[key] = MemberTimes()
        for row, nxt in zip(rows, [*rows[1:], None], strict=True):
            state = row.state
            if state != "logged_out":
                s = row.at if row.at > start else start
                end = stop if nxt is None else nxt.at
                e = end if end < stop else stop
                if e > s:
                    m.seconds[state] += e - s
                    if state == "paused":
                        m.paused[row.reason] += e - s
                    elif state in ON_DUTY:
                        m.on_duty.append((s, e))
            if state == "ringing" and nxt is not None and start <= row.at < stop:
                if nxt.state == "in_call":
                    m.rings.append(nxt.at - row.at)
                else:
                    m.missed += 1
    return out


def call_takers(
    times: dict[tuple[str, str], MemberTimes], figures: CallFigures
) -> list[dict[str, Any]]:
    """``times``: :func:`member_times` of the period."""
    out = []
    for key in sorted(set(times) | set(figures.taken)):
        answered, talk, talked, classified, dispatches = figures.taken.get(key, [0, 0.0, 0, 0, 0])
        m = times.get(key) or MemberTimes()
        t = m.seconds
        busy = t.get("ringing", 0.0) + t.get("in_call", 0.0)
        ready = busy + t.get("available", 0.0)
        out.append(
            {
                "queue": key[0],
                "agent": key[1],
                "answered": int(answered),
                "ring_no_answer": m.missed,
                "ring_seconds_median": nearest_rank(m.rings, 0.5),
                "talk_seconds": talk,
                "talk_seconds_mean": talk / talked if talked else None,
                "classified": int(classified),
                "dispatches": int(dispatches),
                "logged_in_seconds": sum(t.values()),
                "paused_seconds": t.get("paused", 0.0),
                "paused_by_reason": {r: v for r, v in sorted(m.paused.items()) if v > 0},
                "occupancy": busy / ready if ready else None,
            }
        )
    return out


def _on_duty(times: dict[tuple[str, str], MemberTimes]) -> list[tuple[float, float]]:
    """Each call taker's time available, ringing or in a call in any queue, merged."""
    by_agent: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for (_, agent), m in times.items():
        by_agent[agent] += m.on_duty
    merged: list[tuple[float, float]] = []
    for own in by_agent.values():
        if not own:
            continue
        own.sort()
        start, end = own[0]
        for s, e in own[1:]:
            if s > end:
                merged.append((start, end))
                start, end = s, e
            else:
                end = max(end, e)
        merged.append((start, end))
    return merged


def staffing_json(
    figures: CallFigures, times: dict[tuple[str, str], MemberTimes], period: Period, tz: ZoneInfo
) -> dict[str, Any]:
    """The call takers needed per half hour of the week beside those on duty."""
    assert period.start is not None and period.end is not None
    grid = int((period.end - period.start + SLOT - 1) // SLOT)
    keys = []
    for k in range(grid):
        local = datetime.fromtimestamp(period.start + k * SLOT, tz)
        keys.append((local.weekday(), local.hour * 2 + local.minute // 30))
    occurrences: dict[tuple[int, int], int] = defaultdict(int)
    for key in keys:
        occurrences[key] += 1
    on_duty: dict[tuple[int, int], float] = defaultdict(float)
    for begin, end in _on_duty(times):
        t, k = begin, int((begin - period.start) // SLOT)
        while t < end and k < grid:
            edge = min(end, period.start + (k + 1) * SLOT)
            on_duty[keys[k]] += edge - t
            t, k = edge, k + 1

    # Nothing queued: no greeting measured, and the queue is given the whole target.
    greeting = fmean(figures.greetings) if figures.greetings else None
    within = max(0.0, TARGET_SECONDS - (greeting or 0.0))
    patience = staffing.patience_rate(figures.gave_up, figures.waited) or None
    all_talk = [t for talks in figures.slot_talk.values() for t in talks]
    mean_talk = fmean(all_talk) if all_talk else None
    slots = []
    for weekday in range(7):
        for half in range(48):
            key = (weekday, half)
            seen = occurrences.get(key, 0)
            offered = figures.slot_offered.get(key, 0)
            talks = figures.slot_talk.get(key)
            handle = fmean(talks) if talks else mean_talk
            rate = offered / (seen * SLOT) if seen else 0.0
            slots.append(
                {
                    "weekday": weekday,
                    "start": f"{half // 2:02d}:{half % 2 * 30:02d}",
                    "occurrences": seen,
                    "offered": offered,
                    "arrivals_per_hour": rate * 3600,
                    "handle_seconds": handle,
                    **_needed(rate, handle, within, patience),
                    "logged_in": on_duty.get(key, 0.0) / (seen * SLOT) if seen else 0.0,
                }
            )
    return {
        "model": "erlang_a" if patience else "erlang_c",
        "target": {"seconds": TARGET_SECONDS, "share": TARGET_SHARE},
        "greeting_seconds": greeting,
        "queue_seconds": within,
        "handle_seconds": mean_talk,
        "patience_seconds": 1 / patience if patience else None,
        "slots": slots,
    }


def _needed(
    rate: float, handle: float | None, within: float, patience: float | None
) -> dict[str, int | None]:
    if rate <= 0:
        return {"needed_erlang_c": 0, "needed_erlang_a": 0 if patience else None}
    if not handle:
        return {"needed_erlang_c": None, "needed_erlang_a": None}
    load = staffing.traffic(rate, handle)
    return {
        "needed_erlang_c": staffing.agents_needed(load, handle, within, TARGET_SHARE),
        "needed_erlang_a": (
            staffing.agents_needed_a(rate, handle, patience, within, TARGET_SHARE)
            if patience
            else None
        ),
    }


def unobserved(amis: Iterable[Any], period: Period) -> dict[str, Any]:
    amis = list(amis)
    blind = sessions.blind_spans(amis, period)
    return {
        "unobserved": [sessions.span_json(s) for s in blind],
        "unobserved_seconds": sum(s.seconds for s in blind),
        "ami_sessions": sum(len(s) for s in sessions.up_spans(amis, period).values()),
    }
