"""Parse speed of pbxbridge.ami_parser against references, on one synthetic AMI stream.

Run: .venv/bin/python tests/benchmarks/bench_ami_parser.py [events]

Machines are noisy, so read the ratios (same run, same buffer), not the absolute rates.
The stream is ~100k realistic events (queue and channel events, a few non-ASCII caller
names) fed in 64 KiB chunks, as a socket would deliver them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from panoramisk.ami_protocol import AMIProtocol

from pbxbridge.ami_parser import AmiStreamParser

CHUNK = 64 * 1024
TEMPLATES = [
    (
        "Event: Newchannel\r\nPrivilege: call,all\r\nTimestamp: 1718000000.{n:06d}\r\n"
        "Channel: PJSIP/trunk-{n:08x}\r\nChannelState: 0\r\nChannelStateDesc: Down\r\n"
        "CallerIDNum: 08123456{n:04d}\r\nCallerIDName: {name}\r\nConnectedLineNum: <unknown>\r\n"
        "ConnectedLineName: <unknown>\r\nLanguage: en\r\nAccountCode: \r\nContext: from-trunk\r\n"
        "Exten: 112\r\nPriority: 1\r\nUniqueid: 1718000000.{n}\r\nLinkedid: 1718000000.{n}\r\n\r\n"
    ),
    (
        "Event: QueueCallerJoin\r\nPrivilege: agent,all\r\nTimestamp: 1718000000.{n:06d}\r\n"
        "Channel: PJSIP/trunk-{n:08x}\r\nChannelState: 6\r\nChannelStateDesc: Up\r\n"
        "CallerIDNum: 08123456{n:04d}\r\nCallerIDName: {name}\r\nUniqueid: 1718000000.{n}\r\n"
        "Linkedid: 1718000000.{n}\r\nQueue: psap-112\r\nPosition: 1\r\nCount: 3\r\n\r\n"
    ),
    (
        "Event: AgentConnect\r\nPrivilege: agent,all\r\nTimestamp: 1718000000.{n:06d}\r\n"
        "Channel: PJSIP/trunk-{n:08x}\r\nUniqueid: 1718000000.{n}\r\nQueue: psap-112\r\n"
        "MemberName: Operator 7\r\nInterface: PJSIP/op7\r\nHoldTime: 4\r\nRingTime: 2\r\n"
        "DestChannel: PJSIP/op7-{n:08x}\r\n\r\n"
    ),
    (
        "Event: Hangup\r\nPrivilege: call,all\r\nTimestamp: 1718000000.{n:06d}\r\n"
        "Channel: PJSIP/trunk-{n:08x}\r\nUniqueid: 1718000000.{n}\r\nLinkedid: 1718000000.{n}\r\n"
        "Cause: 16\r\nCause-txt: Normal Clearing\r\n\r\n"
    ),
]
NAMES = ["Budi Santoso", "Müller", "Ωmega", "Siti", "<unknown>"]


def build(events: int) -> bytes:
    parts = [b"Asterisk Call Manager/9.0.0\r\n"]
    for n in range(events):
        text = TEMPLATES[n % len(TEMPLATES)].format(n=n, name=NAMES[n % len(NAMES)])
        parts.append(text.encode("utf-8"))
    return b"".join(parts)


def chunks(stream: bytes) -> list[bytes]:
    return [stream[i : i + CHUNK] for i in range(0, len(stream), CHUNK)]


def run_pbxbridge(pieces: list[bytes]) -> int:
    parser = AmiStreamParser()
    return sum(len(parser.feed(piece)) for piece in pieces)


def run_split(pieces: list[bytes]) -> int:
    buffer, count = b"", 0
    for piece in pieces:
        parts = (buffer + piece).split(b"\r\n\r\n")
        buffer = parts.pop()
        count += len(parts)
    return count


def run_panoramisk(pieces: list[bytes]) -> int:
    count = 0

    class Counting(AMIProtocol):
        def handle_message(self, message: object) -> None:
            nonlocal count
            count += 1

    proto = Counting()
    proto.connection_made(None)
    proto.log.disabled = True
    proto.encoding = "utf8"
    for piece in pieces:
        proto.data_received(piece)
    return count


def best_of(runs: int, fn: Callable[[list[bytes]], int], pieces: list[bytes]) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(runs):
        start = time.perf_counter()
        count = fn(pieces)
        best = min(best, time.perf_counter() - start)
    return best, count


def main() -> int:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    stream = build(events)
    pieces = chunks(stream)
    print(f"{events} events, {len(stream) / 1e6:.1f} MB, {len(pieces)} chunks of 64 KiB")
    rates: dict[str, float] = {}
    for name, fn in [
        ("pbxbridge", run_pbxbridge),
        ("bytes.split", run_split),
        ("panoramisk", run_panoramisk),
    ]:
        seconds, count = best_of(3, fn, pieces)
        rates[name] = count / seconds
        print(f"{name:12} {count:7d} msgs  {rates[name]:12,.0f} msgs/s")
    ours = rates["pbxbridge"]
    print(f"pbxbridge / bytes.split = {ours / rates['bytes.split']:.3f}")
    print(f"pbxbridge / panoramisk  = {ours / rates['panoramisk']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
