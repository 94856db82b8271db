"""The event vocabulary shared by the AMI adapter and the pure call tracker.

Only the ~20 AMI event types the tracker needs become typed events; every other
message is ignored here (and counted by the shell). Times are Asterisk's own
``Timestamp:`` header (manager.conf ``timestampevents = yes``); when it is missing
the receive time stands in and the event says so, so the shell can warn once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from math import isfinite
from typing import Protocol, overload

from pbxbridge import dialplan_vars as dv
from pbxbridge.ami_parser import Keys, Message
from pbxbridge.values import value


class Fields(Protocol):
    """What translation reads from a parsed AMI message (ami_parser.Message)."""

    @overload
    def get(self, key: str) -> str | None: ...
    @overload
    def get(self, key: str, default: str) -> str: ...
    def pick(self, keys: Keys) -> Sequence[str]: ...


@value
class ChannelRef:
    """The channel an event is about: its ids and the caller as Asterisk saw them."""

    uniqueid: str
    linkedid: str
    channel: str
    caller_number: str
    caller_name: str
    exten: str = ""

    @property
    def device(self) -> str:
        return device_of(self.channel)


def device_of(channel: str) -> str:
    """The phone behind a channel name: ``PJSIP/1001-0000001a`` -> ``PJSIP/1001``,
    ``Local/1001@agents-00000001;2`` -> ``Local/1001@agents``."""
    name = channel.split(";", 1)[0]
    return name.rsplit("-", 1)[0] if "-" in name else name


@value
class ChannelCreated:
    at: float
    ref: ChannelRef


@value
class HangupRequested:
    """HangupRequest / SoftHangupRequest: somebody asked this channel to go away."""

    at: float
    ref: ChannelRef
    cause: int = 0  # SoftHangupRequest: Asterisk's AST_SOFTHANGUP_* flags

    @property
    def by_shutdown(self) -> bool:
        """AST_SOFTHANGUP_SHUTDOWN: Asterisk is stopping and hangs up every channel
        (its Shutdown event only comes after these hang-ups)."""
        return bool(self.cause & 4)


@value
class ChannelHungUp:
    at: float
    ref: ChannelRef
    cause: str


@value
class Offered:
    """The dialplan hook ``Gosub(pbxbridge,offered,1(SERVICE))`` ran on this channel."""

    at: float
    ref: ChannelRef
    service: str


@value
class QueueJoined:
    at: float
    ref: ChannelRef
    queue: str


@value
class QueueLeft:
    at: float
    ref: ChannelRef
    queue: str


@value
class AgentRinging:
    """AgentCalled: a call taker's phone starts ringing for this caller."""

    at: float
    ref: ChannelRef
    queue: str
    agent: str
    agent_uniqueid: str


@value
class AgentNoAnswer:
    """AgentRingNoAnswer (its RingTime is in milliseconds, unlike AgentConnect's)."""

    at: float
    ref: ChannelRef
    queue: str
    agent: str
    agent_uniqueid: str
    ring_ms: int


@value
class AgentAnswered:
    """AgentConnect: the call taker is connected to the caller."""

    at: float
    ref: ChannelRef
    queue: str
    agent: str
    agent_uniqueid: str
    agent_channel: str = ""


@value
class Classified:
    """Hook ``classify``: a call taker's category for the call on this channel's
    Linkedid, or (after the call) for the last call of this channel's phone."""

    at: float
    ref: ChannelRef
    category: str


@value
class DispatchHooked:
    """Hook ``dispatch``: the call was handed to an agency by radio or CAD."""

    at: float
    ref: ChannelRef
    agency: str


@value
class BlindTransferred:
    at: float
    linkedid: str  # the transferee's (the caller's) Linkedid
    exten: str
    success: bool


@value
class AttendedTransferred:
    at: float
    linkedid: str
    success: bool


@value
class CallbackDialed:
    """The callback feature's result, reported by the dialplan after its Dial."""

    at: float
    ref: ChannelRef
    call_id: str
    status: str


@value
class MemberStatus:
    """QueueMemberStatus (event) or QueueMember (QueueStatus list item)."""

    at: float
    queue: str
    member: str
    status: int  # Asterisk device state: 1 not in use, 2 in use, 5 unavailable, ...
    paused: bool


@value
class Booted:
    """FullyBooted, synthesised at every login; a small uptime means a restart."""

    at: float
    uptime: float | None


@value
class PbxShutdown:
    """Shutdown: Asterisk is stopping (or restarting); the hang-ups that follow are its
    doing, not the callers'."""

    at: float
    restart: bool


@value
class LiveChannel:
    """One CoreShowChannel item of a resynchronisation snapshot."""

    ref: ChannelRef
    duration: float
    application: str
    application_data: str
    bridged: bool


@value
class Snapshot:
    """Every channel alive at ``at`` (CoreShowChannels, taken after each login)."""

    at: float
    channels: tuple[LiveChannel, ...]


Event = (
    ChannelCreated
    | HangupRequested
    | ChannelHungUp
    | Offered
    | QueueJoined
    | QueueLeft
    | AgentRinging
    | AgentNoAnswer
    | AgentAnswered
    | MemberStatus
    | Booted
    | PbxShutdown
    | Snapshot
    | Classified
    | DispatchHooked
    | BlindTransferred
    | AttendedTransferred
    | CallbackDialed
)


def _time(raw: str, received_at: float) -> tuple[float, bool]:
    if raw:
        try:
            at = float(raw)
        except ValueError:
            pass
        else:
            if isfinite(at):  # "nan" and "inf" parse as floats; no time is either
                return at, True
    return received_at, False


def event_time(msg: Fields, received_at: float) -> tuple[float, bool]:
    """Asterisk's Timestamp when present and sane, else the receive time (and False)."""
    return _time(msg.get("Timestamp", ""), received_at)


# Every channel event carries Asterisk's channel snapshot; these are the fields of it
# pbxbridge reads, in the order Asterisk writes them. A translation picks them in one
# call (see ami_parser.Keys), after the Timestamp and before the event's own fields.
_CHANNEL = ("Channel", "CallerIDNum", "CallerIDName", "Exten", "Uniqueid", "Linkedid")


def _ref(v: Sequence[str], at: int = 1) -> ChannelRef:
    """The ChannelRef from values picked with ``_CHANNEL`` starting at index ``at``."""
    return ChannelRef(v[at + 4], v[at + 5], v[at], v[at + 1], v[at + 2], v[at + 3])


_CHANNEL_ONLY = Keys(*_CHANNEL)  # list items (CoreShowChannel) carry no Timestamp


def channel_ref(m: Fields) -> ChannelRef:
    return _ref(m.pick(_CHANNEL_ONLY), 0)


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value or "")
    except ValueError:
        return default


def parse_duration(value: str) -> float:
    """CoreShowChannel's ``Duration`` (HH:MM:SS) in seconds; 0 when unparseable."""
    parts = value.split(":")
    try:
        return float(sum(int(p) * 60**i for i, p in enumerate(reversed(parts))))
    except ValueError:
        return 0.0


@dataclass(frozen=True, slots=True)
class Translation:
    """How one AMI event type becomes a typed event: the fields it reads, Timestamp
    first and then in the order Asterisk writes them, and the builder given the
    message, those values and the event's time."""

    keys: Keys
    build: Callable[[Fields, Sequence[str], float], Event | None]


def _channel_event(
    build: Callable[[Fields, Sequence[str], float], Event | None], *extra: str
) -> Translation:
    return Translation(Keys("Timestamp", *_CHANNEL, *extra), build)


def _other_event(build: Callable[[Fields, Sequence[str], float], Event | None]) -> Translation:
    return Translation(Keys("Timestamp"), build)


def _user_event(m: Fields, v: Sequence[str], at: float) -> Event | None:
    """The dialplan hooks (dialplan/pbxbridge.conf), by UserEvent name."""
    name, ref = v[7], _ref(v)
    if name == dv.USEREVENT_OFFERED:
        return Offered(at, ref, m.get(dv.HEADER_SERVICE, ""))
    if name == dv.USEREVENT_CLASSIFY:
        return Classified(at, ref, m.get(dv.HEADER_CATEGORY, ""))
    if name == dv.USEREVENT_DISPATCH:
        return DispatchHooked(at, ref, m.get(dv.HEADER_AGENCY, ""))
    if name == dv.USEREVENT_CALLBACK:
        return CallbackDialed(at, ref, m.get(dv.HEADER_CALL_ID, ""), m.get(dv.HEADER_STATUS, ""))
    return None


def _member_status(m: Fields, v: Sequence[str], at: float) -> Event:
    return MemberStatus(
        at,
        m.get("Queue", ""),
        m.get("MemberName") or m.get("Name", ""),
        _int(m.get("Status")),
        m.get("Paused") == "1",
    )


def _booted(m: Fields, v: Sequence[str], at: float) -> Event:
    uptime = m.get("Uptime")
    try:
        return Booted(at, float(uptime) if uptime else None)
    except ValueError:
        return Booted(at, None)


# The table of contents of what pbxbridge reads from AMI: event name -> translation.
# Values: v[0] the Timestamp, v[1:7] the channel (see _ref), then the extra fields.
TRANSLATORS: Mapping[str, Translation] = {
    "Newchannel": _channel_event(lambda m, v, at: ChannelCreated(at, _ref(v))),
    "HangupRequest": _channel_event(lambda m, v, at: HangupRequested(at, _ref(v))),
    "SoftHangupRequest": _channel_event(
        lambda m, v, at: HangupRequested(at, _ref(v), _int(v[7])), "Cause"
    ),
    "Hangup": _channel_event(lambda m, v, at: ChannelHungUp(at, _ref(v), v[7]), "Cause"),
    "UserEvent": _channel_event(_user_event, "UserEvent"),
    "QueueCallerJoin": _channel_event(lambda m, v, at: QueueJoined(at, _ref(v), v[7]), "Queue"),
    "QueueCallerLeave": _channel_event(lambda m, v, at: QueueLeft(at, _ref(v), v[7]), "Queue"),
    "AgentCalled": _channel_event(
        lambda m, v, at: AgentRinging(at, _ref(v), v[8], v[9], v[7]),
        "DestUniqueid",
        "Queue",
        "MemberName",
    ),
    "AgentRingNoAnswer": _channel_event(
        lambda m, v, at: AgentNoAnswer(at, _ref(v), v[8], v[9], v[7], _int(v[10])),
        "DestUniqueid",
        "Queue",
        "MemberName",
        "RingTime",
    ),
    "AgentConnect": _channel_event(
        lambda m, v, at: AgentAnswered(at, _ref(v), v[9], v[10], v[8], v[7]),
        "DestChannel",
        "DestUniqueid",
        "Queue",
        "MemberName",
    ),
    "BlindTransfer": _other_event(
        lambda m, v, at: BlindTransferred(
            at,
            m.get("TransfereeLinkedid", ""),
            m.get("Extension", ""),
            m.get("Result") == "Success",
        )
    ),
    "AttendedTransfer": _other_event(
        lambda m, v, at: AttendedTransferred(
            at,
            m.get("TransfereeLinkedid") or m.get("OrigTransfererLinkedid", ""),
            m.get("Result") == "Success",
        )
    ),
    "QueueMemberStatus": _other_event(_member_status),
    "QueueMember": _other_event(_member_status),
    "FullyBooted": _other_event(_booted),
    "Shutdown": _other_event(lambda m, v, at: PbxShutdown(at, m.get("Restart") == "True")),
}

# Event names worth asking Asterisk for; everything else is noise to pbxbridge.
WANTED_EVENTS = frozenset(TRANSLATORS) | {"CoreShowChannel", "CoreShowChannelsComplete"}


def translate(msg: Message, received_at: float) -> tuple[Event | None, bool]:
    """The typed event for an AMI event message (or None), and whether it had a Timestamp."""
    t = TRANSLATORS.get(msg.event or "")
    if t is None:
        return None, True
    values = msg.pick(t.keys)
    at, stamped = _time(values[0], received_at)
    return t.build(msg, values, at), stamped


def snapshot(items: Sequence[Message], at: float) -> Snapshot:
    """A Snapshot from CoreShowChannel list items."""
    channels = tuple(
        LiveChannel(
            ref=channel_ref(m),
            duration=parse_duration(m.get("Duration", "")),
            application=m.get("Application", ""),
            application_data=m.get("ApplicationData", ""),
            bridged=bool(m.get("BridgeId")),
        )
        for m in items
        if m.event == "CoreShowChannel"
    )
    return Snapshot(at, channels)
