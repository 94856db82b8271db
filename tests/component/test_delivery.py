"""Delivery to a real aiohttp backend on loopback from a real SQLite outbox.

Failure modes are named scenarios; each asserts what a user checks: nothing lost,
duplicates only under the same Idempotency-Key, order within a call, recovery time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import ssl
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web

from pbxbridge import incidents as inc
from pbxbridge import tracker as tr
from pbxbridge.delivery import Delivery
from pbxbridge.outbox import Outbox
from pbxbridge.outbox_sink import OutboxSink
from tests.support import settings
from tests.support.backend import Backend, free_port, make_ca, serve, verify_signature
from tests.support.calls import lifecycle, record

# Production policy scaled down so a test runs in seconds.
FAST = settings.delivery(
    None,
    timeout_seconds=2.0,
    connect_timeout_seconds=1.0,
    backoff_base=0.05,
    backoff_cap=0.5,
    poll_seconds=0.5,
)


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    async with Outbox(tmp_path / "outbox.sqlite3") as ob:
        yield ob


@asynccontextmanager
async def delivering(outbox: Outbox, url: str, **settings: object) -> AsyncIterator[Delivery]:
    delivery = Delivery(outbox, replace(FAST, url=url, **settings))  # type: ignore[arg-type]
    task = asyncio.create_task(delivery.run())
    try:
        yield delivery
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def all_delivered(outbox: Outbox, within: float) -> None:
    async with asyncio.timeout(within):
        # The state lives in SQLite: there is no in-process event to wait on.
        while (await outbox.refresh_counts()).pending:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def assert_same_bytes_per_key(backend: Backend) -> None:
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for r in backend.received:
        bodies[r.key].add(r.body)
        assert json.loads(r.body)["event_id"] == r.key
    assert all(len(b) == 1 for b in bodies.values())


def assert_in_order_per_call(backend: Backend) -> None:
    """Every request for a call's event k comes after event k-1 was accepted."""
    accepted: dict[str, set[str]] = defaultdict(set)
    for r in backend.received:
        doc = r.doc
        call_id, kind = doc["call"]["call_id"], doc["type"]
        before = inc.TYPES[: inc.TYPES.index(kind)]
        assert set(before) <= accepted[call_id], (r.key, accepted[call_id])
        if 200 <= r.status < 300:
            accepted[call_id].add(kind)


async def test_backend_down_then_up_loses_nothing(outbox: Outbox) -> None:
    """backend_down: events that arrive while the backend is down are all delivered within
    a few seconds of its recovery, in order per call, each body identical per key."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/incidents"
    backend = Backend()
    expected: list[str] = []
    async with delivering(outbox, url) as delivery:
        for n in range(8):  # calls keep flowing during a 2 s outage
            events = lifecycle(n)
            await outbox.put(*events)
            delivery.wake()
            expected += [e.event_id for e in events]
            await asyncio.sleep(0.25)
        assert delivery.stats().errors["connection"] >= 2
        assert (await outbox.refresh_counts()).pending == 24
        up = time.monotonic()
        async with serve(backend, port=port):
            await all_delivered(outbox, within=10)
            recovery = time.monotonic() - up
    assert recovery < 3.0  # probe cap 0.5 s here (min of the caps); production's is 5 s
    assert backend.accepted_keys() == set(expected)
    assert_same_bytes_per_key(backend)
    assert_in_order_per_call(backend)
    assert sum(delivery.stats().delivered.values()) == 24


async def test_backend_failing_half_the_time(outbox: Outbox) -> None:
    """backend_flaky: with 500 on half the requests everything is delivered; repeats carry
    the same Idempotency-Key and the same bytes."""
    rng = random.Random(5)

    async def flaky(request: web.Request, n: int) -> web.StreamResponse:
        return web.Response(status=500 if rng.random() < 0.5 else 201)

    backend = Backend(flaky)
    events = [e for n in range(10) for e in lifecycle(n)]
    async with serve(backend) as url, delivering(outbox, url) as delivery:
        await outbox.put(*events)
        delivery.wake()
        await all_delivered(outbox, within=20)
    assert backend.accepted_keys() == {e.event_id for e in events}
    assert len(backend.received) > len(events)  # there were retries
    assert_same_bytes_per_key(backend)
    assert_in_order_per_call(backend)
    assert delivery.stats().errors["http_5xx"] == len(backend.received) - len(events)


async def test_slow_backend_is_bounded_by_the_timeout(outbox: Outbox) -> None:
    """backend_slow: a backend slower than timeout_seconds costs one timeout, then a retry."""

    async def slow_first(request: web.Request, n: int) -> web.StreamResponse:
        if n == 0:
            await asyncio.sleep(10)
        return web.Response(status=200)

    backend = Backend(slow_first)
    event = lifecycle(1)[0]
    async with serve(backend) as url, delivering(outbox, url, timeout_seconds=0.5) as delivery:
        started = time.monotonic()
        await outbox.put(event)
        delivery.wake()
        await all_delivered(outbox, within=5)
        elapsed = time.monotonic() - started
    assert elapsed < 2.0
    assert delivery.stats().errors == {"timeout": 1}
    assert delivery.stats().delivered == {"call.offered": 1}


async def test_retry_after_is_honoured(outbox: Outbox) -> None:
    """backend_throttling: after a 429 with Retry-After: 1 the next attempt waits >= 1 s."""

    async def throttle_first(request: web.Request, n: int) -> web.StreamResponse:
        if n == 0:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.Response(status=200)

    backend = Backend(throttle_first)
    async with serve(backend) as url, delivering(outbox, url) as delivery:
        await outbox.put(*lifecycle(1))
        delivery.wake()
        await all_delivered(outbox, within=5)
    first, second = backend.received[0], backend.received[1]
    assert first.status == 429
    assert second.at - first.at >= 0.95
    assert second.key == first.key
    assert delivery.stats().errors == {"http_429": 1}


async def test_a_backend_answering_an_endless_body_is_read_64_kib_at_most(
    outbox: Outbox,
) -> None:
    """A 200 whose body never ends counts as delivered: pbxbridge reads 64 KiB of it at
    most, so a lying backend cannot grow its memory or hold delivery."""
    sent = [0]

    async def endless(request: web.Request, n: int) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            while sent[0] < 200 * 1024 * 1024:
                await response.write(b"x" * 65536)
                sent[0] += 65536
        return response

    backend = Backend(endless)
    async with serve(backend) as url, delivering(outbox, url) as delivery:
        await outbox.put(*lifecycle(1))
        delivery.wake()
        await all_delivered(outbox, within=5)
    assert sent[0] < 50 * 1024 * 1024, "the body was not read to its end"


async def test_a_huge_retry_after_cannot_stop_delivery(outbox: Outbox) -> None:
    """One 503 with Retry-After: 999999999 delays that event by at most 60 s and the
    backend by at most the probe cap: the other calls' events go on within seconds."""

    async def one_lie(request: web.Request, n: int) -> web.StreamResponse:
        if n == 0:
            return web.Response(status=503, headers={"Retry-After": "999999999"})
        return web.Response(status=200)

    backend = Backend(one_lie)
    async with serve(backend) as url, delivering(outbox, url) as delivery:
        await outbox.put(*lifecycle(1))
        delivery.wake()
        await backend.wait_for(lambda: len(backend.received) >= 1, within=5)
        await outbox.put(*lifecycle(2))
        delivery.wake()
        await all_delivered(outbox, within=8)
    assert backend.received[0].status == 503
    assert backend.accepted_keys() == {e.event_id for n in (1, 2) for e in lifecycle(n)}
    assert backend.received[-1].at - backend.received[0].at < 7.0


async def test_a_poison_record_is_parked_while_others_flow(outbox: Outbox) -> None:
    """backend_rejects_one: a 400 parks that event (kept, counted); all others are delivered."""
    poison = lifecycle(3)[1].event_id

    async def reject_one(request: web.Request, n: int) -> web.StreamResponse:
        bad = request.headers["Idempotency-Key"] == poison
        return web.Response(status=400 if bad else 200)

    backend = Backend(reject_one)
    events = [e for n in range(6) for e in lifecycle(n)]
    async with serve(backend) as url, delivering(outbox, url) as delivery:
        await outbox.put(*events)
        delivery.wake()
        await all_delivered(outbox, within=10)
        await outbox.refresh_counts()
        stats = delivery.stats()
    assert backend.accepted_keys() == {e.event_id for e in events} - {poison}
    assert [r.key for r in backend.received].count(poison) == 1
    assert stats.parked == 1 and stats.errors == {"http_4xx": 1}
    parked = await outbox.rows("parked")
    assert [(r.event_id, r.last_error) for r in parked] == [(poison, "http_4xx (400)")]


async def test_events_of_one_call_are_delivered_in_order(outbox: Outbox) -> None:
    """Several calls go in parallel, but within a call each event waits for the previous."""
    rng = random.Random(7)

    async def jittery(request: web.Request, n: int) -> web.StreamResponse:
        await asyncio.sleep(rng.random() * 0.02)
        return web.Response(status=503 if rng.random() < 0.2 else 200)

    backend = Backend(jittery)
    events = [e for n in range(20) for e in lifecycle(n)]
    async with serve(backend) as url, delivering(outbox, url, concurrency=4) as delivery:
        for e in events:  # interleaved arrival, as from a busy pipeline
            outbox.submit([e])
        delivery.wake()
        await outbox.flush()
        await all_delivered(outbox, within=20)
    assert backend.accepted_keys() == {e.event_id for e in events}
    assert_in_order_per_call(backend)


async def test_new_events_are_sent_at_once_not_on_the_next_poll(outbox: Outbox) -> None:
    """A committed event wakes delivery immediately (poll interval 30 s here)."""
    backend = Backend()
    async with serve(backend) as url, delivering(outbox, url, poll_seconds=30.0) as delivery:
        sink = OutboxSink(outbox, on_durable=delivery.wake)
        task = asyncio.create_task(sink.run())
        await asyncio.sleep(0.2)  # delivery is idle, sleeping on its poll
        started = time.monotonic()
        sink.apply([tr.CallOffered(record(1))])
        await backend.wait_for(lambda: bool(backend.accepted()), within=2)
        assert time.monotonic() - started < 1.0
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_pending_events_are_resumed_on_start(tmp_path: Path) -> None:
    """Events left pending by a previous run (with a backoff pending) are sent on start."""
    path = tmp_path / "o.sqlite3"
    async with Outbox(path) as first:
        events = lifecycle(1)
        await first.put(*events)
        await first.mark_failed(events[0].event_id, "timeout", time.time() + 3600)
    backend = Backend()
    async with Outbox(path) as outbox, serve(backend) as url, delivering(outbox, url):
        await all_delivered(outbox, within=5)
    assert [r.key for r in backend.received] == [e.event_id for e in events]


async def test_token_and_signature_are_sent_and_verifiable(outbox: Outbox) -> None:
    """The receiver sees the bearer token, and recomputing HMAC-SHA256("t.body") matches."""
    backend = Backend()
    async with (
        serve(backend) as url,
        delivering(outbox, url, token="tok-123", signing_secret="s3cret") as delivery,
    ):
        event = lifecycle(1)[0]
        await outbox.put(event)
        delivery.wake()
        await all_delivered(outbox, within=5)
    (got,) = backend.received
    assert got.headers["Authorization"] == "Bearer tok-123"
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["Idempotency-Key"] == event.event_id
    assert got.body == event.body
    assert verify_signature("s3cret", got.headers["X-Pbxbridge-Signature"], got.body, time.time())
    assert not verify_signature(
        "wrong", got.headers["X-Pbxbridge-Signature"], got.body, time.time()
    )
    assert "s3cret" not in repr(delivery.settings) and "tok-123" not in repr(delivery.settings)


async def test_no_token_no_authorization_header(outbox: Outbox) -> None:
    """Without a token or a signing secret, neither header is sent."""
    backend = Backend()
    async with serve(backend) as url, delivering(outbox, url) as delivery:
        await outbox.put(lifecycle(1)[0])
        delivery.wake()
        await all_delivered(outbox, within=5)
    assert "Authorization" not in backend.received[0].headers
    assert "X-Pbxbridge-Signature" not in backend.received[0].headers


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ssl.SSLContext]]:
    ca, cert, key = make_ca(tmp_path_factory.mktemp("tls"))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    yield ca, server


async def test_tls_with_a_custom_ca_is_accepted(
    outbox: Outbox, tls: tuple[Path, ssl.SSLContext]
) -> None:
    """An HTTPS backend whose certificate chains to ca_file receives the events."""
    ca, server = tls
    backend = Backend()
    async with (
        serve(backend, ssl_context=server) as url,
        delivering(outbox, url, ca_file=str(ca)) as delivery,
    ):
        assert url.startswith("https://")
        await outbox.put(*lifecycle(1))
        delivery.wake()
        await all_delivered(outbox, within=5)
    assert len(backend.accepted()) == 3


async def test_tls_without_the_ca_is_refused(
    outbox: Outbox, tls: tuple[Path, ssl.SSLContext]
) -> None:
    """Without ca_file the self-signed chain is refused: nothing sent, the event stays pending."""
    _, server = tls
    backend = Backend()
    async with serve(backend, ssl_context=server) as url, delivering(outbox, url) as delivery:
        await outbox.put(lifecycle(1)[0])
        delivery.wake()
        async with asyncio.timeout(5):
            while delivery.stats().errors.get("tls", 0) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    assert backend.count == 0
    assert (await outbox.refresh_counts()).pending == 1


async def test_without_a_url_events_stay_pending(outbox: Outbox) -> None:
    """With no [backend] url delivery does not run and the outbox keeps every event."""
    delivery = Delivery(outbox, FAST)
    async with asyncio.timeout(2):
        await delivery.run()
    await outbox.put(*lifecycle(1))
    assert (await outbox.refresh_counts()).pending == 3
    assert delivery.stats().pending == 3
