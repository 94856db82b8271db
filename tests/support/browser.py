"""A real headless Chromium for the tests, driven over the DevTools protocol.

No browser-automation package: ``Browser`` starts Debian's ``chromium`` with
``--remote-debugging-port=0`` and speaks the DevTools protocol over one aiohttp websocket
(flattened sessions, one per page)::

    async with Browser.launch() as browser, await browser.open(url) as page:
        assert "Centrale" in await page.text()
        assert not page.errors and not page.failed_requests
        await page.screenshot(test_output / "home.png")

The conftest registers two fixtures for every test: ``browser`` (a launched ``Browser``)
and ``test_output`` (a fresh directory, kept after the run, for screenshots and PDFs).

Every wait is bounded and ends in an error that says what was awaited. A missing
``chromium`` is a failure, never a skip: ``make test`` installs it with apt-get.

The test machines have no network, and CI's may have one: requests that leave the page's
own origin are failed at once by the harness (``block_foreign``) and recorded, so a page
that calls out to the internet neither hangs its load event nor passes unnoticed.
"""

# Timeouts are parameters on purpose (ASYNC109): every wait ends in an error that names
# what it waited for, which an asyncio.timeout() around the call cannot say.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import pytest

T = TypeVar("T")

CHROMIUM = "chromium"
INSTALL_HINT = "apt-get install chromium (`make test` installs it)"
REPO_ROOT = Path(__file__).resolve().parents[2]
OUTPUT_ENV = "PBXBRIDGE_TEST_OUTPUT"

LAUNCH_TIMEOUT = 30.0
COMMAND_TIMEOUT = 30.0  # printToPDF and full-page screenshots of long pages are the slowest
LOAD_TIMEOUT = 30.0
CLOSE_GRACE = 5.0  # a clean Browser.close lets chromium reap its own renderers
POLL_INTERVAL = 0.05
LOG_TAIL_LINES = 30
MAX_MESSAGE = 256 * 1024 * 1024  # a full-page screenshot arrives as one base64 message

# The network is closed on the test machines: without these chromium keeps trying to
# reach Google (updates, sync, field trials) and fills its log with refused connections.
FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root in containers, where the sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
)

A4_INCHES = (8.27, 11.69)  # printToPDF takes inches
MOBILE_WIDTH = 390
MOBILE_SCALE = 2
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# Schemes a page may always use: they never leave the machine.
LOCAL_SCHEMES = frozenset({"file", "data", "blob", "about"})


class BrowserError(RuntimeError):
    """Chromium did not start, went away, or answered a command with an error."""


class ChromiumNotFoundError(BrowserError):
    """No ``chromium`` executable on PATH."""


class JavaScriptError(BrowserError):
    """An evaluated expression threw; the message is the exception's text."""


def _command(exe: str, profile: Path, args: tuple[str, ...]) -> list[str]:
    command = [exe, *FLAGS, *args, f"--user-data-dir={profile}", "--remote-debugging-port=0"]
    setpriv = shutil.which("setpriv")  # util-linux: on every Debian system
    if setpriv is not None:
        # A pytest run killed with SIGKILL (a CI job timeout) runs no finally block: the
        # browsers it had open would stay behind forever. setpriv execs chromium in place,
        # so the pid and the process group stay chromium's.
        command[:0] = [setpriv, "--pdeathsig", "KILL", "--"]
    return [*command, "about:blank"]


def _exited(pid: int) -> str | None:
    """How the child ended, or None while it runs. It is not reaped: a zombie leader
    keeps its pid, and so its process group id, from being reused before the group is
    killed."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return "already reaped"
    if info is None:
        return None
    if info.si_code == os.CLD_EXITED:
        return f"exit status {info.si_status}"
    return f"killed by signal {info.si_status}"


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, parts.hostname or "", port or DEFAULT_PORTS.get(scheme)


def _remote_text(arg: dict[str, Any]) -> str:
    if "value" in arg:
        value = arg["value"]
        return value if isinstance(value, str) else json.dumps(value)
    return str(arg.get("unserializableValue") or arg.get("description") or arg.get("type"))


def _exception_text(details: dict[str, Any]) -> str:
    description = details.get("exception", {}).get("description")
    text = str(details.get("text", "exception"))
    return f"{text} {description}".strip() if description else text


def _implicit_favicon(params: dict[str, Any]) -> bool:
    return (
        params.get("type") == "Other"
        and params.get("initiator", {}).get("type") == "other"
        and urlsplit(params["request"]["url"]).path == "/favicon.ico"
    )


def _unserializable(value: str) -> Any:
    if value.endswith("n"):  # BigInt
        return int(value[:-1])
    return float(value)  # NaN, Infinity, -Infinity, -0


class Page:
    """One tab, attached through a flattened session of the browser's websocket."""

    def __init__(
        self, browser: Browser, target_id: str, session_id: str, *, block_foreign: bool
    ) -> None:
        self.browser = browser
        self.target_id = target_id
        self.session_id = session_id
        self.url = "about:blank"
        self.status: int | None = None  # HTTP status of the last main-document response
        self.console: list[dict[str, Any]] = []
        self.requests: list[str] = []
        self.failed_requests: list[str] = []
        self._block_foreign = block_foreign
        self._origin = _origin(self.url)
        self._request_urls: dict[str, str] = {}
        self._flagged: set[str] = set()  # request ids already in failed_requests
        self._implicit: set[str] = set()  # request ids of the browser's own favicon fetch
        self._implicit_urls: set[str] = set()
        self._in_flight: dict[str, str] = {}  # request id -> url, for the load timeout
        self._viewport_width = 0
        self._loads: dict[str, asyncio.Future[None]] = {}
        self._document_status: dict[str, int] = {}  # request id (= loader id) -> status
        self._decisions: set[asyncio.Task[None]] = set()
        self._gone = asyncio.Event()
        self._gone_reason = ""
        self._closed = False

    async def __aenter__(self) -> Page:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ---------------------------------------------------------------- recording

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Console errors and assertions, uncaught exceptions, and error log entries."""
        return [
            entry
            for entry in self.console
            if entry["source"] == "exception"
            or (entry["source"] == "console" and entry["type"] in ("error", "assert"))
            or (entry["source"] == "log" and entry["type"] == "error")
        ]

    def _allowed(self, url: str) -> bool:
        origin = _origin(url)
        return origin[0] in LOCAL_SCHEMES or origin == self._origin

    def _flag(self, request_id: str, url: str) -> None:
        if request_id not in self._flagged:
            self._flagged.add(request_id)
            self.failed_requests.append(url)

    def _on_event(self, method: str, params: dict[str, Any]) -> None:
        match method:
            case "Runtime.consoleAPICalled":
                text = " ".join(_remote_text(arg) for arg in params.get("args", []))
                self.console.append({"source": "console", "type": params["type"], "text": text})
            case "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                self.console.append(
                    {"source": "exception", "type": "error", "text": _exception_text(details)}
                )
            case "Log.entryAdded" if params["entry"].get("url") not in self._implicit_urls:
                entry = params["entry"]
                self.console.append(
                    {
                        "source": "log",
                        "type": entry["level"],
                        "text": entry["text"],
                        "url": entry.get("url"),
                    }
                )
            case "Network.requestWillBeSent":
                url, request_id = params["request"]["url"], params["requestId"]
                if _implicit_favicon(params):
                    # Chromium's own, made after the load event and only once per origin:
                    # the page did not ask for it, and recording it made lists racy.
                    self._implicit.add(request_id)
                    self._implicit_urls.add(url)
                    return
                self.requests.append(url)
                self._request_urls[request_id] = url
                self._in_flight[request_id] = url
                if not self._allowed(url):
                    self._flag(request_id, url)
            case "Network.loadingFinished":
                self._in_flight.pop(params["requestId"], None)
            case "Network.loadingFailed" if params["requestId"] not in self._implicit:
                request_id = params["requestId"]
                self._in_flight.pop(request_id, None)
                self._flag(request_id, self._request_urls.get(request_id, "?"))
            case "Network.responseReceived" if params["requestId"] not in self._implicit:
                request_id, status = params["requestId"], params["response"]["status"]
                if params.get("type") == "Document":
                    self._document_status[request_id] = status
                # loadingFailed only covers network errors: a 404 stylesheet or a 500 API
                # call is just as broken a page.
                if status >= 400:
                    self._flag(request_id, params["response"]["url"])
            case "Page.lifecycleEvent" if params["name"] == "load":
                loaded = self._load_future(params["loaderId"])
                if not loaded.done():
                    loaded.set_result(None)
            case "Fetch.requestPaused":
                task = asyncio.create_task(self._decide(params))
                self._decisions.add(task)
                task.add_done_callback(self._decisions.discard)
            case "Inspector.targetCrashed":
                self._set_gone("the page's renderer crashed")
            case _:
                pass

    def _load_future(self, loader_id: str) -> asyncio.Future[None]:
        # Keyed by loader, and made by whichever comes first: a tiny page can fire its
        # load event before Page.navigate has even answered, and an earlier navigation's
        # load must not count for this one.
        future = self._loads.get(loader_id)
        if future is None:
            future = self._loads[loader_id] = asyncio.get_running_loop().create_future()
        return future

    async def _decide(self, params: dict[str, Any]) -> None:
        # A task, not inline in the reader: the reader is what reads this command's answer.
        request_id = params["requestId"]
        if self._allowed(params["request"]["url"]):
            method, extra = "Fetch.continueRequest", {}
        else:
            method, extra = "Fetch.failRequest", {"errorReason": "BlockedByClient"}
        with contextlib.suppress(BrowserError):  # the page closed meanwhile
            await self.send(method, {"requestId": request_id, **extra})

    def _set_gone(self, reason: str) -> None:
        if not self._gone.is_set():
            self._gone_reason = reason
            self._gone.set()

    # ----------------------------------------------------------------- commands

    async def send(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float = COMMAND_TIMEOUT
    ) -> dict[str, Any]:
        """A raw DevTools command in this page's session."""
        return await self.browser.send(method, params, page=self, timeout=timeout)

    async def _setup(self, *, width: int, height: int, mobile: bool) -> None:
        for domain in ("Runtime", "Log", "Page", "Network"):
            await self.send(f"{domain}.enable")
        await self.send("Page.setLifecycleEventsEnabled", {"enabled": True})
        if self._block_foreign:
            await self.send("Fetch.enable", {"patterns": [{"urlPattern": "*"}]})
        self._viewport_width = MOBILE_WIDTH if mobile else width
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {
                "width": self._viewport_width,
                "height": height,
                "deviceScaleFactor": MOBILE_SCALE if mobile else 1,
                "mobile": mobile,
            },
        )

    async def goto(self, url: str, *, timeout: float = LOAD_TIMEOUT) -> None:
        """Navigate and wait for the load event; the new origin is the page's own."""
        self.url = url
        self._origin = _origin(url)
        started = time.monotonic()
        reply = await self.send("Page.navigate", {"url": url}, timeout=timeout)
        if reply.get("errorText"):
            raise BrowserError(f"navigation to {url} failed: {reply['errorText']}")
        loader_id = reply.get("loaderId")
        if loader_id is None:  # a same-document navigation (#fragment) loads nothing
            return
        remaining = max(0.0, timeout - (time.monotonic() - started))
        try:
            await self.browser.until(
                self._load_future(loader_id), remaining, f"load event of {url}", page=self
            )
        except BrowserError as exc:
            # The load event waits for every image and script: name the ones it waits for.
            waiting = sorted(set(self._in_flight.values()))
            if waiting:
                raise BrowserError(f"{exc}; still loading: {', '.join(waiting)}") from exc
            raise
        finally:
            self._loads.pop(loader_id, None)
        # Answered before Page.navigate was: a document's request id is its loader id.
        self.status = self._document_status.get(loader_id)

    async def evaluate(self, expression: str, *, timeout: float = COMMAND_TIMEOUT) -> Any:
        """The expression's value as JSON (promises awaited); raises JavaScriptError."""
        reply = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            timeout=timeout,
        )
        if "exceptionDetails" in reply:
            raise JavaScriptError(_exception_text(reply["exceptionDetails"]))
        result = reply["result"]
        if "unserializableValue" in result:
            return _unserializable(result["unserializableValue"])
        return result.get("value")  # undefined has none

    async def text(self) -> str:
        """What a reader sees: ``document.body.innerText``."""
        return str(await self.evaluate("document.body ? document.body.innerText : ''"))

    async def wait_for(self, js_condition: str, timeout: float = 10) -> Any:
        """Poll until the expression is truthy and return its value. An expression that
        throws counts as not yet true (the element may not exist yet); the last error is
        in the timeout's message."""
        last: str = "never evaluated"
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"{js_condition!r} still not true after {timeout:g} s (last: {last})"
                )
            try:
                value = await self.evaluate(js_condition, timeout=remaining)
            except JavaScriptError as exc:
                last = f"threw {exc}"
            except BrowserError as exc:
                if self._gone.is_set() or self.browser.lost:
                    raise
                last = str(exc)  # the command timed out: the deadline reports it next
            else:
                if value:
                    return value
                last = repr(value)
            await asyncio.sleep(min(POLL_INTERVAL, max(0.0, deadline - time.monotonic())))

    async def screenshot(self, path: str | os.PathLike[str], full_page: bool = True) -> Path:
        """A PNG of the viewport, or of the whole document when ``full_page``."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            metrics = await self.send("Page.getLayoutMetrics")
            content, viewport = metrics["cssContentSize"], metrics["cssLayoutViewport"]
            params["captureBeyondViewport"] = True
            params["clip"] = {
                "x": 0,
                "y": 0,
                # Not the content's width: a tall page's scrollbar takes 15 px off it, and
                # the capture, grown to the whole page, has no scrollbar left to show.
                "width": max(content["width"], self._viewport_width),
                "height": max(content["height"], viewport["clientHeight"]),
                "scale": 1,
            }
        reply = await self.send("Page.captureScreenshot", params)
        return _write(path, base64.b64decode(reply["data"]))

    async def pdf(self, path: str | os.PathLike[str]) -> Path:
        """The page printed to an A4 PDF, backgrounds included."""
        width, height = A4_INCHES
        reply = await self.send(
            "Page.printToPDF",
            {"printBackground": True, "paperWidth": width, "paperHeight": height},
        )
        return _write(path, base64.b64decode(reply["data"]))

    async def close(self) -> None:
        """Close the tab; further commands fail with a clear error. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for task in self._decisions:
            task.cancel()
        self.browser.forget(self)
        # Even a crashed page's tab stays open until closed; a gone browser has no tabs.
        with contextlib.suppress(BrowserError):
            await self.browser.send("Target.closeTarget", {"targetId": self.target_id})
        self._set_gone("the page is closed")


def _write(path: str | os.PathLike[str], data: bytes) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


class Browser:
    """A running chromium and the websocket to its browser endpoint."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        workdir: Path,
        http: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
    ) -> None:
        self.process = process
        self.pid = process.pid
        self.workdir = workdir
        self.version = ""
        self._http = http
        self._ws = ws
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._pages: dict[str, Page] = {}
        self._lost = asyncio.Event()
        self._lost_reason = ""
        self._reader = asyncio.create_task(self._read())

    @classmethod
    @contextlib.asynccontextmanager
    async def launch(
        cls,
        *,
        executable: str | None = None,
        timeout: float = LAUNCH_TIMEOUT,
        args: tuple[str, ...] = (),
    ) -> AsyncIterator[Browser]:
        """Start chromium, connect, and at exit kill its whole process group and reap it."""
        exe = executable or shutil.which(CHROMIUM)
        if exe is None:
            raise ChromiumNotFoundError(f"chromium is not installed: {INSTALL_HINT}")
        workdir = Path(tempfile.mkdtemp(prefix="pbxbridge-chromium-"))
        profile = workdir / "profile"
        profile.mkdir()
        try:
            with (workdir / "chromium.log").open("wb") as log:
                # Not asyncio's subprocess: its child watcher reaps the leader the moment it
                # exits, freeing the pid (and so the group id) before the group is killed.
                process = subprocess.Popen(  # noqa: ASYNC220 (a fork and exec, no waiting)
                    _command(exe, profile, args),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # Its own group, so one killpg reaches every renderer and helper it forks.
                    start_new_session=True,
                )
        except OSError as exc:
            shutil.rmtree(workdir, ignore_errors=True)
            raise BrowserError(f"cannot start {exe}: {exc}") from exc
        http: aiohttp.ClientSession | None = None
        browser: Browser | None = None
        try:
            http = aiohttp.ClientSession()
            ws = await _connect(process, workdir, http, timeout)
            browser = cls(process, workdir, http, ws)
            version = await browser.send("Browser.getVersion")
            browser.version = str(version.get("product", ""))
            yield browser
        finally:
            try:
                if browser is not None:
                    await browser._shut_down()
                elif http is not None:
                    await http.close()
            finally:
                # Whatever happened above (even a cancelled test), nothing may outlive it.
                _kill_group(process)
                shutil.rmtree(workdir, ignore_errors=True)

    # ---------------------------------------------------------------- protocol

    @property
    def lost(self) -> bool:
        """Whether the DevTools connection is gone (chromium exited or crashed)."""
        return self._lost.is_set()

    def log_tail(self) -> str:
        return _log_tail(self.workdir)

    async def _read(self) -> None:
        try:
            async for message in self._ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    self._dispatch(json.loads(message.data))
                elif message.type is aiohttp.WSMsgType.ERROR:
                    self._lost_reason = f"websocket error: {self._ws.exception()!r}"
                    break
            self._lost_reason = self._lost_reason or "chromium closed the DevTools connection"
        except Exception as exc:
            # A broken handler must not leave every waiter hanging until its timeout.
            self._lost_reason = f"reading DevTools messages failed: {exc!r}"
        finally:
            self._lost.set()

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "id" in message:
            future = self._pending.get(message["id"])
            if future is not None and not future.done():
                future.set_result(message)
            return
        method, params = message.get("method", ""), message.get("params", {})
        page = self._pages.get(message.get("sessionId", ""))
        if page is not None:
            page._on_event(method, params)
        elif method == "Target.detachedFromTarget":
            detached = self._pages.get(params.get("sessionId", ""))
            if detached is not None:
                detached._set_gone("the page was detached (its tab closed or crashed)")

    async def until(
        self, future: asyncio.Future[T], timeout: float, what: str, *, page: Page | None = None
    ) -> T:
        """The future's result, or a BrowserError naming ``what`` on timeout or when
        chromium (or the page) goes away first."""
        watchers = [asyncio.ensure_future(self._lost.wait())]
        if page is not None:
            watchers.append(asyncio.ensure_future(page._gone.wait()))
        awaited: list[asyncio.Future[Any]] = [future, *watchers]
        try:
            done, _ = await asyncio.wait(
                awaited, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for watcher in watchers:
                watcher.cancel()
        if future.done():
            return future.result()
        if not done:
            raise BrowserError(f"{what}: no answer from chromium within {timeout:g} s")
        if page is not None and page._gone.is_set():
            raise BrowserError(f"{what}: {page._gone_reason}")
        raise BrowserError(f"{what}: {self._lost_reason}\n{self.log_tail()}")

    async def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        page: Page | None = None,
        timeout: float = COMMAND_TIMEOUT,
    ) -> dict[str, Any]:
        """A raw DevTools command, to the browser or to one page's session."""
        if self._lost.is_set():
            raise BrowserError(f"{method}: {self._lost_reason}\n{self.log_tail()}")
        if page is not None and page._gone.is_set():
            raise BrowserError(f"{method}: {page._gone_reason}")
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if page is not None:
            message["sessionId"] = page.session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        try:
            try:
                await self._ws.send_str(json.dumps(message))
            except ConnectionError as exc:
                raise BrowserError(f"{method}: {exc}\n{self.log_tail()}") from exc
            reply = await self.until(future, timeout, method, page=page)
        finally:
            self._pending.pop(message["id"], None)
        if "error" in reply:
            error = reply["error"]
            detail = f" ({error['data']})" if error.get("data") else ""
            raise BrowserError(f"{method} failed: {error.get('message')}{detail}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    # ------------------------------------------------------------------- pages

    async def open(
        self,
        url: str,
        *,
        width: int = 1280,
        height: int = 900,
        mobile: bool = False,
        block_foreign: bool = True,
        timeout: float = LOAD_TIMEOUT,
    ) -> Page:
        """A new tab showing ``url`` once its load event fired. ``mobile`` emulates a phone
        390 CSS pixels wide at device scale 2 (``height`` is kept)."""
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        target_id = target["targetId"]
        try:
            attached = await self.send(
                "Target.attachToTarget", {"targetId": target_id, "flatten": True}
            )
        except BaseException:
            with contextlib.suppress(BrowserError):
                await self.send("Target.closeTarget", {"targetId": target_id})
            raise
        page = Page(self, target_id, attached["sessionId"], block_foreign=block_foreign)
        self._pages[page.session_id] = page
        try:
            await page._setup(width=width, height=height, mobile=mobile)
            await page.goto(url, timeout=timeout)
        except BaseException:
            await page.close()
            raise
        return page

    def forget(self, page: Page) -> None:
        self._pages.pop(page.session_id, None)

    async def _shut_down(self) -> None:
        for page in list(self._pages.values()):
            page._set_gone("the browser is closed")
        with contextlib.suppress(BrowserError):
            # Chromium drops the connection instead of answering: the short wait is normal.
            await self.send("Browser.close", timeout=1.0)
        await self._ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self._http.close()
        deadline = time.monotonic() + CLOSE_GRACE
        while _exited(self.pid) is None and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(POLL_INTERVAL)


async def _connect(
    process: subprocess.Popen[bytes], workdir: Path, http: aiohttp.ClientSession, timeout: float
) -> aiohttp.ClientWebSocketResponse:
    """Wait for DevToolsActivePort (port, then the browser endpoint's path) and connect."""
    marker = workdir / "profile" / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(FileNotFoundError):
            lines = marker.read_text().split("\n")
            # Written in one go, but read it only once both lines are there.
            if len(lines) >= 2 and lines[0].isdigit() and lines[1].startswith("/devtools/"):
                break
        ended = _exited(process.pid)
        if ended is not None:
            raise BrowserError(f"chromium ended during startup ({ended})\n{_log_tail(workdir)}")
        if time.monotonic() >= deadline:
            raise BrowserError(
                f"chromium did not open its DevTools port within {timeout:g} s\n"
                f"{_log_tail(workdir)}"
            )
        await asyncio.sleep(POLL_INTERVAL)
    url = f"ws://127.0.0.1:{lines[0]}{lines[1]}"
    try:
        async with asyncio.timeout(max(1.0, deadline - time.monotonic())):
            return await http.ws_connect(url, max_msg_size=MAX_MESSAGE, autoping=False)
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise BrowserError(f"cannot connect to {url}: {exc!r}\n{_log_tail(workdir)}") from exc


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    # The leader is not reaped yet (see _exited), so its pid still names this group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    # SIGKILL cannot be ignored: the wait is milliseconds, so blocking the loop is fine,
    # and it cannot be cancelled half-way, which leaves no zombie behind.
    process.wait(timeout=10)


def _log_tail(workdir: Path) -> str:
    try:
        lines = (workdir / "chromium.log").read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no chromium log)"
    # Containers have no D-Bus: chromium logs dozens of harmless D-Bus errors that would
    # bury the line that says what went wrong.
    lines = [line for line in lines if "dbus" not in line.lower()]
    tail = "\n".join(lines[-LOG_TAIL_LINES:])
    return f"chromium log (last {LOG_TAIL_LINES} lines, D-Bus noise removed):\n{tail}"


# -------------------------------------------------------------------- fixtures


def _output_name(nodeid: str) -> str:
    """``tests/component/test_x.py::test_y[a b]`` -> ``component.test_x__test_y-a-b``:
    unique across modules, and safe to type in a shell."""
    name = nodeid.removeprefix("tests/").replace(".py::", "__").replace("::", "__")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name.replace("/", ".")).strip("-.")
    return name[:150] or "test"


@pytest.fixture
def test_output(request: pytest.FixtureRequest) -> Path:
    """A fresh directory for this test's screenshots and PDFs, kept after the run for a
    human to look at: ``<repo>/test-output/<test>/`` (base from $PBXBRIDGE_TEST_OUTPUT)."""
    base = Path(os.environ.get(OUTPUT_ENV) or REPO_ROOT / "test-output")
    directory = base / _output_name(request.node.nodeid)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A launched headless chromium. Missing, it fails the test: CI must install it."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"chromium is not installed: {INSTALL_HINT}", pytrace=False)
    async with Browser.launch() as instance:
        yield instance
