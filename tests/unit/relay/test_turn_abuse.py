"""TURN abuse resistance and RFC 8656 port requests: nonces bound to the client's transport
address (TURN-1.3), a fair share of the slots per user (TURN-1.11), EVEN-PORT and
RESERVATION-TOKEN (TURN-1.12)."""

from railgun_ref.capacity.sharing import CapacitySharingConfig
from railgun_ref.relay.turn import (
    RESERVATION_LIFETIME,
    OpenRelay,
    ReleaseReservation,
    SendToClient,
    TurnCounter,
)
from railgun_ref.stun.codec import (
    EvenPort,
    Method,
    RequestedTransport,
    ReservationToken,
    XorRelayedAddress,
    check_integrity,
    decode_message,
)

from .turn_client import USERS, Client, error_code, make_server, on_timer, only_reply, relay_opened


def test_a_signed_allocate_replayed_from_another_port_is_refused() -> None:
    """TURN-1.3: the nonce is bound to the client's address and port, so a captured signed
    Allocate sent again from another source port gets 438 and allocates nothing."""
    server = make_server()
    victim = Client(server, address=("127.0.0.1", 50000))
    victim.request(Method.REFRESH, now=0)  # learns a nonce (and gets 437: no allocation yet)
    captured = victim.build(Method.ALLOCATE, RequestedTransport())
    attacker = ("127.0.0.1", 50001)
    replayed = only_reply(Client(server, address=attacker).send(captured, now=1))
    assert error_code(replayed) == 438
    assert server.allocations() == ()
    # the victim itself, from its own port, is served with the same bytes
    (opened,) = victim.send(captured, now=2)
    assert isinstance(opened, OpenRelay) and opened.client == victim.address


def test_three_users_do_not_starve_a_fourth() -> None:
    """TURN-1.11: three users asking for all they may hold leave a slot for a fourth user;
    the one refused for its fair share gets 486, signed, and a counter."""
    server = make_server()  # 20 relay connection slots, at most 8 per user
    held: dict[str, int] = {}
    port = 50000
    for user in ("alice", "bob", "carol"):
        held[user] = 0
        for _ in range(8):
            port += 1
            client = Client(server, address=("127.0.0.1", port), user=user, password=USERS[user])
            reply = client.allocate(now=0)
            if error_code(reply) is not None:
                assert error_code(reply) == 486 and check_integrity(reply, client.key)
                break
            held[user] += 1
    assert held == {"alice": 8, "bob": 6, "carol": 5}
    assert server.counters.get_count(TurnCounter.FAIR_SHARE_REFUSED) == 2
    dave = Client(server, address=("127.0.0.1", 51000), user="dave", password=USERS["dave"])
    assert dave.allocate(now=0).find(XorRelayedAddress) is not None


def test_a_user_alone_keeps_room_for_others() -> None:
    """TURN-1.11: with 4 slots a lone user gets 4 // 2 = 2, the next user 1 (never the last
    free slot), and the last slot is left for a newcomer."""
    server = make_server(sharing_config=CapacitySharingConfig(max_relay_connections=4))
    alice = [Client(server, address=("127.0.0.1", 50001 + i)) for i in range(3)]
    assert [error_code(c.allocate(now=0)) for c in alice] == [None, None, 486]
    bob = [
        Client(server, address=("127.0.0.1", 50011 + i), user="bob", password=USERS["bob"])
        for i in range(2)
    ]
    assert [error_code(c.allocate(now=0)) for c in bob] == [None, 486]
    carol = Client(server, address=("127.0.0.1", 50021), user="carol", password=USERS["carol"])
    assert carol.allocate(now=0).find(XorRelayedAddress) is not None


def test_even_port_asks_the_driver_for_an_even_port() -> None:
    """TURN-1.12: EVEN-PORT without R: OpenRelay(even=True), nothing reserved."""
    server = make_server()
    client = Client(server)
    (opened,) = client.request(Method.ALLOCATE, RequestedTransport(), EvenPort(), now=0)
    assert isinstance(opened, OpenRelay)
    assert (opened.even, opened.reserve, opened.reserved) == (True, None, None)
    (answer,) = relay_opened(server, opened.allocation, ("127.0.0.1", 60002), now=0)
    assert isinstance(answer, SendToClient)
    assert decode_message(answer.data).find(ReservationToken) is None


def reserve(client: Client, *, now: float) -> bytes:
    """Allocate with EVEN-PORT R=1; the token the success response carries."""
    (opened,) = client.request(Method.ALLOCATE, RequestedTransport(), EvenPort(True), now=now)
    assert isinstance(opened, OpenRelay) and opened.even and opened.reserve is not None
    (answer,) = relay_opened(client.server, opened.allocation, ("127.0.0.1", 60002), now=now)
    assert isinstance(answer, SendToClient)
    token = decode_message(answer.data).find(ReservationToken)
    assert token is not None and token.value == opened.reserve
    return token.value


def test_reservation_token_takes_the_reserved_port_once() -> None:
    """TURN-1.12: R=1 reserves the next port under a token; an Allocate (from any 5-tuple)
    with the token asks the driver for that port; the token is good once; EVEN-PORT and
    RESERVATION-TOKEN together -> 400."""
    server = make_server()
    token = reserve(Client(server), now=0)
    rtcp = Client(server, address=("127.0.0.1", 50001))
    both = rtcp.reply(
        Method.ALLOCATE, RequestedTransport(), EvenPort(), ReservationToken(token), now=1
    )
    assert error_code(both) == 400
    (opened,) = rtcp.request(Method.ALLOCATE, RequestedTransport(), ReservationToken(token), now=1)
    assert isinstance(opened, OpenRelay) and opened.reserved == token and not opened.even
    again = Client(server, address=("127.0.0.1", 50002))
    used = again.reply(Method.ALLOCATE, RequestedTransport(), ReservationToken(token), now=2)
    assert error_code(used) == 508
    assert server.counters.get_count(TurnCounter.RESERVATIONS_USED) == 1


def test_an_unused_reservation_is_released_after_30_s() -> None:
    """TURN-1.12: the core tells the driver to release a reservation nobody took in 30 s;
    the token is then refused with 508."""
    server = make_server()
    token = reserve(Client(server), now=0)
    assert server.next_deadline() == RESERVATION_LIFETIME
    assert on_timer(server, now=RESERVATION_LIFETIME) == [ReleaseReservation(token=token)]
    late = Client(server, address=("127.0.0.1", 50001))
    refused = late.reply(Method.ALLOCATE, RequestedTransport(), ReservationToken(token), now=31)
    assert error_code(refused) == 508
    assert server.counters.get_count(TurnCounter.RESERVATIONS_EXPIRED) == 1
