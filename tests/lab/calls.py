"""The call generator: places emergency (and internal) calls on the lab through AMI.

Each named scenario is a set of channel variables read by the lab dialplan (see
``confs.extensions_conf``) plus the outcome the tracker must report for it. The
caller's first channel gets a known Uniqueid (Originate ``ChannelId``), which is also
the call's Linkedid, so a test can match pbxbridge's record to the call it placed.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from tests.lab import confs
from tests.lab.amilink import AmiLink


@dataclass(frozen=True)
class Scenario:
    name: str
    variables: dict[str, str]
    outcome: str | None  # None: not an emergency call, pbxbridge must report nothing
    stage: str | None = None
    queue: str | None = None
    ring_no_answer: int = 0
    category: str | None = None
    dispatched: tuple[str, ...] = ()
    duration: float = 8.0  # upper bound of how long the call lasts, for pacing
    exten: str = "112"
    context: str = confs.ENTRY_CONTEXT

    @property
    def emergency(self) -> bool:
        return self.outcome is not None


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            "answered_quickly",
            {"GREETING": "0.5", "RINGS": "0.5", "TALK": "1"},
            "answered",
            queue="calltakers",
            duration=4,
        ),
        Scenario(
            "answered_after_long_wait",
            {"GREETING": "0.5", "RINGS": "5/5/1", "TALK": "1"},
            "answered",
            queue="calltakers",
            ring_no_answer=2,
            duration=15,
        ),
        Scenario(
            "abandoned_in_greeting",
            {"GREETING": "3", "PATIENCE": "1"},
            "abandoned",
            stage="before_queue",
            duration=3,
        ),
        Scenario(
            "abandoned_in_queue",
            {"GREETING": "0.5", "HOLD": "1", "PATIENCE": "2.5"},
            "abandoned",
            stage="queue",
            duration=4,
        ),
        Scenario(
            "abandoned_while_ringing",
            {"GREETING": "0.5", "RINGS": "10", "PATIENCE": "2.5"},
            "abandoned",
            stage="ringing",
            duration=4,
        ),
        Scenario(
            "ring_no_answer_then_answered",
            {"GREETING": "0.5", "RINGS": "5/1", "TALK": "1"},
            "answered",
            queue="calltakers",
            ring_no_answer=1,
            duration=10,
        ),
        Scenario(
            "overflow_to_backup",
            {"GREETING": "0.5", "HOLD": "1", "QTIMEOUT": "2", "RINGS": "0.5", "TALK": "1"},
            "answered",
            queue="backup",
            duration=7,
        ),
        Scenario(
            "unanswered",
            {"GREETING": "0.5", "HOLD": "1", "QTIMEOUT": "1", "BHOLD": "1", "BTIMEOUT": "1"},
            "unanswered",
            duration=5,
        ),
        Scenario(
            "classified_during_call",
            {"GREETING": "0.5", "RINGS": "0.5", "TALK": "2", "CLASSIFY": "*71"},
            "answered",
            queue="calltakers",
            category="prank",
            duration=6,
        ),
        Scenario(
            "blind_transfer_to_fire",
            {
                "GREETING": "0.5",
                "RINGS": "0.5",
                "TALK": "1",
                "XFER": "blind",
                "AGENCY": "113",
                "AGENCY_TALK": "2",
            },
            "answered",
            queue="calltakers",
            dispatched=("fire",),
            duration=8,
        ),
        Scenario(
            "attended_transfer_to_police",
            {
                "GREETING": "0.5",
                "RINGS": "0.5",
                "TALK": "3",
                "XFER": "attended",
                "AGENCY": "110",
                "AGENCY_TALK": "6",
            },
            "answered",
            queue="calltakers",
            dispatched=("police",),
            duration=14,
        ),
        Scenario(
            "internal_call",
            {"TALK": "1"},
            None,
            exten="2000",
            context=confs.INTERNAL_CONTEXT,
            duration=3,
        ),
    ]
}

# The burst: more simultaneous callers than call takers (4 + 2 backup); everyone is
# patient, so everyone is answered, some after waiting with no phone free.
BURST = Scenario(
    "burst",
    {"GREETING": "0.5", "RINGS": "0.5", "TALK": "3"},
    "answered",
    duration=20,
)


async def _dial_from_lab(
    link: AmiLink, channel: str, variables: dict[str, str], **fields: str
) -> None:
    """Originate ``channel`` with its other side waiting in the caller context."""
    pairs = [("Variable", f"{k}={v}") for k, v in variables.items()]
    reply = await link.action(
        "Originate",
        *pairs,
        Channel=channel,
        Context=confs.CALLER_CONTEXT,
        Exten="s",
        Priority="1",
        Async="true",
        **fields,
    )
    if reply.get("Response") != "Success":
        raise RuntimeError(f"Originate failed: {reply}")


async def press_callback_key(link: AmiLink, phone: str, *, stay: float = 6) -> str:
    """A call taker's phone dials the callback feature code (*112); returns its channel id."""
    channel_id = f"taker-{phone}-{time.monotonic_ns()}"
    await _dial_from_lab(
        link,
        f"Local/*112@{confs.TAKERS_CONTEXT}",
        {"PATIENCE": str(stay)},
        CallerID=f'"Call taker" <{phone}>',
        ChannelId=channel_id,
        OtherChannelId=f"{channel_id}b",
    )
    return channel_id


async def classify_after_call(link: AmiLink, extension: str, category: str) -> None:
    """The call taker's phone (Local/<ext>@lab-agents) dials its classification code."""
    await _dial_from_lab(
        link, f"Local/{extension}@{confs.AGENTS_CONTEXT}/n", {"POSTCLASS": category}
    )


@dataclass(frozen=True)
class PlacedCall:
    linkedid: str
    scenario: Scenario
    caller_number: str
    placed_at: float


@dataclass
class CallGenerator:
    link: AmiLink
    run_id: str = field(default_factory=lambda: f"{int(time.time())}")
    rng: random.Random = field(default_factory=random.Random)
    placed: list[PlacedCall] = field(default_factory=list)
    _n: int = 0

    async def place(self, scenario: Scenario, number: str | None = None) -> PlacedCall:
        """Place one call; ``number`` is the caller's (default: a random mobile number
        that answers when called back: lab-callee never answers 0899... numbers)."""
        self._n += 1
        linkedid = f"lab{self.run_id}.{self._n}"
        number = number or f"0812{self.rng.randrange(10**7, 10**8)}"
        variables = {**scenario.variables, "LABID": linkedid}
        pairs = [("Variable", f"__{k}={v}") for k, v in variables.items()]
        # PATIENCE belongs to the caller's side only; inheriting it is harmless.
        reply = await self.link.action(
            "Originate",
            *pairs,
            Channel=f"Local/{scenario.exten}@{scenario.context}",
            Context=confs.CALLER_CONTEXT,
            Exten="s",
            Priority="1",
            CallerID=f'"Lab Caller {self._n}" <{number}>',
            ChannelId=linkedid,
            OtherChannelId=f"{linkedid}b",
            Async="true",
            Timeout="30000",
        )
        if reply.get("Response") != "Success":
            raise RuntimeError(f"Originate failed: {reply}")
        call = PlacedCall(linkedid, scenario, number, time.time())
        self.placed.append(call)
        return call

    async def burst(self, size: int) -> list[PlacedCall]:
        return [await self.place(BURST) for _ in range(size)]

    async def mix(self, count: int, *, concurrency: int = 3) -> list[PlacedCall]:
        """Place ``count`` calls covering every scenario, at most ``concurrency`` at once.

        Concurrency stays below the team size so that each scenario's outcome is
        determined by its own variables, not by the luck of who is free.
        """
        names = list(SCENARIOS)
        order = names * (count // len(names)) + self.rng.sample(names, count % len(names))
        self.rng.shuffle(order)
        slots = asyncio.Semaphore(concurrency)
        done: list[PlacedCall] = []

        async def one(name: str) -> None:
            async with slots:
                call = await self.place(SCENARIOS[name])
                done.append(call)
                await asyncio.sleep(call.scenario.duration)

        async with asyncio.TaskGroup() as tg:
            for name in order:
                tg.create_task(one(name))
                await asyncio.sleep(0.2)
        return done


async def lab_links(settings: confs.LabSettings) -> tuple[AmiLink, AmiLink]:
    """A driver link (places calls, no events) and a recorder logged in as pbxbridge
    with pbxbridge's event classes (the raw truth the tests compare against)."""
    driver = AmiLink(
        "127.0.0.1", settings.ami_port, confs.DRIVER_USER, settings.driver_secret, events="off"
    )
    recorder = AmiLink(
        "127.0.0.1",
        settings.ami_port,
        confs.PBXBRIDGE_USER,
        settings.pbxbridge_secret,
        events="call,agent,user,system",
    )
    await driver.connect()
    await recorder.connect()
    return driver, recorder


async def wait_idle(link: AmiLink, within: float = 60) -> None:
    """Wait until the lab has no channels left (every call has ended)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        reply = await link.action("Command", Command="core show channels count")
        text = reply.get("Output", "")
        if text.split(" ", 1)[0] == "0" and "active channels" in text:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError("lab calls still up after the deadline")
