"""disk_full: the outbox on a real filesystem that fills up waits, then writes it all."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbxbridge import tracker as tr
from pbxbridge.outbox import Outbox
from pbxbridge.outbox_sink import OutboxSink
from tests.support.calls import record


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs (root: the CI runs as root; elsewhere the test is skipped)."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the disk-full test needs root to mount a tmpfs")
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write a ballast file until the filesystem refuses another byte."""
    ballast = directory / "ballast"
    with ballast.open("wb", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 4096)
    return ballast


async def test_a_full_disk_waits_and_loses_nothing(small_disk: Path) -> None:
    """Events of calls that end while the disk is full are kept and retried; /ready's
    store health says why; once space returns every one of them is committed."""
    async with Outbox(small_disk / "outbox.sqlite3") as outbox:
        sink = OutboxSink(outbox)
        task = asyncio.create_task(sink.run())
        sink.apply([tr.CallOffered(record(0))])
        await asyncio.wait_for(sink.flush(), 5)
        ballast = fill(small_disk)
        for n in range(1, 40):  # enough bodies to need new pages
            sink.apply([tr.CallOffered(record(n))])
        async with asyncio.timeout(10):
            while outbox.policy.health.writable:  # noqa: ASYNC110 (bounded poll)
                await asyncio.sleep(0.05)
        health = outbox.policy.health
        assert "full" in (health.reason or ""), health
        assert not task.done(), "a full disk must not stop the daemon"
        ballast.unlink()
        await asyncio.wait_for(sink.flush(), 15)
        assert outbox.policy.health.writable
        task.cancel()
        rows = await outbox.rows()
    assert len({r.call_id for r in rows}) == 40
