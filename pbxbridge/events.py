"""The event vocabulary shared by the AMI adapter and the pure call tracker.

Pure data: the adapter (:mod:`pbxbridge.ami_translate`) builds these from AMI
messages, the tracker consumes them. Times are Asterisk's own ``Timestamp:`` header
(manager.conf ``timestampevents = yes``); this module imports nothing from the parser.
"""

from __future__ import annotations

from pbxbridge import dialplan_vars as dv
from pbxbridge.values import value


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


# The phone behind a channel name; in dialplan_vars so the AGI script shares it.
device_of = dv.device_of


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
    """QueueMemberStatus, QueueMemberAdded, QueueMemberPause, QueueMemberRemoved (events)
    or QueueMember (QueueStatus list item)."""

    at: float
    queue: str
    member: str
    status: int  # Asterisk device state: 1 not in use, 2 in use, 5 unavailable, ...
    paused: bool
    reason: str = ""  # PausedReason, as the call taker's phone or supervisor set it
    removed: bool = False  # QueueMemberRemoved: logged out of the queue


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
    bridged: bool  # a non-empty BridgeId: talking to someone

    @property
    def queue(self) -> str | None:
        """The queue a caller's channel waits (or talks) in: ``Queue(name,...)``."""
        return self.application_data.split(",", 1)[0] if self.application == "Queue" else None

    @property
    def pair(self) -> str:
        """The channel name without a Local channel's ``;1``/``;2``: both halves of one
        Local channel share it."""
        return self.ref.channel.split(";", 1)[0]


@value
class Snapshot:
    """Every channel alive at ``at`` (CoreShowChannels, taken after each login)."""

    at: float
    channels: tuple[LiveChannel, ...]


@value
class MembersListed:
    """The QueueStatus list after a login: every queue member's status now."""

    at: float
    members: tuple[MemberStatus, ...]


@value
class AmiConnected:
    """Logged in to AMI; the snapshot that follows tells what the gap hid."""

    at: float
    banner: str


@value
class AmiDisconnected:
    """The AMI session ended: nothing is seen until the next login's snapshot."""

    at: float
    reason: str


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
    | MembersListed
    | AmiConnected
    | AmiDisconnected
)
