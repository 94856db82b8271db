"""The composition root: every component is built here and nowhere else.

Each resource is paired with its cleanup (AsyncExitStack); every long-running task
lives in one TaskGroup, so a crashed task ends the process (systemd restarts it)
instead of leaving a half-dead daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from pbxbridge import ami, http
from pbxbridge import tracker as tr
from pbxbridge.config import Config
from pbxbridge.metrics import Metrics
from pbxbridge.pipeline import Item, Pipeline, Tick

log = structlog.get_logger("pbxbridge.app")

TICK_SECONDS = 30.0


def ami_settings(config: Config) -> ami.AmiSettings:
    c = config.ami
    return ami.AmiSettings(
        host=c.host,
        port=c.port,
        username=c.username,
        secret=c.secret,
        ping_interval=c.ping_interval_seconds,
        ping_timeout=c.ping_timeout_seconds,
    )


def tracker_settings(config: Config) -> tr.TrackerSettings:
    return tr.TrackerSettings(
        pbx_name=config.pbx.name,
        emergency_queues=frozenset(config.emergency.queues),
        default_service=config.emergency.service,
        max_call_seconds=config.emergency.max_call_seconds,
    )


async def _ticker(queue: asyncio.Queue[Item]) -> None:
    while True:
        await asyncio.sleep(TICK_SECONDS)
        queue.put_nowait(Tick(time.time()))


async def run(config: Config, shutdown: asyncio.Event) -> int:
    """Run the daemon until ``shutdown`` is set. Returns the process exit code."""
    queue: asyncio.Queue[Item] = asyncio.Queue()
    tracker = tr.Tracker(tracker_settings(config))
    metrics = Metrics(service=config.emergency.service, queues=config.emergency.queues)
    pipeline = Pipeline(tracker, [metrics], observe_lag=metrics.observe_event_lag)
    client = ami.AmiClient(ami_settings(config), queue)  # type: ignore[arg-type]
    metrics.watch_calls(tracker)
    metrics.watch_members(pipeline.members.counts)
    metrics.watch_ami(lambda: client.state)
    metrics.watch_pipeline(lambda: pipeline.stats, queue.qsize)
    heartbeat = http.Heartbeat()
    web_app = http.build_app(
        render_metrics=metrics.render,
        components=[("ami", http.ami_component(lambda: client.state))],
        heartbeat=heartbeat,
    )
    log.info("pbxbridge_starting", pbx=config.pbx.name, ami=f"{config.ami.host}:{config.ami.port}")

    async def stop_on_shutdown() -> None:
        await shutdown.wait()
        await client.close()
        raise _Stop

    async with contextlib.AsyncExitStack() as stack:
        # HTTP first: /health and /ready must answer while Asterisk is down.
        try:
            await stack.enter_async_context(
                http.serving(web_app, config.metrics.host, config.metrics.port)
            )
        except OSError as exc:
            log.error("http_listen_failed", listen=config.metrics.listen, error=str(exc))
            return 1
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(heartbeat.run(), name="heartbeat")
                tg.create_task(client.run(), name="ami")
                tg.create_task(pipeline.run(queue), name="pipeline")
                tg.create_task(_ticker(queue), name="ticker")
                tg.create_task(stop_on_shutdown(), name="shutdown")
        except* _Stop:
            pass
        # Whatever was already received is still handled before exit.
        while not queue.empty():
            pipeline.handle(queue.get_nowait())
    log.info("pbxbridge_stopped")
    return 0


class _Stop(Exception):
    """Raised inside the TaskGroup to cancel its siblings on a requested shutdown."""
