"""Who may see and claim callers: the real daemon against a local user, a web page in a
browser on the PBX host (cross-origin, DNS rebinding) and a token holder."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbxbridge import local_api
from tests.lab.asterisk import free_port
from tests.support.daemon import Daemon

TOKEN = "read-token-0123456789abcdef"


@pytest.fixture
def daemon() -> Iterator[tuple[Daemon, str, str]]:
    """pbxbridge with Asterisk down (nothing to measure: access is what is tested), its
    socket in a directory any local user may traverse, so the socket's own permissions
    are what is checked. Yields (daemon, TCP base URL, socket address)."""
    place = Path(tempfile.mkdtemp(prefix="pbxbridge-access-", dir="/tmp"))
    place.chmod(0o755)
    listen = f"127.0.0.1:{free_port()}"
    (place / "api-token").write_text(TOKEN + "\n")
    config = place / "pbxbridge.toml"
    config.write_text(
        f"""[ami]
port = {free_port()}
secret = "not-used"
[metrics]
listen = "{listen}"
[outbox]
path = "{place / "state" / "outbox.sqlite3"}"
[api]
socket = "{place / "api.sock"}"
socket_group = "root"
token_file = "api-token"
"""
    )
    d = Daemon(config).start()
    try:
        d.wait_for(lambda x: x.get("event") == "api_socket_listening")
        d.wait_for(lambda x: x.get("event") == "http_listening")
        yield d, f"http://{listen}", f"unix:{place / 'api.sock'}"
    finally:
        d.stop()
        shutil.rmtree(place, ignore_errors=True)


def call(
    url: str, *, method: str = "GET", headers: dict[str, str] | None = None, body: bytes = b""
) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body or None, method=method, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_caller_data_over_tcp_needs_the_token(daemon: tuple[Daemon, str, str]) -> None:
    """GET /v1/callbacks over TCP: 401 without the token or with a wrong one, 200 with it;
    /metrics stays open for Prometheus."""
    _, base, _ = daemon
    assert call(f"{base}/v1/callbacks")[0] == 401
    assert call(f"{base}/v1/callbacks", headers={"Authorization": "Bearer nope"})[0] == 401
    status, body = call(f"{base}/v1/callbacks", headers={"Authorization": f"Bearer {TOKEN}"})
    assert (status, json.loads(body)) == (200, {"callbacks": []})
    assert call(f"{base}/metrics")[0] == 200


def test_a_web_page_cannot_reach_caller_data(daemon: tuple[Daemon, str, str]) -> None:
    """A page in a browser on the PBX host: a cross-origin text/plain or form POST to the
    claim route is refused, a rebound Host name is refused even with the token, and no
    claim can be made over TCP at all."""
    _, base, _ = daemon
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for kind in ("text/plain", "application/x-www-form-urlencoded"):
        status, _ = call(
            f"{base}/v1/callbacks/claim",
            method="POST",
            headers={"Origin": "http://evil.example", "Content-Type": kind},
            body=b'{"claimed_by": "web"}',
        )
        assert status == 403, kind
    rebound = {**auth, "Host": f"evil.example:{base.rsplit(':', 1)[1]}"}
    assert call(f"{base}/v1/callbacks", headers=rebound)[0] == 421
    site = {**auth, "Sec-Fetch-Site": "cross-site"}
    assert call(f"{base}/v1/callbacks", headers=site)[0] == 403
    claim = call(
        f"{base}/v1/callbacks/claim",
        method="POST",
        headers={**auth, "Content-Type": "application/json"},
        body=b'{"claimed_by": "PJSIP/1001"}',
    )
    assert claim[0] == 405, "claims are made on the local socket only"


def test_only_the_asterisk_group_can_open_the_local_socket(
    daemon: tuple[Daemon, str, str],
) -> None:
    """User nobody can neither list nor claim callers over the socket (its mode is 0660,
    group root here: Asterisk's group on a PBX host); root can, and a claim needs JSON."""
    _, base, socket = daemon
    path = socket.removeprefix("unix:")
    assert (os.stat(path).st_mode & 0o777) == 0o660
    probe = (
        "import sys; from pbxbridge import local_api\n"
        "try:\n"
        f"    print(local_api.request({socket!r}, 'GET', '/v1/callbacks', timeout=3)[0])\n"
        "except PermissionError:\n"
        "    print('denied')\n"
    )
    as_nobody = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         sys.executable, "-c", probe],
        capture_output=True, text=True, timeout=30, check=False,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert as_nobody.stdout.strip() == "denied", as_nobody.stderr
    status, body = local_api.request(socket, "GET", "/v1/callbacks", timeout=3)
    assert (status, json.loads(body)) == (200, {"callbacks": []})
    status, _ = local_api.request(
        socket,
        "POST",
        "/v1/callbacks/claim",
        body=b'{"claimed_by": "PJSIP/1001"}',
        headers={"Content-Type": "text/plain"},
        timeout=3,
    )
    assert status == 415
    status, _ = local_api.request(
        socket, "POST", "/v1/callbacks/claim", body=b'{"claimed_by": "PJSIP/1001"}', timeout=3
    )
    assert status == 204  # nobody owed a callback: nothing to claim
    assert call(f"{base}/v1/callbacks")[0] == 401  # and TCP still needs the token


def test_connections_that_never_send_a_request_cannot_starve_the_daemon(
    daemon: tuple[Daemon, str, str],
) -> None:
    """300 connections that never finish their headers: /health still answers at once
    (each new connection evicts the oldest silent one), the silent ones are counted, and
    the log stays quiet."""
    d, base, _ = daemon
    host, port = base.removeprefix("http://").rsplit(":", 1)
    lines_before = len(d.raw)
    idle = []
    try:
        for _ in range(300):
            conn = socket.create_connection((host, int(port)), timeout=5)
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: x")  # and never the rest
            idle.append(conn)
        started = time.monotonic()
        status, _ = call(f"{base}/health")
        answered_in = time.monotonic() - started
        assert status == 200 and answered_in < 2.0
        metrics = call(f"{base}/metrics")[1]
    finally:
        for conn in idle:
            conn.close()
    slow = [
        ln for ln in metrics.splitlines() if ln.startswith("pbxbridge_http_slow_requests_total")
    ]
    assert slow and float(slow[0].rsplit(" ", 1)[1]) >= 300 - 64
    assert len(d.raw) - lines_before < 20, d.raw[lines_before:]


def test_the_read_api_can_have_its_own_address(tmp_path: Path) -> None:
    """With [api] listen set, caller data is served there (with the token) and not on
    the metrics listener, which keeps /metrics for Prometheus."""
    metrics_at, api_at = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    config = tmp_path / "pbxbridge.toml"
    config.write_text(
        f"""[ami]
port = {free_port()}
secret = "not-used"
[metrics]
listen = "{metrics_at}"
[outbox]
path = "{tmp_path / "outbox.sqlite3"}"
[api]
socket = "{tmp_path / "api.sock"}"
socket_group = "root"
token = "{TOKEN}"
listen = "{api_at}"
"""
    )
    d = Daemon(config).start()
    try:
        d.wait_for(lambda x: x.get("event") == "http_listening" and x["port"] == int(api_at[10:]))
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert call(f"http://{api_at}/v1/callbacks", headers=auth)[0] == 200
        assert call(f"http://{api_at}/v1/callbacks")[0] == 401
        assert call(f"http://{metrics_at}/v1/callbacks", headers=auth)[0] == 404
        assert call(f"http://{metrics_at}/metrics")[0] == 200
        assert call(f"http://{api_at}/metrics")[0] == 404
    finally:
        d.stop()
