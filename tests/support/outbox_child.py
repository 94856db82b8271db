"""A child process that enqueues and delivers incidents, to be killed with SIGKILL.

``python -m tests.support.outbox_child DB URL ACKS START COUNT``: puts the three events
of calls START..START+COUNT-1 (and re-announces the previous call's call.offered),
appending each event id to ACKS once put() has returned (i.e. after COMMIT), while
delivering to URL. Exits 0 once everything is enqueued and nothing is pending.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from pbxbridge.delivery import Delivery
from pbxbridge.outbox import Outbox
from pbxbridge.store_rows import rows_of
from tests.support import settings as built
from tests.support.calls import lifecycle


async def main(db: str, url: str, acks: TextIO, start: int, count: int) -> int:
    settings = built.delivery(
        url, timeout_seconds=2.0, backoff_base=0.02, backoff_cap=0.2, poll_seconds=0.2
    )
    async with Outbox(db) as outbox, asyncio.TaskGroup() as tg:
        delivery = Delivery(outbox, settings)
        task = tg.create_task(delivery.run())
        for n in range(start, start + count):
            events = lifecycle(n)
            if n > start:
                events.insert(0, lifecycle(n - 1)[0])  # a re-announce: deduplicated
            # With the call store's rows, as the daemon's sink commits them.
            await outbox.submit(events, rows_of((), events, "child"))
            # Acknowledged = committed: only now may the id be written down.
            acks.write("".join(e.event_id + "\n" for e in events))
            acks.flush()
            delivery.wake()
            await asyncio.sleep(0.005)
        while (await outbox.refresh_counts()).pending:  # noqa: ASYNC110 (state is in SQLite)
            await asyncio.sleep(0.05)
        task.cancel()
    return 0


if __name__ == "__main__":
    db, url, acks, start, count = sys.argv[1:6]
    with open(acks, "a") as acks_file:
        sys.exit(asyncio.run(main(db, url, acks_file, int(start), int(count))))
