"""The callback list's API: who is owed a call back, and the call takers' claims.

Two faces (README, "Who may see and claim callers"):

* the local socket (``[api] socket``, a unix socket only the Asterisk group may open):
  ``GET /v1/callbacks`` and ``POST /v1/callbacks/claim``, for the call takers' AGI
  script and ``pbxbridge callbacks``;
* the TCP listener: ``GET /v1/callbacks`` only, read-only, behind :mod:`pbxbridge.access`.

A claim is a change of the callback book, so it is not made here: it is queued to the
pipeline, which decides it (one lease per phone, a rate limit) and fans it out (store,
log, metrics) like any other effect; this handler answers with what was decided.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiohttp import web

from pbxbridge import callbacks as cb
from pbxbridge.incidents import callback_json
from pbxbridge.pipeline import Claim, Item

MAX_CLAIMANT = 160
BODY_SECONDS = 2.0  # a claim's body must arrive within this
DECISION_SECONDS = 1.0  # the AGI script gives up at 1 s too


def listing(book: cb.CallbackBook) -> web.RouteDef:
    async def handler(_: web.Request) -> web.Response:
        return web.json_response({"callbacks": [callback_json(e) for e in book.pending()]})

    return web.get("/v1/callbacks", handler)


def claiming(
    submit: Callable[[Item], None], *, clock: Callable[[], float] = time.time
) -> web.RouteDef:
    async def handler(request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return _error(415, "expected Content-Type: application/json")
        try:
            async with asyncio.timeout(BODY_SECONDS):
                body = await request.json()
        except (ValueError, TimeoutError):
            body = None
        who = body.get("claimed_by") if isinstance(body, dict) else None
        if not isinstance(who, str) or not 0 < len(who) <= MAX_CLAIMANT or not who.isprintable():
            return _error(400, f"claimed_by: expected a printable string of 1-{MAX_CLAIMANT}")
        reply: asyncio.Future[cb.Claimed | cb.ClaimRefused]
        reply = asyncio.get_running_loop().create_future()
        # The lease and the rate limit belong to the phone the claimant names (the AGI
        # script names the call taker's phone: agi.phone_of).
        submit(Claim(who, clock(), reply))
        try:
            async with asyncio.timeout(DECISION_SECONDS):
                answer = await reply
        except TimeoutError:  # the pipeline is stopping, or far behind
            return _error(503, "the claim could not be decided in time")
        match answer:
            case cb.Claimed(entry=entry):
                return web.json_response(callback_json(entry))
            case cb.ClaimRefused(reason="limited"):
                return _error(429, f"at most {cb.CLAIMS_PER_MINUTE} claims a minute per phone")
            case cb.ClaimRefused(reason="empty"):
                return web.Response(status=204)
        return _error(503, "the claim could not be decided")

    return web.post("/v1/callbacks/claim", handler)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
