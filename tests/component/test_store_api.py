"""The call store's API and CLI on the real daemon: pages, CSV, errors, access."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.call_mix import mix
from tests.support.daemon import serving_store

TOKEN = "store-read-token-0123456789"
CALLS = mix(90, seed=21)


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[str, Path]]:
    """The daemon (Asterisk down: the store is what is read) over a store of CALLS."""
    with serving_store(CALLS, TOKEN, pbx={"timezone": "Asia/Jakarta"}) as served:
        yield served


def get(
    base: str, path: str, *, accept: str = "application/json", token: str = TOKEN
) -> tuple[int, bytes]:
    request = urllib.request.Request(
        base + path, headers={"Authorization": f"Bearer {token}", "Accept": accept}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def pages(base: str, query: dict[str, str]) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    cursor = None
    while True:
        q = {**query, **({"cursor": cursor} if cursor else {})}
        status, body = get(base, "/v1/calls?" + urllib.parse.urlencode(q))
        assert status == 200, body
        doc = json.loads(body)
        calls += doc["calls"]
        if doc["next"] is None:
            return calls
        cursor = doc["next"]


def test_caller_data_needs_the_token(api: tuple[str, Path]) -> None:
    base, _ = api
    assert get(base, "/v1/calls", token="wrong")[0] == 401
    assert get(base, "/v1/calls/pbx1:x", token="")[0] == 401
    assert get(base, "/v1/agents?from=2026-11-01&to=2026-11-02", token="wrong")[0] == 401


def test_json_pages_hold_every_call_once_in_arrival_order(api: tuple[str, Path]) -> None:
    base, _ = api
    got = pages(base, {"limit": "13"})
    want = sorted(CALLS, key=lambda c: (c.record.offered_at, c.record.call_id))
    assert [c["call_id"] for c in got] == [c.record.call_id for c in want]
    assert got[0] == json.loads(want[0].incidents[-1].body)["call"]


def _instant(local: str) -> float:
    moment = datetime.fromisoformat(local)
    assert moment.utcoffset() is not None and moment.utcoffset().total_seconds() == 7 * 3600  # type: ignore[union-attr]
    return moment.timestamp()


def _utc(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def test_csv_holds_the_same_values_as_json_in_local_time(api: tuple[str, Path]) -> None:
    base, _ = api
    query = {"from": "2026-11-01", "to": "2026-11-02", "outcome": "answered"}
    as_json = pages(base, {**query, "limit": "5"})
    status, body = get(base, "/v1/calls?" + urllib.parse.urlencode(query), accept="text/csv")
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
    assert len(as_json) > 10 and len(rows) == len(as_json)
    for row, call in zip(rows, as_json, strict=True):
        assert row["call_id"] == call["call_id"]
        assert row["caller_number"] == call["caller"]["number"]
        for key in ("offered_at", "answered_at", "ended_at", "queued_at"):
            assert abs(_instant(row[key]) - _utc(call[key])) < 1e-6
        for key in ("answer_seconds", "wait_seconds", "talk_seconds"):
            assert float(row[key]) == call[key]
        for key in ("outcome", "queue", "agent"):
            assert row[key] == call[key]
        assert row["category"] == (call["category"] or "")
        dispatches = [d.split(" ", 1) for d in row["dispatched_to"].split("; ") if d]
        assert [a for a, _ in dispatches] == [d["agency"] for d in call["dispatched_to"]]
        for (_, at), d in zip(dispatches, call["dispatched_to"], strict=True):
            assert abs(_instant(at) - _utc(d["at"])) < 1e-6


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("colour=red", "colour"),
        ("from=2026-13-01", "from"),
        ("from=yesterday", "from"),
        ("from=2026-11-03&to=2026-11-01", "from"),
        ("outcome=lost", "outcome"),
        ("limit=0", "limit"),
        ("limit=many", "limit"),
        ("queue=a&queue=b", "queue"),
        ("cursor=not-a-cursor", "cursor"),
    ],
)
def test_a_bad_question_is_a_400_naming_the_parameter(
    api: tuple[str, Path], query: str, parameter: str
) -> None:
    base, _ = api
    status, body = get(base, f"/v1/calls?{query}")
    assert status == 400
    assert json.loads(body)["parameter"] == parameter


def test_a_cursor_from_another_question_is_refused(api: tuple[str, Path]) -> None:
    base, _ = api
    status, body = get(base, "/v1/calls?limit=3&outcome=answered")
    cursor = json.loads(body)["next"]
    assert cursor
    status, body = get(base, f"/v1/calls?limit=3&outcome=abandoned&cursor={cursor}")
    assert status == 400 and json.loads(body)["parameter"] == "cursor"
    assert "another query" in json.loads(body)["error"]


def test_one_call_and_a_missing_one(api: tuple[str, Path]) -> None:
    base, _ = api
    call_id = CALLS[5].record.call_id
    status, body = get(base, f"/v1/calls/{urllib.parse.quote(call_id)}")
    assert status == 200 and json.loads(body)["call"]["call_id"] == call_id
    assert get(base, "/v1/calls/pbx1:nothing")[0] == 404


def test_agents_needs_a_period(api: tuple[str, Path]) -> None:
    base, _ = api
    status, body = get(base, "/v1/agents")
    assert status == 400 and json.loads(body)["parameter"] == "from"
    status, body = get(base, "/v1/agents?from=2026-01-01&to=2026-12-31")
    assert status == 400 and json.loads(body)["parameter"] == "to"
    status, body = get(base, "/v1/agents?from=2026-11-01&to=2026-11-02")
    assert status == 200 and json.loads(body)["sessions"] == []


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pbxbridge.cli", "calls", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_cli_exports_what_the_api_streams(api: tuple[str, Path]) -> None:
    base, config = api
    exported = cli(config, "export", "--from", "2026-11-01", "--to", "2026-11-03")
    assert exported.returncode == 0, exported.stderr
    query = urllib.parse.urlencode({"from": "2026-11-01", "to": "2026-11-03"})
    status, body = get(base, f"/v1/calls?{query}", accept="text/csv")
    assert status == 200
    # Text mode reads the CLI's CRLF line ends as \n.
    assert exported.stdout == body.decode().replace("\r\n", "\n")
    assert exported.stdout.count("\n") > 60
    shown = cli(config, "show", CALLS[0].record.call_id)
    assert json.loads(shown.stdout) == json.loads(CALLS[0].incidents[-1].body)["call"]
    listed = cli(config, "list", "--outcome", "abandoned", "--limit", "5")
    assert listed.returncode == 0 and listed.stdout.count("abandoned") == 5
    assert "+07:00" in listed.stdout  # the center's local time
    bad = cli(config, "list", "--from", "2026-11-05", "--to", "2026-11-01")
    assert bad.returncode == 2 and "--from" in bad.stderr
