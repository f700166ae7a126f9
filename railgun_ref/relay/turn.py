"""Peer-hosted TURN server core: the RFC 8656 (RFC 5766) subset WebRTC clients use, sans-IO.

A node that advertises ``canActAsTurn`` relays media for peers that cannot
reach each other directly. This module is the protocol; the driver
(`railgun_ref.drivers.turn_server`) owns the sockets.

Theory of operation:

* One client-facing socket. `TurnServer.receive` takes each datagram a
  client sent to it; `receive_relayed` takes each datagram a peer sent to an
  allocation's relayed address. Both queue *actions* (`SendToClient`,
  `SendToPeer`, `OpenRelay`, `CloseRelay`) that the driver pulls with
  `next_action` and carries out (the core contract, CORE-1), and never raise
  for anything the network sends (TURN-1.10).
* An allocation is keyed by the client's transport address (the 5-tuple of
  RFC 8656 §2, since the server side and the protocol are fixed). It is born
  PENDING: the core grants it and asks the driver to `OpenRelay`; the driver
  binds a socket and calls `relay_opened` (or `relay_failed`), and only then
  is the success response with XOR-RELAYED-ADDRESS sent. So relayed ports
  come from the driver, never from this module. The life of an allocation is
  the table `TRANSITIONS`.
* Credentials are long-term (RFC 8489 §9.2). Nonces are stateless: the
  expiry time followed by a MAC over it and the client's transport address
  under a secret drawn once from the injected byte source (TURN-1.3), so
  unauthenticated requests cost no memory and a nonce is good only from the
  address it was issued to.
* Quotas come from `CapacitySharing` (CAP-5): each allocation holds one relay
  connection slot for its whole life, and every relayed payload byte is
  charged to the sharing token bucket (TURN-1.6). No user may take more than
  a fair share of the slots, so that a newcomer always finds one (TURN-1.11).
* EVEN-PORT asks the driver for an even relayed port; with its R bit, also
  for the next port up, held under a RESERVATION-TOKEN for 30 s
  (`ReleaseReservation` when unused); a later Allocate with the token gets
  that port (TURN-1.12).
* A permission expires at the later of its own 300 s (from the last
  CreatePermission or ChannelBind naming its IP) and the expiry of a channel
  bound to a peer at that IP (TURN-1.8, a deliberate departure from RFC 8656
  §12 so that aioice's 500 s re-binding keeps working). Expiries only move
  forward, and only on client requests, so `_Allocation.permissions` stores
  that maximum, taken when a request is answered, and checking a permission
  stays one lookup. Data from a peer refreshes nothing.
* Time is the caller's ``now`` (seconds). Expiries are checked against
  ``now`` wherever they matter, so correctness does not depend on when
  `on_timer` runs; `on_timer` frees expired allocations (emitting
  `CloseRelay`) and forgets expired permissions and channels.
* ``counters`` counts everything answered, relayed and dropped, by reason.
"""

import hashlib
import hmac
import ipaddress
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Final, NewType

from railgun_ref.capacity.sharing import CapacitySharing, Granted
from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import Address
from railgun_ref.relay.credentials import CredentialRefusal, check_credential
from railgun_ref.stun.codec import (
    CHANNEL_NUMBER_MAX,
    CHANNEL_NUMBER_MIN,
    FAMILY_IPV4,
    HEADER_SIZE,
    MAGIC_COOKIE,
    MAX_TEXT_CHARS,
    TRANSPORT_UDP,
    Attribute,
    AttributeType,
    ChannelDataMessage,
    ChannelNumber,
    Data,
    DontFragment,
    EvenPort,
    Lifetime,
    MessageClass,
    MessageIntegrity,
    Method,
    Nonce,
    Realm,
    RequestedAddressFamily,
    RequestedTransport,
    ReservationToken,
    Software,
    StunErrorCode,
    StunMessage,
    UnknownAttributes,
    Username,
    XorMappedAddress,
    XorPeerAddress,
    XorRelayedAddress,
    check_integrity,
    compute_fingerprint,
    decode_channel_data,
    decode_message,
    decode_message_type,
    encode_channel_data,
    encode_message,
    error_response,
    is_channel_data,
    long_term_key,
    new_transaction_id,
    success_response,
)

#: TURN-1.5: allocation lifetime granted when the client asks for less (RFC 8656 §7.2), s.
DEFAULT_LIFETIME: Final = 600
#: TURN-1.5: the longest allocation lifetime granted (RFC 8656 §7.2 "e.g. 3600"), s.
MAX_LIFETIME: Final = 3600
#: TURN-1.7: a permission lasts 300 s (RFC 8656 §9, a fixed value).
PERMISSION_LIFETIME: Final = 300
#: TURN-1.8: a channel binding lasts 600 s (RFC 8656 §12) and keeps its peer's permission alive.
CHANNEL_LIFETIME: Final = 600
#: TURN-1.3: how long a nonce stays valid, s.
NONCE_LIFETIME: Final = 3600
#: TURN-1.6: allocations one user may hold at once (486 beyond it).
MAX_ALLOCATIONS_PER_USER: Final = 8
#: TURN-1.12: how long a port reserved by EVEN-PORT (R) waits for its token (RFC 8656 §7.2), s.
RESERVATION_LIFETIME: Final = 30
#: TURN-1.12: bytes of a RESERVATION-TOKEN (RFC 8656 §18.10).
RESERVATION_TOKEN_SIZE: Final = 8
#: TURN-1.3: bytes of secret behind the nonce MAC, and of the MAC in a nonce.
NONCE_SECRET_SIZE: Final = 32
_NONCE_MAC_SIZE: Final = 12
_NONCE_LENGTH: Final = 2 * (8 + _NONCE_MAC_SIZE)
#: SOFTWARE this implementation puts in its responses.
DEFAULT_SOFTWARE: Final = "railgun-ref turn"


class TurnCounter(StrEnum):
    """What `TurnServer.counters` counts: answered, relayed and dropped, by reason."""

    ALLOCATE_RETRANSMITTED = "turn.allocate_retransmitted"
    ALLOCATIONS_CREATED = "turn.allocations_created"
    ALLOCATIONS_DELETED = "turn.allocations_deleted"
    ALLOCATIONS_EXPIRED = "turn.allocations_expired"
    BAD_CREDENTIALS = "turn.bad_credentials"
    EXPIRED_CREDENTIALS = "turn.expired_credentials"  #: an ephemeral credential past expiry
    BINDING_ANSWERED = "turn.binding_answered"
    CHALLENGED = "turn.challenged"
    CHANNEL_DATA_TO_CLIENT = "turn.channel_data_to_client"
    CHANNELS_BOUND = "turn.channels_bound"
    CHANNELS_EXPIRED = "turn.channels_expired"
    DATA_INDICATIONS = "turn.data_indications"
    DROPPED_BANDWIDTH = "turn.dropped_bandwidth"
    DROPPED_CHANNEL_NO_ALLOCATION = "turn.dropped_channel_no_allocation"
    DROPPED_CHANNEL_UNBOUND = "turn.dropped_channel_unbound"
    DROPPED_CLIENT_NO_PERMISSION = "turn.dropped_client_no_permission"
    DROPPED_PEER_NO_ALLOCATION = "turn.dropped_peer_no_allocation"
    DROPPED_PEER_NO_PERMISSION = "turn.dropped_peer_no_permission"
    DROPPED_PEER_TOO_LARGE = "turn.dropped_peer_too_large"
    DROPPED_SEND_DONT_FRAGMENT = "turn.dropped_send_dont_fragment"
    DROPPED_SEND_INCOMPLETE = "turn.dropped_send_incomplete"
    DROPPED_SEND_NO_ALLOCATION = "turn.dropped_send_no_allocation"
    MALFORMED = "turn.malformed"
    MALFORMED_CHANNEL_DATA = "turn.malformed_channel_data"
    PERMISSIONS_CREATED = "turn.permissions_created"
    PERMISSIONS_EXPIRED = "turn.permissions_expired"
    REFRESHED = "turn.refreshed"
    RELAY_OPEN_FAILED = "turn.relay_open_failed"
    RELAYED_TO_CLIENT_BYTES = "turn.relayed_to_client_bytes"
    RELAYED_TO_CLIENT_DATAGRAMS = "turn.relayed_to_client_datagrams"
    RELAYED_TO_PEER_BYTES = "turn.relayed_to_peer_bytes"
    RELAYED_TO_PEER_DATAGRAMS = "turn.relayed_to_peer_datagrams"
    IGNORED = "turn.ignored"  #: label: the `MessageClass` of a response or indication
    CAPACITY_REFUSED = "turn.capacity_refused"  #: label: the `LimitKind` that refused
    ERROR = "turn.error"  #: label: the `StunErrorCode` answered
    FAIR_SHARE_REFUSED = "turn.fair_share_refused"  #: TURN-1.11
    RESERVATIONS_MADE = "turn.reservations_made"  #: TURN-1.12
    RESERVATIONS_USED = "turn.reservations_used"
    RESERVATIONS_EXPIRED = "turn.reservations_expired"


AllocationId = NewType("AllocationId", int)


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnConfig:
    """Parameters of one TURN server (spec section 17); times in seconds."""

    realm: str  #: TURN-1.2: the long-term credential realm
    default_lifetime: int = DEFAULT_LIFETIME  #: TURN-1.5
    max_lifetime: int = MAX_LIFETIME  #: TURN-1.5
    permission_lifetime: int = PERMISSION_LIFETIME  #: TURN-1.7
    channel_lifetime: int = CHANNEL_LIFETIME  #: TURN-1.8
    nonce_lifetime: int = NONCE_LIFETIME  #: TURN-1.3
    max_allocations_per_user: int = MAX_ALLOCATIONS_PER_USER  #: TURN-1.6
    #: TURN-1.7: networks peers may be in (403 outside them); IPv4 only (443 for IPv6)
    allowed_peers: tuple[str, ...] = ("0.0.0.0/0",)
    software: str | None = DEFAULT_SOFTWARE

    def __post_init__(self) -> None:
        Realm(self.realm)  # raises LocalProtocolError if it cannot go on the wire
        for name in (
            "default_lifetime",
            "max_lifetime",
            "permission_lifetime",
            "channel_lifetime",
            "nonce_lifetime",
            "max_allocations_per_user",
        ):
            value = getattr(self, name)
            if type(value) is not int or value <= 0:
                raise LocalProtocolError(f"{name} must be a positive integer, got {value!r}")
        if self.default_lifetime > self.max_lifetime:
            raise LocalProtocolError("default_lifetime must not exceed max_lifetime")
        for network in self.allowed_peers:
            try:
                ipaddress.IPv4Network(network)
            except ValueError as exc:
                raise LocalProtocolError(f"allowed_peers: {exc}") from None
        if self.software is not None:
            Software(self.software)


# ------------------------------------------------------------------ actions


@dataclass(frozen=True, slots=True, kw_only=True)
class SendToClient:
    """Send `data` from the server's listening socket to `client`."""

    client: Address
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class SendToPeer:
    """Send `data` from the relayed socket of `allocation` to `peer`."""

    allocation: AllocationId
    peer: Address
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenRelay:
    """Bind a UDP socket for `allocation`, then call `relay_opened` or `relay_failed`.

    TURN-1.12: `even` asks for an even port; `reserve` (with `even`) also asks for the
    next port up, to be held under that token until `ReleaseReservation` or an
    `OpenRelay` whose `reserved` names the token, which takes the held port.
    """

    allocation: AllocationId
    client: Address
    even: bool = False
    reserve: bytes | None = None
    reserved: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseReservation:
    """Close the port held for `token`: its 30 s passed unused (TURN-1.12)."""

    token: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseRelay:
    """Close the relayed socket of `allocation` (it is gone from the core already)."""

    allocation: AllocationId


TurnAction = SendToClient | SendToPeer | OpenRelay | CloseRelay | ReleaseReservation


# -------------------------------------------------------------- allocations


class AllocationState(Enum):
    PENDING = "pending"  #: granted; the driver is opening its relayed socket
    ACTIVE = "active"  #: relaying
    CLOSED = "closed"  #: deleted, expired or never opened; its slot is free


class AllocationEvent(Enum):
    RELAY_OPENED = "relay_opened"
    RELAY_FAILED = "relay_failed"
    DELETED = "deleted"  #: Refresh with LIFETIME 0 (TURN-1.5)
    EXPIRED = "expired"


#: The life of an allocation; anything not listed is a LocalProtocolError.
TRANSITIONS: Final[dict[tuple[AllocationState, AllocationEvent], AllocationState]] = {
    (AllocationState.PENDING, AllocationEvent.RELAY_OPENED): AllocationState.ACTIVE,
    (AllocationState.PENDING, AllocationEvent.RELAY_FAILED): AllocationState.CLOSED,
    (AllocationState.PENDING, AllocationEvent.EXPIRED): AllocationState.CLOSED,
    (AllocationState.ACTIVE, AllocationEvent.DELETED): AllocationState.CLOSED,
    (AllocationState.ACTIVE, AllocationEvent.EXPIRED): AllocationState.CLOSED,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Channel:
    """A channel binding: `number` stands for `peer` until `expires`."""

    number: int
    peer: Address
    expires: float


@dataclass(slots=True, kw_only=True)
class _Allocation:
    id: AllocationId
    client: Address
    username: str
    key: bytes
    request: StunMessage  #: the Allocate that created it (for the success response)
    lifetime: int  #: granted by the last Allocate/Refresh, s
    expires: float
    state: AllocationState = AllocationState.PENDING
    relayed: Address | None = None
    reserve: bytes | None = None  #: TURN-1.12: the token of the port to hold next to it
    success_response: bytes | None = None  #: answered again to a retransmitted Allocate
    #: peer IP -> expiry: max(own 300 s, its channel's expiry) (TURN-1.7, TURN-1.8)
    permissions: dict[str, float] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    peer_channels: dict[Address, int] = field(default_factory=dict)
    bytes_to_peer: int = 0  #: payload bytes relayed from the client to peers
    bytes_to_client: int = 0  #: payload bytes relayed from peers to the client

    def fire(self, event: AllocationEvent) -> None:
        new = TRANSITIONS.get((self.state, event))
        if new is None:
            raise LocalProtocolError(f"allocation {self.id}: {event.value} in {self.state.value}")
        self.state = new

    def has_permission(self, ip: str, now: float) -> bool:
        expiry = self.permissions.get(ip)
        return expiry is not None and expiry > now

    def extend_permission(self, ip: str, until: float) -> None:
        """TURN-1.7, TURN-1.8: the permission for `ip` lasts at least `until`, never less than
        it already did (a CreatePermission must not cut short what a live channel holds open)."""
        self.permissions[ip] = max(self.permissions.get(ip, until), until)

    def channel_for(self, peer: Address, now: float) -> Channel | None:
        number = self.peer_channels.get(peer)
        channel = self.channels.get(number) if number is not None else None
        return channel if channel is not None and channel.expires > now else None

    def live_channel(self, number: int, now: float) -> Channel | None:
        channel = self.channels.get(number)
        return channel if channel is not None and channel.expires > now else None


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocationInfo:
    """A read-only view of one allocation, for drivers, tests and notebooks."""

    id: AllocationId
    client: Address
    username: str
    state: AllocationState
    relayed: Address | None
    expires: float
    permissions: tuple[str, ...]  #: peer IPs with a permission (possibly expired)
    channels: tuple[Channel, ...]
    bytes_to_peer: int  #: payload bytes relayed from the client to peers
    bytes_to_client: int  #: payload bytes relayed from peers to the client


# ------------------------------------------------------------------- server


class _RejectError(Exception):
    """Internal: answer the request with this error (signed if `key` is known)."""

    def __init__(self, code: StunErrorCode, reason: str | None = None, *extra: Attribute) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason
        self.extra = extra


class TurnServer:
    """The TURN protocol of one listening socket (see the module docstring).

    `users` maps user names to passwords (TURN-1.2); `sharing` is the node's
    capacity-sharing state, shared with its other relay duties (TURN-1.6);
    `random_bytes` is the injected byte source for the nonce secret and the
    transaction ids of Data indications.
    """

    def __init__(
        self,
        config: TurnConfig,
        *,
        users: Mapping[str, str],
        sharing: CapacitySharing,
        random_bytes: Callable[[int], bytes],
        credential_secret: bytes | None = None,
        unix_offset: float = 0.0,
    ) -> None:
        self.config = config
        #: TURN-2: with a secret, ephemeral member credentials (relay.credentials) work too;
        #: their expiries are Unix seconds, ``now + unix_offset`` (a driver whose ``now``
        #: is a monotonic clock passes the difference).
        self._credential_secret = credential_secret
        self._unix_offset = unix_offset
        self._keys = {
            Username(name).text: long_term_key(name, config.realm, password)
            for name, password in users.items()
        }
        self._sharing = sharing
        self._random_bytes = random_bytes
        secret = random_bytes(NONCE_SECRET_SIZE)
        if len(secret) != NONCE_SECRET_SIZE:
            raise LocalProtocolError("the byte source returned the wrong number of bytes")
        self._nonce_secret = bytes(secret)
        self._allowed = tuple(ipaddress.IPv4Network(n) for n in config.allowed_peers)
        self._software: tuple[Attribute, ...] = (
            (Software(config.software),) if config.software is not None else ()
        )
        self._by_client: dict[Address, _Allocation] = {}
        self._by_id: dict[AllocationId, _Allocation] = {}
        #: TURN-1.12: RESERVATION-TOKEN -> when the port held for it is released
        self._reservations: dict[bytes, float] = {}
        self._next_id = 1
        self._deadline: float | None = None
        self._deadline_stale = False
        self._actions: deque[TurnAction] = deque()
        #: ``turn.*`` counts of what was answered, relayed and dropped, and why.
        self.counters: Counters[TurnCounter] = Counters()

    # ------------------------------------------------- public API (CORE-1)

    def receive(self, data: bytes, from_addr: Address, *, now: float) -> None:
        """One datagram a client sent to the server's listening socket."""
        self._actions.extend(self._receive(data, from_addr, now))

    def receive_relayed(
        self, data: bytes, from_peer: Address, allocation: AllocationId, *, now: float
    ) -> None:
        """One datagram `from_peer` sent to the relayed address of `allocation`."""
        self._actions.extend(self._receive_relayed(data, from_peer, allocation, now))

    def relay_opened(self, allocation: AllocationId, relayed: Address, *, now: float) -> None:
        """The driver bound `relayed` for `allocation`: answer the Allocate (TURN-1.4)."""
        self._actions.extend(self._relay_opened(allocation, relayed, now))

    def relay_failed(self, allocation: AllocationId, *, now: float) -> None:
        """The driver could not bind a socket for `allocation`: 508 (TURN-1.6)."""
        self._actions.extend(self._relay_failed(allocation, now))

    def on_timer(self, *, now: float) -> None:
        """Free whatever has expired by `now` (allocations become `CloseRelay` actions)."""
        self._actions.extend(self._expire(now))

    def next_action(self) -> TurnAction | None:
        """The oldest action the driver has not taken yet, or None (CORE-1.2)."""
        return self._actions.popleft() if self._actions else None

    # ------------------------------------------------------------- inputs

    def _receive(self, data: bytes, from_addr: Address, now: float) -> list[TurnAction]:
        actions = self._expire_due(now)
        if is_channel_data(data):
            return actions + self._client_channel_data(data, from_addr, now)
        try:
            message = decode_message(data)
        except RemoteProtocolError as exc:
            self.counters.inc(TurnCounter.MALFORMED)
            return actions + self._malformed_request(data, from_addr, exc)
        if message.message_class is MessageClass.REQUEST:
            return actions + self._request(message, from_addr, now)
        if message.message_class is MessageClass.INDICATION and message.method == Method.SEND:
            return actions + self._send_indication(message, from_addr, now)
        # RFC 8489 §6.3: responses and other indications are not answered.
        self.counters.inc(TurnCounter.IGNORED, label=message.message_class)
        return actions

    def _receive_relayed(
        self, data: bytes, from_peer: Address, allocation: AllocationId, now: float
    ) -> list[TurnAction]:
        actions = self._expire_due(now)
        current = self._by_id.get(allocation)
        if current is None or current.state is not AllocationState.ACTIVE:
            self.counters.inc(TurnCounter.DROPPED_PEER_NO_ALLOCATION)
            return actions
        if not current.has_permission(from_peer[0], now):
            # TURN-1.7: data from a peer without a permission is dropped.
            self.counters.inc(TurnCounter.DROPPED_PEER_NO_PERMISSION)
            return actions
        if not self._charge(len(data), now):
            return actions
        channel = current.channel_for(from_peer, now)
        if channel is not None:
            frame = encode_channel_data(ChannelDataMessage(channel=channel.number, data=data))
            self.counters.inc(TurnCounter.CHANNEL_DATA_TO_CLIENT)
        else:
            indication = StunMessage(
                method=Method.DATA,
                message_class=MessageClass.INDICATION,
                transaction_id=new_transaction_id(self._random_bytes),
                attributes=(XorPeerAddress(from_peer), Data(bytes(data))),
            )
            try:
                frame = encode_message(indication, fingerprint=True)
            except LocalProtocolError:
                self.counters.inc(TurnCounter.DROPPED_PEER_TOO_LARGE)
                return actions
            self.counters.inc(TurnCounter.DATA_INDICATIONS)
        self.counters.inc(TurnCounter.RELAYED_TO_CLIENT_DATAGRAMS)
        self.counters.inc(TurnCounter.RELAYED_TO_CLIENT_BYTES, len(data))
        current.bytes_to_client += len(data)
        return [*actions, SendToClient(client=current.client, data=frame)]

    def _relay_opened(
        self, allocation: AllocationId, relayed: Address, now: float
    ) -> list[TurnAction]:
        actions = self._expire_due(now)
        current = self._pending(allocation)
        if current is None:
            # It expired while the socket opened: the driver closes it (again, harmlessly).
            return [*actions, CloseRelay(allocation=allocation)]
        current.fire(AllocationEvent.RELAY_OPENED)
        current.relayed = relayed
        reservation: tuple[Attribute, ...] = ()
        if current.reserve is not None:
            self._reservations[current.reserve] = now + RESERVATION_LIFETIME
            self._deadline_stale = True
            self.counters.inc(TurnCounter.RESERVATIONS_MADE)
            reservation = (ReservationToken(current.reserve),)
        response = success_response(
            current.request,
            XorRelayedAddress(relayed),
            Lifetime(current.lifetime),
            XorMappedAddress(current.client),
            *reservation,
            *self._software,
        )
        current.success_response = encode_message(
            response, integrity_key=current.key, fingerprint=True
        )
        self.counters.inc(TurnCounter.ALLOCATIONS_CREATED)
        return [*actions, SendToClient(client=current.client, data=current.success_response)]

    def _relay_failed(self, allocation: AllocationId, now: float) -> list[TurnAction]:
        actions = self._expire_due(now)
        current = self._pending(allocation)
        if current is None:
            return actions
        self._remove(current, AllocationEvent.RELAY_FAILED)
        self.counters.inc(TurnCounter.RELAY_OPEN_FAILED)
        return actions + self._reply(
            current.request,
            current.client,
            code=StunErrorCode.INSUFFICIENT_CAPACITY,
            reason="could not open a relayed socket",
            key=current.key,
        )

    def next_deadline(self) -> float | None:
        """When something next expires (an allocation, permission or channel), or None."""
        if self._deadline_stale:
            times: list[float] = []
            for current in self._by_id.values():
                times.append(current.expires)
                times.extend(current.permissions.values())
                times.extend(c.expires for c in current.channels.values())
            times.extend(self._reservations.values())
            self._deadline = min(times) if times else None
            self._deadline_stale = False
        return self._deadline

    def _expire(self, now: float) -> list[TurnAction]:
        actions: list[TurnAction] = []
        for token, expiry in list(self._reservations.items()):
            if expiry <= now:
                del self._reservations[token]
                self.counters.inc(TurnCounter.RESERVATIONS_EXPIRED)
                actions.append(ReleaseReservation(token=token))
        for current in list(self._by_id.values()):
            if current.expires <= now:
                self._remove(current, AllocationEvent.EXPIRED)
                self.counters.inc(TurnCounter.ALLOCATIONS_EXPIRED)
                actions.append(CloseRelay(allocation=current.id))
                continue
            for ip, expiry in list(current.permissions.items()):
                if expiry <= now:
                    del current.permissions[ip]
                    self.counters.inc(TurnCounter.PERMISSIONS_EXPIRED)
            for number, channel in list(current.channels.items()):
                if channel.expires <= now:
                    del current.channels[number]
                    current.peer_channels.pop(channel.peer, None)
                    self.counters.inc(TurnCounter.CHANNELS_EXPIRED)
        self._deadline_stale = True
        return actions

    def allocations(self) -> tuple[AllocationInfo, ...]:
        """Every allocation held now (pending or active), oldest first."""
        return tuple(
            AllocationInfo(
                id=a.id,
                client=a.client,
                username=a.username,
                state=a.state,
                relayed=a.relayed,
                expires=a.expires,
                permissions=tuple(a.permissions),
                channels=tuple(a.channels.values()),
                bytes_to_peer=a.bytes_to_peer,
                bytes_to_client=a.bytes_to_client,
            )
            for a in self._by_id.values()
        )

    def new_nonce(self, *, client: Address, now: float) -> str:
        """TURN-1.3: hex(expiry in ms, 8 bytes) || hex(MAC of it and `client`, 12 bytes)."""
        expiry_ms = max(0, min(math.floor((now + self.config.nonce_lifetime) * 1000), 2**63 - 1))
        stamp = expiry_ms.to_bytes(8, "big")
        return (stamp + self._nonce_mac(stamp, client)).hex()

    def nonce_valid(self, nonce: str, *, client: Address, now: float) -> bool:
        """TURN-1.3: issued by this server (MAC) to `client` and not yet expired at `now`."""
        if len(nonce) != _NONCE_LENGTH:
            return False
        try:
            raw = bytes.fromhex(nonce)
        except ValueError:
            return False
        stamp, mac = raw[:8], raw[8:]
        if not hmac.compare_digest(mac, self._nonce_mac(stamp, client)):
            return False
        return int.from_bytes(stamp, "big") / 1000 > now

    # ------------------------------------------------------------ requests

    def _request(self, request: StunMessage, client: Address, now: float) -> list[TurnAction]:
        method = request.method
        if method == Method.BINDING:
            # Answered like any STUN server, without credentials (RFC 8489 §7.3).
            self.counters.inc(TurnCounter.BINDING_ANSWERED)
            return self._reply(request, client, XorMappedAddress(client))
        if method not in (
            Method.ALLOCATE,
            Method.REFRESH,
            Method.CREATE_PERMISSION,
            Method.CHANNEL_BIND,
        ):
            return self._reply(
                request, client, code=StunErrorCode.BAD_REQUEST, reason="method not supported"
            )
        credentials = self._authenticate(request, client, now)
        if isinstance(credentials, list):
            return credentials
        username, key = credentials
        try:
            unknown = request.unknown_comprehension_required
            if unknown:
                raise _RejectError(
                    StunErrorCode.UNKNOWN_ATTRIBUTE, None, UnknownAttributes(unknown)
                )
            if method == Method.ALLOCATE:
                return self._allocate(request, client, username, key, now)
            if method == Method.REFRESH:
                return self._refresh(request, client, username, key, now)
            if method == Method.CREATE_PERMISSION:
                return self._create_permission(request, client, username, key, now)
            return self._channel_bind(request, client, username, key, now)
        except _RejectError as reject:
            return self._reply(
                request, client, *reject.extra, code=reject.code, reason=reject.reason, key=key
            )

    def _authenticate(
        self, request: StunMessage, client: Address, now: float
    ) -> tuple[str, bytes] | list[TurnAction]:
        """TURN-1.2: (user name, key), or the unsigned 400/401/438 reply to send instead."""
        challenge = (Realm(self.config.realm), Nonce(self.new_nonce(client=client, now=now)))
        if request.find(MessageIntegrity) is None:
            self.counters.inc(TurnCounter.CHALLENGED)
            return self._reply(request, client, *challenge, code=StunErrorCode.UNAUTHENTICATED)
        username = request.find(Username)
        realm = request.find(Realm)
        nonce = request.find(Nonce)
        if username is None or realm is None or nonce is None:
            return self._reply(
                request,
                client,
                code=StunErrorCode.BAD_REQUEST,
                reason="USERNAME, REALM or NONCE missing",
            )
        key = self._key_for(username.text, now) if realm.text == self.config.realm else None
        if key is None or not check_integrity(request, key):
            self.counters.inc(TurnCounter.BAD_CREDENTIALS)
            return self._reply(request, client, *challenge, code=StunErrorCode.UNAUTHENTICATED)
        if not self.nonce_valid(nonce.text, client=client, now=now):
            return self._reply(request, client, *challenge, code=StunErrorCode.STALE_NONCE)
        return username.text, key

    def _key_for(self, username: str, now: float) -> bytes | None:
        """The long-term key of a configured user, or of a valid ephemeral one (TURN-2.2)."""
        key = self._keys.get(username)
        if key is not None or self._credential_secret is None:
            return key
        unix_now = now + self._unix_offset
        password = check_credential(self._credential_secret, username, now=unix_now)
        if password is CredentialRefusal.EXPIRED:
            self.counters.inc(TurnCounter.EXPIRED_CREDENTIALS)
        if isinstance(password, CredentialRefusal):
            return None
        return long_term_key(username, self.config.realm, password)

    def _allocate(
        self, request: StunMessage, client: Address, username: str, key: bytes, now: float
    ) -> list[TurnAction]:
        existing = self._by_client.get(client)
        if existing is not None:
            if existing.request.transaction_id == request.transaction_id:
                # TURN-1.4: a retransmission gets the same answer (none yet while pending).
                self.counters.inc(TurnCounter.ALLOCATE_RETRANSMITTED)
                if existing.success_response is None:
                    return []
                return [SendToClient(client=client, data=existing.success_response)]
            raise _RejectError(
                StunErrorCode.ALLOCATION_MISMATCH, "this 5-tuple already has an allocation"
            )
        transport = request.find(RequestedTransport)
        if transport is None:
            raise _RejectError(StunErrorCode.BAD_REQUEST, "REQUESTED-TRANSPORT missing")
        if transport.protocol != TRANSPORT_UDP:
            raise _RejectError(StunErrorCode.UNSUPPORTED_TRANSPORT_PROTOCOL)
        if request.find(DontFragment) is not None:
            raise _RejectError(
                StunErrorCode.UNKNOWN_ATTRIBUTE,
                None,
                UnknownAttributes((AttributeType.DONT_FRAGMENT,)),
            )
        even, token = self._port_request(request, now)
        family = request.find(RequestedAddressFamily)
        if family is not None and family.family != FAMILY_IPV4:
            raise _RejectError(StunErrorCode.ADDRESS_FAMILY_NOT_SUPPORTED)
        self._check_user_quota(username)
        allocation = AllocationId(self._next_id)
        grant = self._sharing.open_relay_connection(("turn", allocation))
        if not isinstance(grant, Granted):
            self.counters.inc(TurnCounter.CAPACITY_REFUSED, label=grant.kind)
            raise _RejectError(StunErrorCode.INSUFFICIENT_CAPACITY, grant.reason())
        self._next_id += 1
        if token is not None:
            del self._reservations[token]
            self._deadline_stale = True
            self.counters.inc(TurnCounter.RESERVATIONS_USED)
        reserve = (
            self._random_bytes(RESERVATION_TOKEN_SIZE)
            if even is not None and even.reserve
            else None
        )
        lifetime = self._lifetime(request)
        current = _Allocation(
            id=allocation,
            client=client,
            username=username,
            key=key,
            request=request,
            lifetime=lifetime,
            expires=now + lifetime,
            reserve=reserve,
        )
        self._by_client[client] = current
        self._by_id[allocation] = current
        self._deadline_stale = True
        return [
            OpenRelay(
                allocation=allocation,
                client=client,
                even=even is not None,
                reserve=reserve,
                reserved=token,
            )
        ]

    def _port_request(
        self, request: StunMessage, now: float
    ) -> tuple[EvenPort | None, bytes | None]:
        """TURN-1.12: the EVEN-PORT asked for, or the live RESERVATION-TOKEN presented."""
        even = request.find(EvenPort)
        token = request.find(ReservationToken)
        if even is not None and token is not None:
            raise _RejectError(
                StunErrorCode.BAD_REQUEST, "EVEN-PORT and RESERVATION-TOKEN together"
            )
        if token is None:
            return even, None
        expiry = self._reservations.get(token.value)
        if expiry is None or expiry <= now:
            raise _RejectError(
                StunErrorCode.INSUFFICIENT_CAPACITY, "unknown or expired RESERVATION-TOKEN"
            )
        return None, token.value

    def _check_user_quota(self, username: str) -> None:
        """TURN-1.6 (486 over the per-user maximum) and TURN-1.11 (486 over the fair share)."""
        held = sum(1 for a in self._by_id.values() if a.username == username)
        if held >= self.config.max_allocations_per_user:
            raise _RejectError(
                StunErrorCode.ALLOCATION_QUOTA_REACHED,
                f"user holds {held} allocations (limit {self.config.max_allocations_per_user})",
            )
        if held == 0:
            return  # a newcomer may always take a free slot
        limit = self._sharing.connection_limit
        holders = len({a.username for a in self._by_id.values()})
        share = max(1, limit // (holders + 1))
        if held >= share or self._sharing.connections_in_use + 1 >= limit:
            self.counters.inc(TurnCounter.FAIR_SHARE_REFUSED)
            raise _RejectError(
                StunErrorCode.ALLOCATION_QUOTA_REACHED,
                f"user holds {held} allocations (fair share {share} of {limit} slots "
                f"among {holders} users and one more; the last free slot is a newcomer's)",
            )

    def _refresh(
        self, request: StunMessage, client: Address, username: str, key: bytes, now: float
    ) -> list[TurnAction]:
        current = self._owned(client, username)
        requested = request.find(Lifetime)
        if requested is not None and requested.value == 0:
            self._remove(current, AllocationEvent.DELETED)
            self.counters.inc(TurnCounter.ALLOCATIONS_DELETED)
            return [
                *self._reply(request, client, Lifetime(0), key=key),
                CloseRelay(allocation=current.id),
            ]
        current.lifetime = self._lifetime(request)
        current.expires = now + current.lifetime
        self._deadline_stale = True
        self.counters.inc(TurnCounter.REFRESHED)
        return self._reply(request, client, Lifetime(current.lifetime), key=key)

    def _create_permission(
        self, request: StunMessage, client: Address, username: str, key: bytes, now: float
    ) -> list[TurnAction]:
        current = self._owned(client, username)
        peers = request.find_all(XorPeerAddress)
        if not peers:
            raise _RejectError(StunErrorCode.BAD_REQUEST, "XOR-PEER-ADDRESS missing")
        for peer in peers:  # TURN-1.7: all of them or none
            self._check_peer(peer.address)
        for peer in peers:
            current.extend_permission(peer.address[0], now + self.config.permission_lifetime)
        self._deadline_stale = True
        self.counters.inc(TurnCounter.PERMISSIONS_CREATED, len(peers))
        return self._reply(request, client, key=key)

    def _channel_bind(
        self, request: StunMessage, client: Address, username: str, key: bytes, now: float
    ) -> list[TurnAction]:
        current = self._owned(client, username)
        number = request.find(ChannelNumber)
        peer_attribute = request.find(XorPeerAddress)
        if number is None or peer_attribute is None:
            raise _RejectError(
                StunErrorCode.BAD_REQUEST, "CHANNEL-NUMBER or XOR-PEER-ADDRESS missing"
            )
        if not CHANNEL_NUMBER_MIN <= number.value <= CHANNEL_NUMBER_MAX:
            raise _RejectError(
                StunErrorCode.BAD_REQUEST,
                f"channel number {number.value:#06x} outside 0x4000..0x7fff",
            )
        peer = peer_attribute.address
        self._check_peer(peer)
        bound = current.live_channel(number.value, now)
        if bound is not None and bound.peer != peer:
            raise _RejectError(
                StunErrorCode.BAD_REQUEST, f"channel {number.value:#06x} is bound to another peer"
            )
        other = current.channel_for(peer, now)
        if other is not None and other.number != number.value:
            raise _RejectError(
                StunErrorCode.BAD_REQUEST, f"the peer is bound to channel {other.number:#06x}"
            )
        stale = current.channels.get(number.value)
        if stale is not None:  # expired, or this very binding being refreshed
            current.peer_channels.pop(stale.peer, None)
        stale_number = current.peer_channels.pop(peer, None)
        if stale_number is not None:
            current.channels.pop(stale_number, None)
        channel = Channel(
            number=number.value, peer=peer, expires=now + self.config.channel_lifetime
        )
        current.channels[number.value] = channel
        current.peer_channels[peer] = number.value
        # TURN-1.8: ChannelBind installs or refreshes the peer's permission too, and (unlike
        # RFC 8656 §12) the permission lives as long as the binding: aioice re-binds every
        # 500 s and never sends CreatePermission.
        current.extend_permission(
            peer[0], max(now + self.config.permission_lifetime, channel.expires)
        )
        self._deadline_stale = True
        self.counters.inc(TurnCounter.CHANNELS_BOUND)
        return self._reply(request, client, key=key)

    # ---------------------------------------------------------------- data

    def _send_indication(
        self, indication: StunMessage, client: Address, now: float
    ) -> list[TurnAction]:
        """RFC 8656 §10.2: relay DATA to XOR-PEER-ADDRESS; drop (and count) anything amiss."""
        current = self._active(client)
        if current is None:
            self.counters.inc(TurnCounter.DROPPED_SEND_NO_ALLOCATION)
            return []
        peer = indication.find(XorPeerAddress)
        data = indication.find(Data)
        if peer is None or data is None:
            self.counters.inc(TurnCounter.DROPPED_SEND_INCOMPLETE)
            return []
        if indication.find(DontFragment) is not None:
            self.counters.inc(TurnCounter.DROPPED_SEND_DONT_FRAGMENT)
            return []
        return self._to_peer(current, peer.address, data.value, now)

    def _client_channel_data(self, data: bytes, client: Address, now: float) -> list[TurnAction]:
        try:
            message = decode_channel_data(data)
        except RemoteProtocolError:
            self.counters.inc(TurnCounter.MALFORMED_CHANNEL_DATA)
            return []
        current = self._active(client)
        if current is None:
            self.counters.inc(TurnCounter.DROPPED_CHANNEL_NO_ALLOCATION)
            return []
        channel = current.live_channel(message.channel, now)
        if channel is None:
            self.counters.inc(TurnCounter.DROPPED_CHANNEL_UNBOUND)
            return []
        return self._to_peer(current, channel.peer, message.data, now)

    def _to_peer(
        self, current: _Allocation, peer: Address, data: bytes, now: float
    ) -> list[TurnAction]:
        if not current.has_permission(peer[0], now):
            self.counters.inc(TurnCounter.DROPPED_CLIENT_NO_PERMISSION)
            return []
        if not self._charge(len(data), now):
            return []
        self.counters.inc(TurnCounter.RELAYED_TO_PEER_DATAGRAMS)
        self.counters.inc(TurnCounter.RELAYED_TO_PEER_BYTES, len(data))
        current.bytes_to_peer += len(data)
        return [SendToPeer(allocation=current.id, peer=peer, data=bytes(data))]

    def _charge(self, size: int, now: float) -> bool:
        """TURN-1.6: spend `size` bytes of the shared bandwidth; False (and counted) if refused."""
        if isinstance(self._sharing.request_bandwidth(size, now=now), Granted):
            return True
        self.counters.inc(TurnCounter.DROPPED_BANDWIDTH)
        return False

    # ------------------------------------------------------------- helpers

    def _reply(
        self,
        request: StunMessage,
        client: Address,
        *attributes: Attribute,
        code: StunErrorCode | None = None,
        reason: str | None = None,
        key: bytes | None = None,
    ) -> list[TurnAction]:
        """The response to `request`, signed with `key` when given, always fingerprinted."""
        if code is None:
            response = success_response(request, *attributes, *self._software)
        else:
            if reason is not None:
                reason = reason[:MAX_TEXT_CHARS]
            response = error_response(request, code, *attributes, *self._software, reason=reason)
            self.counters.inc(TurnCounter.ERROR, label=code)
        data = encode_message(response, integrity_key=key, fingerprint=True)
        return [SendToClient(client=client, data=data)]

    def _malformed_request(
        self, data: bytes, client: Address, error: RemoteProtocolError
    ) -> list[TurnAction]:
        """TURN-1.10: 400 with the decoder's reason to a request whose header is sound."""
        if (
            len(data) < HEADER_SIZE
            or data[0] & 0xC0
            or data[4:8] != MAGIC_COOKIE.to_bytes(4, "big")
            or len(data) != HEADER_SIZE + int.from_bytes(data[2:4], "big")
            or len(data) % 4
            or _bad_fingerprint(data)
        ):
            return []  # not STUN, or not for us to answer: silence (RFC 8489 §6.3)
        method, message_class = decode_message_type(int.from_bytes(data[0:2], "big"))
        if message_class is not MessageClass.REQUEST:
            return []
        request = StunMessage(
            method=method, message_class=message_class, transaction_id=data[8:HEADER_SIZE]
        )
        return self._reply(request, client, code=StunErrorCode.BAD_REQUEST, reason=error.message)

    def _lifetime(self, request: StunMessage) -> int:
        """TURN-1.5: max(default, min(requested, max)); the default when none is asked."""
        requested = request.find(Lifetime)
        if requested is None:
            return self.config.default_lifetime
        return max(self.config.default_lifetime, min(requested.value, self.config.max_lifetime))

    def _active(self, client: Address) -> _Allocation | None:
        current = self._by_client.get(client)
        if current is None or current.state is not AllocationState.ACTIVE:
            return None
        return current

    def _owned(self, client: Address, username: str) -> _Allocation:
        """TURN-1.5: the client's active allocation (437 if none), made by `username` (441)."""
        current = self._active(client)
        if current is None:
            raise _RejectError(StunErrorCode.ALLOCATION_MISMATCH, "no allocation for this 5-tuple")
        if current.username != username:
            raise _RejectError(
                StunErrorCode.WRONG_CREDENTIALS, "the allocation belongs to another user"
            )
        return current

    def _check_peer(self, peer: Address) -> None:
        ip = ipaddress.ip_address(peer[0])
        if not isinstance(ip, ipaddress.IPv4Address):
            raise _RejectError(StunErrorCode.PEER_ADDRESS_FAMILY_MISMATCH)
        if not any(ip in network for network in self._allowed):
            raise _RejectError(StunErrorCode.FORBIDDEN, "peer address not allowed")

    def _pending(self, allocation: AllocationId) -> _Allocation | None:
        if not 0 < allocation < self._next_id:
            raise LocalProtocolError(f"allocation {allocation} was never granted")
        current = self._by_id.get(allocation)
        if current is None:
            return None
        if current.state is not AllocationState.PENDING:
            raise LocalProtocolError(f"allocation {allocation} is not waiting for its relay")
        return current

    def _remove(self, current: _Allocation, event: AllocationEvent) -> None:
        current.fire(event)
        del self._by_id[current.id]
        if self._by_client.get(current.client) is current:
            del self._by_client[current.client]
        self._sharing.close_relay_connection(("turn", current.id))
        self._deadline_stale = True

    def _expire_due(self, now: float) -> list[TurnAction]:
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return []
        return self._expire(now)

    def _nonce_mac(self, stamp: bytes, client: Address) -> bytes:
        """TURN-1.3: HMAC-SHA256(secret, stamp || "host:port" of the client), first 12 bytes."""
        bound = stamp + f"{client[0]}:{client[1]}".encode("ascii")
        return hmac.new(self._nonce_secret, bound, hashlib.sha256).digest()[:_NONCE_MAC_SIZE]


def _bad_fingerprint(data: bytes) -> bool:
    """Whether `data` ends in a FINGERPRINT attribute that does not match (then it is not STUN)."""
    if len(data) < HEADER_SIZE + 8:
        return False
    tail = data[-8:]
    if int.from_bytes(tail[0:2], "big") != AttributeType.FINGERPRINT or tail[2:4] != b"\x00\x04":
        return False
    return int.from_bytes(tail[4:8], "big") != compute_fingerprint(data[:-8])
