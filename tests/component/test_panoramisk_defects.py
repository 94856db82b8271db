"""Why pbxbridge carries its own AMI client: panoramisk 1.4's defects, reproduced.

Each scenario runs against the same loopback AMI peer twice: panoramisk's run is marked
``xfail(strict=True)`` (so CI alerts if panoramisk ever fixes it), pbxbridge.ami's run must
pass. Letters match the list in pbxbridge/ami.py's docstring.
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
from typing import Any

import panoramisk
import pytest

from pbxbridge.ami import AmiEvent, AmiItem, SessionDown, SessionUp
from tests.component.test_ami_client import (
    MaxJitter,
    eventually,
    fast_settings,
    next_of,
    running,
    user_event,
)
from tests.support.ami_peer import AmiPeer, render


def xfail(defect: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=f"panoramisk 1.4: {defect}")


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


async def pbx_events(out: asyncio.Queue[AmiItem], n: int, event: str = "UserEvent") -> list[Any]:
    got: list[Any] = []
    async with asyncio.timeout(3.0):
        while len(got) < n:
            item = await out.get()
            if isinstance(item, AmiEvent) and item.message.event == event:
                got.append(item.message)
    return got


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
        assert got[0]["CallerIDName"] == "Müller"  # panoramisk: "Mller"


async def test_a_split_utf8_pbxbridge() -> None:
    """A UTF-8 character split across TCP reads must arrive intact."""
    async with AmiPeer() as peer, running(fast_settings(peer)) as (_, out):
        await next_of(out, SessionUp)
        await peer.send(SPLIT[:CUT], SPLIT[CUT:])
        (event,) = await pbx_events(out, 1)
        assert event.get("CallerIDName") == "Müller"


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
        assert (seen, len(peer.connect_times)) == (["1", "2", "3"], 1)  # panoramisk: (["1"], 2)


async def test_b_handler_exception_pbxbridge() -> None:
    """A handler failing on one event must not lose the other events or the session."""
    async with AmiPeer() as peer, running(fast_settings(peer)) as (_, out):
        await next_of(out, SessionUp)
        await peer.send(THREE)

        async def consumer() -> None:
            (event,) = await pbx_events(out, 1)
            raise RuntimeError(f"consumer bug on {event.get('Seq')}")

        with pytest.raises(RuntimeError):
            await consumer()  # the consumer dies; the reader never ran its code
        rest = await pbx_events(out, 2)
        assert [e.get("Seq") for e in rest] == ["2", "3"]
        assert len(peer.connect_times) == 1


# (c) ------------------------------------------------------------------------------------


@xfail("Ping replies are never checked; a hung PBX is never noticed")
async def test_c_hung_pbx_panoramisk() -> None:
    """A PBX that stops answering (TCP still open) must be detected and reconnected."""
    async with AmiPeer() as peer, pano(peer, ping_delay=1, ping_interval=1) as _:
        await peer.wait_logins(1)
        peer.hang()
        await asyncio.sleep(3.5)  # three unanswered pings
        assert len(peer.connect_times) >= 2


async def test_c_hung_pbx_pbxbridge() -> None:
    """A PBX that stops answering (TCP still open) must be detected and reconnected."""
    async with AmiPeer() as peer, running(fast_settings(peer)) as (_, out):
        await next_of(out, SessionUp)
        peer.hang()
        assert (await next_of(out, SessionDown)).reason == "ping timeout"
        await next_of(out, SessionUp)
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
        assert growing(peer.connect_times[:3])  # panoramisk: ~1.0 s, ~1.0 s


async def test_d_backoff_pbxbridge() -> None:
    """Repeated connection failures must be retried with growing delays."""
    async with AmiPeer(drop_on_accept=True) as peer:
        settings = fast_settings(peer, backoff_base=0.1, backoff_cap=5.0)
        async with running(settings, rng=MaxJitter()):
            await peer.wait_for(lambda: len(peer.connect_times) >= 4, within=4.0)
        assert growing(peer.connect_times[:4])  # 0.1, 0.2, 0.4 s


# (e) ------------------------------------------------------------------------------------


@xfail("a rejected login only sets authenticated=False: no error naming it, 2 s retries")
async def test_e_wrong_secret_panoramisk(caplog: pytest.LogCaptureFixture) -> None:
    """A rejected login must be reported as an authentication failure."""
    caplog.set_level(logging.DEBUG, logger="panoramisk")
    async with AmiPeer() as peer, pano(peer, secret="wrong") as _:
        await peer.wait_for(lambda: peer.login_failures >= 2, within=4.0)
        await asyncio.sleep(0.1)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("auth" in m.lower() or "login" in m.lower() for m in errors), errors


async def test_e_wrong_secret_pbxbridge() -> None:
    """A rejected login must be reported as an authentication failure."""
    async with AmiPeer() as peer, running(fast_settings(peer, secret="wrong")) as (client, _):
        await eventually(lambda: client.state.login_failures >= 2)
        assert client.state.last_error == "login failed: Authentication failed"


# (f) ------------------------------------------------------------------------------------

EMPTY_LAST = render(("Event", "Hangup"), ("Uniqueid", "1.1"), ("ConnectedLineName", ""))


@xfail("the message is strip()ped, so 'Key: ' on its last line loses its ': ' and is dropped")
async def test_f_empty_last_header_panoramisk() -> None:
    """A header with an empty value on a message's last line must be kept."""
    async with AmiPeer() as peer, pano(peer) as manager:
        got: list[Any] = []
        manager.register_event("Hangup", lambda _m, e: got.append(e))
        await peer.wait_logins(1)
        await peer.send(EMPTY_LAST)
        await eventually(lambda: bool(got))
        assert "ConnectedLineName" in got[0]


async def test_f_empty_last_header_pbxbridge() -> None:
    """A header with an empty value on a message's last line must be kept."""
    async with AmiPeer() as peer, running(fast_settings(peer)) as (_, out):
        await next_of(out, SessionUp)
        await peer.send(EMPTY_LAST)
        (event,) = await pbx_events(out, 1, event="Hangup")
        assert event.get("ConnectedLineName") == ""


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


async def test_g_crlf_injection_pbxbridge() -> None:
    """CR/LF in an action value must never reach the PBX as another action."""
    async with AmiPeer() as peer, running(fast_settings(peer)) as (client, out):
        await next_of(out, SessionUp)
        with pytest.raises(ValueError, match="Body"):
            await client.action("UserEvent", INJECTED)
        await asyncio.sleep(0.3)
        assert "Hangup" not in peer.action_names
        assert "UserEvent" not in peer.action_names


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
            # panoramisk: [KeyError('async')], future never resolved, peer sees a 2nd connect
            assert (errors, bool(done)) == ([], True)
            assert len(peer.connect_times) == 1
    finally:
        loop.set_exception_handler(previous)


async def test_h_originate_queued_pbxbridge() -> None:
    """An 'Originate successfully queued' reply must resolve the action and keep the session."""
    async with AmiPeer() as peer, running(fast_settings(peer)) as (client, out):
        await next_of(out, SessionUp)
        reply = await client.action("Originate", ORIGINATE, timeout=1.0)
        assert reply.response.get("Message") == "Originate successfully queued"
        assert len(peer.connect_times) == 1 and client.state.logged_in


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
        assert done == ["1", "2", "3"]  # panoramisk: ["3", "2", "1"]


async def test_i_async_callbacks_in_order_pbxbridge() -> None:
    """Events must be handled to completion in stream order, even with async handlers."""
    async with AmiPeer() as peer, running(fast_settings(peer)) as (_, out):
        await next_of(out, SessionUp)
        await peer.send(THREE)
        done: list[str] = []
        for event in await pbx_events(out, 3):  # one consumer task, one event at a time
            await asyncio.sleep(work_time(event.get("Seq")))
            done.append(event.get("Seq"))
        assert done == ["1", "2", "3"]


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
    assert run_probe(EOL_PROBE) == ["'\\r\\n'", "'\\r\\n'"]  # panoramisk: then "'\\n'"


def test_j_global_line_ending_pbxbridge() -> None:
    """Using a library's test helper must not change framing for the whole process."""
    probe = EOL_PROBE + textwrap.dedent("""
        from pbxbridge.ami_parser import format_action, parse
        raw = format_action("Ping", {})
        print(raw.endswith(b"\\r\\n\\r\\n"), len(parse(b"Event: A\\r\\n\\r\\n")[0]))
    """)
    assert run_probe(probe)[2:] == ["True", "1"]
