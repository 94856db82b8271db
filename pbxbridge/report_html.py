"""The report as a page a person reads: one self-contained HTML file, and its PDF.

The page holds everything it shows (styles, charts as inline SVG): no script, font or
image is fetched, so it opens on a closed network and prints. The PDF is the same page
rendered by WeasyPrint (A4, numbered pages), not a second layout.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup

from pbxbridge import report_charts
from pbxbridge.i18n import Messages
from pbxbridge.incidents import parse_rfc3339

TEMPLATES = Path(__file__).with_name("templates")
SHORT_SLOTS = 10  # the half hours most short of call takers, listed under the chart


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt key is an error, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _version() -> str:
    try:
        return version("pbxbridge")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "dev"


def html(doc: dict[str, Any], lang: str, *, service: str) -> str:
    t = Messages(lang)
    tz = ZoneInfo(doc["period"]["timezone"])
    charts = report_charts.draw(doc, t)

    def chart(name: str, title: str) -> Markup:
        if name not in charts:
            return Markup('<p class="nodata">{}</p>').format(t("report.no_data"))
        return Markup(
            '<figure class="chart" data-chart="{}"><figcaption>{}</figcaption>{}</figure>'
        ).format(name, t(title), Markup(charts[name]))

    def moment(text: str) -> str:
        at = parse_rfc3339(text)
        assert at is not None
        return t.moment(datetime.fromtimestamp(at, tz), tz)

    first, last = date.fromisoformat(doc["period"]["from"]), date.fromisoformat(doc["period"]["to"])
    staff = doc["staffing"]
    key = "needed_erlang_a" if staff["model"] == "erlang_a" else "needed_erlang_c"
    short = sorted(
        (s for s in staff["slots"] if s[key] and s["logged_in"] < s[key]),
        key=lambda s: s["logged_in"] - s[key],
    )[:SHORT_SLOTS]
    page = (
        _environment()
        .get_template("report.html")
        .render(
            t=t,
            doc=doc,
            h=doc["headline"],
            service=doc.get("service") or service,
            css=Markup((TEMPLATES / "report.css").read_text()),
            chart=chart,
            day=lambda text: t.day(date.fromisoformat(text), "medium"),
            period_text=t("report.period", first=t.day(first), last=t.day(last)),
            tzname=tz.key,
            generated=moment(doc["generated_at"]),
            missing_before=moment(doc["missing"]["before"]) if doc["missing"] else "",
            short=short,
            unobserved=[
                {"start": moment(g["from"]), "end": moment(g["to"]), "seconds": g["seconds"]}
                for g in doc["data_quality"]["unobserved"]
            ],
            version=_version(),
        )
    )
    return str(page)


def pdf(page: str) -> bytes:
    """The page rendered to PDF; WeasyPrint is imported only when a PDF is asked for."""
    import weasyprint  # noqa: PLC0415

    # WeasyPrint warns of every SVG presentation style its CSS parser skips (its SVG
    # renderer reads them itself): a thousand lines per report, none of them news.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)

    # No base url: the page refers to nothing outside itself, and nothing is fetched.
    data = weasyprint.HTML(string=page).write_pdf()
    assert data is not None
    return bytes(data)
