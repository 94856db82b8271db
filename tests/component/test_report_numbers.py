"""The monthly report's JSON numbers (``pbxbridge.report.build``) against an independent
oracle. tests/support/report_month.py generates a month of calls, call takers' states and
AMI sessions and computes every figure from its own records with plain Python; here the
month is written into a real store (the SQLite file, and a real PostgreSQL) and the
report read from it must give the same numbers. Nothing of pbxbridge's report code is
used to compute an expectation.

Readings taken where the specification (the report section, "What each figure means")
is open; the owner may align the implementation or the spec:

 1. "Answered" is the outcome ``answered`` for the call takers' ``answered``/
    ``talk_seconds``/``classified``/``dispatches``, ``classification``, ``dispatch`` and
    the staffing's handle times. The answer-time figures (within/answer_seconds/
    answer_distribution/days/heatmap) count every call with an answer time, a call
    interrupted after its answer included: it was answered, in that time; pbxbridge
    losing sight of it later must not count against the center
    (report_month.INTERRUPTED_ANSWERS_COUNT).
 2. Durations are the call record's (records.CallRecord), to the microsecond: a call
    answered 15.000000 s after its arrival is within 15 s; edges belong to the bin below.
 3. Shares are fractions (0..1); so is a standard's ``target`` (0.9, 0.95). ``standards``
    in the spec's order: NENA-STA-020.1 15 s, NENA-STA-020.1 20 s, NFPA 1225 10 s;
    ``seconds`` a number, ``met`` = share >= target.
 4. ``headline.open``: calls that arrived in the period and had not ended at ``now``.
    ``empty``: no call at all arrived (an open call is a call that arrived).
 5. ``period.start``/``end``/``observed_until`` are compared as instants (any RFC 3339
    offset); ``end`` stays the period's end when it has not ended; ``observed_until`` is
    null or absent once the period has ended.
 6. ``call_takers``: one row per (queue, agent) that answered a call in the period or had
    a state other than logged_out in it (compared as a set; order not asserted). A row
    with calls but no states has 0 seconds and null ``occupancy``/``ring_seconds_median``.
    ``dispatches`` is an integer: the hand-offs (call, agency pairs) of its answered
    calls. ``logged_in_seconds``: every state but logged_out (paused and unavailable
    included). States are clipped to [start, min(end, now)); the state before the period
    counts from its start; a state goes on through unobserved time (as sessions.py's
    spans do). ``ring_no_answer``: ringing followed by any state but in_call (available,
    or app_queue's autopause). ``paused_by_reason``: reason -> seconds, only reasons with
    time. The data never has ringing across the period's ends, ``now`` or a gap.
 7. ``staffing.logged_in``: time-weighted mean of the distinct call takers available,
    ringing or in a call in any queue (one taker in two queues counts once; a taker
    paused in one queue and available in the other counts).
 8. ``classification.categories``: the configured ones in order, then the others seen
    (their order not asserted); ``total``: answered calls with a category, one count or
    a count per category (both accepted, checked exactly). ``by_day``
    entries read as ``{"date", <name>: n, ...}`` or ``{"date", "counts": {...}}``; a day
    or name left out counts as 0 (the same for ``dispatch.by_day``).
 9. ``dispatch.agencies``: the names (a list holding every agency seen, others with 0),
    or a mapping name -> hand-offs; ``total``: hand-offs (one count, or per agency);
    ``by_day``: hand-offs per agency;
    ``answer_to_dispatch_seconds``: answered calls with a hand-off, first hand-off minus
    the answer.
10. ``callbacks`` come from the stored callback state: ``attempted`` attempts >= 1,
    ``reached`` result "answered", ``recalled`` result "recalled"; ``first_attempt_seconds``
    first_attempt_at - abandoned_at of the attempted owed calls. (No callback activity of
    a call in the period happens after the period: that case is left open.)
11. ``data_quality.unobserved[]``: items with ``start``/``end`` (or ``from``/``to``) as
    RFC 3339 instants, ``seconds`` checked when present; an instance with no row before
    the period was not watching at its start; gaps are clipped to [start, min(end, now)).
    ``ami_sessions``: sessions (up spans) overlapping the period, an integer (a list is
    compared by its length); the data makes "up rows in the period" the same number.
    ``estimated_times`` counts calls (one with both times estimated counts once), and
    estimated calls count in every other figure like any call.
12. ``staffing.slots``: all 336 half hours; a slot without calls has ``offered`` 0,
    ``arrivals_per_hour`` 0, the period's handle time and ``needed_*`` 0. Handle time is
    talk time. ``greeting_seconds``: mean of queued_at - offered_at over the ended calls
    that joined a queue. ``patience_seconds``: the wait_seconds of every ended call that
    joined a queue (any outcome), over the calls abandoned in the queue or ringing; the
    Erlang A patience rate is its inverse, the level 0.9 within ``queue_seconds``.
13. An unfinished period: the half hours' ``occurrences`` (and so ``logged_in``) are not
    asserted (the spec does not say; the oracle counts the half hours begun); only
    arrivals_per_hour = offered / (occurrences x 0.5) is checked against the doc's own
    occurrences.
14. ``missing``: when the period starts before now - retention_days x 86400; ``before``
    is that instant as incidents.rfc3339 writes it (UTC, microseconds, "Z").
"""

from __future__ import annotations

import importlib
import json
import math
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from pbxbridge import pg_store, store_query
from pbxbridge.outbox_db import OutboxDB
from pbxbridge.store_read import Target, open_reader
from pbxbridge.store_rows import Row
from tests.support import report_month as rm

TZ = rm.JAKARTA
SLOT_KEYS: tuple[str, ...] = ("weekday", "start", "occurrences", "offered", "arrivals_per_hour")
SLOT_KEYS += ("handle_seconds", "logged_in", "needed_erlang_c", "needed_erlang_a")


def build(target: Target, first: date, last: date, now: float, **kw: Any) -> dict[str, Any]:
    """The report as JSON would carry it (imported here: the module may not exist yet)."""
    report = importlib.import_module("pbxbridge.report")
    with open_reader(target) as reader:
        doc = report.build(reader, first, last, TZ, now=now, **kw)
    assert isinstance(doc, dict)
    result: dict[str, Any] = json.loads(json.dumps(doc))
    return result


def same(got: Any, want: Any, where: str = "doc") -> None:
    """``got`` holds ``want``: every key of an expected object (others may be added),
    lists of the same length, numbers to rel 1e-9 / abs 1e-6, null for null."""
    if isinstance(want, dict):
        assert isinstance(got, dict), f"{where}: {got!r} is not an object"
        for key, value in want.items():
            assert key in got, f"{where}: no key {key!r} (has {sorted(got)})"
            same(got[key], value, f"{where}.{key}")
    elif isinstance(want, list | tuple):
        assert isinstance(got, list), f"{where}: {got!r} is not a list"
        assert len(got) == len(want), f"{where}: {len(got)} items, want {len(want)}"
        for k, (g, w) in enumerate(zip(got, want, strict=True)):
            same(g, w, f"{where}[{k}]")
    elif want is None or isinstance(want, bool | str):
        assert got == want and type(got) is type(want), f"{where}: {got!r}, want {want!r}"
    elif isinstance(want, int):
        assert not isinstance(got, bool) and got == want, f"{where}: {got!r}, want {want}"
    else:
        assert isinstance(got, int | float) and not isinstance(got, bool), f"{where}: {got!r}"
        assert math.isfinite(got), f"{where}: {got!r}"
        assert got == pytest.approx(want, rel=1e-9, abs=1e-6), f"{where}: {got!r}, want {want!r}"


def instant(text: Any) -> float:
    assert isinstance(text, str), f"{text!r} is not an RFC 3339 time"
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def by_day(entries: Any, names: Sequence[str]) -> dict[str, dict[str, int]]:
    """``by_day[]`` as {date: {name: count}} (reading 8: a missing name or day is 0)."""
    assert isinstance(entries, list)
    out: dict[str, dict[str, int]] = {}
    for e in entries:
        counts = e["counts"] if "counts" in e else {k: v for k, v in e.items() if k != "date"}
        counts = {k: v for k, v in counts.items() if k != "total"}  # a day's total, if any
        assert e["date"] not in out, f"{e['date']} twice"
        out[e["date"]] = {n: counts.get(n, 0) for n in names}
        assert all(v == 0 for k, v in counts.items() if k not in names), (e, names)
    return out


def totals(got: Any, total: int, per_day: dict[str, dict[str, int]]) -> None:
    """A ``total``: the count (readings 8, 9), or the same as a count per name."""
    if isinstance(got, dict):
        names = {n for counts in per_day.values() for n in counts}
        want = {n: sum(counts[n] for counts in per_day.values()) for n in names}
        assert {n: got.get(n, 0) for n in names} == want
        assert all(v == 0 for n, v in got.items() if n not in names), got
        assert sum(want.values()) == total
    else:
        assert not isinstance(got, bool) and got == total, (got, total)


def full_days(entries: list[dict[str, Any]], names: Sequence[str]) -> dict[str, dict[str, int]]:
    return {e["date"]: {n: e[n] for n in names} for e in entries}


# -- the stores ------------------------------------------------------------------------


@dataclass
class Store:
    target: Target
    write: Callable[[Sequence[Row]], object]
    prune: Callable[[float], None]


def _sqlite(path: Path) -> tuple[Store, Callable[[], None]]:
    db = OutboxDB(path)

    def prune(before: float) -> None:
        while db.prune_store(before, replicated_only=False):
            pass

    store = Store(Target(str(path)), lambda rows: db.insert((), time.time(), rows), prune)
    return store, db.close


def _postgres(url: str, path: Path) -> tuple[Store, Callable[[], None]]:
    conn = pg_store.connect_writer(url)

    def prune(before: float) -> None:
        while pg_store.prune(conn, before, 2000):
            pass

    store = Store(Target(str(path), url), lambda rows: pg_store.write(conn, rows), prune)
    return store, conn.close


@pytest.fixture(scope="module")
def month() -> rm.Month:
    return rm.month()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def written(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, month: rm.Month
) -> Iterator[Target]:
    """The whole month in one store, shared by the module's tests (read only)."""
    path = tmp_path_factory.mktemp("report") / "outbox.sqlite3"
    if request.param == "sqlite":
        store, close = _sqlite(path)
        store.write(month.rows())
        close()
        yield store.target
        return
    # The session's PostgreSQL (postgres_url is per test: one database for the module).
    server = request.getfixturevalue("postgres_server")
    name = f"report_{uuid.uuid4().hex[:16]}"
    url = server.create_database(name)
    store, close = _postgres(url, path)
    store.write(month.rows())
    close()
    yield store.target
    server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store of its own (for a test that writes or prunes)."""
    path = tmp_path / "outbox.sqlite3"
    if request.param == "sqlite":
        store, close = _sqlite(path)
    else:
        store, close = _postgres(request.getfixturevalue("postgres_url"), path)
    yield store
    close()


@pytest.fixture(scope="module")
def doc(written: Target) -> dict[str, Any]:
    return build(written, rm.FIRST, rm.LAST, rm.REPORT_NOW, categories=rm.CONFIGURED)


@pytest.fixture(scope="module")
def want(month: rm.Month) -> dict[str, Any]:
    return rm.oracle(month, rm.FIRST, rm.LAST, TZ, rm.REPORT_NOW, categories=rm.CONFIGURED)


# -- the month itself ------------------------------------------------------------------


def test_the_month_holds_every_case(month: rm.Month, want: dict[str, Any]) -> None:
    """Without these the comparisons below would prove little."""
    h = want["headline"]
    assert all(h[o] > 0 for o in rm.OUTCOMES) and h["offered"] > 3000
    assert all(v > 0 for v in h["abandoned_by_stage"].values())
    assert h["open"] == 2
    cbs = want["callbacks"]
    assert all(cbs[k] > 20 for k in ("owed", "attempted", "reached", "recalled", "never_reached"))
    assert all(c > 0 for c in want["answer_distribution"]["counts"])
    assert want["data_quality"]["estimated_times"] == 5
    assert len(want["data_quality"]["unobserved"]) == 3
    records = [c.record for c in month.calls]
    outside = [r for r in records if not rm.START <= r.offered_at < rm.END]
    assert len(outside) > 150
    # Edges exactly: an answer at 15.000000 s, the period's last microsecond.
    assert sum(r.answered_at == round(r.offered_at + 15, 6) for r in records) >= 3
    assert any(r.offered_at == round(rm.END - 0.000001, 6) for r in records)
    assert any(r.offered_at == rm.START and r.offered_at_estimated for r in records)
    assert any(r.outcome == "abandoned" and r.caller_number == "anonymous" for r in records)
    assert any(r.outcome == "interrupted" and r.answered_at is not None for r in records)
    rows = {(t["queue"], t["agent"]): t for t in want["call_takers"]}
    assert rows["backup", rm.T2]["logged_in_seconds"] == 0  # calls, no states
    assert (
        rows["backup", rm.T1]["paused_seconds"] == 0 < rows["calltakers", rm.T1]["paused_seconds"]
    )
    assert "istirahat" in rows["calltakers", rm.T3]["paused_by_reason"]
    assert "" in rows["calltakers", rm.T3]["paused_by_reason"]
    slots = {(s["weekday"], s["start"]): s for s in want["staffing"]["slots"]}
    assert slots[rm.EMPTY_SLOT]["offered"] == 0
    assert slots[rm.ABANDONED_SLOT]["offered"] == 3
    assert slots[rm.ABANDONED_SLOT]["handle_seconds"] == pytest.approx(
        sum(t["talk_seconds"] for t in rows.values()) / h["answered"]
    )
    start = [r for r in month.agent_rows if r.agent == rm.T3 and r.at < rm.START]
    assert (start[-1].state, start[-1].reason) == ("paused", "istirahat")


def test_the_store_holds_what_the_oracle_sees(written: Target, month: rm.Month) -> None:
    """The premise of every comparison: each call's stored document is the one of the
    step the oracle takes as its state, and the call takers' rows are the generator's."""
    with open_reader(written) as reader:
        cur = reader.conn.cursor()
        cur.execute("SELECT call_id, doc FROM calls")
        stored = {str(cid): json.loads(doc) for cid, doc in cur.fetchall()}
        cur.close()
        changes = reader.member_changes(store_query.Period(rm.START, rm.END))
    steps = {c.record.call_id: c.as_of(rm.REPORT_NOW) for c in month.calls}
    assert stored == {cid: json.loads(s.incident.call) for cid, s in steps.items() if s}
    before = {(r.queue, r.agent): r for r in month.agent_rows if r.at < rm.START}
    within = [r for r in month.agent_rows if rm.START <= r.at < rm.END]
    # The reader's order is not the point.
    assert sorted(changes, key=repr) == sorted([*before.values(), *within], key=repr)


# -- the month's report ------------------------------------------------------------------


def test_period(doc: dict[str, Any], want: dict[str, Any]) -> None:
    got, exp = doc["period"], want["period"]
    same(
        {k: got[k] for k in ("from", "to", "timezone", "days")},
        {k: exp[k] for k in ("from", "to", "timezone", "days")},
    )
    assert instant(got["start"]) == pytest.approx(exp["start"], abs=1e-6)
    assert instant(got["end"]) == pytest.approx(exp["end"], abs=1e-6)
    assert got.get("observed_until") is None
    assert doc["empty"] is False
    assert doc["missing"] is None


def test_headline(doc: dict[str, Any], want: dict[str, Any]) -> None:
    got, exp = doc["headline"], want["headline"]
    same(got, exp, "headline")
    assert set(got["abandoned_by_stage"]) == set(rm.STAGES)
    assert set(got["within"]) == {"10", "15", "20"}
    assert set(got["callbacks"]) >= set(exp["callbacks"])


def test_days(doc: dict[str, Any], want: dict[str, Any]) -> None:
    same(doc["days"], want["days"], "days")


def test_heatmap(doc: dict[str, Any], want: dict[str, Any]) -> None:
    same(doc["heatmap"], want["heatmap"], "heatmap")


def test_distributions(doc: dict[str, Any], want: dict[str, Any]) -> None:
    same(doc["answer_distribution"], want["answer_distribution"], "answer_distribution")
    same(doc["abandon_distribution"], want["abandon_distribution"], "abandon_distribution")
    assert set(doc["abandon_distribution"]["by_stage"]) == set(rm.STAGES)


def _call_takers(got: list[dict[str, Any]], exp: list[dict[str, Any]]) -> None:
    rows = {(t["queue"], t["agent"]): t for t in got}
    assert len(rows) == len(got), "one row per queue and agent"
    wanted = {(t["queue"], t["agent"]): t for t in exp}
    assert set(rows) == set(wanted)
    for key, t in wanted.items():
        same(rows[key], t, f"call_takers{list(key)}")
        assert set(rows[key]["paused_by_reason"]) == set(t["paused_by_reason"]), key


def test_call_takers(doc: dict[str, Any], want: dict[str, Any]) -> None:
    _call_takers(doc["call_takers"], want["call_takers"])


def test_classification(doc: dict[str, Any], want: dict[str, Any]) -> None:
    got, exp = doc["classification"], want["classification"]
    n = len(rm.CONFIGURED)
    assert got["categories"][:n] == list(rm.CONFIGURED)
    assert sorted(got["categories"][n:]) == exp["categories"][n:]
    assert got["unclassified"] == exp["unclassified"]
    per_day = full_days(exp["by_day"], exp["categories"])
    totals(got["total"], exp["total"], per_day)
    days = by_day(got["by_day"], exp["categories"])
    zero = dict.fromkeys(exp["categories"], 0)
    for day, counts in per_day.items():
        assert days.get(day, zero) == counts, day
    assert set(days) <= {d["date"] for d in want["days"]}


def test_dispatch(doc: dict[str, Any], want: dict[str, Any]) -> None:
    got, exp = doc["dispatch"], want["dispatch"]
    seen = exp["agencies"]
    per_day = full_days(exp["by_day"], seen)
    if isinstance(got["agencies"], dict):
        totals(got["agencies"], exp["total"], per_day)
    else:
        assert set(got["agencies"]) >= set(seen)
    totals(got["total"], exp["total"], per_day)
    names = list(got["agencies"])
    days = by_day(got["by_day"], names)
    zero = dict.fromkeys(names, 0)
    for day, counts in per_day.items():
        assert days.get(day, zero) == {**zero, **counts}, day
    same(got["answer_to_dispatch_seconds"], exp["answer_to_dispatch_seconds"], "dispatch")


def test_callbacks(doc: dict[str, Any], want: dict[str, Any]) -> None:
    same(doc["callbacks"], want["callbacks"], "callbacks")


def _data_quality(got: dict[str, Any], exp: dict[str, Any], until: float) -> None:
    same(
        {k: got[k] for k in ("interrupted", "estimated_times", "unobserved_seconds")},
        {k: exp[k] for k in ("interrupted", "estimated_times", "unobserved_seconds")},
        "data_quality",
    )
    sessions = got["ami_sessions"]
    assert (len(sessions) if isinstance(sessions, list) else sessions) == exp["ami_sessions"]
    spans = []
    for u in got["unobserved"]:
        start, end = ("start", "end") if "start" in u else ("from", "to")
        spans.append((instant(u[start]), instant(u[end])))
        if "seconds" in u:
            assert u["seconds"] == pytest.approx(spans[-1][1] - spans[-1][0], abs=1e-6)
        assert spans[-1][1] <= until + 1e-6, "an unobserved span past the report's time"
    wanted = [(u["start"], u["end"]) for u in exp["unobserved"]]
    assert len(spans) == len(wanted), (spans, wanted)
    for (a, b), (c, d) in zip(spans, wanted, strict=True):
        assert a == pytest.approx(c, abs=1e-6) and b == pytest.approx(d, abs=1e-6)


def test_data_quality(doc: dict[str, Any], want: dict[str, Any]) -> None:
    _data_quality(doc["data_quality"], want["data_quality"], rm.END)


def _slots(got: list[dict[str, Any]]) -> dict[tuple[int, str], dict[str, Any]]:
    slots = {(s["weekday"], s["start"]): s for s in got}
    assert len(slots) == len(got), "a half hour twice"
    return slots


def test_staffing_slots(doc: dict[str, Any], want: dict[str, Any]) -> None:
    slots = _slots(doc["staffing"]["slots"])
    wanted = _slots(want["staffing"]["slots"])
    assert set(slots) == set(wanted)  # every half hour of the week
    for key, s in wanted.items():
        same(slots[key], {k: s[k] for k in SLOT_KEYS}, f"staffing.slots{list(key)}")


def test_staffing_model(doc: dict[str, Any], want: dict[str, Any]) -> None:
    keys = ("greeting_seconds", "queue_seconds", "patience_seconds", "model")
    same({k: doc["staffing"][k] for k in keys}, {k: want["staffing"][k] for k in keys})


def test_the_json_is_strict(written: Target) -> None:
    report = importlib.import_module("pbxbridge.report")
    with open_reader(written) as reader:
        raw = report.build(reader, rm.FIRST, rm.LAST, TZ, now=rm.REPORT_NOW)
    json.dumps(raw, allow_nan=False)


# -- other periods ------------------------------------------------------------------------


def test_an_empty_period(written: Target, month: rm.Month) -> None:
    first, last = date(2026, 12, 10), date(2026, 12, 12)
    now = rm.local(date(2026, 12, 20), 8)
    report = importlib.import_module("pbxbridge.report")
    with open_reader(written) as reader:
        raw = report.build(reader, first, last, TZ, now=now, categories=rm.CONFIGURED)
    json.dumps(raw, allow_nan=False)  # no NaN, no infinity anywhere
    doc = json.loads(json.dumps(raw))
    exp = rm.oracle(month, first, last, TZ, now, categories=rm.CONFIGURED)
    assert doc["empty"] is True and exp["empty"] is True
    h = doc["headline"]
    same(h, exp["headline"], "headline")
    assert h["offered"] == 0 and all(h[o] == 0 for o in rm.OUTCOMES)
    assert all(w["share"] is None for w in h["within"].values())
    assert all(s["share"] is None and s["met"] is None for s in h["standards"])
    assert h["answer_seconds"]["median"] is None and h["answer_seconds"]["p90"] is None
    assert [d["date"] for d in doc["days"]] == ["2026-12-10", "2026-12-11", "2026-12-12"]
    same(doc["days"], exp["days"], "days")
    assert all(d["share_15"] is None and d["share_20"] is None for d in doc["days"])
    same(doc["heatmap"], exp["heatmap"], "heatmap")
    same(doc["callbacks"], exp["callbacks"], "callbacks")
    assert doc["callbacks"]["reached_share"] is None
    waits = doc["dispatch"]["answer_to_dispatch_seconds"]
    assert waits["median"] is None and waits["p90"] is None
    assert doc["callbacks"]["first_attempt_seconds"]["median"] is None
    assert doc["staffing"]["greeting_seconds"] is None
    assert doc["staffing"]["patience_seconds"] is None
    assert doc["missing"] is None
    _data_quality(doc["data_quality"], exp["data_quality"], rm.midnight(date(2026, 12, 13), TZ))


def test_a_period_partly_older_than_the_retention(fresh: Store, month: rm.Month) -> None:
    now = rm.local(date(2026, 12, 16), 0, 0, 0.5)
    before = now - 30 * 86400  # 2026-11-16 00:00:00.5 local
    fresh.write(month.rows())
    fresh.prune(before)  # what [store] retention_days = 30 leaves
    doc = build(fresh.target, rm.FIRST, rm.LAST, now, retention_days=30, categories=rm.CONFIGURED)
    assert doc["missing"] == {"before": "2026-11-15T17:00:00.500000Z", "retention_days": 30}
    assert doc["missing"]["before"] == rm.rfc3339(before)
    exp = rm.oracle(month.pruned(before), rm.FIRST, rm.LAST, TZ, now, retention_days=30)
    assert exp["missing"] == doc["missing"]
    same(doc["headline"], exp["headline"], "headline")
    same(doc["days"], exp["days"], "days")
    assert all(d["offered"] == 0 for d in doc["days"][:15])


def test_a_period_that_has_not_ended(fresh: Store, month: rm.Month) -> None:
    """The report made on Nov 14 at 12:00, in the middle of an AMI gap: the store holds
    what had happened by then, calls in progress are open, the gap stops at now."""
    now = rm.UNFINISHED_NOW
    fresh.write(month.rows(until=now))
    doc = build(fresh.target, rm.FIRST, rm.LAST, now, categories=rm.CONFIGURED)
    exp = rm.oracle(month, rm.FIRST, rm.LAST, TZ, now, categories=rm.CONFIGURED)
    assert instant(doc["period"]["observed_until"]) == pytest.approx(now, abs=1e-6)
    assert instant(doc["period"]["end"]) == pytest.approx(rm.END, abs=1e-6)
    assert doc["headline"]["open"] == exp["headline"]["open"] == 3
    _data_quality(doc["data_quality"], exp["data_quality"], now)
    assert exp["data_quality"]["unobserved"][-1]["end"] == now
    _call_takers(doc["call_takers"], exp["call_takers"])  # states end at now
    same(doc["callbacks"], exp["callbacks"], "callbacks")
    keys = ("greeting_seconds", "queue_seconds", "patience_seconds", "model")
    same({k: doc["staffing"][k] for k in keys}, {k: exp["staffing"][k] for k in keys})
    slots = _slots(doc["staffing"]["slots"])
    for key, s in _slots(exp["staffing"]["slots"]).items():
        got = slots[key]
        same(
            {k: got[k] for k in ("offered", "handle_seconds")},
            {k: s[k] for k in ("offered", "handle_seconds")},
            f"staffing.slots{list(key)}",
        )
        if got["occurrences"]:
            rate = got["offered"] / (got["occurrences"] * 0.5)
            assert got["arrivals_per_hour"] == pytest.approx(rate, rel=1e-9, abs=1e-6), key
    same(doc["headline"], exp["headline"], "headline")
    same(doc["days"], exp["days"], "days")
