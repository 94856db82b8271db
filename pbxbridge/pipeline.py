"""The one task that owns the deciding state: typed events in, effects out to every sink.

Items (typed AMI events, the housekeeping tick, call takers' claims) are handled
strictly in queue order by one task; the tracker and the callback book are touched by
nothing else, so they need no locks. Deciding is pure (:meth:`Pipeline.decide`: the
tracker, then the callback book on the tracker's effects); :meth:`Pipeline.apply` is
the one place where effects become outward writes: log lines, then each sink in
order (the outbox first: durable before anything else sees an effect).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from pbxbridge import callbacks as cb
from pbxbridge import events as ev
from pbxbridge import tracker as tr
from pbxbridge.incidents import call_json
from pbxbridge.members import RINGING_EVENTS, MemberBoard
from pbxbridge.records import Heartbeat, MemberChanged

log = structlog.get_logger("pbxbridge.pipeline")


@dataclass(frozen=True, slots=True)
class Tick:
    """Periodic housekeeping, queued like any item so only this task touches the tracker."""

    at: float


@dataclass(frozen=True, slots=True)
class Claim:
    """A call taker's claim of the oldest caller owed a callback (the local API)."""

    who: str  # the claiming phone (device)
    at: float
    reply: asyncio.Future[cb.Claimed | cb.ClaimRefused]


Item = ev.Event | Tick | Claim
Effect = tr.Effect | cb.Change


_NOT_FOR_THE_TRACKER = (Tick, Claim, ev.MemberStatus, ev.MembersListed)
# A set of exact types: one hash lookup per event on the hot path.
_FOR_THE_BOARD_TOO = frozenset(RINGING_EVENTS)


class EffectSink(Protocol):
    """Anything that wants the effects (the outbox, the callback store, metrics)."""

    def apply(self, effects: Sequence[Effect]) -> None: ...


@dataclass
class PipelineStats:
    items: int = 0
    handler_errors: int = 0


class Pipeline:
    def __init__(
        self,
        tracker: tr.Tracker,
        *,
        book: cb.CallbackBook | None = None,
        sinks: Sequence[EffectSink] = (),
    ) -> None:
        self.tracker = tracker
        self.book = book if book is not None else cb.CallbackBook()
        self.sinks = list(sinks)
        # Queue members: state owned by this task like the tracker, read at scrape time.
        self.members = MemberBoard()
        self.stats = PipelineStats()

    async def run(self, queue: asyncio.Queue[Item]) -> None:
        while True:
            self.handle(await queue.get())

    def handle(self, item: Item) -> list[Effect]:
        self.stats.items += 1
        try:
            effects = self.decide(item)
        except Exception:
            # A tracker bug must not stop every later call from being measured: the
            # item is counted and logged, the stream goes on.
            self.stats.handler_errors += 1
            log.exception("pipeline_handler_error", item=type(item).__name__)
            effects = []
        try:
            if effects:  # most events change state without an outward effect
                self.apply(effects)
        finally:
            # Whatever happened, the call taker's claim gets its answer.
            if type(item) is Claim and not item.reply.done():
                answer = [e for e in effects if isinstance(e, cb.Claimed | cb.ClaimRefused)]
                item.reply.set_result(
                    answer[0] if answer else cb.ClaimRefused(item.who, item.at, "error")
                )
        return effects

    def decide(self, item: Item) -> list[Effect]:
        """What ``item`` changes, as effects. Pure but for the state this task owns."""
        decided: list[tr.Effect]
        # Nearly every item is an AMI event for the tracker: one isinstance over a
        # tuple, not a class pattern per kind of item (+5% messages/s in the replay).
        if not isinstance(item, _NOT_FOR_THE_TRACKER):
            decided = self.tracker.handle(item)
            if type(item) in _FOR_THE_BOARD_TOO:
                changes = self.members.observe(item)  # type: ignore[arg-type]  # a RingingEvent
                if changes:
                    return (
                        [*decided, *self.book.apply(decided), *changes] if decided else [*changes]
                    )
        else:
            match item:
                case Tick(at=at):
                    decided = self.tracker.expire(at)
                    return [*decided, *self.book.apply(decided), Heartbeat(at)]
                case Claim(who=who, at=at):
                    return [self.book.claim(who, at)]
                case ev.MemberStatus():
                    return [*self.members.update(item)]
                case ev.MembersListed(at=at, members=members):
                    # The full member list after a login replaces whatever the gap hid.
                    return [*self.members.resync(at, members)]
        if not decided:
            return []
        return [*decided, *self.book.apply(decided)]

    def apply(self, effects: Sequence[Effect]) -> None:
        """The one fan-out: every effect is logged here and handed to every sink."""
        for effect in effects:
            _log(effect)
        for sink in self.sinks:
            sink.apply(effects)


def _log(effect: Effect) -> None:
    if type(effect) is MemberChanged:
        return  # the call takers' every ring and answer: kept in the store, not logged
    match effect:
        case tr.CallOffered(record=rec):
            log.info(
                "call_offered",
                call_id=rec.call_id,
                service=rec.service,
                caller_number=rec.caller_number,
                offered_at_estimated=rec.offered_at_estimated,
            )
        case tr.CallAnswered(record=rec):
            log.info(
                "call_answered",
                call_id=rec.call_id,
                queue=rec.queue,
                agent=rec.agent,
                answer_seconds=rec.answer_seconds,
                answered_at_estimated=rec.answered_at_estimated,
            )
        case tr.CallEnded(record=rec):
            record = call_json(rec)
            # The caller's name stays out of logs; the number is masked by logs.py.
            record["caller_number"] = record.pop("caller")["number"]
            log.info("call_ended", **record)
        case tr.CallUpdated(record=rec, what=what):
            log.info(
                "call_updated",
                call_id=rec.call_id,
                what=what,
                category=rec.category,
                dispatched_to=[agency for agency, _ in rec.dispatched_to],
            )
        case tr.Anomaly(kind=kind, linkedid=linkedid, detail=detail):
            log.warning("tracker_anomaly", kind=kind, linkedid=linkedid, detail=detail)
        case tr.SessionChanged(up=True, detail=banner):
            log.info("ami_session_up", banner=banner)
        case tr.SessionChanged(up=False, detail=reason, unknown=unknown):
            # Calls are not closed here: the snapshot after the next login decides.
            log.warning("ami_session_down", reason=reason, calls_unknown=unknown)
        case tr.Resynced(at=at, live=live, closed=closed, adopted=adopted, states=states):
            log.info(
                "ami_resynced",
                snapshot_at=at,
                live=live,
                closed=closed,
                adopted=adopted,
                states=dict(states),
            )
        case cb.Queued(entry=entry):
            log.info("callback_owed", call_id=entry.call_id, outcome=entry.outcome)
        case cb.Claimed(entry=entry):
            log.info("callback_claimed", call_id=entry.call_id, claimed_by=entry.claimed_by)
        case cb.ClaimRefused(who=who, reason="limited"):
            log.warning("callback_claim_limited", claimed_by=who, per_minute=cb.CLAIMS_PER_MINUTE)
        case cb.ClaimRefused():
            pass
        case cb.Attempted(entry=entry, result=result):
            log.info(
                "callback_attempted",
                call_id=entry.call_id,
                result=result,
                attempts=entry.attempts,
            )
        case cb.Closed(entry=entry):
            log.info(
                "callback_closed",
                call_id=entry.call_id,
                result=entry.result,
                attempts=entry.attempts,
            )
        case tr.RingNoAnswer() | tr.CallbackResult() | Heartbeat():
            pass
