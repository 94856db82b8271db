"""The call takers' AGI script against hostile surroundings: a proxy in its environment,
an API that redirects, an API that never answers. It goes where it was told or nowhere,
and never holds the call taker longer than 2 s."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from tests.support.backend import free_port

Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def server(answer: Answer, seen: list[str]) -> AsyncIterator[str]:
    """Any path, any method, on 127.0.0.1: yields its base URL; ``seen`` gets each path."""

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(request.path_qs)
        return await answer(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


ENTRY = {"call_id": "pbx:L1", "number": "0812000111"}


async def run_agi(
    api: str, env: dict[str, str] | None = None, *, asterisk_answers: bool = True
) -> tuple[str, float]:
    """Run ``pbxbridge-agi callback`` as Asterisk would (AGI environment and command
    replies on stdin); returns what it wrote (its AGI commands) and how long it ran.
    Without ``asterisk_answers`` only GET VARIABLE is answered: a stuck Asterisk."""
    agi_env = "agi_channel: PJSIP/1001-0000002a\nagi_callerid: 1001\n\n"
    replies = f"200 result=1 ({api})\n" + ("200 result=1\n" * 3 if asterisk_answers else "")
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pbxbridge.agi", "callback",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write((agi_env + replies).encode())
    await proc.stdin.drain()
    try:
        await asyncio.wait_for(proc.wait(), 10)  # stdin stays open, as Asterisk's does
    finally:
        took = time.monotonic() - started
        proc.stdin.close()
    return (await proc.stdout.read()).decode(), took


def status_of(out: str) -> str:
    [line] = [x for x in out.splitlines() if "PBXBRIDGE_CALLBACK_STATUS" in x]
    return line.rsplit(" ", 1)[1].strip('"')


async def test_a_redirect_is_not_followed() -> None:
    """An API answering 307 elsewhere gets UNAVAILABLE; the other place sees nothing."""
    elsewhere: list[str] = []
    async with server(ok_claim, elsewhere) as target:

        async def redirect(request: web.Request) -> web.StreamResponse:
            return web.Response(status=307, headers={"Location": f"{target}/v1/callbacks/claim"})

        asked: list[str] = []
        async with server(redirect, asked) as api:
            out, _ = await run_agi(api)
    assert asked == ["/v1/callbacks/claim"]
    assert status_of(out) == "UNAVAILABLE"
    assert elsewhere == []


async def test_a_proxy_in_the_environment_is_never_used() -> None:
    """http_proxy / HTTP_PROXY set by whoever started Asterisk do not divert the claim."""
    via_proxy: list[str] = []
    direct: list[str] = []
    async with server(ok_claim, via_proxy) as proxy, server(ok_claim, direct) as api:
        out, _ = await run_agi(api, {"http_proxy": proxy, "HTTP_PROXY": proxy})
    assert status_of(out) == "OK"
    assert direct == ["/v1/callbacks/claim"] and via_proxy == []


async def test_an_api_that_never_answers_costs_at_most_two_seconds() -> None:
    """Connected but silent (a hung pbxbridge): the whole run, variables included, ends
    within the 2 s hard limit, telling the dialplan UNAVAILABLE."""
    port = free_port()
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await asyncio.sleep(30)

    listener = await asyncio.start_server(silent, "127.0.0.1", port)
    async with listener:
        out, took = await run_agi(f"http://127.0.0.1:{port}")
        assert status_of(out) == "UNAVAILABLE"
        assert took < 2.3, took
        # And with an Asterisk that never answers SET VARIABLE either: still 2 s in all.
        _, took = await run_agi(f"http://127.0.0.1:{port}", asterisk_answers=False)
        assert took < 2.3, took
        for w in held:
            w.close()


async def ok_claim(request: web.Request) -> web.StreamResponse:
    return web.json_response(ENTRY)
