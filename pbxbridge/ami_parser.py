"""Asterisk Manager Interface framing: bytes in, messages out. Pure: no I/O, no clock.

An AMI session starts with one banner line (``Asterisk Call Manager/X.Y.Z\\r\\n``), then
carries messages of ``Key: Value`` lines, each message ended by an empty line. The caller
owns the buffer: :func:`parse` returns the complete messages and the leftover bytes to
prepend to the next read. Messages are decoded only once complete, so a multi-byte UTF-8
character split across TCP reads survives; undecodable bytes are replaced (never dropped)
and the message is marked so the shell can count it.

Most of a live stream is noise to pbxbridge (Newstate, DialBegin, BridgeEnter, ...).
:func:`parse_selected` builds messages only for the events it is told to keep (plus
every response and every message carrying an ActionID) and counts the rest, which are
never decoded: a plain bytes test on the ``Event: Name`` first line decides.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from operator import itemgetter

__all__ = [
    "BANNER_PREFIX",
    "AmiStreamParser",
    "Message",
    "event_lines",
    "format_action",
    "parse",
    "parse_selected",
    "split_banner",
]

BANNER_PREFIX = "Asterisk Call Manager/"

_CRLF_END = b"\r\n\r\n"
# Asterisk always writes CRLF; a bare LF only shows up in hand-written or proxied
# streams, so that slower path runs only when the buffer holds a bare LF.
_ANY_END = re.compile(rb"\r?\n\r?\n")
_ANY_EOL = re.compile(r"\r?\n")


class Message:
    """One AMI message (event or response) with its headers in wire order.

    A plain slotted class built straight from the parsed pairs: building a frozen
    dataclass, its field tuple and its index was a third of what a wanted event cost in
    the replay benchmark (tests/benchmarks/bench_pipeline.py).
    """

    __slots__ = ("_index", "_pairs", "decode_error", "malformed_lines")

    def __init__(
        self,
        fields: Iterable[tuple[str, str]] = (),
        decode_error: bool = False,
        malformed_lines: int = 0,
    ) -> None:
        self._set(list(fields), decode_error, malformed_lines)

    @classmethod
    def _of(cls, pairs: list[tuple[str, str]], decode_error: bool, malformed: int) -> Message:
        msg = cls.__new__(cls)
        msg._set(pairs, decode_error, malformed)
        return msg

    def _set(self, pairs: list[tuple[str, str]], decode_error: bool, malformed: int) -> None:
        self._pairs = pairs
        self.decode_error = decode_error
        self.malformed_lines = malformed
        # First value per exact key. Keys repeat rarely (ChanVariable, Command output),
        # so the cheap build comes first and is redone first-wins only when it lost one.
        index = dict(pairs)
        if len(index) != len(pairs):
            index = dict(reversed(pairs))
        self._index = index

    @property
    def fields(self) -> tuple[tuple[str, str], ...]:
        return tuple(self._pairs)

    @property
    def index(self) -> Mapping[str, str]:
        """First value per exact key: what the event translation reads (Asterisk writes
        each key in one case; :meth:`get` also forgives other cases)."""
        return self._index

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (self._pairs, self.decode_error, self.malformed_lines) == (
            other._pairs,
            other.decode_error,
            other.malformed_lines,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Message(fields={self.fields!r}, decode_error={self.decode_error!r}, "
            f"malformed_lines={self.malformed_lines!r})"
        )

    def get(self, key: str, default: str | None = None) -> str | None:
        """First value for ``key``: exact case first, since that is what Asterisk
        writes and is cheapest, then any case."""
        value = self._index.get(key)
        if value is not None:
            return value
        folded = key.casefold()
        for k, v in self._pairs:
            if k.casefold() == folded:
                return v
        return default

    def get_all(self, key: str) -> list[str]:
        """Every value for ``key`` (any case), in order: Command output and
        ChanVariable repeat their key."""
        folded = key.casefold()
        return [v for k, v in self._pairs if k.casefold() == folded]

    # The three keys every message is routed on are looked up in Asterisk's exact case
    # only: a miss (most events have no ActionID) must not cost a case-folding scan.
    @property
    def event(self) -> str | None:
        return self._index.get("Event")

    @property
    def response(self) -> str | None:
        return self._index.get("Response")

    @property
    def action_id(self) -> str | None:
        return self._index.get("ActionID")


_SEP = ": "
_HAS_SEP = itemgetter(1)
_KEY_VALUE = itemgetter(0, 2)


def _message_from_lines(lines: list[str], decode_error: bool) -> Message | None:
    # Fast path, every step C-level: each line is "Key: Value" (Asterisk writes "Key: "
    # even for an empty value), split once at its first ": ".
    parts = list(map(str.partition, lines, repeat(_SEP)))
    if all(map(_HAS_SEP, parts)):
        return Message._of(list(map(_KEY_VALUE, parts)), decode_error, 0)
    pairs, malformed = [], 0
    for line in lines:
        key, sep, value = line.partition(_SEP)
        if not sep:
            if not line:
                # Only possible as leading blank lines left by a stray extra terminator.
                continue
            key, sep, value = line.partition(":")
            if not sep:
                malformed += 1
                continue
            # "Key:" or "Key:Value": keep it, an empty value included.
            value = value.removeprefix(" ")
        pairs.append((key, value))
    if not pairs and not malformed:
        return None
    return Message._of(pairs, decode_error, malformed)


def _decode(raw: bytes) -> tuple[str, bool]:
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), True


def parse(buffer: bytes) -> tuple[list[Message], bytes]:
    """Split ``buffer`` into complete messages and the leftover (incomplete) bytes.

    Never raises on content: malformed lines and invalid UTF-8 are recorded on the
    message, not dropped.
    """
    messages: list[Message] = []
    if buffer.count(b"\n") == buffer.count(b"\r\n"):
        end = buffer.rfind(_CRLF_END)
        if end < 0:
            return messages, buffer
        complete, leftover = buffer[:end], buffer[end + 4 :]
        try:
            # One decode for the whole batch is the fast path; UTF-8 is
            # self-synchronising, so splitting the text equals splitting the bytes.
            bodies = [(body, False) for body in complete.decode("utf-8").split("\r\n\r\n")]
        except UnicodeDecodeError:
            bodies = [_decode(raw) for raw in complete.split(_CRLF_END)]
        for text, bad in bodies:
            msg = _message_from_lines(text.split("\r\n"), bad)
            if msg is not None:
                messages.append(msg)
        return messages, leftover
    pieces = _ANY_END.split(buffer)
    leftover = pieces.pop()
    for raw in pieces:
        text, bad = _decode(raw)
        msg = _message_from_lines(_ANY_EOL.split(text), bad)
        if msg is not None:
            messages.append(msg)
    return messages, leftover


def event_lines(names: Iterable[str]) -> frozenset[bytes]:
    """The first lines (``b"Event: Name"``) of the events :func:`parse_selected` keeps."""
    return frozenset(f"Event: {name}".encode() for name in names)


def parse_selected(buffer: bytes, keep: frozenset[bytes]) -> tuple[list[Message], int, bytes]:
    """:func:`parse`, building messages only for responses, messages carrying an
    ActionID (any case: action lists such as QueueMember items) and the events whose
    first line is in ``keep`` (see :func:`event_lines`). Returns (messages, number of
    events skipped, leftover). A skipped event is never decoded, so it is counted as
    skipped, never as a decode error or a malformed line."""
    if buffer.count(b"\n") == buffer.count(b"\r\n"):
        end = buffer.rfind(_CRLF_END)
        if end < 0:
            return [], 0, buffer
        leftover, eol = buffer[end + 4 :], b"\r\n"
        pieces = buffer[:end].split(_CRLF_END)
    else:
        pieces = _ANY_END.split(buffer)
        leftover, eol = pieces.pop(), b"\n"
    messages: list[Message] = []
    skipped = 0
    for raw in pieces:
        if raw.startswith(b"Event: "):
            cut = raw.find(eol)
            first = raw if cut < 0 else raw[:cut].rstrip(b"\r")
            if first not in keep and b"actionid" not in raw.lower():
                skipped += 1
                continue
        text, bad = _decode(raw)
        lines = text.split("\r\n") if eol == b"\r\n" else _ANY_EOL.split(text)
        msg = _message_from_lines(lines, bad)
        if msg is not None:
            messages.append(msg)
    return messages, skipped, leftover


def split_banner(buffer: bytes) -> tuple[str | None, bytes]:
    """Take the session's first line off ``buffer``: (banner, rest), or (None, buffer)
    while the line is incomplete. The caller decides whether it looks like Asterisk."""
    eol = buffer.find(b"\n")
    if eol < 0:
        return None, buffer
    line = buffer[:eol].rstrip(b"\r")
    return line.decode("utf-8", errors="replace"), buffer[eol + 1 :]


class AmiStreamParser:
    """Stateful wrapper for one TCP session: banner first, then messages.

    With ``wanted`` (event names), other events are only counted in :attr:`skipped`
    (see :func:`parse_selected`); responses and ActionID messages are always kept.
    """

    __slots__ = ("_buffer", "_keep", "banner", "skipped")

    def __init__(self, *, expect_banner: bool = True, wanted: Iterable[str] | None = None) -> None:
        self.banner: str | None = None if expect_banner else ""
        self._buffer = b""
        self._keep = None if wanted is None else event_lines(wanted)
        self.skipped = 0

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the end of a message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message]:
        buffer = self._buffer + data if self._buffer else data
        if self.banner is None:
            self.banner, buffer = split_banner(buffer)
            if self.banner is None:
                self._buffer = buffer
                return []
        if self._keep is None:
            messages, self._buffer = parse(buffer)
            return messages
        messages, skipped, self._buffer = parse_selected(buffer, self._keep)
        self.skipped += skipped
        return messages


def _check(what: str, text: str, *, is_key: bool) -> None:
    # Name the field, never echo the value: it may be a Secret.
    if "\r" in text or "\n" in text:
        raise ValueError(f"AMI {what} contains CR or LF, which would inject a line")
    if is_key and (":" in text or not text):
        raise ValueError(f"AMI {what} is empty or contains ':'")


def format_action(name: str, fields: Mapping[str, str] | Sequence[tuple[str, str]]) -> bytes:
    """Serialise one action; refuse anything that could forge a header or an action."""
    _check("action name", name, is_key=True)
    pairs = fields.items() if isinstance(fields, Mapping) else fields
    parts = ["Action: ", name, "\r\n"]
    for key, value in pairs:
        _check(f"field name {key!r}", key, is_key=True)
        _check(f"value of field {key!r}", value, is_key=False)
        parts += (key, ": ", value, "\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")
