"""A committee relay on a running `NodeHost` (RLY-8.1): the IO half of `CommitteeRelay`.

`RelayHost` reads the relay topic (`APP_TOPIC_RELAY`, RLY-2.1) and feeds
each request to its `CommitteeRelay`; it looks a room's members up with
`find_room_peers` when the relay asks (`LookupRoom`, RLY-3.1) and sends
what the relay sends (`SendApp`) in the background. The members' ACK
frames (RLY-4.1) arrive on the room topic: a bare node (``railgun-ref
node``) reads that topic itself (`room_topic=True`); in a client, whose P2P
core reads it, the transport hands them over with `room_frame`.

The relay's budget is the device's `SharingBudget` (CAP-7, RLY-3.2); its
own `CoreLoop` pumps it, with ``now = clock()`` on every input.
"""

import time
from collections.abc import Callable
from enum import StrEnum
from typing import assert_never

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream

from railgun_ref.capacity.budget import SharingBudget
from railgun_ref.core.constants import APP_TOPIC_RELAY, APP_TOPIC_ROOM
from railgun_ref.core.contract import ProtocolCore
from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.drivers.loop import CoreLoop
from railgun_ref.drivers.udp import HostStoppedError, NodeHost
from railgun_ref.events import AppMessageReceived
from railgun_ref.relay import committee as rly
from railgun_ref.transport.p2p import SendApp
from railgun_ref.wire.relay import RelayFrameType, peek_relay_type


def is_busy(payload: bytes) -> bool:
    """RLY-9.2: is this relay-topic message a BUSY answer (for the requester side)?"""
    return peek_relay_type(payload) == RelayFrameType.BUSY


class RelayHostCounter(StrEnum):
    RECEIVED = "rlyh.received"  #: APP messages on the relay topic
    SEND_FAILED = "rlyh.send_failed"


class RelayHost:
    """RLY-8.1: a committee relay serving on `host` (see the module docstring)."""

    def __init__(
        self,
        host: NodeHost,
        *,
        budget: SharingBudget | None,
        clock: Callable[[], float] = time.time,
        room_topic: bool = True,
        config: rly.RelayConfig | None = None,
        admission: rly.RelayGate | None = None,
    ) -> None:
        self.host = host
        self.counters: Counters[RelayHostCounter] = Counters()
        self.relay = rly.CommitteeRelay(
            config=config, budget=budget, node_id=host.node_id, admission=admission, now=clock()
        )
        #: RLY-9.4: where BUSY answers to this node's own requests go (a client's P2P core)
        self.busy_sink: Callable[[AppMessageReceived], None] | None = None
        self._clock = clock
        self._room_topic = room_topic
        self._loop = CoreLoop(clock=clock)
        self._tg: anyio.abc.TaskGroup | None = None

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled (the `NodeHost` must be running)."""
        requests = self.host.app_inbox(APP_TOPIC_RELAY)
        acks = self.host.app_inbox(APP_TOPIC_ROOM) if self._room_topic else None
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                core: ProtocolCore[rly.RelayAction] = self.relay
                self._loop.add(core, self._action)
                tg.start_soon(self._loop.run)
                if acks is not None:
                    tg.start_soon(self._read, acks, APP_TOPIC_ROOM)
                task_status.started()
                await self._read(requests, APP_TOPIC_RELAY)
        finally:
            self._tg = None

    def room_frame(self, event: AppMessageReceived) -> None:
        """RLY-4.1: a frame on the room topic read by someone else (a client's P2P core)."""
        if self.relay.in_flight():
            self._feed(event, APP_TOPIC_ROOM)

    async def _read(self, inbox: MemoryObjectReceiveStream[AppMessageReceived], topic: int) -> None:
        async with inbox:
            async for event in inbox:
                if topic == APP_TOPIC_RELAY:
                    self.counters.inc(RelayHostCounter.RECEIVED)
                    if self.busy_sink is not None and is_busy(event.payload):
                        self.busy_sink(event)  # RLY-9.4: an answer to us, not a request
                        continue
                self._feed(event, topic)

    def _feed(self, event: AppMessageReceived, topic: int) -> None:
        self.relay.receive(event.sender, event.address, topic, event.payload, now=self._clock())
        self._loop.poke()

    def _action(self, action: rly.RelayAction) -> None:
        if self._tg is None:
            return
        match action:
            case SendApp():
                self._tg.start_soon(self._send, action)
            case rly.LookupRoom(dht_ident=ident):
                self._tg.start_soon(self._lookup, ident)
            case _:
                assert_never(action)

    async def _send(self, action: SendApp) -> None:
        try:
            await self.host.send_app(action.address, action.topic, action.payload)
        except HostStoppedError:
            return
        except (ValueError, LocalProtocolError, OSError):
            self.counters.inc(RelayHostCounter.SEND_FAILED)

    async def _lookup(self, dht_ident: bytes) -> None:
        """RLY-3.1: the room's members, from the records its members publish."""
        try:
            outcome = await self.host.find_room_peers(dht_ident)
        except HostStoppedError:
            return
        self.relay.members_found(dht_ident, outcome.records, now=self._clock())
        self._loop.poke()
