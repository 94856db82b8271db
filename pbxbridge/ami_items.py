"""What the AMI client is told (settings), what it reports (state), what its actions
return and how they fail: the vocabulary of :mod:`pbxbridge.ami` (what it hands the
pipeline are the typed events of :mod:`pbxbridge.events`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pbxbridge.ami_parser import Message

Fields = Mapping[str, str] | Sequence[tuple[str, str]]
ActionSpec = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True, slots=True)
class AmiSettings:
    """Built from ``[ami]`` by :func:`pbxbridge.config.ami_settings`; the fields with
    defaults are policy, not configuration."""

    host: str
    port: int
    username: str
    secret: str = field(repr=False)
    ping_interval: float
    ping_timeout: float
    events: str = "call,agent,user,system"
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
