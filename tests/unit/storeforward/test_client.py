"""SF-8: the member side (`SfClient`) against real holder cores, no sockets.

A sender stores for an offline member on k holders chosen by capacity, the
sender goes away, the member picks up, gets each message once, and its
receipts tombstone the message on every holder; bad input is refused and
counted.
"""

import random

import pytest

from railgun_ref.capacity.types import DeviceCapabilities
from railgun_ref.core import cbor
from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.identity.keys import Identity
from railgun_ref.storeforward import (
    MessageState,
    Send,
    SfCounter,
    StorageHolder,
    StoreForwardConfig,
)
from railgun_ref.storeforward import messages as m
from railgun_ref.storeforward.authorisers import RoomProofAuthoriser, room_store_proof
from railgun_ref.storeforward.client import (
    HolderCandidate,
    LookupHolders,
    PersistMailboxKeys,
    PickedUp,
    SendMailboxKeys,
    SendTo,
    SfClient,
    SfClientCounter,
    StoredFor,
    StoreFailed,
    StoreFailure,
)
from railgun_ref.storeforward.rendezvous import epoch_of, rendezvous_id
from railgun_ref.storeforward.sealed import open_sealed, seal

T0 = 1_700_000_000.0
ROOM = b"R" * 32
SECRET = b"room-secret-0123456789abcdef"
SENDER = Identity.from_seed(bytes([1]) * 32)
MEMBER = Identity.from_seed(bytes([3]) * 32)
STRANGER = Identity.from_seed(bytes([5]) * 32)
CAPS = DeviceCapabilities.from_json(
    {
        "deviceClass": "server",
        "uploadBandwidth": 2_000_000,
        "downloadBandwidth": 2_000_000,
        "maxRelayConnections": 20,
        "maxRelayBandwidth": 1_000_000,
        "canActAsTurn": False,
        "canStoreMessages": True,
        "natType": "open",
        "availability": "always",
    }
)


def _rng(seed: int) -> random.Random:
    return random.Random(seed)


class Net:
    """Holders and clients wired by hand: every SendTo goes to its core at once."""

    def __init__(self, holders: int = 5) -> None:
        self.holders = {
            Identity.from_seed(bytes([100 + i]) * 32).node_id: StorageHolder(
                Identity.from_seed(bytes([100 + i]) * 32).node_id,
                authoriser=RoomProofAuthoriser(),
                now=T0,
            )
            for i in range(holders)
        }
        self.online: set[NodeId] = set(self.holders)
        self.clients: dict[NodeId, SfClient] = {}
        self.out: dict[NodeId, list[object]] = {}

    def client(self, identity: Identity, seed: int) -> SfClient:
        core = SfClient(identity, random_bytes=_rng(seed).randbytes, now=T0)
        core.add_room(ROOM, SECRET, now=T0)
        others = {i.node_id: i.public_key for i in (SENDER, MEMBER) if i != identity}
        core.set_members(ROOM, others)
        self.clients[identity.node_id] = core
        self.out[identity.node_id] = []
        return core

    def pump(self, now: float) -> None:
        moved = True
        while moved:
            moved = False
            for node_id, core in list(self.clients.items()):
                while (action := core.next_action()) is not None:
                    moved = True
                    self._client_action(node_id, core, action, now)
            for node_id, holder in self.holders.items():
                while (action := holder.next_action()) is not None:
                    moved = True
                    if isinstance(action, Send) and action.peer in self.clients:
                        self.clients[action.peer].receive(
                            node_id, ("127.0.0.1", 1), action.data, now=now
                        )

    def _client_action(self, me: NodeId, core: SfClient, action: object, now: float) -> None:
        self.out[me].append(action)
        match action:
            case LookupHolders(rendezvous_key=key):
                found = [
                    HolderCandidate(node_id=h, address=("127.0.0.1", 2), capabilities=CAPS)
                    for h in sorted(self.online)
                ]
                core.holders_found(key, found, now=now)
            case SendTo(peer=peer, data=data) if peer in self.online:
                self.holders[peer].receive(data, peer=me, now=now)
            case SendMailboxKeys(member=member, data=data) if member in self.clients:
                self.clients[member].receive(me, ("127.0.0.1", 3), data, now=now)


def _stored_then_picked_up() -> tuple[Net, SfClient, SfClient]:
    net = Net()
    sender = net.client(SENDER, 1)
    member = net.client(MEMBER, 2)
    member.members_reachable(ROOM, [SENDER.node_id], now=T0)
    net.pump(T0)
    assert any(isinstance(a, PersistMailboxKeys) for a in net.out[SENDER.node_id])
    del net.clients[MEMBER.node_id]  # the member goes offline
    for n in range(3):
        sender.store(
            room_id=ROOM,
            message_id=bytes([n]) * 16,
            member=MEMBER.node_id,
            blob=b"sealed-room-blob-%d" % n,
            expires_at=T0 + 3600,
            now=T0,
        )
    net.pump(T0)
    return net, sender, member


def test_stored_on_k_holders_then_picked_up_once_and_tombstoned() -> None:
    """SF-8.1 to SF-8.4, SF-5.3: stored on k holders, picked up once, tombstoned everywhere."""
    net, _, member = _stored_then_picked_up()
    stored = [a for a in net.out[SENDER.node_id] if isinstance(a, StoredFor)]
    assert sorted(a.message_id[0] for a in stored) == [0, 1, 2]
    keeping = [h for h in net.holders.values() if h.held]
    assert len(keeping) == 3  # redundancyFactor
    del net.clients[SENDER.node_id]  # the sender quits
    net.clients[MEMBER.node_id] = member  # the member returns
    member.pickup_now(now=T0 + 600)
    net.pump(T0 + 600)
    got = [a for a in net.out[MEMBER.node_id] if isinstance(a, PickedUp)]
    assert {a.message_id for a in got} == {bytes([n]) * 16 for n in range(3)}
    assert {a.blob for a in got} == {b"sealed-room-blob-%d" % n for n in range(3)}
    assert all(not h.held for h in net.holders.values())  # every replica deleted
    for holder in net.holders.values():
        assert holder.counters.get_count(SfCounter.TOMBSTONED) >= 3
    ids = [t.message_id for t in next(iter(net.holders.values())).tombstones.values()]
    assert all(h.state_of(i) is MessageState.TOMBSTONED for h in net.holders.values() for i in ids)


def test_no_mailbox_key_no_store() -> None:
    """SF-8.1: a member that never announced its mailbox keys cannot be stored for."""
    net = Net()
    sender = net.client(SENDER, 1)
    sender.store(
        room_id=ROOM,
        message_id=bytes(16),
        member=MEMBER.node_id,
        blob=b"x",
        expires_at=T0 + 60,
        now=T0,
    )
    net.pump(T0)
    failed = [a for a in net.out[SENDER.node_id] if isinstance(a, StoreFailed)]
    assert [a.reason for a in failed] == [StoreFailure.NO_MAILBOX_KEY]


def test_mailbox_keys_from_a_non_member_are_refused() -> None:
    """SF-8.1: mailbox keys from a non-member are refused and counted."""
    net = Net()
    sender = net.client(SENDER, 1)
    stranger = SfClient(STRANGER, random_bytes=_rng(9).randbytes, now=T0)
    stranger.add_room(ROOM, SECRET, now=T0)
    data = m.encode(stranger.mailbox_keys(ROOM, now=T0))
    sender.receive(STRANGER.node_id, ("127.0.0.1", 4), data, now=T0)
    assert sender.counters.get_count(SfClientCounter.REJECTED, ErrorCode.FORBIDDEN) == 1


def test_non_member_store_is_forbidden_and_counted() -> None:
    """SF-3.5, SF-1.5, SF-1.3: a proof without the room secret, or another's, is refused."""
    holder = StorageHolder(NodeId(bytes(32)), authoriser=RoomProofAuthoriser(), now=T0)
    epoch = epoch_of(T0)
    real = rendezvous_id(SECRET, MEMBER.node_id, epoch)
    guess = rendezvous_id(b"another-secret-0123456789", MEMBER.node_id, epoch)
    net, _, _ = _stored_then_picked_up()
    key = next(s.rendezvous_key for h in net.holders.values() for s in h.held.values())
    for proof in (
        room_store_proof(guess, STRANGER.node_id),
        room_store_proof(real, SENDER.node_id),
    ):
        request = m.sign_store(
            STRANGER,
            request_id=7,
            timestamp_ms=int(T0 * 1000),
            rendezvous_key=key,
            mailbox_key=MEMBER.public_key,
            expires_ms=int((T0 + 60) * 1000),
            ciphertext=bytes(256),
            proof=proof,
        )
        holder.receive(m.encode(request), peer=STRANGER.node_id, now=T0)
        assert holder.last_refusal is ErrorCode.FORBIDDEN
    assert holder.counters.get_count(SfCounter.REFUSED, ErrorCode.FORBIDDEN) == 2
    assert not holder.held


def test_the_real_proof_is_accepted() -> None:
    """SF-3.5, SF-1.5: any member's proof for the key is accepted."""
    holder = StorageHolder(NodeId(bytes(32)), authoriser=RoomProofAuthoriser(), now=T0)
    net, _, _ = _stored_then_picked_up()
    key = next(s.rendezvous_key for h in net.holders.values() for s in h.held.values())
    real = rendezvous_id(SECRET, MEMBER.node_id, epoch_of(T0))
    request = m.sign_store(
        STRANGER,
        request_id=7,
        timestamp_ms=int(T0 * 1000),
        rendezvous_key=key,
        mailbox_key=MEMBER.public_key,
        expires_ms=int((T0 + 60) * 1000),
        ciphertext=bytes(256),
        proof=room_store_proof(real, STRANGER.node_id),
    )
    holder.receive(m.encode(request), peer=STRANGER.node_id, now=T0)
    assert holder.last_refusal is None and len(holder.held) == 1


def test_unsolicited_answers_are_refused() -> None:
    """SF-6.2: answers to nothing, and bytes that are no message, are refused and counted."""
    sender = SfClient(SENDER, random_bytes=_rng(1).randbytes, now=T0)
    answer = m.Result(request_id=42, status=0, message_id=bytes(32))
    sender.receive(NodeId(bytes(32)), ("127.0.0.1", 5), m.encode(answer), now=T0)
    sender.receive(NodeId(bytes(32)), ("127.0.0.1", 5), b"\xff", now=T0)
    assert sender.counters.get_count(SfClientCounter.REJECTED, ErrorCode.UNEXPECTED_RESPONSE) == 1
    assert sender.counters.get_count(SfClientCounter.REJECTED, ErrorCode.MALFORMED) == 1


def test_sealed_ciphertext_is_a_bucket_and_opens_only_for_the_recipient() -> None:
    """SF-8.2: bucket-sized, no room or message id visible, opened by the recipient alone."""
    data = seal(
        MEMBER.public_key,
        room_id=ROOM,
        message_id=b"M" * 16,
        expires_ms=5,
        blob=b"blob" * 100,
        ephemeral_seed=bytes(32),
    )
    assert len(data) in m.BUCKETS and ROOM not in data and b"M" * 16 not in data
    opened = open_sealed(MEMBER, data)
    assert (opened.room_id, opened.message_id, opened.blob) == (ROOM, b"M" * 16, b"blob" * 100)
    with pytest.raises(RemoteProtocolError):
        open_sealed(STRANGER, data)
    with pytest.raises(RemoteProtocolError):
        open_sealed(MEMBER, data[:-1] + bytes([data[-1] ^ 1]))


def test_bad_input_through_the_room_authoriser_is_refused_and_counted() -> None:
    """SF-3.1, SF-3.3, SF-4.2: forged and replayed stores, a quota flood, a stranger's delete."""
    net, _, _ = _stored_then_picked_up()
    key = next(s.rendezvous_key for h in net.holders.values() for s in h.held.values())
    mailbox = next(s.mailbox_key for h in net.holders.values() for s in h.held.values())
    config = StoreForwardConfig(sender_quota_messages=2)
    holder = StorageHolder(
        NodeId(bytes(32)), authoriser=RoomProofAuthoriser(), config=config, now=T0
    )
    proof = room_store_proof(rendezvous_id(SECRET, MEMBER.node_id, epoch_of(T0)), SENDER.node_id)

    def store(n: int, fill: int) -> m.StoreRequest:
        return m.sign_store(
            SENDER,
            request_id=n,
            timestamp_ms=int(T0 * 1000),
            rendezvous_key=key,
            mailbox_key=mailbox,
            expires_ms=int((T0 + 60) * 1000),
            ciphertext=bytes([fill]) * 256,
            proof=proof,
        )

    forged = store(1, 1).to_map()
    forged[8] = bytes([9]) * 256
    holder.receive(cbor.encode(forged), peer=SENDER.node_id, now=T0)
    assert holder.last_refusal is ErrorCode.BAD_SIGNATURE
    holder.receive(m.encode(store(2, 2)), peer=SENDER.node_id, now=T0)
    holder.receive(m.encode(store(2, 2)), peer=SENDER.node_id, now=T0)
    assert holder.last_refusal is ErrorCode.REPLAY
    holder.receive(m.encode(store(3, 3)), peer=SENDER.node_id, now=T0)
    holder.receive(m.encode(store(4, 4)), peer=SENDER.node_id, now=T0)
    assert holder.last_refusal is ErrorCode.QUOTA
    held = set(holder.held)
    assert len(held) == 2
    # SF-4.2: a receipt signed by anyone but the mailbox key deletes nothing.
    receipt = m.sign_receipt(
        STRANGER, timestamp_ms=int(T0 * 1000), rendezvous_key=key, message_ids=tuple(held)
    )
    holder.receive(m.encode(receipt), peer=STRANGER.node_id, now=T0)
    assert holder.last_refusal is ErrorCode.WRONG_SENDER and set(holder.held) == held
    for code in (
        ErrorCode.BAD_SIGNATURE,
        ErrorCode.REPLAY,
        ErrorCode.QUOTA,
        ErrorCode.WRONG_SENDER,
    ):
        assert holder.counters.get_count(SfCounter.REFUSED, code) == 1


def test_a_returning_member_picks_up_again_soon_after() -> None:
    """SF-8.4: follow-up pickups 2, 5, 10 and 20 s after a return, then every 60 s."""
    member = SfClient(MEMBER, random_bytes=_rng(3).randbytes, now=T0)
    member.add_room(ROOM, SECRET, now=T0)
    member.pickup_now(now=T0)
    due = []
    now = T0
    for _ in range(6):
        deadline = member.next_deadline()
        assert deadline is not None
        due.append(round(deadline - T0, 3))
        now = deadline
        member.on_timer(now=now)
        while member.next_action() is not None:
            pass
    assert due == [2.0, 5.0, 10.0, 20.0, 80.0, 140.0]


def test_keys_from_a_member_the_log_counts_later_are_taken_then() -> None:
    """SF-8.1: refused (counted) while the log does not count the sender, taken once it does."""
    sender = SfClient(SENDER, random_bytes=_rng(1).randbytes, now=T0)
    sender.add_room(ROOM, SECRET, now=T0)
    member = SfClient(MEMBER, random_bytes=_rng(2).randbytes, now=T0)
    member.add_room(ROOM, SECRET, now=T0)
    data = m.encode(member.mailbox_keys(ROOM, now=T0))
    sender.receive(MEMBER.node_id, ("127.0.0.1", 4), data, now=T0)
    assert sender.counters.get_count(SfClientCounter.REJECTED, ErrorCode.FORBIDDEN) == 1
    assert sender.next_action() is None
    sender.set_members(ROOM, {MEMBER.node_id: MEMBER.public_key})
    assert isinstance(sender.next_action(), PersistMailboxKeys)
    assert sender.counters.get_count(SfClientCounter.MAILBOX_LEARNED) == 1


def test_a_blob_past_the_largest_bucket_fails_as_too_large_not_a_crash() -> None:
    """SF-8.2: a blob no bucket holds is refused (counted, StoreFailed); the client lives on.

    A demo client once died on a 66 KB sealed plaintext; the outbox keeps such a message
    for the central and direct paths."""
    net = Net()
    sender = net.client(SENDER, 1)
    member = net.client(MEMBER, 2)
    member.members_reachable(ROOM, [SENDER.node_id], now=T0)
    net.pump(T0)
    del net.clients[MEMBER.node_id]
    for message_id, size in ((bytes(16), 70_000), (bytes([1]) * 16, 10)):
        sender.store(
            room_id=ROOM,
            message_id=message_id,
            member=MEMBER.node_id,
            blob=bytes(size),
            expires_at=T0 + 3600,
            now=T0,
        )
    net.pump(T0)
    failed = [a for a in net.out[SENDER.node_id] if isinstance(a, StoreFailed)]
    assert [(a.message_id, a.reason) for a in failed] == [(bytes(16), StoreFailure.TOO_LARGE)]
    assert sender.counters.get_count(SfClientCounter.STORE_FAILED, StoreFailure.TOO_LARGE) == 1
    stored = [a for a in net.out[SENDER.node_id] if isinstance(a, StoredFor)]
    assert {a.message_id for a in stored} == {bytes([1]) * 16}


def test_a_pickup_also_asks_the_announcers_of_the_key() -> None:
    """SF-8.6: the publishers of the key's rendezvous records are asked too, even when
    they are not among the peers nearest the key (the nearest set changed since)."""
    member = SfClient(MEMBER, random_bytes=_rng(4).randbytes, now=T0)
    member.add_room(ROOM, SECRET, now=T0)
    member.pickup_now(now=T0)
    lookups = []
    while (action := member.next_action()) is not None:
        if isinstance(action, LookupHolders):
            lookups.append(action.rendezvous_key)
    key = lookups[0]
    near = [
        HolderCandidate(
            node_id=Identity.from_seed(bytes([150 + i]) * 32).node_id,
            address=("127.0.0.1", 40 + i),
            capabilities=CAPS,
        )
        for i in range(8)
    ]
    far = HolderCandidate(
        node_id=Identity.from_seed(bytes([199]) * 32).node_id,
        address=("127.0.0.1", 99),
        capabilities=None,
    )
    member.holders_found(key, near, announced=[far, near[0]], now=T0)
    asked = {}
    while (action := member.next_action()) is not None:
        if isinstance(action, SendTo):
            asked[action.peer] = action.address
    assert len(asked) == member.config.candidate_pool + 1
    assert asked[far.node_id] == far.address
    assert member.counters.get_count(SfClientCounter.PICKUP_ANNOUNCER) == 1


def test_a_failed_store_waits_with_backoff_before_it_starts_again() -> None:
    """SF-8.7: a P2P job that stalls again soon after its store failed does not start a new
    lookup and STORE round at once: the pair waits 10 s, then 20 s, ... (and forever for a
    blob no bucket holds), so stalls every few seconds cause no store storm."""
    net = Net()
    net.online.clear()  # no holder answers a lookup: NO_HOLDERS
    sender = net.client(SENDER, 1)
    member = net.client(MEMBER, 2)
    member.members_reachable(ROOM, [SENDER.node_id], now=T0)
    net.pump(T0)
    del net.clients[MEMBER.node_id]

    def stall(at: float, message_id: bytes = bytes(16), size: int = 10) -> None:
        sender.store(
            room_id=ROOM,
            message_id=message_id,
            member=MEMBER.node_id,
            blob=bytes(size),
            expires_at=T0 + 3600,
            now=at,
        )
        net.pump(at)

    for at in (0, 1, 5, 9.9, 10, 15, 29.9, 30):  # stalls of a re-created P2P job
        stall(T0 + at)
    lookups = [a for a in net.out[SENDER.node_id] if isinstance(a, LookupHolders)]
    failed = [a for a in net.out[SENDER.node_id] if isinstance(a, StoreFailed)]
    assert len(lookups) == len(failed) == 3  # at 0, 10 and 30 s
    assert sender.counters.get_count(SfClientCounter.STORE_DEFERRED) == 5
    for at in (0, 100, 1000):
        stall(T0 + at, message_id=bytes([9]) * 16, size=70_000)
    assert sender.counters.get_count(SfClientCounter.STORE_FAILED, StoreFailure.TOO_LARGE) == 1
