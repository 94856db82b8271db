"""The running callback list: the pure book, its durable store, and its local API.

Fed by the pipeline as an effect sink (abandoned calls join the list, answered
repeat calls and callback results leave it); read and claimed over HTTP by the
call takers' AGI script. Everything runs on the event loop, so claims and effects
never interleave mid-change; only the SQLite writes go to the store's thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import structlog
from aiohttp import web

from pbxbridge import incidents
from pbxbridge import tracker as tr
from pbxbridge.callback_store import CallbackStore
from pbxbridge.callbacks import Attempted, Callback, CallbackBook, Change, Closed
from pbxbridge.incidents import rfc3339

log = structlog.get_logger("pbxbridge.callbacks")


class CallbackDesk:
    def __init__(
        self,
        store: CallbackStore,
        *,
        on_change: Callable[[Change], None] = lambda change: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.book = CallbackBook(store.load())
        self._on_change = on_change
        self._clock = clock

    def apply(self, effects: list[tr.Effect]) -> None:
        saved, changes = self.book.apply(effects)
        if saved:
            self.store.save(saved)
        for change in changes:
            entry = change.entry
            if isinstance(change, Closed):
                log.info(
                    "callback_closed",
                    call_id=entry.call_id,
                    result=entry.result,
                    attempts=entry.attempts,
                )
            else:
                log.info(
                    "callback_attempted",
                    call_id=entry.call_id,
                    result=change.result,
                    attempts=entry.attempts,
                )
            self._on_change(change)

    def claim(self, who: str) -> Callback | None:
        entry = self.book.claim(who, self._clock())
        if entry is not None:
            self.store.save([entry])
            log.info("callback_claimed", call_id=entry.call_id, claimed_by=who)
        return entry

    def routes(self) -> list[web.RouteDef]:
        """``GET /v1/callbacks`` and ``POST /v1/callbacks/claim`` (loopback API)."""
        return [
            web.get("/v1/callbacks", self._list),
            web.post("/v1/callbacks/claim", self._claim),
        ]

    async def _list(self, _: web.Request) -> web.Response:
        return web.json_response({"callbacks": [entry_json(e) for e in self.book.pending()]})

    async def _claim(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        who = body.get("claimed_by") if isinstance(body, dict) else None
        if not isinstance(who, str) or not 0 < len(who) <= 160 or not who.isprintable():
            return web.json_response(
                {"error": "claimed_by: expected a printable string of 1-160 characters"},
                status=400,
            )
        entry = self.claim(who)
        if entry is None:
            return web.Response(status=204)
        return web.json_response(entry_json(entry))


def entry_json(e: Callback) -> dict[str, Any]:
    data = {f.name: getattr(e, f.name) for f in fields(e) if f.name != "record"}
    for key in ("abandoned_at", "first_attempt_at", "claimed_until", "closed_at"):
        data[key] = rfc3339(data[key])
    return data


def incident_for(change: Change) -> incidents.Incident | None:
    """``call.updated`` carrying the callback state, for the dispatch backend."""
    entry = change.entry
    if entry.record is None:
        return None
    state = entry_json(entry)
    if isinstance(change, Attempted):
        state["last_attempt"] = {"result": change.result, "at": rfc3339(change.at)}
    return incidents.incident(
        entry.record,
        incidents.UPDATED,
        change.at,
        # An answered callback is an attempt and a close at the same instant: two ids.
        incidents.update_number(change.at) + isinstance(change, Closed),
        extra={"callback": state},
    )
