"""The HTTP face of the daemon: ``/metrics``, ``/health`` and ``/ready`` (aiohttp).

Bound to loopback by default (``[metrics] listen``). Started before the AMI client, so
``/health`` answers during an Asterisk outage while ``/ready`` says what is missing.

* ``/health``: the process is alive and its event loop responsive. A heartbeat task
  measures how late the loop wakes it; a heartbeat that stopped beating is a 503.
* ``/ready``: every component is ready (AMI logged in; later the outbox writable). A
  component is a name and a function returning its :class:`Component` state, so adding
  one is one more entry in the list.
* ``/metrics``: rendered in the handler, on the event loop, never in a thread: the
  collectors read the tracker, which only the loop's pipeline task mutates.

No response carries configuration, so the AMI secret can't leak through here.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST

from pbxbridge.ami import AmiState
from pbxbridge.http_limits import ConnectionStats, limited

log = structlog.get_logger("pbxbridge.http")


@dataclass(frozen=True, slots=True)
class Component:
    ok: bool  # False: not ready (503)
    state: str
    degraded: bool = False  # ready, but working without something (said in the body)


ComponentCheck = tuple[str, Callable[[], Component]]


def ami_component(state: Callable[[], AmiState]) -> Callable[[], Component]:
    """AMI is ready when logged in; otherwise its state says why not."""

    def check() -> Component:
        s = state()
        if s.logged_in:
            return Component(True, "logged in")
        if s.connected:
            return Component(False, "connected, logging in")
        return Component(False, s.last_error or "not connected yet")

    return check


class Heartbeat:
    """Wakes every ``interval`` seconds and records how late the loop woke it."""

    def __init__(
        self,
        interval: float = 0.5,
        stale_after: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.stale_after = stale_after
        self._clock = clock
        self.last_beat = clock()
        self.lag_seconds = 0.0

    async def run(self) -> None:
        while True:
            start = self._clock()
            await asyncio.sleep(self.interval)
            self.last_beat = self._clock()
            self.lag_seconds = max(0.0, self.last_beat - start - self.interval)

    def status(self) -> tuple[bool, dict[str, Any]]:
        since = self._clock() - self.last_beat
        ok = since <= self.stale_after
        return ok, {
            "status": "ok" if ok else "stalled",
            "loop_lag_seconds": round(self.lag_seconds, 6),
            "last_heartbeat_seconds_ago": round(since, 3),
        }


def build_app(
    *,
    render_metrics: Callable[[], bytes],
    components: Sequence[ComponentCheck],
    heartbeat: Heartbeat,
    middlewares: Sequence[Middleware] = (),
) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=render_metrics(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(_: web.Request) -> web.Response:
        ok, body = heartbeat.status()
        return web.json_response(body, status=200 if ok else 503)

    async def ready(_: web.Request) -> web.Response:
        states = {name: _checked(check) for name, check in components}
        is_ready = all(c.ok for c in states.values())
        body = {
            "ready": is_ready,
            "degraded": sorted(n for n, c in states.items() if c.degraded),
            "components": {
                n: {"ok": c.ok, "state": c.state, "degraded": c.degraded} for n, c in states.items()
            },
        }
        return web.json_response(body, status=200 if is_ready else 503)

    app = web.Application(middlewares=list(middlewares))
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    return app


def _checked(check: Callable[[], Component]) -> Component:
    try:
        return check()
    except Exception as exc:
        # A broken check must make the service not ready, not break the endpoint.
        log.exception("ready_check_failed")
        return Component(False, f"check failed: {type(exc).__name__}")


# Bounds on every listener (http_limits): Prometheus, a few readers and the call
# takers' phones need a handful of connections, never hundreds.
MAX_CONNECTIONS = 64
HEADER_SECONDS = 5.0


@contextlib.asynccontextmanager
async def serving(
    app: web.Application, host: str, port: int, stats: ConnectionStats | None = None
) -> AsyncIterator[tuple[str, int]]:
    """Serve ``app`` on host:port (0: any free port) until the block exits; yields the
    bound address."""
    async with _serving(app, stats, host=host, port=port) as server:
        bound = server.sockets[0].getsockname()
        address = (str(bound[0]), int(bound[1]))
        log.info("http_listening", host=address[0], port=address[1])
        yield address


@contextlib.asynccontextmanager
async def serving_unix(
    app: web.Application, path: str, group: str, stats: ConnectionStats | None = None
) -> AsyncIterator[str]:
    """Serve ``app`` on a unix socket at ``path``, mode 0660 and owned by ``group``, so
    only that group's processes (Asterisk's AGI scripts) and root may connect; a web
    page or another local user cannot. Raises OSError or KeyError (no such group)."""
    _clear_socket(path, make_parent=True)
    gid = grp.getgrnam(group).gr_gid
    try:
        async with _serving(app, stats, path=path):
            os.chown(path, -1, gid)
            os.chmod(path, 0o660)
            log.info("api_socket_listening", path=path, group=group)
            yield path
    finally:
        _clear_socket(path)


@contextlib.asynccontextmanager
async def _serving(
    app: web.Application,
    stats: ConnectionStats | None,
    *,
    host: str | None = None,
    port: int | None = None,
    path: str | None = None,
) -> AsyncIterator[asyncio.Server]:
    # No access log: it would log every Prometheus scrape.
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=HEADER_SECONDS)
    await runner.setup()
    assert runner.server is not None
    factory = limited(
        runner.server,
        stats if stats is not None else ConnectionStats(),
        max_connections=MAX_CONNECTIONS,
        header_seconds=HEADER_SECONDS,
    )
    loop = asyncio.get_running_loop()
    try:
        if path is not None:
            server = await loop.create_unix_server(factory, path)
        else:
            assert port is not None
            server = await loop.create_server(factory, host, port, reuse_address=True)
        try:
            yield server
        finally:
            server.close()
    finally:
        await runner.cleanup()


def _clear_socket(path: str, *, make_parent: bool = False) -> None:
    """Remove a socket left at ``path`` (by a killed run, or ours on exit)."""
    socket_path = Path(path)
    if make_parent:
        socket_path.parent.mkdir(parents=True, exist_ok=True)
    if socket_path.is_socket():
        socket_path.unlink()
