"""What a person reads, in Bahasa Indonesia and English: message catalogues and Babel's
locale data for numbers, dates and month names.

The catalogues are gettext ``.po`` files under ``pbxbridge/locale``, read once with
Babel (no compiled ``.mo`` to keep in step). Their message ids are keys (``report.title``)
rather than English sentences, so that both languages are complete translations and a
test can tell a missing one: a key absent from a catalogue is an error, never a silent
fall-back to another language on a page handed to the city.
"""

from __future__ import annotations

import math
from datetime import date, datetime, tzinfo
from functools import cache
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent

LANGUAGES = ("id", "en")
LOCALE_DIR = Path(__file__).with_name("locale")
DOMAIN = "pbxbridge"


@cache
def catalogue(lang: str) -> dict[str, str]:
    """Key -> text of one language (``LOCALE_DIR/<lang>/LC_MESSAGES/pbxbridge.po``)."""
    if lang not in LANGUAGES:
        raise ValueError(f"no catalogue for language {lang!r} (known: {', '.join(LANGUAGES)})")
    with (LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as f:
        po = read_po(f, locale=lang)
    return {str(m.id): str(m.string) for m in po if m.id and m.string}


class Messages:
    """One language's texts and formats."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.locale = Locale.parse(lang)
        self.texts = catalogue(lang)

    def __call__(self, key: str, **values: Any) -> str:
        try:
            text = self.texts[key]
        except KeyError:
            raise KeyError(f"message {key!r} is missing from the {self.lang!r} catalogue") from None
        return text.format(**values) if values else text

    def label(self, group: str, key: str) -> str:
        """A category's or an agency's name; a center's own ones are shown as configured."""
        return self.texts.get(f"{group}.{key}", key)

    def number(self, value: float | None, digits: int = 0) -> str:
        if value is None or math.isnan(value):
            return self("value.none")
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return str(format_decimal(value, format=pattern, locale=self.locale))

    def percent(self, value: float | None, digits: int = 1) -> str:
        if value is None:
            return self("value.none")
        pattern = "#,##0" + ("." + "0" * digits if digits else "") + "%"
        return str(format_percent(value, format=pattern, locale=self.locale))

    def seconds(self, value: float | None, digits: int = 1) -> str:
        if value is None:
            return self("value.none")
        return self("unit.seconds", n=self.number(value, digits))

    def duration(self, seconds: float | None) -> str:
        """Hours and minutes (a call taker's logged-in time)."""
        if seconds is None:
            return self("value.none")
        minutes = round(seconds / 60)
        return self("unit.hours_minutes", h=self.number(minutes // 60), m=f"{minutes % 60:02d}")

    def day(self, d: date, form: str = "long") -> str:
        return str(format_date(d, format=form, locale=self.locale))

    def short_day(self, d: date) -> str:
        return str(format_date(d, format="d MMM", locale=self.locale))

    def month(self, d: date) -> str:
        return str(format_date(d, format="LLLL yyyy", locale=self.locale))

    def moment(self, at: datetime, tz: tzinfo) -> str:
        return str(format_datetime(at, format="d MMMM yyyy HH:mm", tzinfo=tz, locale=self.locale))

    def weekday(self, n: int, form: str = "abbreviated") -> str:
        """Monday is 0, as in :meth:`datetime.date.weekday`."""
        return str(self.locale.days["format"][form][n])
