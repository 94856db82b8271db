"""The callback list's local API: ``GET /v1/callbacks`` and ``POST /v1/callbacks/claim``.

Read by ``pbxbridge callbacks`` and claimed by the call takers' AGI script. A claim is
a change of the callback book, so it is not made here: it is queued to the pipeline,
which decides it and fans it out (store, log) like any other effect, and this
handler answers with what the pipeline decided.
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


def routes(
    book: cb.CallbackBook,
    submit: Callable[[Item], None],
    *,
    clock: Callable[[], float] = time.time,
) -> list[web.RouteDef]:
    async def listing(_: web.Request) -> web.Response:
        return web.json_response({"callbacks": [callback_json(e) for e in book.pending()]})

    async def claim(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        who = body.get("claimed_by") if isinstance(body, dict) else None
        if not isinstance(who, str) or not 0 < len(who) <= MAX_CLAIMANT or not who.isprintable():
            error = f"claimed_by: expected a printable string of 1-{MAX_CLAIMANT} characters"
            return web.json_response({"error": error}, status=400)
        reply: asyncio.Future[cb.Callback | None] = asyncio.get_running_loop().create_future()
        submit(Claim(who, clock(), reply))
        entry = await reply
        if entry is None:
            return web.Response(status=204)
        return web.json_response(callback_json(entry))

    return [web.get("/v1/callbacks", listing), web.post("/v1/callbacks/claim", claim)]
