"""Why pbxbridge carries its own AMI client: panoramisk's defects, reproduced.

Written against panoramisk 1.4, the newest release as of 2026-12, and run against
whichever release is installed. Each defect is a strict xfail on a loopback AMI peer
that holds only while the test's own assertion fails (``raises=AssertionError``): a
release that fixes a defect turns its run red (XPASS), and so does a changed API that
keeps a proof from reaching its assertion. Letters match the list in pbxbridge/ami.py's
docstring.

pbxbridge's side of each scenario is tested with the layer that answers it; a twin is
kept here only where no other test covers the scenario:

(a) test_ami_client.test_split_utf8_survives,
    test_ami_parser.test_split_multibyte_character_survives
(b) here: test_b_handler_exception_pbxbridge
(c) test_ami_client.test_hung_pbx_detected_and_reconnected
(d) here: test_d_backoff_pbxbridge
(e) test_ami_client.test_wrong_secret_is_visible_and_backed_off
(f) test_ami_parser.test_empty_value_on_last_line_is_kept
(g) test_ami_client.test_crlf_in_value_raises_and_sends_nothing,
    test_ami_parser.test_format_action_rejects_injection
(h) test_ami_client.test_originate_async_reply_returns
(i) test_ami_client.test_login_then_events_in_order (one ordered stream, handled by the
    pipeline's one task)
(j) test_ami_parser.test_format_action_round_trip (framing is a constant, not a global)
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

import panoramisk
import pytest
from structlog.testing import capture_logs

from pbxbridge import events as ev
from pbxbridge import tracker as tr
from pbxbridge.ami import AmiClient
from pbxbridge.pipeline import Item, Pipeline
from tests.component.test_ami_client import (
    MaxJitter,
    eventually,
    fast_settings,
    offered,
    running,
)
from tests.support import settings as test_settings
from tests.support.ami_peer import AmiPeer, render

PANORAMISK = f"panoramisk {version('panoramisk')}"


def xfail(defect: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, raises=AssertionError, reason=f"{PANORAMISK}: {defect}")


@asynccontextmanager
async def pano(peer: AmiPeer, **config: Any) -> AsyncIterator[panoramisk.Manager]:
    """A panoramisk Manager logged in to ``peer`` (integers only: it int()s its delays)."""
    manager = panoramisk.Manager(
        loop=asyncio.get_running_loop(),
        host="127.0.0.1",
        port=peer.port,
        username=config.pop("username", peer.username),
        secret=config.pop("secret", peer.secret),
        reconnect_timeout=config.pop("reconnect_timeout", 1),
        **config,
    )
    await manager.connect()
    try:
        yield manager
    finally:
        # Its reconnects are bare call_later() handles; push later ones out of the test.
        manager.reconnect_timeout = 3600
        manager.close()


def user_event(seq: int, **extra: str) -> bytes:
    return render(("Event", "UserEvent"), ("UserEvent", "Test"), ("Seq", str(seq)), *extra.items())


# (a) ------------------------------------------------------------------------------------

SPLIT = user_event(1, CallerIDName="Müller")
CUT = SPLIT.index(b"\xc3") + 1


@xfail("each TCP chunk is decoded with errors='ignore'; a split UTF-8 char is dropped")
async def test_a_split_utf8_panoramisk() -> None:
    """A UTF-8 character split across TCP reads must arrive intact."""
    async with AmiPeer() as peer, pano(peer) as manager:
        got: list[Any] = []
        manager.register_event("UserEvent", lambda _m, e: got.append(e))
        await peer.wait_logins(1)
        await peer.send(SPLIT[:CUT], SPLIT[CUT:])
        await eventually(lambda: bool(got))
        assert got[0]["CallerIDName"] == "Müller"  # panoramisk 1.4: "Mller"


# (b) ------------------------------------------------------------------------------------

THREE = b"".join(user_event(n) for n in (1, 2, 3))  # one write, one chunk


@xfail("a raising handler aborts data_received: rest of the chunk lost, connection killed")
async def test_b_handler_exception_panoramisk() -> None:
    """A handler failing on one event must not lose the other events or the session."""
    async with AmiPeer() as peer, pano(peer) as manager:
        seen: list[str] = []

        def handler(_m: object, event: Any) -> None:
            seen.append(event["Seq"])
            if event["Seq"] == "1":
                raise RuntimeError("consumer bug")

        manager.register_event("UserEvent", handler)
        await peer.wait_logins(1)
        await peer.send(THREE)
        await asyncio.sleep(1.3)  # past its 1 s reconnect
        # panoramisk 1.4: (["1"], 2)
        assert (seen, len(peer.connect_times)) == (["1", "2", "3"], 1)


class FailingTracker(tr.Tracker):
    """A tracker with a bug: it raises on the first hook it is handed."""

    def __init__(self) -> None:
        super().__init__(test_settings.tracker())
        self.seen: list[str] = []

    def handle(self, event: ev.Event) -> list[tr.Effect]:
        if isinstance(event, ev.Offered):
            self.seen.append(event.ref.uniqueid)
            if len(self.seen) == 1:
                raise RuntimeError("consumer bug")
        return super().handle(event)


async def test_b_handler_exception_pbxbridge() -> None:
    """A handler failing on one event must not lose the other events or the session."""
    async with AmiPeer() as peer:
        queue: asyncio.Queue[Item] = asyncio.Queue()
        client = AmiClient(fast_settings(peer), queue.put_nowait)
        tracker = FailingTracker()
        pipeline = Pipeline(tracker)
        reader = asyncio.create_task(client.run())
        consumer = asyncio.create_task(pipeline.run(queue))
        try:
            with capture_logs() as logs:
                await peer.wait_logins(1)
                await peer.send(b"".join(offered(n) for n in (1, 2, 3)))  # one chunk
                await eventually(lambda: len(tracker.seen) == 3)
            # The bug ran in the pipeline's task, never in the reader: counted, logged,
            # and the events after it were still handled on the same session.
            assert tracker.seen == ["u1", "u2", "u3"]
            assert pipeline.stats.handler_errors == 1
            assert [e["event"] for e in logs].count("pipeline_handler_error") == 1
            assert client.state.logged_in and len(peer.connect_times) == 1
        finally:
            consumer.cancel()
            await client.close()
            await asyncio.wait({reader, consumer}, timeout=2.0)


# (c) ------------------------------------------------------------------------------------


@xfail("Ping replies are never checked; a hung PBX is never noticed")
async def test_c_hung_pbx_panoramisk() -> None:
    """A PBX that stops answering (TCP still open) must be detected and reconnected."""
    async with AmiPeer() as peer, pano(peer, ping_delay=1, ping_interval=1) as _:
        await peer.wait_logins(1)
        peer.hang()
        await asyncio.sleep(3.5)  # three unanswered pings
        assert len(peer.connect_times) >= 2


# (d) ------------------------------------------------------------------------------------


def growing(times: list[float]) -> bool:
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return all(later > earlier * 1.5 for earlier, later in itertools.pairwise(gaps))


@xfail("reconnects at a fixed interval (reconnect_timeout, default 2 s), no backoff")
async def test_d_backoff_panoramisk() -> None:
    """Repeated connection failures must be retried with growing delays."""
    async with AmiPeer(drop_on_accept=True) as peer, pano(peer) as _:
        await peer.wait_for(lambda: len(peer.connect_times) >= 3, within=4.0)
        assert growing(peer.connect_times[:3])  # panoramisk 1.4: ~1.0 s, ~1.0 s


async def test_d_backoff_pbxbridge() -> None:
    """Repeated connection failures must be retried with growing delays."""
    async with AmiPeer(drop_on_accept=True) as peer:
        settings = fast_settings(peer, backoff_base=0.1, backoff_cap=5.0)
        async with running(settings, rng=MaxJitter()):
            await peer.wait_for(lambda: len(peer.connect_times) >= 4, within=4.0)
        assert growing(peer.connect_times[:4])  # 0.1, 0.2, 0.4 s


# (e) ------------------------------------------------------------------------------------


@xfail(
    "a rejected login only sets authenticated=False: no warning or error names it "
    "('Connection lost' once the PBX closes), then it reconnects every reconnect_timeout"
)
async def test_e_wrong_secret_panoramisk(caplog: pytest.LogCaptureFixture) -> None:
    """A rejected login must be reported as an authentication failure."""
    caplog.set_level(logging.DEBUG, logger="panoramisk")
    async with AmiPeer() as peer, pano(peer, secret="wrong") as _:
        await peer.wait_for(lambda: peer.login_failures >= 2, within=4.0)
        await asyncio.sleep(0.1)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("auth" in m.lower() or "login" in m.lower() for m in errors), errors


# (f) ------------------------------------------------------------------------------------

EMPTY_LAST = render(("Event", "Hangup"), ("Uniqueid", "1.1"), ("ConnectedLineName", ""))


@xfail("each message is strip()ped: 'Key: ' on its last line becomes 'Key:', which lacks ': '")
async def test_f_empty_last_header_panoramisk() -> None:
    """A header with an empty value on a message's last line must be kept."""
    async with AmiPeer() as peer, pano(peer) as manager:
        got: list[Any] = []
        manager.register_event("Hangup", lambda _m, e: got.append(e))
        await peer.wait_logins(1)
        await peer.send(EMPTY_LAST)
        await eventually(lambda: bool(got))
        assert "ConnectedLineName" in got[0]


# (g) ------------------------------------------------------------------------------------

INJECTED = {"UserEvent": "Note", "Body": "x\r\n\r\nAction: Hangup\r\nChannel: PJSIP/victim-1"}


@xfail("values are written unescaped: CR/LF in a value injects a second action")
async def test_g_crlf_injection_panoramisk() -> None:
    """CR/LF in an action value must never reach the PBX as another action."""
    async with AmiPeer() as peer, pano(peer) as manager:
        await peer.wait_logins(1)
        manager.send_action({"Action": "UserEvent", **INJECTED})
        await asyncio.sleep(0.3)
        assert "Hangup" not in peer.action_names, peer.action_names


# (h) ------------------------------------------------------------------------------------

ORIGINATE = {"Channel": "Local/100@test", "Exten": "100", "Context": "test", "Priority": "1"}


@xfail("'successfully queued' without an Async key: KeyError('async') kills the connection")
async def test_h_originate_queued_panoramisk() -> None:
    """An 'Originate successfully queued' reply must resolve the action and keep the session."""
    loop = asyncio.get_running_loop()
    errors: list[BaseException | None] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx.get("exception")))
    try:
        async with AmiPeer() as peer, pano(peer) as manager:
            await peer.wait_logins(1)
            future = manager.send_action({"Action": "Originate", **ORIGINATE})
            done, _ = await asyncio.wait({future}, timeout=1.0)
            # panoramisk 1.4: [KeyError('async')], future never resolved, a 2nd connect
            assert (errors, bool(done)) == ([], True)
            assert len(peer.connect_times) == 1
    finally:
        loop.set_exception_handler(previous)


# (i) ------------------------------------------------------------------------------------


def work_time(seq: str) -> float:
    return (4 - int(seq)) * 0.05  # event 1 takes longest: like a slow first DB write


@xfail("coroutine callbacks become unreferenced tasks that complete out of event order")
async def test_i_async_callbacks_in_order_panoramisk() -> None:
    """Events must be handled to completion in stream order, even with async handlers."""
    async with AmiPeer() as peer, pano(peer) as manager:
        done: list[str] = []

        async def handler(_m: object, event: Any) -> None:
            await asyncio.sleep(work_time(event["Seq"]))
            done.append(event["Seq"])

        manager.register_event("UserEvent", handler)
        await peer.wait_logins(1)
        await peer.send(THREE)
        await eventually(lambda: len(done) == 3)
        assert done == ["1", "2", "3"]  # panoramisk 1.4: ["3", "2", "1"]


# (j) ------------------------------------------------------------------------------------

EOL_PROBE = """
import panoramisk.testing, panoramisk.utils as u
print(repr(u.EOL))  # import alone: unchanged
panoramisk.testing.Manager()
print(repr(u.EOL))
"""


def run_probe(code: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    return result.stdout.split()


@xfail("panoramisk.testing.Manager() sets the process-wide panoramisk.utils.EOL to '\\n'")
def test_j_global_line_ending_panoramisk() -> None:
    """Using a library's test helper must not change framing for the whole process."""
    assert run_probe(EOL_PROBE) == ["'\\r\\n'", "'\\r\\n'"]  # panoramisk 1.4: then "'\\n'"
