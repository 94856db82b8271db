"""The one task that owns the tracker: AMI items in, effects out to logs (and sinks).

Items are handled strictly in stream order; the tracker is never touched by anything
else, so it needs no locks. One function, :meth:`Pipeline.apply`, turns effects into
outward writes, so data flows one way: AMI -> tracker -> sinks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from pbxbridge import ami
from pbxbridge import events as ev
from pbxbridge import tracker as tr
from pbxbridge.incidents import call_json
from pbxbridge.members import MemberBoard

log = structlog.get_logger("pbxbridge.pipeline")


@dataclass(frozen=True, slots=True)
class Tick:
    """Periodic housekeeping, queued like any item so only this task touches the tracker."""

    at: float


Item = ami.AmiItem | Tick


class EffectSink(Protocol):
    """Anything that wants the tracker's effects (metrics, the incident outbox)."""

    def apply(self, effects: list[tr.Effect]) -> None: ...


@dataclass
class PipelineStats:
    items: int = 0
    events: int = 0
    untranslated: int = 0
    missing_timestamp: int = 0
    handler_errors: int = 0
    malformed_lines: int = 0  # in events (the AMI client counts those in replies)
    last_lag_seconds: float | None = None


class Pipeline:
    def __init__(
        self,
        tracker: tr.Tracker,
        sinks: list[EffectSink] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        observe_lag: Callable[[float], None] | None = None,
    ) -> None:
        self.tracker = tracker
        self.sinks = sinks or []
        # Queue members: state owned by this task like the tracker, read at scrape time.
        self.members = MemberBoard()
        self._observe_lag = observe_lag
        # Run in this task before the tracker sees a snapshot (restart reconciliation).
        self.before_snapshot: list[Callable[[ev.Snapshot], None]] = []
        self.stats = PipelineStats()
        self._clock = clock
        self._warned_timestamp = False

    async def run(self, queue: asyncio.Queue[Item]) -> None:
        while True:
            item = await queue.get()
            self.handle(item)

    def handle(self, item: Item) -> list[tr.Effect]:
        self.stats.items += 1
        try:
            # Nearly every item is an event: one type test instead of a class pattern.
            effects = self._event(item) if type(item) is ami.AmiEvent else self._effects(item)
        except Exception:
            # A tracker bug must not stop every later call from being measured: the
            # event is counted and logged, the stream goes on.
            self.stats.handler_errors += 1
            log.exception("pipeline_handler_error", item=type(item).__name__)
            return []
        if effects:  # most events change state without an outward effect
            self.apply(effects)
        return effects

    def _event(self, item: ami.AmiEvent) -> list[tr.Effect]:
        self.stats.events += 1
        received_at, msg = item.received_at, item.message
        event, stamped = ev.translate(msg, received_at)
        if msg.parsed and msg.malformed_lines:
            # Translation reads fields lazily; it parsed this one in full because a
            # field was not where Asterisk writes it.
            self.stats.malformed_lines += msg.malformed_lines
            log.warning("ami_malformed_lines", ami_event=msg.event)
        if event is None:
            self.stats.untranslated += 1
            return []
        if not stamped:
            if not isinstance(event, ev.Booted):
                # FullyBooted is synthesised at login without a Timestamp.
                self._no_timestamp()
        else:
            lag = self.stats.last_lag_seconds = received_at - event.at
            if self._observe_lag is not None:
                self._observe_lag(lag)
        if isinstance(event, ev.MemberStatus):
            self.members.update(event)
        return self.tracker.handle(event)

    def _effects(self, item: Item) -> list[tr.Effect]:
        """Every item but an AmiEvent (handle() sends those to _event())."""
        match item:
            case ami.ActionResult(action="CoreShowChannels", events=items, received_at=at):
                stamp = ev.event_time(items[-1], at)[0] if items else at
                snapshot = ev.snapshot(items, stamp)
                for hook in self.before_snapshot:
                    hook(snapshot)
                return self.tracker.handle(snapshot)
            case ami.ActionResult(action=action, events=items, received_at=at):
                translated = [e for msg in items if (e := ev.translate(msg, at)[0]) is not None]
                if action == "QueueStatus":
                    # The full member list after a login replaces whatever the gap hid.
                    self.members.resync(e for e in translated if isinstance(e, ev.MemberStatus))
                effects: list[tr.Effect] = []
                for event in translated:
                    effects += self.tracker.handle(event)
                return effects
            case ami.SessionUp():
                log.info("ami_session_up")
                return []
            case ami.SessionDown(reason=reason):
                # Calls are not closed here: the snapshot after the next login decides.
                log.warning("ami_session_down", reason=reason)
                return []
            case Tick(at=at):
                return self.tracker.expire(at)
        return []

    def _no_timestamp(self) -> None:
        self.stats.missing_timestamp += 1
        if not self._warned_timestamp:
            self._warned_timestamp = True
            log.warning(
                "ami_events_without_timestamp",
                hint="set timestampevents = yes in manager.conf [general]; "
                "using receive time instead",
            )

    def apply(self, effects: list[tr.Effect]) -> None:
        for effect in effects:
            match effect:
                case tr.CallOffered(record=rec):
                    log.info(
                        "call_offered",
                        call_id=rec.call_id,
                        service=rec.service,
                        caller_number=rec.caller_number,
                    )
                case tr.CallAnswered(record=rec):
                    log.info(
                        "call_answered",
                        call_id=rec.call_id,
                        queue=rec.queue,
                        agent=rec.agent,
                        answer_seconds=rec.answer_seconds,
                    )
                case tr.CallEnded(record=rec):
                    record = call_json(rec)
                    # The caller's name stays out of logs; the number is masked by logs.py.
                    record["caller_number"] = record.pop("caller")["number"]
                    log.info("call_ended", **record)
                case tr.Anomaly(kind=kind, linkedid=linkedid, detail=detail):
                    log.warning("tracker_anomaly", kind=kind, linkedid=linkedid, detail=detail)
                case tr.CallUpdated(record=rec, what=what):
                    log.info(
                        "call_updated",
                        call_id=rec.call_id,
                        what=what,
                        category=rec.category,
                        dispatched_to=[agency for agency, _ in rec.dispatched_to],
                    )
                case tr.RingNoAnswer() | tr.CallbackResult():
                    pass
        for sink in self.sinks:
            sink.apply(effects)
