"""Who may read caller data over TCP: the guard in front of every ``/v1/`` route.

``/metrics``, ``/health`` and ``/ready`` carry no caller data and stay open to
Prometheus. Everything under ``/v1/`` on the TCP listener:

* answers only to the Host names the listener is configured as (DNS rebinding: a page
  from evil.example resolved to 127.0.0.1 still sends ``Host: evil.example``);
* refuses any cross-origin request (an ``Origin`` other than the listener's own, or
  ``Sec-Fetch-Site: cross-site``), whatever its method or Content-Type;
* needs ``Authorization: Bearer <[api] token>``, compared in constant time; without a
  configured token these routes answer 401;
* is read-only: claims are made on the local socket only.

The wallboard (``/wallboard``) is guarded the same way. A TV cannot send a header, so
its link carries the token once (``/wallboard?token=...``): the answer moves it into an
HttpOnly, SameSite=Strict cookie and sends the browser to the same address without it,
so the token stays out of the address bar, the history and the page.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from aiohttp.typedefs import Middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PROTECTED = "/v1/"
WALLBOARD = "/wallboard"
COOKIE = "pbxbridge_token"
COOKIE_SECONDS = 365 * 86400  # a TV in the supervisors' room stays logged in
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def allowed_hosts(host: str, port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    """The Host header values the listener answers to: its address as configured, the
    loopback names when it listens on loopback, and ``extra`` ([api] allowed_hosts)."""
    names = {f"[{host}]" if ":" in host else host}
    if host in ("127.0.0.1", "::1", "localhost"):
        names |= set(LOOPBACK_NAMES)
    hosts = {f"{name}:{port}" for name in names} | set(extra)
    return frozenset(hosts)


def guard(*, token: str, hosts: frozenset[str]) -> Middleware:
    origins = frozenset(f"http://{h}" for h in hosts) | frozenset(f"https://{h}" for h in hosts)
    expected = token.encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        board = request.path == WALLBOARD or request.path.startswith(WALLBOARD + "/")
        if not (board or request.path.startswith(PROTECTED)):
            return await handler(request)
        if request.host not in hosts:
            return _refuse(421, "unknown Host: add it to [api] allowed_hosts if it is yours")
        origin = request.headers.get("Origin")
        if (origin is not None and origin not in origins) or request.headers.get(
            "Sec-Fetch-Site"
        ) == "cross-site":
            return _refuse(403, "cross-origin requests are refused")
        if not expected:
            return _refuse(401, "caller data over TCP needs [api] token (see the README)")
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        in_link = board and "token" in request.query
        if scheme.lower() != "bearer":
            given = request.query["token"] if in_link else request.cookies.get(COOKIE, "")
        if not (given and hmac.compare_digest(given.strip().encode(), expected)):
            response = _refuse(401, "expected Authorization: Bearer <[api] token>")
            response.headers["WWW-Authenticate"] = 'Bearer realm="pbxbridge"'
            return response
        if request.method not in ("GET", "HEAD"):
            return _refuse(405, "read-only: claims are made on the local socket")
        if in_link:
            rest = request.rel_url.with_query(
                [(k, v) for k, v in request.query.items() if k != "token"]
            )
            moved = web.Response(status=303, headers={"Location": str(rest)})
            moved.set_cookie(
                COOKIE,
                given.strip(),
                max_age=COOKIE_SECONDS,
                path=WALLBOARD,
                httponly=True,
                samesite="Strict",
            )
            return moved
        return await handler(request)

    return middleware


def _refuse(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
