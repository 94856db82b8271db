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
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
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
        ("agent", q.agent),
        ("category", q.category),
        ("caller_number", q.number),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    # A queue is any queue the call waited in (an abandoned call has no answering
    # queue); an agency, any the call was handed to.
    for column, value in (("queues", q.queue), ("agencies", q.agency)):
        if value is not None:
            where.append(f"{column} LIKE ? ESCAPE '\\'")
            args.append(_like(value))
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


_HOURS_KEPT = 48


class LocalTimes:
    """RFC 3339 UTC times as the center's wall clock with its offset
    (``2026-11-30 19:34:56.123456+07:00``).

    The zone is asked once per UTC hour. An hour that starts and ends with the same
    whole-hour offset (nearly every hour of nearly every zone) is converted as text:
    the date and hour come from the cache, minutes and below are the same digits. Any
    other hour (a clock change inside it, a half-hour zone) goes through datetime. A
    year's CSV export spent half its time here (tests/benchmarks/bench_store.py).
    """

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        # UTC "YYYY-MM-DDTHH" -> (local "YYYY-MM-DD HH", "+07:00"), or None: use datetime
        self._hours: dict[str, tuple[str, str] | None] = {}

    def __call__(self, rfc3339: str | None) -> str:
        if rfc3339 is None:
            return ""
        hour = rfc3339[:13]
        try:
            fast = self._hours[hour]
        except KeyError:
            if len(self._hours) >= _HOURS_KEPT:  # exports run in time order: memory stays flat
                self._hours.clear()
            fast = self._hours[hour] = self._hour(hour)
        # incidents.rfc3339's own form: "2026-11-30T12:34:56.123456Z".
        if fast is not None and len(rfc3339) == 27 and rfc3339[26] == "Z":
            return f"{fast[0]}{rfc3339[13:26]}{fast[1]}"
        moment = datetime.fromisoformat(rfc3339).astimezone(self.tz)
        return moment.isoformat(" ", "microseconds")

    def _hour(self, hour: str) -> tuple[str, str] | None:
        start = datetime.fromisoformat(hour + ":00:00+00:00")
        first = start.astimezone(self.tz)
        last = (start + timedelta(seconds=3599.999999)).astimezone(self.tz)
        offset = first.utcoffset()
        if offset is None or offset != last.utcoffset() or offset % timedelta(hours=1):
            return None
        text = first.isoformat(" ", "microseconds")  # "2026-11-30 19:00:00.000000+07:00"
        return text[:13], text[26:]


def local_time(rfc3339: str | None, tz: ZoneInfo) -> str:
    """An RFC 3339 UTC time as the center's wall clock, with its offset."""
    return LocalTimes(tz)(rfc3339)


_Column = Callable[[Mapping[str, Any]], str]
# Values from outside pbxbridge (the caller's number is the caller's to choose; member
# and queue names come from whoever configures Asterisk): made inert for spreadsheets
# and quoted as CSV needs. Every other value is pbxbridge's own (numbers, times, ids,
# configured tokens) and holds no comma, quote or line end.
_FOREIGN = ("queue", "agent")


def _field(text: str) -> str:
    """A foreign value as one CSV field (RFC 4180), never a formula."""
    text = _inert(text)
    if '"' in text or "," in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def _extractors(local: LocalTimes) -> list[_Column]:
    """One function per CSV column, in CSV_COLUMNS order."""

    def time_of(key: str) -> _Column:
        return lambda call: local(call[key])

    def plain(key: str) -> _Column:
        return lambda call: "" if (v := call.get(key)) is None else str(v)

    def foreign(key: str) -> _Column:
        return lambda call: "" if (v := call.get(key)) is None else _field(v)

    def flag(key: str) -> _Column:
        return lambda call: "true" if call.get(key) else "false"

    def callback(key: str) -> _Column:
        def get(call: Mapping[str, Any]) -> str:
            value = (call.get("callback") or {}).get(key)
            return "" if value is None else str(value)

        return get

    special: dict[str, _Column] = {
        "caller_number": lambda call: _field(call["caller"]["number"]),
        "queues": lambda call: _field("; ".join(call["queues"])) if call["queues"] else "",
        "dispatched_to": lambda call: "; ".join(
            f"{d['agency']} {local(d['at'])}" for d in call["dispatched_to"]
        ),
        "offered_at_estimated": flag("offered_at_estimated"),
        "answered_at_estimated": flag("answered_at_estimated"),
        "callback_attempts": callback("attempts"),
        "callback_result": callback("result"),
    }
    return [
        special.get(c) or (time_of(c) if c in _TIMES else foreign(c) if c in _FOREIGN else plain(c))
        for c in CSV_COLUMNS
    ]


class CsvRows:
    """Stored call objects as CSV text (RFC 4180, CRLF), a page at a time: local times,
    lists joined by "; ", nothing a spreadsheet would run. Rows are joined here rather
    than by the csv module, which spent a third of a year's export checking fields that
    cannot need quotes (bench_store)."""

    def __init__(self, tz: ZoneInfo) -> None:
        self._columns = _extractors(LocalTimes(tz))

    def header(self) -> str:
        return ",".join(CSV_COLUMNS) + "\r\n"

    def page(self, calls: Iterable[Mapping[str, Any]]) -> str:
        columns = self._columns
        return "".join(",".join([c(call) for c in columns]) + "\r\n" for call in calls)


def _inert(text: str) -> str:
    """A value a spreadsheet will not run as a formula. The caller's number is the
    caller's to choose (SIP From): ``=HYPERLINK(...)`` must arrive as text. A leading
    ``+`` or ``-`` before digits only is a phone number and stays as it is."""
    if text[:1] in ("=", "@", "\t", "\r") or (
        text[:1] in ("+", "-") and not text[1:].replace(" ", "").isdigit()
    ):
        return "'" + text
    return text


# -- the report's question -----------------------------------------------------------

REPORT_PARAMS = ("from", "to", "lang", "format")
REPORT_LANGUAGES = ("id", "en")
REPORT_FORMATS = ("html", "pdf", "json")
MAX_REPORT_DAYS = 366


@dataclass(frozen=True, slots=True)
class ReportQuery:
    first: date  # local days, both included
    last: date
    lang: str
    format: str


def parse_report(params: Mapping[str, str], default_lang: str) -> ReportQuery:
    """A report covers whole local days: ``from`` and ``to`` are dates, both included."""
    check_names(params, REPORT_PARAMS)
    days = []
    for name in PERIOD_PARAMS:
        text = params.get(name, "").strip()
        if not text:
            raise QueryError(name, f"{name}: required (a date YYYY-MM-DD)")
        try:
            days.append(date.fromisoformat(text) if len(text) == 10 else None)
        except ValueError:
            days.append(None)
        if days[-1] is None:
            raise QueryError(name, f"{name}: {text!r} is not a date (YYYY-MM-DD)")
    first, last = days
    assert first is not None and last is not None
    if last < first:
        raise QueryError("to", f"to ({last}) is before from ({first})")
    if (last - first).days + 1 > MAX_REPORT_DAYS:
        raise QueryError("to", f"to: a report covers at most {MAX_REPORT_DAYS} days")
    lang = params.get("lang", default_lang)
    if lang not in REPORT_LANGUAGES:
        raise QueryError("lang", f"lang: one of {', '.join(REPORT_LANGUAGES)}")
    fmt = params.get("format", "html")
    if fmt not in REPORT_FORMATS:
        raise QueryError("format", f"format: one of {', '.join(REPORT_FORMATS)}")
    return ReportQuery(first, last, lang, fmt)


# What the report reads of each call: the store's own columns, then the rest of the call
# taken out of its JSON by the database (parsing 100,000 documents in Python was most of
# a month's report: bench_report).
REPORT_COLUMNS = ("offered_at", "outcome", "abandon_stage", "queue", "agent", "category",
                  "caller_number")  # fmt: skip
REPORT_FIELDS = ("answer_seconds", "wait_seconds", "talk_seconds", "queued_at", "ended_at",
                 "answered_at", "offered_at_estimated", "answered_at_estimated",
                 "dispatched_to", "callback")  # fmt: skip
_PG_CASTS = {
    "answer_seconds": "::float8",
    "wait_seconds": "::float8",
    "talk_seconds": "::float8",
    "offered_at_estimated": "::boolean",
    "answered_at_estimated": "::boolean",
}


def report_sql(period: Period, dialect: str) -> tuple[str, list[Any]]:
    """Every call of ``period`` in arrival order: REPORT_COLUMNS, then REPORT_FIELDS
    (arrays and objects as JSON text)."""
    columns = ", ".join(REPORT_COLUMNS)
    if dialect == "sqlite":
        fields = ", ".join(f"json_extract(doc, '$.{f}')" for f in REPORT_FIELDS)
        source = "calls"
    else:  # the document parsed once per row, in the subquery
        fields = ", ".join(f"(j->>'{f}'){_PG_CASTS.get(f, '')}" for f in REPORT_FIELDS)
        source = f"(SELECT {columns}, call_id, doc::jsonb AS j FROM calls) c"
    sql = (
        f"SELECT {columns}, {fields} FROM {source}"
        " WHERE offered_at >= ? AND offered_at < ? ORDER BY offered_at, call_id"
    )
    return sql, [period.start, period.end]


def local_days(first: date, last: date, tz: tzinfo) -> Period:
    """The period from the start of ``first`` to the start of the day after ``last``."""
    start = datetime.combine(first, time(), tz).timestamp()
    return Period(start, datetime.combine(last + timedelta(days=1), time(), tz).timestamp())
