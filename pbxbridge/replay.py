"""Offline replay of a recorded raw AMI capture through the live parser and tracker.

Used by ``pbxbridge replay FILE`` (auditing) and by the unit tests. The stream is fed
in fixed-size chunks exactly as the socket would deliver it, and action lists
(CoreShowChannels) are grouped the way the live client groups them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pbxbridge import events as ev
from pbxbridge.ami_parser import AmiStreamParser, Message

HEADER_MARK = b"#"


def strip_header(data: bytes) -> bytes:
    """Drop the ``#`` comment lines a recorded transcript starts with."""
    while data.startswith(HEADER_MARK):
        _, _, data = data.partition(b"\n")
    return data


def chunks(data: bytes, size: int = 65536) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def messages(pieces: Iterable[bytes]) -> Iterator[Message]:
    parser: AmiStreamParser | None = None
    for piece in pieces:
        if parser is None:
            parser = AmiStreamParser(expect_banner=piece.startswith(b"Asterisk Call Manager"))
        yield from parser.feed(piece)


def events(msgs: Iterable[Message], fallback_time: float = 0.0) -> Iterator[ev.Event]:
    """Typed events in stream order; a CoreShowChannels list becomes one Snapshot.

    List items carry no Timestamp; offline, the last event's Timestamp stands in for
    the receive time the live client would use.
    """
    lists: dict[str, list[Message]] = {}
    clock = fallback_time
    for msg in msgs:
        aid = msg.action_id
        if msg.response is not None:
            if aid and (msg.get("EventList") or "").lower() == "start":
                lists[aid] = []
            continue
        if aid is not None and aid in lists:
            lists[aid].append(msg)
            if (msg.get("EventList") or "").lower() == "complete":
                items = lists.pop(aid)
                if any(m.event == "CoreShowChannel" for m in items):
                    yield ev.snapshot(items, clock)
            continue
        event, _ = ev.translate(msg, clock)
        if event is not None:
            clock = event.at
            yield event
