"""The bootstrap peer cache (drivers/peer_cache.py) and RFC 2782 ordering of SRV records."""

import random
from collections import Counter
from pathlib import Path

from railgun_ref.bootstrap.manifest import AddressKind
from railgun_ref.bootstrap.race import Method
from railgun_ref.drivers.bootstrap_sources import (
    key_from_target,
    key_label,
    raw_cid,
    rfc2782_order,
)
from railgun_ref.drivers.peer_cache import (
    MAX_FAILURES,
    MAX_PEERS,
    SCHEMA,
    STALE_AFTER,
    PeerCache,
)
from railgun_ref.drivers.sqlite import MEMORY, Schema, open_database, schema_version

DAY = 86_400.0
T = 1_700_000_000.0


def key(n: int) -> bytes:
    return bytes([n]) * 32


def test_last_success_leads_then_fewest_failures(tmp_path: Path) -> None:
    path = tmp_path / "private" / "peers.db"
    cache = PeerCache(path)
    cache.record_success(key(1), "127.0.0.1:7001", now=T)
    cache.record_success(key(2), "127.0.0.1:7002", now=T + 1)
    cache.record_success(key(3), "127.0.0.1:7003", now=T + 2)
    cache.record_failure(key(2), now=T + 3)
    cache.close()
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    reopened = PeerCache(path)  # survives a restart
    candidates = reopened.candidates()
    assert [c.address for c in candidates] == ["127.0.0.1:7003", "127.0.0.1:7001", "127.0.0.1:7002"]
    assert [c.last_good for c in candidates] == [True, False, False]
    assert {c.method for c in candidates} == {Method.CACHED}
    reopened.close()


def test_a_month_old_cache_is_kept_but_failing_stale_peers_go() -> None:
    cache = PeerCache(MEMORY)
    cache.record_success(key(1), "127.0.0.1:7001", now=T)
    cache.record_success(key(2), "127.0.0.1:7002", now=T)
    later = T + 31 * DAY
    assert len(cache.peers()) == 2  # age alone never drops a peer
    for i in range(MAX_FAILURES):
        cache.record_failure(key(1), now=later + i)
    assert [p.public_key for p in cache.peers()] == [key(2)]
    assert later - T > STALE_AFTER
    # A peer failing but recently successful stays.
    cache.record_success(key(3), "127.0.0.1:7003", now=later)
    for i in range(MAX_FAILURES):
        cache.record_failure(key(3), now=later + i)
    assert key(3) in {p.public_key for p in cache.peers()}
    cache.record_success(key(3), "127.0.0.1:7004", now=later + 10)
    assert cache.peers()[0].failures == 0 and cache.peers()[0].address == "127.0.0.1:7004"
    cache.close()


def test_the_cache_is_bounded() -> None:
    cache = PeerCache(MEMORY)
    for n in range(MAX_PEERS + 5):
        cache.record_success(n.to_bytes(32, "big"), f"127.0.0.1:{1000 + n}", now=T + n)
    peers = cache.peers()
    assert len(peers) == MAX_PEERS
    assert peers[-1].address == "127.0.0.1:1005"  # the five oldest successes went
    cache.close()


def test_rfc2782_priority_first_then_weight() -> None:
    """BOOT-3.6: RFC 2782 order, priority first, weighted random within a priority."""
    records = [(10, 0, 1, "c"), (0, 90, 1, "a"), (0, 10, 1, "b"), (20, 0, 1, "d")]
    firsts: Counter[str] = Counter()
    rng = random.Random(1)
    for _ in range(400):
        ordered = rfc2782_order(records, rng)
        assert [r[0] for r in ordered] == [0, 0, 10, 20]
        firsts[ordered[0][3]] += 1
    assert firsts["a"] > 3 * firsts["b"] > 0  # weight 90 against 10


def test_target_labels_round_trip_and_garbage_is_none() -> None:
    """BOOT-3.6: the key is the base32 first label; anything else is no key."""
    assert key_from_target(f"{key_label(key(7))}.nodes.example.") == key(7)
    for garbage in (".", "x.example.", "a" * 52 + ".", "0" * 52 + ".example."):
        assert key_from_target(garbage) is None


def test_raw_cid_is_cidv1_base32() -> None:
    cid_text = raw_cid(b"hello")
    assert cid_text == "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"


def test_trust_state_survives_a_restart_and_never_goes_back(tmp_path: Path) -> None:
    """BOOT-1.5: the newest root and the highest manifest version are kept across restarts."""
    path = tmp_path / "peers.db"
    cache = PeerCache(path)
    assert (cache.manifest_version(), cache.root_document()) == (0, None)
    cache.record_manifest_version(4)
    cache.record_manifest_version(2)  # never lowers it
    cache.record_root(b"root-2")
    cache.close()
    again = PeerCache(path)
    assert (again.manifest_version(), again.root_document()) == (4, b"root-2")
    again.close()


ONION = "o" * 56 + ".onion:7000"
I2P_NAME = "i" * 52 + ".b32.i2p:7000"


def test_a_peer_is_kept_per_address_kind_and_raced_that_way() -> None:
    """BOOT-4.8: an onion or I2P winner is cached with its kind; the cache's candidates carry
    it, so the next race reaches them through the proxy or bridge, never as UDP."""
    cache = PeerCache(MEMORY)
    cache.record_success(key(1), "127.0.0.1:7001", now=T)
    cache.record_success(key(1), ONION, now=T + 1, kind=AddressKind.ONION)
    cache.record_success(key(2), I2P_NAME, now=T + 2, kind=AddressKind.I2P)
    kinds = {(p.public_key, p.kind): p.address for p in cache.peers()}
    assert kinds == {
        (key(1), AddressKind.UDP): "127.0.0.1:7001",
        (key(1), AddressKind.ONION): ONION,
        (key(2), AddressKind.I2P): I2P_NAME,
    }
    reached = {c.address: c.reached_by for c in cache.candidates()}
    assert reached == {
        "127.0.0.1:7001": AddressKind.UDP,
        ONION: AddressKind.ONION,
        I2P_NAME: AddressKind.I2P,
    }
    assert {c.method for c in cache.candidates()} == {Method.CACHED}
    cache.record_failure(key(1), now=T + 3, kind=AddressKind.ONION)  # only that address
    failures = {p.kind: p.failures for p in cache.peers() if p.public_key == key(1)}
    assert failures == {AddressKind.UDP: 0, AddressKind.ONION: 1}
    cache.close()


def test_a_version_2_cache_migrates_and_its_onion_rows_become_onion(tmp_path: Path) -> None:
    """Schema 2 stored every winner like a UDP address; opening it migrates to schema 3,
    classifying the rows kept by the form of their address, and keeps the trust state."""
    path = tmp_path / "peers.db"
    old = Schema(name="peer-cache", migrations=SCHEMA.migrations[:2])
    db = open_database(path, old)
    rows = [(key(1), "127.0.0.1:7001"), (key(2), ONION), (key(3), I2P_NAME.upper())]
    for public_key, address in rows:
        db.execute(
            "INSERT INTO bootstrap_peers (public_key, address, last_success) VALUES (?, ?, ?)",
            (public_key, address, T),
        )
    db.execute("UPDATE bootstrap_trust SET manifest_version = 7")
    db.close()
    cache = PeerCache(path)
    assert {p.public_key: p.kind for p in cache.peers()} == {
        key(1): AddressKind.UDP,
        key(2): AddressKind.ONION,
        key(3): AddressKind.I2P,
    }
    assert cache.manifest_version() == 7
    cache.close()
    check = open_database(path, SCHEMA)
    assert schema_version(check) == SCHEMA.version == 3
    check.close()
