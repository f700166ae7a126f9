"""Capability advertisements: value, signed record, directory and schedule (CAP-3.x)."""

import pytest

from railgun_ref.capacity import (
    Advertiser,
    Availability,
    CapabilityDirectory,
    DeviceClass,
    NatType,
    capability_key,
    decode_capabilities,
    encode_capabilities,
    pick_advertisement,
    sign_advertisement,
    verify_advertisement,
)
from railgun_ref.capacity.advert import (
    DEFAULT_ADVERT_TTL,
    MAX_ADVERT_LIFETIME,
    MAX_ADVERT_TTL,
    MIN_REPUBLISH_INTERVAL,
    PublishAdvertisement,
)
from railgun_ref.core.contract import ProtocolCore
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.dht.records import MAX_VALUE_SIZE, sign_record
from railgun_ref.dht.storage import PutOutcome
from railgun_ref.identity.keys import Identity
from railgun_ref.wire import cbor

from .helpers import battery, caps

T = 1_700_000_000.0
T_MS = 1_700_000_000_000
ALICE = Identity.from_seed(bytes([1]) * 32)
MALLORY = Identity.from_seed(bytes([2]) * 32)


def advert(
    identity: Identity = ALICE, *, seq: int = T_MS, ttl_ms: int = 1_800_000, **changes: object
) -> bytes:
    return sign_advertisement(identity, caps(**changes), seq=seq, expires_ms=seq + ttl_ms).encode()


def test_value_layout() -> None:
    """CAP-3.1: version 1, keys 1..10 in the design's order, enums as the design's strings."""
    value = caps(battery_status=battery(42, plugged_in=True))
    body = cbor.decode(encode_capabilities(value))
    assert body == {
        0: 1,
        1: "desktop-standard",
        2: 1_250_000,
        3: 12_500_000,
        4: 20,
        5: 625_000,
        6: True,
        7: True,
        8: "open",
        9: {0: 42, 1: True},
        10: "always",
    }
    assert 9 not in cbor.decode(encode_capabilities(caps()))


def test_largest_value_fits_the_dht() -> None:
    """CAP-3.1: the longest strings and 2^53 - 1 everywhere give 102 bytes <= 256."""
    top = 2**53 - 1
    largest = caps(
        device_class=DeviceClass.DESKTOP_POWERFUL,
        upload_bandwidth=top,
        download_bandwidth=top,
        max_relay_connections=top,
        max_relay_bandwidth=top,
        nat_type=NatType.PORT_RESTRICTED,
        availability=Availability.WHEN_ACTIVE,
        battery_status=battery(100),
    )
    longest = max(len(encode_capabilities(caps(device_class=c))) for c in DeviceClass)
    assert len(encode_capabilities(largest)) == 102 <= MAX_VALUE_SIZE
    assert longest <= 102


@pytest.mark.parametrize("device_class", list(DeviceClass))
@pytest.mark.parametrize("nat", list(NatType))
def test_round_trip(device_class: DeviceClass, nat: NatType) -> None:
    """CAP-3.1, CAP-3.2: decode(encode(c)) == c for every class and NAT type."""
    value = caps(device_class=device_class, nat_type=nat, battery_status=battery(7))
    assert decode_capabilities(encode_capabilities(value)) == value


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", ErrorCode.MALFORMED),
        (cbor.encode(1), ErrorCode.MALFORMED),
        (cbor.encode({0: 2}), ErrorCode.UNSUPPORTED_VERSION),
        (cbor.encode({0: 1}), ErrorCode.MALFORMED),
        (cbor.encode({1: "server"}), ErrorCode.MALFORMED),
        (bytes(300), ErrorCode.TOO_LARGE),
    ],
)
def test_decode_refusals(data: bytes, code: ErrorCode) -> None:
    """CAP-3.2: the codes of a strict decoder."""
    with pytest.raises(RemoteProtocolError) as info:
        decode_capabilities(data)
    assert info.value.code is code


def test_record_round_trip_and_key() -> None:
    """CAP-3.3: a capability record with ident = own NodeId, stored under its capability key."""
    data = advert(battery_status=battery(64))
    got = verify_advertisement(data, now=T, node_id=ALICE.node_id)
    assert got.node_id == ALICE.node_id and got.seq == T_MS
    assert got.expires_at == T + 1800 and got.record == data
    assert got.capabilities == caps(battery_status=battery(64))
    assert capability_key(ALICE.node_id) == derive_key(KeyType.CAPABILITY, ALICE.node_id)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (advert(MALLORY), ErrorCode.WRONG_KEY),
        (advert(ttl_ms=0), ErrorCode.EXPIRED),
        (advert(ttl_ms=round(MAX_ADVERT_LIFETIME * 1000) + 1), ErrorCode.TTL_TOO_LONG),
        (b"\xa0", ErrorCode.MALFORMED),
    ],
)
def test_forged_and_stale_records_are_refused(data: bytes, code: ErrorCode) -> None:
    """CAP-3.5: another node's record, an expired one, one living over a day."""
    with pytest.raises(RemoteProtocolError) as info:
        verify_advertisement(data, now=T, node_id=ALICE.node_id)
    assert info.value.code is code


def test_a_peer_record_is_not_an_advertisement() -> None:
    """CAP-3.5: key type capability is required even when no node is named."""
    peer = sign_record(
        ALICE,
        key_type=KeyType.PEER,
        ident=ALICE.node_id,
        seq=1,
        expires_ms=T_MS + 60_000,
        value=encode_capabilities(caps()),
    ).encode()
    with pytest.raises(RemoteProtocolError) as info:
        verify_advertisement(peer, now=T)
    assert info.value.code is ErrorCode.WRONG_KEY


def test_pick_skips_bad_copies_and_takes_the_newest() -> None:
    """CAP-3.5, CAP-3.6: a forged or stale copy does not hide the genuine newest one."""
    old, new = advert(seq=T_MS - 1000), advert(seq=T_MS, nat_type=NatType.SYMMETRIC)
    forged = advert(MALLORY)
    got = pick_advertisement([forged, new, b"junk", old], now=T, node_id=ALICE.node_id)
    assert got is not None and got.seq == T_MS and got.capabilities.nat_type is NatType.SYMMETRIC
    assert pick_advertisement([forged], now=T, node_id=ALICE.node_id) is None


def test_directory_keeps_the_newest_per_node() -> None:
    """CAP-3.6: STORED, REPLACED, UNCHANGED, STALE_SEQUENCE, expiry."""
    directory = CapabilityDirectory()
    first, second = advert(seq=T_MS), advert(seq=T_MS + 1, ttl_ms=60_000)
    assert directory.offer(first, now=T) is PutOutcome.STORED
    assert directory.offer(second, now=T) is PutOutcome.REPLACED
    assert directory.offer(second, now=T) is PutOutcome.UNCHANGED
    for stale in (first, advert(seq=T_MS + 1, ttl_ms=60_000, can_act_as_turn=False)):
        with pytest.raises(RemoteProtocolError) as info:
            directory.offer(stale, now=T)
        assert info.value.code is ErrorCode.STALE_SEQUENCE
    other = advert(MALLORY, seq=T_MS + 7)
    directory.offer(other, now=T, node_id=MALLORY.node_id)
    assert len(directory) == 2 and directory.next_deadline() == T + 60.001
    assert [c.node_id for c in directory.candidates(now=T)] == sorted(
        [ALICE.node_id, MALLORY.node_id]
    )
    assert directory.expire(now=T + 61) == [ALICE.node_id]
    assert directory.get(ALICE.node_id, now=T + 61) is None
    assert directory.offer(first, now=T + 61) is PutOutcome.STORED  # expired: any seq again
    assert directory.get(MALLORY.node_id, now=T + 1800.007) is None


def poll(advertiser: Advertiser, *, now: float) -> PublishAdvertisement | None:
    """What a driver does at a deadline: run the timer, take the action."""
    advertiser.on_timer(now=now)
    return advertiser.next_action()


def test_advertiser_is_a_protocol_core() -> None:
    """CORE-1: the advertiser's one action is `PublishAdvertisement`."""
    core: ProtocolCore[PublishAdvertisement] = Advertiser()
    core.on_timer(now=T)
    assert core.next_action() is None and core.next_deadline() is None


def test_advertiser_publishes_refreshes_and_reacts() -> None:
    """CAP-3.3, CAP-3.4: at once, at half the TTL, early (>= 60 s apart) on a material change."""
    advertiser = Advertiser()
    assert poll(advertiser, now=T) is None and advertiser.next_deadline() is None
    advertiser.update(caps(), now=T)
    action = poll(advertiser, now=T)
    assert action is not None and action.ttl == DEFAULT_ADVERT_TTL == 1800
    assert action.key_type is KeyType.CAPABILITY
    assert decode_capabilities(action.value) == caps()
    assert poll(advertiser, now=T) is None
    assert advertiser.next_deadline() == T + 900

    # A battery drifting from 80 % to 79 % on mains changes neither score nor eligibility.
    advertiser.update(caps(battery_status=battery(79, plugged_in=True)), now=T + 10)
    assert advertiser.next_deadline() == T + 900
    # Unplugged: eligibility changes; published early, but not before 60 s.
    advertiser.update(caps(battery_status=battery(79)), now=T + 20)
    assert advertiser.next_deadline() == T + MIN_REPUBLISH_INTERVAL
    early = poll(advertiser, now=T + 60)
    assert early is not None and early.capabilities.battery_status == battery(79)
    assert advertiser.published == caps(battery_status=battery(79))
    assert advertiser.next_deadline() == T + 60 + 900
    refresh = poll(advertiser, now=T + 960)
    assert refresh is not None and refresh.capabilities == early.capabilities


def test_advertiser_checks_its_parameters() -> None:
    """CAP-3.3: a TTL over 24 h is refused."""
    with pytest.raises(LocalProtocolError):
        Advertiser(ttl=MAX_ADVERT_TTL + 1)
    with pytest.raises(LocalProtocolError):
        Advertiser(refresh_fraction=1.0)
    with pytest.raises(LocalProtocolError):
        Advertiser(ttl=100, min_interval=60)
    assert Advertiser(ttl=MAX_ADVERT_TTL).ttl == 86_400
