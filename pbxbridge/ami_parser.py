"""Asterisk Manager Interface framing: bytes in, messages out. Pure: no I/O, no clock.

An AMI session starts with one banner line (``Asterisk Call Manager/X.Y.Z\\r\\n``), then
carries messages of ``Key: Value`` lines, each message ended by an empty line. The caller
owns the buffer: :func:`parse` returns the complete messages and the leftover bytes to
prepend to the next read. Messages are decoded only once complete, so a multi-byte UTF-8
character split across TCP reads survives; undecodable bytes are replaced (never dropped)
and the message is marked so the shell can count it.

Most of a live stream is noise to pbxbridge (VarSet, Newexten, Newstate, DialBegin,
...). :func:`parse_selected` builds messages only for the events it is told to keep
(plus every response and every message carrying an ActionID) and counts the rest: the
``Event: Name`` first line decides, and a skipped event is never split into fields nor
counted as a decode error. A kept message is read lazily (see :class:`Message`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from operator import itemgetter
from typing import overload

__all__ = [
    "BANNER_PREFIX",
    "AmiStreamParser",
    "Keys",
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

    A message from the wire is parsed lazily: it keeps its text, and :meth:`get` of a
    key written as ``Key: Value`` is two ``str.find`` and a slice. An event carries ~20
    lines of which translation reads ~8; splitting all of them into pairs and a dict
    was 60% of what a wanted event cost in the replay benchmark
    (tests/benchmarks/bench_pipeline.py). Anything else (a miss, another case,
    :attr:`fields`, :meth:`get_all`, :attr:`malformed_lines`) parses the whole message
    once, with the same rules as before: nothing is lost, odd lines are counted.
    """

    __slots__ = ("_index", "_malformed", "_pairs", "_text", "decode_error")
    _index: dict[str, str] | None  # None until parsed in full
    _pairs: list[tuple[str, str]]
    _malformed: int
    _text: str  # CRLF + the message's lines, for a lazily parsed message
    decode_error: bool

    def __init__(
        self,
        fields: Iterable[tuple[str, str]] = (),
        decode_error: bool = False,
        malformed_lines: int = 0,
    ) -> None:
        self._text = ""
        self.decode_error = decode_error
        self._set(list(fields), malformed_lines)

    @classmethod
    def _lazy(cls, text: str, decode_error: bool) -> Message:
        """``text``: one message's lines joined by CRLF, the first one not empty."""
        msg = cls.__new__(cls)
        # A leading CRLF puts the first line's key after one too: one needle form.
        msg._text = "\r\n" + text
        msg.decode_error = decode_error
        msg._index = None
        return msg

    def _set(self, pairs: list[tuple[str, str]], malformed: int) -> dict[str, str]:
        self._pairs = pairs
        self._malformed = malformed
        # First value per exact key. Keys repeat rarely (ChanVariable, Command output),
        # so the cheap build comes first and is redone first-wins only when it lost one.
        index = dict(pairs)
        if len(index) != len(pairs):
            index = dict(reversed(pairs))
        self._index = index
        return index

    def _parsed(self) -> dict[str, str]:
        index = self._index
        if index is None:
            index = self._set(*_pairs(self._text[2:].split("\r\n")))
        return index

    @property
    def parsed(self) -> bool:
        """Whether the whole message has been split into fields (and checked)."""
        return self._index is not None

    @property
    def fields(self) -> tuple[tuple[str, str], ...]:
        self._parsed()
        return tuple(self._pairs)

    @property
    def malformed_lines(self) -> int:
        """Lines without a colon, skipped (parses the message)."""
        self._parsed()
        return self._malformed

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (self.fields, self.decode_error, self.malformed_lines) == (
            other.fields,
            other.decode_error,
            other.malformed_lines,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Message(fields={self.fields!r}, decode_error={self.decode_error!r}, "
            f"malformed_lines={self.malformed_lines!r})"
        )

    def _find(self, key: str) -> str | None:
        """The first value of exactly ``key``, or None: read off the unparsed text when
        the first line starting ``Key:`` is written ``Key: value`` (as Asterisk does),
        else from the full parse (a ``Key:value`` line, say)."""
        text = self._text
        needle = "\r\n" + key + ":"
        start = text.find(needle)
        if start < 0:
            return None
        start += len(needle)
        if not text.startswith(" ", start):
            return self._parsed().get(key)
        end = text.find("\r\n", start)
        return text[start + 1 : end] if end >= 0 else text[start + 1 :]

    @overload
    def get(self, key: str) -> str | None: ...
    @overload
    def get(self, key: str, default: str) -> str: ...
    @overload
    def get(self, key: str, default: str | None) -> str | None: ...
    def get(self, key: str, default: str | None = None) -> str | None:
        """First value for ``key``: exact case first, since that is what Asterisk
        writes and is cheapest, then any case."""
        if self._index is None:
            found = self._find(key)
            if found is not None:
                return found
        index = self._parsed()
        value = index.get(key)
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
        self._parsed()
        folded = key.casefold()
        return [v for k, v in self._pairs if k.casefold() == folded]

    def pick(self, keys: Keys) -> Sequence[str]:
        """The values of ``keys`` ("" when absent), in their order: one call per
        translated event. When the keys are where and in the order Asterisk writes
        them, one regular expression match reads them all (first occurrences, in
        order); otherwise the message is parsed in full and :meth:`get` answers."""
        if self._index is None:
            found = keys.pattern.match(self._text)
            if found is not None:
                return found.groups()
            self._parsed()
        return [self.get(name, "") for name in keys.names]

    # The three keys every message is routed on are looked up in Asterisk's exact case
    # only: a miss (most events have no ActionID) must not cost a parse or a scan.
    def _exact(self, key: str) -> str | None:
        index = self._index
        return self._find(key) if index is None else index.get(key)

    @property
    def event(self) -> str | None:
        text = self._text
        if self._index is None and text.startswith("\r\nEvent: "):
            end = text.find("\r\n", 9)
            return text[9:end] if end >= 0 else text[9:]
        return self._exact("Event")

    @property
    def response(self) -> str | None:
        return self._exact("Response")

    @property
    def action_id(self) -> str | None:
        return self._exact("ActionID")


class Keys:
    """Header names read together from many messages (one event type's fields), in
    the order Asterisk writes them, compiled once into one regular expression.

    Each name must start a line as ``Name: value``; the lines skipped before it may not
    start with it or with any name after it (``Name:`` included), so a match always
    holds each name's first line, as the full parse would. Values run to the CRLF. Any
    other layout (a name missing, out of order, repeated early, a value with a bare CR)
    fails the match, and the caller parses the message in full.
    """

    __slots__ = ("names", "pattern")

    def __init__(self, *names: str) -> None:
        self.names = names
        parts = []
        for i, name in enumerate(names):
            later = "|".join(re.escape(n) for n in names[i:])
            parts.append(rf"(?:\r\n(?!(?:{later}):)[^\r]*)*?\r\n{re.escape(name)}: ([^\r]*)")
        self.pattern = re.compile("".join(parts) + r"(?=\r\n|\Z)")


_SEP = ": "
_HAS_SEP = itemgetter(1)
_KEY_VALUE = itemgetter(0, 2)


def _pairs(lines: list[str]) -> tuple[list[tuple[str, str]], int]:
    """(key, value) pairs of ``lines`` and the number of lines without a colon."""
    # Fast path, every step C-level: each line is "Key: Value" (Asterisk writes "Key: "
    # even for an empty value), split once at its first ": ".
    parts = list(map(str.partition, lines, repeat(_SEP)))
    if all(map(_HAS_SEP, parts)):
        return list(map(_KEY_VALUE, parts)), 0
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
    return pairs, malformed


def _message(text: str, decode_error: bool) -> Message | None:
    """One CRLF-framed message, or None for a run of empty lines."""
    if text and text[0] not in "\r\n":
        return Message._lazy(text, decode_error)
    return _message_from_lines(text.split("\r\n"), decode_error)


def _message_from_lines(lines: list[str], decode_error: bool) -> Message | None:
    pairs, malformed = _pairs(lines)
    if not pairs and not malformed:
        return None
    return Message(pairs, decode_error, malformed)


def _decode(raw: bytes) -> tuple[str, bool]:
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), True


def _all_crlf(buffer: bytes, crlf: bool | None) -> bool:
    # Two counts over a 64 KiB read cost as much as splitting it: a session that
    # already showed its line ends (AmiStreamParser) says so instead.
    return crlf if crlf is not None else buffer.count(b"\n") == buffer.count(b"\r\n")


def parse(buffer: bytes, crlf: bool | None = None) -> tuple[list[Message], bytes]:
    """Split ``buffer`` into complete messages and the leftover (incomplete) bytes.
    ``crlf``: every line ends in CRLF (True), lines may end in a bare LF (False), or
    look at the buffer (None).

    Never raises on content: malformed lines and invalid UTF-8 are recorded on the
    message, not dropped.
    """
    messages, _, leftover = parse_selected(buffer, None, crlf)
    return messages, leftover


def event_lines(names: Iterable[str]) -> frozenset[str]:
    """The first lines (``Event: Name``) of the events :func:`parse_selected` keeps."""
    return frozenset(f"Event: {name}" for name in names)


# How an action's reply and list items are told from events: Asterisk writes this key in
# this case, and the AMI client routes on it in this case (Message.action_id).
_ACTION_ID = "\r\nActionID:"


def parse_selected(
    buffer: bytes, keep: frozenset[str] | None, crlf: bool | None = None, replies: bool = True
) -> tuple[list[Message], int, bytes]:
    """:func:`parse`, building messages only for responses, messages carrying an
    ActionID (list items such as QueueMember) and the events whose first line is in
    ``keep`` (see :func:`event_lines`; None keeps every message). Returns (messages,
    number of events skipped, leftover). A skipped event is counted as skipped, never as
    a decode error or a malformed line. With ``replies`` False (no action waits for a
    reply) an event is judged on its first line alone: looking for an ActionID in every
    unwanted event was a fifth of the filter's cost.

    With CRLF framing (``crlf`` True) a message ended by bare LFs is framed line by line
    when it starts a message or sits in a kept one; one that follows CRLF lines of an
    unwanted event is not looked for (that would scan every byte of the noise)."""
    messages: list[Message] = []
    skipped = 0
    if _all_crlf(buffer, crlf):
        end = buffer.rfind(_CRLF_END)
        if end < 0:
            return messages, 0, buffer
        complete, leftover = buffer[:end], buffer[end + 4 :]
        try:
            # One decode for the whole batch is the fast path (UTF-8 is self-
            # synchronising, so splitting the text equals splitting the bytes); the
            # test of a first line is then a slice and a set lookup per message.
            texts = complete.decode("utf-8").split("\r\n\r\n")
        except UnicodeDecodeError:
            texts = []
        if texts:
            for text in texts:
                if keep is not None and text.startswith("Event: "):
                    cut = text.find("\r\n")
                    first = text if cut < 0 else text[:cut]
                    # A bare LF in the first line may be a message ended by bare LFs
                    # (never from Asterisk) hiding the next ones: that one is reframed.
                    if (
                        first not in keep
                        and (not replies or _ACTION_ID not in text)
                        and ("\n" not in first or "\n\n" not in text)
                    ):
                        skipped += 1
                        continue
                if "\n\n" in text:
                    kept, dropped, _ = parse_selected(
                        text.encode() + _CRLF_END, keep, False, replies
                    )
                    messages += kept
                    skipped += dropped
                    continue
                msg = _message(text, False)
                if msg is not None:
                    messages.append(msg)
            return messages, skipped, leftover
        pieces, eol = complete.split(_CRLF_END), b"\r\n"
    else:
        pieces = _ANY_END.split(buffer)
        leftover, eol = pieces.pop(), b"\n"
    # Some bytes are not UTF-8 (or lines end in a bare LF): message by message, and a
    # skipped event is never decoded.
    for raw in pieces:
        if keep is not None and raw.startswith(b"Event: "):
            cut = raw.find(eol)
            head = raw if cut < 0 else raw[:cut].rstrip(b"\r")
            if (
                head.decode("utf-8", errors="replace") not in keep
                and (not replies or b"\nActionID:" not in raw)
                and (eol == b"\n" or b"\n" not in head or b"\n\n" not in raw)
            ):
                skipped += 1
                continue
        if eol == b"\r\n" and b"\n\n" in raw:  # as above: a message ended by bare LFs
            kept, dropped, _ = parse_selected(raw + _CRLF_END, keep, False, replies)
            messages += kept
            skipped += dropped
            continue
        text, bad = _decode(raw)
        if eol == b"\r\n":
            msg = _message(text, bad)
        else:
            msg = _message_from_lines(_ANY_EOL.split(text), bad)
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

    The first line end after the banner sets the session's framing: CRLF (what
    Asterisk writes), or bare LF accepted too (hand-written or proxied streams). Testing
    every 64 KiB read for a bare LF cost a fifth of the replay; in a CRLF session a bare
    LF inside a line is part of its value, and a message ended by bare LFs is found
    where it would hide others (see :func:`parse_selected`).
    """

    __slots__ = ("_buffer", "_crlf", "_keep", "banner", "replies_expected", "skipped")

    def __init__(self, *, expect_banner: bool = True, wanted: Iterable[str] | None = None) -> None:
        self.banner: str | None = None if expect_banner else ""
        self._buffer = b""
        self._keep = None if wanted is None else event_lines(wanted)
        self._crlf: bool | None = None
        self.skipped = 0
        # Set by the owner: whether any action waits for its reply. When none does, an
        # unwanted event cannot be a list item of ours and is skipped on its first line.
        self.replies_expected = True

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
        crlf = self._crlf
        if crlf is None:
            eol = buffer.find(b"\n")
            if eol < 0:
                self._buffer = buffer
                return []
            crlf = self._crlf = buffer[eol - 1 : eol] == b"\r"
        messages, skipped, self._buffer = parse_selected(
            buffer, self._keep, crlf or None, self.replies_expected
        )
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
