"""pbxbridge run as a real process against the lab, its JSON log lines collected."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pbxbridge import config as cfg
from pbxbridge.outbox_db import OutboxDB
from tests.lab import confs
from tests.lab.asterisk import Lab, free_port
from tests.support.call_mix import MixedCall


def write_config(lab: Lab, directory: Path, **sections: dict[str, Any]) -> Path:
    """A pbxbridge.toml pointing at the lab; ``sections`` override or add keys."""
    base: dict[str, dict[str, Any]] = {
        "pbx": {"name": "lab"},
        "ami": {
            "host": "127.0.0.1",
            "port": lab.settings.ami_port,
            "username": confs.PBXBRIDGE_USER,
            "secret_file": "ami-secret",
            "ping_interval_seconds": 1.0,
            "ping_timeout_seconds": 2.0,
        },
        "emergency": {"queues": ["calltakers", "backup"]},
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},
        "outbox": {"path": str(directory / "outbox.sqlite3")},
        # The lab's Asterisk runs as root: its AGI scripts connect as root.
        "api": {"socket": str(lab.api_socket), "socket_group": "root"},
    }
    (directory / "ami-secret").write_text(lab.settings.pbxbridge_secret + "\n")
    return _write(directory, base, sections)


def offline_config(directory: Path, **sections: dict[str, Any]) -> Path:
    """A pbxbridge.toml with nothing listening on its AMI port: for what the daemon
    serves and keeps whether or not Asterisk is up."""
    base: dict[str, dict[str, Any]] = {
        "ami": {"port": free_port(), "secret": "not-used"},
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},
        "outbox": {"path": str(directory / "outbox.sqlite3")},
        "api": {"socket": str(directory / "api.sock"), "socket_group": "root"},
    }
    return _write(directory, base, sections)


def _write(
    directory: Path, base: dict[str, dict[str, Any]], sections: dict[str, dict[str, Any]]
) -> Path:
    for name, body in sections.items():
        base.setdefault(name, {}).update(body)
    lines: list[str] = []
    for name, body in base.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in body.items()]
    path = directory / "pbxbridge.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Daemon:
    """``pbxbridge run --config FILE`` in a child process."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.env = {**os.environ, **(env or {})}
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._q: queue.Queue[dict[str, Any]] = queue.Queue()
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> Daemon:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pbxbridge.cli", "run", "--config", str(self.config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        return self

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.raw.append(line)
            try:
                record = json.loads(line)
            except ValueError:
                record = {"event": "unparsed", "line": line}
            self.lines.append(record)
            self._q.put(record)

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], within: float = 15
    ) -> dict[str, Any]:
        """The first log line (seen so far or arriving) for which ``predicate`` holds."""
        for line in list(self.lines):
            if predicate(line):
                return line
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                break
            if predicate(line):
                return line
        raise TimeoutError(f"no matching log line within {within} s; last lines: {self.raw[-5:]}")

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("event") == name]

    def stop(self, sig: int = 15, within: float = 10) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(within)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@contextlib.contextmanager
def serving_store(
    calls: Sequence[MixedCall], token: str, **sections: dict[str, Any]
) -> Iterator[tuple[str, Path]]:
    """The daemon (Asterisk down: the store is what is read) over a store holding
    ``calls``, its read API behind ``token``: yields (base url, config file)."""
    place = Path(tempfile.mkdtemp(prefix="pbxbridge-store-", dir="/tmp"))
    db = OutboxDB(place / "outbox.sqlite3")
    db.insert(
        [i for c in calls for i in c.incidents], time.time(), [r for c in calls for r in c.rows]
    )
    db.close()
    config = offline_config(place, api={"token": token}, **sections)
    listen = cfg.load(config).metrics.listen
    d = Daemon(config).start()
    try:
        d.wait_for(lambda x: x.get("event") == "http_listening")
        yield f"http://{listen}", config
    finally:
        d.stop()
        shutil.rmtree(place, ignore_errors=True)
