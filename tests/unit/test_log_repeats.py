"""The same warning is logged at a bounded rate; nothing else is held back."""

from __future__ import annotations

import io
import json
import logging
import time

import structlog

from pbxbridge import logs


def test_a_repeated_warning_is_bounded_and_the_dropped_ones_are_counted() -> None:
    """1,000 identical warnings give 5 lines a minute; another error and info lines pass;
    the first line after the window says how many were dropped."""
    out = io.StringIO()
    limit = logs.RepeatLimit(burst=5, window=0.2)
    log = structlog.wrap_logger(
        structlog.PrintLogger(out),
        processors=[structlog.processors.add_log_level, limit, structlog.processors.JSONRenderer()],
    )
    for _ in range(1000):
        log.warning("accept_failed", error="Too many open files")
    log.error("accept_failed", error="another")
    for _ in range(10):
        log.info("call_ended")
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    repeated = [x for x in lines if x.get("error") == "Too many open files"]
    assert len(repeated) == 5
    assert sum(1 for x in lines if x.get("error") == "another") == 1
    assert sum(1 for x in lines if x["event"] == "call_ended") == 10
    time.sleep(0.25)
    log.warning("accept_failed", error="Too many open files")
    last = json.loads(out.getvalue().splitlines()[-1])
    assert last["suppressed"] == 995


def test_a_library_that_repeats_a_warning_is_bounded_and_not_broken() -> None:
    """A third-party logger (WeasyPrint warns once per SVG style it skips) goes through
    the same repeat limit; the lines it drops are dropped, never raised into the library
    (structlog's DropEvent is a BaseException: it failed GET /v1/report?format=pdf)."""
    out = io.StringIO()
    logs.configure("info", stream=out)
    try:
        library = logging.getLogger("some.library")
        for _ in range(50):
            library.warning("Ignored `stroke-width: 0.8`, unknown property.")
        library.warning("something else")
    finally:
        logging.getLogger().handlers.clear()
        structlog.reset_defaults()
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert sum(1 for x in lines if x["event"].startswith("Ignored")) == 5
    assert [x["logger"] for x in lines if x["event"] == "something else"] == ["some.library"]
