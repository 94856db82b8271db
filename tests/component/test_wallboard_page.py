"""The wallboard as a supervisor sees it: the page, its script and its style served as
the contract says (template rendered with the catalogue's labels, a strict CSP, a
Server-Sent Events stream), here by a fake server the test drives, and read back in
real headless Chromium at 1920x1080 and on a phone.

The fake's stream can be cut, refused (connection refused, or HTTP 503 as pbxbridge
answers when too many boards are open) and silenced, to see the stale-data banner come
and go without a reload."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
import pytest
from aiohttp import web

from pbxbridge import i18n
from tests.support.browser import Browser, Page

FILES = Path(i18n.__file__).with_name("wallboard")
LABEL_PREFIXES = ("wallboard.", "stage.", "agency.", "member.")
CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'"
PING_SECONDS = 5.0  # as the contract's server
QUEUE = "calltakers"
WAIT = 10.0  # every wait below is bounded; the stream's own retries take up to ~6 s


def text(lang: str, key: str, **fields: Any) -> str:
    return i18n.Messages(lang)(key, **fields)


class FakeServer:
    """The server side of the contract, with a stream the test pushes snapshots into."""

    def __init__(self) -> None:
        self.latest: dict[str, Any] | None = None
        self.viewers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self.connects = 0
        self.pings = True
        self.reject = 0  # how many next stream requests get a 503
        self.port = 0
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(FILES),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        app = web.Application()
        app.add_routes(
            [
                web.get("/wallboard", self._page),
                web.get("/wallboard/events", self._events),
                web.get("/wallboard/{name:wallboard\\.(js|css)}", self._asset),
            ]
        )
        app.on_response_prepare.append(_close_after)
        self._runner = web.AppRunner(app)
        self._site: web.TCPSite | None = None

    async def start(self) -> None:
        await self._runner.setup()
        await self.listen()

    async def listen(self) -> None:
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await self._site.start()
        self.port = self._site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def cut(self, *, refuse: bool) -> None:
        """End every open stream; with ``refuse`` also stop listening, so reconnects
        are refused until :meth:`listen`."""
        if refuse and self._site is not None:
            await self._site.stop()
            self._site = None
        for viewer in self.viewers:
            viewer.put_nowait(None)

    async def close(self) -> None:
        await self.cut(refuse=False)
        await self._runner.cleanup()

    def url(self, lang: str) -> str:
        return f"http://127.0.0.1:{self.port}/wallboard?{urlencode({'lang': lang, 'queue': QUEUE})}"

    def push(self, snap: dict[str, Any]) -> None:
        self.latest = snap
        for viewer in self.viewers:
            viewer.put_nowait(snap)

    async def _page(self, request: web.Request) -> web.Response:
        lang = request.query["lang"]
        labels = {k: v for k, v in i18n.catalogue(lang).items() if k.startswith(LABEL_PREFIXES)}
        body = self._env.get_template("wallboard.html").render(
            t=i18n.Messages(lang),
            labels=labels,
            events_url="/wallboard/events?" + urlencode({"queue": request.query["queue"]}),
            script_url="/wallboard/wallboard.js",
            style_url="/wallboard/wallboard.css",
        )
        return web.Response(
            text=body, content_type="text/html", headers={"Content-Security-Policy": CSP}
        )

    async def _asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        kind = "text/javascript" if name.endswith(".js") else "text/css"
        return web.Response(
            body=(FILES / name).read_bytes(),
            content_type=kind,
            headers={"Content-Security-Policy": CSP},
        )

    async def _events(self, request: web.Request) -> web.StreamResponse:
        self.connects += 1
        if self.reject > 0:
            self.reject -= 1
            return web.Response(status=503)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        viewer: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.viewers.add(viewer)
        try:
            if self.latest is not None:
                await response.write(event("snapshot", self.latest))
            while True:
                try:
                    async with asyncio.timeout(PING_SECONDS):
                        snap = await viewer.get()
                except TimeoutError:
                    if self.pings:
                        await response.write(event("ping", {"at": time.time()}))
                    continue
                if snap is None:
                    break
                await response.write(event("snapshot", snap))
        except ConnectionError:
            pass  # the page went away
        finally:
            self.viewers.discard(viewer)
        return response


async def _close_after(_: web.Request, response: web.StreamResponse) -> None:
    # No keep-alive: Chromium would send its reconnect down a connection left idle by
    # the page's load, which a stopped listener does not refuse.
    response.force_close()


def event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def snapshot(
    *,
    waiting: tuple[float, ...] = (16.0,),
    ami_up: bool = True,
    offered: int = 1234,
    talking: int = 3,
) -> dict[str, Any]:
    """A busy morning, ``waiting`` callers waiting for that many seconds now."""
    now = time.time()
    spark = []
    for n in range(24):
        calls = 0 if n in (3, 4, 11) else 6 + n % 5
        spark.append(
            {
                "at": now - now % 300 - (23 - n) * 300,
                "share_15": None if calls == 0 else 0.6 + (n % 7) * 0.06,
                "offered": calls,
            }
        )
    return {
        "at": now,
        "ami_up": ami_up,
        "last_event_at": now - 0.4,
        "queue": QUEUE,
        "waiting": [{"since": now - w, "queue": QUEUE} for w in sorted(waiting, reverse=True)],
        "talking": talking,
        "today": {
            "date": "2026-12-03",
            "offered": offered,
            "answered": 1100,
            "abandoned": 115,
            "abandoned_by_stage": {"before_queue": 50, "queue": 41, "ringing": 24},
            "unanswered": 12,
            "interrupted": 7,
            "within": {"10": 0.71, "15": 0.83, "20": 0.96},
            "standards": [
                nena(15, 0.9, 0.83, met=False),
                nena(20, 0.95, 0.96, met=True),
            ],
        },
        "members": [
            member("Taker 1001", "available", now - 300),
            member("Taker 1002", "ringing", now - 4),
            member("Taker 1003", "paused", now - 725, "istirahat"),
            member("Taker 1004", "in_call", now - 95),
            member("Taker 1005", "in_call", now - 40),
            member("Taker 1006", "unavailable", now - 4000),
        ],
        "callbacks": {"owed": 2, "oldest_since": now - 1500},
        "dispatches": {"police": 4, "ambulance": 2, "basarnas_bpbd": 1},
        "sparkline": spark,
    }


def nena(seconds: int, target: float, share: float, *, met: bool) -> dict[str, Any]:
    return {
        "standard": "NENA-STA-020.1",
        "seconds": seconds,
        "target": target,
        "share": share,
        "met": met,
    }


def member(name: str, state: str, since: float, reason: str = "") -> dict[str, Any]:
    return {"name": name, "queue": QUEUE, "state": state, "reason": reason, "since": since}


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    fake = FakeServer()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@contextlib.asynccontextmanager
async def board(
    browser: Browser, server: FakeServer, lang: str = "en", *, mobile: bool = False
) -> AsyncIterator[Page]:
    """The page open and showing the server's latest snapshot."""
    page = await browser.open(
        server.url(lang), width=1920, height=1080 if not mobile else 844, mobile=mobile
    )
    async with page:
        await page.wait_for("!document.body.classList.contains('stale')", timeout=WAIT)
        yield page


async def value(page: Page, element_id: str) -> str:
    return str(await page.evaluate(f"document.getElementById({element_id!r}).textContent"))


async def seconds_shown(page: Page) -> int:
    """The longest wait as shown, in whole seconds (under a minute: "16 s", "16 dtk")."""
    shown = await value(page, "longest")
    assert re.fullmatch(r"\d+\D+", shown), shown
    return int(re.sub(r"\D", "", shown))


async def banner(page: Page) -> dict[str, Any]:
    return dict(
        await page.evaluate(
            """({
              shown: !document.getElementById('banner').hidden
                && document.getElementById('banner').getBoundingClientRect().height > 0,
              role: document.getElementById('banner').getAttribute('role'),
              text: document.getElementById('banner').innerText,
              stale: document.body.classList.contains('stale'),
            })"""
        )
    )


async def banner_age(page: Page, lang: str) -> int:
    """The banner's time since the last event, in seconds, checked against the catalogue."""
    shown = await value(page, "banner-age")
    for n in range(60):
        age = text(lang, "wallboard.seconds", n=str(n))
        if shown == text(lang, "wallboard.last_event", age=age):
            return n
    raise AssertionError(f"not a time since the last event: {shown!r}")


def not_the_stream(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The errors besides the browser's own reports of the stream's refused requests."""
    return [
        e
        for e in errors
        if not (e["source"] == "log" and "/wallboard/events" in (e.get("url") or ""))
    ]


async def test_a_caller_waiting_past_15_s_is_a_breach_that_counts_on_by_itself(
    browser: Browser, server: FakeServer
) -> None:
    server.push(snapshot(waiting=(16.0, 3.0)))
    async with board(browser, server) as page:
        breach = text("en", "wallboard.wait_breach", seconds="15")
        await page.wait_for(f"document.getElementById('wait-state').textContent === {breach!r}")
        assert await value(page, "waiting") == "2"
        assert await value(page, "talking") == "3"
        first = await seconds_shown(page)
        assert first >= 16
        assert await page.evaluate("document.getElementById('tile-longest').dataset.level") == (
            "breach"
        )
        # No new snapshot: the page's own clock, set by the server's, moves the wait on.
        await page.wait_for(
            f"parseInt(document.getElementById('longest').textContent) >= {first + 2}",
            timeout=4,
        )
        seen = await banner(page)
        assert (seen["shown"], seen["role"], seen["stale"]) == (False, "alert", False)
        assert not page.errors, page.errors


async def test_a_caller_waiting_11_s_is_a_warning(browser: Browser, server: FakeServer) -> None:
    server.push(snapshot(waiting=()))
    async with board(browser, server, "id") as page:
        # Pushed once the page is up: a slow page load must not age it into a breach.
        server.push(snapshot(waiting=(11.0,)))
        warning = text("id", "wallboard.wait_warning", seconds="10")
        await page.wait_for(f"document.getElementById('wait-state').textContent === {warning!r}")
        assert 11 <= await seconds_shown(page) < 15
        # Nobody waiting is a state of its own, not a 0 s wait.
        server.push(snapshot(waiting=()))
        nobody = text("id", "wallboard.wait_none")
        await page.wait_for(f"document.getElementById('wait-state').textContent === {nobody!r}")
        assert await value(page, "longest") == text("id", "wallboard.none")
        assert not page.errors, page.errors


@pytest.mark.parametrize("lang", ["id", "en"])
async def test_today_call_takers_dispatches_and_the_sparkline(
    browser: Browser, server: FakeServer, lang: str
) -> None:
    server.push(snapshot())
    labels = i18n.catalogue(lang)
    async with board(browser, server, lang) as page:
        thousands = "1.234" if lang == "id" else "1,234"
        assert await value(page, "offered") == thousands
        assert [await value(page, k) for k in ("answered", "abandoned", "unanswered")] == [
            "1.100" if lang == "id" else "1,100",
            "115",
            "12",
        ]
        assert await value(page, "within-15") == "83%"
        stages = await value(page, "stages")
        for stage in ("before_queue", "queue", "ringing"):
            assert labels[f"stage.{stage}"] in stages
        verdicts = await page.evaluate(
            "[...document.querySelectorAll('#standards .verdict')].map(e => e.textContent)"
        )
        assert verdicts == [labels["wallboard.not_met"], labels["wallboard.met"]]
        assert "NENA-STA-020.1" in await value(page, "standards")

        groups = await page.evaluate(
            """Object.fromEntries([...document.querySelectorAll('.group')].map(g => [
              g.dataset.state,
              [...g.querySelectorAll('.member-name')].map(e => e.textContent),
            ]))"""
        )
        assert groups == {
            "available": ["Taker 1001"],
            "ringing": ["Taker 1002"],
            "in_call": ["Taker 1004", "Taker 1005"],
            "paused": ["Taker 1003"],
            "unavailable": ["Taker 1006"],
        }
        paused = await value(page, "members-paused")
        assert "istirahat" in paused
        # Paused 12 min 05 s when the snapshot was made, and counting on since.
        age = text(lang, "wallboard.minutes_seconds", m="12", s="SS")
        shown = re.search(
            re.escape(text(lang, "wallboard.member_for", age=age)).replace("SS", r"(\d\d)"),
            paused,
        )
        assert shown and 5 <= int(shown[1]) <= 20, paused
        assert await value(page, "count-in_call") == "2"

        dispatches = await page.evaluate(
            "[...document.querySelectorAll('#dispatches .dispatch')].map(e => e.innerText)"
        )
        assert [d.split("\n")[0].split("\t")[0] for d in dispatches] == [
            labels["agency.police"],
            labels["agency.ambulance"],
            "basarnas_bpbd",  # a center's own agency: no label, shown as configured
        ]
        assert await value(page, "callbacks") == "2"

        path = await page.evaluate("document.getElementById('spark-line').getAttribute('d')")
        points = re.findall(r"[ML]\s*[\d.]+\s+[\d.]+", path)
        assert len(points) >= 21, path  # 21 buckets with calls, breaks where none came
        assert path.count("M") == 3  # three runs: before, between and after the gaps
        drawn = await page.evaluate(
            """(() => { const b = document.getElementById('spark-line').getBoundingClientRect();
                        return b.width > 100 && b.height > 5; })()"""
        )
        assert drawn
        assert await page.evaluate("document.querySelectorAll('.spark-target-line').length") == 1
        assert not page.errors, page.errors
        assert not page.failed_requests, page.failed_requests


async def test_a_lost_stream_shows_the_banner_and_recovers_without_a_reload(
    browser: Browser, server: FakeServer, test_output: Path
) -> None:
    server.push(snapshot(waiting=(3.0,), talking=3))
    async with board(browser, server) as page:
        await page.evaluate("window.loadedOnce = 'marker'")
        assert (await banner(page))["shown"] is False

        await server.cut(refuse=True)
        cut_at = time.monotonic()
        await page.wait_for("!document.getElementById('banner').hidden", timeout=WAIT)
        seen = await banner(page)
        assert seen["shown"] and seen["stale"] and seen["role"] == "alert"
        assert text("en", "wallboard.stream_lost") in seen["text"]
        # The age is live while nothing arrives.
        first = await banner_age(page, "en")
        await page.wait_for(
            f"parseInt(document.getElementById('banner-age').textContent.match(/\\d+/)[0])"
            f" >= {first + 1}",
            timeout=3,
        )
        assert await banner_age(page, "en") > first
        await page.screenshot(test_output / "wallboard-stale.png", full_page=False)
        # The banner takes the header's place: the TV still shows the whole board.
        assert await page.evaluate("document.documentElement.scrollHeight") <= 1080
        # The greyed numbers are greyed as a person sees them, not only by a class.
        grey = await page.evaluate("getComputedStyle(document.getElementById('waiting')).color")
        assert grey == "rgb(115, 125, 138)"

        # Refused for about 3 s, and until the browser's own retry has met the closed port
        # at least once (its first retry comes about 3 s after the loss).
        deadline = time.monotonic() + 10
        while not any("/wallboard/events" in u for u in page.failed_requests):
            assert time.monotonic() < deadline, "the browser never retried the stream"
            await asyncio.sleep(0.05)
        await asyncio.sleep(max(0.0, 3.0 - (time.monotonic() - cut_at)))
        connects = server.connects
        await server.listen()
        deadline = time.monotonic() + 15
        while server.connects == connects or not server.viewers:
            assert time.monotonic() < deadline, "the page did not reconnect within 15 s"
            await asyncio.sleep(0.05)
        server.push(snapshot(waiting=(1.0, 2.0, 4.0), talking=5))
        await page.wait_for(
            "document.getElementById('banner').hidden"
            " && !document.body.classList.contains('stale')"
            " && document.getElementById('waiting').textContent === '3'",
            timeout=WAIT,
        )
        assert await value(page, "talking") == "5"
        assert await page.evaluate("window.loadedOnce") == "marker"  # the same page, no reload
        assert not_the_stream(page.errors) == []


async def test_a_refused_stream_503_is_retried_by_the_page(
    browser: Browser, server: FakeServer
) -> None:
    server.push(snapshot(waiting=()))
    async with board(browser, server) as page:
        await page.evaluate("window.loadedOnce = 'marker'")
        # EventSource gives up for good on an HTTP error: the page itself must retry.
        server.reject = 2
        await server.cut(refuse=False)
        await page.wait_for("!document.getElementById('banner').hidden", timeout=WAIT)
        deadline = time.monotonic() + 20
        while not server.viewers:
            assert time.monotonic() < deadline, "the page gave up after the 503s"
            await asyncio.sleep(0.05)
        assert server.reject == 0
        await page.wait_for("document.getElementById('banner').hidden", timeout=WAIT)
        assert await page.evaluate("window.loadedOnce") == "marker"
        assert not_the_stream(page.errors) == []


async def test_the_pbx_down_shows_the_banner(browser: Browser, server: FakeServer) -> None:
    server.push(snapshot())
    async with board(browser, server, "id") as page:
        server.push(snapshot(ami_up=False))
        await page.wait_for("!document.getElementById('banner').hidden", timeout=WAIT)
        seen = await banner(page)
        assert seen["stale"]
        assert text("id", "wallboard.ami_down") in seen["text"]
        assert await banner_age(page, "id") < 5
        server.push(snapshot(ami_up=True))
        await page.wait_for("document.getElementById('banner').hidden", timeout=WAIT)
        assert not page.errors, page.errors


async def test_a_silent_stream_is_stale_after_12_s(browser: Browser, server: FakeServer) -> None:
    """A connection that stays open but brings nothing (no snapshot, no ping)."""
    server.pings = False
    server.push(snapshot(waiting=()))
    async with board(browser, server) as page:
        started = time.monotonic()
        await page.wait_for("!document.getElementById('banner').hidden", timeout=20)
        assert 11 <= time.monotonic() - started < 16  # not at a missed ping or two
        assert text("en", "wallboard.stream_lost") in (await banner(page))["text"]
        server.push(snapshot(waiting=()))
        await page.wait_for("document.getElementById('banner').hidden", timeout=WAIT)
        assert not page.errors, page.errors


def english_only() -> list[str]:
    """The English wallboard texts the Indonesian catalogue does not share: each literal
    run between {fields} (so a name both keep, like pbxbridge or NENA, is not English)."""
    en, idn = i18n.catalogue("en"), i18n.catalogue("id")
    pieces = set()
    for key, english in en.items():
        if not key.startswith(LABEL_PREFIXES) or english == idn[key]:
            continue
        for run in re.split(r"\{[a-z_]+\}", english):
            piece = run.strip(" .,:;()-\N{EN DASH}\N{HORIZONTAL ELLIPSIS}")
            if len(piece) >= 3 and re.search(r"[A-Za-z]{2}", piece) and piece not in idn[key]:
                pieces.add(piece)
    return sorted(pieces)


async def test_the_indonesian_board_has_no_english_and_the_english_one_is_english(
    browser: Browser, server: FakeServer
) -> None:
    server.push(snapshot(waiting=(16.0,)))
    english = english_only()
    assert len(english) > 40  # the scan found the wallboard's texts at all
    seen = {}
    for lang in ("id", "en"):
        async with board(browser, server, lang) as page:
            await page.wait_for("document.getElementById('wait-state').textContent.length > 0")
            seen[lang] = await page.text() + "\n" + await page.evaluate("document.title")
    found = [w for w in english if re.search(rf"(?<!\w){re.escape(w)}(?!\w)", seen["id"])]
    assert found == []
    assert len([w for w in english if w in seen["en"]]) >= 20
    assert i18n.catalogue("id")["wallboard.waiting"] in seen["id"]
    assert i18n.catalogue("id")["wallboard.waiting"] not in seen["en"]
    assert "Desember" in seen["id"] and "December" in seen["en"]


@pytest.mark.parametrize("lang", ["id", "en"])
async def test_the_page_loads_only_itself_cleanly_on_a_tv_and_a_phone(
    browser: Browser, server: FakeServer, test_output: Path, lang: str
) -> None:
    server.push(snapshot(waiting=(16.0, 12.0, 5.0)))
    origin = f"127.0.0.1:{server.port}"
    for mobile in (False, True):
        async with board(browser, server, lang, mobile=mobile) as page:
            await page.wait_for(
                "document.getElementById('tile-longest').dataset.level === 'breach'"
            )
            shot = test_output / f"wallboard-{lang}-{'phone' if mobile else 'tv'}.png"
            await page.screenshot(shot, full_page=mobile)
            assert shot.stat().st_size > 20_000
            assert not page.errors, page.errors
            assert not page.failed_requests, page.failed_requests
            assert {urlsplit(u).netloc for u in page.requests} == {origin}, page.requests
            paths = sorted({urlsplit(u).path for u in page.requests})
            assert paths == [
                "/wallboard",
                "/wallboard/events",
                "/wallboard/wallboard.css",
                "/wallboard/wallboard.js",
            ]
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 1
            if not mobile:
                # Across the room: the big numbers about 6% of the width, the whole board on
                # one screen with no scrolling.
                size = await page.evaluate(
                    "parseFloat(getComputedStyle(document.getElementById('waiting')).fontSize)"
                )
                assert size >= 0.055 * 1920
                height = await page.evaluate("document.documentElement.scrollHeight")
                assert height <= 1080, height
