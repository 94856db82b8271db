"""Questions to the call store, checked and turned into SQL. Pure.

A query names a period and filters. Dates are the center's local days (``[pbx]
timezone``): ``from=2026-11-01&to=2026-11-30`` is the whole of November as the center
lived it, ``to`` included. A time with an offset (RFC 3339) is taken as it is, and a
time without one as local; ``to`` then excludes that instant. Results are ordered by
arrival, then call id, and paged by keyset: a cursor holds the last row's key and a
digest of the question, so a page is stable while calls are added and a cursor given
to another question is refused.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pbxbridge.records import ABANDON_STAGES, OUTCOMES

CALL_FILTERS = ("outcome", "stage", "queue", "agent", "category", "agency", "number")
CALL_PARAMS = ("from", "to", *CALL_FILTERS, "limit", "cursor")
PERIOD_PARAMS = ("from", "to")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# Call-taker sessions come whole (no paging): a period of at most this many days.
MAX_SESSION_DAYS = 92


class QueryError(ValueError):
    """A question the store cannot answer: ``parameter`` names what to change."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message

    def json(self) -> dict[str, str]:
        return {"error": self.message, "parameter": self.parameter}


@dataclass(frozen=True, slots=True)
class Period:
    start: float | None  # Unix seconds, included
    end: float | None  # excluded


@dataclass(frozen=True, slots=True)
class CallQuery:
    period: Period
    outcome: str | None = None
    stage: str | None = None
    queue: str | None = None
    agent: str | None = None
    category: str | None = None
    agency: str | None = None
    number: str | None = None

    def digest(self) -> str:
        return hashlib.sha256(repr(self).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Page:
    query: CallQuery
    limit: int
    after: tuple[float, str] | None  # the key (offered_at, call_id) of the last row seen


def parse_moment(text: str, tz: ZoneInfo, *, end: bool, parameter: str) -> float:
    """A date (a local day: its start, or for an ``end`` the next day's start) or a
    time (RFC 3339; without an offset, local)."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            if end:
                day += timedelta(days=1)
            return datetime.combine(day, time(), tz).timestamp()
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise QueryError(
            parameter,
            f"{parameter}: {text!r} is not a date (YYYY-MM-DD) or a time "
            f"(YYYY-MM-DDTHH:MM:SS, optionally with Z or an offset such as +07:00)",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.timestamp()


def parse_period(params: Mapping[str, str], tz: ZoneInfo) -> Period:
    start = (
        parse_moment(params["from"], tz, end=False, parameter="from") if "from" in params else None
    )
    end = parse_moment(params["to"], tz, end=True, parameter="to") if "to" in params else None
    if start is not None and end is not None and start >= end:
        raise QueryError("from", f"from ({params['from']}) is not before to ({params['to']})")
    return Period(start, end)


def check_names(params: Iterable[str], allowed: Sequence[str]) -> None:
    for name in params:
        if name not in allowed:
            raise QueryError(name, f"{name}: unknown parameter (known: {', '.join(allowed)})")


def parse_calls(params: Mapping[str, str], tz: ZoneInfo) -> Page:
    """The page a ``GET /v1/calls`` (or ``pbxbridge calls``) asks for."""
    check_names(params, CALL_PARAMS)
    filters = {k: params[k].strip() for k in CALL_FILTERS if k in params}
    for key, value in filters.items():
        if not value:
            raise QueryError(key, f"{key}: empty (leave the parameter out to match any)")
    if filters.get("outcome") not in (None, *OUTCOMES):
        raise QueryError("outcome", f"outcome: one of {', '.join(OUTCOMES)}")
    if filters.get("stage") not in (None, *ABANDON_STAGES):
        raise QueryError("stage", f"stage: one of {', '.join(ABANDON_STAGES)}")
    query = CallQuery(parse_period(params, tz), **filters)
    try:
        limit = int(params.get("limit", DEFAULT_LIMIT))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError("limit", f"limit: a whole number from 1 to {MAX_LIMIT}")
    after = _decode_cursor(params["cursor"], query) if "cursor" in params else None
    return Page(query, limit, after)


def parse_sessions(params: Mapping[str, str], tz: ZoneInfo) -> Period:
    """The period a ``GET /v1/agents`` asks for: both ends, at most MAX_SESSION_DAYS."""
    check_names(params, PERIOD_PARAMS)
    for name in PERIOD_PARAMS:
        if name not in params:
            raise QueryError(name, f"{name}: required (a date YYYY-MM-DD or a time)")
    period = parse_period(params, tz)
    assert period.start is not None and period.end is not None
    if period.end - period.start > MAX_SESSION_DAYS * 86400 + 3600:
        raise QueryError("to", f"to: a period of at most {MAX_SESSION_DAYS} days")
    return period


def cursor(query: CallQuery, offered_at: float, call_id: str) -> str:
    raw = json.dumps([offered_at, call_id, query.digest()], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(text: str, query: CallQuery) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        offered_at, call_id, digest = json.loads(raw)
        key = (float(offered_at), str(call_id))
    except (ValueError, TypeError):
        raise QueryError("cursor", "cursor: not a cursor this API gave") from None
    if digest != query.digest():
        raise QueryError("cursor", "cursor: it belongs to another query (other filters)")
    return key


# -- SQL ----------------------------------------------------------------------------------


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%,{escaped},%"


def calls_sql(page: Page) -> tuple[str, list[Any]]:
    """The SQL (``?`` placeholders) of one page: doc, offered_at and call_id per row."""
    q = page.query
    where: list[str] = []
    args: list[Any] = []
    # One lower bound only, the tighter: SQLite starts its index range at one of them.
    lower = q.period.start
    if page.after is not None:
        lower = page.after[0] if lower is None else max(lower, page.after[0])
    if lower is not None:
        where.append("offered_at >= ?")
        args.append(lower)
    if q.period.end is not None:
        where.append("offered_at < ?")
        args.append(q.period.end)
    for column, value in (
        ("outcome", q.outcome),
        ("abandon_stage", q.stage),
        ("queue", q.queue),
        ("agent", q.agent),
        ("category", q.category),
        ("caller_number", q.number),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if q.agency is not None:
        where.append("agencies LIKE ? ESCAPE '\\'")
        args.append(_like(q.agency))
    if page.after is not None:
        # Spelled out, not as the row value (offered_at, call_id) > (?, ?): SQLite 3.40
        # does not start its index range there, and each page would scan the ones before.
        where.append("(offered_at > ? OR call_id > ?)")
        args += list(page.after)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    sql = f"SELECT doc, offered_at, call_id FROM calls{clause} ORDER BY offered_at, call_id LIMIT ?"
    return sql, [*args, page.limit]


# -- what a reader gets --------------------------------------------------------------------

CSV_COLUMNS = (
    "call_id",
    "service",
    "caller_number",
    "offered_at",
    "queued_at",
    "answered_at",
    "ended_at",
    "answer_seconds",
    "wait_seconds",
    "talk_seconds",
    "outcome",
    "abandon_stage",
    "queue",
    "agent",
    "queues",
    "ring_attempts",
    "ring_no_answer",
    "category",
    "dispatched_to",
    "offered_at_estimated",
    "answered_at_estimated",
    "callback_attempts",
    "callback_result",
    "linkedid",
)
_TIMES = ("offered_at", "queued_at", "answered_at", "ended_at")


def local_time(rfc3339: str | None, tz: ZoneInfo) -> str:
    """An RFC 3339 UTC time as the center's wall clock, with its offset."""
    if rfc3339 is None:
        return ""
    moment = datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).astimezone(tz)
    return moment.isoformat(sep=" ", timespec="microseconds")


def csv_values(call: Mapping[str, Any], tz: ZoneInfo) -> list[str]:
    """One CSV row of a stored call object: local times, lists joined by "; "."""
    out: list[str] = []
    for column in CSV_COLUMNS:
        if column in _TIMES:
            out.append(local_time(call[column], tz))
        elif column == "caller_number":
            out.append(_inert(call["caller"]["number"]))
        elif column == "queues":
            out.append("; ".join(call["queues"]))
        elif column.startswith("callback_"):
            callback = call.get("callback") or {}
            value = callback.get(column.removeprefix("callback_"))
            out.append("" if value is None else str(value))
        elif column == "dispatched_to":
            out.append(
                "; ".join(f"{d['agency']} {local_time(d['at'], tz)}" for d in call["dispatched_to"])
            )
        else:
            value = call.get(column)
            if isinstance(value, bool):
                out.append("true" if value else "false")
            else:
                out.append("" if value is None else _inert(str(value)))
    return out


def _inert(text: str) -> str:
    """A value a spreadsheet will not run as a formula. The caller's number is the
    caller's to choose (SIP From): ``=HYPERLINK(...)`` must arrive as text. A leading
    ``+`` or ``-`` before digits only is a phone number and stays as it is."""
    if text[:1] in ("=", "@", "\t", "\r") or (
        text[:1] in ("+", "-") and not text[1:].replace(" ", "").isdigit()
    ):
        return "'" + text
    return text


def csv_lines(calls: Iterable[Mapping[str, Any]], tz: ZoneInfo, *, header: bool) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for call in calls:
        writer.writerow(csv_values(call, tz))
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    if header and buf.tell():
        yield buf.getvalue()
