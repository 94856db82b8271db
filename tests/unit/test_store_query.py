"""Questions to the call store (pure): periods in the center's zone, errors naming the
parameter, cursors bound to their question, CSV a spreadsheet cannot run."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from pbxbridge import store_query as q
from pbxbridge.pg_store import redacted

JAKARTA = ZoneInfo("Asia/Jakarta")
NEW_YORK = ZoneInfo("America/New_York")


def test_a_date_is_the_centers_local_day_and_to_is_included() -> None:
    page = q.parse_calls({"from": "2026-11-01", "to": "2026-11-30"}, JAKARTA)
    assert page.query.period.start == datetime(2026, 11, 1, tzinfo=JAKARTA).timestamp()
    assert page.query.period.end == datetime(2026, 12, 1, tzinfo=JAKARTA).timestamp()


def test_a_local_day_across_a_clock_change_has_its_real_length() -> None:
    """2026-11-01 in New York is 25 hours long (DST ends)."""
    period = q.parse_period({"from": "2026-11-01", "to": "2026-11-01"}, NEW_YORK)
    assert period.end is not None and period.start is not None
    assert period.end - period.start == 25 * 3600


def test_times_with_and_without_an_offset() -> None:
    utc = q.parse_moment("2026-11-01T00:00:00Z", JAKARTA, end=False, parameter="from")
    local = q.parse_moment("2026-11-01T07:00:00", JAKARTA, end=False, parameter="from")
    offset = q.parse_moment("2026-11-01T07:00:00+07:00", NEW_YORK, end=True, parameter="to")
    assert utc == local == offset == datetime(2026, 11, 1, 7, tzinfo=JAKARTA).timestamp()


@pytest.mark.parametrize(
    ("params", "parameter", "says"),
    [
        ({"form": "2026-11-01"}, "form", "unknown parameter"),
        ({"from": "01/11/2026"}, "from", "not a date"),
        ({"to": "2026-02-30"}, "to", "not a date"),
        ({"from": "2026-11-02", "to": "2026-11-01"}, "from", "not before"),
        ({"outcome": "lost"}, "outcome", "one of answered"),
        ({"stage": "greeting"}, "stage", "one of before_queue"),
        ({"queue": " "}, "queue", "empty"),
        ({"limit": "1001"}, "limit", "1 to 1000"),
        ({"cursor": "%%%"}, "cursor", "not a cursor"),
    ],
)
def test_each_bad_question_names_its_parameter(
    params: dict[str, str], parameter: str, says: str
) -> None:
    with pytest.raises(q.QueryError) as caught:
        q.parse_calls(params, JAKARTA)
    assert caught.value.parameter == parameter
    assert says in caught.value.message
    assert caught.value.json() == {"error": caught.value.message, "parameter": parameter}


def test_a_cursor_works_only_for_its_own_question() -> None:
    page = q.parse_calls({"outcome": "abandoned", "from": "2026-11-01"}, JAKARTA)
    cursor = q.cursor(page.query, 1793466001.25, "pbx1:1793466001.25")
    again = q.parse_calls({"outcome": "abandoned", "from": "2026-11-01", "cursor": cursor}, JAKARTA)
    assert again.after == (1793466001.25, "pbx1:1793466001.25")
    with pytest.raises(q.QueryError, match="another query"):
        q.parse_calls({"outcome": "answered", "from": "2026-11-01", "cursor": cursor}, JAKARTA)


def test_an_agency_filter_matches_the_whole_name_only() -> None:
    """'_' and '%' are LIKE wildcards: escaped, search_and_rescue never matches
    searchXandXrescue."""
    sql, args = q.calls_sql(q.parse_calls({"agency": "search_and_rescue"}, JAKARTA))
    assert "agencies LIKE ? ESCAPE" in sql
    assert args[0] == "%,search\\_and\\_rescue,%"


CALL = {
    "call_id": "pbx1:1",
    "linkedid": "1",
    "service": "112",
    "caller": {"number": '=HYPERLINK("http://x")', "name": ""},
    "offered_at": "2026-11-01T00:00:00.500000Z",
    "queued_at": None,
    "answered_at": None,
    "ended_at": "2026-11-01T00:00:09.000000Z",
    "answer_seconds": None,
    "wait_seconds": None,
    "talk_seconds": None,
    "outcome": "abandoned",
    "abandon_stage": "before_queue",
    "queue": None,
    "agent": "+cmd|' /C calc'!A0",
    "queues": [],
    "ring_attempts": 0,
    "ring_no_answer": 0,
    "category": None,
    "dispatched_to": [],
    "offered_at_estimated": False,
    "answered_at_estimated": False,
    "callback": {"attempts": 2, "result": "answered"},
}


def test_csv_is_local_time_and_nothing_in_it_runs_as_a_formula() -> None:
    rows = q.CsvRows(JAKARTA)
    text = rows.header() + rows.page([CALL, {**CALL, "caller": {"number": "+6281234", "name": ""}}])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["offered_at"] == "2026-11-01 07:00:00.500000+07:00"
    assert rows[0]["queued_at"] == ""
    assert rows[0]["caller_number"].startswith("'=")
    assert rows[0]["agent"].startswith("'+cmd")
    assert rows[1]["caller_number"] == "+6281234"  # a phone number stays as it is
    assert (rows[0]["callback_attempts"], rows[0]["callback_result"]) == ("2", "answered")
    assert rows[0]["offered_at_estimated"] == "false"


def test_an_empty_export_is_its_header() -> None:
    rows = q.CsvRows(JAKARTA)
    assert rows.header() + rows.page([]) == ",".join(q.CSV_COLUMNS) + "\r\n"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql:///db?user=u&password=pw", "postgresql:///db?user=u&password=***"),
        ("postgresql://u@/db?host=/run/pg", "postgresql://u@/db?host=/run/pg"),
    ],
)
def test_a_store_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert redacted(url) == shown


@pytest.mark.parametrize(
    "zone", ["Asia/Jakarta", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu", "UTC"]
)
def test_local_times_equal_zoneinfos_own_conversion_across_clock_changes(zone: str) -> None:
    """The per-hour offset cache against datetime.astimezone, every 7 minutes and 13
    seconds through 2026 (Lord Howe changes its clock by half an hour, at 02:00 local:
    the middle of a UTC hour)."""
    tz = ZoneInfo(zone)
    local = q.LocalTimes(tz)
    t = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    checked = 0
    while t < datetime(2027, 1, 1, tzinfo=UTC).timestamp():
        moment = datetime.fromtimestamp(t, UTC)
        text = moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
        assert local(text) == moment.astimezone(tz).isoformat(sep=" ", timespec="microseconds")
        t += 433.250001
        checked += 1
    assert checked > 70_000


def test_a_foreign_value_with_commas_quotes_or_line_ends_stays_one_field() -> None:
    """The csv module reads back what CsvRows writes, field for field."""
    odd = {**CALL, "agent": 'Taker "Budi", shift 2\r\nnight', "queue": "a,b",
           "caller": {"number": '0812,"x"', "name": ""}}  # fmt: skip
    rows = q.CsvRows(JAKARTA)
    (row,) = list(csv.DictReader(io.StringIO(rows.header() + rows.page([odd]), newline="")))
    assert row["agent"] == 'Taker "Budi", shift 2\r\nnight'
    assert row["queue"] == "a,b" and row["caller_number"] == '0812,"x"'
    assert list(row) == list(q.CSV_COLUMNS)
