"""The log lines' timestamp processor (pbxbridge/logs.py), which replaced structlog's
TimeStamper(fmt="iso", utc=True) for speed: same meaning, fixed width."""

from __future__ import annotations

import re
import time
from datetime import datetime

from pbxbridge.logs import UtcTimestamp

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def stamp(processor: UtcTimestamp) -> float:
    text = processor(None, "info", {})["timestamp"]
    assert ISO_UTC.fullmatch(text), text
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_the_timestamp_is_now_in_utc_to_the_microsecond() -> None:
    """Each line's timestamp reads back (RFC 3339, Z) as the wall-clock time it was
    written, across second boundaries where the cached date and time are renewed."""
    processor = UtcTimestamp()
    for _ in range(5):
        before = time.time()
        at = stamp(processor)
        after = time.time()
        assert before - 1e-6 <= at <= after + 1e-6
        time.sleep(0.3)


def test_the_processor_keeps_the_other_keys() -> None:
    """It adds one key and leaves the event's own keys as they were."""
    event = UtcTimestamp()(None, "info", {"event": "call_ended", "queue": "q"})
    assert list(event) == ["event", "queue", "timestamp"]
    assert event["queue"] == "q"
