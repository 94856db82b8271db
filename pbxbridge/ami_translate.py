"""The AMI adapter's translation: parsed AMI messages in, typed events out. Pure.

Only the ~20 AMI event types the tracker needs become typed events; every other
message is counted and dropped here. The live client (:mod:`pbxbridge.ami`) and the
offline ``pbxbridge replay`` (:mod:`pbxbridge.replay`) both use :class:`Reply` to group
an action's list and :class:`Translator` to turn messages and lists into events, so
the two can never read a capture differently.

Events carry Asterisk's ``Timestamp``; when it is missing the receive time stands in,
and the translator counts it (and says so once) so the operator can fix manager.conf.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from math import isfinite

from pbxbridge import dialplan_vars as dv
from pbxbridge.ami_parser import Keys, Message
from pbxbridge.events import (
    AgentAnswered,
    AgentNoAnswer,
    AgentRinging,
    AttendedTransferred,
    BlindTransferred,
    Booted,
    CallbackDialed,
    ChannelCreated,
    ChannelHungUp,
    ChannelRef,
    Classified,
    DispatchHooked,
    Event,
    HangupRequested,
    LiveChannel,
    MembersListed,
    MemberStatus,
    Offered,
    PbxShutdown,
    QueueJoined,
    QueueLeft,
    Snapshot,
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


def event_time(msg: Message, received_at: float) -> tuple[float, bool]:
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


def channel_ref(m: Message) -> ChannelRef:
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
    build: Callable[[Message, Sequence[str], float], Event | None]


def _channel_event(
    build: Callable[[Message, Sequence[str], float], Event | None], *extra: str
) -> Translation:
    return Translation(Keys("Timestamp", *_CHANNEL, *extra), build)


def _other_event(build: Callable[[Message, Sequence[str], float], Event | None]) -> Translation:
    return Translation(Keys("Timestamp"), build)


def _user_event(m: Message, v: Sequence[str], at: float) -> Event | None:
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


def _member_status(m: Message, v: Sequence[str], at: float) -> Event:
    return MemberStatus(
        at,
        m.get("Queue", ""),
        m.get("MemberName") or m.get("Name", ""),
        _int(m.get("Status")),
        m.get("Paused") == "1",
        m.get("PausedReason") or "",
        m.event == "QueueMemberRemoved",
    )


def _booted(m: Message, v: Sequence[str], at: float) -> Event:
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
    # A pause is published as QueueMemberPause only (app_queue: set_queue_member_pause),
    # log-in and log-out as QueueMemberAdded/Removed: QueueMemberStatus alone misses them.
    "QueueMemberAdded": _other_event(_member_status),
    "QueueMemberPause": _other_event(_member_status),
    "QueueMemberRemoved": _other_event(_member_status),
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


def _list_end(msg: Message) -> bool:
    return (msg.get("EventList") or "").lower() == "complete"


@dataclass(slots=True)
class Reply:
    """An action's reply as it arrives: its Response, then (when the Response says
    ``EventList: start``) the list items up to the ``...Complete`` event."""

    response: Message | None = None
    items: list[Message] = field(default_factory=list)

    def add(self, msg: Message) -> bool:
        """Take the next message carrying this action's ActionID; True once complete."""
        if self.response is None and msg.event is None:
            self.response = msg
            return (msg.get("EventList") or "").lower() != "start"
        self.items.append(msg)
        return _list_end(msg)


@dataclass
class TranslationStats:
    events: int = 0  # event messages offered for translation
    untranslated: int = 0  # events pbxbridge does not read
    missing_timestamp: int = 0
    malformed_lines: int = 0  # in events parsed in full because a field was misplaced
    last_lag_seconds: float | None = None


class Translator:
    """Messages and action lists -> typed events, counting what it drops.

    ``observe_lag`` receives, for each stamped event, receive time minus Asterisk's
    Timestamp (the event-lag histogram). ``warn`` is called once, with the name of the
    first problem worth an operator's attention (events without a Timestamp) and on
    every event whose fields had to be parsed in full.
    """

    def __init__(
        self,
        *,
        observe_lag: Callable[[float], None] | None = None,
        warn: Callable[[str, str], None] = lambda what, ami_event: None,
    ) -> None:
        self.stats = TranslationStats()
        self._observe_lag = observe_lag
        self._warn = warn
        self._warned_timestamp = False

    def event(self, msg: Message, received_at: float) -> Event | None:
        """The typed event of one unsolicited AMI event, or None (counted)."""
        stats = self.stats
        stats.events += 1
        event, stamped = translate(msg, received_at)
        if msg.parsed and msg.malformed_lines:
            # Translation reads fields lazily; it parsed this one in full because a
            # field was not where Asterisk writes it.
            stats.malformed_lines += msg.malformed_lines
            self._warn("ami_malformed_lines", msg.event or "")
        if event is None:
            stats.untranslated += 1
        elif stamped:
            lag = stats.last_lag_seconds = received_at - event.at
            if self._observe_lag is not None:
                self._observe_lag(lag)
        elif not isinstance(event, Booted):  # FullyBooted is synthesised at login, unstamped
            stats.missing_timestamp += 1
            if not self._warned_timestamp:
                self._warned_timestamp = True
                self._warn("ami_events_without_timestamp", msg.event or "")
        return event

    def listed(self, items: Sequence[Message], received_at: float) -> Event | None:
        """The event of a completed resync list: CoreShowChannels -> Snapshot,
        QueueStatus -> MembersListed; None for any other list."""
        # List items carry no Timestamp; the ...Complete event may.
        at = event_time(items[-1], received_at)[0] if items else received_at
        names = {m.event for m in items}
        if names & {"CoreShowChannel", "CoreShowChannelsComplete"}:
            return snapshot(items, at)
        if "QueueStatusComplete" in names:
            members = (translate(m, at)[0] for m in items if m.event == "QueueMember")
            return MembersListed(at, tuple(e for e in members if isinstance(e, MemberStatus)))
        return None


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
