"""pbxbridge.systemd against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbxbridge import systemd


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[tuple[socket.socket, dict[str, str]]]:
    """A bound datagram socket at a filesystem path, and the environment naming it."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    with sock:
        yield sock, {"NOTIFY_SOCKET": str(path)}


def received(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def nothing_pending(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(4096)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(2.0)
    return False


def test_each_helper_sends_exactly_its_assignments(
    manager: tuple[socket.socket, dict[str, str]],
) -> None:
    """Every helper sends one datagram holding exactly the protocol's assignments."""
    sock, env = manager
    assert systemd.ready(env=env)
    assert received(sock) == "READY=1"
    assert systemd.ready("AMI up, backend up", env=env)
    assert received(sock) == "READY=1\nSTATUS=AMI up, backend up"
    assert systemd.status("AMI down (reconnecting)", env=env)
    assert received(sock) == "STATUS=AMI down (reconnecting)"
    assert systemd.stopping("draining outbox", env=env)
    assert received(sock) == "STOPPING=1\nSTATUS=draining outbox"
    assert systemd.watchdog(env=env)
    assert received(sock) == "WATCHDOG=1"
    assert systemd.extend_timeout(2.5, env=env)
    assert received(sock) == "EXTEND_TIMEOUT_USEC=2500000"
    assert nothing_pending(sock)


def test_status_text_cannot_forge_a_second_assignment(
    manager: tuple[socket.socket, dict[str, str]],
) -> None:
    """A newline inside STATUS text is flattened, so it can never smuggle in READY=1."""
    sock, env = manager
    systemd.status("backend down\nREADY=1", env=env)
    assert received(sock) == "STATUS=backend down READY=1"


def test_abstract_socket_address() -> None:
    """A NOTIFY_SOCKET starting with '@' reaches the abstract-namespace socket of that name."""
    name = f"pbxbridge-test-{secrets.token_hex(6)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2.0)
        assert systemd.notify("READY=1\nSTATUS=abstract", env={"NOTIFY_SOCKET": "@" + name})
        assert received(sock) == "READY=1\nSTATUS=abstract"


def test_no_notify_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without NOTIFY_SOCKET (outside systemd) every helper does nothing and says so."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False
    assert systemd.ready() is False
    assert systemd.status("x") is False
    assert systemd.stopping() is False
    assert systemd.watchdog(env={"NOTIFY_SOCKET": ""}) is False


def test_unreachable_notify_socket_raises(tmp_path: Path) -> None:
    """A NOTIFY_SOCKET that names no socket is an error the caller sees, not a silent drop."""
    with pytest.raises(OSError):
        systemd.notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "missing.sock")})


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
        ({"WATCHDOG_USEC": "500000"}, 0.25),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    """The ping interval is half of WATCHDOG_USEC, and none for another pid or a bad value."""
    assert systemd.watchdog_interval(env) == expected


async def test_watchdog_loop_pings_periodically(
    manager: tuple[socket.socket, dict[str, str]],
) -> None:
    """The watchdog loop sends WATCHDOG=1 at once and then every interval (half WatchdogSec)."""
    sock, env = manager
    env = {**env, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}
    sock.setblocking(False)
    started = time.monotonic()
    task = asyncio.create_task(systemd.watchdog_loop(env=env))
    await asyncio.sleep(0.55)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    elapsed = time.monotonic() - started
    pings = []
    while True:
        try:
            pings.append(sock.recv(64).decode())
        except BlockingIOError:
            break
    assert set(pings) == {"WATCHDOG=1"}
    # 0.1 s interval over ~0.55 s: one at start plus about five more.
    assert 4 <= len(pings) <= int(elapsed / 0.1) + 1


async def test_blocked_loop_stops_the_pings(
    manager: tuple[socket.socket, dict[str, str]],
) -> None:
    """While the event loop is blocked no WATCHDOG=1 is sent, so systemd can notice a hang."""
    sock, env = manager
    sock.setblocking(False)
    task = asyncio.create_task(systemd.watchdog_loop(0.05, env=env))
    await asyncio.sleep(0.01)
    assert sock.recv(64) == b"WATCHDOG=1"
    time.sleep(0.3)  # noqa: ASYNC251 -- the point: a handler that blocks the loop
    with pytest.raises(BlockingIOError):
        sock.recv(64)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_watchdog_loop_without_watchdog_returns(
    manager: tuple[socket.socket, dict[str, str]],
) -> None:
    """With no WATCHDOG_USEC, or no NOTIFY_SOCKET, the watchdog loop ends at once."""
    _, env = manager
    async with asyncio.timeout(1):
        await systemd.watchdog_loop(env=env)
        await systemd.watchdog_loop(0.01, env={})
