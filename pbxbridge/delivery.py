"""Delivery: pending outbox events -> POST to the backend, at least once, in order per call.

Policy (the README states it):

- 2xx: delivered. Connection errors, TLS errors, timeouts, 408, 425, 429 and 5xx:
  retried forever with full-jitter exponential backoff (base 0.5 s, cap 30 s), or after
  ``Retry-After`` (at most 60 s, for that event only) when the backend sends one (while
  the backend is down, one probe request backs off only up to ``probe_cap``, 5 s, so
  recovery is noticed quickly).
  Anything else (3xx, other 4xx): the event
  is parked (kept, logged as an error, counted) and the others go on.
- Within one call, events go strictly in ``seq`` order: a call whose earlier event is
  pending waits; other calls do not. Up to ``concurrency`` calls are in flight at once.
- Backoff is per event *and* per backend: after a failure nothing is sent until the
  backend's own backoff has passed, then a single probe; the first success after an
  outage makes every pending event due at once, so recovery does not wait for each
  event's own timer.
- Each request carries ``Idempotency-Key: <event_id>`` and the exact stored bytes; the
  signature timestamp is fresh on every attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import hmac
import random
import ssl
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import aiohttp
import structlog

from pbxbridge.backoff import full_jitter
from pbxbridge.outbox import Outbox, OutboxError, Row

log = structlog.get_logger("pbxbridge.delivery")

MAX_RESPONSE_BYTES = 64 * 1024
CONNECT_TIMEOUT_SECONDS = 2.0  # never more than the total timeout
RETRYABLE_STATUS = frozenset({408, 425, 429})
# Bounded values of the errors' ``reason`` label.
REASONS = (
    "connection",
    "timeout",
    "tls",
    "http_408",
    "http_425",
    "http_429",
    "http_5xx",
    "http_3xx",
    "http_4xx",
)


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """Built from ``[backend]`` by :func:`pbxbridge.config.delivery_settings`; the fields
    with defaults are policy, not configuration."""

    url: str | None
    token: str = field(repr=False)  # secrets never reach a log line
    signing_secret: str = field(repr=False)
    ca_file: str | None
    timeout_seconds: float
    connect_timeout_seconds: float = CONNECT_TIMEOUT_SECONDS
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    # Backend-wide probe while it is down (never longer than backoff_cap): recovery ~5 s.
    probe_cap: float = 5.0
    concurrency: int = 4
    # Fallback re-read of the outbox (picks up `pbxbridge outbox retry` from the CLI).
    poll_seconds: float = 5.0
    retry_after_max: float = 60.0


@dataclass(frozen=True, slots=True)
class DeliveryStats:
    """A read-only snapshot for metrics, taken at scrape time.

    ``delivered``: events delivered since start, by type (``call.offered`` ...).
    ``errors``: failed attempts since start, by reason (see ``REASONS``); a parked event
    counts once under ``http_3xx`` / ``http_4xx``.
    ``pending`` / ``parked``: events in the outbox (as of the last count refresh, ~1 s).
    ``oldest_pending_seconds``: age of the oldest pending event (0 when none).
    ``backend_failures``: consecutive failed attempts (0 = the backend looks healthy).
    """

    delivered: Mapping[str, int]
    errors: Mapping[str, int]
    pending: int
    parked: int
    oldest_pending_seconds: float
    backend_failures: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one attempt's result means for its event."""

    action: str  # "delivered" | "retry" | "park"
    reason: str = ""  # one of REASONS, for errors
    retry_after: float | None = None


# -- pure parts ---------------------------------------------------------------------------


def classify(status: int, retry_after: str | None = None, now: float = 0.0) -> Verdict:
    """The delivery policy for an HTTP status."""
    if 200 <= status < 300:
        return Verdict("delivered")
    if status in RETRYABLE_STATUS or 500 <= status < 600:
        reason = "http_5xx" if status >= 500 else f"http_{status}"
        return Verdict("retry", reason, parse_retry_after(retry_after, now))
    return Verdict("park", "http_3xx" if status < 400 else "http_4xx")


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After in seconds from now: delta-seconds or an HTTP date; None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def signature(secret: str, body: bytes, t: int) -> str:
    """``X-Pbxbridge-Signature`` value: ``t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>``."""
    mac = hmac.new(secret.encode(), str(t).encode() + b"." + body, hashlib.sha256)
    return f"t={t},v1={mac.hexdigest()}"


def headers(settings: DeliverySettings, row: Row, t: int) -> dict[str, str]:
    h = {"Content-Type": "application/json", "Idempotency-Key": row.event_id}
    if settings.token:
        h["Authorization"] = f"Bearer {settings.token}"
    if settings.signing_secret:
        h["X-Pbxbridge-Signature"] = signature(settings.signing_secret, row.body, t)
    return h


def ssl_context(settings: DeliverySettings) -> ssl.SSLContext:
    """Certificates are always verified; ``ca_file`` replaces the system trust store."""
    return ssl.create_default_context(cafile=settings.ca_file)


# -- the delivery task ----------------------------------------------------------------------


class Delivery:
    """Sends pending outbox events to the backend; :meth:`run` is the daemon's task."""

    def __init__(
        self,
        outbox: Outbox,
        settings: DeliverySettings,
        *,
        clock: Callable[[], float] = time.time,
        rnd: Callable[[], float] = random.random,
    ) -> None:
        self.outbox = outbox
        self.settings = settings
        self._clock = clock
        self._rnd = rnd
        self._wake = asyncio.Event()
        self._in_flight: set[str] = set()
        self._failures = 0  # consecutive failed attempts, across events
        self._down_until = 0.0
        self._store_failures = 0  # consecutive results the outbox could not write
        self._delivered: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()

    def wake(self) -> None:
        """New events are durable: look now (the OutboxSink's ``on_durable``)."""
        self._wake.set()

    def stats(self) -> DeliveryStats:
        counts = self.outbox.counts
        oldest = counts.oldest_pending_created_at
        return DeliveryStats(
            delivered=MappingProxyType(dict(self._delivered)),
            errors=MappingProxyType(dict(self._errors)),
            pending=counts.pending,
            parked=counts.parked,
            oldest_pending_seconds=0.0 if oldest is None else max(0.0, self._clock() - oldest),
            backend_failures=self._failures,
        )

    async def run(self) -> None:
        url = self.settings.url
        if url is None:
            log.warning("backend_not_configured", hint="events stay pending in the outbox")
            return
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "::1", "localhost"):
            log.warning("backend_plaintext", host=parts.hostname)
        resumed = await self.outbox.reschedule()
        if resumed:
            log.info("delivery_resumed", events=resumed)
        timeout = aiohttp.ClientTimeout(
            total=self.settings.timeout_seconds, connect=self.settings.connect_timeout_seconds
        )
        connector = aiohttp.TCPConnector(
            ssl=ssl_context(self.settings) if parts.scheme == "https" else True,
            limit=self.settings.concurrency,
        )
        async with (
            aiohttp.ClientSession(
                connector=connector, timeout=timeout, raise_for_status=False
            ) as session,
            asyncio.TaskGroup() as tg,
        ):
            while True:
                self._wake.clear()
                await self._sleep(await self._dispatch(session, tg))

    async def _dispatch(self, session: aiohttp.ClientSession, tg: asyncio.TaskGroup) -> float:
        """Start what may start now; return how long to sleep unless woken."""
        now = self._clock()
        if now < self._down_until:
            return self._down_until - now
        # While the backend fails, one probe at a time; full concurrency once it answers.
        limit = 1 if self._failures else self.settings.concurrency
        free = limit - len(self._in_flight)
        if free <= 0:
            return self.settings.poll_seconds  # a finishing attempt wakes us
        for row in await self.outbox.due(self._in_flight, free):
            self._in_flight.add(row.call_id)
            tg.create_task(self._attempt(session, row), name=f"deliver {row.event_id}")
        if len(self._in_flight) >= limit:
            return self.settings.poll_seconds
        nxt = await self.outbox.next_due(self._in_flight)
        wait = self.settings.poll_seconds
        if nxt is not None:
            wait = min(wait, max(0.0, nxt - self._clock()))
        return wait

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def _attempt(self, session: aiohttp.ClientSession, row: Row) -> None:
        try:
            verdict, status = await self._post(session, row)
            try:
                await self._record(row, verdict, status)
            except OutboxError as exc:
                # The outbox cannot write the result (disk full): the event stays
                # pending and goes again later under the same Idempotency-Key.
                self._store_failures += 1
                self._down_until = max(
                    self._down_until,
                    self._clock()
                    + full_jitter(
                        self._store_failures, base=self.settings.backoff_base,
                        cap=self.settings.probe_cap, rng=self._rnd,
                    ),
                )  # fmt: skip
                if self._store_failures == 1:
                    log.error("delivery_result_not_written", error=str(exc))
            else:
                self._store_failures = 0
        finally:
            self._in_flight.discard(row.call_id)
            self._wake.set()

    async def _post(self, session: aiohttp.ClientSession, row: Row) -> tuple[Verdict, int | None]:
        assert self.settings.url is not None
        now = self._clock()
        try:
            async with session.post(
                self.settings.url,
                data=row.body,
                headers=headers(self.settings, row, int(now)),
                allow_redirects=False,
            ) as resp:
                # The status is the answer; of the body at most 64 KiB is read (a backend
                # answering with 200 MiB must not grow pbxbridge's memory).
                await resp.content.read(MAX_RESPONSE_BYTES)
                verdict = classify(resp.status, resp.headers.get("Retry-After"), self._clock())
                return verdict, resp.status
        except (aiohttp.ClientSSLError, ssl.SSLError):
            return Verdict("retry", "tls"), None
        except TimeoutError:
            return Verdict("retry", "timeout"), None
        except (aiohttp.ClientError, OSError):
            return Verdict("retry", "connection"), None

    async def _record(self, row: Row, verdict: Verdict, status: int | None) -> None:
        now = self._clock()
        if verdict.action == "delivered":
            await self.outbox.mark_delivered(row.event_id)
            self._delivered[row.type] += 1
            log.debug("incident_delivered", event_id=row.event_id, attempts=row.attempts + 1)
            failures, self._failures, self._down_until = self._failures, 0, 0.0
            if failures:
                # The backend is back: everything waiting goes now, in order per call.
                await self.outbox.reschedule()
                log.info("backend_recovered", failed_attempts=failures)
            return
        self._errors[verdict.reason] += 1
        error = verdict.reason if status is None else f"{verdict.reason} ({status})"
        if verdict.action == "park":
            await self.outbox.park(row.event_id, error)
            log.error("incident_parked", event_id=row.event_id, type=row.type, status=status)
            return
        self._failures += 1
        s = self.settings
        if verdict.retry_after is not None:
            # Advice, bounded: it delays this event only, and the backend as a whole no
            # longer than the probe cap, so one odd reply cannot stop all delivery.
            delay = min(verdict.retry_after, s.retry_after_max)
            self._down_until = max(self._down_until, now + min(delay, s.probe_cap))
        else:
            delay = full_jitter(row.attempts, base=s.backoff_base, cap=s.backoff_cap, rng=self._rnd)
            # The backend-wide probe backs off to probe_cap only (one small request),
            # so a backend that comes back is noticed within seconds, not 30 s.
            self._down_until = max(
                self._down_until,
                now
                + full_jitter(
                    self._failures - 1,
                    base=s.backoff_base,
                    cap=min(s.probe_cap, s.backoff_cap),
                    rng=self._rnd,
                ),
            )
        await self.outbox.mark_failed(row.event_id, error, now + delay)
        log.warning(
            "delivery_failed",
            event_id=row.event_id,
            reason=verdict.reason,
            status=status,
            attempt=row.attempts + 1,
            retry_in=round(delay, 3),
        )
