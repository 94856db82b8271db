"""The real daemon under a real NOTIFY_SOCKET: what systemd sees of pbxbridge."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

from tests.lab.asterisk import free_port
from tests.support.daemon import Daemon


def config(tmp_path: Path, ami_port: int) -> Path:
    path = tmp_path / "pbxbridge.toml"
    path.write_text(
        f"""[pbx]
name = "t"
[ami]
port = {ami_port}
secret = "not-used"
[metrics]
listen = "127.0.0.1:{free_port()}"
[outbox]
path = "{tmp_path / "outbox.sqlite3"}"
[api]
socket = "{tmp_path / "api.sock"}"
socket_group = "root"
"""
    )
    return path


def receive(sock: socket.socket, until: float) -> list[str]:
    out: list[str] = []
    while time.monotonic() < until:
        try:
            out.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
    return out


def test_ready_watchdog_status_and_stopping_with_asterisk_down(tmp_path: Path) -> None:
    """With Asterisk unreachable, pbxbridge still tells systemd READY (so systemd does not
    restart it in a loop), pings the watchdog, reports AMI down in STATUS, and on SIGTERM
    says STOPPING and exits 0 within the drain bound."""
    notify = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(0.2)
    closed_port = free_port()  # nothing listens there: AMI stays down
    daemon = Daemon(
        config(tmp_path, closed_port),
        env={"NOTIFY_SOCKET": str(notify), "WATCHDOG_USEC": "1000000"},
    ).start()
    try:
        first = receive(sock, time.monotonic() + 8)
        assert first and first[0].startswith("READY=1"), first
        assert first.count("WATCHDOG=1") >= 3, first
        status = [m for m in first if m.startswith("STATUS=")]
        assert status and "AMI down" in status[0], status
        assert daemon.proc is not None
        os.kill(daemon.proc.pid, signal.SIGTERM)
        started = time.monotonic()
        code = daemon.proc.wait(15)
        stopping = receive(sock, time.monotonic() + 0.5)
        assert code == 0
        assert time.monotonic() - started < 10
        assert any(m.startswith("STOPPING=1") for m in stopping), stopping
    finally:
        daemon.stop()
        sock.close()
