"""The wallboard over HTTP: the page, its two files, and a Server-Sent Events stream.

The pipeline never waits for a viewer: :class:`Wallboard` is a sink that only updates
its dictionaries; this module wakes the streams when its version moves, computes one
snapshot per version and queue, and writes it to each viewer with a deadline. A viewer
that cannot take it within WRITE_SECONDS is dropped (its browser reconnects by itself);
at most MAX_VIEWERS streams are open at once. Behind :mod:`pbxbridge.access`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import urlencode

import jinja2
import structlog
from aiohttp import web

from pbxbridge import callbacks as cb
from pbxbridge import i18n, store_query
from pbxbridge.incidents import record_from_json
from pbxbridge.pipeline import Effect
from pbxbridge.store_read import Target, open_reader
from pbxbridge.wallboard import Wallboard, ended_of, today_since

log = structlog.get_logger("pbxbridge.wallboard")

FILES = Path(__file__).with_name("wallboard")
MAX_VIEWERS = 64
WRITE_SECONDS = 2.0
PING_SECONDS = 5.0
MIN_GAP = 0.1  # at most ten snapshots a second per queue: a burst is coalesced
MAX_QUEUES = 32
LABEL_PREFIXES = ("wallboard.", "stage.", "agency.", "member.", "standard.", "value.")
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


class Streams:
    """Wakes every open stream when the board changes; counts who watches."""

    def __init__(self, board: Wallboard) -> None:
        self.board = board
        self.viewers = 0
        self.dropped = 0
        self.refused = 0
        self._changed = asyncio.Event()
        self._seen = board.version
        self._cache: dict[str | None, tuple[int, bytes, float]] = {}

    def stats(self) -> tuple[int, int, int]:
        return self.viewers, self.dropped, self.refused

    def apply(self, effects: Sequence[Effect]) -> None:
        """The pipeline's sink: the board follows the effects, the streams are woken."""
        self.board.apply(effects)
        self.poke()

    def poke(self) -> None:
        # Nobody watching: nothing to wake (a viewer compares versions when it comes).
        if self.viewers and self.board.version != self._seen:
            self._seen = self.board.version
            if not self._changed.is_set():
                self._changed.set()

    async def changed(self) -> None:
        """Until the board changes. The set event is replaced by the first viewer to
        wait again, not by every batch of effects (an Event per batch cost the pipeline)."""
        event = self._changed
        if event.is_set():
            self._changed = event = asyncio.Event()
            self._seen = self.board.version  # the viewer has this one: wake on the next
        await event.wait()

    def message(self, queue: str | None) -> tuple[int, bytes, float]:
        """The newest snapshot of ``queue``: (board version, message, seconds until a
        newer one may be made). One is made per queue at most every MIN_GAP, however many
        viewers ask: under steady traffic the version moves every millisecond."""
        version, now = self.board.version, time.monotonic()
        cached = self._cache.get(queue)
        if cached is not None and (cached[0] == version or now - cached[2] < MIN_GAP):
            return cached[0], cached[1], max(0.0, MIN_GAP - (now - cached[2]))
        doc = self.board.snapshot(time.time(), queue)
        data = json.dumps(doc, separators=(",", ":"), allow_nan=False)
        self._cache.pop(queue, None)
        self._cache[queue] = (version, f"event: snapshot\ndata: {data}\n\n".encode(), now)
        while len(self._cache) > MAX_QUEUES:  # a ?queue= of anyone's choosing stays bounded
            del self._cache[next(iter(self._cache))]
        return version, self._cache[queue][1], MIN_GAP


def seed(board: Wallboard, target: Target, now: float, owed: Iterable[cb.Callback]) -> None:
    """Today's ended calls from the call store (a restart does not reset the day) and
    the callback list. Synchronous: run on a thread before the AMI session starts."""
    start = today_since(board.tz, now)
    page = store_query.Page(store_query.CallQuery(store_query.Period(start, None)), 1000, None)
    ended = []
    with open_reader(target) as reader:
        for rows in reader.pages(page):
            for doc, _, call_id in rows:
                rec = record_from_json(json.loads(doc))
                if rec.outcome is not None:
                    ended.append((call_id, ended_of(rec)))
    board.seed(ended, owed)


def _ping() -> bytes:
    return f"event: ping\ndata: {json.dumps({'at': time.time()})}\n\n".encode()


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(FILES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def routes(streams: Streams, default_lang: str) -> list[web.RouteDef]:
    env = _environment()

    def queue_of(request: web.Request) -> str | None:
        return request.query.get("queue") or None

    async def page(request: web.Request) -> web.Response:
        lang = request.query.get("lang", default_lang)
        if lang not in i18n.LANGUAGES:
            return web.json_response(
                {"error": f"lang: one of {', '.join(i18n.LANGUAGES)}", "parameter": "lang"},
                status=400,
            )
        texts = i18n.catalogue(lang)
        queue = queue_of(request)
        body = env.get_template("wallboard.html").render(
            t=i18n.Messages(lang),
            labels={k: v for k, v in texts.items() if k.startswith(LABEL_PREFIXES)},
            events_url="/wallboard/events" + (f"?{urlencode({'queue': queue})}" if queue else ""),
            script_url="/wallboard/wallboard.js",
            style_url="/wallboard/wallboard.css",
        )
        return web.Response(
            text=body,
            content_type="text/html",
            headers={"Content-Security-Policy": POLICY, "Cache-Control": "no-store"},
        )

    def asset(name: str, kind: str) -> web.RouteDef:
        async def serve(_: web.Request) -> web.Response:
            return web.Response(
                body=(FILES / name).read_bytes(),
                content_type=kind,
                headers={"Content-Security-Policy": POLICY},
            )

        return web.get(f"/wallboard/{name}", serve)

    async def events(request: web.Request) -> web.StreamResponse:
        if streams.viewers >= MAX_VIEWERS:
            streams.refused += 1
            return web.json_response({"error": "too many wallboards open"}, status=503)
        queue = queue_of(request)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        streams.viewers += 1
        try:
            await response.prepare(request)
            sent = -1
            while True:
                version, message, wait = streams.message(queue)
                if version != sent:
                    await asyncio.wait_for(response.write(message), WRITE_SECONDS)
                    if sent < 0:  # a cached snapshot's "at" may be old: the clock, now
                        await asyncio.wait_for(response.write(_ping()), WRITE_SECONDS)
                    sent = version
                if streams.board.version != sent:
                    await asyncio.sleep(wait)  # a newer snapshot is due: at most MIN_GAP
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(PING_SECONDS):
                        await streams.changed()
                if streams.board.version == sent:
                    await asyncio.wait_for(response.write(_ping()), WRITE_SECONDS)
        except TimeoutError:
            streams.dropped += 1
            log.warning("wallboard_viewer_dropped", reason="too slow to read its stream")
        except ConnectionError:
            pass  # the viewer went away
        finally:
            streams.viewers -= 1
        return response

    return [
        web.get("/wallboard", page),
        web.get("/wallboard/events", events, name="wallboard_events"),
        asset("wallboard.js", "text/javascript"),
        asset("wallboard.css", "text/css"),
    ]
