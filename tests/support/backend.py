"""A real dispatch backend on loopback (aiohttp), recording every request it receives."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web


@dataclass
class Received:
    key: str
    body: bytes
    headers: dict[str, str]
    at: float
    status: int

    @property
    def doc(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


Respond = Callable[[web.Request, int], Awaitable[web.StreamResponse]]


async def ok(request: web.Request, n: int) -> web.StreamResponse:
    return web.Response(status=204)


@dataclass
class Backend:
    """``respond(request, n)`` decides each answer; ``n`` counts requests from 0."""

    respond: Respond = ok
    received: list[Received] = field(default_factory=list)
    count: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        n = self.count
        self.count += 1
        body = await request.read()
        resp = await self.respond(request, n)
        self.received.append(
            Received(
                request.headers.get("Idempotency-Key", ""),
                body,
                dict(request.headers),
                time.monotonic(),
                resp.status,
            )
        )
        self.changed.set()
        return resp

    def accepted(self) -> list[Received]:
        return [r for r in self.received if 200 <= r.status < 300]

    def accepted_keys(self) -> set[str]:
        return {r.key for r in self.accepted()}

    async def wait_for(self, predicate: Callable[[], bool], within: float) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serve(
    backend: Backend, port: int = 0, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[str]:
    """Serve ``backend`` on 127.0.0.1; yields its URL."""
    app = web.Application()
    app.router.add_post("/incidents", backend.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context)
    await site.start()
    bound = runner.addresses[0][1]
    scheme = "https" if ssl_context else "http"
    try:
        yield f"{scheme}://127.0.0.1:{bound}/incidents"
    finally:
        await runner.cleanup()


def verify_signature(
    secret: str, header: str, body: bytes, now: float, window: float = 300
) -> bool:
    """What a receiver does: recompute HMAC-SHA256 over "t.body", compare, check the window."""
    parts = dict(p.split("=", 1) for p in header.split(","))
    t = int(parts["t"])
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(now - t) <= window


def make_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 (openssl CLI).

    Returns (ca.pem, server.pem, server.key).
    """
    ca_key, ca = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ext = directory / "server.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)

    run(
        "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=pbxbridge test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    run("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    run(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext),
    )  # fmt: skip
    return ca, cert, key
