"""The collectors behind pbxbridge's "what is true now" metrics: each reads a snapshot
(the tracker, the member board, the AMI client's state, delivery's stats) at scrape
time, so nothing on the event path sets a gauge. Declared by :mod:`pbxbridge.metrics`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from pbxbridge import callbacks as cb
from pbxbridge import tracker as tr
from pbxbridge.ami import AmiState
from pbxbridge.ami_translate import TranslationStats
from pbxbridge.delivery import REASONS as DELIVERY_REASONS
from pbxbridge.delivery import DeliveryStats
from pbxbridge.http_limits import ConnectionStats
from pbxbridge.incidents import TYPES as INCIDENT_TYPES
from pbxbridge.members import STATUSES
from pbxbridge.pipeline import PipelineStats
from pbxbridge.store_policy import StoreHealth
from pbxbridge.store_replica import ReplicaStats

# tracker.State -> the `state` label of pbxbridge_calls_in_progress. The issue names
# waiting|ringing|talking; `arriving` (greeting or IVR, before any queue) and
# `left_queue` (the last queue timed out, the PBX is giving up) are kept apart rather
# than folded into `waiting`, which means "in a queue".
IN_PROGRESS_STATES: dict[tr.State, str] = {
    tr.State.ARRIVING: "arriving",
    tr.State.WAITING: "waiting",
    tr.State.RINGING: "ringing",
    tr.State.TALKING: "talking",
    tr.State.LEFT_QUEUE: "left_queue",
    # Not seen since an AMI gap or a restart, until the next snapshot (seconds).
    tr.State.UNKNOWN: "unknown",
}
NOT_ANSWERED = frozenset(tr.UNANSWERED)


class LiveCalls(Collector):
    """Calls in progress and the oldest waiting caller, from ``tracker.active()``."""

    def __init__(self, tracker: tr.Tracker, service: str, clock: Callable[[], float]) -> None:
        self._tracker = tracker
        self._service = service
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        active = self._tracker.active()
        services = sorted({self._service} | {rec.service for rec, _ in active})
        counts = {(s, label): 0 for s in services for label in IN_PROGRESS_STATES.values()}
        oldest = dict.fromkeys(services, 0.0)
        for rec, state in active:
            label = IN_PROGRESS_STATES.get(state)
            if label is not None:
                counts[(rec.service, label)] += 1
            if state in NOT_ANSWERED:
                # From arrival (the caller's clock), not from queue entry.
                oldest[rec.service] = max(oldest[rec.service], now - rec.offered_at)
        in_progress = GaugeMetricFamily(
            "pbxbridge_calls_in_progress",
            "Emergency calls in progress by state "
            "(arriving: greeting before any queue; left_queue: the last queue timed out).",
            labels=["service", "state"],
        )
        for (service, label), n in counts.items():
            in_progress.add_metric([service, label], n)
        yield in_progress
        waiting = GaugeMetricFamily(
            "pbxbridge_oldest_waiting_call_seconds",
            "Time since arrival of the longest-waiting unanswered call (0 when none).",
            labels=["service"],
        )
        for service, seconds in oldest.items():
            waiting.add_metric([service], round(seconds, 3))
        yield waiting
        yield GaugeMetricFamily(
            "pbxbridge_tracker_open_calls",
            "Calls (emergency or candidate) the tracker currently holds in memory.",
            value=self._tracker.open_call_count(),
        )


class QueueMembers(Collector):
    def __init__(
        self, counts: Callable[[], dict[tuple[str, str], int]], queues: tuple[str, ...]
    ) -> None:
        self._counts = counts
        self._queues = queues

    def collect(self) -> Iterator[Metric]:
        counts = {(q, s): 0 for q in self._queues for s in STATUSES} | self._counts()
        family = GaugeMetricFamily(
            "pbxbridge_queue_members",
            "Queue members by status (available, in_call, paused, unavailable).",
            labels=["queue", "status"],
        )
        for (queue, status), n in sorted(counts.items()):
            family.add_metric([queue, status], n)
        yield family


class AmiSession(Collector):
    def __init__(self, state: Callable[[], AmiState], event_lines: Callable[[], int]) -> None:
        self._state = state
        self._malformed_in_events = event_lines

    def collect(self) -> Iterator[Metric]:
        s = self._state()
        yield GaugeMetricFamily(
            "pbxbridge_ami_up", "1 when the AMI session is logged in.", value=int(s.logged_in)
        )
        yield _counter(
            "pbxbridge_ami_reconnects", "AMI sessions that ended and were retried.", s.reconnects
        )
        yield _counter(
            "pbxbridge_ami_login_failures", "AMI logins rejected by Asterisk.", s.login_failures
        )
        yield _counter("pbxbridge_ami_events", "AMI events received.", s.events_received)
        yield _counter(
            "pbxbridge_ami_events_skipped",
            "AMI events pbxbridge never uses, counted and dropped unparsed "
            "(not in pbxbridge_ami_events).",
            s.events_skipped,
        )
        yield _counter(
            "pbxbridge_ami_decode_errors",
            "AMI messages with bytes that are not valid UTF-8 (kept, marked).",
            s.decode_errors,
        )
        yield _counter(
            "pbxbridge_ami_malformed_lines",
            "AMI lines without a colon (skipped), in action replies and in the events "
            "whose fields were not all found as Asterisk writes them.",
            s.malformed_lines + self._malformed_in_events(),
        )
        yield _counter("pbxbridge_ami_received_bytes", "Bytes read from AMI.", s.bytes_received)


class PipelineHealth(Collector):
    def __init__(
        self, stats: PipelineStats, translation: TranslationStats, backlog: Callable[[], int]
    ) -> None:
        self._stats = stats
        self._translation = translation
        self._backlog = backlog

    def collect(self) -> Iterator[Metric]:
        yield _counter(
            "pbxbridge_pipeline_errors",
            "Items dropped because handling them raised (each is also logged).",
            self._stats.handler_errors,
        )
        yield _counter(
            "pbxbridge_ami_events_without_timestamp",
            "Events without an AMI Timestamp (the receive time stood in).",
            self._translation.missing_timestamp,
        )
        yield GaugeMetricFamily(
            "pbxbridge_pipeline_backlog",
            "Items received from AMI and not yet handled.",
            value=self._backlog(),
        )


class PendingCallbacks(Collector):
    """Callers still owed a call back, and how long the oldest has waited."""

    def __init__(
        self, pending: Callable[[], list[cb.Callback]], service: str, clock: Callable[[], float]
    ) -> None:
        self._pending = pending
        self._service = service
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        entries = self._pending()
        services = {self._service} | {e.service for e in entries}
        count = GaugeMetricFamily(
            "pbxbridge_callbacks_pending",
            "Abandoned or unanswered emergency calls still owed a callback.",
            labels=["service"],
        )
        oldest = GaugeMetricFamily(
            "pbxbridge_callbacks_oldest_pending_seconds",
            "Time since the oldest pending callback's call ended (0 when none).",
            labels=["service"],
        )
        now = self._clock()
        for service in sorted(services):
            mine = [e for e in entries if e.service == service]
            count.add_metric([service], len(mine))
            age = max((now - e.abandoned_at for e in mine), default=0.0)
            oldest.add_metric([service], max(0.0, age))
        yield count
        yield oldest


class DeliveryHealth(Collector):
    """Incident delivery, from the delivery task's snapshot (see sink.DeliveryStats)."""

    def __init__(self, stats: Callable[[], DeliveryStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self._stats()
        delivered = CounterMetricFamily(
            "pbxbridge_incidents_delivered",
            "Incident events the backend accepted (2xx), by type.",
            labels=["type"],
        )
        for type_ in INCIDENT_TYPES:
            delivered.add_metric([type_], s.delivered.get(type_, 0))
        yield delivered
        errors = CounterMetricFamily(
            "pbxbridge_incident_delivery_errors",
            "Failed delivery attempts, by reason (retried, or parked for 3xx/4xx).",
            labels=["reason"],
        )
        for reason in DELIVERY_REASONS:
            errors.add_metric([reason], s.errors.get(reason, 0))
        yield errors
        yield GaugeMetricFamily(
            "pbxbridge_outbox_pending", "Incident events waiting for delivery.", value=s.pending
        )
        yield GaugeMetricFamily(
            "pbxbridge_outbox_parked",
            "Incident events the backend refused (kept; see `pbxbridge outbox list`).",
            value=s.parked,
        )
        yield GaugeMetricFamily(
            "pbxbridge_outbox_oldest_pending_seconds",
            "Age of the oldest undelivered incident event (0 when none): the alerting number.",
            value=s.oldest_pending_seconds,
        )


def _counter(name: str, documentation: str, value: Any) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


class Stores(Collector):
    """The SQLite files' health (store_policy): the alerting numbers of a full disk."""

    def __init__(self, stores: Iterable[tuple[str, Callable[[], StoreHealth]]]) -> None:
        self._stores = list(stores)

    def collect(self) -> Iterator[Metric]:
        writable = GaugeMetricFamily(
            "pbxbridge_store_writable",
            "1 while the store's last write succeeded (outbox, callbacks).",
            labels=["store"],
        )
        unwritten = GaugeMetricFamily(
            "pbxbridge_store_unwritten",
            "Records held in memory because the store cannot write them (disk full?).",
            labels=["store"],
        )
        failures = CounterMetricFamily(
            "pbxbridge_store_write_failures",
            "Failed write attempts of the store (each is retried).",
            labels=["store"],
        )
        for name, health in self._stores:
            h = health()
            writable.add_metric([name], int(h.writable))
            unwritten.add_metric([name], h.unwritten)
            failures.add_metric([name], h.failures)
        yield writable
        yield unwritten
        yield failures


class Listeners(Collector):
    """The HTTP listeners' bounds (http_limits): connections refused or cut for slowness."""

    def __init__(self, listeners: Iterable[tuple[str, ConnectionStats]]) -> None:
        self._listeners = list(listeners)

    def collect(self) -> Iterator[Metric]:
        refused = CounterMetricFamily(
            "pbxbridge_http_connections_refused",
            "Connections closed at accept: the listener already had its maximum.",
            labels=["listener"],
        )
        slow = CounterMetricFamily(
            "pbxbridge_http_slow_requests",
            "Connections closed because a request's headers did not arrive in time.",
            labels=["listener"],
        )
        for name, stats in self._listeners:
            refused.add_metric([name], stats.refused)
            slow.add_metric([name], stats.too_slow)
        yield refused
        yield slow


class RegionalStore(Collector):
    """The PostgreSQL store's feed: what waits in the local file for it."""

    def __init__(self, stats: Callable[[], ReplicaStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self._stats()
        yield GaugeMetricFamily(
            "pbxbridge_store_regional_waiting_rows",
            "Call-store rows kept in the local file that PostgreSQL has not taken yet.",
            value=s.waiting,
        )
        yield _counter(
            "pbxbridge_store_regional_copied_rows",
            "Call-store rows copied to PostgreSQL (a changed call is copied again).",
            s.copied,
        )


class WallboardViewers(Collector):
    """The wallboard's streams: who watches, and the viewers dropped for reading slowly."""

    def __init__(self, stats: Callable[[], tuple[int, int, int]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        viewers, dropped, refused = self._stats()
        yield GaugeMetricFamily(
            "pbxbridge_wallboard_viewers", "Wallboard streams open now.", value=viewers
        )
        yield _counter(
            "pbxbridge_wallboard_viewers_dropped",
            "Wallboard streams closed because the viewer did not read a snapshot within 2 s.",
            dropped,
        )
        yield _counter(
            "pbxbridge_wallboard_viewers_refused",
            "Wallboard streams refused: the most that may be open were open.",
            refused,
        )
