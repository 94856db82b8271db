"""The delivery policy as pure functions: status classes, Retry-After, signature."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from pbxbridge.delivery import classify, parse_retry_after, signature
from tests.support import settings

NOW = 1_767_225_600.0  # Thu, 01 Jan 2026 00:00:00 GMT


@pytest.mark.parametrize(
    ("status", "action", "reason"),
    [
        (200, "delivered", ""),
        (201, "delivered", ""),
        (204, "delivered", ""),
        (408, "retry", "http_408"),
        (425, "retry", "http_425"),
        (429, "retry", "http_429"),
        (500, "retry", "http_5xx"),
        (503, "retry", "http_5xx"),
        (599, "retry", "http_5xx"),
        (400, "park", "http_4xx"),
        (401, "park", "http_4xx"),
        (404, "park", "http_4xx"),
        (422, "park", "http_4xx"),
        (301, "park", "http_3xx"),
    ],
)
def test_status_classes(status: int, action: str, reason: str) -> None:
    """2xx delivers; 408, 425, 429 and 5xx retry; any other status parks the event."""
    verdict = classify(status)
    assert (verdict.action, verdict.reason) == (action, reason)


def test_retry_after_in_seconds_and_as_a_date() -> None:
    """Retry-After is delta-seconds or an HTTP date; an unusable value is ignored."""
    assert parse_retry_after("7", NOW) == 7.0
    assert parse_retry_after(" 0 ", NOW) == 0.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", NOW) == 30.0
    assert parse_retry_after("Wed, 31 Dec 2025 23:00:00 GMT", NOW) == 0.0  # in the past
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None
    assert classify(429, "3", NOW).retry_after == 3.0


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    """The signature header is t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>."""
    body = b'{"a":1}'
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("k", body, 1_700_000_000) == f"t=1700000000,v1={expected}"


def test_settings_repr_hides_secrets() -> None:
    """The token and the signing secret never appear in the settings' repr."""
    text = repr(settings.delivery("https://x/", token="tok-1", signing_secret="sec-2"))
    assert "tok-1" not in text and "sec-2" not in text
