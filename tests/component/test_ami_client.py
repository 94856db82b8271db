"""pbxbridge.ami.AmiClient against a scripted AMI peer over real loopback TCP."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
from structlog.testing import capture_logs

from pbxbridge import dialplan_vars as dv
from pbxbridge import events as ev
from pbxbridge.ami import AmiClient, AmiNotConnected, AmiSettings
from tests.support import settings as test_settings
from tests.support.ami_peer import AmiPeer, render

T = TypeVar("T")


def fast_settings(peer: AmiPeer, **overrides: Any) -> AmiSettings:
    """Settings for ``peer`` (built through pbxbridge.config), with quick pings and
    backoff and no resync actions unless ``overrides`` say otherwise."""
    policy: dict[str, Any] = {
        "secret": peer.secret,
        "ping_interval": 0.2,
        "ping_timeout": 0.3,
        "connect_timeout": 1.0,
        "backoff_base": 0.05,
        "backoff_cap": 0.4,
        "resync_actions": (),
    }
    policy.update(overrides)
    built = test_settings.ami("127.0.0.1", peer.port, **policy)
    assert built.username == peer.username
    return built


@asynccontextmanager
async def running(
    settings: AmiSettings, rng: random.Random | None = None
) -> AsyncIterator[tuple[AmiClient, asyncio.Queue[ev.Event]]]:
    out: asyncio.Queue[ev.Event] = asyncio.Queue()
    client = AmiClient(settings, out.put_nowait, rng=rng)
    task = asyncio.create_task(client.run())
    try:
        yield client, out
    finally:
        await client.close()
        await asyncio.wait_for(task, 2.0)
        assert not client.state.connected


async def next_of(out: asyncio.Queue[ev.Event], kind: type[T], within: float = 3.0) -> T:
    """The next event of ``kind``, skipping others."""
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


def offered(seq: int, caller_name: str = "Caller") -> bytes:
    """The dialplan hook PbxbridgeOffered as Asterisk writes it, for channel ``u<seq>``:
    pbxbridge emits it as ev.Offered."""
    return render(
        ("Event", "UserEvent"),
        ("Privilege", "user,all"),
        ("Timestamp", f"{1795972000 + seq}.250000"),
        ("Channel", f"PJSIP/trunk-{seq:08x}"),
        ("CallerIDNum", "0612345678"),
        ("CallerIDName", caller_name),
        ("Exten", "112"),
        ("Uniqueid", f"u{seq}"),
        ("Linkedid", f"u{seq}"),
        ("UserEvent", dv.USEREVENT_OFFERED),
        (dv.HEADER_SERVICE, "112"),
    )


def seqs(items: list[ev.Event]) -> list[str]:
    """The Uniqueids of the Offered events among ``items``, in order."""
    return [i.ref.uniqueid for i in items if isinstance(i, ev.Offered)]


async def drain(
    out: asyncio.Queue[ev.Event], until: Callable[[list[ev.Event]], bool]
) -> list[ev.Event]:
    items: list[ev.Event] = []
    async with asyncio.timeout(3.0):
        while not until(items):
            items.append(await out.get())
    return items


async def test_login_then_events_in_order() -> None:
    """After login the client emits AmiConnected, then each event it translates as its
    typed event, in stream order; an event pbxbridge does not translate is counted,
    not emitted."""
    foreign = render(("Event", "UserEvent"), ("UserEvent", "SomeoneElses"), ("Uniqueid", "x"))
    async with AmiPeer() as peer, running(fast_settings(peer)) as (client, out):
        up = await next_of(out, ev.AmiConnected)
        assert up.banner == "Asterisk Call Manager/9.0.0"
        await peer.send(b"".join(offered(n) for n in range(1, 4)), foreign + offered(4))
        items = await drain(out, lambda got: len(seqs(got)) == 4)
        assert seqs(items) == ["u1", "u2", "u3", "u4"]
        # FullyBooted (sent with the login reply), then the hooks; never the foreign one.
        assert [type(i) for i in items] == [ev.Booted, *[ev.Offered] * 4]
        assert items[1] == ev.Offered(
            1795972001.25,
            ev.ChannelRef("u1", "u1", "PJSIP/trunk-00000001", "0612345678", "Caller", "112"),
            "112",
        )
        state = client.state
        assert state.logged_in and state.connected and state.banner == up.banner
        assert state.events_received == 6  # FullyBooted, four hooks, the foreign event
        assert client.translator.stats.events == 6
        assert client.translator.stats.untranslated == 1
        assert out.empty()
        login = next(raw for raw in peer.actions if raw.startswith(b"Action: Login"))
        assert b"Events: call,agent,user,system" in login


async def test_unwanted_events_are_counted_not_queued() -> None:
    """With wanted_events, other events never reach the queue (nor the translator) but
    are counted in AmiState.events_skipped; wanted events and replies to our actions
    still arrive."""
    noise = render(("Event", "Newexten"), ("Uniqueid", "1.1"), ("Application", "Queue"))
    wanted = frozenset({"UserEvent", "FullyBooted"})
    async with (
        AmiPeer() as peer,
        running(fast_settings(peer, wanted_events=wanted)) as (client, out),
    ):
        await next_of(out, ev.AmiConnected)
        await peer.send(noise + offered(1) + noise, noise + offered(2))
        items = await drain(out, lambda got: len(seqs(got)) == 2)
        assert [type(i) for i in items] == [ev.Booted, ev.Offered, ev.Offered]
        await eventually(lambda: client.state.events_skipped == 3)
        assert client.state.events_received == 3  # FullyBooted and the two hooks
        assert client.translator.stats.untranslated == 0
        reply = await client.action("Ping")
        assert reply.response.response == "Success"


async def test_split_utf8_survives() -> None:
    """A UTF-8 character split across two TCP reads arrives intact."""
    async with AmiPeer() as peer, running(fast_settings(peer)) as (client, out):
        await next_of(out, ev.AmiConnected)
        raw = offered(1, caller_name="Müller")
        cut = raw.index(b"\xc3") + 1
        await peer.send(raw[:cut], raw[cut:])
        event = await next_of(out, ev.Offered)
        assert event.ref.caller_name == "Müller"
        assert client.state.decode_errors == 0


async def test_hung_pbx_detected_and_reconnected() -> None:
    """A PBX that stops answering pings is dropped and rebuilt within the ping bounds."""
    defaults = test_settings.ami("h", 1)
    assert defaults.ping_interval + defaults.ping_timeout <= 10.0
    async with AmiPeer() as peer, running(fast_settings(peer)) as (client, out):
        await next_of(out, ev.AmiConnected)
        loop = asyncio.get_running_loop()
        hung_at = loop.time()
        peer.hang()
        down = await next_of(out, ev.AmiDisconnected)
        assert down.reason == "ping timeout"
        await next_of(out, ev.AmiConnected)
        assert loop.time() - hung_at < 0.2 + 0.3 + 0.4 + 0.5  # interval+timeout+cap+slack
        assert peer.logins == 2
        assert client.state.reconnects == 1


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
        assert out.empty()  # never an AmiConnected, so never an AmiDisconnected
        failed = [e for e in logs if e["event"] == "ami_login_failed"]
        assert failed and failed[0]["log_level"] == "error"
        assert failed[0]["username"] == peer.username and failed[0]["port"] == peer.port
        assert "Wr0ng-Secret!" not in repr(logs) + repr(state) + repr(settings)
        gaps = [b - a for a, b in zip(peer.connect_times, peer.connect_times[1:], strict=False)]
        assert gaps[1] > gaps[0] * 1.5  # 0.1 s then 0.2 s (+ login delay): backing off


async def test_the_secret_never_crosses_the_socket() -> None:
    """A fake listener on the AMI port (Asterisk down, another local process bound the
    port) learns no secret: login is an MD5 challenge; a listener that offers no
    challenge gets no Login at all and the session fails with a clear reason."""
    async with AmiPeer(secret="Only-Asterisk-Knows") as peer:
        async with running(fast_settings(peer, secret="Only-Asterisk-Knows")) as (client, out):
            await next_of(out, ev.AmiConnected)
        wire = b"".join(peer.actions)
        assert b"Only-Asterisk-Knows" not in wire
        assert b"AuthType: MD5" in wire and b"Key: " in wire

    async def no_challenge(peer: AmiPeer, action_id: str) -> None:
        await peer.send(render(("Response", "Error"), ("ActionID", action_id)))

    async with AmiPeer(secret="Only-Asterisk-Knows", scripts={"Challenge": no_challenge}) as fake:
        async with running(fast_settings(fake, secret="Only-Asterisk-Knows")) as (client, out):
            await eventually(lambda: (client.state.last_error or "").startswith("login failed"))
            assert "no MD5 challenge" in (client.state.last_error or "")
        assert not any(b"Login" in a for a in fake.actions)
        assert b"Only-Asterisk-Knows" not in b"".join(fake.actions)


class MaxJitter(random.Random):
    """Pins full jitter to its upper bound so the exponential schedule is observable."""

    def random(self) -> float:
        return math.nextafter(1.0, 0.0)  # the largest float in [0, 1)


async def test_resync_result_lands_in_stream_order() -> None:
    """A resync list is emitted as one event (CoreShowChannels as Snapshot, QueueStatus
    as MembersListed) when it completes, between the events around it."""
    peer = AmiPeer()
    peer.lists["CoreShowChannels"] = [
        (
            ("Event", "CoreShowChannel"),
            ("Channel", "PJSIP/trunk-1"),
            ("Uniqueid", "1.1"),
            ("Linkedid", "1.1"),
            ("Application", "Queue"),
            ("ApplicationData", "q112,,,,300"),
            ("Duration", "00:01:05"),
            ("BridgeId", ""),
        )
    ]
    peer.lists["QueueStatus"] = [
        (
            ("Event", "QueueMember"),
            ("Queue", "q112"),
            ("Name", "PJSIP/1001"),
            ("Status", "1"),
            ("Paused", "0"),
        )
    ]

    async def channels(p: AmiPeer, action_id: str) -> None:
        assert p._conn is not None
        p._conn.writer.write(offered(1) + p.list_reply("CoreShowChannels", action_id) + offered(2))

    async def members(p: AmiPeer, action_id: str) -> None:
        assert p._conn is not None
        p._conn.writer.write(p.list_reply("QueueStatus", action_id) + offered(3))

    peer.scripts.update(CoreShowChannels=channels, QueueStatus=members)
    resync = {"resync_actions": (("CoreShowChannels", ()), ("QueueStatus", ()))}
    async with peer, running(fast_settings(peer, **resync)) as (client, out):
        await next_of(out, ev.AmiConnected)
        items = await drain(out, lambda got: len(seqs(got)) == 3)
        order = [i.ref.uniqueid if isinstance(i, ev.Offered) else type(i).__name__ for i in items]
        assert order == ["Booted", "u1", "Snapshot", "u2", "MembersListed", "u3"]
        (snapshot,) = [i for i in items if isinstance(i, ev.Snapshot)]
        (channel,) = snapshot.channels
        assert (channel.ref.channel, channel.ref.linkedid) == ("PJSIP/trunk-1", "1.1")
        assert (channel.queue, channel.duration, channel.bridged) == ("q112", 65.0, False)
        (listed,) = [i for i in items if isinstance(i, ev.MembersListed)]
        assert [(m.queue, m.member, m.status, m.paused) for m in listed.members] == [
            ("q112", "PJSIP/1001", 1, False)
        ]
        # Messages carrying our ActionID never reach the translator as events.
        assert client.state.events_received == client.translator.stats.events == 4


async def test_originate_async_reply_returns() -> None:
    """'Originate successfully queued' completes the action, Async or not; the session stays."""
    async with AmiPeer() as peer, running(fast_settings(peer)) as (client, out):
        await next_of(out, ev.AmiConnected)
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
        await next_of(out, ev.AmiConnected)
        before = list(peer.actions)
        with pytest.raises(ValueError, match="Body"):
            await client.action(
                "UserEvent", {"UserEvent": "Note", "Body": "x\r\n\r\nAction: Hangup"}
            )
        await asyncio.sleep(0.1)
        assert peer.actions == before


async def test_action_when_not_connected_raises() -> None:
    """An action before login fails at once with AmiNotConnected instead of hanging."""
    emitted: list[ev.Event] = []
    client = AmiClient(test_settings.ami("127.0.0.1", 1), emitted.append)
    with pytest.raises(AmiNotConnected):
        await client.action("Ping")
    assert emitted == []


async def test_drop_emits_disconnected_then_connected_again() -> None:
    """A dropped connection yields AmiDisconnected, then AmiConnected after the automatic
    reconnect."""
    async with AmiPeer() as peer, running(fast_settings(peer)) as (client, out):
        await next_of(out, ev.AmiConnected)
        await peer.drop()
        down = await next_of(out, ev.AmiDisconnected)
        assert down.reason == "connection closed by peer"
        await next_of(out, ev.AmiConnected)
        assert peer.logins == 2 and client.state.logged_in


async def test_close_emits_disconnected_and_closes_socket() -> None:
    """close() ends run(), emits a final AmiDisconnected and closes the socket (peer sees
    EOF)."""
    async with AmiPeer() as peer:
        out: asyncio.Queue[ev.Event] = asyncio.Queue()
        client = AmiClient(fast_settings(peer), out.put_nowait)
        task = asyncio.create_task(client.run())
        await next_of(out, ev.AmiConnected)
        await client.close()
        await asyncio.wait_for(task, 2.0)
        assert (await next_of(out, ev.AmiDisconnected)).reason == "closed"
        await peer.wait_for(lambda: peer._conn is None, within=2.0)
        assert not client.state.connected
