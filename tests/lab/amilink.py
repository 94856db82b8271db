"""A deliberately small AMI connection for the lab: drive calls and record raw traffic.

It shares no code with pbxbridge on purpose: the truth the integration tests compare
pbxbridge against is computed from bytes this module recorded, with its own parsing.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

Msg = dict[str, str]


def parse_block(block: bytes) -> Msg:
    msg: Msg = {}
    for line in block.decode("utf-8", "replace").split("\r\n"):
        key, sep, value = line.partition(":")
        if sep:
            msg.setdefault(key.strip(), value.strip())
    return msg


def split_raw(raw: bytes) -> list[Msg]:
    """Every complete message in a raw AMI byte stream (the banner line skipped)."""
    if raw.startswith(b"Asterisk Call Manager"):
        raw = raw.split(b"\r\n", 1)[1]
    return [parse_block(b) for b in raw.split(b"\r\n\r\n") if b.strip()]


@dataclass
class AmiLink:
    host: str
    port: int
    username: str
    secret: str
    events: str = "on"
    raw: bytearray = field(default_factory=bytearray)
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None
    _task: asyncio.Task[None] | None = None
    _pending: dict[str, asyncio.Future[Msg]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _listeners: list[asyncio.Queue[Msg]] = field(default_factory=list)

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        banner = await self._reader.readline()
        self.raw += banner
        self._task = asyncio.create_task(self._read())
        reply = await self.action(
            "Login", Username=self.username, Secret=self.secret, Events=self.events
        )
        if reply.get("Response") != "Success":
            raise RuntimeError(f"lab AMI login failed: {reply.get('Message')}")

    async def _read(self) -> None:
        assert self._reader is not None
        buf = b""
        while chunk := await self._reader.read(65536):
            self.raw += chunk
            buf += chunk
            *blocks, buf = buf.split(b"\r\n\r\n")
            for block in blocks:
                msg = parse_block(block)
                fut = self._pending.pop(msg.get("ActionID", ""), None)
                if fut is not None and "Response" in msg and not fut.done():
                    fut.set_result(msg)
                for q in self._listeners:
                    q.put_nowait(msg)

    def listen(self) -> asyncio.Queue[Msg]:
        q: asyncio.Queue[Msg] = asyncio.Queue()
        self._listeners.append(q)
        return q

    async def action(self, name: str, *pairs: tuple[str, str], **fields: str) -> Msg:
        assert self._writer is not None
        action_id = f"lab-{next(self._ids)}"
        lines = [f"Action: {name}", f"ActionID: {action_id}"]
        lines += [f"{k}: {v}" for k, v in fields.items()]
        lines += [f"{k}: {v}" for k, v in pairs]
        fut: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = fut
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self._writer.drain()
        return await asyncio.wait_for(fut, 10)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
