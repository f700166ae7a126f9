"""What a client's calls report: on the client's event stream and on each call's own.

Kept apart from `drivers.calls` (which imports aiortc) so the transport can
name these events in its union without loading WebRTC.
"""

from dataclasses import dataclass
from enum import StrEnum

from railgun_ref.core.ids import NodeId


class CallRefusal(StrEnum):
    """Why call signalling was dropped (VOICE-6.6)."""

    NOT_A_MEMBER = "not-a-member"  #: the sender is not in the room's signed log
    MALFORMED = "malformed"  #: the message does not parse (VOICE-6.1)
    UNKNOWN_CALL = "unknown-call"  #: media signalling for no call of this client
    NOT_COORDINATOR = "not-coordinator"  #: a PLAN from a node that may not send one


@dataclass(frozen=True, slots=True, kw_only=True)
class IncomingCall:
    """A room member rings: `Client.answer(call_id)` takes part (VOICE-6.2)."""

    room_id: bytes
    call_id: bytes
    caller: NodeId
    audio: bool
    video: bool
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CallSignalRefused:
    """Call signalling dropped and counted; every call goes on (VOICE-6.6)."""

    sender: NodeId
    reason: CallRefusal
    call_id: bytes | None
    detail: str
    at: float


class CallProblemKind(StrEnum):
    """Trouble one call noticed; it goes on without the peer or link concerned."""

    SILENT_PEER = "silent-peer"  #: a participant whose media never arrived
    BAD_OFFER = "bad-offer"  #: an offer whose SDP or stream list was refused
    BAD_ANSWER = "bad-answer"  #: an answer whose SDP was refused
    LINK_FAILED = "link-failed"  #: ICE/DTLS failed on a media link
    LINKS_TIMED_OUT = "links-timed-out"  #: links not up when the plan's switch timed out


@dataclass(frozen=True, slots=True, kw_only=True)
class CallPlanChanged:
    """The call moved to plan `epoch` (a join, a leave, a lost host's replacement)."""

    call_id: bytes
    epoch: int
    topology: str
    participants: tuple[NodeId, ...]
    hosts: tuple[NodeId, ...]
    hosts_changed: bool
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CallProblem:
    call_id: bytes
    kind: CallProblemKind
    peer: NodeId | None
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded:
    """This client left the call (hang-up) or the client stopped."""

    call_id: bytes
    at: float


#: Events on the client's stream.
ClientCallEvent = IncomingCall | CallSignalRefused
#: Events on one call's stream (`Call.events`).
CallEvent = CallPlanChanged | CallProblem | CallEnded
