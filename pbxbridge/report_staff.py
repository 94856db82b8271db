"""The monthly report's figures of the call takers: what each did, and how many the
center would have needed in each half hour of the week. Pure.

Call takers' times come from their stored states (``agent_events``), clipped to the
period and to what has happened yet; the calls they answered come from the call
figures. Staffing stands on :mod:`pbxbridge.staffing` (Erlang C, and Erlang A with the
measured patience); the README says what each model assumes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from itertools import pairwise
from statistics import fmean
from typing import Any
from zoneinfo import ZoneInfo

from pbxbridge import sessions, staffing
from pbxbridge.report_figures import CallFigures, nearest_rank
from pbxbridge.sessions import MemberSpan
from pbxbridge.store_query import Period
from pbxbridge.store_rows import AgentRow

SLOT = 1800.0
TARGET_SECONDS, TARGET_SHARE = 15.0, 0.90
ON_DUTY = ("available", "ringing", "in_call")


def call_takers(
    changes: Sequence[AgentRow], spans: Sequence[MemberSpan], period: Period, figures: CallFigures
) -> list[dict[str, Any]]:
    """``spans``: :func:`sessions.member_spans` of ``changes`` in ``period``."""
    assert period.start is not None and period.end is not None
    times: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    paused: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for m in spans:
        times[(m.queue, m.agent)][m.state] += m.span.seconds
        if m.state == "paused":
            paused[(m.queue, m.agent)][m.reason] += m.span.seconds
    rings: dict[tuple[str, str], list[float]] = defaultdict(list)
    missed: dict[tuple[str, str], int] = defaultdict(int)
    by_member: dict[tuple[str, str], list[AgentRow]] = defaultdict(list)
    for c in changes:
        by_member[(c.queue, c.agent)].append(c)
    for key, rows in by_member.items():
        rows.sort(key=lambda r: r.at)
        for ring, nxt in pairwise(rows):
            if ring.state != "ringing" or not period.start <= ring.at < period.end:
                continue
            if nxt.state == "in_call":
                rings[key].append(nxt.at - ring.at)
            else:
                missed[key] += 1
    out = []
    for key in sorted(set(times) | set(figures.taken) | set(missed)):
        answered, talk, talked, classified, dispatches = figures.taken.get(key, [0, 0.0, 0, 0, 0])
        t = times.get(key, {})
        logged_in = sum(t.values())
        busy = t.get("ringing", 0.0) + t.get("in_call", 0.0)
        ready = busy + t.get("available", 0.0)
        out.append(
            {
                "queue": key[0],
                "agent": key[1],
                "answered": int(answered),
                "ring_no_answer": missed.get(key, 0),
                "ring_seconds_median": nearest_rank(rings.get(key, []), 0.5),
                "talk_seconds": talk,
                "talk_seconds_mean": talk / talked if talked else None,
                "classified": int(classified),
                "dispatches": int(dispatches),
                "logged_in_seconds": logged_in,
                "paused_seconds": t.get("paused", 0.0),
                "paused_by_reason": dict(sorted(paused.get(key, {}).items())),
                "occupancy": busy / ready if ready else None,
            }
        )
    return out


def _on_duty(spans: Sequence[MemberSpan]) -> list[tuple[float, float]]:
    """Each call taker's time available, ringing or in a call in any queue, merged."""
    by_agent: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for m in spans:
        if m.state in ON_DUTY:
            by_agent[m.agent].append((m.span.start, m.span.end))
    merged: list[tuple[float, float]] = []
    for own in by_agent.values():
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
    figures: CallFigures, spans: Sequence[MemberSpan], period: Period, tz: ZoneInfo
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
    for begin, end in _on_duty(spans):
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
