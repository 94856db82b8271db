"""The metrics against the recorded transcripts: they must say what the call records say."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pbxbridge import ami, replay
from pbxbridge import events as ev
from pbxbridge import tracker as tr
from pbxbridge.ami_parser import Message
from pbxbridge.ami_translate import TranslationStats, Translator
from pbxbridge.members import MemberBoard, member_status
from pbxbridge.metrics import Metrics
from pbxbridge.pipeline import Pipeline, PipelineStats
from tests.support import settings

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "transcripts"
QUEUES = ("calltakers", "backup")
SETTINGS = settings.tracker("lab", tuple(QUEUES))
ALL = sorted(p.stem for p in TRANSCRIPTS.glob("*.ami"))

Labels = frozenset[tuple[str, str]]


def load(name: str) -> bytes:
    return replay.strip_header((TRANSCRIPTS / f"{name}.ami").read_bytes())


def events(name: str) -> Iterator[ev.Event]:
    return replay.events(replay.messages([load(name)]))


def samples(metrics: Metrics) -> dict[tuple[str, Labels], float]:
    text = metrics.render().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict[tuple[str, Labels], float], name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def total(found: dict[tuple[str, Labels], float], name: str, **labels: str) -> float:
    """Sum over every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and want <= ls)


@dataclass
class Run:
    metrics: Metrics
    effects: list[tr.Effect] = field(default_factory=list)

    @property
    def records(self) -> list[tr.CallRecord]:
        return [e.record for e in self.effects if isinstance(e, tr.CallEnded)]


def run(*names: str) -> Run:
    result = Run(Metrics(service="112", queues=QUEUES))
    for name in names:
        tracker = tr.Tracker(SETTINGS)
        for event in events(name):
            effects = tracker.handle(event)
            result.metrics.apply(effects)
            result.effects += effects
    return result


@pytest.mark.parametrize("name", ALL)
def test_counters_agree_with_the_call_records(name: str) -> None:
    """Every outcome, stage and queue counter equals the number of records that say so."""
    r = run(name)
    found = samples(r.metrics)
    offered = sum(isinstance(e, tr.CallOffered) for e in r.effects)
    assert total(found, "pbxbridge_calls_offered_total") == offered == len(r.records)
    outcomes = Counter(rec.outcome for rec in r.records)
    assert total(found, "pbxbridge_calls_answered_total") == outcomes["answered"]
    assert total(found, "pbxbridge_calls_unanswered_total") == outcomes["unanswered"]
    assert total(found, "pbxbridge_calls_interrupted_total") == outcomes["interrupted"]
    for stage in tr.ABANDON_STAGES:
        n = sum(rec.abandon_stage == stage for rec in r.records)
        assert value(found, "pbxbridge_calls_abandoned_total", service="112", stage=stage) == n
    by_queue = Counter(rec.queue for rec in r.records if rec.outcome == "answered")
    for queue, n in by_queue.items():
        assert queue is not None
        assert value(found, "pbxbridge_calls_answered_total", service="112", queue=queue) == n
    rna = Counter[tuple[str, str]]()
    for e in r.effects:
        if isinstance(e, tr.RingNoAnswer):
            rna[(e.queue, e.agent)] += 1
    assert total(found, "pbxbridge_agent_ring_no_answer_total") == sum(
        rec.ring_no_answer for rec in r.records
    )
    for (queue, agent), n in rna.items():
        assert value(found, "pbxbridge_agent_ring_no_answer_total", queue=queue, agent=agent) == n


@pytest.mark.parametrize("name", ALL)
def test_histograms_agree_with_the_call_records(name: str) -> None:
    """Each histogram's count and sum equal the number and the sum of the records' durations."""
    r = run(name)
    found = samples(r.metrics)
    checks = {
        "pbxbridge_answer_time_seconds": [rec.answer_seconds for rec in r.records],
        "pbxbridge_abandon_time_seconds": [rec.abandon_seconds for rec in r.records],
        "pbxbridge_queue_wait_seconds": [rec.wait_seconds for rec in r.records],
        "pbxbridge_talk_time_seconds": [rec.talk_seconds for rec in r.records],
    }
    for metric, durations in checks.items():
        known = [d for d in durations if d is not None]
        assert total(found, f"{metric}_count") == len(known), metric
        assert total(found, f"{metric}_sum") == pytest.approx(sum(known), abs=1e-6), metric
    for stage in tr.ABANDON_STAGES:
        known = [rec.abandon_seconds for rec in r.records if rec.abandon_stage == stage]
        labels = {"service": "112", "stage": stage}
        assert value(found, "pbxbridge_abandon_time_seconds_count", **labels) == len(known)


def test_answer_time_buckets_place_each_call_by_its_answer_seconds() -> None:
    """The 10, 15 and 20 s buckets count exactly the calls answered within 10, 15, 20 s."""
    r = run(*ALL)
    found = samples(r.metrics)
    answers = [rec.answer_seconds for rec in r.records if rec.answer_seconds is not None]
    assert answers and max(answers) > 10, "the transcripts include a call answered after 10 s"
    for le in ("5.0", "10.0", "15.0", "20.0", "120.0"):
        n = sum(a <= float(le) for a in answers)
        assert value(found, "pbxbridge_answer_time_seconds_bucket", service="112", le=le) == n


def test_series_a_dashboard_charts_exist_at_zero_before_any_call() -> None:
    """A quiet night shows zeros, not 'no data': every charted series exists from start."""
    m = Metrics(service="112", queues=QUEUES)
    m.watch_calls(tr.Tracker(SETTINGS), clock=lambda: 1000.0)
    m.watch_members(MemberBoard().counts)
    found = samples(m)
    zero = [
        ("pbxbridge_calls_offered_total", {"service": "112"}),
        ("pbxbridge_calls_unanswered_total", {"service": "112"}),
        ("pbxbridge_calls_interrupted_total", {"service": "112"}),
        ("pbxbridge_answer_time_seconds_count", {"service": "112"}),
        ("pbxbridge_answer_time_seconds_bucket", {"service": "112", "le": "15.0"}),
        ("pbxbridge_oldest_waiting_call_seconds", {"service": "112"}),
        ("pbxbridge_tracker_anomalies_total", {"kind": "call_adopted"}),
        ("pbxbridge_ami_event_lag_seconds_count", {}),
    ]
    zero += [
        ("pbxbridge_calls_abandoned_total", {"service": "112", "stage": s})
        for s in tr.ABANDON_STAGES
    ]
    zero += [
        (name, {"service": "112", "queue": q})
        for q in QUEUES
        for name in (
            "pbxbridge_calls_answered_total",
            "pbxbridge_queue_wait_seconds_count",
            "pbxbridge_talk_time_seconds_count",
        )
    ]
    zero += [
        ("pbxbridge_calls_in_progress", {"service": "112", "state": s})
        for s in ("arriving", "waiting", "ringing", "talking", "left_queue")
    ]
    zero += [
        ("pbxbridge_queue_members", {"queue": q, "status": s})
        for q in QUEUES
        for s in ("available", "in_call", "paused", "unavailable")
    ]
    for name, labels in zero:
        assert value(found, name, **labels) == 0, (name, labels)


def _caller_numbers() -> set[str]:
    found: set[str] = set()
    for path in TRANSCRIPTS.glob("*.ami"):
        found |= set(re.findall(r"CallerIDNum: (\d{6,})", path.read_text(errors="replace")))
    return found


def test_the_metrics_page_never_carries_a_caller_number_or_a_linkedid() -> None:
    """No scrape, mid-call or after, contains a caller number, a Linkedid or a Uniqueid."""
    numbers = _caller_numbers()
    assert len(numbers) > 10
    ids: set[str] = set()
    pages: list[str] = []
    for name in ALL:
        tracker, board = tr.Tracker(SETTINGS), MemberBoard()
        m = Metrics(service="112", queues=QUEUES)
        m.watch_calls(tracker, clock=lambda: 1795966300.0)
        m.watch_members(board.counts)
        for i, event in enumerate(events(name)):
            if isinstance(event, ev.ChannelCreated):
                ids |= {event.ref.linkedid, event.ref.uniqueid}
            if isinstance(event, ev.MemberStatus):
                board.update(event)
            m.apply(tracker.handle(event))
            if i % 25 == 0:
                pages.append(m.render().decode())
        pages.append(m.render().decode())
    ids.discard("")
    page = "\n".join(pages)
    assert ids and 'state="talking"} 1.0' in page, "some scrape saw a call in progress"
    assert not {n for n in numbers | ids if n in page}


def test_oldest_waiting_call_is_computed_at_scrape_time_from_arrival() -> None:
    """The oldest-waiting gauge is now minus arrival, moves with the clock, and drops to 0
    once the call is answered."""
    now = [0.0]
    tracker = tr.Tracker(SETTINGS)
    m = Metrics(service="112", queues=QUEUES)
    m.watch_calls(tracker, clock=lambda: now[0])
    stream = events("answered_after_long_wait")
    offered: tr.CallRecord | None = None
    for event in stream:
        for effect in tracker.handle(event):
            if isinstance(effect, tr.CallOffered):
                offered = effect.record
        if offered is not None:
            break
    assert offered is not None
    for elapsed in (7.5, 12.25):
        now[0] = offered.offered_at + elapsed
        found = samples(m)
        assert value(found, "pbxbridge_oldest_waiting_call_seconds", service="112") == elapsed
        assert value(found, "pbxbridge_calls_in_progress", service="112", state="arriving") == 1
    queued_at = None
    for event in stream:
        effects = tracker.handle(event)
        if isinstance(event, ev.QueueJoined):
            queued_at = event.at
            now[0] = event.at + 3.0
            found = samples(m)
            # From arrival (greeting included), not from the queue entry.
            want = round(event.at + 3.0 - offered.offered_at, 3)
            assert value(found, "pbxbridge_oldest_waiting_call_seconds", service="112") == want
            assert value(found, "pbxbridge_calls_in_progress", service="112", state="waiting") == 1
        if any(isinstance(e, tr.CallAnswered) for e in effects):
            break
    assert queued_at is not None
    found = samples(m)
    assert value(found, "pbxbridge_oldest_waiting_call_seconds", service="112") == 0
    assert value(found, "pbxbridge_calls_in_progress", service="112", state="talking") == 1


def test_member_status_maps_device_states_and_pause() -> None:
    """Paused wins over any device state; in use, busy, ringing and on hold are in_call."""
    assert member_status(1, paused=False) == "available"
    assert member_status(1, paused=True) == "paused"
    assert [member_status(s, paused=False) for s in (2, 3, 6, 7, 8)] == ["in_call"] * 5
    assert [member_status(s, paused=False) for s in (4, 5, 99)] == ["unavailable"] * 3


def _messages(name: str) -> list[Message]:
    return list(replay.messages([load(name)]))


def test_pipeline_keeps_the_member_board_from_status_events_and_queue_status_lists() -> None:
    """QueueMemberStatus events update the board; a QueueStatus list replaces it whole."""
    pipeline = Pipeline(tr.Tracker(SETTINGS))
    busiest = 0
    for event in events("burst"):  # 6 calls for 4 call takers
        pipeline.handle(event)
        busiest = max(busiest, pipeline.members.counts().get(("calltakers", "in_call"), 0))
    counts = pipeline.members.counts()
    assert busiest == 4
    assert sum(n for (q, _), n in counts.items() if q == "calltakers") == 4
    assert counts[("calltakers", "available")] == 4  # everybody free again at the end

    [listed] = [e for e in events("resync_mid_call") if isinstance(e, ev.MembersListed)]
    assert len(listed.members) == 6
    pipeline.handle(listed)
    counts = pipeline.members.counts()
    assert counts[("calltakers", "in_call")] == 3
    assert counts[("calltakers", "available")] == 1
    assert counts[("backup", "available")] == 2


def test_pipeline_feeds_the_metrics_sink_and_the_event_lag_histogram() -> None:
    """Translated then run through the pipeline, each stamped event is observed once in
    the lag histogram."""
    m = Metrics(service="112", queues=QUEUES)
    pipeline = Pipeline(tr.Tracker(SETTINGS), sinks=[m])
    translator = Translator(observe_lag=m.observe_event_lag)
    m.watch_pipeline(pipeline.stats, translator.stats, lambda: 0)
    m.watch_members(pipeline.members.counts)
    stamped = 0
    for msg in _messages("answered_quickly"):
        if msg.event is None or msg.response is not None:
            continue
        at = float(msg.get("Timestamp") or 0.0)
        event = translator.event(msg, received_at=at + 0.003 if at else 0.0)
        if event is None:
            continue
        stamped += bool(at)
        pipeline.handle(event)
    found = samples(m)
    assert value(found, "pbxbridge_ami_event_lag_seconds_count") == stamped > 0
    assert value(found, "pbxbridge_ami_event_lag_seconds_bucket", le="0.005") == stamped
    assert value(found, "pbxbridge_calls_offered_total", service="112") == 1
    assert value(found, "pbxbridge_calls_answered_total", service="112", queue="calltakers") == 1
    assert value(found, "pbxbridge_pipeline_errors_total") == 0
    assert value(found, "pbxbridge_queue_members", queue="calltakers", status="available") == 1


def test_ami_session_counters_come_from_the_client_state_at_scrape_time() -> None:
    """ami_up and the AMI counters read the client's state snapshot when scraped."""
    state = [_ami_state(logged_in=False, login_failures=2, reconnects=3)]
    m = Metrics(service="112", queues=QUEUES)
    m.watch_ami(lambda: state[0])
    m.watch_pipeline(PipelineStats(handler_errors=1), TranslationStats(), lambda: 7)
    found = samples(m)
    assert value(found, "pbxbridge_ami_up") == 0
    assert value(found, "pbxbridge_ami_login_failures_total") == 2
    assert value(found, "pbxbridge_ami_reconnects_total") == 3
    assert value(found, "pbxbridge_pipeline_errors_total") == 1
    assert value(found, "pbxbridge_pipeline_backlog") == 7
    state[0] = replace(_ami_state(logged_in=True, events_received=42), events_skipped=7)
    found = samples(m)
    assert value(found, "pbxbridge_ami_up") == 1
    assert value(found, "pbxbridge_ami_events_total") == 42
    assert value(found, "pbxbridge_ami_events_skipped_total") == 7


def _ami_state(
    *, logged_in: bool, login_failures: int = 0, reconnects: int = 0, events_received: int = 0
) -> ami.AmiState:
    return ami.AmiState(
        connected=logged_in,
        logged_in=logged_in,
        last_error=None if logged_in else "login failed: Authentication failed",
        login_failures=login_failures,
        reconnects=reconnects,
        events_received=events_received,
        decode_errors=0,
        malformed_lines=0,
        bytes_received=0,
        connected_since=None,
        banner=None,
    )
