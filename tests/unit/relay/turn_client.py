"""An in-memory TURN client for driving the sans-IO `TurnServer` in tests (no sockets).

It speaks with our own STUN codec, so each test states exactly what goes on
the wire; interoperability with a foreign client (aioice, aiortc) is tested
over real sockets in tests/integration.
"""

import random
from dataclasses import dataclass, field

from railgun_ref.capacity.sharing import CapacitySharing, CapacitySharingConfig
from railgun_ref.core.ids import Address
from railgun_ref.relay.turn import (
    AllocationId,
    OpenRelay,
    SendToClient,
    TurnAction,
    TurnConfig,
    TurnServer,
)
from railgun_ref.stun.codec import (
    Attribute,
    ErrorCodeAttribute,
    Lifetime,
    MessageClass,
    Method,
    Nonce,
    Realm,
    RequestedTransport,
    StunMessage,
    Username,
    check_integrity,
    decode_message,
    encode_message,
    long_term_key,
)
from unit.capacity.helpers import caps

REALM = "railgun-test"
USERS = {"alice": "wonderland", "bob": "builder", "carol": "singer", "dave": "diver"}
PEER: Address = ("127.0.0.9", 40000)
PEER_2: Address = ("127.0.0.10", 40001)


def make_server(
    *,
    sharing_config: CapacitySharingConfig | None = None,
    seed: int = 1,
    **config: object,
) -> TurnServer:
    """A server with USERS, quota from a desktop's capabilities (20 connections), at now=0."""
    sharing = CapacitySharing(caps(), sharing_config or CapacitySharingConfig(), now=0.0)
    return TurnServer(
        TurnConfig(realm=REALM, **config),  # type: ignore[arg-type]
        users=USERS,
        sharing=sharing,
        random_bytes=random.Random(seed).randbytes,
    )


def drain(server: TurnServer) -> list[TurnAction]:
    """Every action the server has queued, oldest first (what a driver's pump takes)."""
    return list(iter(server.next_action, None))


def receive(server: TurnServer, data: bytes, client: Address, *, now: float) -> list[TurnAction]:
    server.receive(data, client, now=now)
    return drain(server)


def receive_relayed(
    server: TurnServer, data: bytes, peer: Address, allocation: AllocationId, *, now: float
) -> list[TurnAction]:
    server.receive_relayed(data, peer, allocation, now=now)
    return drain(server)


def relay_opened(
    server: TurnServer, allocation: AllocationId, relayed: Address, *, now: float
) -> list[TurnAction]:
    server.relay_opened(allocation, relayed, now=now)
    return drain(server)


def relay_failed(server: TurnServer, allocation: AllocationId, *, now: float) -> list[TurnAction]:
    server.relay_failed(allocation, now=now)
    return drain(server)


def on_timer(server: TurnServer, *, now: float) -> list[TurnAction]:
    server.on_timer(now=now)
    return drain(server)


def only_reply(actions: list[TurnAction]) -> StunMessage:
    """The single STUN message among `actions` (asserting there is exactly one)."""
    replies = [a for a in actions if isinstance(a, SendToClient)]
    assert len(replies) == 1, actions
    return decode_message(replies[0].data)


def error_code(message: StunMessage) -> int | None:
    error = message.find(ErrorCodeAttribute)
    return error.code if error is not None else None


@dataclass
class Client:
    """A TURN client at `address` with long-term credentials `user` / `password`."""

    server: TurnServer
    address: Address = ("127.0.0.1", 50000)
    user: str = "alice"
    password: str = "wonderland"
    realm: str = REALM
    nonce: str | None = None
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    allocation: AllocationId | None = None

    @property
    def key(self) -> bytes:
        return long_term_key(self.user, self.realm, self.password)

    def build(self, method: Method, *attributes: Attribute, sign: bool = True) -> bytes:
        message = StunMessage(
            method=method,
            message_class=MessageClass.REQUEST,
            transaction_id=self.rng.randbytes(12),
            attributes=attributes,
        )
        if not sign:
            return encode_message(message, fingerprint=True)
        assert self.nonce is not None
        credentials = (Username(self.user), Realm(self.realm), Nonce(self.nonce))
        message = StunMessage(
            method=method,
            message_class=MessageClass.REQUEST,
            transaction_id=message.transaction_id,
            attributes=(*attributes, *credentials),
        )
        return encode_message(message, integrity_key=self.key, fingerprint=True)

    def send(self, data: bytes, *, now: float) -> list[TurnAction]:
        return receive(self.server, data, self.address, now=now)

    def request(self, method: Method, *attributes: Attribute, now: float) -> list[TurnAction]:
        """Send `method` signed, learning a nonce from a 401/438 first if needed."""
        if self.nonce is None:
            challenge = only_reply(self.send(self.build(method, *attributes, sign=False), now=now))
            assert error_code(challenge) == 401
            nonce = challenge.find(Nonce)
            assert nonce is not None
            self.nonce = nonce.text
        actions = self.send(self.build(method, *attributes), now=now)
        replies = [a for a in actions if isinstance(a, SendToClient)]
        if replies and error_code(decode_message(replies[0].data)) == 438:
            nonce = decode_message(replies[0].data).find(Nonce)
            assert nonce is not None
            self.nonce = nonce.text
            actions = self.send(self.build(method, *attributes), now=now)
        return actions

    def reply(self, method: Method, *attributes: Attribute, now: float) -> StunMessage:
        """The server's (verified, signed) response to a signed request."""
        response = only_reply(self.request(method, *attributes, now=now))
        assert check_integrity(response, self.key), response
        return response

    def allocate(self, *attributes: Attribute, now: float = 0.0) -> StunMessage:
        """Allocate a UDP relay; the 'driver' opens 127.0.0.1:(60000 + id) at once."""
        actions = self.request(Method.ALLOCATE, RequestedTransport(), *attributes, now=now)
        opens = [a for a in actions if isinstance(a, OpenRelay)]
        if not opens:
            return only_reply(actions)
        (opened,) = opens
        assert opened.client == self.address
        self.allocation = opened.allocation
        relayed = ("127.0.0.1", 60000 + int(opened.allocation))
        response = only_reply(relay_opened(self.server, opened.allocation, relayed, now=now))
        assert check_integrity(response, self.key)
        return response

    def refresh(self, lifetime: int | None, *, now: float) -> StunMessage:
        attributes = () if lifetime is None else (Lifetime(lifetime),)
        return self.reply(Method.REFRESH, *attributes, now=now)
