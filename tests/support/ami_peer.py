"""A scripted fake Asterisk AMI server on 127.0.0.1, port 0, for component tests.

It speaks just enough AMI (banner, Login, Ping, CoreShowChannels, QueueStatus, Originate)
to drive a client over a real TCP socket, records every action it receives as raw bytes,
and lets a test push arbitrary bytes in arbitrary chunkings, hang (stop answering while
keeping TCP open) or drop the connection. It deliberately does not use pbxbridge's parser.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType

Script = Callable[["AmiPeer", str], Awaitable[None]]
LIST_MESSAGES = {
    "CoreShowChannels": "Channels will follow",
    "QueueStatus": "Queue status will follow",
}


def render(*pairs: tuple[str, str]) -> bytes:
    """One AMI message, CRLF-framed."""
    return "".join(f"{k}: {v}\r\n" for k, v in pairs).encode() + b"\r\n"


def parse_action(raw: bytes) -> dict[str, str]:
    """Headers of one received action, keys lower-cased (first occurrence wins)."""
    headers: dict[str, str] = {}
    for line in raw.decode("utf-8", errors="replace").splitlines():
        key, _, value = line.partition(":")
        headers.setdefault(key.strip().lower(), value.strip())
    return headers


@dataclass
class _Conn:
    writer: asyncio.StreamWriter
    hung: bool = False
    logged_in: bool = False
    challenge: str = ""


@dataclass
class AmiPeer:
    username: str = "pbxbridge"
    secret: str = "s3cret-Pa55"
    banner: bytes = b"Asterisk Call Manager/9.0.0\r\n"
    login_delay: float = 0.05
    fully_booted: bool = True
    drop_on_accept: bool = False
    # Items (each a tuple of header pairs) answered to CoreShowChannels / QueueStatus.
    lists: dict[str, list[tuple[tuple[str, str], ...]]] = field(default_factory=dict)
    # Replaces the default answer to an action: script(peer, action_id).
    scripts: dict[str, Script] = field(default_factory=dict)
    actions: list[bytes] = field(default_factory=list)
    connect_times: list[float] = field(default_factory=list)
    logins: int = 0
    login_failures: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _conn: _Conn | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def __aenter__(self) -> AmiPeer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self.drop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 1.0)

    # -- test controls ----------------------------------------------------------------

    @property
    def action_names(self) -> list[str]:
        return [parse_action(raw).get("action", "") for raw in self.actions]

    async def send(self, *chunks: bytes, pause: float = 0.05) -> None:
        """Write each chunk separately (drain + pause between), so each is its own read."""
        assert self._conn is not None, "no client connected"
        for i, chunk in enumerate(chunks):
            if i:
                await asyncio.sleep(pause)
            self._conn.writer.write(chunk)
            await self._conn.writer.drain()

    def hang(self) -> None:
        """Stop answering on the current connection but keep TCP open (a hung PBX)."""
        assert self._conn is not None
        self._conn.hung = True

    async def drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(conn.writer.wait_closed(), 1.0)

    async def wait_for(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_logins(self, n: int, within: float = 5.0) -> None:
        await self.wait_for(lambda: self.logins >= n, within)

    def list_reply(self, name: str, action_id: str) -> bytes:
        items = self.lists.get(name, [])
        out = [
            render(
                ("Response", "Success"),
                ("ActionID", action_id),
                ("EventList", "start"),
                ("Message", LIST_MESSAGES.get(name, "List will follow")),
            )
        ]
        out += [render(*item, ("ActionID", action_id)) for item in items]
        out.append(
            render(
                ("Event", f"{name}Complete"),
                ("ActionID", action_id),
                ("EventList", "Complete"),
                ("ListItems", str(len(items))),
            )
        )
        return b"".join(out)

    # -- server side ------------------------------------------------------------------

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connect_times.append(time.monotonic())
        await self._notify()
        if self.drop_on_accept:
            writer.close()
            return
        conn = self._conn = _Conn(writer)
        writer.write(self.banner)
        buffer = b""
        try:
            while chunk := await reader.read(65536):
                buffer += chunk
                # Tolerate panoramisk's bare-LF mode too (see defect (j)).
                while (end := _frame_end(buffer)) is not None:
                    raw, buffer = buffer[: end[0]], buffer[end[1] :]
                    self.actions.append(raw)
                    await self._answer(conn, parse_action(raw))
                    await self._notify()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            if self._conn is conn:
                self._conn = None
            await self._notify()

    async def _answer(self, conn: _Conn, action: dict[str, str]) -> None:
        name, action_id = action.get("action", ""), action.get("actionid", "")
        if conn.hung:
            return
        if name in self.scripts:
            await self.scripts[name](self, action_id)
        elif name.lower() == "challenge":
            conn.challenge = str(random.randrange(10**8, 10**9))
            conn.writer.write(
                render(
                    ("Response", "Success"), ("ActionID", action_id), ("Challenge", conn.challenge)
                )
            )
        elif name.lower() == "login":
            await self._login(conn, action, action_id)
        elif name.lower() == "ping":
            conn.writer.write(
                render(
                    ("Response", "Success"),
                    ("ActionID", action_id),
                    ("Ping", "Pong"),
                    ("Timestamp", f"{time.time():.6f}"),
                )
            )
        elif name in LIST_MESSAGES:
            conn.writer.write(self.list_reply(name, action_id))
        elif name.lower() == "originate":
            conn.writer.write(
                render(
                    ("Response", "Success"),
                    ("ActionID", action_id),
                    ("Message", "Originate successfully queued"),
                )
            )
        else:
            conn.writer.write(
                render(
                    ("Response", "Error"),
                    ("ActionID", action_id),
                    ("Message", "Invalid/unknown command"),
                )
            )
        with contextlib.suppress(ConnectionError):
            await conn.writer.drain()

    async def _login(self, conn: _Conn, action: dict[str, str], action_id: str) -> None:
        if action.get("authtype", "").lower() == "md5":
            # Asterisk's authenticate(): MD5(challenge + secret), lowercase hex.
            expected = hashlib.md5((conn.challenge + self.secret).encode()).hexdigest()
            ok = bool(conn.challenge) and action.get("key") == expected
        else:
            ok = action.get("secret") == self.secret  # panoramisk's plain login
        if action.get("username") != self.username or not ok:
            # Like Asterisk: sleep, refuse, close.
            self.login_failures += 1
            await asyncio.sleep(self.login_delay)
            conn.writer.write(
                render(
                    ("Response", "Error"),
                    ("ActionID", action_id),
                    ("Message", "Authentication failed"),
                )
            )
            with contextlib.suppress(ConnectionError):
                await conn.writer.drain()
            conn.writer.close()
            return
        conn.logged_in = True
        self.logins += 1
        conn.writer.write(
            render(
                ("Response", "Success"),
                ("ActionID", action_id),
                ("Message", "Authentication accepted"),
            )
        )
        if self.fully_booted:
            conn.writer.write(
                render(
                    ("Event", "FullyBooted"),
                    ("Privilege", "system,all"),
                    ("Uptime", "1234"),
                    ("LastReload", "1234"),
                    ("Status", "Fully Booted"),
                )
            )


def _frame_end(buffer: bytes) -> tuple[int, int] | None:
    crlf, lf = buffer.find(b"\r\n\r\n"), buffer.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf <= lf):
        return crlf, crlf + 4
    if lf >= 0:
        return lf, lf + 2
    return None
