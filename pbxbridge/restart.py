"""After a restart: settle the calls the outbox says were announced but never ended.

The outbox holds each call's last announced state; the first AMI snapshot after start
says which calls Asterisk still has. Still live: the tracker takes them back and follows
them to their real end. Gone: they end as ``interrupted``, so the dispatch backend never
keeps a ``call.offered`` without its ``call.ended``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace

import structlog

from pbxbridge import events as ev
from pbxbridge import incidents as inc
from pbxbridge import tracker as tr
from pbxbridge.outbox import OpenCall, OutboxSink

log = structlog.get_logger("pbxbridge.restart")


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What to do with the calls the outbox says were open when pbxbridge stopped."""

    close: tuple[OpenCall, ...]  # gone from the PBX: end them as interrupted
    live: tuple[OpenCall, ...]  # still up in the PBX: keep tracking them


def reconcile(open_calls: Iterable[OpenCall], live_linkedids: Collection[str]) -> Reconciliation:
    """Split open calls by the first snapshot's live Linkedids. Pure."""
    calls = list(open_calls)
    return Reconciliation(
        close=tuple(c for c in calls if c.linkedid not in live_linkedids),
        live=tuple(c for c in calls if c.linkedid in live_linkedids),
    )


def interrupted(call: OpenCall, at: float) -> inc.Incident:
    """The call.ended event closing ``call`` as interrupted at ``at`` (the snapshot time)."""
    rec = replace(call.record, ended_at=at, outcome="interrupted", abandon_stage=None)
    return inc.incident(rec, inc.ENDED, at)


def reconciler(
    open_calls: list[OpenCall], tracker: tr.Tracker, outbox_sink: OutboxSink
) -> Callable[[ev.Snapshot], None]:
    """After a restart, the first snapshot settles the calls the outbox says were open:
    still live -> tracked again; gone -> ended as interrupted (no dangling call.offered)."""
    pending = list(open_calls)

    def settle(snapshot: ev.Snapshot) -> None:
        if not pending:
            return
        d = reconcile(pending, {ch.ref.linkedid for ch in snapshot.channels})
        pending.clear()
        for call in d.live:
            tracker.restore(call.record)
        outbox_sink.enqueue([interrupted(call, snapshot.at) for call in d.close])
        log.info("restart_reconciled", still_live=len(d.live), closed=len(d.close))

    return settle
