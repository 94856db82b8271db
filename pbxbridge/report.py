"""The monthly report: its figures read from the call store, and rendered.

``build`` reads one period from the store (the calls page by page, the call takers'
states and the AMI sessions) and returns the report's JSON document; ``render`` turns
that document into the HTML page or the PDF. Synchronous: the daemon runs it on a
thread, the CLI directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from pbxbridge import config, report_staff, store_query
from pbxbridge.incidents import rfc3339
from pbxbridge.report_figures import CallFigures
from pbxbridge.store_read import Reader, Target, open_reader

SCHEMA = "pbxbridge.report/1"
MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "json": "application/json",
}


@dataclass(frozen=True, slots=True)
class Center:
    """What a report says of the center, from its configuration."""

    service: str
    tz: ZoneInfo
    categories: tuple[str, ...]
    retention_days: float


def center_of(cfg: config.Config) -> Center:
    return Center(
        service=cfg.emergency.service,
        tz=cfg.pbx.zone,
        categories=tuple(cfg.emergency.categories),
        retention_days=cfg.store.retention_days,
    )


def make_from(target: Target, query: store_query.ReportQuery, center: Center, now: float) -> bytes:
    """:func:`make` reading ``target``: what the daemon runs in a child process."""
    with open_reader(target) as reader:
        return make(reader, query, center, now)


def make(reader: Reader, query: store_query.ReportQuery, center: Center, now: float) -> bytes:
    """The report ``query`` asks for, in its format (``MEDIA_TYPES``)."""
    doc = build(
        reader,
        query.first,
        query.last,
        center.tz,
        now=now,
        retention_days=center.retention_days,
        categories=center.categories,
    )
    doc["service"] = center.service
    if query.format == "json":
        return json.dumps(doc, ensure_ascii=False, allow_nan=False, indent=1).encode()
    # matplotlib and WeasyPrint load on the first page asked for, not at the daemon's start.
    from pbxbridge import report_html  # noqa: PLC0415

    page = report_html.html(doc, query.lang, service=center.service)
    return page.encode() if query.format == "html" else report_html.pdf(page)


def build(
    reader: Reader,
    first: date,
    last: date,
    tz: ZoneInfo,
    *,
    now: float,
    retention_days: float = 1825,
    categories: tuple[str, ...] = (),
) -> dict[str, Any]:
    period = store_query.local_days(first, last, tz)
    assert period.start is not None and period.end is not None
    # What has happened yet: a month still running is measured up to now.
    seen_end = max(period.start, min(period.end, now))
    seen = store_query.Period(period.start, seen_end)
    figures = CallFigures(first, last, tz, categories)
    for row in reader.report_rows(period):
        figures.add(row)
    begun = seen_end > period.start
    changes = reader.member_changes(seen) if begun else []
    amis = reader.ami_sessions(seen) if begun else []
    times = report_staff.member_times(changes, seen)
    oldest = now - retention_days * 86400
    return {
        "schema": SCHEMA,
        "generated_at": rfc3339(now),
        "period": {
            "from": first.isoformat(),
            "to": last.isoformat(),
            "timezone": tz.key,
            "start": rfc3339(period.start),
            "end": rfc3339(period.end),
            "days": (last - first).days + 1,
            "observed_until": rfc3339(now) if now < period.end else None,
        },
        "empty": figures.offered + figures.open == 0,
        "missing": (
            {"before": rfc3339(oldest), "retention_days": retention_days}
            if period.start < oldest
            else None
        ),
        "headline": figures.headline(),
        "days": figures.days_json(),
        "heatmap": figures.heatmap(),
        **figures.distributions(),
        "call_takers": report_staff.call_takers(times, figures),
        **figures.mixes(),
        "staffing": report_staff.staffing_json(figures, times, seen, tz),
        "data_quality": {
            "interrupted": figures.outcomes["interrupted"],
            "estimated_times": figures.estimated,
            **report_staff.unobserved(amis, seen),
        },
    }
