"""The real-browser harness (tests/support/browser.py) against pages served by a real
aiohttp server on a loopback port: what it reports must be what chromium saw."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path
from subprocess import PIPE

import pytest
from aiohttp import web

from tests.support.browser import (
    OUTPUT_ENV,
    REPO_ROOT,
    Browser,
    BrowserError,
    ChromiumNotFoundError,
    JavaScriptError,
)

WITHIN = 60.0  # each test's bound; a healthy run takes about a second per test
FOREIGN = "http://192.0.2.1/x.png"  # TEST-NET-1 (RFC 5737): never routed
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

HEAD = '<!doctype html><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
PAGES = {
    "/": f"""{HEAD}<title>Accueil</title><link rel="stylesheet" href="/style.css">
<h1>Centrale 112 Lyon</h1>
<p>Appels en attente : 3</p>
<p hidden>texte masqué</p>
<svg width="300" height="80" role="img" aria-label="charge">
  <rect x="0" y="10" width="80" height="60" fill="#c00"></rect>
  <rect x="100" y="30" width="80" height="40" fill="#0a0"></rect>
  <rect x="200" y="50" width="80" height="20" fill="#00c"></rect>
</svg>""",
    "/broken": f"""{HEAD}<p>Page cassée</p>
<script>console.error('boom'); throw new Error('kaboom');</script>""",
    "/foreign": f"""{HEAD}<p>Carte des sites</p><img src="{FOREIGN}" alt="">""",
    "/missing": f"""{HEAD}<p>Script absent</p><script src="/absent.js"></script>""",
    "/tall": f"""{HEAD}<style>body {{ margin: 0 }}</style>
<div style="height: 3000px; background: linear-gradient(#fff, #888)">Haut de page</div>""",
    "/stalled": f"""{HEAD}<p>Image lente</p><img src="/slow.png" alt="">""",
    "/later": f"""{HEAD}<p id="state">en cours</p>
<script>setTimeout(() => {{ document.getElementById('state').textContent = 'prêt'; }}, 300);
</script>""",
}


@pytest.fixture
async def site() -> AsyncIterator[str]:
    """The pages above on 127.0.0.1, on a port the kernel picked."""
    release = asyncio.Event()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGES[request.path], content_type="text/html")

    async def style(request: web.Request) -> web.Response:
        # CORS, so the page on 127.0.0.1 may read it through "localhost", another origin.
        return web.Response(
            text="h1 { color: #036 }",
            content_type="text/css",
            headers={"Access-Control-Allow-Origin": "*"},
        )

    async def stalled(request: web.Request) -> web.Response:
        await release.wait()  # holds the page's load event until the server stops
        return web.Response(status=204)

    app = web.Application()
    for path in PAGES:
        app.router.add_get(path, page)
    app.router.add_get("/style.css", style)
    app.router.add_get("/slow.png", stalled)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        release.set()  # or the cleanup waits its 60 s for the stalled handler
        await runner.cleanup()


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, data[:8]
    # IHDR is always the first chunk: length(4) type(4) width(4) height(4).
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def texts(entries: list[dict[str, object]]) -> str:
    return "\n".join(str(entry["text"]) for entry in entries)


def group_members(pgid: int) -> list[tuple[int, int, str]]:
    """(pid, parent pid, state) of every process in the group, zombies included."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it exited while we looked
            continue
        # The command name is in parentheses and may itself hold spaces or parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        state, ppid, group = fields[0], int(fields[1]), int(fields[2])
        if group == pgid:
            members.append((int(entry.name), ppid, state))
    return members


async def test_text_and_svg(browser: Browser, site: str) -> None:
    async with asyncio.timeout(WITHIN), await browser.open(f"{site}/") as page:
        text = await page.text()
        assert "Centrale 112 Lyon" in text
        assert "Appels en attente : 3" in text
        assert "masqué" not in text  # innerText, as a reader sees it: not textContent
        assert await page.evaluate("document.querySelectorAll('svg rect').length") == 3
        assert page.status == 200
        assert page.requests == [f"{site}/", f"{site}/style.css"]
        assert page.failed_requests == []
        assert page.errors == []


async def test_console_error_and_uncaught_exception(browser: Browser, site: str) -> None:
    async with asyncio.timeout(WITHIN), await browser.open(f"{site}/broken") as page:
        assert "Page cassée" in await page.text()
        consoled = [e for e in page.console if e["source"] == "console"]
        assert consoled == [{"source": "console", "type": "error", "text": "boom"}]
        thrown = [e for e in page.errors if e["source"] == "exception"]
        assert len(thrown) == 1, page.console
        assert "Uncaught Error: kaboom" in thrown[0]["text"]
        assert "boom" in texts(page.errors)


async def test_foreign_request_is_recorded_and_blocked(browser: Browser, site: str) -> None:
    async with asyncio.timeout(WITHIN):
        started = time.monotonic()
        page = await browser.open(f"{site}/foreign")
        # Blocked by the harness, not left to time out: an open network (CI) or a closed
        # one (here) give the same, fast result.
        assert time.monotonic() - started < 10
        assert FOREIGN in page.requests
        assert page.failed_requests == [FOREIGN]
        assert "ERR_BLOCKED_BY_CLIENT" in texts(page.errors)
        assert "Carte des sites" in await page.text()
        await page.close()


async def test_foreign_request_is_recorded_without_blocking(browser: Browser, site: str) -> None:
    """Unblocked, the request really goes out, and is reported though it succeeds. The
    foreign origin is this same server on another name: 192.0.2.1 might hang, not fail."""
    foreign = site.replace("127.0.0.1", "localhost") + "/style.css"
    async with asyncio.timeout(WITHIN):
        page = await browser.open(f"{site}/", block_foreign=False)
        assert await page.evaluate(f"fetch({foreign!r}).then(r => r.status)") == 200
        assert page.failed_requests == [foreign]
        assert foreign in page.requests
        await page.close()


async def test_load_timeout_names_what_is_still_loading(browser: Browser, site: str) -> None:
    async with asyncio.timeout(WITHIN):
        started = time.monotonic()
        with pytest.raises(BrowserError, match=r"load event(.|\n)*still loading: .*/slow.png"):
            await browser.open(f"{site}/stalled", timeout=1.0)
        assert time.monotonic() - started < 5


async def test_http_error_counts_as_failed_request(browser: Browser, site: str) -> None:
    async with asyncio.timeout(WITHIN), await browser.open(f"{site}/missing") as page:
        assert page.failed_requests == [f"{site}/absent.js"]
        assert "404" in texts(page.errors)


async def test_screenshot_is_a_png_of_the_viewport_width(
    browser: Browser, site: str, test_output: Path
) -> None:
    async with asyncio.timeout(WITHIN):
        async with await browser.open(f"{site}/") as page:
            shot = await page.screenshot(test_output / "home.png")
            assert shot == test_output / "home.png"
            assert png_size(shot) == (1280, 900)
        async with await browser.open(f"{site}/tall", width=800, height=600) as page:
            assert png_size(await page.screenshot(test_output / "tall.png")) == (800, 3000)
            viewport = await page.screenshot(test_output / "tall-top.png", full_page=False)
            assert png_size(viewport) == (800, 600)


async def test_mobile_viewport(browser: Browser, site: str, test_output: Path) -> None:
    async with asyncio.timeout(WITHIN), await browser.open(f"{site}/", mobile=True) as page:
        assert await page.evaluate("[innerWidth, devicePixelRatio]") == [390, 2]
        # Device pixels: 390 CSS pixels at scale 2.
        width, _ = png_size(await page.screenshot(test_output / "mobile.png"))
        assert width == 780


async def test_pdf_holds_the_page_text(browser: Browser, site: str, test_output: Path) -> None:
    async with asyncio.timeout(WITHIN), await browser.open(f"{site}/") as page:
        pdf = await page.pdf(test_output / "home.pdf")
        assert pdf.read_bytes()[:5] == b"%PDF-"
    try:
        converter = await asyncio.create_subprocess_exec(
            "pdftotext", "-layout", str(pdf), "-", stdout=PIPE, stderr=PIPE
        )
    except FileNotFoundError:
        pytest.fail("pdftotext is not installed: apt-get install poppler-utils", pytrace=False)
    async with asyncio.timeout(30):
        out, err = await converter.communicate()
    assert converter.returncode == 0, err
    text = out.decode()
    assert "Centrale 112 Lyon" in text
    assert "Appels en attente : 3" in text


async def test_evaluate_and_wait_for(browser: Browser, site: str) -> None:
    async with asyncio.timeout(WITHIN), await browser.open(f"{site}/later") as page:
        assert await page.evaluate("({a: [1, 'x', null], b: true})") == {
            "a": [1, "x", None],
            "b": True,
        }
        assert await page.evaluate("undefined") is None
        assert await page.evaluate("new Promise(r => setTimeout(() => r(42), 50))") == 42
        with pytest.raises(JavaScriptError, match="ReferenceError: nowhere is not defined"):
            await page.evaluate("nowhere.at_all")
        with pytest.raises(JavaScriptError, match="refusé"):
            await page.evaluate("Promise.reject(new Error('refusé'))")
        state = "document.getElementById('state').textContent"
        assert await page.wait_for(f"{state} === 'prêt' && {state}") == "prêt"
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"still not true after 0\.3 s"):
            await page.wait_for("window.never", timeout=0.3)
        assert time.monotonic() - started < 5


async def test_file_url(browser: Browser, test_output: Path) -> None:
    html = test_output / "local.html"
    html.write_text(
        f'{PAGES["/"]}<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt="">',
        encoding="utf-8",
    )
    async with asyncio.timeout(WITHIN), await browser.open(html.as_uri()) as page:
        assert "Centrale 112 Lyon" in await page.text()
        # The stylesheet is file:///style.css, absent: a failure, but not a foreign one.
        assert page.failed_requests == ["file:///style.css"]


async def test_navigation_error_names_the_cause(browser: Browser) -> None:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with asyncio.timeout(WITHIN):
        with pytest.raises(BrowserError, match="ERR_CONNECTION_REFUSED"):
            await browser.open(f"http://127.0.0.1:{port}/")


async def test_closed_page_refuses_commands(browser: Browser, site: str) -> None:
    async with asyncio.timeout(WITHIN):
        async with await browser.open(f"{site}/") as page:
            pass
        with pytest.raises(BrowserError, match="the page is closed"):
            await page.text()
        await page.close()  # a second close is harmless


async def test_crashed_page_fails_fast(browser: Browser, site: str) -> None:
    async with asyncio.timeout(WITHIN):
        page = await browser.open(f"{site}/")
        started = time.monotonic()
        with pytest.raises(BrowserError, match="crashed"):
            await page.send("Page.crash")  # the renderer dies before it can answer
        with pytest.raises(BrowserError, match="crashed"):
            await page.text()
        assert time.monotonic() - started < 10  # not the 30 s command timeout
        await page.close()
        # The browser itself is unharmed.
        async with await browser.open(f"{site}/") as other:
            assert "Centrale 112 Lyon" in await other.text()


async def test_startup_failure_shows_chromium_output(tmp_path: Path) -> None:
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\necho 'Missing X server or $DISPLAY' >&2\nexit 3\n")
    fake.chmod(0o755)
    async with asyncio.timeout(WITHIN):
        with pytest.raises(BrowserError, match=r"exit status 3(.|\n)*Missing X server"):
            async with Browser.launch(executable=str(fake)):
                pass


async def test_missing_chromium_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ChromiumNotFoundError, match="apt-get install chromium"):
        async with Browser.launch():
            pass


async def test_startup_timeout_is_bounded(tmp_path: Path) -> None:
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\necho 'stuck before DevTools' >&2\nexec sleep 60\n")
    fake.chmod(0o755)
    async with asyncio.timeout(WITHIN):
        started = time.monotonic()
        with pytest.raises(BrowserError, match=r"within 0.5 s(.|\n)*stuck before DevTools"):
            async with Browser.launch(executable=str(fake), timeout=0.5):
                pass
        assert time.monotonic() - started < 5


async def test_no_process_left_behind(site: str) -> None:
    async with asyncio.timeout(WITHIN):
        async with Browser.launch() as launched:
            pid = launched.pid
            await launched.open(f"{site}/")
            assert len(group_members(pid)) > 2  # renderers and helpers, in chromium's group
        with pytest.raises(ChildProcessError):  # reaped: no zombie of ours
            os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 (WNOHANG: it cannot block)
        # Chromium's zygotes outlive it by a moment, and become init's children; they are
        # killed with the group, so nothing may still be running, or be ours to reap.
        deadline = time.monotonic() + 5
        alive = [m for m in group_members(pid) if m[2] != "Z"]
        while alive and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            alive = [m for m in group_members(pid) if m[2] != "Z"]
        assert alive == []
        assert [m for m in group_members(pid) if m[1] == os.getpid()] == []


def test_output_directory_is_fresh_and_named_after_the_test(test_output: Path) -> None:
    base = Path(os.environ.get(OUTPUT_ENV) or REPO_ROOT / "test-output")
    assert test_output.parent == base
    assert test_output.name == (
        "component.test_browser_harness__test_output_directory_is_fresh_and_named_after_the_test"
    )
    assert test_output.is_dir()
    assert list(test_output.iterdir()) == []
