"""Closed rooms (ROOM-2..ROOM-7): membership decided by the members.

A room has a creator; members are added by signed, expiring invitations and
leave or are removed by signed changes, kept in a hash-linked log that every
member resolves to the same member list (`log`). Room ids and DHT keys
derive from a random room secret that travels only inside invitations
(`ids`, `invitation`). `RoomsCore` (`core`) is the sans-IO state machine a
node runs; the E2EE recipients of a room are exactly its members.
"""

from railgun_ref.rooms.changes import Change, ChangeKind, Role, decode_change, sign_change
from railgun_ref.rooms.core import (
    DeliverInvitation,
    InvitationLapsed,
    MembershipChanged,
    PersistChange,
    PersistRoom,
    RoomAction,
    RoomCounter,
    RoomsCore,
    RoomState,
    SendChanges,
)
from railgun_ref.rooms.ids import dht_ident_of, new_room_secret, room_id_of
from railgun_ref.rooms.invitation import OpenedInvitation, open_invitation
from railgun_ref.rooms.log import ChangeLog, Membership, Refusal, resolve

__all__ = [
    "Change",
    "ChangeKind",
    "ChangeLog",
    "DeliverInvitation",
    "InvitationLapsed",
    "Membership",
    "MembershipChanged",
    "OpenedInvitation",
    "PersistChange",
    "PersistRoom",
    "Refusal",
    "Role",
    "RoomAction",
    "RoomCounter",
    "RoomState",
    "RoomsCore",
    "SendChanges",
    "decode_change",
    "dht_ident_of",
    "new_room_secret",
    "open_invitation",
    "resolve",
    "room_id_of",
    "sign_change",
]
