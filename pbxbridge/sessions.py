"""Call-taker sessions and AMI gaps, as spans of time, from the changes the store keeps.
Pure.

A member's change starts a span that lasts until its next change, or the period's end.
Spans are clipped to the period; a member logged out has no span. While no pbxbridge
had an AMI session, what a call taker did is unknown: such spans are ``unobserved``,
and those times are listed so a reader knows what the numbers stand on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from pbxbridge.incidents import rfc3339
from pbxbridge.store_query import Period
from pbxbridge.store_rows import AgentRow, AmiRow
from pbxbridge.values import value


@value
class Span:
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return round(self.end - self.start, 6)


@value
class MemberSpan:
    queue: str
    agent: str
    state: str
    reason: str
    span: Span


def _clip(start: float, end: float, period: Period) -> Span | None:
    assert period.start is not None and period.end is not None
    # Conditionals rather than max/min: a month of a large center clips 400,000 spans.
    s = start if start > period.start else period.start
    e = end if end < period.end else period.end
    return Span(s, e) if e > s else None


def member_spans(changes: Iterable[AgentRow], period: Period) -> list[MemberSpan]:
    assert period.end is not None
    by_member: dict[tuple[str, str], list[AgentRow]] = defaultdict(list)
    for c in changes:
        by_member[(c.queue, c.agent)].append(c)
    out: list[MemberSpan] = []
    for (queue, agent), rows in sorted(by_member.items()):
        rows.sort(key=lambda r: r.at)
        for row, nxt in zip(rows, [*rows[1:], None], strict=True):
            if row.state == "logged_out":
                continue
            span = _clip(row.at, period.end if nxt is None else nxt.at, period)
            if span is not None:
                out.append(MemberSpan(queue, agent, row.state, row.reason, span))
    return sorted(out, key=lambda m: (m.span.start, m.queue, m.agent))


def up_spans(sessions: Iterable[AmiRow], period: Period) -> dict[str, list[Span]]:
    assert period.end is not None
    by_instance: dict[str, list[AmiRow]] = defaultdict(list)
    for s in sessions:
        by_instance[s.instance].append(s)
    up: dict[str, list[Span]] = {}
    for instance, rows in sorted(by_instance.items()):
        rows.sort(key=lambda r: (r.at, r.up))
        up[instance] = [
            span
            for row, nxt in zip(rows, [*rows[1:], None], strict=True)
            if row.up and (span := _clip(row.at, period.end if nxt is None else nxt.at, period))
        ]
    return up


def blind_spans(sessions: Iterable[AmiRow], period: Period) -> list[Span]:
    """When no pbxbridge instance had an AMI session within ``period`` (before the first
    session the store knows of counts as blind: nothing was watching)."""
    assert period.start is not None and period.end is not None
    ups = sorted(
        (s for spans in up_spans(sessions, period).values() for s in spans),
        key=lambda s: s.start,
    )
    blind, t = [], period.start
    for s in ups:
        if s.start > t:
            blind.append(Span(t, s.start))
        t = max(t, s.end)
    if t < period.end:
        blind.append(Span(t, period.end))
    return blind


def span_json(span: Span) -> dict[str, Any]:
    return {"from": rfc3339(span.start), "to": rfc3339(span.end), "seconds": span.seconds}


def _overlaps(span: Span, gaps: Sequence[Span]) -> bool:
    return any(g.start < span.end and span.start < g.end for g in gaps)


def sessions_json(
    changes: Iterable[AgentRow], sessions: Iterable[AmiRow], period: Period
) -> dict[str, Any]:
    """The body of ``GET /v1/agents``."""
    sessions = list(sessions)
    blind = blind_spans(sessions, period)
    return {
        "from": rfc3339(period.start),
        "to": rfc3339(period.end),
        "sessions": [
            {
                "queue": m.queue,
                "agent": m.agent,
                "state": m.state,
                "reason": m.reason or None,
                "from": rfc3339(m.span.start),
                "to": rfc3339(m.span.end),
                "seconds": m.span.seconds,
                "unobserved": _overlaps(m.span, blind),
            }
            for m in member_spans(changes, period)
        ],
        "ami_sessions": [
            {"instance": i, **span_json(s)}
            for i, spans in up_spans(sessions, period).items()
            for s in spans
        ],
        "unobserved": [span_json(s) for s in blind],
    }
