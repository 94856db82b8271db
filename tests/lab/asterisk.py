"""Build (once) and run the lab Asterisk in a Debian-testing chroot.

Debian 12 has no asterisk package; Debian testing has Asterisk 22. The rootfs is
built by debootstrap into a cache outside the checkout and reused until it is
missing or broken. Every step says what it is doing: building takes about a minute.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import asterisk as asterisk_pkg  # pyst2, copied into the chroot for the AGI script
import six

from tests.lab import confs

CACHE = Path(os.environ.get("PBXBRIDGE_LAB_CACHE", "/var/cache/pbxbridge-lab"))
ROOTFS = CACHE / "rootfs"
STAMP = ROOTFS / ".pbxbridge-lab-ok"
# python3 runs the callback AGI script (pbxbridge.agi on pyst2) inside the chroot.
PACKAGES = "asterisk,asterisk-modules,asterisk-config,python3"
REPO = Path(__file__).resolve().parents[2]

Say = Callable[[str], None]


class LabError(RuntimeError):
    """The lab cannot be built or started; the message says what to do."""


def say_stderr(msg: str) -> None:
    print(f"[lab] {msg}", file=sys.stderr, flush=True)


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the Asterisk lab needs root (debootstrap and chroot): run as root")


def _rootfs_ok() -> bool:
    """Built, complete, and with the package set this checkout asks for."""
    return (
        STAMP.is_file()
        and (ROOTFS / "usr/sbin/asterisk").is_file()
        and PACKAGES in STAMP.read_text()
    )


def ensure_rootfs(say: Say = say_stderr) -> Path:
    """Return the cached rootfs, building it with debootstrap when missing or broken."""
    _require_root()
    if _rootfs_ok():
        return ROOTFS
    if shutil.which("debootstrap") is None:
        say("installing debootstrap with apt-get")
        run = subprocess.run(
            ["apt-get", "install", "-y", "-q", "debootstrap"],
            capture_output=True,
            text=True,
            check=False,
        )
        if run.returncode != 0:
            raise LabError(
                "could not install debootstrap (apt-get install debootstrap failed):\n"
                + run.stderr[-2000:]
            )
    CACHE.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for suite in ("testing", "sid"):
        tmp = CACHE / f"rootfs.{suite}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        say(f"building the Asterisk rootfs: debootstrap {suite} into {tmp} (about a minute)")
        last_error = _debootstrap(suite, tmp, say)
        if not last_error and (tmp / "usr/sbin/asterisk").is_file():
            shutil.rmtree(ROOTFS, ignore_errors=True)
            tmp.rename(ROOTFS)
            version = subprocess.run(
                ["chroot", str(ROOTFS), "/usr/sbin/asterisk", "-V"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            STAMP.write_text(f"{suite} {version}\n{PACKAGES}\n")
            say(f"rootfs ready: {version}")
            return ROOTFS
        say(f"debootstrap {suite} failed; trying the next suite")
    raise LabError(
        "debootstrap could not build the lab rootfs; check network access to "
        "deb.debian.org (last output below)\n" + last_error
    )


def _debootstrap(suite: str, target: Path, say: Say) -> str:
    cmd = [
        "debootstrap",
        "--variant=minbase",
        f"--include={PACKAGES}",
        suite,
        str(target),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    tail: list[str] = []
    started = time.monotonic()
    last_say = 0.0
    for line in proc.stdout:
        tail = [*tail[-40:], line]
        # debootstrap prints hundreds of lines; speak every few seconds, not every line.
        now = time.monotonic()
        if line.startswith(
            (
                "I: Retrieving",
                "I: Validating",
                "I: Extracting",
                "I: Unpacking",
                "I: Configuring",
                "I: Installing",
                "I: Base system",
            )
        ) and (now - last_say > 5 or "Base system" in line):
            say(f"  {now - started:5.0f}s {line.strip()[3:]}")
            last_say = now
    rc = proc.wait()
    return "" if rc == 0 else "".join(tail)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Lab:
    """One running lab Asterisk. Start with :meth:`start`, stop with :meth:`stop`."""

    def __init__(self, ami_port: int | None = None, say: Say = say_stderr) -> None:
        self.say = say
        self.settings = confs.LabSettings(
            ami_port=ami_port or free_port(),
            pbxbridge_secret=secrets.token_hex(12),
            driver_secret=secrets.token_hex(12),
        )
        self.root = ROOTFS
        self.proc: subprocess.Popen[bytes] | None = None

    # Paths as the host sees them.
    @property
    def lab_dir(self) -> Path:
        return self.root / self.settings.lab_dir.lstrip("/")

    @property
    def api_socket(self) -> Path:
        """Where pbxbridge serves its local API for this lab: inside the chroot, so the
        AGI script that Asterisk runs there can reach it, as on a PBX host."""
        return self.lab_dir / "pbxbridge" / "api.sock"

    @property
    def api_address(self) -> str:
        """The same socket as the AGI script inside the chroot names it (PBXBRIDGE_API)."""
        return f"unix:{self.settings.lab_dir}/pbxbridge/api.sock"

    @property
    def queue_log_path(self) -> Path:
        return self.lab_dir / "log" / "queue_log"

    @property
    def conf_in_chroot(self) -> str:
        return f"{self.settings.lab_dir}/etc/asterisk.conf"

    def _write_config(self) -> None:
        shutil.rmtree(self.lab_dir, ignore_errors=True)
        for sub in ("etc", "run", "log", "spool", "lib", "cache", "agi-bin"):
            (self.lab_dir / sub).mkdir(parents=True, exist_ok=True)
        for name, text in confs.all_files(self.settings).items():
            (self.lab_dir / "etc" / name).write_text(text)
        # The chroot has no prompt package, so sounds/en is a dangling alternatives link
        # (absolute inside the chroot); the lab makes it a directory of its own.
        sounds = self.root / "usr/share/asterisk/sounds/en"
        if sounds.is_symlink():
            sounds.unlink()
        sounds.mkdir(parents=True, exist_ok=True)
        for prompt in confs.SILENT_PROMPTS:
            (sounds / f"{prompt}.sln").write_bytes(bytes(3200))  # 0.2 s of silence
        self._install_agi()
        # The project's own hook file, exactly as a PBX administrator would #include it.
        shutil.copy(REPO / "dialplan" / "pbxbridge.conf", self.lab_dir / "etc" / "pbxbridge.conf")

    def _install_agi(self) -> None:
        """The callback AGI script as a PBX host runs it: pbxbridge.agi on pyst2."""
        site = self.lab_dir / "python"
        shutil.rmtree(site, ignore_errors=True)
        (site / "pbxbridge").mkdir(parents=True)
        for name in ("__init__.py", "agi.py", "dialplan_vars.py", "local_api.py"):
            shutil.copy(REPO / "pbxbridge" / name, site / "pbxbridge" / name)
        shutil.copytree(Path(asterisk_pkg.__file__).parent, site / "asterisk")
        shutil.copy(six.__file__, site / "six.py")  # pyst2's one dependency
        script = self.lab_dir / "agi-bin" / "pbxbridge-agi"
        site_in_chroot = f"{self.settings.lab_dir}/python"
        script.write_text(
            f"#!/usr/bin/python3\nimport sys\nsys.path.insert(0, {site_in_chroot!r})\n"
            "from pbxbridge.agi import main\nsys.exit(main())\n"
        )
        script.chmod(0o755)

    def rx(self, command: str, timeout: float = 10) -> str:
        run = subprocess.run(
            [
                "chroot",
                str(self.root),
                "/usr/sbin/asterisk",
                "-C",
                self.conf_in_chroot,
                "-rx",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return run.stdout + run.stderr

    def start(self, timeout: float = 30) -> None:
        ensure_rootfs(self.say)
        if _port_in_use(self.settings.ami_port):
            raise LabError(f"AMI port {self.settings.ami_port} on 127.0.0.1 is in use")
        self._write_config()
        self.say(f"starting Asterisk (AMI on 127.0.0.1:{self.settings.ami_port})")
        log = (self.lab_dir / "log" / "console.log").open("wb")
        self.proc = subprocess.Popen(
            ["chroot", str(self.root), "/usr/sbin/asterisk", "-C", self.conf_in_chroot, "-f", "-n"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LabError(
                    "Asterisk exited during start; its console output:\n" + self.console_tail()
                )
            out = self.rx("core waitfullybooted", timeout=max(1.0, deadline - time.monotonic()))
            if "fully booted" in out.lower() and _port_in_use(self.settings.ami_port):
                self.say("Asterisk is fully booted")
                return
            time.sleep(0.1)
        self.stop()
        raise LabError("Asterisk did not boot within 30 s; console:\n" + self.console_tail())

    def console_tail(self) -> str:
        path = self.lab_dir / "log" / "console.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no console log)"

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.rx("core stop now", timeout=10)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def queue_log(self) -> list[str]:
        if not self.queue_log_path.exists():
            return []
        return self.queue_log_path.read_text(errors="replace").splitlines()

    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0
