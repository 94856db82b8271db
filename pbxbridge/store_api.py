"""The call store's read API: ``GET /v1/calls`` (JSON pages or a CSV stream),
``GET /v1/calls/{call_id}``, ``GET /v1/agents`` (call-taker sessions) and
``GET /v1/report`` (the monthly report).

Served behind :mod:`pbxbridge.access` like every ``/v1`` route: caller data needs the
read-only token. Queries run on a thread (the store is a file, or PostgreSQL), a few at
a time, so a heavy export never holds up the daemon's event loop.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from aiohttp import web

from pbxbridge import report, sessions, store_query
from pbxbridge.store_read import Reader, Target, open_reader
from pbxbridge.store_sql import StoreUnavailable

CONCURRENT_QUERIES = 4
CSV_PAGE = 1000

T = TypeVar("T")


def routes(target: Target, center: report.Center, language: str) -> list[web.RouteDef]:
    tz = center.tz
    gate = asyncio.Semaphore(CONCURRENT_QUERIES)
    # A report reads a whole period and draws its charts: seconds of CPU and 100 MB of
    # charting libraries. It runs in a child process of its own, one at a time: the
    # event path keeps its core and its interpreter lock, and the memory goes back when
    # the report is done.
    reports = asyncio.Semaphore(1)
    pool = ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=1
    )

    async def read(fn: Callable[[Reader], T]) -> T:
        def run() -> T:
            with open_reader(target) as reader:
                return fn(reader)

        async with gate:
            return await asyncio.to_thread(run)

    async def calls(request: web.Request) -> web.StreamResponse:
        params = _single(request)
        page = store_query.parse_calls(params, tz)
        if _wants_csv(request):
            return await _csv(request, target, page, tz, gate)
        rows = await read(lambda r: r.calls(page))
        body: dict[str, Any] = {"calls": [json.loads(doc) for doc, _, _ in rows], "next": None}
        if len(rows) == page.limit:
            _, at, call_id = rows[-1]
            body["next"] = store_query.cursor(page.query, at, call_id)
        return web.json_response(body)

    async def one(request: web.Request) -> web.Response:
        if request.query:
            raise store_query.QueryError(next(iter(request.query)), "no parameters here")
        call_id = request.match_info["call_id"]
        doc = await read(lambda r: r.call(call_id))
        if doc is None:
            return web.json_response({"error": f"no call {call_id!r} in the store"}, status=404)
        return web.json_response({"call": json.loads(doc)})

    async def agents(request: web.Request) -> web.Response:
        period = store_query.parse_sessions(_single(request), tz)
        changes, amis = await read(lambda r: (r.member_changes(period), r.ami_sessions(period)))
        return web.json_response(sessions.sessions_json(changes, amis, period))

    async def monthly(request: web.Request) -> web.Response:
        query = store_query.parse_report(_single(request), language)
        async with reports:
            data = await asyncio.get_running_loop().run_in_executor(
                pool, report.make_from, target, query, center, time.time()
            )
        name = f"pbxbridge-report-{query.first}-{query.last}.{query.format}"
        return web.Response(
            body=data,
            headers={
                "Content-Type": report.MEDIA_TYPES[query.format],
                "Content-Disposition": f'inline; filename="{name}"',
                # The page has no script and fetches nothing; say so to the browser too.
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                "img-src data:",
                "Cache-Control": "no-store",
            },
        )

    return [
        web.get("/v1/report", _answering(monthly)),
        web.get("/v1/calls", _answering(calls)),
        web.get("/v1/calls/{call_id}", _answering(one)),
        web.get("/v1/agents", _answering(agents)),
    ]


def _answering(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Bad questions: 400 naming the parameter; a store that cannot be read: 503."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except store_query.QueryError as exc:
            return web.json_response(exc.json(), status=400)
        except StoreUnavailable as exc:
            return web.json_response({"error": str(exc)}, status=503)

    return wrapped


def _single(request: web.Request) -> dict[str, str]:
    for name in request.query:
        if len(request.query.getall(name)) > 1:
            raise store_query.QueryError(name, f"{name}: given more than once")
    return dict(request.query)


def _wants_csv(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return any(part.split(";")[0].strip() == "text/csv" for part in accept.split(","))


async def _csv(
    request: web.Request,
    target: Target,
    page: store_query.Page,
    tz: ZoneInfo,
    gate: asyncio.Semaphore,
) -> web.StreamResponse:
    """Every row of the query from its cursor on, page by page: constant memory."""
    async with gate:
        reader = await asyncio.to_thread(open_reader, target)
        try:
            response = web.StreamResponse(
                headers={
                    "Content-Type": "text/csv; charset=utf-8",
                    "Content-Disposition": 'attachment; filename="calls.csv"',
                }
            )
            await response.prepare(request)
            pages = reader.pages(store_query.Page(page.query, CSV_PAGE, page.after))
            csv_rows = store_query.CsvRows(tz)
            await response.write(csv_rows.header().encode())

            def next_page() -> str | None:
                rows = next(pages, None)
                return None if rows is None else csv_rows.page(json.loads(d) for d, _, _ in rows)

            while (text := await asyncio.to_thread(next_page)) is not None:
                await response.write(text.encode("utf-8"))
            await response.write_eof()
            return response
        finally:
            await asyncio.to_thread(reader.close)
