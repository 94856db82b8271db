"""A client of pbxbridge's local API, for the AGI script and the CLI.

``unix:/run/pbxbridge/api.sock`` (the default: only the Asterisk group may open it) or
``http://host:port``. Plain :mod:`http.client`: no proxy from the environment is ever
used and no redirect is followed, so the request goes where it was told or nowhere.
Imports nothing from pbxbridge, so the AGI script can run with this file and pyst2.
"""

from __future__ import annotations

import http.client
import socket
import urllib.parse

DEFAULT_ADDRESS = "unix:/run/pbxbridge/api.sock"
MAX_BODY = 65536


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        # The Host header of a request over the socket; never checked there.
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def request(
    address: str,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    timeout: float,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """(status, at most MAX_BODY bytes of body); raises OSError (and http.client's
    HTTPException) when the API cannot be reached or answers nonsense."""
    if address.startswith("unix:"):
        conn: http.client.HTTPConnection = _UnixConnection(address[len("unix:") :], timeout)
    else:
        parts = urllib.parse.urlsplit(address)
        if parts.scheme != "http" or not parts.hostname:
            raise OSError(f"not a local API address: {address!r}")
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        all_headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers={**all_headers, **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read(MAX_BODY)
    finally:
        conn.close()
