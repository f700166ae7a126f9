"""Rendezvous ids, DHT keys, mailbox keys and epochs (SF-1.x), and holder placement (SF-3.2)."""

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from railgun_ref.capacity.selection import Candidate
from railgun_ref.capacity.types import DeviceCapabilities
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.dht.geometry import distance
from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.identity.keys import Identity
from railgun_ref.storeforward import choose_holders, rendezvous
from railgun_ref.storeforward.rendezvous import hkdf_sha256

from .sf import RECIPIENT, SECRET, T0


def test_hkdf_matches_rfc5869_test_case_1() -> None:
    """RFC 5869 appendix A.1."""
    okm = hkdf_sha256(
        ikm=bytes([0x0B]) * 22,
        salt=bytes(range(13)),
        info=bytes(range(0xF0, 0xFA)),
        length=42,
    )
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_rendezvous_id_is_the_spec_formula() -> None:
    """SF-1.2, SF-1.3: HKDF(room secret, salt, info || recipient || epoch); DHT key of type 3."""
    epoch = rendezvous.epoch_of(T0)
    prk = hmac.new(rendezvous.RENDEZVOUS_SALT, SECRET, hashlib.sha256).digest()
    info = rendezvous.RENDEZVOUS_INFO + RECIPIENT.node_id + epoch.to_bytes(8, "big")
    expected = hmac.new(prk, info + b"\x01", hashlib.sha256).digest()
    assert rendezvous.rendezvous_id(SECRET, RECIPIENT.node_id, epoch) == expected
    store_seed = hmac.new(
        hmac.new(rendezvous.STORE_KEY_SALT, expected, hashlib.sha256).digest(),
        rendezvous.STORE_KEY_INFO + b"\x01",
        hashlib.sha256,
    ).digest()
    store_key = Identity.from_seed(store_seed).public_key
    assert rendezvous.store_identity(expected).public_key == store_key
    assert rendezvous.rendezvous_key(SECRET, RECIPIENT.node_id, epoch) == derive_key(
        KeyType.RENDEZVOUS, store_key
    )


@given(st.integers(min_value=0, max_value=2**40), st.integers(min_value=1, max_value=30))
def test_keys_rotate_every_epoch(epoch: int, step: int) -> None:
    """SF-1.2: two epochs of one recipient, or two recipients, never share a key."""
    ids = {
        rendezvous.rendezvous_key(SECRET, RECIPIENT.node_id, epoch),
        rendezvous.rendezvous_key(SECRET, RECIPIENT.node_id, epoch + step),
        rendezvous.rendezvous_key(SECRET, NodeId(bytes(32)), epoch),
        rendezvous.rendezvous_key(SECRET + b"x", RECIPIENT.node_id, epoch),
    }
    assert len(ids) == 4


def test_epochs_and_pickup_window() -> None:
    """SF-1.1, SF-5.1: one-day epochs; a pickup covers every epoch a live message can be in."""
    assert rendezvous.epoch_of(86_400 * 5 - 0.001) == 4
    assert rendezvous.epoch_of(86_400 * 5) == 5
    epochs = rendezvous.pickup_epochs(T0, ttl=7 * 86_400)
    assert epochs[0] == rendezvous.epoch_of(T0) and len(epochs) == 8


def test_mailbox_key_is_the_recipients_alone() -> None:
    """SF-1.4: derived from the identity seed and the rendezvous id; differs per epoch."""
    rid = rendezvous.rendezvous_id(SECRET, RECIPIENT.node_id, 1)
    rid2 = rendezvous.rendezvous_id(SECRET, RECIPIENT.node_id, 2)
    a = rendezvous.mailbox_identity(RECIPIENT.seed, rid)
    assert a == rendezvous.mailbox_identity(RECIPIENT.seed, rid)
    assert a.public_key != rendezvous.mailbox_identity(RECIPIENT.seed, rid2).public_key
    assert a.public_key != RECIPIENT.public_key


@pytest.mark.parametrize(
    "call",
    [
        lambda: rendezvous.rendezvous_id(b"short", RECIPIENT.node_id, 1),
        lambda: rendezvous.rendezvous_id(SECRET, NodeId(b"x" * 31), 1),
        lambda: rendezvous.rendezvous_id(SECRET, RECIPIENT.node_id, -1),
        lambda: rendezvous.mailbox_identity(b"x", bytes(32)),
        lambda: rendezvous.epoch_of(-1.0),
    ],
)
def test_caller_errors(call: object) -> None:
    with pytest.raises(LocalProtocolError):
        call()  # type: ignore[operator]


def _caps(cls: str, store: bool = True, up: int = 2_000_000) -> DeviceCapabilities:
    return DeviceCapabilities.from_json(
        {
            "deviceClass": cls,
            "uploadBandwidth": up,
            "downloadBandwidth": up,
            "maxRelayConnections": 20,
            "maxRelayBandwidth": 1_000_000,
            "canActAsTurn": False,
            "canStoreMessages": store,
            "natType": "open",
            "availability": "always",
        }
    )


def test_placement_ranks_capacity_among_the_nearest_eligible() -> None:
    """SF-3.2: drop ineligible peers, keep the pool nearest the key, take the best k by score."""
    key = bytes(32)
    ids = [NodeId(bytes([0] * 31 + [i])) for i in range(1, 11)]  # nearer with smaller i
    candidates = [
        Candidate(node_id=ids[0], capabilities=_caps("desktop-standard", store=False)),
        Candidate(node_id=ids[1], capabilities=_caps("mobile-cellular")),
        *(Candidate(node_id=i, capabilities=_caps("desktop-standard")) for i in ids[2:9]),
        Candidate(node_id=ids[9], capabilities=_caps("server")),  # outside the pool of 6
    ]
    candidates[4] = Candidate(node_id=ids[4], capabilities=_caps("server"))
    with pytest.raises(LocalProtocolError):
        choose_holders(key, candidates, redundancy=0, candidate_pool=6)
    holders = choose_holders(key, candidates, redundancy=3, candidate_pool=6)
    assert holders[0] == ids[4]  # the server among the nearest wins
    assert holders == [ids[4], ids[2], ids[3]]  # then ties on score go by NodeId
    assert all(distance(h, key) < distance(ids[9], key) for h in holders)
