"""Room lookups that need more records than a datagram holds (DHT-7.4, DHT-7.8, DHT-8.3).

200 real `Node`s in the simulator; 50 of them announce themselves in one closed
room the way the transport does (a `room` record under the room's DHT ident
whose value carries the proof of the room secret, ROOM-6.2). A room record is
about 300 bytes, so a datagram VALUE carries three of them and says
`truncated`; every node that does not hold the room key itself must still find
all 50 members with `find_room_peers`.
"""

import random
from collections.abc import Callable

import pytest

from railgun_ref.core.ids import Address
from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.dht.service import DhtCounter
from railgun_ref.drivers.sim import Simulator
from railgun_ref.events import GetFinished, NodeEvent, StoreFinished
from railgun_ref.node import Node, NodeCounter
from railgun_ref.rooms.announce import room_announcement
from railgun_ref.rooms.ids import dht_ident_of
from railgun_ref.rpc.requests import Channel
from railgun_ref.transport.p2p import member_from_record

NODES = 200
MEMBERS = 50
SECRET = bytes(range(32))
IDENT = dht_ident_of(SECRET)
ROOM_KEY = derive_key(KeyType.ROOM, IDENT)

#: 200 simulated nodes are CPU-bound and deterministic; on a loaded two-core machine
#: a run takes several times its quiet duration, which the default 120 s cap does not allow.
pytestmark = pytest.mark.timeout(900)


class RoomNet:
    """A joined network and the events its nodes reported."""

    def __init__(self, size: int, seed: int) -> None:
        self.sim = Simulator(seed=seed, keep_trace=False)
        self.events: dict[tuple[Address, int], NodeEvent] = {}
        self.sim.subscribe(self._listen)
        self.addrs = self.sim.spawn(size)
        for i, addr in enumerate(self.addrs[1:]):
            self.sim.at(self.sim.now + i * 0.05, _joiner(addr, self.addrs[0]))
        self.sim.run_for(size * 0.05 + 30)

    def _listen(self, addr: Address, event: NodeEvent, _now: float) -> None:
        if isinstance(event, GetFinished | StoreFinished):
            self.events[(addr, event.query_id)] = event

    def node(self, addr: Address) -> Node:
        return self.sim.nodes[addr]

    def run_all(self, started: list[tuple[Address, int]]) -> list[NodeEvent]:
        """Run until every started query (address, query id) reported; its events in order."""
        for _ in range(120):
            if all(key in self.events for key in started):
                return [self.events[key] for key in started]
            self.sim.run_for(1.0)
        raise AssertionError("some queries never finished")


def _joiner(addr: Address, via: Address) -> Callable[[Simulator], None]:
    def join(sim: Simulator) -> None:
        sim.call(addr, lambda n, now: n.dht.bootstrap([via], now=now))

    return join


def announcing(value: bytes) -> Callable[[Node, float], int]:
    """Announce membership as the transport does: the room's DHT ident, a proven value."""
    return lambda n, now: n.dht.announce_room(IDENT, now=now, value=value)


@pytest.fixture(scope="module")
def room_net() -> tuple[RoomNet, list[Address]]:
    net = RoomNet(NODES, seed=29)
    members = random.Random(5).sample(net.addrs, MEMBERS)
    started = []
    for member in members:
        host, port = member
        value = room_announcement(
            SECRET, publisher=net.node(member).identity.public_key, host=host, port=port
        )
        started.append((member, net.sim.call(member, announcing(value))))
        net.sim.run_for(0.2)
    for done in net.run_all(started):
        assert isinstance(done, StoreFinished) and done.accepted >= 1
    return net, members


def test_every_non_holder_finds_every_member(room_net: tuple[RoomNet, list[Address]]) -> None:
    """DHT-8.3 with DHT-7.8: 50 announcements, each non-holder's find_room_peers finds all 50."""
    net, members = room_net
    now = net.sim.now
    holders = {a for a in net.addrs if net.node(a).dht.records.get(ROOM_KEY, now=now)}
    askers = [a for a in net.addrs if a not in holders]
    assert len(askers) >= NODES // 2
    started = []
    for asker in askers:
        started.append(
            (asker, net.sim.call(asker, lambda n, now: n.dht.find_room_peers(IDENT, now=now)))
        )
        net.sim.run_for(0.05)
    want = {net.node(m).node_id for m in members}
    short = {}
    for (asker, _), found in zip(started, net.run_all(started), strict=True):
        assert isinstance(found, GetFinished)
        members_found = {
            member_from_record(r, room_id=IDENT, now=net.sim.now, closed=True).node_id
            for r in found.records
        }
        if members_found != want:
            short[asker] = len(members_found & want)
    assert short == {}, f"{len(short)} of {len(askers)} askers found fewer than {MEMBERS}"


def test_truncated_answers_were_fetched_on_the_stream(
    room_net: tuple[RoomNet, list[Address]],
) -> None:
    """DHT-7.8: the rest of a truncated VALUE came as stream FIND_VALUEs, counted as such."""
    net, _ = room_net
    asker = next(a for a in net.addrs if not net.node(a).dht.records.get(ROOM_KEY, now=net.sim.now))
    node = net.node(asker)
    before = node.counters.get_count(NodeCounter.TX, Channel.STREAM)
    fetched = node.dht.counters.get_count(DhtCounter.STREAM_FETCH)
    (found,) = net.run_all(
        [(asker, net.sim.call(asker, lambda n, now: n.dht.find_room_peers(IDENT, now=now)))]
    )
    assert isinstance(found, GetFinished) and len(found.records) == MEMBERS
    assert node.counters.get_count(NodeCounter.TX, Channel.STREAM) > before
    assert node.dht.counters.get_count(DhtCounter.STREAM_FETCH) > fetched
