"""Bounds on the HTTP listeners, so no local process can starve pbxbridge of sockets.

aiohttp reads a request's headers with no deadline and accepts connections without
limit: 300 connections that never finish their headers exhausted the descriptors
(``/health`` failed, AMI could not reconnect). Every connection passes through
:class:`Limited`, a thin protocol in front of aiohttp's request handler:

* at most ``max_connections`` at once. A connection beyond that evicts the oldest one
  still waiting for its headers (so a process that opens connections and never sends a
  request cannot keep the slots); when every connection is busy with a request, the
  new one is closed. Both are counted;
* the first request's headers must arrive within ``header_seconds`` of the connect;
  later requests on a kept-alive connection are bounded by aiohttp's keep-alive
  timeout, which the listeners set to the same value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

HEADER_END = b"\r\n\r\n"


@dataclass
class ConnectionStats:
    """One listener's connections: counters, and the ones still reading headers."""

    open: int = 0
    refused: int = 0  # closed at accept: every slot busy with a request
    too_slow: int = 0  # cut: headers not complete in time, or evicted for a newer one
    waiting: dict[Limited, None] = field(default_factory=dict)  # oldest first


class Limited(asyncio.Protocol):
    """Delegates every call to aiohttp's protocol; closes what breaks the bounds."""

    def __init__(
        self,
        inner: asyncio.Protocol,
        stats: ConnectionStats,
        *,
        max_connections: int,
        header_seconds: float,
    ) -> None:
        self._inner = inner
        self._stats = stats
        self._max = max_connections
        self._header_seconds = header_seconds
        self._deadline: asyncio.TimerHandle | None = None
        self._tail = b""
        self._counted = False
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        stats = self._stats
        if stats.open >= self._max:
            if not stats.waiting:
                stats.refused += 1
                transport.close()
                return
            next(iter(stats.waiting))._slow()  # the oldest still without a request
        stats.open += 1
        self._counted = True
        stats.waiting[self] = None
        self._deadline = asyncio.get_running_loop().call_later(self._header_seconds, self._slow)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._counted:
            return
        if self._deadline is not None:
            seen = self._tail + data
            if HEADER_END in seen:
                self._deadline.cancel()
                self._deadline = None
                self._stats.waiting.pop(self, None)
            self._tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._counted else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._stats.waiting.pop(self, None)
        if self._counted:
            self._counted = False
            self._stats.open -= 1
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def _slow(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._stats.waiting.pop(self, None)
        self._stats.too_slow += 1
        if self._transport is not None:
            # abort, not close: nothing is owed to a peer that never sent a request, and
            # the slot must be free now.
            abort = getattr(self._transport, "abort", None)
            (abort or self._transport.close)()


def limited(
    factory: Callable[[], asyncio.Protocol],
    stats: ConnectionStats,
    *,
    max_connections: int,
    header_seconds: float,
) -> Callable[[], asyncio.Protocol]:
    """A protocol factory for ``loop.create_server`` / ``create_unix_server``."""

    def make() -> asyncio.Protocol:
        return Limited(
            factory(), stats, max_connections=max_connections, header_seconds=header_seconds
        )

    return make
