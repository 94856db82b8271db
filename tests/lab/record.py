"""Record raw AMI transcripts from the lab, one scenario per file, for the unit tests.

    python -m tests.lab.record [--full] [SCENARIO ...]   (as root; default: every scenario)

Each file starts with ``#`` header lines saying how it was captured, then the exact
bytes Asterisk sent to an AMI session logged in as the lab's pbxbridge user with
pbxbridge's event mask (banner, login reply, events, and for ``resync_mid_call`` the
CoreShowChannels and QueueStatus replies taken while calls were up).

``--full`` records what a client that asks for everything gets (a user with
``read = all``, ``Events: on``: dialplan steps, variables, device states, ...) into
tests/benchmarks/streams/: the real-shaped stream of the replay benchmark.
"""

from __future__ import annotations

import asyncio
import sys
import time

from tests.lab import confs
from tests.lab.amilink import AmiLink
from tests.lab.asterisk import REPO, Lab
from tests.lab.calls import BURST, SCENARIOS, CallGenerator, wait_idle

OUT = REPO / "tests" / "transcripts"
FULL_OUT = REPO / "tests" / "benchmarks" / "streams"
EVENT_MASK = "call,agent,user,system"


def header(name: str, lab: Lab, note: str, *, full: bool = False) -> bytes:
    version = lab.rx("core show version").strip().splitlines()[0]
    user, mask = (confs.DRIVER_USER, "on") if full else (confs.PBXBRIDGE_USER, EVENT_MASK)
    flag = "--full " if full else ""
    lines = [
        f"pbxbridge AMI transcript: {name}",
        f"captured {time.strftime('%Y-%m-%d')} by `python -m tests.lab.record {flag}{name}`",
        f"from the lab ({version}), user {user}, Events: {mask}",
        note,
        "everything after this header is the raw byte stream, CRLF line ends",
    ]
    return "".join(f"# {line}\n" for line in lines).encode()


MEMBER = "Local/1099@lab-agents/n"


async def member_sessions(drv: AmiLink) -> None:
    """What a supervisor's panel or a phone's feature code does to a queue member."""
    member = {"Queue": "backup", "Interface": MEMBER}
    await drv.action("QueueAdd", **member, MemberName="Taker 1099")
    await asyncio.sleep(0.3)
    await drv.action("QueuePause", **member, Paused="true", Reason="istirahat")
    await asyncio.sleep(0.3)
    await drv.action("QueuePause", **member, Paused="false")
    await asyncio.sleep(0.3)
    await drv.action("QueueRemove", **member)


async def record(names: list[str], *, full: bool = False) -> None:
    with Lab() as lab:
        s = lab.settings
        drv = AmiLink("127.0.0.1", s.ami_port, confs.DRIVER_USER, s.driver_secret, events="off")
        await drv.connect()
        gen = CallGenerator(drv, run_id="rec")
        for name in names:
            if full:
                rec = AmiLink("127.0.0.1", s.ami_port, confs.DRIVER_USER, s.driver_secret, "on")
            else:
                rec = AmiLink(
                    "127.0.0.1", s.ami_port, confs.PBXBRIDGE_USER, s.pbxbridge_secret, EVENT_MASK
                )
            await rec.connect()
            note = "one call of this scenario, placed by tests/lab/calls.py"
            if name == "burst":
                note = "6 simultaneous calls, more than the 4 call takers"
                await gen.burst(6)
                await asyncio.sleep(3)
            elif name == "member_sessions":
                note = "a call taker added, paused (reason istirahat), unpaused, removed"
                await member_sessions(drv)
            elif name == "resync_mid_call":
                note = "calls up (greeting, queue, talk) when CoreShowChannels/QueueStatus ran"
                await gen.place(SCENARIOS["abandoned_in_greeting"])
                await gen.place(SCENARIOS["abandoned_in_queue"])
                await gen.place(SCENARIOS["answered_quickly"])
                await asyncio.sleep(1.4)
                await rec.action("CoreShowChannels")
                await rec.action("QueueStatus")
                await asyncio.sleep(1)
            else:
                call = await gen.place(SCENARIOS[name])
                await asyncio.sleep(min(call.scenario.duration, 3))
            await wait_idle(drv)
            await asyncio.sleep(0.3)
            await rec.close()
            path = (FULL_OUT if full else OUT) / f"{name}.ami"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(header(name, lab, note, full=full) + bytes(rec.raw))
            print(f"recorded {path.relative_to(REPO)} ({len(rec.raw)} bytes)", flush=True)
        await drv.close()


def main() -> None:
    args = sys.argv[1:]
    full = "--full" in args
    names = [a for a in args if a != "--full"] or [
        *SCENARIOS,
        BURST.name,
        "resync_mid_call",
        "member_sessions",
    ]
    asyncio.run(record(names, full=full))


if __name__ == "__main__":
    main()
