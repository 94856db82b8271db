"""The monthly report from the real daemon (GET /v1/report) and the command line
(pbxbridge report): formats, language, access, bad questions, an empty period."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.call_mix import mix
from tests.support.daemon import serving_store

TOKEN = "report-read-token-0123456789"
CALLS = mix(120, seed=33)  # 2026-11-01 .. 11-03, Asia/Jakarta
NOVEMBER = {"from": "2026-11-01", "to": "2026-11-30"}


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[str, Path]]:
    """The daemon (Asterisk down: the store is what is read) over a store of CALLS."""
    with serving_store(CALLS, TOKEN, pbx={"timezone": "Asia/Jakarta"}) as served:
        yield served


def get(
    base: str, query: dict[str, str], token: str | None = TOKEN
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(
        f"{base}/v1/report?{urllib.parse.urlencode(query)}", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pbxbridge.cli", "report", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_report_needs_the_read_token(api: tuple[str, Path]) -> None:
    base, _ = api
    status, _, _ = get(base, {**NOVEMBER, "format": "json"}, token=None)
    assert status == 401
    status, _, _ = get(base, {**NOVEMBER, "format": "json"}, token="wrong-token-0123456789")
    assert status == 401


def test_json_counts_the_calls_of_the_period(api: tuple[str, Path]) -> None:
    base, _ = api
    status, headers, body = get(base, {**NOVEMBER, "format": "json"})
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    doc = json.loads(body)
    outcomes = [c.record.outcome for c in CALLS]
    assert doc["headline"]["offered"] == len(CALLS)
    assert doc["headline"]["answered"] == outcomes.count("answered")
    assert doc["headline"]["abandoned"] == outcomes.count("abandoned")
    assert [d["date"] for d in doc["days"]][::29] == ["2026-11-01", "2026-11-30"]
    assert doc["period"]["timezone"] == "Asia/Jakarta"


def test_html_is_self_contained_and_in_the_configured_language(api: tuple[str, Path]) -> None:
    base, _ = api
    status, headers, body = get(base, NOVEMBER)
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    # The browser is told, too, that the page fetches nothing and runs nothing.
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    page = body.decode()
    assert '<html lang="id">' in page  # [report] language defaults to id
    assert "Ringkasan" in page and "<svg" in page
    assert "<script" not in page
    # Whatever the page links to is inside it: SVG's own defs (#id) or inline data.
    links = re.findall(r'(?:href|src)="([^"]*)"', page)
    assert links and all(x.startswith(("#", "data:")) for x in links), links
    _, _, english = get(base, {**NOVEMBER, "lang": "en"})
    assert '<html lang="en">' in english.decode() and "Summary" in english.decode()


def test_pdf_has_numbered_pages_a_reader_can_read(api: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = api
    status, headers, body = get(base, {**NOVEMBER, "format": "pdf", "lang": "en"})
    assert status == 200 and headers["Content-Type"] == "application/pdf"
    assert body.startswith(b"%PDF-")
    path = tmp_path / "report.pdf"
    path.write_bytes(body)
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    pages = int(next(x for x in info.stdout.splitlines() if x.startswith("Pages:")).split()[1])
    assert pages >= 3
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "Call Center 112: service report" in text
    numbers = re.findall(rf"\b(\d+)\s*/\s*{pages}\b", text)  # every page numbered
    assert sorted(set(map(int, numbers))) == list(range(1, pages + 1))
    assert "NENA-STA-020.1" in text


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"from": "2026-13-01", "to": "2026-11-30"}, "from"),
        ({"from": "2026-11-01"}, "to"),
        ({"from": "2026-11-30", "to": "2026-11-01"}, "to"),
        ({"from": "2026-11-01T00:00:00", "to": "2026-11-30"}, "from"),
        ({"from": "2025-01-01", "to": "2026-11-30"}, "to"),
        ({**NOVEMBER, "format": "docx"}, "format"),
        ({**NOVEMBER, "lang": "fr"}, "lang"),
        ({**NOVEMBER, "month": "11"}, "month"),
    ],
)
def test_a_bad_question_names_the_parameter(
    api: tuple[str, Path], query: dict[str, str], parameter: str
) -> None:
    base, _ = api
    status, _, body = get(base, query)
    assert status == 400
    assert json.loads(body)["parameter"] == parameter


def test_the_command_line_writes_the_file_and_explains_bad_dates(
    api: tuple[str, Path], tmp_path: Path
) -> None:
    _, config = api
    out = tmp_path / "laporan.html"
    done = cli(config, "--from", "2026-11-01", "--to", "2026-11-30", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert str(out) in done.stderr
    assert "Panggilan masuk" in out.read_text()
    assert not list(tmp_path.glob(".*.tmp"))
    bad = cli(config, "--from", "1/11/2026", "--to", "2026-11-30")
    assert bad.returncode == 2
    assert "--from" in bad.stderr and "YYYY-MM-DD" in bad.stderr


def test_an_empty_period_says_so(api: tuple[str, Path], tmp_path: Path) -> None:
    _, config = api
    done = cli(config, "--from", "2026-10-01", "--to", "2026-10-31", "--format", "json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)  # strict JSON: a NaN would not parse as a number here
    assert doc["empty"] is True
    assert doc["headline"]["offered"] == 0
    assert doc["headline"]["within"]["15"]["share"] is None
    assert all(s["met"] is None for s in doc["headline"]["standards"])
    assert len(doc["days"]) == 31 and all(d["offered"] == 0 for d in doc["days"])
    out = tmp_path / "empty.html"
    assert cli(config, "--from", "2026-10-01", "--to", "2026-10-31", "-o", str(out)).returncode == 0
    page = out.read_text()
    assert "Tidak ada panggilan masuk pada periode ini" in page
    assert not re.search(r"\bnan\b", page, re.IGNORECASE)
