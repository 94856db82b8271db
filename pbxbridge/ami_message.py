"""An AMI message, read on demand: :class:`Message` keeps its text and splits it into
fields only when a field is asked for that one compiled pattern per event type
(:class:`Keys`) cannot pick. Built by :mod:`pbxbridge.ami_parser`. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import repeat
from operator import itemgetter
from typing import overload


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
            index = self._set(*pairs_of(self._text[2:].split("\r\n")))
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


def pairs_of(lines: list[str]) -> tuple[list[tuple[str, str]], int]:
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
