"""config/asterisk/manager.d/pbxbridge.conf loaded into the real lab Asterisk.

The snippet is rendered (test secret, a user name of its own) into the lab's etc
directory, #included from the lab's manager.conf and loaded with `manager reload`, as a
PBX administrator would; manager.conf is restored afterwards. Variants of the same
account (without the filter, without one read class, without the write class) log in
beside it and watch the same call, so the privileges are shown to be each necessary.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pbxbridge.ami_translate import TRANSLATORS
from tests.lab import confs
from tests.lab.amilink import AmiLink, Msg, split_raw
from tests.lab.asterisk import Lab
from tests.lab.calls import SCENARIOS, CallGenerator, wait_idle

pytestmark = pytest.mark.asterisk

SNIPPET = Path(__file__).resolve().parents[2] / "config/asterisk/manager.d/pbxbridge.conf"
INCLUDED = "pbxbridge-account-test.conf"
# What pbxbridge asks for at login (pbxbridge.ami_items.AmiSettings.events).
LOGIN_EVENTS = "call,agent,user,system"
READ_CLASSES = ("system", "call", "agent", "user")
# Events the account must deliver (the translator table, minus QueueMember, which is a
# QueueStatus reply item, not an event), and the one user event the hook sends.
WANTED = (frozenset(TRANSLATORS) - {"QueueMember"}) | {"Shutdown"}
# What one ring-no-answer-then-answered call must show pbxbridge: every class at work.
SEEN_ON_A_CALL = frozenset(
    {
        "FullyBooted",
        "Newchannel",
        "Hangup",
        "UserEvent",
        "QueueCallerJoin",
        "QueueCallerLeave",
        "AgentCalled",
        "AgentRingNoAnswer",
        "AgentConnect",
        "QueueMemberStatus",
    }
)


@dataclass(frozen=True)
class Account:
    user: str
    read: str = ",".join(READ_CLASSES)
    write: str = "reporting"
    filtered: bool = True
    events: str = LOGIN_EVENTS  # the Events: of the Login action
    secret: str = field(default_factory=lambda: secrets.token_hex(12))


def render(snippet: str, account: Account, *, general: bool) -> str:
    """The snippet as deployed, for one account variant."""
    out: list[str] = []
    section = ""
    for raw in snippet.splitlines():
        line = raw
        head = re.match(r"^\[(.+?)\]", line)
        if head:
            section = head.group(1)
            if section == "general" and not general:
                continue
            if section == confs.PBXBRIDGE_USER:
                line = f"[{account.user}]"
        elif section == "general" and not general:
            continue
        elif line.startswith("secret ="):
            line = f"secret = {account.secret}"
        elif line.startswith("read ="):
            line = f"read = {account.read}"
        elif line.startswith("write ="):
            line = f"write = {account.write}"
        elif line.startswith("eventfilter") and not account.filtered:
            continue
        out.append(line)
    return "\n".join(out) + "\n"


ACCOUNTS = {
    "deployed": Account("pbxb-deployed"),
    "unfiltered": Account("pbxb-unfiltered", filtered=False),
    "read-all": Account("pbxb-readall", read="all", filtered=False, events="on"),
    "no-write": Account("pbxb-nowrite", write=""),
    **{
        f"no-{c}": Account(f"pbxb-no{c}", read=",".join(x for x in READ_CLASSES if x != c))
        for c in READ_CLASSES
    },
}


@pytest.fixture(scope="module")
def installed(lab: Lab) -> Iterator[dict[str, Account]]:
    """Every account variant loaded into the lab with `manager reload`, then removed."""
    etc = lab.lab_dir / "etc"
    manager_conf = etc / "manager.conf"
    original = manager_conf.read_text()
    snippet = SNIPPET.read_text()
    text = "".join(
        render(snippet, acc, general=(i == 0)) for i, acc in enumerate(ACCOUNTS.values())
    )
    (etc / INCLUDED).write_text(text)
    # The lab sets timestampevents itself; take it out so that only the snippet's
    # [general](+) can turn it on.
    assert "timestampevents = yes" in original
    base = original.replace("timestampevents = yes", "timestampevents = no")
    manager_conf.write_text(base + f'\n#include "{INCLUDED}"\n')
    try:
        out = lab.rx("manager reload")
        users = lab.rx("manager show users")
        missing = [a.user for a in ACCOUNTS.values() if a.user not in users]
        assert not missing, f"manager reload did not load {missing}: {out}\n{users}"
        yield ACCOUNTS
    finally:
        manager_conf.write_text(original)
        (etc / INCLUDED).unlink(missing_ok=True)
        lab.rx("manager reload")


@pytest.fixture
async def sessions(lab: Lab, installed: dict[str, Account]) -> AsyncIterator[dict[str, AmiLink]]:
    links = {
        name: AmiLink("127.0.0.1", lab.settings.ami_port, acc.user, acc.secret, events=acc.events)
        for name, acc in installed.items()
    }
    try:
        for link in links.values():
            await link.connect()
        yield links
    finally:
        for link in links.values():
            await link.close()


def events(link: AmiLink, since: int = 0) -> list[Msg]:
    """Events (not action replies) in the session's raw bytes from offset ``since``."""
    raw = bytes(link.raw[since:])
    return [m for m in split_raw(raw) if "Event" in m and "ActionID" not in m]


async def test_actions_pbxbridge_sends_are_allowed(sessions: dict[str, AmiLink]) -> None:
    """Login, Ping, CoreShowChannels and QueueStatus succeed for the deployed account,
    and their list replies arrive in full although the event filter is on."""
    link = sessions["deployed"]
    assert (await link.action("Ping"))["Response"] == "Success"
    listen = link.listen()
    reply = await link.action("CoreShowChannels")
    assert reply["Response"] == "Success", reply
    reply = await link.action("QueueStatus")
    assert reply["Response"] == "Success", reply
    names: list[str] = []
    async with asyncio.timeout(5):
        while "QueueStatusComplete" not in names:
            names.append((await listen.get()).get("Event", ""))
    assert "CoreShowChannelsComplete" in names
    assert "QueueParams" in names
    assert "QueueMember" in names


async def test_write_privilege_is_least(sessions: dict[str, AmiLink]) -> None:
    """write=reporting is needed for CoreShowChannels, and grants no action that changes
    a call or the PBX (Originate, Hangup, Redirect, Command, Reload, Filter)."""
    nowrite = sessions["no-write"]
    assert (await nowrite.action("CoreShowChannels"))["Response"] == "Error"
    assert (await nowrite.action("QueueStatus"))["Response"] == "Success"
    link = sessions["deployed"]
    for name, fields in {
        "Originate": {"Channel": "Local/2001@lab-internal", "Application": "Wait"},
        "Hangup": {"Channel": "Local/none"},
        "Redirect": {"Channel": "Local/none", "Exten": "s", "Context": "x", "Priority": "1"},
        "Command": {"Command": "core show version"},
        "Reload": {},
        "Filter": {"Operation": "Add", "Filter": "Event: Newexten"},
        "QueueAdd": {"Queue": "calltakers", "Interface": "Local/9@x"},
    }.items():
        reply = await link.action(name, **fields)
        assert reply["Response"] == "Error", (name, reply)
        assert "permission denied" in reply.get("Message", "").lower(), (name, reply)


async def test_login_only_from_loopback_address(lab: Lab, installed: dict[str, Account]) -> None:
    """permit/deny admit 127.0.0.1 only: the same account from 127.0.0.2 is refused."""
    acc = installed["deployed"]
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", lab.settings.ami_port, local_addr=("127.0.0.2", 0)
    )
    try:
        await reader.readline()
        writer.write(
            f"Action: Login\r\nUsername: {acc.user}\r\nSecret: {acc.secret}\r\n\r\n".encode()
        )
        async with asyncio.timeout(5):
            reply = await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()
    assert b"Response: Error" in reply


async def test_one_call_through_the_account(
    lab: Lab, sessions: dict[str, AmiLink], capsys: pytest.CaptureFixture[str]
) -> None:
    """On a real call the deployed account delivers every event pbxbridge uses, stamped,
    and no other (no Newexten, no VarSet), and each read class is needed for some."""
    s = lab.settings
    driver = AmiLink("127.0.0.1", s.ami_port, confs.DRIVER_USER, s.driver_secret, events="off")
    await driver.connect()
    try:
        starts = {name: len(link.raw) for name, link in sessions.items()}
        await CallGenerator(driver).place(SCENARIOS["ring_no_answer_then_answered"])
        await asyncio.sleep(2)
        await wait_idle(driver, within=60)
        await asyncio.sleep(0.5)
    finally:
        await driver.close()

    seen = {name: Counter(m["Event"] for m in events(link)) for name, link in sessions.items()}
    deployed = seen["deployed"]
    assert set(deployed) <= WANTED, set(deployed) - WANTED
    assert set(deployed) >= SEEN_ON_A_CALL, SEEN_ON_A_CALL - set(deployed)
    assert {"Newexten", "VarSet"} <= set(seen["read-all"])
    user_events = {m.get("UserEvent") for m in events(sessions["deployed"])} - {None}
    assert user_events == {"PbxbridgeOffered"}
    # timestampevents came from the snippet's [general](+) (the lab's own is off here).
    assert all("Timestamp" in m for m in events(sessions["deployed"], starts["deployed"]))
    for cls in READ_CLASSES:
        lost = SEEN_ON_A_CALL - set(seen[f"no-{cls}"])
        assert lost, f"read class {cls} delivers nothing pbxbridge uses"

    # The filter's effect, for the README: this call's events and bytes with and without.
    def volume(name: str) -> tuple[int, int]:
        link = sessions[name]
        return len(events(link, starts[name])), len(link.raw) - starts[name]

    (n_on, b_on), (n_off, b_off) = volume("deployed"), volume("unfiltered")
    n_all, b_all = volume("read-all")
    with capsys.disabled():
        print(
            f"\n[ami account] one call: filtered {n_on} events / {b_on} bytes; "
            f"same classes unfiltered {n_off} events / {b_off} bytes; "
            f"read=all unfiltered {n_all} events / {b_all} bytes; "
            f"lost per dropped read class: "
            + "; ".join(
                f"{c}: {sorted(SEEN_ON_A_CALL - set(seen['no-' + c]))}" for c in READ_CLASSES
            )
        )
    assert n_on < n_off < n_all
