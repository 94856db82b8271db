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
from collections.abc import Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from pbxbridge import callbacks as cb
from pbxbridge import tracker as tr
from pbxbridge.ami import AmiState
from pbxbridge.ami_translate import TranslationStats
from pbxbridge.collectors import (
    AmiSession,
    DeliveryHealth,
    Listeners,
    LiveCalls,
    PendingCallbacks,
    PipelineHealth,
    QueueMembers,
    RegionalStore,
    Stores,
    WallboardViewers,
)
from pbxbridge.delivery import DeliveryStats
from pbxbridge.http_limits import ConnectionStats
from pbxbridge.pipeline import Effect, PipelineStats
from pbxbridge.records import MemberChanged
from pbxbridge.store_policy import StoreHealth
from pbxbridge.store_replica import ReplicaStats

# 10, 15 and 20 s are bucket bounds so that the NFPA (10 s) and NENA (15 s, 20 s) service
# levels are exact in PromQL, not interpolated.
ANSWER_BUCKETS = (2, 5, 8, 10, 12, 15, 20, 25, 30, 45, 60, 90, 120, 180, 300)
TALK_BUCKETS = (30, 60, 120, 180, 300, 450, 600, 900, 1200, 1800, 3600)
CALLBACK_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 86400)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

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
        self.event_lag = Histogram(
            "pbxbridge_ami_event_lag_seconds",
            "Receive time minus the event's AMI Timestamp (negative values count as 0).",
            buckets=LAG_BUCKETS,
            registry=r,
        )
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
        self.claims = Counter(
            "pbxbridge_callback_claims",
            "Call takers' claims: granted, empty (nobody owed) or limited (too many claims "
            "from one phone).",
            ["result"],
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
        for result in cb.CLAIM_RESULTS:
            self.claims.labels(result)

    # -- the event path -------------------------------------------------------------

    def apply(self, effects: Sequence[Effect]) -> None:
        for effect in effects:
            if type(effect) is MemberChanged:
                continue  # the members' gauges are read from the board at scrape time
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
                case cb.Claimed():
                    self.claims.labels("granted").inc()
                case cb.ClaimRefused(reason=reason):
                    self.claims.labels(reason).inc()

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
        # A negative lag is clock skew (and NaN no lag): 0.
        self.event_lag.observe(seconds if seconds > 0.0 else 0.0)

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

    def watch_listeners(self, listeners: Iterable[tuple[str, ConnectionStats]]) -> None:
        self.registry.register(Listeners(listeners))

    def watch_stores(self, stores: Iterable[tuple[str, Callable[[], StoreHealth]]]) -> None:
        self.registry.register(Stores(stores))

    def watch_regional_store(self, stats: Callable[[], ReplicaStats]) -> None:
        self.registry.register(RegionalStore(stats))

    def watch_wallboard(self, stats: Callable[[], tuple[int, int, int]]) -> None:
        self.registry.register(WallboardViewers(stats))

    def render(self) -> bytes:
        """The Prometheus text exposition of everything in the registry."""
        return generate_latest(self.registry)
