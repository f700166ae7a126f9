"""TURN-1.8: a live channel binding keeps its peer's permission alive (a departure from RFC 8656).

aioice (aiortc's ICE) never sends CreatePermission, refreshes its allocation
every 500 s (5/6 of the 600 s lifetime granted) and re-binds a channel with
the first datagram it sends 500 s after the last bind. These tests replay
that timeline against the sans-IO core with a scripted ``now``, acting as
the driver too: before every event, `on_timer` runs for each deadline
`next_deadline` reports up to that time, as `drivers.turn_server` would.
"""

from dataclasses import dataclass

import hypothesis.strategies as st
from hypothesis import given, settings

from railgun_ref.relay.turn import (
    CHANNEL_LIFETIME,
    PERMISSION_LIFETIME,
    SendToClient,
    SendToPeer,
    TurnAction,
    TurnCounter,
    TurnServer,
)
from railgun_ref.stun.codec import (
    ChannelDataMessage,
    ChannelNumber,
    Data,
    Lifetime,
    MessageClass,
    Method,
    StunMessage,
    XorPeerAddress,
    decode_channel_data,
    decode_message,
    encode_channel_data,
    encode_message,
)

from .turn_client import PEER, PEER_2, Client, make_server, on_timer, receive_relayed

CHANNEL = 0x4000
#: aioice's DEFAULT_CHANNEL_REFRESH_TIME, and 5/6 of the 600 s allocation it asks for.
AIOICE_REFRESH = 500.0


def run_timers(server: TurnServer, until: float) -> list[TurnAction]:
    """Fire `on_timer` at each deadline up to `until`, as the driver's timer would."""
    actions: list[TurnAction] = []
    deadline = server.next_deadline()
    while deadline is not None and deadline <= until:
        actions += on_timer(server, now=deadline)
        deadline = server.next_deadline()
    return actions


@dataclass
class Call:
    """One aioice-like client with channel `CHANNEL` bound to `PEER`, on a virtual clock."""

    server: TurnServer
    client: Client

    @classmethod
    def start(cls, *, lifetime: int = 600) -> "Call":
        server = make_server()
        client = Client(server)
        client.allocate(Lifetime(lifetime), now=0)
        call = cls(server=server, client=client)
        call.bind(now=0)
        return call

    def bind(self, *, now: float, peer: tuple[str, int] = PEER) -> None:
        run_timers(self.server, now)
        reply = self.client.reply(
            Method.CHANNEL_BIND, ChannelNumber(CHANNEL), XorPeerAddress(peer), now=now
        )
        assert reply.message_class is MessageClass.SUCCESS_RESPONSE, reply

    def refresh(self, *, now: float) -> None:
        run_timers(self.server, now)
        assert self.client.refresh(600, now=now).find(Lifetime) == Lifetime(600)

    def permit(self, peer: tuple[str, int], *, now: float) -> None:
        run_timers(self.server, now)
        reply = self.client.reply(Method.CREATE_PERMISSION, XorPeerAddress(peer), now=now)
        assert reply.message_class is MessageClass.SUCCESS_RESPONSE, reply

    def to_peer(self, data: bytes, *, now: float) -> bool:
        """The client sends ChannelData on `CHANNEL`; whether PEER receives exactly `data`."""
        run_timers(self.server, now)
        frame = encode_channel_data(ChannelDataMessage(channel=CHANNEL, data=data))
        actions = self.client.send(frame, now=now)
        sent = [a for a in actions if isinstance(a, SendToPeer)]
        assert all(a.peer == PEER and a.data == data for a in sent)
        return len(sent) == 1

    def from_peer(self, data: bytes, *, now: float, peer: tuple[str, int] = PEER) -> bytes | None:
        """`peer` sends to the relayed address; the frame the client gets, or None if dropped."""
        run_timers(self.server, now)
        assert self.client.allocation is not None
        actions = receive_relayed(self.server, data, peer, self.client.allocation, now=now)
        frames = [a.data for a in actions if isinstance(a, SendToClient)]
        assert len(frames) <= 1
        return frames[0] if frames else None

    def channel_data_from_peer(self, data: bytes, *, now: float) -> bool:
        """PEER's `data` reaches the client as ChannelData on `CHANNEL`."""
        frame = self.from_peer(data, now=now)
        if frame is None:
            return False
        assert decode_channel_data(frame) == ChannelDataMessage(channel=CHANNEL, data=data)
        return True


def test_aioice_timeline_keeps_channel_data_flowing_past_300_seconds() -> None:
    """TURN-1.8, TURN-1.7: ChannelBind at 0 and again at 500 s, Refresh every 500 s, no
    CreatePermission: ChannelData flows both ways at 310, 450, 499, 520 and 900 s, where
    RFC 8656 alone would drop it from 300 s to 500 s."""
    call = Call.start()
    assert call.server.next_deadline() == CHANNEL_LIFETIME  # not 300: the channel holds it
    for t in (310.0, 450.0, 499.0):
        assert call.to_peer(b"audio %d" % t, now=t), t
        assert call.channel_data_from_peer(b"audio back %d" % t, now=t), t
    call.refresh(now=AIOICE_REFRESH)
    call.bind(now=AIOICE_REFRESH)  # aioice: the first send after 500 s re-binds
    for t in (520.0, 900.0):
        assert call.to_peer(b"audio %d" % t, now=t), t
        assert call.channel_data_from_peer(b"audio back %d" % t, now=t), t
    counters = call.server.counters
    assert counters.get_count(TurnCounter.DROPPED_CLIENT_NO_PERMISSION) == 0
    assert counters.get_count(TurnCounter.DROPPED_PEER_NO_PERMISSION) == 0
    assert counters.get_count(TurnCounter.DROPPED_CHANNEL_UNBOUND) == 0
    assert counters.get_count(TurnCounter.PERMISSIONS_EXPIRED) == 0
    assert counters.get_count(TurnCounter.RELAYED_TO_PEER_DATAGRAMS) == 5
    assert counters.get_count(TurnCounter.CHANNEL_DATA_TO_CLIENT) == 5
    (info,) = call.server.allocations()
    assert info.permissions == (PEER[0],)


def test_permission_held_by_a_channel_covers_the_whole_peer_address() -> None:
    """TURN-1.8, TURN-1.7, TURN-1.9: the kept permission is per IP, as any permission is: another
    port of the bound peer's host still gets in (as a Data indication, having no channel) at
    400 s, but a host with no permission does not."""
    call = Call.start()
    frame = call.from_peer(b"other port", now=400, peer=(PEER[0], PEER[1] + 1))
    assert frame is not None and decode_message(frame).find(Data) == Data(b"other port")
    assert call.from_peer(b"stranger", now=400, peer=PEER_2) is None
    assert call.server.counters.get_count(TurnCounter.DROPPED_PEER_NO_PERMISSION) == 1


def test_binding_not_refreshed_ends_600_seconds_after_the_last_channel_bind() -> None:
    """TURN-1.8, TURN-1.7, TURN-1.9: with the allocation refreshed but no ChannelBind after
    500 s, the binding and the permission it held end at 1100 s: from then ChannelData from the
    client and data from the peer are dropped and counted."""
    call = Call.start()
    call.refresh(now=AIOICE_REFRESH)
    call.bind(now=AIOICE_REFRESH)
    call.refresh(now=2 * AIOICE_REFRESH)  # the allocation lives on; the channel is not re-bound
    end = AIOICE_REFRESH + CHANNEL_LIFETIME
    assert call.to_peer(b"last", now=end - 0.01)
    assert call.channel_data_from_peer(b"last back", now=end - 0.01)
    for t in (end, end + 0.5, end + 200):
        assert not call.to_peer(b"late", now=t), t
        assert call.from_peer(b"late back", now=t) is None, t
    counters = call.server.counters
    assert counters.get_count(TurnCounter.DROPPED_CHANNEL_UNBOUND) == 3
    assert counters.get_count(TurnCounter.DROPPED_PEER_NO_PERMISSION) == 3
    assert counters.get_count(TurnCounter.CHANNELS_EXPIRED) == 1
    assert counters.get_count(TurnCounter.PERMISSIONS_EXPIRED) == 1
    (info,) = call.server.allocations()
    assert (info.channels, info.permissions) == ((), ())


def test_data_on_a_channel_refreshes_neither_binding_nor_permission() -> None:
    """TURN-1.8: only client requests refresh. A steady stream both ways on the channel from
    0 s to 600 s (every 10 s) does not keep it bound: at 600 s, 600 s after the only
    ChannelBind, data both ways is dropped."""
    call = Call.start(lifetime=3600)
    for step in range(60):
        t = step * 10.0
        assert call.to_peer(b"up", now=t), t
        assert call.channel_data_from_peer(b"down", now=t + 5), t
    assert not call.to_peer(b"up", now=CHANNEL_LIFETIME)
    assert call.from_peer(b"down", now=CHANNEL_LIFETIME) is None
    assert call.server.counters.get_count(TurnCounter.DROPPED_CHANNEL_UNBOUND) == 1
    assert call.server.counters.get_count(TurnCounter.DROPPED_PEER_NO_PERMISSION) == 1


def test_create_permission_alone_still_lasts_300_seconds() -> None:
    """TURN-1.7, TURN-1.8: a peer with a permission from CreatePermission and no channel loses
    it at 300 s, even while another peer's channel keeps that peer's permission alive."""
    call = Call.start()
    call.permit(PEER_2, now=0)
    assert call.from_peer(b"ok", now=PERMISSION_LIFETIME - 0.01, peer=PEER_2) is not None
    assert call.from_peer(b"late", now=PERMISSION_LIFETIME, peer=PEER_2) is None
    indication = StunMessage(
        method=Method.SEND,
        message_class=MessageClass.INDICATION,
        transaction_id=bytes(12),
        attributes=(XorPeerAddress(PEER_2), Data(b"late")),
    )
    assert call.client.send(encode_message(indication), now=PERMISSION_LIFETIME) == []
    assert call.server.counters.get_count(TurnCounter.DROPPED_PEER_NO_PERMISSION) == 1
    assert call.server.counters.get_count(TurnCounter.DROPPED_CLIENT_NO_PERMISSION) == 1
    assert call.server.counters.get_count(TurnCounter.PERMISSIONS_EXPIRED) == 1
    assert call.channel_data_from_peer(b"channel peer", now=PERMISSION_LIFETIME + 10)
    (info,) = call.server.allocations()
    assert info.permissions == (PEER[0],)


def test_create_permission_never_shortens_what_a_channel_holds_open() -> None:
    """TURN-1.8: a CreatePermission at 550 s (own expiry 850 s) for a peer re-bound at 500 s
    leaves its permission alive to 1100 s, the binding's expiry."""
    call = Call.start()
    call.refresh(now=AIOICE_REFRESH)
    call.bind(now=AIOICE_REFRESH)
    call.permit(PEER, now=550)
    call.refresh(now=2 * AIOICE_REFRESH)
    assert call.to_peer(b"up", now=1000)
    assert call.channel_data_from_peer(b"down", now=1099)
    assert call.from_peer(b"down", now=1100) is None


def test_channel_holds_the_permission_only_for_its_own_peer_after_rebinding() -> None:
    """TURN-1.8: once a binding expires, its number may go to another peer; the new binding keeps
    the new peer's permission alive, and the old peer's lapses with its own binding."""
    call = Call.start(lifetime=3600)
    call.bind(now=CHANNEL_LIFETIME, peer=PEER_2)
    assert call.from_peer(b"old", now=CHANNEL_LIFETIME + 1) is None
    assert call.from_peer(b"new", now=CHANNEL_LIFETIME + 400, peer=PEER_2) is not None
    assert call.from_peer(b"gone", now=2 * CHANNEL_LIFETIME, peer=PEER_2) is None


# ---------------------------------------------------------------- a model


_EVENTS = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=CHANNEL_LIFETIME),  # s since the last step
        st.sampled_from(["bind", "permit", "to_peer", "from_peer", "from_other_port"]),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(_EVENTS)
def test_permission_lives_exactly_as_long_as_its_own_300_seconds_or_its_channel(
    steps: list[tuple[int, str]],
) -> None:
    """TURN-1.7, TURN-1.8, TURN-1.9: for any schedule of ChannelBind and CreatePermission
    requests and data both ways, data gets through exactly when the model says: the channel
    lives 600 s from the last ChannelBind, the permission until max(own 300 s from the last
    request naming the peer, the channel's expiry), and data refreshes nothing."""
    server = make_server()
    client = Client(server)
    client.allocate(Lifetime(3600), now=0)
    call = Call(server=server, client=client)
    last_bind: float | None = None
    own_permission = float("-inf")
    now = last_refresh = 0.0
    for gap, action in steps:
        now += gap  # whole seconds: lifetime boundaries are hit exactly as well as crossed
        if now - last_refresh > 2900:  # keep the 3600 s allocation; Refresh touches nothing else
            run_timers(server, now)
            assert client.refresh(3600, now=now).find(Lifetime) == Lifetime(3600)
            last_refresh = now
        channel_live = last_bind is not None and last_bind + CHANNEL_LIFETIME > now
        permitted = own_permission > now or channel_live
        if action == "bind":
            call.bind(now=now)
            last_bind = now
            own_permission = now + PERMISSION_LIFETIME
        elif action == "permit":
            call.permit(PEER, now=now)
            own_permission = now + PERMISSION_LIFETIME
        elif action == "to_peer":
            assert call.to_peer(b"u", now=now) == channel_live, (now, last_bind)
        elif action == "from_peer":
            frame = call.from_peer(b"d", now=now)
            assert (frame is not None) == permitted, (now, last_bind, own_permission)
            if frame is not None:
                is_channel_data = frame[0] & 0xC0 == 0x40
                assert is_channel_data == channel_live
        else:
            frame = call.from_peer(b"d", now=now, peer=(PEER[0], PEER[1] + 7))
            assert (frame is not None) == permitted, (now, last_bind, own_permission)
