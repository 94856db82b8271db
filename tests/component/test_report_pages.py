"""The report as a person sees it: the HTML pages of a seeded month (and of an empty
one) rendered in real headless Chromium, desktop and phone, in Bahasa Indonesia and in
English, and the PDF read back with pdftotext. Screenshots and the files themselves are
kept under test-output/ for a person to look at."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pbxbridge import i18n, report, report_html
from pbxbridge.outbox_db import OutboxDB
from pbxbridge.store_read import Target, open_reader
from tests.support import report_month as rm
from tests.support.browser import Browser

CHARTS = (
    "trend",
    "heatmap_share",
    "heatmap_volume",
    "answers",
    "abandons",
    "classification",
    "dispatch",
    "staffing",
)
# Each chart's drawn marks (report_charts gives them ids "<chart>-mark-<n>"), counted by
# what the browser laid out: an element with no area drew nothing.
MARKS_JS = """
[...document.querySelectorAll('figure.chart')].map(f => [
  f.dataset.chart,
  [...f.querySelectorAll('[id*="-mark-"]')].filter(e => {
    const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0;
  }).length,
])
"""
# Everything a reader sees, chart text included.
TEXT_JS = """
document.body.innerText + '\\n' +
  [...document.querySelectorAll('svg text')].map(t => t.textContent).join('\\n')
"""


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, Any]]]:
    path = tmp_path_factory.mktemp("pages") / "outbox.sqlite3"
    db = OutboxDB(path)
    db.insert((), time.time(), rm.month().rows())
    db.close()
    with open_reader(Target(str(path))) as reader:
        month = report.build(
            reader, rm.FIRST, rm.LAST, rm.JAKARTA, now=rm.REPORT_NOW, categories=rm.CONFIGURED
        )
        empty = report.build(
            reader,
            rm.LAST.replace(month=9, day=1),
            rm.LAST.replace(month=9, day=30),
            rm.JAKARTA,
            now=rm.REPORT_NOW,
            categories=rm.CONFIGURED,
        )
    yield {"month": month, "empty": empty}


def write_page(doc: dict[str, Any], lang: str, out: Path, name: str) -> Path:
    page = out / f"{name}-{lang}.html"
    page.write_text(report_html.html(doc, lang, service="112"))
    return page


def english_only() -> list[str]:
    """The English catalogue's words that the Indonesian one does not use: each literal
    run between {fields}, plus Babel's English weekday names."""
    en, idn = i18n.catalogue("en"), i18n.catalogue("id")
    pieces = set()
    for key, text in en.items():
        if text == idn[key]:
            continue  # a name both languages write alike (NENA-STA-020.1, Erlang C)
        for run in re.split(r"\{[a-z_]+\}", text):
            piece = run.strip(" .,:;()-\N{EN DASH}")
            # A name the translation keeps too ("Call Center", "pbxbridge") is not English.
            if len(piece) >= 4 and re.search(r"[A-Za-z]{3}", piece) and piece not in idn[key]:
                pieces.add(piece)
    english = i18n.Messages("en")
    pieces |= {english.weekday(n, form) for n in range(7) for form in ("wide", "abbreviated")}
    return sorted(pieces)


async def look(browser: Browser, page: Path, out: Path, *, mobile: bool) -> dict[str, Any]:
    """Open the file, check it loaded cleanly, keep a screenshot; what a reader sees."""
    view = await browser.open(page.as_uri(), mobile=mobile)
    async with view:
        assert not view.errors, view.errors
        assert not view.failed_requests, view.failed_requests
        # A self-contained page asks for nothing but itself.
        assert [u for u in view.requests if u != page.as_uri()] == []
        shot = out / f"{page.stem}-{'phone' if mobile else 'desktop'}.png"
        await view.screenshot(shot)
        assert shot.stat().st_size > 10_000
        return {
            "marks": dict(await view.evaluate(MARKS_JS)),
            "text": await view.evaluate(TEXT_JS),
            "overflow": await view.evaluate(
                "document.documentElement.scrollWidth - window.innerWidth"
            ),
            "title": await view.evaluate("document.title"),
        }


@pytest.mark.parametrize("lang", ["id", "en"])
async def test_every_chart_draws_and_the_page_loads_cleanly(
    browser: Browser, test_output: Path, docs: dict[str, dict[str, Any]], lang: str
) -> None:
    page = write_page(docs["month"], lang, test_output, "month")
    seen = await look(browser, page, test_output, mobile=False)
    assert set(seen["marks"]) == set(CHARTS)
    assert all(n > 0 for n in seen["marks"].values()), seen["marks"]
    assert seen["title"].startswith("Call Center 112")
    # The numbers a manager reads first are there, formatted for the language.
    offered = docs["month"]["headline"]["offered"]
    sep = "." if lang == "id" else ","
    assert f"{offered // 1000}{sep}{offered % 1000:03d}" in seen["text"]
    assert "NENA-STA-020.1" in seen["text"]


async def test_the_indonesian_page_has_no_english_label(
    browser: Browser, test_output: Path, docs: dict[str, dict[str, Any]]
) -> None:
    page = write_page(docs["month"], "id", test_output, "month")
    text = (await look(browser, page, test_output, mobile=False))["text"]
    assert "Ringkasan" in text and "Kebutuhan petugas" in text
    assert re.search(r"\bSen\b", text) and re.search(r"\bMin\b", text)  # the charts' rows
    found = [w for w in english_only() if re.search(rf"\b{re.escape(w)}\b", text)]
    assert found == []
    # And the English page is English: the same check the other way round finds words.
    english = write_page(docs["month"], "en", test_output, "month")
    text_en = (await look(browser, english, test_output, mobile=False))["text"]
    assert "Summary" in text_en and re.search(r"\bMon\b", text_en)
    assert "Ringkasan" not in text_en


@pytest.mark.parametrize("lang", ["id", "en"])
async def test_on_a_phone_the_page_does_not_scroll_sideways(
    browser: Browser, test_output: Path, docs: dict[str, dict[str, Any]], lang: str
) -> None:
    page = write_page(docs["month"], lang, test_output, "month")
    seen = await look(browser, page, test_output, mobile=True)
    assert seen["overflow"] <= 1  # wide tables scroll inside their own box
    assert all(n > 0 for n in seen["marks"].values())


async def test_an_empty_month_says_it_is_empty(
    browser: Browser, test_output: Path, docs: dict[str, dict[str, Any]]
) -> None:
    page = write_page(docs["empty"], "id", test_output, "empty")
    seen = await look(browser, page, test_output, mobile=False)
    assert "Tidak ada panggilan masuk pada periode ini" in seen["text"]
    assert seen["marks"] == {}
    assert not re.search(r"\bNaN\b|\bnan\b|undefined|None", seen["text"])


def test_the_pdf_has_every_section_in_order(
    test_output: Path, docs: dict[str, dict[str, Any]]
) -> None:
    page = report_html.html(docs["month"], "id", service="112")
    pdf = test_output / "month-id.pdf"
    pdf.write_bytes(report_html.pdf(page))
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    pages = text.split("\f")[:-1]
    assert len(pages) >= 5
    titles = i18n.catalogue("id")
    order = [
        titles[k]
        for k in (
            "section.headline",
            "section.days",
            "section.hours",
            "section.distributions",
            "section.call_takers",
            "section.classification",
            "section.callbacks",
            "section.staffing",
            "section.data_quality",
        )
    ]
    flat = " ".join(text.split())
    where = [flat.find(" ".join(t.split())) for t in order]
    assert all(w >= 0 for w in where) and where == sorted(where), dict(
        zip(order, where, strict=True)
    )
    for n, body in enumerate(pages, 1):
        assert re.search(rf"\b{n}\s*/\s*{len(pages)}\b", body), f"page {n} has no number"
    # The first page as a picture, for a person to look at.
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "2", str(pdf), str(test_output / "pdf")],
        check=True,
        timeout=60,
    )
    assert len(list(test_output.glob("pdf-*.png"))) == 2
    json.dumps(docs["month"], allow_nan=False)
