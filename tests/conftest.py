"""Shared fixtures: the real Asterisk lab (once per session) and pbxbridge as a process."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.lab.asterisk import Lab, LabError
from tests.support.browser import browser, test_output  # noqa: F401 (fixtures)
from tests.support.postgres import postgres_server, postgres_url

__all__ = ["postgres_server", "postgres_url"]  # a real PostgreSQL server, for the store


def _in_ci() -> bool:
    """CI and `make test` must exercise the real Asterisk: no silent skip there."""
    flags = (os.environ.get("CI", ""), os.environ.get("PBXBRIDGE_REQUIRE_LAB", ""))
    return any(v.lower() in ("1", "true", "yes") for v in flags)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The lab Asterisk. In CI a lab that cannot start fails the run; elsewhere it skips."""
    if os.geteuid() != 0 and not _in_ci():
        pytest.skip("the Asterisk lab needs root")
    instance = Lab()
    try:
        instance.start()
    except LabError as exc:
        if _in_ci():
            pytest.fail(f"the Asterisk lab could not start: {exc}")
        pytest.skip(f"the Asterisk lab could not start: {exc}")
    yield instance
    instance.stop()
