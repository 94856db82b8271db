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

from pbxbridge.ami_message import Keys, Message, pairs_of

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


def _message(text: str, decode_error: bool) -> Message | None:
    """One CRLF-framed message, or None for a run of empty lines."""
    if text and text[0] not in "\r\n":
        return Message._lazy(text, decode_error)
    return _message_from_lines(text.split("\r\n"), decode_error)


def _message_from_lines(lines: list[str], decode_error: bool) -> Message | None:
    pairs, malformed = pairs_of(lines)
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
