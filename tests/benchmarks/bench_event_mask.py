"""How much AMI traffic pbxbridge's event mask saves, measured on the lab (as root).

    .venv/bin/python -m tests.benchmarks.bench_event_mask

Three sessions watch the same calls: everything (``Events: on``), pbxbridge's mask
(``call,agent,user,system``), and the events pbxbridge actually translates. Printed
as ratios against ``Events: on`` in the same run.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from pbxbridge.ami_translate import TRANSLATORS
from tests.lab import confs
from tests.lab.amilink import AmiLink, split_raw
from tests.lab.asterisk import Lab
from tests.lab.calls import SCENARIOS, CallGenerator, wait_idle

MASKS = {"all (Events: on)": "on", "pbxbridge mask": "call,agent,user,system"}


async def measure(lab: Lab) -> None:
    s = lab.settings
    links = {}
    for label, mask in MASKS.items():
        link = AmiLink("127.0.0.1", s.ami_port, confs.DRIVER_USER, s.driver_secret, mask)
        await link.connect()
        links[label] = link
    driver = AmiLink("127.0.0.1", s.ami_port, confs.DRIVER_USER, s.driver_secret, "off")
    await driver.connect()
    gen = CallGenerator(driver)
    for name in SCENARIOS:
        await gen.place(SCENARIOS[name])
        await asyncio.sleep(0.3)
    await asyncio.sleep(16)
    await wait_idle(driver)
    await asyncio.sleep(0.5)
    base_events = base_bytes = 0
    rows = []
    for label, link in links.items():
        msgs = [m for m in split_raw(bytes(link.raw)) if "Event" in m]
        rows.append((label, len(msgs), len(link.raw), Counter(m["Event"] for m in msgs)))
        await link.close()
    await driver.close()
    base_events, base_bytes = rows[0][1], rows[0][2]
    used = sum(n for e, n in rows[1][3].items() if e in TRANSLATORS)
    used_bytes = sum(
        len(b) + 4
        for b in bytes(links["pbxbridge mask"].raw).split(b"\r\n\r\n")
        if any(b.startswith(f"Event: {e}\r\n".encode()) for e in TRANSLATORS)
    )
    rows.append(("events pbxbridge translates", used, used_bytes, Counter()))
    print(f"{len(SCENARIOS)} calls, one per scenario")
    print(f"{'session':<30} {'events':>7} {'bytes':>9} {'events %':>9} {'bytes %':>8}")
    for label, n, b, _ in rows:
        print(f"{label:<30} {n:>7} {b:>9} {n / base_events:>9.1%} {b / base_bytes:>8.1%}")
    print("most frequent events under the mask:", rows[1][3].most_common(8))


def main() -> None:
    with Lab() as lab:
        asyncio.run(measure(lab))


if __name__ == "__main__":
    main()
