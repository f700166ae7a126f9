"""The central service over real sockets: an in-process uvicorn on 127.0.0.1 (CEN-x).

Each test starts its own service on an OS-chosen port with a fresh SQLite
file, talks to it with `connect_central` or with a raw WebSocket where the
test needs to send what a well-behaved client never would, and stops it.
"""

import dataclasses
import json
import os
import sqlite3
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from railgun_ref.conformance.traceability import SPEC_PATH
from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.drivers.central import (
    CentralConfig,
    CentralCounter,
    CentralService,
    MailboxStore,
    TokenBucket,
    dedup_key,
    serve_central,
)
from railgun_ref.drivers.central_client import (
    CentralClient,
    CentralError,
    connect_central,
    origin_of,
    websocket_url,
)
from railgun_ref.identity.e2ee import open_room_message, seal_room_message
from railgun_ref.identity.keys import Identity
from railgun_ref.rooms import ChangeKind, RoomsCore, decode_change, sign_change
from railgun_ref.wire import cbor
from railgun_ref.wire.central import (
    MAX_FRAME_SIZE,
    MAX_TTL,
    Auth,
    CentralErrorCode,
    Challenge,
    Deliver,
    ErrorFrame,
    FrameType,
    Join,
    Joined,
    Send,
    ServerFrame,
    Welcome,
    auth_message,
    close_code,
    decode_client_frame,
    decode_server_frame,
    encode_frame,
)

from .rooms_helpers import room_log

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(60)]

ALICE = Identity.from_seed(bytes([1]) * 32)
BOB = Identity.from_seed(bytes([2]) * 32)
CAROL = Identity.from_seed(bytes([3]) * 32)
ROOM, LOG = room_log(ALICE, BOB, CAROL)  #: a closed room; LOG is its JOIN proof (ROOM-6.3)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    """Wall-clock seconds the test moves by hand (the service's `clock`)."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def running_central(
    tmp_path: Path, clock: FakeClock | None = None, **config: Any
) -> AsyncIterator[tuple[str, CentralService]]:
    """A central service on 127.0.0.1:<free port>, stopped when the block ends."""
    store = MailboxStore(tmp_path / "central.sqlite3")
    extra = {} if clock is None else {"clock": clock}
    service = CentralService(store, CentralConfig(**config), **extra)  # type: ignore[arg-type]
    try:
        async with anyio.create_task_group() as tg:
            url = await tg.start(partial(serve_central, service))
            yield url, service
            tg.cancel_scope.cancel()
    finally:
        store.close()


async def get_json(url: str) -> Any:
    def fetch() -> Any:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())

    return await anyio.to_thread.run_sync(fetch)


async def receive(client: CentralClient, timeout: float = 3.0) -> Any:
    with anyio.fail_after(timeout):
        return await client.receive()


async def nothing_more(client: CentralClient, wait: float = 0.3) -> None:
    with anyio.move_on_after(wait):
        extra = await client.receive()
        pytest.fail(f"unexpected delivery {extra}")


# ------------------------------------------------------------ raw WebSocket helpers


async def recv_frame(ws: ClientConnection) -> tuple[int, ServerFrame]:
    with anyio.fail_after(5):
        raw = await ws.recv()
    assert isinstance(raw, bytes)
    return decode_server_frame(raw)


async def raw_auth_frame(ws: ClientConnection, url: str, identity: Identity) -> bytes:
    """Read the CHALLENGE and build the AUTH a correct client would send."""
    _, challenge = await recv_frame(ws)
    assert isinstance(challenge, Challenge)
    signed = auth_message(challenge.nonce, origin_of(websocket_url(url)))
    auth = Auth(
        nonce=challenge.nonce, public_key=identity.public_key, signature=identity.sign(signed)
    )
    return encode_frame(auth, req=1)


@asynccontextmanager
async def raw_session(
    url: str, identity: Identity | None = None
) -> AsyncIterator[ClientConnection]:
    """A raw WebSocket; authenticated as `identity` when one is given."""
    async with connect(websocket_url(url), max_size=None, compression=None) as ws:
        if identity is not None:
            await ws.send(await raw_auth_frame(ws, url, identity))
            _, welcome = await recv_frame(ws)
            assert isinstance(welcome, Welcome)
        yield ws


def refusals(service: CentralService, code: CentralErrorCode) -> int:
    """How many ERRORs with `code` the service sent (``refused.<NAME>``, CEN-7.2)."""
    return service.counters.get_count(CentralCounter.REFUSED, code)


async def expect_error(ws: ClientConnection, code: CentralErrorCode, *, req: int = 0) -> None:
    got_req, frame = await recv_frame(ws)
    assert isinstance(frame, ErrorFrame), frame
    assert (frame.code, got_req) == (code, req), frame


async def expect_close(ws: ClientConnection, code: int) -> None:
    with anyio.fail_after(5), pytest.raises(ConnectionClosed):
        while True:
            await ws.recv()
    assert ws.close_code == code


# ------------------------------------------------------------ HTTP


async def test_health_and_metrics(tmp_path: Path) -> None:
    """CEN-1.2: /health is {"status": "ok", "time": server time}; CEN-7.2: /metrics is JSON."""
    clock = FakeClock()
    async with running_central(tmp_path, clock=clock) as (url, _):
        assert await get_json(url + "/health") == {"status": "ok", "time": clock.now}
        metrics = await get_json(url + "/metrics")
        assert metrics["sessions"] == 0
        assert metrics["mailbox_rows"] == 0
        assert metrics["counters"][CentralCounter.HTTP_HEALTH] == 1


# ------------------------------------------------------------ authentication


async def test_auth_binds_the_session_to_the_node_id(tmp_path: Path) -> None:
    """CEN-3.1, CEN-3.2, CEN-3.4: CHALLENGE, signed AUTH, WELCOME naming SHA-256(pk)."""
    async with running_central(tmp_path) as (url, service):
        async with connect_central(url, ALICE) as alice:
            assert alice.node_id == ALICE.node_id
            assert alice.rooms == frozenset()
            assert service.metrics_snapshot()["sessions"] == 1
        assert service.counters.get_count(CentralCounter.AUTH_OK) == 1


async def test_wrong_signature_is_refused_and_closed(tmp_path: Path) -> None:
    """CEN-3.2, CEN-6.3: a signature by another key, or over another origin, is BAD_SIGNATURE."""
    async with running_central(tmp_path) as (url, service):
        async with raw_session(url) as ws:
            _, challenge = await recv_frame(ws)
            assert isinstance(challenge, Challenge)
            signed = auth_message(challenge.nonce, origin_of(websocket_url(url)))
            forged = Auth(
                nonce=challenge.nonce, public_key=ALICE.public_key, signature=BOB.sign(signed)
            )
            await ws.send(encode_frame(forged, req=7))
            await expect_error(ws, CentralErrorCode.BAD_SIGNATURE, req=7)
            await expect_close(ws, close_code(CentralErrorCode.BAD_SIGNATURE))
        # A relayed challenge: the client signed the origin it dialled, not this service's.
        with pytest.raises(CentralError) as refused:
            async with connect_central(url, ALICE, origin="ws://127.0.0.9:443"):
                pass
        assert refused.value.code == CentralErrorCode.BAD_SIGNATURE
        assert refusals(service, CentralErrorCode.BAD_SIGNATURE) == 2
        assert service.counters.get_count(CentralCounter.AUTH_OK) == 0


async def test_small_order_key_is_refused(tmp_path: Path) -> None:
    """CEN-3.2: the AUTH key must pass ID-2.2 (BAD_KEY)."""
    async with running_central(tmp_path) as (url, _), raw_session(url) as ws:
        _, challenge = await recv_frame(ws)
        assert isinstance(challenge, Challenge)
        identity_point = bytes([1]) + bytes(31)  # y = 1: the neutral element
        bad = Auth(nonce=challenge.nonce, public_key=identity_point, signature=bytes(64))
        await ws.send(encode_frame(bad, req=1))
        await expect_error(ws, CentralErrorCode.BAD_KEY, req=1)
        await expect_close(ws, close_code(CentralErrorCode.BAD_KEY))


async def test_replayed_auth_is_refused(tmp_path: Path) -> None:
    """CEN-3.3: an AUTH captured on one connection fails on another (REPLAY), and on its own
    connection once used."""
    async with running_central(tmp_path) as (url, service):
        async with raw_session(url) as first:
            captured = await raw_auth_frame(first, url, ALICE)
            await first.send(captured)
            _, welcome = await recv_frame(first)
            assert isinstance(welcome, Welcome)
            await first.send(captured)  # the same nonce again on the same connection
            await expect_error(first, CentralErrorCode.REPLAY, req=1)
            async with raw_session(url) as second:
                await recv_frame(second)  # its own, different CHALLENGE
                await second.send(captured)
                await expect_error(second, CentralErrorCode.REPLAY, req=1)
                await expect_close(second, close_code(CentralErrorCode.REPLAY))
        assert refusals(service, CentralErrorCode.REPLAY) == 2
        assert service.counters.get_count(CentralCounter.AUTH_OK) == 1


async def test_frames_before_auth_are_refused(tmp_path: Path) -> None:
    """CEN-3.3: a SEND before AUTH is UNAUTHENTICATED, closes the socket, stores nothing."""
    async with running_central(tmp_path) as (url, service):
        async with raw_session(url) as ws:
            await recv_frame(ws)
            send = Send(room_id=ROOM, message_id=bytes(16), ttl=60, blob=b"x")
            await ws.send(encode_frame(send, req=3))
            await expect_error(ws, CentralErrorCode.UNAUTHENTICATED, req=3)
            await expect_close(ws, close_code(CentralErrorCode.UNAUTHENTICATED))
        async with raw_session(url) as ws:
            await recv_frame(ws)
            await ws.send(b"\xff\x00garbage")
            await expect_error(ws, CentralErrorCode.MALFORMED)
            await expect_close(ws, close_code(CentralErrorCode.MALFORMED))
        assert service.metrics_snapshot()["mailbox_rows"] == 0
        assert (
            service.counters.get_count(CentralCounter.REFUSED, CentralErrorCode.UNAUTHENTICATED)
            == 1
        )


async def test_auth_deadline(tmp_path: Path) -> None:
    """CEN-3.3: no AUTH within the deadline: ERROR AUTH_TIMEOUT and close."""
    async with running_central(tmp_path, auth_timeout=0.2) as (url, service):
        async with raw_session(url) as ws:
            _, challenge = await recv_frame(ws)
            assert isinstance(challenge, Challenge)
            assert challenge.auth_timeout_ms == 200
            await expect_error(ws, CentralErrorCode.AUTH_TIMEOUT)
            await expect_close(ws, close_code(CentralErrorCode.AUTH_TIMEOUT))
        assert refusals(service, CentralErrorCode.AUTH_TIMEOUT) == 1


# ------------------------------------------------------------ rooms and mailbox


async def test_send_and_deliver_between_two_members(tmp_path: Path) -> None:
    """CEN-4.1, CEN-4.3, CEN-4.4, CEN-4.5: an E2EE blob goes from one member to the other,
    byte for byte; the sender gets SENT, not its own message."""
    async with running_central(tmp_path) as (url, service):
        async with connect_central(url, ALICE) as alice, connect_central(url, BOB) as bob:
            await alice.join(ROOM, LOG)
            await bob.join(ROOM, LOG)
            blob, inner_id = seal_room_message(
                ALICE,
                room_id=ROOM,
                members=[ALICE.public_key, BOB.public_key],
                body=b"hello bob",
                sent_ms=1,
                random_bytes=os.urandom,
            )
            receipt = await alice.send(ROOM, blob, ttl=3600)
            delivery = await receive(bob)
            assert delivery.blob == blob
            assert delivery.room_id == ROOM
            assert delivery.message_id == receipt.message_id
            assert delivery.timestamp_ms == receipt.timestamp_ms
            assert delivery.ttl == 3600
            opened = open_room_message(BOB, delivery.blob, room_id=ROOM)
            assert (opened.body, opened.message_id) == (b"hello bob", inner_id)
            await nothing_more(alice)
        assert service.counters.get_count(CentralCounter.SEND_STORED) == 1
        assert service.counters.get_count(CentralCounter.MAILBOX_ROWS_WRITTEN) == 1


async def test_offline_member_receives_on_reconnect(tmp_path: Path) -> None:
    """CEN-4.1, CEN-4.5: membership outlives the connection; the mailbox is pushed after AUTH."""
    async with running_central(tmp_path) as (url, _):
        async with connect_central(url, BOB) as bob:
            await bob.join(ROOM, LOG)
        async with connect_central(url, ALICE) as alice:
            await alice.join(ROOM, LOG)
            first = await alice.send(ROOM, b"one")
            second = await alice.send(ROOM, b"two")
        async with connect_central(url, BOB) as bob:
            assert bob.rooms == frozenset({ROOM})
            got = [await receive(bob), await receive(bob)]
            assert [d.message_id for d in got] == [first.message_id, second.message_id]
            assert [d.blob for d in got] == [b"one", b"two"]
            assert got[0].seq < got[1].seq


async def test_ack_deletes_and_unacked_entries_come_again(tmp_path: Path) -> None:
    """CEN-4.5, CEN-4.6: an unACKed entry is pushed again on the next connection (the client
    drops the repeat when given the same seen set); an ACKed one is deleted for good."""
    async with running_central(tmp_path) as (url, service):
        async with connect_central(url, ALICE) as alice, connect_central(url, BOB) as bob:
            await alice.join(ROOM, LOG)
            await bob.join(ROOM, LOG)
            await alice.send(ROOM, b"payload")
            first = await receive(bob)
        async with connect_central(url, BOB) as bob:
            again = await receive(bob)
            assert again == first
        seen: set[int] = set()
        async with connect_central(url, BOB, seen_seqs=seen) as bob:
            await receive(bob)
        async with connect_central(url, BOB, seen_seqs=seen) as bob:
            await nothing_more(bob)
            assert bob.duplicates_dropped == 1
            assert await bob.ack([first.seq]) == 1
            assert await bob.ack([first.seq]) == 0
        assert service.metrics_snapshot()["mailbox_rows"] == 0
        async with connect_central(url, BOB) as bob:
            await nothing_more(bob)


async def test_ack_of_another_members_entry_deletes_nothing(tmp_path: Path) -> None:
    """CEN-4.6: a node can only delete its own mailbox entries."""
    async with (
        running_central(tmp_path) as (url, service),
        connect_central(url, ALICE) as alice,
        connect_central(url, BOB) as bob,
        connect_central(url, CAROL) as carol,
    ):
        for member in (alice, bob, carol):
            await member.join(ROOM, LOG)
        await alice.send(ROOM, b"for both")
        delivery = await receive(bob)
        assert await carol.ack([delivery.seq]) == 0
        assert service.metrics_snapshot()["mailbox_rows"] == 2


async def test_ttl_expiry_deletes_entries(tmp_path: Path) -> None:
    """CEN-4.7: an entry past its TTL is neither pushed nor kept (the sweep deletes it)."""
    clock = FakeClock()
    async with running_central(tmp_path, clock=clock, sweep_interval=0.05) as (url, service):
        async with connect_central(url, BOB) as bob:
            await bob.join(ROOM, LOG)
        async with connect_central(url, ALICE) as alice:
            await alice.join(ROOM, LOG)
            await alice.send(ROOM, b"short", ttl=2)
            await alice.send(ROOM, b"long", ttl=60)
        assert service.metrics_snapshot()["mailbox_rows"] == 2
        clock.now += 2.0
        with anyio.fail_after(5):
            while service.metrics_snapshot()["mailbox_rows"] != 1:
                await anyio.sleep(0.02)
        assert service.counters.get_count(CentralCounter.MAILBOX_EXPIRED) == 1
        async with connect_central(url, BOB) as bob:
            assert (await receive(bob)).blob == b"long"
            await nothing_more(bob)


async def test_resend_is_acknowledged_but_not_duplicated(tmp_path: Path) -> None:
    """CEN-4.3: the same (sender, message id) again gets SENT with the first timestamp and is
    neither stored nor delivered twice, even after the first copy was ACKed."""
    clock = FakeClock()
    async with running_central(tmp_path, clock=clock) as (url, service):
        async with connect_central(url, ALICE) as alice, connect_central(url, BOB) as bob:
            await alice.join(ROOM, LOG)
            await bob.join(ROOM, LOG)
            message_id = bytes(range(16))
            first = await alice.send(ROOM, b"once", message_id=message_id)
            clock.now += 5
            again = await alice.send(ROOM, b"once", message_id=message_id)
            assert again == first
            delivery = await receive(bob)
            await bob.ack([delivery.seq])
            clock.now += 5
            assert await alice.send(ROOM, b"once", message_id=message_id) == first
            await nothing_more(bob)
            # The same id from another sender is another envelope.
            await bob.send(ROOM, b"bob's", message_id=message_id)
            assert (await receive(alice)).blob == b"bob's"
        assert service.counters.get_count(CentralCounter.SEND_STORED) == 2
        assert service.counters.get_count(CentralCounter.SEND_DUPLICATE) == 2
        assert service.counters.get_count(CentralCounter.MAILBOX_ROWS_WRITTEN) == 2


async def test_join_needs_membership_by_the_rooms_log(tmp_path: Path) -> None:
    """ROOM-6.3, ROOM-2.4: JOIN by a node the log does not count (outsider with the real
    log, a log with no genesis for the room, a plain-name room) is NOT_MEMBER and changes
    nothing; a removal carried by a member's JOIN ends the removed member's membership:
    its SEND is refused and no mailbox row is written for it any more."""
    mallory = Identity.from_seed(bytes([9]) * 32)
    async with running_central(tmp_path) as (url, service):
        async with (
            connect_central(url, ALICE) as alice,
            connect_central(url, BOB) as bob,
            connect_central(url, CAROL) as carol,
            connect_central(url, mallory) as outsider,
        ):
            for member in (alice, bob, carol):
                await member.join(ROOM, LOG)
            other_room, other_log = room_log(mallory)
            for room, changes in ((ROOM, LOG), (ROOM, other_log), (b"general", other_log)):
                with pytest.raises(CentralError) as refused:
                    await outsider.join(room, changes)
                assert refused.value.name == "NOT_MEMBER"
            del other_room
            removal = sign_change(
                ALICE,
                room_id=ROOM,
                kind=ChangeKind.REMOVE,
                parents=[decode_change(LOG[-1]).hash],
                issued_ms=1_700_000_001_000,
                subject=CAROL.public_key,
            )
            await alice.join(ROOM, (*LOG, removal.encoded))
            with pytest.raises(CentralError) as refused:
                await carol.send(ROOM, b"still here?")
            assert refused.value.name == "NOT_MEMBER"
            await alice.send(ROOM, b"after the removal")
            assert (await receive(bob)).blob == b"after the removal"
            await nothing_more(carol)
            await nothing_more(outsider)
            with pytest.raises(CentralError):  # a JOIN cannot undo the removal
                await carol.join(ROOM, LOG)
        assert service.counters.get_count(CentralCounter.ROOM_CHANGES_ADDED) == len(LOG) + 1
        # three outsider JOINs, carol's SEND and her JOIN after the removal
        assert refusals(service, CentralErrorCode.NOT_MEMBER) == 5
        assert service.counters.get_count(CentralCounter.ROOM_CHANGES_REFUSED) >= 1


async def test_send_to_a_room_not_joined_is_refused(tmp_path: Path) -> None:
    """CEN-4.3: NOT_MEMBER, nothing stored, the session stays usable; CEN-4.2: after LEAVE
    the node is no longer a member and gets nothing more."""
    async with running_central(tmp_path) as (url, service):
        async with connect_central(url, ALICE) as alice, connect_central(url, BOB) as bob:
            await bob.join(ROOM, LOG)
            with pytest.raises(CentralError) as refused:
                await alice.send(ROOM, b"intruder")
            assert refused.value.code == CentralErrorCode.NOT_MEMBER
            assert refused.value.name == "NOT_MEMBER"
            assert service.metrics_snapshot()["mailbox_rows"] == 0
            await nothing_more(bob)
            await alice.join(ROOM, LOG)
            await bob.leave(ROOM)
            await alice.send(ROOM, b"to nobody")
            await nothing_more(bob)
            with pytest.raises(CentralError):
                await bob.send(ROOM, b"left already")
        assert service.metrics_snapshot()["mailbox_rows"] == 0
        assert refusals(service, CentralErrorCode.NOT_MEMBER) == 2
        async with connect_central(url, BOB) as bob:
            assert bob.rooms == frozenset()


async def test_every_session_of_a_node_gets_the_push(tmp_path: Path) -> None:
    """CEN-4.5: a node connected twice (two devices) gets the entry on both connections."""
    async with (
        running_central(tmp_path) as (url, _),
        connect_central(url, ALICE) as alice,
        connect_central(url, BOB) as bob_1,
        connect_central(url, BOB) as bob_2,
    ):
        await alice.join(ROOM, LOG)
        await bob_1.join(ROOM, LOG)
        await alice.send(ROOM, b"both devices")
        first, second = await receive(bob_1), await receive(bob_2)
        assert first == second


# ------------------------------------------------------------ bad input


async def test_malformed_frames_get_errors_and_others_are_served(tmp_path: Path) -> None:
    """CEN-2.1, CEN-2.2, CEN-6.1, CEN-6.3: garbage of every kind gets an ERROR (with the request
    id when readable); an oversized frame closes the connection; other clients never notice."""
    good_send = {0: ROOM, 1: bytes(16), 2: 60, 3: b"x"}
    cases: list[tuple[bytes | str, CentralErrorCode, int]] = [
        (os.urandom(64) + b"\xff", CentralErrorCode.MALFORMED, 0),
        ("a text frame", CentralErrorCode.MALFORMED, 0),
        (cbor.encode([1, 4, 9, {0: ROOM}]), CentralErrorCode.MALFORMED, 0),
        (cbor.encode({0: 1, 1: 4, 2: 9}), CentralErrorCode.MALFORMED, 0),
        (cbor.encode({0: 2, 1: 4, 2: 9, 3: {0: ROOM}}), CentralErrorCode.UNSUPPORTED_VERSION, 9),
        (cbor.encode({0: 1, 1: 99, 2: 9, 3: {}}), CentralErrorCode.UNKNOWN_TYPE, 9),
        (cbor.encode({0: 1, 1: 10, 2: 9, 3: {}}), CentralErrorCode.UNKNOWN_TYPE, 9),
        (cbor.encode({0: 1, 1: 4, 2: 9, 3: {0: "text"}}), CentralErrorCode.MALFORMED, 9),
        (cbor.encode({0: 1, 1: 4, 2: 9, 3: {0: bytes(65)}}), CentralErrorCode.MALFORMED, 9),
        (
            cbor.encode({0: 1, 1: 8, 2: 9, 3: {**good_send, 2: MAX_TTL + 1}}),
            CentralErrorCode.TTL_TOO_LONG,
            9,
        ),
        (cbor.encode({0: 1, 1: 8, 2: 9, 3: {**good_send, 2: 0}}), CentralErrorCode.MALFORMED, 9),
        (
            cbor.encode({0: 1, 1: 8, 2: 9, 3: {**good_send, 1: bytes(15)}}),
            CentralErrorCode.MALFORMED,
            9,
        ),
        (cbor.encode({0: 1, 1: 8, 2: 9, 3: {**good_send, 4: 0}}), CentralErrorCode.MALFORMED, 9),
        (cbor.encode({0: 1, 1: 11, 2: 9, 3: {0: []}}), CentralErrorCode.MALFORMED, 9),
        (cbor.encode({0: 1, 1: 11, 2: 9, 3: {0: [0]}}), CentralErrorCode.MALFORMED, 9),
        (
            cbor.encode({0: 1, 1: 8, 2: 9, 3: {**good_send, 3: bytes(MAX_FRAME_SIZE - 100)}}),
            CentralErrorCode.TOO_LARGE,
            9,
        ),
        (b"\xa1\x01\x00\x01", CentralErrorCode.MALFORMED, 0),  # non-canonical CBOR
    ]
    async with running_central(tmp_path, max_malformed=100) as (url, service):
        async with connect_central(url, ALICE) as alice, connect_central(url, BOB) as bob:
            await alice.join(ROOM, LOG)
            await bob.join(ROOM, LOG)
            async with raw_session(url, CAROL) as ws:
                for data, code, req in cases:
                    await ws.send(data)
                    await expect_error(ws, code, req=req)
                    receipt = await alice.send(ROOM, b"meanwhile")
                    assert (await receive(bob)).message_id == receipt.message_id
                await ws.send(encode_frame(Join(room_id=ROOM, changes=LOG), req=42))  # still served
                req, joined = await recv_frame(ws)
                assert (req, joined) == (42, Joined(room_id=ROOM))
                await ws.send(b"\x00" * (MAX_FRAME_SIZE + 1))
                await expect_error(ws, CentralErrorCode.TOO_LARGE)
                await expect_close(ws, close_code(CentralErrorCode.TOO_LARGE))
            async with raw_session(url, CAROL) as ws:  # beyond the transport limit: 1009
                await ws.send(b"\x00" * (5 * MAX_FRAME_SIZE))
                await expect_close(ws, 1009)
            await alice.send(ROOM, b"still fine")
            assert (await receive(bob)).blob == b"still fine"
        counters = service.counters
        assert counters.get_count(CentralCounter.REFUSED, CentralErrorCode.MALFORMED) == 12
        assert counters.get_count(CentralCounter.REFUSED, CentralErrorCode.TOO_LARGE) == 2
        assert counters.get_count(CentralCounter.REFUSED, CentralErrorCode.UNKNOWN_TYPE) == 2


async def test_too_many_malformed_frames_close_the_session(tmp_path: Path) -> None:
    """CEN-5.2: after `max_malformed` bad frames the session is closed."""
    async with (
        running_central(tmp_path, max_malformed=3) as (url, _),
        raw_session(url, ALICE) as ws,
    ):
        for _ in range(3):
            await ws.send(b"\xff")
            await expect_error(ws, CentralErrorCode.MALFORMED)
        await expect_close(ws, close_code(CentralErrorCode.MALFORMED))


async def test_rate_limit(tmp_path: Path) -> None:
    """CEN-5.1: past the burst, frames are refused RATE_LIMITED with a retry hint; nothing is
    stored for them."""
    async with running_central(tmp_path, rate=0.5, burst=3) as (url, service):
        async with connect_central(url, ALICE) as alice, connect_central(url, BOB) as bob:
            await bob.join(ROOM, LOG)
            await alice.join(ROOM, LOG)
            await alice.send(ROOM, b"1")
            await alice.send(ROOM, b"2")
            with pytest.raises(CentralError) as refused:
                await alice.send(ROOM, b"3")
            assert refused.value.code == CentralErrorCode.RATE_LIMITED
            assert 0 < refused.value.retry_after <= 2.0
            assert [(await receive(bob)).blob for _ in range(2)] == [b"1", b"2"]
            await nothing_more(bob)
        assert refusals(service, CentralErrorCode.RATE_LIMITED) == 1
        assert service.counters.get_count(CentralCounter.SEND_STORED) == 2


def test_token_bucket_refills_at_the_rate() -> None:
    """CEN-5.1: `rate` tokens per second, at most `burst`."""
    bucket = TokenBucket(rate=2.0, burst=2.0, now=0.0)
    assert bucket.take(now=0.0) == 0.0
    assert bucket.take(now=0.0) == 0.0
    assert bucket.take(now=0.0) == pytest.approx(0.5)
    assert bucket.take(now=0.5) == 0.0
    assert bucket.take(now=100.0) == 0.0
    assert bucket.take(now=100.0) == 0.0
    assert bucket.take(now=100.0) > 0


async def test_size_buckets_are_all_the_metrics_see(tmp_path: Path) -> None:
    """CEN-7.3: blob sizes are counted by bucket only."""
    async with running_central(tmp_path) as (url, _service):
        async with connect_central(url, ALICE) as alice:
            await alice.join(ROOM, LOG)
            for size in (1, 256, 257, 5000, 70000):
                await alice.send(ROOM, bytes(size))
        metrics = await get_json(url + "/metrics")
        buckets = {k: v for k, v in metrics["counters"].items() if k.startswith("send.bucket.")}
        assert buckets == {
            "send.bucket.256": 2,
            "send.bucket.4096": 1,
            "send.bucket.65536": 1,
            "send.bucket.81920": 1,
        }


# ------------------------------------------------------------ a central service returning garbage


@asynccontextmanager
async def fake_service(
    script: Any,
) -> AsyncIterator[str]:
    """A WebSocket server on 127.0.0.1 that runs `script(connection)` for each client."""
    async with serve(script, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/ws"


async def test_client_refuses_a_garbage_challenge() -> None:
    """CEN-2.1: a client refuses a service whose first frame is not a CHALLENGE."""

    async def script(connection: ServerConnection) -> None:
        await connection.send(b"\x13\x37 definitely not CBOR")
        await connection.wait_closed()

    async with fake_service(script) as url:
        with pytest.raises(RemoteProtocolError) as refused:
            async with connect_central(url, ALICE, timeout=3):
                pass
        assert refused.value.code == ErrorCode.MALFORMED


async def test_client_refuses_garbage_after_auth() -> None:
    """CEN-2.1, CEN-4.5: garbage after WELCOME fails every pending and later call clearly;
    nothing bogus is handed to the application."""

    async def script(connection: ServerConnection) -> None:
        challenge = Challenge(nonce=bytes(32), server_time_ms=0, auth_timeout_ms=1000)
        await connection.send(encode_frame(challenge))
        raw = await connection.recv()
        assert isinstance(raw, bytes)
        req = cbor.decode(raw)[2]
        welcome = Welcome(node_id=ALICE.node_id, server_time_ms=0, rooms=())
        await connection.send(encode_frame(welcome, req=req))
        await connection.recv()  # the JOIN: answer it with a DELIVER carrying its request id
        deliver = Deliver(
            room_id=ROOM, message_id=bytes(16), timestamp_ms=0, ttl=1, blob=b"x", seq=1
        )
        await connection.send(encode_frame(deliver, req=2))
        await connection.wait_closed()

    async with fake_service(script) as url, connect_central(url, ALICE, timeout=3) as alice:
        with pytest.raises(RemoteProtocolError) as refused:
            await alice.join(ROOM, LOG)
        assert refused.value.code == ErrorCode.UNEXPECTED_RESPONSE
        with pytest.raises(RemoteProtocolError):
            await alice.receive()
        with pytest.raises(RemoteProtocolError):
            await alice.send(ROOM, b"after the failure")


async def test_client_refuses_a_welcome_for_another_node() -> None:
    """CEN-3.4: WELCOME must name the client's own node id."""

    async def script(connection: ServerConnection) -> None:
        challenge = Challenge(nonce=bytes(32), server_time_ms=0, auth_timeout_ms=1000)
        await connection.send(encode_frame(challenge))
        await connection.recv()
        welcome = Welcome(node_id=BOB.node_id, server_time_ms=0, rooms=())
        await connection.send(encode_frame(welcome, req=1))
        await connection.wait_closed()

    async with fake_service(script) as url:
        with pytest.raises(RemoteProtocolError) as refused:
            async with connect_central(url, ALICE, timeout=3):
                pass
        assert refused.value.code == ErrorCode.WRONG_SENDER


async def test_client_refuses_what_is_not_a_websocket(tmp_path: Path) -> None:
    """CEN-1.1: a URL that does not upgrade to WebSocket is refused with a clear error."""
    async with running_central(tmp_path) as (url, _):
        with pytest.raises(RemoteProtocolError, match="not a central service WebSocket"):
            async with connect_central(url.replace("http://", "ws://") + "/health", ALICE):
                pass


async def test_connection_refused_is_an_os_error() -> None:
    """A service that is down: connect_central raises OSError (the failover trigger)."""
    with pytest.raises(OSError):
        async with connect_central("http://127.0.0.1:1", ALICE, timeout=3):
            pass


def test_client_urls() -> None:
    assert websocket_url("http://127.0.0.1:8080") == "ws://127.0.0.1:8080/ws"
    assert websocket_url("ws://127.0.0.1:8080/ws") == "ws://127.0.0.1:8080/ws"
    assert origin_of("ws://127.0.0.1:8080/ws") == "ws://127.0.0.1:8080"
    assert origin_of("ws://127.0.0.1/ws") == "ws://127.0.0.1:80"
    with pytest.raises(ValueError):
        websocket_url("ftp://127.0.0.1")


# ------------------------------------------------------------ the spec and the store


def _spec_table_after(anchor: str) -> list[list[str]]:
    """The body rows of the first Markdown table after `anchor` in paper/spec.md."""
    text = SPEC_PATH.read_text(encoding="utf-8")
    rows: list[list[str]] = []
    for line in text[text.index(anchor) :].splitlines()[1:]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            break
    return rows[2:]


def test_spec_tables_match_the_code() -> None:
    """CEN-2.3, CEN-6.2: the frame type and error code tables are the enums."""
    types = {name: int(number) for number, name, *_ in _spec_table_after("**CEN-2.3**")}
    assert types == {t.name: t.value for t in FrameType}
    codes = {name: int(code) for code, name, _ in _spec_table_after("**CEN-6.2**")}
    assert codes == {c.name: c.value for c in CentralErrorCode}
    for code in CentralErrorCode:
        if code < 100:
            assert ErrorCode(code.value).name == code.name


async def test_the_store_keeps_no_sender_in_clear(tmp_path: Path) -> None:
    """CEN-7.1: envelopes and mailbox rows hold no sender key or node id; the dedup key is
    the domain-separated hash; DELIVER names no sender."""
    async with running_central(tmp_path) as (url, _):
        async with connect_central(url, ALICE) as alice, connect_central(url, BOB) as bob:
            await alice.join(ROOM, LOG)
            await bob.join(ROOM, LOG)
            receipt = await alice.send(ROOM, b"who sent this?")
            delivery = await receive(bob)
        with sqlite3.connect(tmp_path / "central.sqlite3") as db:
            rows = db.execute("SELECT * FROM envelopes").fetchall()
            rows += db.execute("SELECT * FROM mailbox").fetchall()
            dedup = db.execute("SELECT dedup FROM envelopes").fetchone()[0]
        db.close()
    for row in rows:
        for value in row:
            if isinstance(value, bytes):
                assert ALICE.public_key not in value
                assert ALICE.node_id not in value
    assert dedup == dedup_key(ALICE.node_id, receipt.message_id)
    assert not hasattr(delivery, "sender")
    assert {f.name for f in dataclasses.fields(Deliver)} == {
        "room_id",
        "message_id",
        "timestamp_ms",
        "ttl",
        "blob",
        "seq",
    }


# ------------------------------------------------------------ the codec, fuzzed

_VALID_FRAMES: list[Any] = [
    Challenge(nonce=bytes(32), server_time_ms=5, auth_timeout_ms=5000),
    Auth(nonce=bytes(32), public_key=ALICE.public_key, signature=bytes(64)),
    Welcome(node_id=ALICE.node_id, server_time_ms=7, rooms=(ROOM, b"x")),
    Join(room_id=ROOM, changes=LOG),
    Joined(room_id=ROOM),
    Send(room_id=ROOM, message_id=bytes(16), ttl=MAX_TTL, blob=b"blob"),
    Deliver(room_id=ROOM, message_id=bytes(16), timestamp_ms=9, ttl=1, blob=b"b", seq=3),
    ErrorFrame(code=102, reason="not a member", retry_after_ms=0),
]


def _decode_any(data: bytes) -> None:
    for decode in (decode_client_frame, decode_server_frame):
        with suppress(RemoteProtocolError):
            decode(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=256))
def test_decoders_raise_only_remote_protocol_errors(data: bytes) -> None:
    """CEN-2.1: any bytes decode to a frame or raise RemoteProtocolError, nothing else."""
    _decode_any(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_VALID_FRAMES), st.integers(0, 2**64 - 1), st.data())
def test_frames_round_trip_and_mutations_are_refused_cleanly(
    frame: Any, req: int, data: st.DataObject
) -> None:
    """CEN-2.1, CEN-2.3: every frame round-trips with its request id; a flipped byte gives a
    frame or a RemoteProtocolError, never another exception."""
    encoded = encode_frame(frame, req=req)
    decode = decode_client_frame if frame.TYPE in (2, 4, 6, 8, 11) else decode_server_frame
    assert decode(encoded) == (req, frame)
    position = data.draw(st.integers(0, len(encoded) - 1))
    flipped = bytearray(encoded)
    flipped[position] ^= data.draw(st.integers(1, 255))
    _decode_any(bytes(flipped))


async def test_a_member_added_while_the_service_was_away_gets_entries_before_it_joins(
    tmp_path: Path,
) -> None:
    """CEN-4.8: alice and bob JOINed; alice then invites dave while the service is out of
    reach, dave accepts (over P2P). Once alice's JOIN tells the service of the change, bob's
    SEND writes an entry for dave too, which dave finds when it connects and JOINs; a SEND
    from before the service knew of dave is not his."""
    dave = Identity.from_seed(bytes([4]) * 32)
    core = RoomsCore(ALICE, random_bytes=os.urandom)
    room = core.create_room(name="test", now=1_700_000_000.0)
    for member in (BOB, dave):
        invitation = core.invite(room, member.public_key, now=1_700_000_000.0)
        joiner = RoomsCore(member, random_bytes=os.urandom)
        joiner.receive_invitation(invitation, now=1_700_000_000.0)
        joiner.accept(room, now=1_700_000_000.0)
        core.receive_changes(room, joiner.changes(room), now=1_700_000_000.0)
        if member is BOB:
            before_dave = core.changes(room)
    async with running_central(tmp_path) as (url, service):
        async with connect_central(url, ALICE) as alice, connect_central(url, BOB) as bob:
            await alice.join(room, before_dave)
            await bob.join(room, before_dave)
            await bob.send(room, b"before the service knew of dave")
            assert (await receive(alice)).blob == b"before the service knew of dave"
            await alice.join(room, core.changes(room))  # back after the outage
            await bob.send(room, b"for alice and dave")
            assert (await receive(alice)).blob == b"for alice and dave"
        async with connect_central(url, dave) as late:
            await late.join(room, core.changes(room))
            assert (await receive(late)).blob == b"for alice and dave"
            await nothing_more(late)
        assert service.counters.get_count(CentralCounter.MAILBOX_ROWS_WRITTEN) == 3
