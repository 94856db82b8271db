"""pbxbridge's AMI client: a thin asyncio shell around the pure :mod:`pbxbridge.ami_parser`.

It only translates: bytes from Asterisk become typed events (:mod:`pbxbridge.events`,
by :class:`pbxbridge.ami_translate.Translator`) handed to ``emit`` in stream order; the
consumer (one pipeline task, behind an unbounded queue) does everything else.

Why not panoramisk, layer by layer (the defects are proved in
``tests/component/test_panoramisk_defects.py``; the README's dependency table has them):
its protocol layer decodes each chunk with ``errors='ignore'`` (a), drops an empty last
header (f) and runs callbacks inside ``data_received`` (b) -> the pure parser decodes
whole messages strictly and keeps every line, and the reader only translates and emits;
its callbacks finish out of order (i) -> one ordered queue, one consumer; its pings are
never checked (c) -> each must be answered within ``ping_timeout``; it reconnects every
2 s forever (d) -> full-jitter backoff, and a resync after every login; a rejected login
is silent and the secret travels in clear (e) -> an MD5 challenge login, an ERROR line
and state; values are written unescaped (g) and "successfully queued" replies kill the
connection (h) -> ``format_action`` refuses CR/LF, an action completes on its Response;
its test helper changes a process-wide line ending (j) -> no mutable module globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import random
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import structlog
from structlog.typing import FilteringBoundLogger

from pbxbridge import events as ev
from pbxbridge.ami_items import (
    ActionReply,
    AmiActionTimeout,
    AmiConnectionLost,
    AmiError,
    AmiNotConnected,
    AmiSettings,
    AmiState,
    Fields,
)
from pbxbridge.ami_parser import BANNER_PREFIX, AmiStreamParser, Message, format_action
from pbxbridge.ami_translate import Reply, Translator
from pbxbridge.backoff import full_jitter

__all__ = [
    "ActionReply",
    "AmiActionTimeout",
    "AmiClient",
    "AmiConnectionLost",
    "AmiError",
    "AmiNotConnected",
    "AmiSettings",
    "AmiState",
]

# Deadlines use asyncio.timeout(), never asyncio.wait_for(): on Python 3.11, wait_for
# swallows a cancellation that races with its inner future completing, and close()
# would then hang on a session that refuses to stop.

# Asterisk's own messages are a few KiB; a buffer this large without a message end means
# we are not talking to AMI, and holding it would only grow memory.
_MAX_BUFFERED = 4 * 1024 * 1024
_READ_SIZE = 64 * 1024


class _SessionEnded(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class _Pending:
    name: str
    kind: Literal["reply", "login", "resync"]
    future: asyncio.Future[ActionReply] | None
    reply: Reply = field(default_factory=Reply)


class AmiClient:
    """Keeps one logged-in AMI session alive and hands each typed event to ``emit`` (in
    stream order) until cancelled or closed. ``emit`` must neither block nor raise (a
    queue's ``put_nowait`` on an unbounded queue): it runs inside the reader."""

    def __init__(
        self,
        settings: AmiSettings,
        emit: Callable[[ev.Event], None],
        *,
        translator: Translator | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        log: FilteringBoundLogger | None = None,
    ) -> None:
        self._settings = settings
        self._emit = emit
        self.translator = translator if translator is not None else Translator()
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._log: FilteringBoundLogger = log or structlog.get_logger("pbxbridge.ami")
        self._id_prefix = f"pbxbridge-{secrets.token_hex(4)}-"
        self._ids = itertools.count(1)
        self._closing = False
        self._stop = asyncio.Event()
        self._session_task: asyncio.Task[float] | None = None
        # Per-session state, reset by _session().
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[str, _Pending] = {}
        self._banner: str | None = None
        self._logged_in = False
        self._connected_since: float | None = None
        # Counters for the state snapshot.
        self._last_error: str | None = None
        self._login_failures = 0
        self._reconnects = 0
        self._events_received = 0
        self._decode_errors = 0
        self._malformed_lines = 0
        self._bytes_received = 0
        self._events_skipped = 0

    @property
    def state(self) -> AmiState:
        return AmiState(
            connected=self._writer is not None,
            logged_in=self._logged_in,
            last_error=self._last_error,
            login_failures=self._login_failures,
            reconnects=self._reconnects,
            events_received=self._events_received,
            decode_errors=self._decode_errors,
            malformed_lines=self._malformed_lines,
            bytes_received=self._bytes_received,
            connected_since=self._connected_since,
            banner=self._banner,
            events_skipped=self._events_skipped,
        )

    async def run(self) -> None:
        """Connect, log in, read; on any failure back off and start again. Returns
        only after :meth:`close`."""
        s = self._settings
        attempt = 0
        try:
            while not self._closing:
                self._session_task = asyncio.create_task(self._session())
                await asyncio.wait({self._session_task})
                if self._closing:
                    break
                logged_in_for = self._session_task.result()  # a bug in _session ends run()
                if logged_in_for >= s.stable_after:
                    attempt = 0
                login_failed = (self._last_error or "").startswith("login failed")
                cap = s.login_backoff_cap if login_failed else s.backoff_cap
                delay = full_jitter(attempt, base=s.backoff_base, cap=cap, rng=self._rng.random)
                attempt += 1
                self._reconnects += 1
                self._log.info("ami_reconnect_scheduled", delay=round(delay, 3), attempt=attempt)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stop.wait()
        finally:
            task = self._session_task
            if task is not None and not task.done():
                task.cancel()
                await asyncio.wait({task})

    async def close(self) -> None:
        """Stop :meth:`run` and close the socket; safe to call more than once."""
        self._closing = True
        self._stop.set()
        task = self._session_task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    # A per-action deadline is part of the API, hence the noqa.
    async def action(
        self,
        name: str,
        fields: Fields = (),
        *,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> ActionReply:
        """Send one action and wait for its Response (and its event list, if the
        Response says ``EventList: start``)."""
        if not self._logged_in:
            raise AmiNotConnected(f"AMI not logged in; action {name} not sent")
        return await self._request(name, fields, "reply", timeout)

    # -- session ------------------------------------------------------------------

    async def _session(self) -> float:
        """One connection from connect to close; returns the seconds it stayed logged in."""
        s = self._settings
        loop = asyncio.get_running_loop()
        self._pending = {}
        self._banner = None
        tasks: list[asyncio.Task[str]] = []
        logged_in_at: float | None = None
        reason = "closed"
        try:
            try:
                async with asyncio.timeout(s.connect_timeout):
                    reader, self._writer = await asyncio.open_connection(s.host, s.port)
            except (OSError, TimeoutError) as exc:
                raise _SessionEnded(f"connect failed: {type(exc).__name__}") from exc
            self._connected_since = self._clock()
            banner_seen: asyncio.Future[str] = loop.create_future()
            tasks.append(asyncio.create_task(self._read_loop(reader, banner_seen)))
            banner = await self._wait(banner_seen, s.connect_timeout, "no banner")
            self._log.info("ami_connected", host=s.host, port=s.port, banner=banner)
            # MD5 challenge login: the secret never crosses the socket, so whatever
            # listens on the AMI port (Asterisk or not) never learns it.
            challenge = await self._request(
                "Challenge", {"AuthType": "MD5"}, "reply", s.connect_timeout
            )
            nonce = challenge.response.get("Challenge")
            if challenge.response.response != "Success" or not nonce:
                raise _SessionEnded(
                    "login failed: no MD5 challenge (manager.conf must keep the secret in plain)"
                )
            key = hashlib.md5((nonce + s.secret).encode(), usedforsecurity=False).hexdigest()
            fields = {"Username": s.username, "AuthType": "MD5", "Key": key, "Events": s.events}
            reply = await self._request("Login", fields, "login", s.connect_timeout)
            if reply.response.response != "Success":
                self._login_failed(reply.response)
            logged_in_at = loop.time()
            self._log.info("ami_logged_in", host=s.host, port=s.port, username=s.username)
            for action_name, action_fields in s.resync_actions:
                await self._send(action_name, action_fields, "resync", s.connect_timeout)
            tasks.append(asyncio.create_task(self._ping_loop()))
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            reason = done.pop().result()
        except _SessionEnded as exc:
            reason = exc.reason
        except AmiError as exc:
            reason = str(exc)
        except (OSError, TimeoutError) as exc:
            reason = f"connection error: {type(exc).__name__}"
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._teardown(reason)
        return 0.0 if logged_in_at is None else loop.time() - logged_in_at

    def _login_failed(self, response: Message) -> None:
        s = self._settings
        message = response.get("Message") or "no message"
        self._login_failures += 1
        self._log.error(
            "ami_login_failed",
            host=s.host,
            port=s.port,
            username=s.username,
            message=message,
            failures=self._login_failures,
        )
        raise _SessionEnded(f"login failed: {message}")

    async def _teardown(self, reason: str) -> None:
        # AmiConnected is emitted by the reader, so _logged_in (not a local) says whether
        # this session owes the consumer an AmiDisconnected.
        was_up, was_connected = self._logged_in, self._writer is not None
        writer, self._writer = self._writer, None
        self._logged_in = False
        self._connected_since = None
        self._fail_pending(reason)
        if not self._closing or reason != "closed":
            self._last_error = reason
        if was_up:
            self._emit(ev.AmiDisconnected(self._clock(), reason))
        if self._closing:
            self._log.info("ami_closed", was_logged_in=was_up)
        elif was_connected:
            self._log.warning("ami_disconnected", reason=reason, was_logged_in=was_up)
        else:
            self._log.warning("ami_connect_failed", reason=reason)
        if writer is not None:
            writer.close()
            # The peer may be gone; our side of the socket is closed either way.
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()

    def _fail_pending(self, reason: str) -> None:
        pending, self._pending = self._pending, {}
        for p in pending.values():
            if p.future is not None and not p.future.done():
                p.future.set_exception(AmiConnectionLost(reason))

    async def _wait(self, fut: asyncio.Future[str], within: float, reason: str) -> str:
        try:
            async with asyncio.timeout(within):
                return await fut
        except TimeoutError:
            raise _SessionEnded(reason) from None
        except AmiConnectionLost as exc:
            raise _SessionEnded(str(exc)) from None

    async def _ping_loop(self) -> str:
        s = self._settings
        while True:
            await asyncio.sleep(s.ping_interval)
            try:
                await self._request("Ping", (), "reply", s.ping_timeout)
            except AmiActionTimeout:
                self._log.warning("ami_ping_timeout", timeout=s.ping_timeout)
                return "ping timeout"
            except AmiConnectionLost as exc:
                return str(exc)

    # -- actions ------------------------------------------------------------------

    async def _request(
        self, name: str, fields: Fields, kind: Literal["reply", "login"], within: float
    ) -> ActionReply:
        action_id, fut = await self._send(name, fields, kind, within)
        assert fut is not None
        try:
            async with asyncio.timeout(within):
                return await fut
        except TimeoutError:
            raise AmiActionTimeout(f"no reply to {name} within {within} s") from None
        finally:
            self._pending.pop(action_id, None)

    async def _send(
        self, name: str, fields: Fields, kind: Literal["reply", "login", "resync"], within: float
    ) -> tuple[str, asyncio.Future[ActionReply] | None]:
        pairs = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
        if any(k.casefold() == "actionid" for k, _ in pairs):
            raise ValueError("ActionID is assigned by AmiClient")
        action_id = f"{self._id_prefix}{next(self._ids)}"
        data = format_action(name, [("ActionID", action_id), *pairs])  # raises before sending
        writer = self._writer
        if writer is None:
            raise AmiNotConnected(f"AMI not connected; action {name} not sent")
        fut = None if kind == "resync" else asyncio.get_running_loop().create_future()
        self._pending[action_id] = _Pending(name, kind, fut)
        writer.write(data)
        try:
            # A half-open peer fills the send buffer; don't wait on it forever.
            async with asyncio.timeout(within):
                await writer.drain()
        except TimeoutError:
            self._pending.pop(action_id, None)
            raise AmiActionTimeout(f"could not send {name} within {within} s") from None
        except (OSError, RuntimeError) as exc:
            self._pending.pop(action_id, None)
            raise AmiConnectionLost(f"sending {name}: {type(exc).__name__}") from exc
        return action_id, fut

    # -- reader -------------------------------------------------------------------

    async def _read_loop(
        self, reader: asyncio.StreamReader, banner_seen: asyncio.Future[str]
    ) -> str:
        parser = AmiStreamParser(wanted=self._settings.wanted_events)
        skipped = 0
        while True:
            try:
                chunk = await reader.read(_READ_SIZE)
            except OSError as exc:
                reason = f"read failed: {type(exc).__name__}"
                self._fail_pending(reason)
                return reason
            if not chunk:
                self._fail_pending("connection closed by peer")
                if not banner_seen.done():
                    banner_seen.set_exception(AmiConnectionLost("connection closed by peer"))
                return "connection closed by peer"
            self._bytes_received += len(chunk)
            # A reply (or list item) can only come for an action sent before this read.
            parser.replies_expected = bool(self._pending)
            messages = parser.feed(chunk)
            self._events_skipped += parser.skipped - skipped
            skipped = parser.skipped
            if not banner_seen.done() and parser.banner is not None:
                if not parser.banner.startswith(BANNER_PREFIX):
                    banner_seen.set_exception(AmiConnectionLost("not an AMI banner"))
                    return "not an AMI banner"
                self._banner = parser.banner
                banner_seen.set_result(parser.banner)
            if parser.buffered > _MAX_BUFFERED:
                self._fail_pending("oversized message")
                return "oversized message"
            now = self._clock()
            for message in messages:
                self._dispatch(message, now)

    def _dispatch(self, message: Message, now: float) -> None:
        """Route one message, synchronously and in stream order."""
        if message.decode_error:
            self._decode_errors += 1
            self._log.warning("ami_decode_error", ami_event=message.event)
        action_id = message.action_id
        if action_id is None or not action_id.startswith(self._id_prefix):
            if message.event is not None:
                self._events_received += 1
                event = self.translator.event(message, now)
                if event is not None:
                    self._emit(event)
            else:
                self._log.info("ami_unsolicited_response", response=message.response)
            return
        if message.malformed_lines:
            self._malformed_lines += message.malformed_lines
            self._log.warning("ami_malformed_lines", ami_event=message.event)
        p = self._pending.get(action_id)
        if p is None:
            # A late reply to an action that timed out, or OriginateResponse after an
            # async Originate: ours, so never an event.
            self._log.debug("ami_late_action_message", action_id=action_id)
            return
        if p.reply.add(message):
            self._complete(action_id, p, now)

    def _complete(self, action_id: str, p: _Pending, now: float) -> None:
        del self._pending[action_id]
        reply = p.reply
        response = reply.response or reply.items[-1]
        if p.kind == "resync":
            event = self.translator.listed(reply.items, now)
            if event is not None:
                self._emit(event)
            return
        if p.kind == "login" and response.response == "Success":
            # Emitted here, not in _session, so AmiConnected precedes any event that
            # shares the login reply's TCP chunk.
            self._logged_in = True
            self._emit(ev.AmiConnected(now, self._banner or ""))
        if p.future is not None and not p.future.done():
            p.future.set_result(ActionReply(response, tuple(reply.items)))
