"""A real, throwaway PostgreSQL cluster for the tests, run as an unprivileged user.

``PostgresServer`` runs Debian's binaries (``/usr/lib/postgresql/<highest>/bin``) on a
cluster in a fresh temporary directory. As root every server command goes through
``runuser -u postgres --``; otherwise the commands run as the current user. The server
listens only on a unix socket in a private directory: no TCP port, nothing shared with
a system cluster that Debian's ``postgresql`` package may have started.

The test modules import the fixtures::

    from tests.support.postgres import postgres_server, postgres_url  # noqa: F401

A missing or broken server is a failure, never a skip: ``make test`` installs the
``postgresql`` package first.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

PG_ROOT = Path("/usr/lib/postgresql")
SYSTEM_USER = "postgres"  # the Debian system user the server runs as when we are root
SUPERUSER = "postgres"  # the cluster's superuser role (initdb -U), whoever runs it
PORT = 5432  # only names the socket file: the socket directory is private
COMMAND_TIMEOUT = 60.0  # initdb, pg_ctl, runuser: none of them may hang a test run
READY_TIMEOUT = 30.0
LOG_TAIL_LINES = 30
MAX_SOCKET_PATH = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux

# Appended to the postgresql.conf that initdb writes (the last setting wins).
#
# fsync = off: measured on the development VM (ext4 on virtio), a commit takes a median
# 0.33-0.45 ms with fsync on and 0.07-0.27 ms with it off (a disk that really flushes
# makes the gap wider). Safe here: fsync only matters when the *operating system*
# crashes or loses power before the page cache reaches the disk, and then the whole
# throwaway cluster is gone anyway. A killed server (kill(), SIGKILL) loses nothing,
# because every write() already sits in the kernel's page cache, so crash-recovery
# tests still test crash recovery.
#
# synchronous_commit stays on on purpose: off, a commit returns before its WAL is even
# written to the kernel, so kill() could lose a committed transaction and a test that
# checks "committed rows survive a crash" would be flaky. With fsync off it gained nothing
# measurable besides.
SETTINGS: dict[str, str | int] = {
    "listen_addresses": "",
    "port": PORT,
    "max_connections": 50,
    "shared_buffers": "16MB",
    "fsync": "off",
    "logging_collector": "off",
}


def _conf_value(value: str | int) -> str:
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


def find_bin_dir() -> Path:
    """The bin directory of the highest PostgreSQL installed the Debian way."""
    found: list[tuple[tuple[int, ...], Path]] = []
    if PG_ROOT.is_dir():
        for entry in PG_ROOT.iterdir():
            if re.fullmatch(r"\d+(\.\d+)*", entry.name) and (entry / "bin/initdb").is_file():
                found.append((tuple(int(p) for p in entry.name.split(".")), entry / "bin"))
    if not found:
        raise RuntimeError(
            f"no PostgreSQL server in {PG_ROOT}/<version>/bin (initdb): "
            "apt-get install -y postgresql (make test installs it)"
        )
    return max(found)[1]


def _is_root() -> bool:
    return os.geteuid() == 0


def _proc_cwd(pid: int) -> str | None:
    """A live process's working directory; None for one gone, a zombie or not ours."""
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


class PostgresServer:
    """One throwaway cluster: initdb on first start(), a unix socket only, removed by
    cleanup(). Usable as a context manager (cleanup on exit)."""

    def __init__(self, base_dir: str | Path | None = None) -> None:
        bin_dir = find_bin_dir()
        self.initdb = bin_dir / "initdb"
        self.pg_ctl = bin_dir / "pg_ctl"
        self.postgres = bin_dir / "postgres"
        for tool in (self.pg_ctl, self.postgres):
            if not tool.is_file():
                raise RuntimeError(f"{tool} is missing (broken postgresql install?)")
        self._as_root = _is_root()
        if self._as_root:
            try:
                self._owner = pwd.getpwnam(SYSTEM_USER)
            except KeyError:
                raise RuntimeError(
                    f"running as root but there is no {SYSTEM_USER!r} system user: "
                    "apt-get install -y postgresql creates it"
                ) from None
        parent = Path(base_dir) if base_dir is not None else self._default_parent()
        self.base = Path(tempfile.mkdtemp(prefix="pbxbridge-pg-", dir=parent))
        self.data_dir = self.base / "data"
        self.socket_dir = self.base / "socket"
        self.log_file = self.base / "server.log"
        socket_file = self.socket_dir / f".s.PGSQL.{PORT}"
        if len(str(socket_file)) > MAX_SOCKET_PATH:
            shutil.rmtree(self.base, ignore_errors=True)
            raise RuntimeError(f"socket path too long for a unix socket: {socket_file}")
        self.socket_dir.mkdir(mode=0o700)
        self.log_file.touch(mode=0o600)
        if self._as_root:
            for path in (self.base, self.socket_dir):
                os.chown(path, self._owner.pw_uid, self._owner.pw_gid)
        self._initialized = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()

    def _default_parent(self) -> Path:
        """$TMPDIR, unless the postgres user could not reach it (then /tmp)."""
        parent = Path(tempfile.gettempdir()).resolve()
        if self._as_root:
            reachable = all(p.stat().st_mode & 0o001 for p in (parent, *parent.parents))
            if not reachable:
                return Path("/tmp")
        return parent

    # ----------------------------------------------------------------- commands

    def _command(self, *argv: str | Path) -> list[str]:
        command = [str(a) for a in argv]
        if self._as_root:
            return ["runuser", "-u", SYSTEM_USER, "--", *command]
        return command

    def _run(self, *argv: str | Path, timeout: float = COMMAND_TIMEOUT) -> str:
        """Run a server command to completion; its output, or RuntimeError."""
        command = self._command(*argv)
        try:
            done = subprocess.run(
                command,
                cwd=self.base,  # the postgres user may not reach the caller's directory
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(
                f"{' '.join(command)} did not finish in {timeout:g} s{self._log_tail()}"
            ) from exc
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} exited with {done.returncode}:\n"
                f"{done.stdout}{done.stderr}{self._log_tail()}"
            )
        return done.stdout

    def _log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError as exc:
            return f"\n(no server log: {exc})"
        tail = text.splitlines()[-lines:]
        if not tail:
            return f"\n(server log {self.log_file} is empty)"
        return f"\n--- last lines of {self.log_file} ---\n" + "\n".join(tail)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of the server's log (for assertion messages)."""
        return self._log_tail(lines)

    # ---------------------------------------------------------------- lifecycle

    def _init_cluster(self) -> None:
        self._run(
            self.initdb,
            "--pgdata", self.data_dir,
            "--username", SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",  # the throwaway cluster does not need to survive an OS crash
        )  # fmt: skip
        settings = {**SETTINGS, "unix_socket_directories": str(self.socket_dir)}
        lines = [f"{key} = {_conf_value(value)}" for key, value in settings.items()]
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# pbxbridge tests (tests/support/postgres.py)\n")
            conf.write("\n".join(lines) + "\n")
        self._initialized = True

    def start(self, timeout: float = READY_TIMEOUT) -> None:
        """initdb (first time), start the postmaster, and wait until it accepts
        connections; RuntimeError with the log's tail when it does not come up."""
        with self._lock:
            if self.is_running():
                return
            if not self._initialized:
                self._init_cluster()
            with self.log_file.open("ab") as log:
                # The postmaster itself, not pg_ctl: it stays our (or runuser's) child,
                # so an early death is seen at once and a killed one is reaped.
                self._proc = subprocess.Popen(
                    self._command(self.postgres, "-D", self.data_dir),
                    cwd=self.base,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        try:
            self.wait_ready(timeout)
        except RuntimeError:
            self._discard_failed_start()
            raise

    def _discard_failed_start(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(RuntimeError):
                self.kill()
        self._proc = None

    def is_running(self) -> bool:
        """Whether the postmaster process is alive (ready or not)."""
        return self._proc is not None and self._proc.poll() is None

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll with a psycopg connection until the server accepts one."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while True:
            if not self.is_running():
                code = None if self._proc is None else self._proc.returncode
                raise RuntimeError(
                    f"PostgreSQL is not running (exit status {code}); last connection "
                    f"error: {last}{self._log_tail()}"
                )
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                last = exc
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"PostgreSQL did not accept connections within {timeout:g} s: "
                    f"{last}{self._log_tail()}"
                )
            time.sleep(0.02)

    def stop(self, mode: str = "fast", timeout: float = COMMAND_TIMEOUT) -> None:
        """``pg_ctl stop -m MODE`` (smart, fast or immediate); nothing when stopped."""
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"pg_ctl stop mode must be smart, fast or immediate: {mode}")
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            if proc.poll() is None:
                self._run(
                    self.pg_ctl, "stop", "-D", self.data_dir, "-m", mode,
                    "-w", "-t", str(int(timeout)),
                    timeout=timeout + 5,
                )  # fmt: skip
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired as exc:
                    raise RuntimeError(
                        f"pg_ctl stopped PostgreSQL but its process {proc.pid} lives on"
                        f"{self._log_tail()}"
                    ) from exc
            self._proc = None

    def restart(self, mode: str = "fast", timeout: float = READY_TIMEOUT) -> None:
        """stop(mode), then start(): the same cluster, its data kept."""
        self.stop(mode)
        self.start(timeout)

    def _postmaster_pid(self) -> int:
        """The postmaster's pid (as root, ``self._proc`` is runuser, its parent)."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            return int(first)
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"cannot read the postmaster's pid: {exc}") from exc

    def cluster_pids(self) -> set[int]:
        """Every live process of this cluster: the postmaster and its children all
        have the data directory as their working directory."""
        data = os.path.realpath(self.data_dir)
        pids: set[int] = set()
        for entry in os.listdir("/proc"):
            if entry.isdigit() and _proc_cwd(int(entry)) == data:
                pids.add(int(entry))
        return pids

    def _wait_gone(self, pids: set[int], timeout: float) -> set[int]:
        deadline = time.monotonic() + timeout
        while True:
            alive = {pid for pid in pids if _proc_cwd(pid) is not None}
            if not alive or time.monotonic() >= deadline:
                return alive
            time.sleep(0.01)

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL the postmaster, as a crash would, and wait until its children have
        noticed and exited too (a surviving backend would keep the shared memory and
        stop the next start()). A child that lingers past half the timeout is killed."""
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                self._proc = None
                return
            pids = self.cluster_pids()
            postmaster = self._postmaster_pid()
            with contextlib.suppress(ProcessLookupError):
                os.kill(postmaster, signal.SIGKILL)
            try:
                proc.wait(timeout=timeout)  # runuser, or the postmaster: reaped
            except subprocess.TimeoutExpired as exc:
                raise RuntimeError(f"the killed postmaster {postmaster} lives on") from exc
            self._proc = None
            pids |= self.cluster_pids()
            alive = self._wait_gone(pids, timeout / 2)
            for pid in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            alive = self._wait_gone(alive, timeout / 2)
            if alive:
                raise RuntimeError(f"PostgreSQL processes survive SIGKILL: {sorted(alive)}")

    def cleanup(self) -> None:
        """Stop the server (kill it if a fast stop fails) and remove the directory."""
        try:
            self.stop("fast")
        except RuntimeError:
            self.kill()
        finally:
            leftovers = self.cluster_pids() if self.data_dir.exists() else set()
            for pid in leftovers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self._wait_gone(leftovers, 5.0)
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    # ---------------------------------------------------------------- databases

    def url(self, dbname: str = "postgres") -> str:
        """A libpq URL for psycopg 3: the superuser over the private unix socket. The
        port is explicit so that a PGPORT in the environment cannot redirect it."""
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql://{SUPERUSER}@/{quote(dbname, safe='')}?host={host}&port={PORT}"

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10)

    def create_database(self, name: str) -> str:
        """CREATE DATABASE name; its URL."""
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE, disconnecting whoever is still connected to it."""
        with self._admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# -------------------------------------------------------------------- fixtures
#
# The test modules import these fixtures, so pytest registers one copy of
# postgres_server per importing module. The copies share one cluster (counted), so a
# session runs one PostgreSQL however many modules use it.

_shared: dict[str, PostgresServer] = {}
_users: list[object] = []


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One cluster for the whole session, started once, removed at the end."""
    server = _shared.get("server")
    if server is None:
        server = PostgresServer()
        try:
            server.start()
        except BaseException:
            server.cleanup()
            raise
        _shared["server"] = server
    token = object()
    _users.append(token)
    yield server
    _users.remove(token)
    if not _users:
        del _shared["server"]
        server.cleanup()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for one test; dropped afterwards. A test that left the
    server stopped or killed gets it started again first."""
    if not postgres_server.is_running():
        postgres_server.start()
    name = f"test_{uuid.uuid4().hex[:16]}"
    url = postgres_server.create_database(name)
    yield url
    if not postgres_server.is_running():
        postgres_server.start()
    postgres_server.drop_database(name)
