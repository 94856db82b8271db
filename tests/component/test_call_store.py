"""The call store, one suite for both backends: the embedded SQLite file and a real
PostgreSQL server. Queries are checked against the made-up records themselves."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pbxbridge import pg_store, sessions, store_query
from pbxbridge.outbox_db import OutboxDB
from pbxbridge.store_read import Reader, Target, open_reader
from pbxbridge.store_rows import AgentRow, AmiRow, Row
from tests.support.call_mix import NOV_1_JAKARTA, MixedCall, mix

JAKARTA = ZoneInfo("Asia/Jakarta")


@dataclass
class Store:
    name: str
    target: Target
    write: Callable[[Sequence[Row]], None]

    def reader(self) -> Reader:
        return open_reader(self.target)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    path = tmp_path / "outbox.sqlite3"
    if request.param == "sqlite":
        db = OutboxDB(path)
        yield Store("sqlite", Target(str(path)), lambda rows: db.insert((), time.time(), rows))
        db.close()
    else:
        url = request.getfixturevalue("postgres_url")
        conn = pg_store.connect_writer(url)
        yield Store("postgresql", Target(str(path), url), lambda rows: pg_store.write(conn, rows))
        conn.close()


def write_all(store: Store, calls: Sequence[MixedCall]) -> None:
    store.write([r for c in calls for r in c.rows])


def every(reader: Reader, params: dict[str, str]) -> list[dict[str, Any]]:
    """All pages of a question, following the cursors the way an API client does."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = store_query.parse_calls(
            {**params, "limit": "7", **({"cursor": cursor} if cursor else {})}, JAKARTA
        )
        rows = reader.calls(page)
        out += [json.loads(doc) for doc, _, _ in rows]
        if len(rows) < page.limit:
            return out
        cursor = store_query.cursor(page.query, rows[-1][1], rows[-1][2])


def expected(calls: Sequence[MixedCall], keep: Callable[[MixedCall], bool]) -> list[str]:
    chosen = [c.record for c in calls if keep(c)]
    return [r.call_id for r in sorted(chosen, key=lambda r: (r.offered_at, r.call_id))]


def local_day(day: int) -> tuple[float, float]:
    start = datetime(2026, 11, day, tzinfo=JAKARTA)
    return start.timestamp(), (start + timedelta(days=1)).timestamp()


FILTERS: list[tuple[dict[str, str], Callable[[MixedCall], bool]]] = [
    ({}, lambda c: True),
    ({"outcome": "abandoned"}, lambda c: c.record.outcome == "abandoned"),
    ({"stage": "ringing"}, lambda c: c.record.abandon_stage == "ringing"),
    # Any queue the call waited in: an abandoned call has no answering queue.
    ({"queue": "backup"}, lambda c: "backup" in c.record.queues),
    (
        {"outcome": "abandoned", "queue": "calltakers"},
        lambda c: c.record.outcome == "abandoned" and "calltakers" in c.record.queues,
    ),
    ({"agent": "Taker 1002"}, lambda c: c.record.agent == "Taker 1002"),
    ({"category": "prank"}, lambda c: c.record.category == "prank"),
    (
        {"agency": "search_and_rescue"},
        lambda c: "search_and_rescue" in [a for a, _ in c.record.dispatched_to],
    ),
    ({"number": "08120003"}, lambda c: c.record.caller_number == "08120003"),
    (
        {"outcome": "answered", "queue": "backup"},
        lambda c: c.record.outcome == "answered" and "backup" in c.record.queues,
    ),
    (
        {"from": "2026-11-02", "to": "2026-11-02"},
        lambda c: local_day(2)[0] <= c.record.offered_at < local_day(2)[1],
    ),
    (
        {"from": "2026-11-01T12:00:00", "to": "2026-11-02T01:00:00Z"},
        lambda c: NOV_1_JAKARTA + 12 * 3600 <= c.record.offered_at < NOV_1_JAKARTA + 32 * 3600,
    ),
]


@pytest.mark.parametrize(("params", "keep"), FILTERS, ids=[str(p) or "all" for p, _ in FILTERS])
def test_a_question_finds_exactly_the_calls_it_names(
    store: Store, params: dict[str, str], keep: Callable[[MixedCall], bool]
) -> None:
    calls = mix(120)
    write_all(store, calls)
    with store.reader() as reader:
        found = every(reader, params)
    want = expected(calls, keep)
    assert want, "the mix must hold such calls, or the test means nothing"
    assert [c["call_id"] for c in found] == want


def test_each_call_is_kept_as_its_last_state_in_the_incidents_shape(store: Store) -> None:
    calls = mix(40)
    write_all(store, calls)
    with store.reader() as reader:
        for c in calls:
            doc = reader.call(c.record.call_id)
            assert doc is not None
            # The body of the call's last event (what the backend received last).
            assert json.loads(doc) == json.loads(c.incidents[-1].body)["call"]
        assert reader.call("pbx1:no-such-call") is None


def test_an_older_event_never_overwrites_a_newer_state(store: Store) -> None:
    """Rows arrive out of order (a replica catching up, a second instance)."""
    calls = mix(30)
    store.write([r for c in calls for r in reversed(c.rows)])
    store.write([c.rows[0] for c in calls])  # call.offered again, much later
    with store.reader() as reader:
        found = every(reader, {})
    assert [c["outcome"] for c in found] == [
        c.record.outcome for c in sorted(calls, key=lambda c: c.record.offered_at)
    ]
    assert None not in {c["ended_at"] for c in found}


def test_two_instances_watching_one_pbx_keep_one_row_per_call(store: Store) -> None:
    calls = mix(30)
    write_all(store, calls)
    write_all(store, calls)
    with store.reader() as reader:
        assert len(every(reader, {})) == 30


def test_pages_are_stable_while_calls_are_added(store: Store) -> None:
    calls = mix(40, seed=3)
    write_all(store, calls)
    with store.reader() as reader:
        first = store_query.parse_calls({"limit": "10"}, JAKARTA)
        rows = reader.calls(first)
        later = mix(15, seed=4, start=NOV_1_JAKARTA + 5 * 86400)  # new calls arrive
        write_all(store, later)
        seen = [cid for _, _, cid in rows]
        cursor = store_query.cursor(first.query, rows[-1][1], rows[-1][2])
        rest = every(reader, {"cursor": cursor})
    got = seen + [c["call_id"] for c in rest]
    assert got == expected([*calls, *later], lambda c: True)


def test_member_changes_come_with_the_state_before_the_period(store: Store) -> None:
    t = NOV_1_JAKARTA
    store.write(
        [
            AgentRow(t - 3600, "calltakers", "Taker 1001", "available", ""),
            AgentRow(t + 600, "calltakers", "Taker 1001", "paused", "lunch"),
            AgentRow(t + 2400, "calltakers", "Taker 1001", "available", ""),
            AgentRow(t + 3000, "calltakers", "Taker 1001", "logged_out", ""),
            AgentRow(t + 7200, "calltakers", "Taker 1002", "available", ""),  # after
            AmiRow("a", t - 7200, True, "Asterisk Call Manager/9.0.0"),
            AmiRow("a", t + 1000, False, "connection lost"),
            AmiRow("a", t + 1060, True, "Asterisk Call Manager/9.0.0"),
        ]
    )
    period = store_query.Period(t, t + 3600)
    with store.reader() as reader:
        changes = reader.member_changes(period)
        amis = reader.ami_sessions(period)
    body = sessions.sessions_json(changes, amis, period)
    spans = [(s["state"], s["reason"], s["seconds"], s["unobserved"]) for s in body["sessions"]]
    assert spans == [
        ("available", None, 600.0, False),
        ("paused", "lunch", 1800.0, True),  # AMI was down 1000..1060 s into it
        ("available", None, 600.0, False),
    ]
    assert [(u["seconds"]) for u in body["unobserved"]] == [60.0]
