"""sd_notify without libsystemd: READY, STATUS, STOPPING and the watchdog.

The protocol is one datagram of newline-separated ``KEY=value`` assignments sent to the
AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a leading ``@`` means the Linux abstract
namespace). Outside systemd the variable is unset and every call here is a no-op, so
the daemon runs the same from a shell, a test or a unit.

The watchdog is pinged from the event loop itself (:func:`watchdog_loop`), never from a
thread: a loop blocked by a stuck handler stops the pings, and systemd restarts the
process, which is the point of having a watchdog.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping

__all__ = [
    "extend_timeout",
    "notify",
    "ready",
    "status",
    "stopping",
    "watchdog",
    "watchdog_interval",
    "watchdog_loop",
]


def _address(env: Mapping[str, str]) -> str | bytes | None:
    path = env.get("NOTIFY_SOCKET", "")
    if not path:
        return None
    if path.startswith("@"):
        return b"\0" + path[1:].encode()
    return path


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` to systemd; False when not under systemd (no NOTIFY_SOCKET).

    A socket error (the manager went away, a wrong path) raises OSError: the caller
    logs it; a daemon that cannot reach its supervisor should not pretend it did.
    """
    address = _address(os.environ if env is None else env)
    if address is None:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.sendall(state.encode())
    return True


def _one_line(text: str) -> str:
    # A newline would start a second assignment: STATUS text must not forge READY=1.
    return " ".join(text.splitlines())


def ready(text: str | None = None, env: Mapping[str, str] | None = None) -> bool:
    """READY=1 (with an optional STATUS in the same datagram)."""
    return notify("READY=1" + (f"\nSTATUS={_one_line(text)}" if text else ""), env)


def status(text: str, env: Mapping[str, str] | None = None) -> bool:
    """STATUS=text: what `systemctl status pbxbridge` shows on its Status: line."""
    return notify(f"STATUS={_one_line(text)}", env)


def stopping(text: str | None = None, env: Mapping[str, str] | None = None) -> bool:
    """STOPPING=1: the drain has begun."""
    return notify("STOPPING=1" + (f"\nSTATUS={_one_line(text)}" if text else ""), env)


def watchdog(env: Mapping[str, str] | None = None) -> bool:
    """WATCHDOG=1: the event loop is alive."""
    return notify("WATCHDOG=1", env)


def extend_timeout(seconds: float, env: Mapping[str, str] | None = None) -> bool:
    """EXTEND_TIMEOUT_USEC: ask for more time to start or stop (a long drain)."""
    return notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}", env)


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (half of WatchdogSec=), or None when no watchdog is asked.

    systemd sets ``WATCHDOG_USEC`` and, when the variable may have been inherited by a
    child, ``WATCHDOG_PID``: a process whose pid differs must not ping.
    """
    env = os.environ if env is None else env
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    return usec / 2_000_000


async def watchdog_loop(
    interval: float | None = None, env: Mapping[str, str] | None = None
) -> None:
    """Ping WATCHDOG=1 every ``interval`` seconds until cancelled; returns at once when
    there is no watchdog (no interval and none in the environment, or no NOTIFY_SOCKET).
    """
    if interval is None:
        interval = watchdog_interval(env)
    if interval is None or not watchdog(env):
        return
    while True:
        await asyncio.sleep(interval)
        watchdog(env)
