"""Relays, sans-IO: the peer-hosted TURN server core (`turn`, spec section 17).

The driver that gives it sockets is `railgun_ref.drivers.turn_server`.
"""

from railgun_ref.relay.turn import (
    TRANSITIONS,
    AllocationId,
    AllocationInfo,
    AllocationState,
    Channel,
    CloseRelay,
    OpenRelay,
    ReleaseReservation,
    SendToClient,
    SendToPeer,
    TurnAction,
    TurnConfig,
    TurnCounter,
    TurnServer,
)

__all__ = [
    "TRANSITIONS",
    "AllocationId",
    "AllocationInfo",
    "AllocationState",
    "Channel",
    "CloseRelay",
    "OpenRelay",
    "ReleaseReservation",
    "SendToClient",
    "SendToPeer",
    "TurnAction",
    "TurnConfig",
    "TurnCounter",
    "TurnServer",
]
