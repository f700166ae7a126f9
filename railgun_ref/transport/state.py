"""Transport modes and states, as one table (HT-1.x).

The six transport states are not driven by arbitrary events: each is the
consequence of what the node currently knows — the configured mode, whether
the central service is up, how much of the room is reachable peer to peer,
and whether the device is offline altogether. `STATE_TABLE` lists the state
for every combination (HT-1.3); the spec's table is generated from it, and
`TransportStateMachine` moves between states only by looking it up, so no
code path can invent a transition the table does not have.

Failback (HT-3.3) is a second, small machine: `CentralPhase` is what the
node has concluded about the central path, moved only by `TRANSITIONS` on
the verdicts of `CentralTrigger`; each phase stands for one (central,
offline) input of `STATE_TABLE` (`PHASE_INPUTS`). Its hysteresis is the
missing entries: once failed over, only `failback-ready` (a long enough
healthy streak, judged by the service) brings the node back.

Telling "the central service is blocked" from "this device is offline"
(HT-1.4): when the central service fails *and* nothing else is reachable
either (no peer, no DNS, no bootstrap node), the node is offline; it reports
`disconnected` and does not fail over, because failing over would change
nothing and would hide the real cause.
"""

import itertools
from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import Final

from railgun_ref.core.errors import LocalProtocolError


class TransportMode(Enum):
    """HT-1.1: the transport modes, with their wire values."""

    AWS = "aws"  #: central first, automatic failover to P2P
    HYBRID = "hybrid"  #: both paths at once when both are up
    P2P_ONLY = "p2p-only"  #: never the central service


class TransportState(Enum):
    """HT-1.2: the transport states, with their wire values."""

    CONNECTED_AWS = "connected-aws"
    CONNECTED_HYBRID = "connected-hybrid"
    CONNECTED_P2P = "connected-p2p"
    DEGRADED = "degraded"
    CONNECTING = "connecting"
    DISCONNECTED = "disconnected"


class Central(Enum):
    UNKNOWN = "unknown"  #: not checked yet
    UP = "up"
    DOWN = "down"  #: the failure detector suspects it


class Reach(Enum):
    """How much of the room is reachable over P2P."""

    UNKNOWN = "unknown"
    ALL = "all"
    SOME = "some"
    NONE = "none"


def _state_for(
    mode: TransportMode, central: Central, reach: Reach, offline: bool, redundancy: bool
) -> TransportState:
    if offline:
        return TransportState.DISCONNECTED
    p2p = {
        Reach.ALL: TransportState.CONNECTED_P2P,
        Reach.SOME: TransportState.DEGRADED,
        Reach.NONE: TransportState.CONNECTING,
        Reach.UNKNOWN: TransportState.CONNECTING,
    }[reach]
    if mode is TransportMode.P2P_ONLY:
        return p2p
    if central is Central.UP:
        both = mode is TransportMode.HYBRID or redundancy
        return (
            TransportState.CONNECTED_HYBRID
            if both and reach is Reach.ALL
            else TransportState.CONNECTED_AWS
        )
    if central is Central.UNKNOWN:
        return TransportState.CONNECTING
    return p2p  # failover


#: HT-1.3: (mode, central, reach, offline, redundancy) -> state, for every combination.
STATE_TABLE: Final[dict[tuple[TransportMode, Central, Reach, bool, bool], TransportState]] = {
    key: _state_for(*key)
    for key in itertools.product(TransportMode, Central, Reach, (False, True), (False, True))
}


# ------------------------------------------------------------------ failback (HT-3.3)


class CentralPhase(Enum):
    """HT-3.3: what the node has concluded about the central path, failback included.

    Each phase fixes the (central, offline) inputs of `STATE_TABLE` (`PHASE_INPUTS`).
    """

    UNCHECKED = "unchecked"  #: no verdict yet
    TRUSTED = "trusted"  #: the central path is up and in use
    OFFLINE = "offline"  #: down, but nothing else answers either: no failover (HT-1.4)
    FAILED_OVER = "failed_over"  #: down while something else answers: on P2P (HT-3.2)
    FAILED_OVER_OFFLINE = "failed_over_offline"  #: offline after a failover, not failed back


class CentralTrigger(Enum):
    """HT-3.3: the verdicts that move `CentralPhase` (judged after every input and timer)."""

    SUSPECTED = "suspected"  #: the detector says down; something else is reachable
    SUSPECTED_OFFLINE = "suspected-offline"  #: the detector says down; nothing is reachable
    HEALTHY = "healthy"  #: a healthy streak shorter than the failback hysteresis
    FAILBACK_READY = "failback-ready"  #: failback_successes checks over failback_min_interval


_S, _SO, _H, _R = (
    CentralTrigger.SUSPECTED,
    CentralTrigger.SUSPECTED_OFFLINE,
    CentralTrigger.HEALTHY,
    CentralTrigger.FAILBACK_READY,
)
_BEFORE_FAILOVER: Final = {
    _S: CentralPhase.FAILED_OVER,
    _SO: CentralPhase.OFFLINE,
    _H: CentralPhase.TRUSTED,
    _R: CentralPhase.TRUSTED,
}

#: HT-3.3: the failback table, total over (phase, trigger). The hysteresis is its
#: self-loops: once failed over, a healthy streak too short to fail back changes nothing.
TRANSITIONS: Final[Mapping[CentralPhase, Mapping[CentralTrigger, CentralPhase]]] = MappingProxyType(
    {
        CentralPhase.UNCHECKED: MappingProxyType(_BEFORE_FAILOVER),
        CentralPhase.TRUSTED: MappingProxyType(_BEFORE_FAILOVER),
        CentralPhase.OFFLINE: MappingProxyType(_BEFORE_FAILOVER),
        CentralPhase.FAILED_OVER: MappingProxyType(
            {
                _S: CentralPhase.FAILED_OVER,
                _SO: CentralPhase.FAILED_OVER_OFFLINE,
                _H: CentralPhase.FAILED_OVER,  # hysteresis
                _R: CentralPhase.TRUSTED,
            }
        ),
        CentralPhase.FAILED_OVER_OFFLINE: MappingProxyType(
            {
                _S: CentralPhase.FAILED_OVER,
                _SO: CentralPhase.FAILED_OVER_OFFLINE,
                _H: CentralPhase.FAILED_OVER_OFFLINE,  # hysteresis
                _R: CentralPhase.TRUSTED,
            }
        ),
    }
)

#: HT-1.3: the (central, offline) inputs of `STATE_TABLE` each phase stands for.
PHASE_INPUTS: Final[Mapping[CentralPhase, tuple[Central, bool]]] = MappingProxyType(
    {
        CentralPhase.UNCHECKED: (Central.UNKNOWN, False),
        CentralPhase.TRUSTED: (Central.UP, False),
        CentralPhase.OFFLINE: (Central.DOWN, True),
        CentralPhase.FAILED_OVER: (Central.DOWN, False),
        CentralPhase.FAILED_OVER_OFFLINE: (Central.DOWN, True),
    }
)


def state_diagram() -> str:
    """The Mermaid state diagram of `TRANSITIONS` (paper/spec.md HT-3.3 embeds it)."""
    lines = ["stateDiagram-v2", f"    [*] --> {CentralPhase.UNCHECKED.value}"]
    for phase, row in TRANSITIONS.items():
        for trigger, target in row.items():
            lines.append(f"    {phase.value} --> {target.value}: {trigger.value}")
    return "\n".join(lines)


class TransportStateMachine:
    """The current state, moved only through `STATE_TABLE`."""

    def __init__(self, mode: TransportMode, *, redundancy: bool = False) -> None:
        self.mode = mode
        self.redundancy = redundancy
        self.central = Central.UNKNOWN
        self.reach = Reach.UNKNOWN
        self.offline = False
        self.state = TransportState.CONNECTING
        self.phase = CentralPhase.UNCHECKED
        self.stopped = False

    def judge_central(
        self, trigger: CentralTrigger
    ) -> tuple[TransportState, TransportState] | None:
        """HT-3.3: move the central phase by `TRANSITIONS`; return (old, new) if the state moved."""
        target = TRANSITIONS[self.phase][trigger]
        if target is self.phase:
            return None
        self.phase = target
        central, offline = PHASE_INPUTS[target]
        return self.update(central=central, offline=offline)

    @property
    def failed_over(self) -> bool:
        return self.phase in (CentralPhase.FAILED_OVER, CentralPhase.FAILED_OVER_OFFLINE)

    def update(
        self,
        *,
        central: Central | None = None,
        reach: Reach | None = None,
        offline: bool | None = None,
    ) -> tuple[TransportState, TransportState] | None:
        """Apply new knowledge; return (old, new) if the state changed."""
        if self.stopped:
            raise LocalProtocolError("the transport was stopped")
        if central is not None:
            self.central = central
        if reach is not None:
            self.reach = reach
        if offline is not None:
            self.offline = offline
        new = STATE_TABLE[(self.mode, self.central, self.reach, self.offline, self.redundancy)]
        if new is self.state:
            return None
        old, self.state = self.state, new
        return old, new

    def stop(self) -> TransportState:
        self.stopped = True
        self.state = TransportState.DISCONNECTED
        return self.state

    @property
    def uses_central(self) -> bool:
        return self.state in (TransportState.CONNECTED_AWS, TransportState.CONNECTED_HYBRID)

    @property
    def uses_p2p(self) -> bool:
        return self.state in (
            TransportState.CONNECTED_P2P,
            TransportState.CONNECTED_HYBRID,
            TransportState.DEGRADED,
        )
