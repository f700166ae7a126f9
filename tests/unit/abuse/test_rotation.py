"""Key rotation (ROT): handovers, the tracker, room ROTATE changes, key files, the CLI."""

import contextlib
import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.drivers.keystore import (
    generation_path,
    load_keyring,
    load_or_create_identity,
    prune_retired,
    rotate_identity,
)
from railgun_ref.identity.e2ee import open_room_message, seal_room_message
from railgun_ref.identity.keyfile import KeyFileError, dump_identity
from railgun_ref.identity.keys import Identity
from railgun_ref.identity.rotation import (
    MAX_HANDOVER,
    RotationCounter,
    RotationError,
    RotationLearned,
    RotationRefusal,
    RotationTracker,
    decode_handover,
    sign_handover,
)
from railgun_ref.rooms.changes import Change, ChangeKind, Role, decode_change, sign_change
from railgun_ref.rooms.log import Refusal, resolve
from railgun_ref.wire import cbor

T0_MS = 1_700_000_000_000
DAY_MS = 86_400_000


def ident(name: str) -> Identity:
    return Identity.from_seed(hashlib.sha256(name.encode()).digest())


OLD, NEW, OTHER = ident("old"), ident("new"), ident("other")


def handover(old: Identity = OLD, new: Identity = NEW, days: int = 7) -> bytes:
    return sign_handover(
        old, new, generation=1, issued_ms=T0_MS, expires_ms=T0_MS + days * DAY_MS
    ).encoded


def resigned(data: bytes, *, old: Identity, new: Identity) -> bytes:
    """`data`'s body signed by `old` (as the old key) and `new` (as the new key)."""
    from railgun_ref.identity.rotation import NEW_DOMAIN, OLD_DOMAIN  # noqa: PLC0415

    value = cbor.decode(data)
    assert isinstance(value, dict)
    body = cbor.encode({k: value[k] for k in range(6)})
    value[6], value[7] = old.sign(OLD_DOMAIN + body), new.sign(NEW_DOMAIN + body)
    return cbor.encode(value)


def test_a_handover_verifies_and_names_both_ids() -> None:
    """ROT-1.1, ROT-2.1: the new node id is the new key's."""
    parsed = decode_handover(handover(), now_ms=T0_MS)
    assert (parsed.old_id, parsed.new_id) == (OLD.node_id, NEW.node_id)
    assert len(parsed.encoded) <= 256


@pytest.mark.parametrize(
    ("data", "refusal", "code"),
    [
        (
            resigned(handover(), old=OTHER, new=NEW),
            RotationRefusal.BAD_OLD_SIGNATURE,
            ErrorCode.BAD_SIGNATURE,
        ),
        (
            resigned(handover(), old=OLD, new=OTHER),
            RotationRefusal.BAD_NEW_SIGNATURE,
            ErrorCode.BAD_SIGNATURE,
        ),
        (b"\xa0", RotationRefusal.MALFORMED, ErrorCode.MALFORMED),
        (b"\xff\x00", RotationRefusal.MALFORMED, ErrorCode.MALFORMED),
    ],
    ids=["signed-by-wrong-old-key", "signed-by-wrong-new-key", "empty-map", "not-cbor"],
)
def test_wrongly_signed_or_malformed_handovers_are_refused(
    data: bytes, refusal: RotationRefusal, code: ErrorCode
) -> None:
    """ROT-3.1: typed error and a counter per refusal."""
    tracker = RotationTracker()
    with pytest.raises(RotationError) as info:
        tracker.accept(data, now=T0_MS / 1000)
    assert (info.value.refusal, info.value.code) == (refusal, code)
    assert tracker.counters.get_count(RotationCounter.REFUSED, refusal) == 1
    assert tracker.next_action() is None


def test_expected_old_key_and_expiry_and_length() -> None:
    """ROT-3.1: a handover retiring another key, an expired one, one over 30 days."""
    with pytest.raises(RotationError) as info:
        decode_handover(handover(), now_ms=T0_MS, expected_old=OTHER.public_key)
    assert info.value.code is ErrorCode.WRONG_SENDER
    with pytest.raises(RotationError) as info:
        decode_handover(handover(), now_ms=T0_MS + 7 * DAY_MS)
    assert info.value.refusal is RotationRefusal.EXPIRED
    with pytest.raises(LocalProtocolError):
        sign_handover(OLD, NEW, generation=1, issued_ms=T0_MS, expires_ms=T0_MS + MAX_HANDOVER + 1)


def test_the_tracker_follows_rotations_refuses_forks_and_forgets_at_expiry() -> None:
    """ROT-3.2, ROT-4.1, ROT-4.2."""
    tracker = RotationTracker()
    now = T0_MS / 1000
    tracker.accept(handover(), now=now)
    tracker.accept(handover(), now=now)  # the same handover again: no-op
    learned = tracker.next_action()
    assert isinstance(learned, RotationLearned)
    assert (learned.old_id, learned.new_id) == (OLD.node_id, NEW.node_id)
    assert tracker.next_action() is None
    second = sign_handover(
        NEW, OTHER, generation=2, issued_ms=T0_MS, expires_ms=T0_MS + 2 * DAY_MS
    ).encoded
    tracker.accept(second, now=now)
    assert tracker.current_id(OLD.node_id) == OTHER.node_id
    assert tracker.is_retired(OLD.public_key) and not tracker.is_retired(OTHER.public_key)
    with pytest.raises(RotationError) as info:
        tracker.accept(handover(OLD, OTHER), now=now)
    assert info.value.refusal is RotationRefusal.FORK
    assert tracker.next_deadline() == (T0_MS + 2 * DAY_MS) / 1000
    tracker.on_timer(now=(T0_MS + 2 * DAY_MS) / 1000)
    assert tracker.current_id(OLD.node_id) == NEW.node_id
    assert tracker.counters.get_count(RotationCounter.EXPIRED) == 1


# ------------------------------------------------------------------ rooms (ROOM-3.9)

ROOM = bytes(range(32))


def _room_with_member() -> tuple[list[Change], bytes]:
    creator = ident("creator")
    genesis = sign_change(
        creator, room_id=ROOM, kind=ChangeKind.CREATE, parents=(), issued_ms=T0_MS
    )
    add = sign_change(
        creator,
        room_id=ROOM,
        kind=ChangeKind.ADD,
        parents=[genesis.hash],
        issued_ms=T0_MS + 1,
        subject=OLD.public_key,
        expires_ms=T0_MS + DAY_MS,
    )
    accept = sign_change(
        OLD,
        room_id=ROOM,
        kind=ChangeKind.ACCEPT,
        parents=[add.hash],
        issued_ms=T0_MS + 2,
        invitation=add.hash,
    )
    return [genesis, add, accept], accept.hash


def test_a_rotate_change_moves_membership_to_the_new_key() -> None:
    """ROOM-3.9: the member continues under its new key; wraps go to the new key."""
    changes, head = _room_with_member()
    rotate = sign_change(
        OLD,
        room_id=ROOM,
        kind=ChangeKind.ROTATE,
        parents=[head],
        issued_ms=T0_MS + 3,
        cosigner=NEW,
    )
    assert decode_change(rotate.encoded) == rotate
    membership = resolve(changes[0], {c.hash: c for c in [*changes, rotate]})
    assert NEW.public_key in membership.members and OLD.public_key not in membership.members
    assert membership.members[NEW.public_key] is Role.MEMBER
    blob, _ = seal_room_message(
        ident("creator"),
        room_id=ROOM,
        members=membership.member_keys(),
        body=b"hi",
        sent_ms=T0_MS + 4,
        random_bytes=_bytes("seal"),
    )
    assert open_room_message(NEW, blob, room_id=ROOM).body == b"hi"
    with pytest.raises(RemoteProtocolError):  # the old key has no wrap any more
        open_room_message(OLD, blob, room_id=ROOM)


def test_a_rotate_needs_the_new_keys_consent_and_old_key_changes_after_it_do_not_count() -> None:
    """ROOM-3.9: a co-signature by another key is refused; a concurrent change by the
    retired key does not count."""
    changes, head = _room_with_member()
    rotate = sign_change(
        OLD,
        room_id=ROOM,
        kind=ChangeKind.ROTATE,
        parents=[head],
        issued_ms=T0_MS + 3,
        cosigner=NEW,
    )
    value = cbor.decode(rotate.encoded)
    value[11] = OTHER.sign(
        b"railgun/v1/room-change-cosign\x00" + cbor.encode({k: value[k] for k in range(10)})
    )
    with pytest.raises(RemoteProtocolError) as info:
        decode_change(cbor.encode(value))
    assert info.value.code is ErrorCode.BAD_SIGNATURE
    late = sign_change(
        OLD,
        room_id=ROOM,
        kind=ChangeKind.ADD,
        parents=[head],
        issued_ms=T0_MS + 4,
        subject=OTHER.public_key,
        expires_ms=T0_MS + DAY_MS,
    )
    membership = resolve(changes[0], {c.hash: c for c in [*changes, rotate, late]})
    assert membership.refused[late.hash] is Refusal.REMOVED_CONCURRENTLY
    assert OTHER.public_key not in membership.invited


# ------------------------------------------------------------------ key files (ID-3.3, ROT-5)


def _bytes(label: str) -> Callable[[int], bytes]:
    counter = iter(range(10**6))
    return lambda n: hashlib.sha256(f"{label}/{next(counter)}".encode()).digest()[:n]


def test_rotation_never_overwrites_and_prunes_only_after_expiry(tmp_path: Path) -> None:
    """ID-3.3, ROT-5.1, ROT-5.2."""
    path = tmp_path / "node.key"
    first = load_or_create_identity(path, _bytes("a"))
    before = path.read_bytes()
    new, done = rotate_identity(path, _bytes("b"), now=T0_MS / 1000, handover_seconds=3600)
    assert path.read_bytes() == before
    assert done.old_key == first.public_key and done.new_key == new.public_key
    assert load_or_create_identity(path) == new
    assert os.stat(generation_path(path, 1)).st_mode & 0o777 == 0o600
    assert prune_retired(path, now=T0_MS / 1000 + 3599) == []
    assert prune_retired(path, now=T0_MS / 1000 + 3600) == [path]
    assert load_or_create_identity(path) == new  # gen 0 gone: still the rotated identity
    assert [g.generation for g in load_keyring(path).generations] == [1]


def test_a_generation_file_that_does_not_link_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    load_or_create_identity(path, _bytes("a"))
    rotate_identity(path, _bytes("b"), now=T0_MS / 1000)
    path.unlink()
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.write(fd, dump_identity(OTHER))  # a generation 0 other than the one .1 names
    os.close(fd)
    with pytest.raises(KeyFileError, match="not from generation 0"):
        load_keyring(path)


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "railgun_ref.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_rotate_and_show(tmp_path: Path) -> None:
    """ROT-5.1: `railgun-ref identity rotate`; user mistakes exit 2 with one line."""
    path = tmp_path / "node.key"
    missing = _cli("identity", "rotate", "--identity", str(path))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    old = load_or_create_identity(path)
    done = _cli("identity", "rotate", "--identity", str(path))
    assert done.returncode == 0, done.stderr
    assert f"old node id {old.node_id.hex()}" in done.stdout
    new = load_or_create_identity(path)
    assert f"new node id {new.node_id.hex()}" in done.stdout
    shown = _cli("identity", "show", "--identity", str(path))
    assert [line.split()[:2] for line in shown.stdout.splitlines()] == [
        ["0", old.node_id.hex()],
        ["1", new.node_id.hex()],
    ]
    too_long = _cli("identity", "rotate", "--identity", str(path), "--handover-days", "31")
    assert too_long.returncode == 2 and "at most 30" in too_long.stderr
    generation_path(path, 1).write_text("railgun-identity-v2 1 zz zz\n")
    broken = _cli("identity", "show", "--identity", str(path))
    assert broken.returncode == 2 and "Traceback" not in broken.stderr


# ------------------------------------------------------------------ forwarding records (ROT-2.2)


def test_the_old_id_forwards_to_the_new_one_and_retired_keys_publish_nothing_else() -> None:
    """ROT-2.2: the forwarding record verifies as a DHT record, names the new id, expires with
    the handover; other records of the retired key are refused once the rotation is known."""
    from railgun_ref.abuse.forwarding import (  # noqa: PLC0415
        check_publisher,
        forwarding_record,
        read_forwarding,
    )
    from railgun_ref.dht.keys import KeyType  # noqa: PLC0415
    from railgun_ref.dht.records import check_record, sign_record  # noqa: PLC0415

    now = T0_MS / 1000
    parsed = decode_handover(handover(days=3), now_ms=T0_MS)
    record = forwarding_record(OLD, parsed, seq=1, now=now)
    check_record(record, now=now)
    assert record.expires_ms == parsed.expires_ms
    found = read_forwarding(record, now=now)
    assert found is not None and found.new_id == NEW.node_id
    tracker = RotationTracker()
    tracker.accept(found.encoded, now=now)
    check_publisher(record, tracker, now=now)
    advert = sign_record(
        OLD,
        key_type=KeyType.CAPABILITY,
        ident=OLD.node_id,
        seq=2,
        expires_ms=T0_MS + DAY_MS,
        value=b"caps",
    )
    with pytest.raises(RemoteProtocolError) as info:
        check_publisher(advert, tracker, now=now)
    assert info.value.code is ErrorCode.FORBIDDEN
    fresh = sign_record(
        NEW,
        key_type=KeyType.CAPABILITY,
        ident=NEW.node_id,
        seq=1,
        expires_ms=T0_MS + DAY_MS,
        value=b"caps",
    )
    check_publisher(fresh, tracker, now=now)
    plain = sign_record(
        OTHER,
        key_type=KeyType.PEER,
        ident=OTHER.node_id,
        seq=1,
        expires_ms=T0_MS + DAY_MS,
        value=b"\x01",
    )
    assert read_forwarding(plain, now=now) is None
    stolen = sign_record(
        OTHER,
        key_type=KeyType.PEER,
        ident=OTHER.node_id,
        seq=1,
        expires_ms=T0_MS + DAY_MS,
        value=parsed.encoded,
    )
    with pytest.raises(RotationError) as refused:
        read_forwarding(stolen, now=now)
    assert refused.value.refusal is RotationRefusal.WRONG_OLD_KEY


@given(st.binary(max_size=300))
def test_handover_decoder_raises_only_rotation_errors(data: bytes) -> None:
    """ROT-1.1: any bytes parse or raise RotationError (a RemoteProtocolError)."""
    with contextlib.suppress(RotationError):
        decode_handover(data, now_ms=T0_MS)


@given(st.integers(min_value=0, max_value=20), st.binary(min_size=1, max_size=8))
def test_handover_mutations_are_refused(position: int, garbage: bytes) -> None:
    """ROT-1.2: a handover changed anywhere no longer verifies (or no longer parses)."""
    good = handover()
    index = len(good) - 1 - position * 7 % len(good)
    mutated = good[:index] + bytes([good[index] ^ garbage[0] or 1]) + good[index + 1 :]
    if mutated == good:
        return
    with pytest.raises(RotationError):
        decode_handover(mutated, now_ms=T0_MS)


def test_a_member_rotates_in_every_room_and_the_others_follow() -> None:
    """ROOM-3.9, ROT-2.2: RoomsCore.rotate_key signs a ROTATE per room; the other members
    then wrap new messages to the new key only, and the rotated node reads them."""
    from railgun_ref.rooms import RoomState  # noqa: PLC0415
    from unit.rooms.helpers import room_of  # noqa: PLC0415

    now = T0_MS / 1000
    net, room_id = room_of(["alice", "bob", "carol"], now=now)
    bob = net.cores["bob"]
    old = bob.identity
    old_key = old.public_key
    new = ident("bob-generation-1")
    assert bob.rotate_key(new, now=now + 1) == (room_id,)
    net.by_key[new.public_key] = "bob"
    net.pump(now=now + 1)
    for name in ("alice", "carol", "bob"):
        members = net.cores[name].members(room_id)
        assert new.public_key in members and old_key not in members
    assert bob.state(room_id) is RoomState.MEMBER
    blob, _ = seal_room_message(
        net.cores["alice"].identity,
        room_id=room_id,
        members=net.cores["alice"].members(room_id),
        body=b"after the rotation",
        sent_ms=T0_MS + 2000,
        random_bytes=_bytes("after"),
    )
    assert open_room_message(new, blob, room_id=room_id).body == b"after the rotation"
    with pytest.raises(RemoteProtocolError):
        open_room_message(old, blob, room_id=room_id)
    with pytest.raises(LocalProtocolError):
        bob.rotate_key(new, now=now + 2)
