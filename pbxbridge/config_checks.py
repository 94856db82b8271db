"""The checks of configuration values: each returns a problem description or None.

Values are not echoed in problems when they may carry credentials (URLs).
"""

from __future__ import annotations

import math
import urllib.parse
import zoneinfo
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], str | None]  # returns a problem description or None


def string(v: Any) -> str | None:
    return None if isinstance(v, str) else "expected a string"


def nonempty(v: Any) -> str | None:
    return string(v) or (None if v.strip() else "must not be empty")


def port(v: Any) -> str | None:
    if not isinstance(v, int) or isinstance(v, bool):
        return "expected an integer"
    return None if 0 < v < 65536 else "expected a port number 1-65535"


def between(high: float, unit: str) -> Check:
    """A finite number in (0, high]: inf, nan and absurd values are errors, so a typo can
    never disable a timeout or a limit."""

    def check(v: Any) -> str | None:
        if not isinstance(v, int | float) or isinstance(v, bool):
            return "expected a number"
        if not math.isfinite(v):
            return "expected a finite number"
        if v <= 0:
            return "must be greater than 0"
        return None if v <= high else f"must be at most {high:g} {unit}"

    return check


def boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "expected true or false"


def string_list(v: Any) -> str | None:
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        return "expected a list of non-empty strings"
    return None


def token(v: Any) -> str | None:
    # The service name becomes a metric label and travels in a UserEvent.
    if nonempty(v):
        return nonempty(v)
    ok = all(c.isascii() and (c.isalnum() or c in "_-") for c in v)
    return None if ok else "only letters, digits, '_' and '-' are allowed"


def token_list(v: Any) -> str | None:
    if not isinstance(v, list) or not v:
        return "expected a non-empty list of names"
    bad = [x for x in v if not isinstance(x, str) or token(x)]
    return f"{len(bad)} entries are not names of letters, digits, '_' or '-'" if bad else None


def agency_map(v: Any) -> str | None:
    if not isinstance(v, dict):
        return 'expected a table of number = "agency", e.g. {"110" = "police"}'
    for number, agency in v.items():
        if not number.isdigit():
            return f"{number!r}: expected a dialled number (digits)"
        if not isinstance(agency, str) or token(agency):
            return f"{number}: expected an agency name of letters, digits, '_' or '-'"
    return None


def listen(v: Any) -> str | None:
    if nonempty(v):
        return nonempty(v)
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return 'expected "host:port", e.g. "127.0.0.1:9112"'
    return None


def url(v: Any) -> str | None:
    # The value is not echoed: a URL may carry credentials.
    if nonempty(v):
        return nonempty(v)
    parts = urllib.parse.urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected an http:// or https:// URL"
    return None


def one_of(*choices: str) -> Check:
    def check(v: Any) -> str | None:
        return string(v) or (None if v in choices else f"expected one of {', '.join(choices)}")

    return check


level = one_of("debug", "info", "warning", "error")


def timezone(v: Any) -> str | None:
    if nonempty(v):
        return nonempty(v)
    try:
        zoneinfo.ZoneInfo(v)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f'{v!r} is not an IANA time zone (e.g. "Asia/Jakarta"; is tzdata installed?)'
    return None


def postgresql_url(v: Any) -> str | None:
    # The value is not echoed: a URL may carry a password.
    if nonempty(v):
        return nonempty(v)
    if urllib.parse.urlsplit(v).scheme not in ("postgresql", "postgres"):
        return 'expected a "postgresql://user@host/database" URL'
    return None
