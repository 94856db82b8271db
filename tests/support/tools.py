"""External command-line tools the tests need (systemd-analyze, promtool).

The tests install nothing: `make test` installs the Debian packages first. Where the
run must be complete (CI, `make test`), a missing tool fails the test; on a developer's
machine it skips with the package to install.
"""

from __future__ import annotations

import os
import shutil

import pytest

# tool -> the Debian package that ships it
PACKAGES = {"systemd-analyze": "systemd", "promtool": "prometheus"}


def must_run() -> bool:
    flags = (os.environ.get("CI", ""), os.environ.get("PBXBRIDGE_REQUIRE_LAB", ""))
    return any(v.lower() in ("1", "true", "yes") for v in flags)


def require(tool: str) -> str:
    """The tool's path; fail (CI, make test) or skip (elsewhere) when it is missing."""
    path = shutil.which(tool)
    if path is None:
        msg = f"{tool} not found: apt-get install -y {PACKAGES.get(tool, tool)}"
        if must_run():
            pytest.fail(msg)
        pytest.skip(msg)
    return path
