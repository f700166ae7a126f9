"""Kademlia geometry, defined once (DHT-1.x).

* DHT-1.1: ids and keys are 256-bit strings, read as big-endian integers.
* DHT-1.2: ``distance(a, b) = a XOR b``.
* DHT-1.3: ``bucket_index(local, other) = distance.bit_length() - 1``: bucket
  *i* holds exactly the ids at distance ``2**i <= d < 2**(i+1)`` (lower bound
  inclusive, upper bound exclusive). Distance 0 (the local id itself) has no
  bucket.

Everything else (routing table, lookups, replication) calls these functions
and never re-derives a bound, so the off-by-one between "split" and "find"
that bit a popular Python Kademlia cannot happen here.
"""

from typing import Final

KEY_BITS: Final = 256
KEY_BYTES: Final = KEY_BITS // 8


def as_int(key: bytes) -> int:
    return int.from_bytes(key, "big")


def distance(a: bytes, b: bytes) -> int:
    """DHT-1.2: XOR distance between two 256-bit ids."""
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def bucket_index(local: bytes, other: bytes) -> int | None:
    """DHT-1.3: the k-bucket of `other` in `local`'s table; None for `local` itself."""
    d = distance(local, other)
    return d.bit_length() - 1 if d else None


def bucket_range(index: int) -> tuple[int, int]:
    """DHT-1.3: distances held by bucket `index`: ``[2**index, 2**(index+1))``."""
    if not 0 <= index < KEY_BITS:
        raise ValueError(f"bucket index must be in 0..{KEY_BITS - 1}")
    return 1 << index, 1 << (index + 1)


def id_at_distance(local: bytes, d: int) -> bytes:
    """The id whose distance from `local` is `d` (XOR is its own inverse)."""
    return (as_int(local) ^ d).to_bytes(KEY_BYTES, "big")
