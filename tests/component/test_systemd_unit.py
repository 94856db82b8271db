"""config/systemd/pbxbridge.service checked by systemd's own tools, offline.

`systemd-analyze verify` loads the unit in a throw-away root that holds only what it
needs (a stub at the ExecStart path, stub targets for the default dependencies), so the
check does not depend on the host's units or on pbxbridge being installed in /opt.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.tools import require

UNIT = Path(__file__).resolve().parents[2] / "config" / "systemd" / "pbxbridge.service"
MAX_EXPOSURE = 2.0
# The targets every service depends on by default, plus what this unit names.
TARGETS = (
    "sysinit.target",
    "basic.target",
    "shutdown.target",
    "network-online.target",
    "multi-user.target",
)


def directives(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment, repeated keys kept in order."""
    out: list[tuple[str, str, str]] = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def verify(unit_text: str, root: Path) -> subprocess.CompletedProcess[str]:
    tool = require("systemd-analyze")
    units = root / "etc/systemd/system"
    vendor = root / "usr/lib/systemd/system"
    units.mkdir(parents=True)
    vendor.mkdir(parents=True)
    (units / "pbxbridge.service").write_text(unit_text)
    for target in TARGETS:
        (vendor / target).write_text("[Unit]\nDescription=stub for verify\n")
    exec_start = next(v for s, k, v in directives(unit_text) if k == "ExecStart")
    binary = root / exec_start.split()[0].lstrip("/")
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    return subprocess.run(
        [tool, "verify", f"--root={root}", "pbxbridge.service"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_unit_verifies_without_a_warning(tmp_path: Path) -> None:
    """systemd-analyze verify accepts the unit with no error and no warning at all."""
    run = verify(UNIT.read_text(), tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout + run.stderr == ""


def test_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    """The verify check is not blind: a misspelt key or a bad value is reported."""
    broken = UNIT.read_text().replace("RestartSec=2", "RestartSecs=2\nProtectSystem=maybe")
    run = verify(broken, tmp_path)
    assert "RestartSecs" in run.stderr
    assert "protect system value" in run.stderr.lower()


def test_hardening_exposure_at_most_2() -> None:
    """systemd-analyze security rates the unit's exposure at or below 2.0 (of 10)."""
    tool = require("systemd-analyze")
    # --threshold is the exposure times ten (0-100): 20 means 2.0.
    run = subprocess.run(
        [tool, "security", "--offline=true", f"--threshold={int(MAX_EXPOSURE * 10)}", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"Overall exposure level for pbxbridge\.service: (\d+\.\d+)", run.stdout)
    assert found, run.stdout + run.stderr
    exposure = float(found.group(1))
    assert exposure <= MAX_EXPOSURE, run.stdout
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("Unit", "StartLimitIntervalSec", "0"),
        ("Service", "Type", "notify"),
        ("Service", "NotifyAccess", "main"),
        ("Service", "WatchdogSec", "30"),
        ("Service", "Restart", "always"),
        ("Service", "RestartSec", "2"),
        ("Service", "StateDirectory", "pbxbridge"),
        ("Service", "DynamicUser", "yes"),
        ("Service", "ProtectSystem", "strict"),
        ("Service", "RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("Service", "LoadCredential", "ami-secret:/etc/pbxbridge/ami-secret"),
    ],
)
def test_unit_keeps_the_service_contract(section: str, key: str, value: str) -> None:
    """The settings the daemon relies on (notify, watchdog, restart forever, state) stay."""
    assert (section, key, value) in directives(UNIT.read_text())


def test_stop_is_bounded() -> None:
    """TimeoutStopSec bounds the drain, and stays above the daemon's own drain budget."""
    values = [v for s, k, v in directives(UNIT.read_text()) if k == "TimeoutStopSec"]
    assert values, "TimeoutStopSec missing: the default 90 s drain would delay restarts"
    assert 5 <= int(values[-1]) <= 30
