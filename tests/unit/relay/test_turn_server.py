"""The sans-IO TURN server core: credentials, allocations, permissions, channels, quotas, errors.

Every test drives `TurnServer` with an in-memory client (`turn_client.Client`)
and a scripted ``now``; the "driver" is the test itself, answering `OpenRelay`
with `relay_opened` at once.
"""

import random

import pytest

from railgun_ref.capacity.sharing import CapacitySharing, CapacitySharingConfig
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.relay.turn import (
    CHANNEL_LIFETIME,
    DEFAULT_LIFETIME,
    MAX_LIFETIME,
    PERMISSION_LIFETIME,
    AllocationId,
    AllocationState,
    CloseRelay,
    OpenRelay,
    SendToClient,
    SendToPeer,
    TurnConfig,
    TurnCounter,
    TurnServer,
)
from railgun_ref.stun.codec import (
    AttributeType,
    ChannelDataMessage,
    ChannelNumber,
    Data,
    DontFragment,
    Fingerprint,
    Lifetime,
    MessageClass,
    MessageIntegrity,
    Method,
    Nonce,
    RawAttribute,
    Realm,
    RequestedAddressFamily,
    RequestedTransport,
    Software,
    StunMessage,
    UnknownAttributes,
    Username,
    XorMappedAddress,
    XorPeerAddress,
    XorRelayedAddress,
    check_integrity,
    decode_channel_data,
    decode_message,
    encode_channel_data,
    encode_message,
)
from unit.capacity.helpers import caps

from .turn_client import (
    PEER,
    PEER_2,
    REALM,
    USERS,
    Client,
    error_code,
    make_server,
    on_timer,
    only_reply,
    receive,
    receive_relayed,
    relay_failed,
    relay_opened,
)


def peer_says(
    server: TurnServer, client: Client, data: bytes, *, now: float, peer: tuple[str, int] = PEER
) -> list[SendToClient]:
    assert client.allocation is not None
    actions = receive_relayed(server, data, peer, client.allocation, now=now)
    assert all(isinstance(a, SendToClient) for a in actions)
    return [a for a in actions if isinstance(a, SendToClient)]


def send_indication(client: Client, peer: tuple[str, int], data: bytes) -> bytes:
    message = StunMessage(
        method=Method.SEND,
        message_class=MessageClass.INDICATION,
        transaction_id=client.rng.randbytes(12),
        attributes=(XorPeerAddress(peer), Data(data)),
    )
    return encode_message(message, fingerprint=True)


# ------------------------------------------------------------ credentials


def test_unauthenticated_allocate_is_challenged_with_realm_and_nonce() -> None:
    """TURN-1.2: no MESSAGE-INTEGRITY -> 401 with REALM and NONCE, unsigned, fingerprinted."""
    server = make_server()
    client = Client(server)
    reply = only_reply(
        client.send(client.build(Method.ALLOCATE, RequestedTransport(), sign=False), now=0)
    )
    assert reply.message_class is MessageClass.ERROR_RESPONSE
    assert error_code(reply) == 401
    assert reply.find(Realm) == Realm(REALM)
    nonce = reply.find(Nonce)
    assert nonce is not None and server.nonce_valid(nonce.text, client=client.address, now=0)
    assert reply.find(MessageIntegrity) is None
    assert reply.find(Fingerprint) is not None
    assert server.allocations() == ()


def test_authenticated_allocate_succeeds_with_signed_response() -> None:
    """TURN-1.2, TURN-1.4: the success response carries the relayed and mapped addresses and
    the lifetime, signed with the long-term key of the request."""
    server = make_server()
    client = Client(server)
    response = client.allocate(now=0)
    assert response.message_class is MessageClass.SUCCESS_RESPONSE
    assert check_integrity(response, client.key)
    assert response.find(XorRelayedAddress) == XorRelayedAddress(("127.0.0.1", 60001))
    assert response.find(XorMappedAddress) == XorMappedAddress(client.address)
    assert response.find(Lifetime) == Lifetime(DEFAULT_LIFETIME)
    assert response.find(Fingerprint) is not None
    (info,) = server.allocations()
    assert (info.state, info.username, info.client) == (
        AllocationState.ACTIVE,
        "alice",
        client.address,
    )


@pytest.mark.parametrize(
    ("user", "password", "realm"),
    [
        ("alice", "not-wonderland", REALM),  # wrong password
        ("mallory", "wonderland", REALM),  # unknown user
        ("alice", "wonderland", "other-realm"),  # the key of another realm
    ],
)
def test_wrong_credentials_get_401_and_no_allocation(user: str, password: str, realm: str) -> None:
    """TURN-1.2: an unknown user, another realm or an integrity that does not verify -> 401."""
    server = make_server()
    client = Client(server, user=user, password=password, realm=realm)
    client.nonce = server.new_nonce(client=client.address, now=0)
    reply = only_reply(client.send(client.build(Method.ALLOCATE, RequestedTransport()), now=0))
    assert error_code(reply) == 401
    assert reply.find(Nonce) is not None and reply.find(Realm) == Realm(REALM)
    assert server.allocations() == ()
    assert server.counters.get_count(TurnCounter.BAD_CREDENTIALS) == 1


@pytest.mark.parametrize("missing", [Username, Realm, Nonce])
def test_signed_request_missing_credential_attributes_gets_400(missing: type) -> None:
    """TURN-1.2: MESSAGE-INTEGRITY without USERNAME, REALM or NONCE -> 400."""
    server = make_server()
    client = Client(server)
    client.nonce = server.new_nonce(client=client.address, now=0)
    present = [
        a for a in (Username("alice"), Realm(REALM), Nonce(client.nonce)) if type(a) is not missing
    ]
    request = StunMessage(
        method=Method.ALLOCATE,
        message_class=MessageClass.REQUEST,
        transaction_id=bytes(12),
        attributes=(RequestedTransport(), *present),
    )
    data = encode_message(request, integrity_key=client.key)
    reply = only_reply(client.send(data, now=0))
    assert error_code(reply) == 400


def test_stale_nonce_gets_438_with_a_fresh_nonce() -> None:
    """TURN-1.3: a nonce past its lifetime -> 438 with a new NONCE and REALM; retrying works."""
    server = make_server(nonce_lifetime=100)
    client = Client(server)
    client.allocate(now=0)
    old = client.nonce
    assert old is not None
    at = client.address
    assert server.nonce_valid(old, client=at, now=99.9)
    assert not server.nonce_valid(old, client=at, now=100)
    stale = only_reply(client.send(client.build(Method.REFRESH), now=150))
    assert error_code(stale) == 438
    new = stale.find(Nonce)
    assert new is not None and new.text != old
    assert server.nonce_valid(new.text, client=at, now=150)
    assert stale.find(Realm) == Realm(REALM)
    client.nonce = new.text
    assert client.refresh(None, now=150).find(Lifetime) == Lifetime(DEFAULT_LIFETIME)


def test_nonces_not_issued_by_this_server_are_stale() -> None:
    """TURN-1.3: a nonce is bound to the server's secret: forged or foreign nonces -> 438."""
    server = make_server(seed=1)
    other = make_server(seed=2)
    forged = "00" * 8 + "11" * 12
    at = ("127.0.0.1", 50000)
    for nonce in (other.new_nonce(client=at, now=0), forged, "not hex at all", ""):
        assert not server.nonce_valid(nonce, client=at, now=0)
        client = Client(server, nonce=nonce or "x")
        reply = only_reply(client.send(client.build(Method.ALLOCATE, RequestedTransport()), now=0))
        assert error_code(reply) == 438
    # the nonce is a pure function of the injected byte source and now
    assert make_server(seed=1).new_nonce(client=at, now=5) == server.new_nonce(client=at, now=5)


def test_requests_on_an_allocation_by_another_user_get_441() -> None:
    """TURN-1.5: Refresh/CreatePermission/ChannelBind on alice's allocation with bob's
    credentials from alice's 5-tuple -> 441, signed with bob's key."""
    server = make_server()
    alice = Client(server)
    alice.allocate(now=0)
    bob = Client(server, user="bob", password=USERS["bob"])  # same address as alice
    for method, attributes in (
        (Method.REFRESH, ()),
        (Method.CREATE_PERMISSION, (XorPeerAddress(PEER),)),
        (Method.CHANNEL_BIND, (ChannelNumber(0x4000), XorPeerAddress(PEER))),
    ):
        assert error_code(bob.reply(method, *attributes, now=1)) == 441


# ------------------------------------------------------------ allocations


def test_allocate_errors() -> None:
    """TURN-1.4: REQUESTED-TRANSPORT missing -> 400, not UDP -> 442, IPv6 asked -> 440;
    unsupported DONT-FRAGMENT or an unknown comprehension-required attribute -> 420."""
    server = make_server()
    client = Client(server)
    assert error_code(client.reply(Method.ALLOCATE, now=0)) == 400
    assert error_code(client.reply(Method.ALLOCATE, RequestedTransport(6), now=0)) == 442
    ipv6 = client.reply(Method.ALLOCATE, RequestedTransport(), RequestedAddressFamily(2), now=0)
    assert error_code(ipv6) == 440
    for extra, kind in (
        (DontFragment(), AttributeType.DONT_FRAGMENT),
        (RawAttribute(0x7777, b"?"), 0x7777),
    ):
        refused = client.reply(Method.ALLOCATE, RequestedTransport(), extra, now=0)
        assert error_code(refused) == 420
        assert refused.find(UnknownAttributes) == UnknownAttributes((kind,))
    assert server.allocations() == ()


def test_second_allocate_gets_437_and_a_retransmission_the_same_answer() -> None:
    """TURN-1.4: one allocation per 5-tuple; a retransmitted Allocate is answered again,
    byte for byte, and nothing is answered while the relay is still opening."""
    server = make_server()
    client = Client(server)
    client.nonce = server.new_nonce(client=client.address, now=0)
    request = client.build(Method.ALLOCATE, RequestedTransport())
    (opened,) = client.send(request, now=0)
    assert isinstance(opened, OpenRelay)
    assert client.send(request, now=0.1) == []  # pending: no answer yet
    (first,) = relay_opened(server, opened.allocation, ("127.0.0.1", 61000), now=0.2)
    (again,) = client.send(request, now=0.5)
    assert isinstance(first, SendToClient) and isinstance(again, SendToClient)
    assert again.data == first.data
    assert error_code(client.reply(Method.ALLOCATE, RequestedTransport(), now=1)) == 437
    assert len(server.allocations()) == 1


@pytest.mark.parametrize(
    ("requested", "granted"),
    [(None, DEFAULT_LIFETIME), (1, DEFAULT_LIFETIME), (1200, 1200), (100_000, MAX_LIFETIME)],
)
def test_lifetime_is_clamped_between_default_and_max(requested: int | None, granted: int) -> None:
    """TURN-1.5: granted = max(600, min(requested, 3600)), for Allocate and for Refresh."""
    server = make_server()
    client = Client(server)
    attributes = () if requested is None else (Lifetime(requested),)
    assert client.allocate(*attributes, now=0).find(Lifetime) == Lifetime(granted)
    assert client.refresh(requested, now=10).find(Lifetime) == Lifetime(granted)
    (info,) = server.allocations()
    assert info.expires == 10 + granted


def test_refresh_with_lifetime_zero_deletes_the_allocation() -> None:
    """TURN-1.5: LIFETIME 0 deletes: success with LIFETIME 0, the relay closes, the slot
    frees; later requests on it get 437 and data for it is dropped."""
    server = make_server()
    client = Client(server)
    client.allocate(now=0)
    actions = client.request(Method.REFRESH, Lifetime(0), now=5)
    assert CloseRelay(allocation=AllocationId(1)) in actions
    assert only_reply(actions).find(Lifetime) == Lifetime(0)
    assert server.allocations() == ()
    assert error_code(client.refresh(0, now=6)) == 437
    assert error_code(client.reply(Method.CREATE_PERMISSION, XorPeerAddress(PEER), now=6)) == 437
    assert receive_relayed(server, b"late", PEER, AllocationId(1), now=6) == []
    assert server.counters.get_count(TurnCounter.DROPPED_PEER_NO_ALLOCATION) == 1
    client.allocate(now=7)  # the 5-tuple is free again
    assert len(server.allocations()) == 1


def test_allocation_expires_at_its_lifetime() -> None:
    """TURN-1.5: an allocation not refreshed is deleted when its lifetime runs out."""
    server = make_server()
    client = Client(server)
    client.allocate(now=0)
    assert server.next_deadline() == DEFAULT_LIFETIME
    assert on_timer(server, now=DEFAULT_LIFETIME - 0.001) == []
    client.refresh(None, now=100)  # pushes expiry to 700
    assert on_timer(server, now=DEFAULT_LIFETIME) == []
    assert server.next_deadline() == 100 + DEFAULT_LIFETIME
    assert on_timer(server, now=700) == [CloseRelay(allocation=AllocationId(1))]
    assert server.allocations() == () and server.next_deadline() is None
    assert server.counters.get_count(TurnCounter.ALLOCATIONS_EXPIRED) == 1
    assert error_code(client.refresh(None, now=701)) == 437


def test_expiry_is_seen_even_if_on_timer_is_late() -> None:
    """TURN-1.5: a request after the expiry finds no allocation even when on_timer never ran;
    the CloseRelay comes with the answer."""
    server = make_server()
    client = Client(server)
    client.allocate(now=0)
    actions = client.request(Method.REFRESH, now=DEFAULT_LIFETIME + 1)
    assert CloseRelay(allocation=AllocationId(1)) in actions
    assert error_code(only_reply(actions)) == 437


# ------------------------------------------------------------ quotas


def test_total_allocations_are_limited_by_capacity_sharing() -> None:
    """TURN-1.6: every allocation holds a CAP-5.3 relay connection slot; beyond the limit
    -> 508 with the CAP-5.4 reason; deleting one frees its slot."""
    server = make_server(sharing_config=CapacitySharingConfig(max_relay_connections=2))
    clients = [
        Client(server, address=("127.0.0.1", 50000 + i), user=user, password=USERS[user])
        for i, user in enumerate(("alice", "bob", "carol"))
    ]
    clients[0].allocate(now=0)
    clients[1].allocate(now=0)
    refused = clients[2].allocate(now=0)
    assert error_code(refused) == 508
    assert check_integrity(refused, clients[2].key)  # signed, so clients accept it
    error = refused.error
    assert error is not None and error.reason == "quota connections limit=2 in_use=2 requested=1"
    clients[0].refresh(0, now=1)
    assert clients[2].allocate(now=2).message_class is MessageClass.SUCCESS_RESPONSE


def test_sharing_disabled_refuses_every_allocation() -> None:
    """TURN-1.6: a node that shares nothing answers 508 (quota disabled)."""
    server = make_server(sharing_config=CapacitySharingConfig(enabled=False))
    refused = Client(server).allocate(now=0)
    assert error_code(refused) == 508
    assert refused.error is not None and refused.error.reason.startswith("quota disabled")


def test_allocations_per_user_are_limited_with_486() -> None:
    """TURN-1.6: a user over its allocation quota -> 486; other users are unaffected."""
    server = make_server(max_allocations_per_user=1)
    Client(server, address=("127.0.0.1", 50001)).allocate(now=0)
    assert error_code(Client(server, address=("127.0.0.1", 50002)).allocate(now=0)) == 486
    bob = Client(server, address=("127.0.0.1", 50003), user="bob", password=USERS["bob"])
    assert bob.allocate(now=0).message_class is MessageClass.SUCCESS_RESPONSE


def test_relay_socket_failure_is_508_and_frees_the_slot() -> None:
    """TURN-1.6: when the driver cannot open a relayed socket the client gets 508."""
    server = make_server(sharing_config=CapacitySharingConfig(max_relay_connections=1))
    client = Client(server)
    (opened,) = client.request(Method.ALLOCATE, RequestedTransport(), now=0)
    assert isinstance(opened, OpenRelay)
    reply = only_reply(relay_failed(server, opened.allocation, now=0))
    assert error_code(reply) == 508 and check_integrity(reply, client.key)
    assert server.allocations() == ()
    assert Client(server, address=("127.0.0.1", 50009)).allocate(now=1).find(XorRelayedAddress)


def test_relayed_bytes_are_charged_to_the_sharing_bucket() -> None:
    """TURN-1.6: each relayed payload is charged to the CAP-5.2 bucket; beyond it, dropped."""
    # a device sharing 1000 B/s with a one-second burst
    sharing = CapacitySharingConfig(max_upload_share=1.0)
    server = TurnServer(
        TurnConfig(realm=REALM),
        users=USERS,
        sharing=CapacitySharing(
            caps(upload_bandwidth=1000, max_relay_bandwidth=1000), sharing, now=0.0
        ),
        random_bytes=random.Random(3).randbytes,
    )
    client = Client(server)
    client.allocate(now=0)
    client.reply(Method.CREATE_PERMISSION, XorPeerAddress(PEER), now=0)
    sent = [client.send(send_indication(client, PEER, bytes(400)), now=0) for _ in range(3)]
    assert [len(a) for a in sent] == [1, 1, 0]  # 800 bytes fit the burst, 1200 do not
    assert server.counters.get_count(TurnCounter.DROPPED_BANDWIDTH) == 1
    assert len(peer_says(server, client, bytes(150), now=0.5)) == 1  # refilled 500 bytes by then


# ------------------------------------------------------------ permissions


def test_create_permission_lets_peer_data_in_as_data_indications() -> None:
    """TURN-1.7, TURN-1.9: without a permission peer data is dropped; with one it reaches the
    client as a Data indication carrying XOR-PEER-ADDRESS and DATA."""
    server = make_server()
    client = Client(server)
    client.allocate(now=0)
    assert peer_says(server, client, b"knock", now=1) == []
    assert server.counters.get_count(TurnCounter.DROPPED_PEER_NO_PERMISSION) == 1
    reply = client.reply(Method.CREATE_PERMISSION, XorPeerAddress(PEER), now=1)
    assert reply.message_class is MessageClass.SUCCESS_RESPONSE
    (delivered,) = peer_says(server, client, b"knock", now=2)
    indication = decode_message(delivered.data)
    assert (indication.method, indication.message_class) == (Method.DATA, MessageClass.INDICATION)
    assert indication.find(XorPeerAddress) == XorPeerAddress(PEER)
    assert indication.find(Data) == Data(b"knock")
    assert delivered.client == client.address
    # permissions are per IP address: another port of the same host gets in too
    assert len(peer_says(server, client, b"x", now=2, peer=(PEER[0], 1234))) == 1
    assert peer_says(server, client, b"x", now=2, peer=PEER_2) == []


def test_permission_lasts_300_seconds_unless_refreshed() -> None:
    """TURN-1.7: a permission expires 300 s after it was installed or last refreshed."""
    server = make_server()
    client = Client(server)
    client.allocate(Lifetime(3600), now=0)
    client.reply(Method.CREATE_PERMISSION, XorPeerAddress(PEER), now=10)
    assert server.next_deadline() == 10 + PERMISSION_LIFETIME
    assert len(peer_says(server, client, b"a", now=10 + PERMISSION_LIFETIME - 0.01)) == 1
    assert peer_says(server, client, b"b", now=10 + PERMISSION_LIFETIME) == []
    client.reply(Method.CREATE_PERMISSION, XorPeerAddress(PEER), now=400)
    assert len(peer_says(server, client, b"c", now=650)) == 1
    on_timer(server, now=700)
    (info,) = server.allocations()
    assert info.permissions == ()


def test_send_indication_needs_a_permission() -> None:
    """TURN-1.7: a Send indication to a peer without a permission is dropped, with one relayed."""
    server = make_server()
    client = Client(server)
    assert client.send(send_indication(client, PEER, b"early"), now=0) == []  # no allocation
    client.allocate(now=0)
    assert client.send(send_indication(client, PEER, b"hi"), now=1) == []
    assert server.counters.get_count(TurnCounter.DROPPED_CLIENT_NO_PERMISSION) == 1
    client.reply(Method.CREATE_PERMISSION, XorPeerAddress(PEER), now=1)
    actions = client.send(send_indication(client, PEER, b"hi"), now=2)
    assert actions == [SendToPeer(allocation=AllocationId(1), peer=PEER, data=b"hi")]


def test_permission_errors_install_nothing() -> None:
    """TURN-1.7: an IPv6 peer -> 443, a peer outside the allowed networks -> 403, and a request
    with one bad peer among good ones installs none of them."""
    server = make_server(allowed_peers=("127.0.0.0/8",))
    client = Client(server)
    client.allocate(now=0)
    assert (
        error_code(client.reply(Method.CREATE_PERMISSION, XorPeerAddress(("::1", 5)), now=1)) == 443
    )
    mixed = client.reply(
        Method.CREATE_PERMISSION, XorPeerAddress(PEER), XorPeerAddress(("192.0.2.1", 5)), now=1
    )
    assert error_code(mixed) == 403
    assert error_code(client.reply(Method.CREATE_PERMISSION, now=1)) == 400
    (info,) = server.allocations()
    assert info.permissions == ()


# ------------------------------------------------------------ channels


def test_channel_bind_installs_the_permission_and_data_flows_as_channel_data() -> None:
    """TURN-1.8, TURN-1.9: ChannelBind alone (no CreatePermission, as aioice does) lets data
    through both ways, as ChannelData on the bound channel."""
    server = make_server()
    client = Client(server)
    client.allocate(now=0)
    reply = client.reply(Method.CHANNEL_BIND, ChannelNumber(0x4000), XorPeerAddress(PEER), now=1)
    assert reply.message_class is MessageClass.SUCCESS_RESPONSE
    (info,) = server.allocations()
    assert info.permissions == (PEER[0],)
    frame = encode_channel_data(ChannelDataMessage(channel=0x4000, data=b"to peer"))
    assert client.send(frame, now=2) == [
        SendToPeer(allocation=AllocationId(1), peer=PEER, data=b"to peer")
    ]
    (back,) = peer_says(server, client, b"to client", now=2)
    assert decode_channel_data(back.data) == ChannelDataMessage(channel=0x4000, data=b"to client")
    # the same host on another port has a permission but no channel: a Data indication
    (other,) = peer_says(server, client, b"other port", now=2, peer=(PEER[0], 1))
    assert decode_message(other.data).find(Data) == Data(b"other port")


@pytest.mark.parametrize("number", [0x0000, 0x3FFF, 0x8000, 0xFFFF])
def test_channel_numbers_outside_the_range_get_400(number: int) -> None:
    """TURN-1.8: channel numbers are 0x4000..0x7FFF."""
    server = make_server()
    client = Client(server)
    client.allocate(now=0)
    reply = client.reply(Method.CHANNEL_BIND, ChannelNumber(number), XorPeerAddress(PEER), now=1)
    assert error_code(reply) == 400


def test_channel_bind_conflicts_get_400() -> None:
    """TURN-1.8: a bound channel cannot take another peer, nor a bound peer another channel;
    binding the same pair again refreshes it; the top of the range works."""
    server = make_server()
    client = Client(server)
    client.allocate(now=0)
    bind = Method.CHANNEL_BIND
    assert client.reply(bind, ChannelNumber(0x7FFF), XorPeerAddress(PEER), now=1).error is None
    assert (
        error_code(client.reply(bind, ChannelNumber(0x7FFF), XorPeerAddress(PEER_2), now=1)) == 400
    )
    assert error_code(client.reply(bind, ChannelNumber(0x4001), XorPeerAddress(PEER), now=1)) == 400
    assert error_code(client.reply(bind, ChannelNumber(0x4001), now=1)) == 400
    assert client.reply(bind, ChannelNumber(0x7FFF), XorPeerAddress(PEER), now=500).error is None
    (info,) = server.allocations()
    assert [c.expires for c in info.channels] == [500 + CHANNEL_LIFETIME]


def test_channel_expires_after_600_seconds() -> None:
    """TURN-1.8: an unrefreshed binding ends after 600 s: its ChannelData is dropped, and the
    channel number and peer can then be bound afresh."""
    server = make_server()
    client = Client(server)
    client.allocate(Lifetime(3600), now=0)
    client.reply(Method.CHANNEL_BIND, ChannelNumber(0x4000), XorPeerAddress(PEER), now=0)
    client.reply(Method.CREATE_PERMISSION, XorPeerAddress(PEER), now=500)  # keep the IP allowed
    frame = encode_channel_data(ChannelDataMessage(channel=0x4000, data=b"x"))
    assert len(client.send(frame, now=CHANNEL_LIFETIME - 1)) == 1
    assert client.send(frame, now=CHANNEL_LIFETIME) == []
    assert server.counters.get_count(TurnCounter.DROPPED_CHANNEL_UNBOUND) == 1
    (late,) = peer_says(server, client, b"y", now=CHANNEL_LIFETIME)
    assert decode_message(late.data).method == Method.DATA  # no channel: Data indication
    rebound = client.reply(
        Method.CHANNEL_BIND, ChannelNumber(0x4000), XorPeerAddress(PEER_2), now=CHANNEL_LIFETIME
    )
    assert rebound.error is None


# ------------------------------------------------------------ bad input


def test_request_with_a_sound_header_but_a_bad_attribute_gets_400_with_the_reason() -> None:
    """TURN-1.10: the decoder's complaint goes back to the client as a 400 reason."""
    server = make_server()
    client = Client(server)
    good = encode_message(
        StunMessage(
            method=Method.ALLOCATE,
            message_class=MessageClass.REQUEST,
            transaction_id=bytes(range(12)),
            attributes=(Lifetime(5),),
        )
    )
    lifetime_at = good.index(bytes.fromhex("000d0004"))
    bad = bytearray(good[: lifetime_at + 2] + b"\x00\x03" + good[lifetime_at + 4 :])
    reply = only_reply(client.send(bytes(bad), now=0))
    assert error_code(reply) == 400
    assert reply.transaction_id == bytes(bad[8:20])
    assert reply.error is not None and "Lifetime" in reply.error.reason
    assert server.counters.get_count(TurnCounter.MALFORMED) == 1


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"GET / HTTP/1.1\r\n\r\n",
        bytes(20),  # zero cookie
        bytes.fromhex("0001000021120000") + bytes(12),  # 20 bytes, wrong cookie
        bytes.fromhex("4000000a") + b"abc",  # ChannelData shorter than its length
        bytes.fromhex("40000000"),  # ChannelData without an allocation
    ],
)
def test_garbage_is_dropped_silently_and_counted(data: bytes) -> None:
    """TURN-1.10: bytes that are not a sound STUN request get no answer and a counter."""
    server = make_server()
    assert receive(server, data, ("127.0.0.1", 5), now=0) == []
    assert sum(server.counters.values()) == 1


def test_a_corrupted_fingerprint_is_not_answered() -> None:
    """TURN-1.10: a datagram whose FINGERPRINT fails is not STUN: no 400, just a count."""
    server = make_server()
    client = Client(server)
    data = bytearray(client.build(Method.ALLOCATE, RequestedTransport(), sign=False))
    data[-1] ^= 1
    assert client.send(bytes(data), now=0) == []
    assert server.counters.get_count(TurnCounter.MALFORMED) == 1


def test_responses_indications_and_unknown_methods() -> None:
    """TURN-1.10: responses and non-Send indications are dropped; an unknown method -> 400;
    a Binding request is answered with the client's mapped address (TURN-1.1)."""
    server = make_server()
    client = Client(server)
    for cls in (
        MessageClass.SUCCESS_RESPONSE,
        MessageClass.ERROR_RESPONSE,
        MessageClass.INDICATION,
    ):
        message = StunMessage(
            method=Method.DATA if cls is MessageClass.INDICATION else Method.ALLOCATE,
            message_class=cls,
            transaction_id=bytes(12),
        )
        assert client.send(encode_message(message), now=0) == []
    unknown = StunMessage(
        method=0x0FF, message_class=MessageClass.REQUEST, transaction_id=bytes(12)
    )
    assert error_code(only_reply(client.send(encode_message(unknown), now=0))) == 400
    binding = StunMessage(
        method=Method.BINDING, message_class=MessageClass.REQUEST, transaction_id=bytes(12)
    )
    answer = only_reply(client.send(encode_message(binding), now=0))
    assert answer.find(XorMappedAddress) == XorMappedAddress(client.address)
    assert answer.find(Software) is not None


def test_incomplete_send_indications_are_dropped() -> None:
    """TURN-1.10: a Send indication without XOR-PEER-ADDRESS or DATA, or with DONT-FRAGMENT."""
    server = make_server()
    client = Client(server)
    client.allocate(now=0)
    client.reply(Method.CREATE_PERMISSION, XorPeerAddress(PEER), now=0)
    for attributes in (
        (Data(b"x"),),
        (XorPeerAddress(PEER),),
        (XorPeerAddress(PEER), Data(b"x"), DontFragment()),
    ):
        message = StunMessage(
            method=Method.SEND,
            message_class=MessageClass.INDICATION,
            transaction_id=bytes(12),
            attributes=attributes,
        )
        assert client.send(encode_message(message), now=1) == []
    assert server.counters.get_count(TurnCounter.DROPPED_SEND_INCOMPLETE) == 2
    assert server.counters.get_count(TurnCounter.DROPPED_SEND_DONT_FRAGMENT) == 1


def test_driver_misuse_is_a_local_protocol_error() -> None:
    server = make_server()
    with pytest.raises(LocalProtocolError):
        relay_opened(server, AllocationId(1), ("127.0.0.1", 1), now=0)
    client = Client(server)
    client.allocate(now=0)
    with pytest.raises(LocalProtocolError):
        relay_opened(server, AllocationId(1), ("127.0.0.1", 1), now=0)  # already active
    with pytest.raises(LocalProtocolError):
        TurnConfig(realm=REALM, default_lifetime=4000)
    with pytest.raises(LocalProtocolError):
        TurnConfig(realm=REALM, allowed_peers=("not a network",))
