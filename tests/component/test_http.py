"""/metrics, /health and /ready served by a real aiohttp server on a loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from pbxbridge import http
from pbxbridge import tracker as tr
from pbxbridge.ami import AmiState
from pbxbridge.metrics import Metrics
from tests.support import settings

SECRET = "s3cret-never-shown"


def ami_state(
    *, logged_in: bool, connected: bool | None = None, error: str | None = None
) -> AmiState:
    return AmiState(
        connected=logged_in if connected is None else connected,
        logged_in=logged_in,
        last_error=error,
        login_failures=1 if error else 0,
        reconnects=0,
        events_received=0,
        decode_errors=0,
        malformed_lines=0,
        bytes_received=0,
        connected_since=None,
        banner=None,
    )


@asynccontextmanager
async def served(
    state: Callable[[], AmiState],
    heartbeat: http.Heartbeat | None = None,
    extra: list[http.ComponentCheck] | None = None,
) -> AsyncIterator[tuple[str, Metrics]]:
    metrics = Metrics(service="112", queues=("calltakers",))
    metrics.watch_calls(tr.Tracker(settings.tracker("lab")))
    metrics.watch_ami(state)
    beat = heartbeat or http.Heartbeat(interval=0.05)
    app = http.build_app(
        render_metrics=metrics.render,
        components=[("ami", http.ami_component(state)), *(extra or [])],
        heartbeat=beat,
    )
    task = asyncio.create_task(beat.run())
    try:
        async with http.serving(app, "127.0.0.1", 0) as (host, port):
            yield f"http://{host}:{port}", metrics
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, resp.headers["Content-Type"], await resp.text()


async def get_json(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.json()


async def test_metrics_are_served_in_the_prometheus_text_format() -> None:
    """/metrics answers 200 with the Prometheus text content type and the registry's series."""
    async with served(lambda: ami_state(logged_in=True)) as (base, _):
        status, content_type, body = await get(f"{base}/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=")
    assert "charset=utf-8" in content_type
    assert 'pbxbridge_calls_offered_total{service="112"} 0.0' in body
    assert "pbxbridge_ami_up 1.0" in body
    assert 'pbxbridge_calls_in_progress{service="112",state="waiting"} 0.0' in body


async def test_health_is_200_while_the_loop_is_responsive() -> None:
    """/health answers 200 with the measured loop lag while the heartbeat beats."""
    async with served(lambda: ami_state(logged_in=False, error="connect failed")) as (base, _):
        await asyncio.sleep(0.15)
        status, body = await get_json(f"{base}/health")
    assert status == 200
    assert body["status"] == "ok"
    assert 0 <= body["loop_lag_seconds"] < 1


async def test_health_is_503_when_the_heartbeat_stopped() -> None:
    """A heartbeat that has not beaten for longer than stale_after makes /health 503."""
    now = [100.0]
    # An interval of an hour: this heartbeat never beats during the test.
    beat = http.Heartbeat(interval=3600, stale_after=5.0, clock=lambda: now[0])
    async with served(lambda: ami_state(logged_in=True), heartbeat=beat) as (base, _):
        status, _ = await get_json(f"{base}/health")
        assert status == 200
        now[0] += 6.0
        status, body = await get_json(f"{base}/health")
    assert status == 503
    assert body["status"] == "stalled"


async def test_ready_is_503_naming_the_ami_state_until_logged_in() -> None:
    """/ready is 503 with the AMI's reason while not logged in, 200 once it is."""
    current = [ami_state(logged_in=False, error="login failed: Authentication failed")]
    async with served(lambda: current[0]) as (base, _):
        status, body = await get_json(f"{base}/ready")
        assert status == 503
        reason = "login failed: Authentication failed"
        assert body == {
            "ready": False,
            "degraded": [],
            "components": {"ami": {"ok": False, "state": reason, "degraded": False}},
        }
        current[0] = ami_state(logged_in=False, connected=True)
        status, body = await get_json(f"{base}/ready")
        assert (status, body["components"]["ami"]["state"]) == (503, "connected, logging in")
        current[0] = ami_state(logged_in=True)
        status, body = await get_json(f"{base}/ready")
        assert status == 200
        assert body["ready"] is True
        assert body["components"] == {"ami": {"ok": True, "state": "logged in", "degraded": False}}


async def test_ready_needs_every_component_and_survives_a_broken_check() -> None:
    """One component not ready (or whose check raises) makes /ready 503 and is named."""

    def broken() -> http.Component:
        raise RuntimeError(SECRET)

    extra: list[http.ComponentCheck] = [
        ("outbox", lambda: http.Component(False, "disk full")),
        ("other", broken),
    ]
    async with served(lambda: ami_state(logged_in=True), extra=extra) as (base, _):
        status, body = await get_json(f"{base}/ready")
        _, _, text = await get(f"{base}/ready")
    assert status == 503
    assert body["components"]["ami"]["ok"] is True
    assert body["components"]["outbox"] == {"ok": False, "state": "disk full", "degraded": False}
    assert body["components"]["other"] == {
        "ok": False,
        "state": "check failed: RuntimeError",
        "degraded": False,
    }
    assert SECRET not in text


async def test_an_unknown_path_is_404() -> None:
    """Only the three endpoints exist."""
    async with served(lambda: ami_state(logged_in=True)) as (base, _):
        status, _, _ = await get(f"{base}/config")
    assert status == 404
