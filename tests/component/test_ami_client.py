"""pbxbridge.ami.AmiClient against a scripted AMI peer over real loopback TCP."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
from structlog.testing import capture_logs

from pbxbridge.ami import (
    ActionResult,
    AmiClient,
    AmiEvent,
    AmiItem,
    AmiNotConnected,
    AmiSettings,
    SessionDown,
    SessionUp,
    backoff_delay,
)
from tests.support.ami_peer import AmiPeer, render

T = TypeVar("T")


def fast_settings(peer: AmiPeer, **overrides: Any) -> AmiSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": peer.port,
        "username": peer.username,
        "secret": peer.secret,
        "ping_interval": 0.2,
        "ping_timeout": 0.3,
        "connect_timeout": 1.0,
        "backoff_base": 0.05,
        "backoff_cap": 0.4,
        "resync_actions": (),
    }
    values.update(overrides)
    return AmiSettings(**values)


@asynccontextmanager
async def running(
    settings: AmiSettings, rng: random.Random | None = None
) -> AsyncIterator[tuple[AmiClient, asyncio.Queue[AmiItem]]]:
    out: asyncio.Queue[AmiItem] = asyncio.Queue()
    client = AmiClient(settings, out, rng=rng)
    task = asyncio.create_task(client.run())
    try:
        yield client, out
    finally:
        await client.close()
        await asyncio.wait_for(task, 2.0)
        assert not client.state.connected


async def next_of(out: asyncio.Queue[AmiItem], kind: type[T], within: float = 3.0) -> T:
    """The next item of ``kind``, skipping others."""
    async with asyncio.timeout(within):
        while True:
            item = await out.get()
            if isinstance(item, kind):
                return item


async def eventually(predicate: Callable[[], bool], within: float = 3.0) -> None:
    # Polls: client.state is a snapshot with no change notification, by design.
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def user_event(seq: int, **extra: str) -> bytes:
    return render(("Event", "UserEvent"), ("UserEvent", "Test"), ("Seq", str(seq)), *extra.items())


def seqs(items: list[AmiItem]) -> list[str | None]:
    return [
        i.message.get("Seq")
        for i in items
        if isinstance(i, AmiEvent) and i.message.event == "UserEvent"
    ]


async def drain(
    out: asyncio.Queue[AmiItem], until: Callable[[list[AmiItem]], bool]
) -> list[AmiItem]:
    items: list[AmiItem] = []
    async with asyncio.timeout(3.0):
        while not until(items):
            items.append(await out.get())
    return items


async def test_login_then_events_in_order() -> None:
    """After login the client emits SessionUp, then every event as AmiEvent in stream order."""
    async with AmiPeer() as peer, running(fast_settings(peer)) as (client, out):
        up = await next_of(out, SessionUp)
        assert up.banner == "Asterisk Call Manager/9.0.0"
        await peer.send(b"".join(user_event(n) for n in range(1, 4)), user_event(4))
        items = await drain(out, lambda got: len(seqs(got)) == 4)
        assert seqs(items) == ["1", "2", "3", "4"]
        state = client.state
        assert state.logged_in and state.connected and state.banner == up.banner
        assert state.events_received >= 4
        login = next(raw for raw in peer.actions if raw.startswith(b"Action: Login"))
        assert b"Events: call,agent,user,system" in login


async def test_unwanted_events_are_counted_not_queued() -> None:
    """With wanted_events, other events never reach the queue but are counted in
    AmiState.events_skipped; wanted events and replies to our actions still arrive."""
    noise = render(("Event", "Newexten"), ("Uniqueid", "1.1"), ("Application", "Queue"))
    async with (
        AmiPeer() as peer,
        running(fast_settings(peer, wanted_events=frozenset({"UserEvent", "FullyBooted"}))) as (
            client,
            out,
        ),
    ):
        await next_of(out, SessionUp)
        await peer.send(noise + user_event(1) + noise, noise + user_event(2))
        items = await drain(out, lambda got: len(seqs(got)) == 2)
        assert not any(isinstance(i, AmiEvent) and i.message.event == "Newexten" for i in items)
        await eventually(lambda: client.state.events_skipped == 3)
        reply = await client.action("Ping")
        assert reply.response.response == "Success"


async def test_split_utf8_survives() -> None:
    """A UTF-8 character split across two TCP reads arrives intact."""
    async with AmiPeer() as peer, running(fast_settings(peer)) as (client, out):
        await next_of(out, SessionUp)
        raw = user_event(1, CallerIDName="Müller")
        cut = raw.index(b"\xc3") + 1
        await peer.send(raw[:cut], raw[cut:])
        items = await drain(out, lambda got: len(seqs(got)) == 1)
        event = next(i for i in items if isinstance(i, AmiEvent) and i.message.get("Seq"))
        assert event.message.get("CallerIDName") == "Müller"
        assert client.state.decode_errors == 0


async def test_hung_pbx_detected_and_reconnected() -> None:
    """A PBX that stops answering pings is dropped and rebuilt within the ping bounds."""
    defaults = AmiSettings("h", 1, "u", "s")
    assert defaults.ping_interval + defaults.ping_timeout <= 10.0
    async with AmiPeer() as peer, running(fast_settings(peer)) as (client, out):
        await next_of(out, SessionUp)
        loop = asyncio.get_running_loop()
        hung_at = loop.time()
        peer.hang()
        down = await next_of(out, SessionDown)
        assert down.reason == "ping timeout"
        await next_of(out, SessionUp)
        assert loop.time() - hung_at < 0.2 + 0.3 + 0.4 + 0.5  # interval+timeout+cap+slack
        assert peer.logins == 2
        assert client.state.reconnects == 1


def test_backoff_grows_is_jittered_and_capped() -> None:
    """Backoff is uniform(0, min(cap, base*2**attempt)): bounded, varied, capped, never negative."""
    rng = random.Random(1234)
    samples = {
        a: [backoff_delay(a, base=0.5, cap=30.0, rng=rng) for _ in range(200)] for a in range(12)
    }
    for attempt, delays in samples.items():
        bound = min(30.0, 0.5 * 2**attempt)
        assert all(0.0 <= d <= bound for d in delays)
        assert len(set(delays)) == len(delays)  # jittered: no two retries line up
    assert max(samples[1]) < max(samples[4]) < max(samples[8])  # grows
    assert max(samples[11]) > 25.0  # reaches the cap region but never passes it
    assert backoff_delay(10_000, base=0.5, cap=30.0, rng=rng) <= 30.0  # no overflow


async def test_wrong_secret_is_visible_and_backed_off() -> None:
    """A rejected login is logged (no secret), counted, in state, and retried with backoff."""
    async with AmiPeer(secret="the-real-one", login_delay=0.02) as peer:
        settings = fast_settings(peer, secret="Wr0ng-Secret!", backoff_base=0.1, backoff_cap=1.0)
        with capture_logs() as logs:
            async with running(settings, rng=MaxJitter()) as (client, out):
                await eventually(lambda: client.state.login_failures >= 3)
                state = client.state
        assert state.login_failures >= 3
        assert state.last_error == "login failed: Authentication failed"
        assert not state.logged_in
        assert out.empty()  # never a SessionUp, so never a SessionDown
        failed = [e for e in logs if e["event"] == "ami_login_failed"]
        assert failed and failed[0]["log_level"] == "error"
        assert failed[0]["username"] == peer.username and failed[0]["port"] == peer.port
        assert "Wr0ng-Secret!" not in repr(logs) + repr(state) + repr(settings)
        gaps = [b - a for a, b in zip(peer.connect_times, peer.connect_times[1:], strict=False)]
        assert gaps[1] > gaps[0] * 1.5  # 0.1 s then 0.2 s (+ login delay): backing off


class MaxJitter(random.Random):
    """Pins full jitter to its upper bound so the exponential schedule is observable."""

    def uniform(self, a: float, b: float) -> float:
        return b


async def test_resync_result_lands_in_stream_order() -> None:
    """An ActionResult is queued when its list completes, between the events around it."""
    peer = AmiPeer()
    peer.lists["CoreShowChannels"] = [
        (("Event", "CoreShowChannel"), ("Channel", "PJSIP/trunk-1"), ("Linkedid", "1.1"))
    ]

    async def answer(p: AmiPeer, action_id: str) -> None:
        assert p._conn is not None
        p._conn.writer.write(
            user_event(1) + p.list_reply("CoreShowChannels", action_id) + user_event(2)
        )

    peer.scripts["CoreShowChannels"] = answer
    settings_kw = {"resync_actions": (("CoreShowChannels", ()),)}
    async with peer, running(fast_settings(peer, **settings_kw)) as (_, out):
        await next_of(out, SessionUp)
        items = await drain(out, lambda got: len(seqs(got)) == 2)
        order = [
            "result" if isinstance(i, ActionResult) else i.message.get("Seq")
            for i in items
            if isinstance(i, ActionResult) or (isinstance(i, AmiEvent) and i.message.get("Seq"))
        ]
        assert order == ["1", "result", "2"]
        (result,) = [i for i in items if isinstance(i, ActionResult)]
        assert result.action == "CoreShowChannels"
        assert result.response.get("EventList") == "start"
        # The list items, then the event that closed the list.
        assert [e.event for e in result.events] == ["CoreShowChannel", "CoreShowChannelsComplete"]
        assert result.events[0].get("Channel") == "PJSIP/trunk-1"
        # Messages carrying our ActionID never leak out as events.
        assert not any(isinstance(i, AmiEvent) and i.message.action_id for i in items)


async def test_originate_async_reply_returns() -> None:
    """'Originate successfully queued' completes the action, Async or not; the session stays."""
    async with AmiPeer() as peer, running(fast_settings(peer)) as (client, out):
        await next_of(out, SessionUp)
        fields = [
            ("Channel", "Local/100@test"),
            ("Exten", "100"),
            ("Context", "test"),
            ("Priority", "1"),
        ]
        for extra in ([], [("Async", "true")]):
            reply = await client.action("Originate", fields + extra, timeout=2.0)
            assert reply.response.get("Message") == "Originate successfully queued"
            assert reply.events == ()
        assert client.state.logged_in and len(peer.connect_times) == 1


async def test_crlf_in_value_raises_and_sends_nothing() -> None:
    """CR/LF in an action value raises ValueError before a single byte is written."""
    async with AmiPeer() as peer, running(fast_settings(peer, ping_interval=60.0)) as (client, out):
        await next_of(out, SessionUp)
        before = list(peer.actions)
        with pytest.raises(ValueError, match="Body"):
            await client.action(
                "UserEvent", {"UserEvent": "Note", "Body": "x\r\n\r\nAction: Hangup"}
            )
        await asyncio.sleep(0.1)
        assert peer.actions == before


async def test_action_when_not_connected_raises() -> None:
    """An action before login fails at once with AmiNotConnected instead of hanging."""
    client = AmiClient(AmiSettings("127.0.0.1", 1, "u", "s"), asyncio.Queue())
    with pytest.raises(AmiNotConnected):
        await client.action("Ping")


async def test_drop_emits_session_down_then_up_again() -> None:
    """A dropped connection yields SessionDown, then SessionUp after the automatic reconnect."""
    async with AmiPeer() as peer, running(fast_settings(peer)) as (client, out):
        await next_of(out, SessionUp)
        await peer.drop()
        down = await next_of(out, SessionDown)
        assert down.reason == "connection closed by peer"
        await next_of(out, SessionUp)
        assert peer.logins == 2 and client.state.logged_in


async def test_close_emits_session_down_and_closes_socket() -> None:
    """close() ends run(), emits a final SessionDown and closes the socket (peer sees EOF)."""
    async with AmiPeer() as peer:
        out: asyncio.Queue[AmiItem] = asyncio.Queue()
        client = AmiClient(fast_settings(peer), out)
        task = asyncio.create_task(client.run())
        await next_of(out, SessionUp)
        await client.close()
        await asyncio.wait_for(task, 2.0)
        assert (await next_of(out, SessionDown)).reason == "closed"
        await peer.wait_for(lambda: peer._conn is None, within=2.0)
        assert not client.state.connected
