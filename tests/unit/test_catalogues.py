"""The message catalogues: both languages complete, every key the code and the page
template ask for present, and Babel's formats as an Indonesian or English reader
writes numbers and dates."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from pbxbridge import i18n
from pbxbridge.dialplan_vars import DEFAULT_AGENCIES, DEFAULT_CATEGORIES
from pbxbridge.records import ABANDON_STAGES

PACKAGE = Path(i18n.__file__).parent
FIELD = re.compile(r"\{([a-z_]+)\}")


def keys_asked_for() -> set[str]:
    """Every literal key in the code and the template, and the families built at run time."""
    sources = [*PACKAGE.glob("*.py"), *PACKAGE.glob("templates/*.html")]
    sources += PACKAGE.glob("wallboard/*.html")
    literal = re.compile(r"""\b(?:t|msg|self)\(\s*"([a-z_]+\.[a-z_.0-9]+)"\s*[,)]""")
    keys = {k for path in sources for k in literal.findall(path.read_text())}
    keys |= {f"stage.{s}" for s in ABANDON_STAGES}
    keys |= {f"staffing.model.{m}" for m in ("erlang_a", "erlang_c")}
    keys |= {f"category.{c}" for c in DEFAULT_CATEGORIES}
    keys |= {f"agency.{a}" for a in DEFAULT_AGENCIES.values()}
    template = (PACKAGE / "templates" / "report.html").read_text()
    keys |= {f"chart.title.{n}" for n in re.findall(r'chart\("([a-z_]+)", "chart\.title', template)}
    return keys


def test_both_languages_have_the_same_keys_and_no_empty_text() -> None:
    idn, en = i18n.catalogue("id"), i18n.catalogue("en")
    assert set(idn) == set(en)
    assert all(text.strip() for text in [*idn.values(), *en.values()])


def test_a_translation_fills_the_same_fields() -> None:
    idn, en = i18n.catalogue("id"), i18n.catalogue("en")
    different = {k for k in en if set(FIELD.findall(en[k])) != set(FIELD.findall(idn[k]))}
    assert different == set()


def test_every_key_the_code_asks_for_is_in_the_catalogues() -> None:
    asked = keys_asked_for()
    assert len(asked) > 100  # the scan found the report's keys at all
    assert asked - set(i18n.catalogue("id")) == set()


def test_a_missing_key_or_language_is_an_error_not_a_fallback() -> None:
    with pytest.raises(KeyError, match="'id' catalogue"):
        i18n.Messages("id")("report.no_such_key")
    with pytest.raises(ValueError, match="known: id, en"):
        i18n.catalogue("fr")


@pytest.mark.parametrize(
    ("lang", "written"),
    [
        ("id", ("1.234,5", "90,5%", "30 November 2026", "Senin", "15 dtk")),
        ("en", ("1,234.5", "90.5%", "November 30, 2026", "Monday", "15 s")),
    ],
)
def test_numbers_and_dates_as_each_language_writes_them(
    lang: str, written: tuple[str, str, str, str, str]
) -> None:
    number, share, day, monday, seconds = written
    t = i18n.Messages(lang)
    assert t.number(1234.5, 1) == number
    assert t.percent(0.905) == share
    assert t.day(date(2026, 11, 30)) == day
    assert t.weekday(0, "wide") == monday
    assert t.seconds(15, 0) == seconds
    none = "\N{EN DASH}"
    assert t.number(None) == t.percent(None) == t.seconds(None) == t.duration(None) == none
    assert t.number(float("nan")) == none


def test_a_centers_own_category_is_shown_as_configured() -> None:
    t = i18n.Messages("id")
    assert t.label("category", "prank") == "Iseng"
    assert t.label("category", "banjir_rob") == "banjir_rob"
    assert i18n.Messages("en").duration(3 * 3600 + 5 * 60 + 31) == "3 h 06 min"
