"""The one fan-out: every decision reaches every sink and the log through Pipeline.apply."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from pbxbridge import callbacks as cb
from pbxbridge import events as ev
from pbxbridge import tracker as tr
from pbxbridge.metrics import Metrics
from pbxbridge.pipeline import Claim, Effect, Pipeline, Tick
from pbxbridge.records import Heartbeat
from tests.support import settings


class Recorder:
    """A sink that keeps what it is given."""

    def __init__(self) -> None:
        self.effects: list[Effect] = []

    def apply(self, effects: Sequence[Effect]) -> None:
        self.effects += effects


def restored(linkedid: str, number: str) -> tr.CallRecord:
    return tr.CallRecord(f"pbx:{linkedid}", linkedid, "112", number, "", offered_at=100.0)


def interrupted_total(m: Metrics) -> float:
    for family in text_string_to_metric_families(m.render().decode()):
        for s in family.samples:
            if s.name == "pbxbridge_calls_interrupted_total":
                return s.value
    raise AssertionError("no interrupted counter")


def test_a_call_closed_after_a_restart_is_logged_counted_and_owed_a_callback() -> None:
    """A restored call the first snapshot no longer shows ends interrupted through the
    same fan-out as any call: a call_ended line, the interrupted counter, every sink,
    and (never answered) the callback list."""
    tracker = tr.Tracker(settings.tracker())
    tracker.restore([restored("L1", "0812000111")])
    metrics, recorder = Metrics(service="112", queues=("q112",)), Recorder()
    pipeline = Pipeline(tracker, book=cb.CallbackBook(), sinks=[recorder, metrics])
    with capture_logs() as logs:
        pipeline.handle(ev.Snapshot(130, ()))
    [line] = [x for x in logs if x["event"] == "call_ended"]
    assert (line["outcome"], line["ended_at"]) == ("interrupted", "1970-01-01T00:02:10.000000Z")
    assert interrupted_total(metrics) == 1
    kinds = [type(e) for e in recorder.effects]
    assert kinds == [tr.CallEnded, tr.Resynced, cb.Queued]
    assert [e.call_id for e in pipeline.book.pending()] == ["pbx:L1"]
    assert any(x["event"] == "ami_resynced" and x["closed"] == 1 for x in logs)


def test_a_stuck_call_closed_by_the_tick_takes_the_same_path() -> None:
    """Housekeeping closes through decide and apply like an AMI event."""
    tracker = tr.Tracker(settings.tracker(max_call_seconds=10))
    tracker.restore([restored("L1", "0812000111")])
    recorder = Recorder()
    Pipeline(tracker, book=cb.CallbackBook(), sinks=[recorder]).handle(Tick(500))
    kinds = [tr.Anomaly, tr.CallEnded, cb.Queued, Heartbeat]  # the tick: alive
    assert [type(e) for e in recorder.effects] == kinds


async def test_a_claim_is_decided_by_the_pipeline_and_reaches_the_sinks() -> None:
    """A call taker's claim is an item like any other: the book decides, every sink gets
    the Claimed change, and the caller of the API gets the entry."""
    book = cb.CallbackBook()
    book.apply([tr.CallEnded(tr.CallRecord("pbx:L1", "L1", "112", "0812000111", "", 1.0,
                                           ended_at=5.0, outcome="abandoned"))])  # fmt: skip
    recorder = Recorder()
    pipeline = Pipeline(tr.Tracker(settings.tracker()), book=book, sinks=[recorder])
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[cb.Claimed | cb.ClaimRefused] = loop.create_future()
    pipeline.handle(Claim("PJSIP/1001", 10.0, reply))
    answer = await reply
    assert isinstance(answer, cb.Claimed) and answer.entry.claimed_by == "PJSIP/1001"
    none_left: asyncio.Future[cb.Claimed | cb.ClaimRefused] = loop.create_future()
    pipeline.handle(Claim("PJSIP/1002", 11.0, none_left))
    assert await none_left == cb.ClaimRefused("PJSIP/1002", 11.0, "empty")
    assert [type(e) for e in recorder.effects] == [cb.Claimed, cb.ClaimRefused]
