"""Offline replay of a recorded raw AMI capture through the live parser and tracker.

Used by ``pbxbridge replay FILE`` (auditing) and by the unit tests. The stream is fed
in fixed-size chunks exactly as the socket would deliver it, and action lists
(CoreShowChannels) are grouped the way the live client groups them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pbxbridge import events as ev
from pbxbridge.ami_parser import AmiStreamParser, Message
from pbxbridge.ami_translate import Reply, Translator

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


def events(
    msgs: Iterable[Message], fallback_time: float = 0.0, translator: Translator | None = None
) -> Iterator[ev.Event]:
    """Typed events in stream order, by the live client's own grouping and translation:
    a CoreShowChannels list becomes one Snapshot, a QueueStatus list MembersListed.

    Offline there is no receive time: the last event's Timestamp stands in for it.
    Every message carrying an ActionID is taken as a reply (a capture's actions were
    the recording client's).
    """
    translator = translator if translator is not None else Translator()
    replies: dict[str, Reply] = {}
    clock = fallback_time
    for msg in msgs:
        aid = msg.action_id
        if aid is None:
            event = translator.event(msg, clock)
            if event is not None:
                clock = event.at
                yield event
            continue
        reply = replies.setdefault(aid, Reply())
        if reply.add(msg):
            del replies[aid]
            listed = translator.listed(reply.items, clock)
            if listed is not None:
                yield listed
