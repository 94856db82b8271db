"""The event vocabulary shared by the AMI adapter and the pure call tracker.

Only the ~20 AMI event types the tracker needs become typed events; every other
message is ignored here (and counted by the shell). Times are Asterisk's own
``Timestamp:`` header (manager.conf ``timestampevents = yes``); when it is missing
the receive time stands in and the event says so, so the shell can warn once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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


def event_time(msg: Fields, received_at: float) -> tuple[float, bool]:
    """Asterisk's Timestamp when present and sane, else the receive time (and False)."""
    raw = msg.get("Timestamp")
    if raw:
        try:
            return float(raw), True
        except ValueError:
            pass
    return received_at, False


# Every channel event carries Asterisk's channel snapshot; these are the fields of it
# pbxbridge reads, in the order Asterisk writes them, picked in one call together with
# the event's own fields that follow it (see ami_parser.Keys).
_CHANNEL = ("Channel", "CallerIDNum", "CallerIDName", "Exten", "Uniqueid", "Linkedid")


def _ref(v: Sequence[str]) -> ChannelRef:
    """The ChannelRef from values picked with ``_CHANNEL`` first."""
    return ChannelRef(v[4], v[5], v[0], v[1], v[2], v[3])


def _picker(*extra: str) -> Keys:
    return Keys(*_CHANNEL, *extra)


_CHANNEL_ONLY = _picker()
_WITH_CAUSE = _picker("Cause")
_WITH_QUEUE = _picker("Queue")
_WITH_USEREVENT = _picker("UserEvent")
_AGENT = _picker("DestUniqueid", "Queue", "MemberName")
_AGENT_NO_ANSWER = _picker("DestUniqueid", "Queue", "MemberName", "RingTime")
_AGENT_CONNECT = _picker("DestChannel", "DestUniqueid", "Queue", "MemberName")


def channel_ref(m: Fields) -> ChannelRef:
    return _ref(m.pick(_CHANNEL_ONLY))


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


Translator = Callable[[Fields, float], "Event | None"]


def _user_event(m: Fields, at: float) -> Event | None:
    """The dialplan hooks (dialplan/pbxbridge.conf), by UserEvent name."""
    v = m.pick(_WITH_USEREVENT)
    name, ref = v[6], _ref(v)
    if name == dv.USEREVENT_OFFERED:
        return Offered(at, ref, m.get(dv.HEADER_SERVICE, ""))
    if name == dv.USEREVENT_CLASSIFY:
        return Classified(at, ref, m.get(dv.HEADER_CATEGORY, ""))
    if name == dv.USEREVENT_DISPATCH:
        return DispatchHooked(at, ref, m.get(dv.HEADER_AGENCY, ""))
    if name == dv.USEREVENT_CALLBACK:
        return CallbackDialed(at, ref, m.get(dv.HEADER_CALL_ID, ""), m.get(dv.HEADER_STATUS, ""))
    return None


def _agent_ringing(m: Fields, at: float) -> Event:
    v = m.pick(_AGENT)
    return AgentRinging(at, _ref(v), v[7], v[8], v[6])


def _agent_no_answer(m: Fields, at: float) -> Event:
    v = m.pick(_AGENT_NO_ANSWER)
    return AgentNoAnswer(at, _ref(v), v[7], v[8], v[6], _int(v[9]))


def _agent_answered(m: Fields, at: float) -> Event:
    v = m.pick(_AGENT_CONNECT)
    return AgentAnswered(at, _ref(v), v[8], v[9], v[7], v[6])


def _soft_hangup(m: Fields, at: float) -> Event:
    v = m.pick(_WITH_CAUSE)
    return HangupRequested(at, _ref(v), _int(v[6]))


def _hangup(m: Fields, at: float) -> Event:
    v = m.pick(_WITH_CAUSE)
    return ChannelHungUp(at, _ref(v), v[6])


def _queue_joined(m: Fields, at: float) -> Event:
    v = m.pick(_WITH_QUEUE)
    return QueueJoined(at, _ref(v), v[6])


def _queue_left(m: Fields, at: float) -> Event:
    v = m.pick(_WITH_QUEUE)
    return QueueLeft(at, _ref(v), v[6])


def _member_status(m: Fields, at: float) -> Event:
    return MemberStatus(
        at,
        m.get("Queue", ""),
        m.get("MemberName") or m.get("Name", ""),
        _int(m.get("Status")),
        m.get("Paused") == "1",
    )


def _booted(m: Fields, at: float) -> Event:
    uptime = m.get("Uptime")
    try:
        return Booted(at, float(uptime) if uptime else None)
    except ValueError:
        return Booted(at, None)


# The table of contents of what pbxbridge reads from AMI: event name -> translation.
TRANSLATORS: Mapping[str, Translator] = {
    "Newchannel": lambda m, at: ChannelCreated(at, channel_ref(m)),
    "HangupRequest": lambda m, at: HangupRequested(at, channel_ref(m)),
    "SoftHangupRequest": _soft_hangup,
    "Hangup": _hangup,
    "UserEvent": _user_event,
    "BlindTransfer": lambda m, at: BlindTransferred(
        at, m.get("TransfereeLinkedid", ""), m.get("Extension", ""), m.get("Result") == "Success"
    ),
    "AttendedTransfer": lambda m, at: AttendedTransferred(
        at,
        m.get("TransfereeLinkedid") or m.get("OrigTransfererLinkedid", ""),
        m.get("Result") == "Success",
    ),
    "QueueCallerJoin": _queue_joined,
    "QueueCallerLeave": _queue_left,
    "AgentCalled": _agent_ringing,
    "AgentRingNoAnswer": _agent_no_answer,
    "AgentConnect": _agent_answered,
    "QueueMemberStatus": _member_status,
    "QueueMember": _member_status,
    "FullyBooted": _booted,
    "Shutdown": lambda m, at: PbxShutdown(at, m.get("Restart") == "True"),
}

# Event names worth asking Asterisk for; everything else is noise to pbxbridge.
WANTED_EVENTS = frozenset(TRANSLATORS) | {"CoreShowChannel", "CoreShowChannelsComplete"}


def translate(msg: Message, received_at: float) -> tuple[Event | None, bool]:
    """The typed event for an AMI event message (or None), and whether it had a Timestamp."""
    fn = TRANSLATORS.get(msg.event or "")
    if fn is None:
        return None, True
    at, stamped = event_time(msg, received_at)
    return fn(msg, at), stamped


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
