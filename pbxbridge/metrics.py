"""Every Prometheus metric pbxbridge exports, declared here and nowhere else.

Two kinds of metric, never mixed:

* what happened (counters, histograms): updated from the tracker's effects by
  :meth:`Metrics.apply`, the pipeline's metrics sink;
* what is true now (calls in progress, oldest waiting caller, queue members, the AMI
  session, the pipeline's counters): computed at scrape time by collectors that read
  snapshots. Nothing on the event path sets a gauge.

Scrapes run on the event loop (see :mod:`pbxbridge.http`), the same thread as the
pipeline task, so collectors read the tracker without locks and never see it
half-updated.

Labels stay bounded: service (the dialplan hook's SERVICE), queue, agent (the queue
member's name), stage, state, status, kind. Never a caller number, never a Linkedid.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from pbxbridge import callbacks as cb
from pbxbridge import tracker as tr
from pbxbridge.ami import AmiState
from pbxbridge.ami_translate import TranslationStats
from pbxbridge.delivery import REASONS as DELIVERY_REASONS
from pbxbridge.delivery import DeliveryStats
from pbxbridge.incidents import TYPES as INCIDENT_TYPES
from pbxbridge.members import STATUSES
from pbxbridge.pipeline import Effect, PipelineStats

# 10, 15 and 20 s are bucket bounds so that the NFPA (10 s) and NENA (15 s, 20 s) service
# levels are exact in PromQL, not interpolated.
ANSWER_BUCKETS = (2, 5, 8, 10, 12, 15, 20, 25, 30, 45, 60, 90, 120, 180, 300)
TALK_BUCKETS = (30, 60, 120, 180, 300, 450, 600, 900, 1200, 1800, 3600)
CALLBACK_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 86400)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

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

# Every kind of anomaly the tracker can return, derived from its own tables.
ANOMALY_KINDS = tuple(
    sorted(
        {"call_adopted", "call_stuck", "answered_twice", "unknown_category", "unknown_agency"}
        | {"category_without_call", "dispatch_without_call"}
        | {f"unexpected_{what}" for _, what in tr.TRANSITIONS}
    )
)

NO_QUEUE = "none"


def _queue_of(rec: tr.CallRecord) -> str:
    """The answering queue, else the last queue the caller was in."""
    return rec.queue or (rec.queues[-1] if rec.queues else NO_QUEUE)


class Metrics:
    """The registry and the event-path metrics; implements the pipeline's EffectSink."""

    def __init__(
        self,
        *,
        service: str,
        queues: Iterable[str] = (),
        categories: Iterable[str] = (),
        agencies: Iterable[str] = (),
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.offered = Counter(
            "pbxbridge_calls_offered",
            "Emergency calls offered (counted when the call becomes an emergency call).",
            ["service"],
            registry=r,
        )
        self.answered = Counter(
            "pbxbridge_calls_answered",
            "Emergency calls that ended with outcome answered (counted at the end).",
            ["service", "queue"],
            registry=r,
        )
        self.abandoned = Counter(
            "pbxbridge_calls_abandoned",
            "Emergency calls the caller hung up before an answer, by stage.",
            ["service", "stage"],
            registry=r,
        )
        self.unanswered = Counter(
            "pbxbridge_calls_unanswered",
            "Emergency calls the PBX gave up on (the last queue timed out).",
            ["service"],
            registry=r,
        )
        self.interrupted = Counter(
            "pbxbridge_calls_interrupted",
            "Emergency calls whose end pbxbridge could not see (AMI gap or call too long).",
            ["service"],
            registry=r,
        )
        self.answer_time = Histogram(
            "pbxbridge_answer_time_seconds",
            "Arrival to answer by a call taker (observed when the call is answered).",
            ["service"],
            buckets=ANSWER_BUCKETS,
            registry=r,
        )
        self.abandon_time = Histogram(
            "pbxbridge_abandon_time_seconds",
            "Arrival to the caller's hang-up, for abandoned calls.",
            ["service", "stage"],
            buckets=ANSWER_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "pbxbridge_queue_wait_seconds",
            "Queue entry to answer, or to the end for calls not answered (at the call's end).",
            ["service", "queue"],
            buckets=ANSWER_BUCKETS,
            registry=r,
        )
        self.talk_time = Histogram(
            "pbxbridge_talk_time_seconds",
            "Answer to the end of the call (at the call's end).",
            ["service", "queue"],
            buckets=TALK_BUCKETS,
            registry=r,
        )
        self.ring_no_answer = Counter(
            "pbxbridge_agent_ring_no_answer",
            "Times a call taker's phone rang for an emergency call and was not answered.",
            ["queue", "agent"],
            registry=r,
        )
        self.anomalies = Counter(
            "pbxbridge_tracker_anomalies",
            "Events the call tracker did not expect, by kind (each is also logged).",
            ["kind"],
            registry=r,
        )
        self.event_lag = EventLag(LAG_BUCKETS)
        r.register(self.event_lag)
        self.classified = Counter(
            "pbxbridge_calls_classified",
            "Call takers' classifications of emergency calls (a reclassification counts).",
            ["service", "category"],
            registry=r,
        )
        self.dispatched = Counter(
            "pbxbridge_calls_dispatched",
            "Emergency calls handed to an agency (transfer, conference or dispatch hook).",
            ["service", "agency"],
            registry=r,
        )
        self.callback_delay = Histogram(
            "pbxbridge_callback_delay_seconds",
            "Abandonment to the first callback attempt.",
            ["service"],
            buckets=CALLBACK_BUCKETS,
            registry=r,
        )
        self.callbacks = Counter(
            "pbxbridge_callbacks",
            "Callback outcomes: attempts (answered, no_answer, busy, failed) and entries "
            "settled by the caller calling again (recalled).",
            ["service", "result"],
            registry=r,
        )
        self.service = service
        self.queues = tuple(queues)
        self.categories = tuple(categories)
        self.agencies = tuple(sorted(set(agencies)))
        self._zero(service, self.queues)

    def _zero(self, service: str, queues: tuple[str, ...]) -> None:
        """Create the series a dashboard charts, so a quiet night shows 0, not no data."""
        self.offered.labels(service)
        self.unanswered.labels(service)
        self.interrupted.labels(service)
        self.answer_time.labels(service)
        for stage in tr.ABANDON_STAGES:
            self.abandoned.labels(service, stage)
            self.abandon_time.labels(service, stage)
        for queue in queues:
            self.answered.labels(service, queue)
            self.queue_wait.labels(service, queue)
            self.talk_time.labels(service, queue)
        for kind in ANOMALY_KINDS:
            self.anomalies.labels(kind)
        for category in self.categories:
            self.classified.labels(service, category)
        for agency in self.agencies:
            self.dispatched.labels(service, agency)
        self.callback_delay.labels(service)
        for result in cb.RESULTS:
            self.callbacks.labels(service, result)

    # -- the event path -------------------------------------------------------------

    def apply(self, effects: Sequence[Effect]) -> None:
        for effect in effects:
            match effect:
                case tr.CallOffered(record=rec):
                    self.offered.labels(rec.service).inc()
                case tr.CallAnswered(record=rec):
                    # Observed at the answer, not the end: the service-level panels must
                    # not wait for the conversation to finish.
                    if rec.answer_seconds is not None:
                        self.answer_time.labels(rec.service).observe(max(0.0, rec.answer_seconds))
                case tr.CallEnded(record=rec):
                    self._ended(rec)
                case tr.RingNoAnswer(queue=queue, agent=agent):
                    self.ring_no_answer.labels(queue, agent).inc()
                case tr.Anomaly(kind=kind):
                    self.anomalies.labels(kind).inc()
                case tr.CallUpdated(record=rec, what="category") if rec.category:
                    self.classified.labels(rec.service, rec.category).inc()
                case tr.CallUpdated(record=rec, what="dispatch") if rec.dispatched_to:
                    self.dispatched.labels(rec.service, rec.dispatched_to[-1][0]).inc()
                case cb.Attempted(entry=entry, result=result, at=at):
                    self.callbacks.labels(entry.service, result).inc()
                    if entry.attempts == 1:
                        delay = max(0.0, at - entry.abandoned_at)
                        self.callback_delay.labels(entry.service).observe(delay)
                case cb.Closed(entry=entry) if entry.result == "recalled":
                    self.callbacks.labels(entry.service, "recalled").inc()

    def _ended(self, rec: tr.CallRecord) -> None:
        service, queue = rec.service, _queue_of(rec)
        match rec.outcome:
            case "answered":
                self.answered.labels(service, queue).inc()
            case "abandoned":
                stage = rec.abandon_stage or "queue"
                self.abandoned.labels(service, stage).inc()
                if rec.abandon_seconds is not None:
                    self.abandon_time.labels(service, stage).observe(max(0.0, rec.abandon_seconds))
            case "unanswered":
                self.unanswered.labels(service).inc()
            case _:
                self.interrupted.labels(service).inc()
        if rec.wait_seconds is not None:
            self.queue_wait.labels(service, queue).observe(rec.wait_seconds)
        if rec.talk_seconds is not None:
            self.talk_time.labels(service, queue).observe(rec.talk_seconds)

    def observe_event_lag(self, seconds: float) -> None:
        self.event_lag.observe(seconds)

    # -- scrape-time sources --------------------------------------------------------

    def watch_calls(self, tracker: tr.Tracker, clock: Callable[[], float] = time.time) -> None:
        self.registry.register(LiveCalls(tracker, self.service, clock))

    def watch_members(self, counts: Callable[[], dict[tuple[str, str], int]]) -> None:
        self.registry.register(QueueMembers(counts, self.queues))

    def watch_ami(
        self, state: Callable[[], AmiState], malformed_event_lines: Callable[[], int] = lambda: 0
    ) -> None:
        self.registry.register(AmiSession(state, malformed_event_lines))

    def watch_pipeline(
        self,
        stats: PipelineStats,
        translation: TranslationStats,
        backlog: Callable[[], int],
    ) -> None:
        self.registry.register(PipelineHealth(stats, translation, backlog))

    def watch_callbacks(
        self, pending: Callable[[], list[cb.Callback]], clock: Callable[[], float] = time.time
    ) -> None:
        self.registry.register(PendingCallbacks(pending, self.service, clock))

    def watch_delivery(self, stats: Callable[[], DeliveryStats]) -> None:
        self.registry.register(DeliveryHealth(stats))

    def render(self) -> bytes:
        """The Prometheus text exposition of everything in the registry."""
        return generate_latest(self.registry)


class EventLag(Collector):
    """``pbxbridge_ami_event_lag_seconds``: observed once per AMI event, so a plain
    bucket count (a bisect and an increment, 0.2 µs) instead of prometheus_client's
    Histogram (a lock and a loop over the buckets, 1 µs: 5% of a wanted event's cost in
    the replay benchmark). Written by the pipeline task only; a scrape copies the
    counts, so it reads a consistent histogram (at worst one event behind in the sum).
    """

    def __init__(self, buckets: Iterable[float]) -> None:
        self._bounds = tuple(sorted(b for b in buckets if b != float("inf")))
        self._counts = [0] * (len(self._bounds) + 1)  # the last one is +Inf
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        if not seconds > 0.0:  # a negative lag is clock skew (and NaN no lag): 0
            seconds = 0.0
        self._counts[bisect_left(self._bounds, seconds)] += 1
        self._sum += seconds

    def collect(self) -> Iterator[Metric]:
        counts, total_sum = list(self._counts), self._sum
        cumulative, buckets = 0, []
        for bound, n in zip((*map(floatToGoString, self._bounds), "+Inf"), counts, strict=True):
            cumulative += n
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(
            "pbxbridge_ami_event_lag_seconds",
            "Receive time minus the event's AMI Timestamp (negative values count as 0).",
            buckets=buckets,
            sum_value=total_sum,
        )


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
