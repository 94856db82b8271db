"""What the AMI client is told (settings), what it hands the pipeline (items), what it
reports (state) and how its actions fail: the vocabulary of :mod:`pbxbridge.ami`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pbxbridge.ami_parser import Message
from pbxbridge.values import value

Fields = Mapping[str, str] | Sequence[tuple[str, str]]
ActionSpec = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True, slots=True)
class AmiSettings:
    host: str
    port: int
    username: str
    secret: str = field(repr=False)
    events: str = "call,agent,user,system"
    ping_interval: float = 3.0
    ping_timeout: float = 5.0
    connect_timeout: float = 5.0
    backoff_base: float = 0.5
    # While Asterisk is unreachable pbxbridge is blind (AMI has no replay), so retries
    # stay frequent; a rejected login backs off much further (fail2ban, log noise).
    backoff_cap: float = 5.0
    login_backoff_cap: float = 120.0
    stable_after: float = 30.0
    resync_actions: tuple[ActionSpec, ...] = (("CoreShowChannels", ()), ("QueueStatus", ()))
    # Events to parse; the others are counted (AmiState.events_skipped) and dropped
    # unparsed. Responses and messages carrying an ActionID are always parsed.
    # None parses everything.
    wanted_events: frozenset[str] | None = None


@value  # one per AMI event: built on the hot path
class AmiEvent:
    message: Message
    received_at: float


@dataclass(frozen=True, slots=True)
class SessionUp:
    at: float
    banner: str


@dataclass(frozen=True, slots=True)
class SessionDown:
    at: float
    reason: str


@dataclass(frozen=True, slots=True)
class ActionResult:
    """A resync action's Response and its list: the items, then the ``...Complete`` event
    (kept for its ``ListItems`` count)."""

    action: str
    response: Message
    events: tuple[Message, ...]
    received_at: float


AmiItem = AmiEvent | SessionUp | SessionDown | ActionResult


@dataclass(frozen=True, slots=True)
class ActionReply:
    response: Message
    events: tuple[Message, ...]


@dataclass(frozen=True, slots=True)
class AmiState:
    connected: bool
    logged_in: bool
    last_error: str | None
    login_failures: int
    reconnects: int
    events_received: int
    decode_errors: int
    malformed_lines: int
    bytes_received: int
    connected_since: float | None
    banner: str | None
    events_skipped: int = 0  # not in wanted_events: counted, never parsed


class AmiError(Exception):
    pass


class AmiNotConnected(AmiError):
    pass


class AmiConnectionLost(AmiError):
    pass


class AmiActionTimeout(AmiError, TimeoutError):
    pass
