"""The composition root: every component is built here and nowhere else.

Each resource is paired with its cleanup (AsyncExitStack); every long-running task
lives in one TaskGroup, so a crashed task ends the process (systemd restarts it)
instead of leaving a half-dead daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import structlog
from aiohttp import web

from pbxbridge import access, ami, callback_api, http, report, store_api, systemd, wallboard_api
from pbxbridge import callbacks as cb
from pbxbridge import config as cfg
from pbxbridge import events as ev
from pbxbridge import tracker as tr
from pbxbridge.ami_translate import Translator
from pbxbridge.callback_store import CallbackStore
from pbxbridge.config import Config
from pbxbridge.delivery import Delivery
from pbxbridge.http_limits import ConnectionStats
from pbxbridge.local_schema import SchemaError
from pbxbridge.metrics import Metrics
from pbxbridge.outbox import Outbox, OutboxError
from pbxbridge.outbox_sink import OutboxSink
from pbxbridge.pipeline import Item, Pipeline, Tick
from pbxbridge.store_policy import StoreHealth, WritePolicy
from pbxbridge.store_read import Target
from pbxbridge.store_replica import Replica
from pbxbridge.store_sql import StoreUnavailable
from pbxbridge.wallboard import Wallboard

log = structlog.get_logger("pbxbridge.app")

TICK_SECONDS = 30.0
DRAIN_SECONDS = 5.0  # bounded: systemd's TimeoutStopSec is longer
CALLBACKS_FILE = "callbacks.sqlite3"


async def _ticker(queue: asyncio.Queue[Item]) -> None:
    while True:
        await asyncio.sleep(TICK_SECONDS)
        queue.put_nowait(Tick(time.time()))


async def run(config: Config, shutdown: asyncio.Event) -> int:
    """Run the daemon until ``shutdown`` is set. Returns the process exit code."""
    log.info("pbxbridge_starting", pbx=config.pbx.name, ami=f"{config.ami.host}:{config.ami.port}")
    async with contextlib.AsyncExitStack() as stack:
        try:
            outbox = await stack.enter_async_context(
                Outbox(config.outbox.path, retention_seconds=config.outbox.retention_hours * 3600)
            )
            open_calls = await outbox.open_calls()
            instance = socket.gethostname()
            crashed_at = await outbox.unended_session(instance)
        except (OutboxError, SchemaError, OSError) as exc:
            log.error("state_unavailable", path=config.outbox.path, error=str(exc))
            return 1
        store, store_error = _callback_store(Path(config.outbox.path).with_name(CALLBACKS_FILE))
        if store is not None:
            stack.callback(store.close)

        queue: asyncio.Queue[Item] = asyncio.Queue()
        tracker = tr.Tracker(cfg.tracker_settings(config))
        # Calls announced before a restart: held as of their last announced state
        # until the first snapshot says what Asterisk has now.
        tracker.restore(call.record for call in open_calls)
        if crashed_at is not None:
            # The last run never closed its AMI session: the store's sessions say from
            # when (its last heartbeat) nobody watched, through the one path.
            queue.put_nowait(ev.AmiDisconnected(crashed_at, "pbxbridge stopped unexpectedly"))
        e = config.emergency
        metrics = Metrics(
            service=e.service,
            queues=e.queues,
            categories=e.categories,
            agencies=e.agencies.values(),
        )
        delivery = Delivery(outbox, cfg.delivery_settings(config))
        replica = (
            None
            if config.store.url is None
            else Replica(outbox, config.store.url, retention_seconds=config.store.retention_seconds)
        )

        def durable() -> None:
            delivery.wake()
            if replica is not None:
                replica.wake()

        outbox_sink = OutboxSink(
            outbox,
            instance=instance,
            store_retention_seconds=config.store.retention_seconds,
            replicated_only=replica is not None,
            on_durable=durable,
        )
        book = cb.CallbackBook(store.load() if store is not None else ())
        board = wallboard_api.Streams(Wallboard(config.pbx.zone))
        try:
            await asyncio.to_thread(
                wallboard_api.seed,
                board.board,
                Target(config.outbox.path, config.store.url),
                time.time(),
                book.pending(),
            )
        except StoreUnavailable as exc:
            log.warning("wallboard_not_seeded", error=str(exc))
        # Durable first: the outbox sees every effect before anything else does.
        pipeline = Pipeline(
            tracker,
            book=book,
            sinks=[outbox_sink, *([store] if store is not None else []), metrics, board],
        )
        translator = Translator(observe_lag=metrics.observe_event_lag, warn=_ami_warning)
        client = ami.AmiClient(cfg.ami_settings(config), queue.put_nowait, translator=translator)
        metrics.watch_calls(tracker)
        metrics.watch_members(pipeline.members.counts)
        metrics.watch_ami(lambda: client.state, lambda: translator.stats.malformed_lines)
        metrics.watch_pipeline(pipeline.stats, translator.stats, queue.qsize)
        metrics.watch_callbacks(pipeline.book.pending)
        metrics.watch_wallboard(board.stats)
        metrics.watch_delivery(delivery.stats)
        unpersisted = StoreHealth(False, store_error, 0, 0)
        metrics.watch_stores(
            [
                ("outbox", lambda: outbox.policy.health),
                ("callbacks", lambda: store.policy.health if store is not None else unpersisted),
                *([("regional", replica.stats.health)] if replica is not None else []),
            ]
        )
        if replica is not None:
            metrics.watch_regional_store(lambda: replica.stats)
        tcp_connections, socket_connections = ConnectionStats(), ConnectionStats()
        api_connections = ConnectionStats()
        metrics.watch_listeners(
            [("tcp", tcp_connections), ("socket", socket_connections), ("api", api_connections)]
        )
        heartbeat = http.Heartbeat()
        web_app = http.build_app(
            render_metrics=metrics.render,
            components=[
                ("ami", http.ami_component(lambda: client.state)),
                (
                    "outbox",
                    lambda: _store_component(outbox.policy, f"{outbox.counts.pending} pending"),
                ),
                ("callbacks", _callbacks_component(store, store_error)),
                *([("regional_store", _regional_component(replica))] if replica else []),
                ("api_socket", lambda: local_api),
            ],
            heartbeat=heartbeat,
        )
        # The read API: on the metrics listener, unless [api] listen names its own.
        api_host, api_port = config.api.host_port or (config.metrics.host, config.metrics.port)
        api_app = web_app if config.api.listen is None else web.Application()
        api_app.middlewares.append(
            access.guard(
                token=config.api.token,
                hosts=access.allowed_hosts(api_host, api_port, config.api.allowed_hosts),
            )
        )
        api_app.add_routes([callback_api.listing(pipeline.book)])
        api_app.add_routes(wallboard_api.routes(board, config.report.language))
        api_app.add_routes(
            store_api.routes(
                Target(config.outbox.path, config.store.url),
                report.center_of(config),
                config.report.language,
            )
        )
        local_app = web.Application()
        local_app.add_routes(
            [callback_api.listing(pipeline.book), callback_api.claiming(queue.put_nowait)]
        )
        # The call takers' socket: a failure to serve it costs the callback feature code,
        # never the measurement of calls.
        try:
            await stack.enter_async_context(
                http.serving_unix(
                    local_app, config.api.socket, config.api.socket_group, socket_connections
                )
            )
            local_api = http.Component(True, config.api.socket)
        except (OSError, KeyError) as exc:
            reason = (
                f"no such group {config.api.socket_group!r}"
                if isinstance(exc, KeyError)
                else str(exc)
            )
            log.error("api_socket_failed", path=config.api.socket, error=reason)
            local_api = http.Component(True, f"not served: {reason}", degraded=True)
        # HTTP before AMI: /health and /ready must answer while Asterisk is down.
        try:
            await stack.enter_async_context(
                http.serving(web_app, config.metrics.host, config.metrics.port, tcp_connections)
            )
            if api_app is not web_app:
                await stack.enter_async_context(
                    http.serving(api_app, api_host, api_port, api_connections)
                )
        except OSError as exc:
            log.error("http_listen_failed", listen=config.metrics.listen, error=str(exc))
            return 1
        # READY once the local parts are up, not after the first AMI login: an Asterisk
        # outage must not make systemd restart us in a loop.
        systemd.ready()

        async def stop_on_shutdown() -> None:
            await shutdown.wait()
            systemd.stopping()
            await client.close()
            raise _Stop

        async def status() -> None:
            while True:
                s = client.state
                stats = delivery.stats()
                systemd.status(
                    f"AMI {'up' if s.logged_in else 'down: ' + (s.last_error or 'connecting')}; "
                    f"{len(tracker.active())} calls; outbox {stats.pending} pending, "
                    f"{stats.parked} parked"
                )
                await asyncio.sleep(5)

        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(heartbeat.run(), name="heartbeat")
                tg.create_task(outbox_sink.run(), name="outbox")
                tg.create_task(delivery.run(), name="delivery")
                if replica is not None:
                    tg.create_task(replica.run(), name="regional_store")
                tg.create_task(client.run(), name="ami")
                tg.create_task(pipeline.run(queue), name="pipeline")
                tg.create_task(_ticker(queue), name="ticker")
                tg.create_task(systemd.watchdog_loop(), name="watchdog")
                tg.create_task(status(), name="status")
                tg.create_task(stop_on_shutdown(), name="shutdown")
        except* _Stop:
            pass
        # Whatever was already received is still handled and made durable before exit.
        while not queue.empty():
            pipeline.handle(queue.get_nowait())
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                await outbox_sink.flush()
        except TimeoutError:
            log.error("outbox_flush_timeout", seconds=DRAIN_SECONDS)
    log.info("pbxbridge_stopped")
    return 0


def _callback_store(path: Path) -> tuple[CallbackStore | None, str | None]:
    """The callback list's file, or None and why: a bad callback file must not stop call
    tracking and delivery. The list then lives in memory only (still served to the
    call takers, lost on restart) and /ready says it is degraded."""
    try:
        return CallbackStore(path), None
    except (sqlite3.Error, OSError) as exc:
        log.error(
            "callbacks_not_persisted",
            path=str(path),
            error=f"{type(exc).__name__}: {exc}",
            hint="move the file aside (pbxbridge recreates it) or restore it from a backup",
        )
        return None, f"{type(exc).__name__}: {exc}"


def _store_component(policy: WritePolicy, state: str) -> http.Component:
    h = policy.health
    if h.writable:
        return http.Component(True, state)
    return http.Component(False, f"not writable ({h.reason}); {h.unwritten} held in memory")


def _callbacks_component(
    store: CallbackStore | None, error: str | None
) -> Callable[[], http.Component]:
    def check() -> http.Component:
        if store is None:
            return http.Component(True, f"in memory only: {error}", degraded=True)
        h = store.policy.health
        if h.writable:
            return http.Component(True, "persisted")
        return http.Component(True, f"not writable ({h.reason})", degraded=True)

    return check


def _regional_component(replica: Replica) -> Callable[[], http.Component]:
    """PostgreSQL down is degraded, not unready: calls are still tracked, delivered and
    kept in the local file; only the regional copy waits."""

    def check() -> http.Component:
        s = replica.stats
        if s.reachable:
            return http.Component(True, f"{replica.where}: {s.waiting} rows waiting")
        return http.Component(
            True, f"{replica.where}: {s.reason}; {s.waiting} rows waiting", degraded=True
        )

    return check


def _ami_warning(what: str, ami_event: str) -> None:
    if what == "ami_events_without_timestamp":
        log.warning(
            what,
            ami_event=ami_event,
            hint="set timestampevents = yes in manager.conf [general]; using receive time instead",
        )
    else:
        log.warning(what, ami_event=ami_event)


class _Stop(Exception):
    """Raised inside the TaskGroup to cancel its siblings on a requested shutdown."""
