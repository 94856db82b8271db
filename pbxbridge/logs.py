"""Structured logs: JSON lines on stdout for journald, configured once at the edge.

stdlib loggers (aiohttp, asyncio) go through the same renderer, so one line format
reaches the journal. Caller numbers are masked here and nowhere else.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

import structlog

CALLER_KEYS = frozenset({"caller_number", "caller"})


def mask_number(number: str, keep: int = 3) -> str:
    """``0812345678`` -> ``*******678``: enough to recognise a repeat caller, no more."""
    if len(number) <= keep:
        return "*" * len(number)
    return "*" * (len(number) - keep) + number[-keep:]


def _mask_callers(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in CALLER_KEYS & event.keys():
        value = event[key]
        if isinstance(value, str):
            event[key] = mask_number(value)
        elif isinstance(value, dict) and isinstance(value.get("number"), str):
            event[key] = {**value, "number": mask_number(value["number"])}
    return event


class RepeatLimit:
    """The same warning or error (event name and error text) at most ``burst`` times per
    ``window`` seconds; the first line after a quiet spell says how many were dropped
    (``suppressed``). A failing disk or a flood of bad connections must not fill the
    journal (130,000 lines in 25 s were seen)."""

    def __init__(self, burst: int = 5, window: float = 60.0) -> None:
        self._burst, self._window = burst, window
        self._seen: dict[tuple[str, str], list[float]] = {}  # key -> [window start, n, dropped]

    def __call__(self, _: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        if method not in ("warning", "error", "exception", "critical"):
            return event
        key = (str(event.get("event")), str(event.get("error") or event.get("reason") or ""))
        now = time.monotonic()
        state = self._seen.get(key)
        if state is None or now - state[0] >= self._window:
            if state is not None and state[2]:
                event["suppressed"] = int(state[2])
            self._seen[key] = [now, 1, 0]
            if len(self._seen) > 1000:  # bounded: forget the oldest key
                del self._seen[next(iter(self._seen))]
            return event
        if state[1] < self._burst:
            state[1] += 1
            return event
        state[2] += 1
        raise structlog.DropEvent


class _ForeignHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Lines of other libraries' loggers, through the same processors. A line the
    repeat limit drops ends here: structlog's DropEvent is a BaseException, and raised
    from a library's ``logger.warning`` it would fail whatever the library was doing."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except structlog.DropEvent:
            return
        except Exception:
            self.handleError(record)
            return
        try:
            self.stream.write(line + self.terminator)
            self.flush()
        except Exception:
            self.handleError(record)


def configure(
    level: str = "info", *, show_caller_numbers: bool = False, stream: TextIO | None = None
) -> None:
    stream = stream or sys.stdout
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        RepeatLimit(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if not show_caller_numbers:
        shared.append(_mask_callers)
    renderer = structlog.processors.JSONRenderer(sort_keys=False)
    # pbxbridge's own lines take structlog's native path straight to the stream: the
    # stdlib route (a LogRecord and a formatter per line) cost a third of the pipeline's
    # time per event in the replay benchmark. Foreign stdlib loggers still get the same
    # processors and renderer through the handler below.
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # configure() runs once, at start-up: each logger is then built once.
        cache_logger_on_first_use=True,
    )
    handler = _ForeignHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log would log every Prometheus scrape.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
