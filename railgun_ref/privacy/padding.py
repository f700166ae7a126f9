"""Padding of every frame an intermediary can see (PRIV-2, PRIV-3).

Theory of operation
===================

1. A *frame* (a P2P frame, a relay request, a store-and-forward request, a
   central-service control frame) is padded before it leaves the node with the
   ISO/IEC 7816-4 rule ROOM-1.4 uses for the inner message: one 0x80 byte,
   then zero bytes, up to the smallest bucket of `FRAME_BUCKETS` that holds the
   frame plus the marker (PRIV-2.1). An ACK, a PROBE, a receipt or a STATUS
   notice is thus as long as a short chat message: 256 bytes.
2. `unpad_frame` is the receiver's side: a length that is not a bucket, a
   missing marker or a non-zero byte after it is refused with MALFORMED
   (PRIV-2.2). It raises only `RemoteProtocolError`.
3. The E2EE blob carries one key wrap per member (ROOM-1.3), so its length
   would give the room size. The wrap table is filled with dummy wraps to the
   smallest size class of `WRAP_TABLE_SIZES` (PRIV-3.1); a dummy is a random
   8-byte tag and 48 random bytes, which no member's tag matches and which an
   observer cannot tell from a real wrap. Only the class (<= 8, 32, 128, 512
   members) remains, and after frame padding only when it moves the bucket.
4. Padmé (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and
   Communication with PURBs", PETS 2019) is the compared option: it leaks
   O(log log L) bits of a length L at <= 12 % overhead, where three fixed
   buckets leak < 2 bits at up to 256x overhead (`overhead_table`).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError

#: PRIV-2.1: the frame buckets (the room-message buckets of ROOM-1.4), bytes.
FRAME_BUCKETS: Final = (256, 4096, 65536)
#: PRIV-3.1: wrap-table size classes (wraps per E2EE blob).
WRAP_TABLE_SIZES: Final = (8, 32, 128, 512)
#: ROOM-1.3: bytes of one wrap: an 8-byte tag and a 48-byte crypto_box of a 32-byte key.
WRAP_TAG_SIZE: Final = 8
WRAP_BOX_SIZE: Final = 48
_MARKER: Final = 0x80


def frame_bucket(size: int) -> int:
    """PRIV-2.1: the smallest frame bucket that holds `size` bytes plus the 0x80 marker."""
    for bucket in FRAME_BUCKETS:
        if size + 1 <= bucket:
            return bucket
    raise LocalProtocolError(f"a frame of {size} bytes exceeds the largest bucket")


def pad_frame(frame: bytes) -> bytes:
    """PRIV-2.1: `frame`, then 0x80, then zeros up to its bucket."""
    bucket = frame_bucket(len(frame))
    return frame + bytes([_MARKER]) + bytes(bucket - len(frame) - 1)


def unpad_frame(padded: bytes) -> bytes:
    """PRIV-2.2: the frame inside a padded frame. Raises only `RemoteProtocolError`."""
    if len(padded) not in FRAME_BUCKETS:
        raise RemoteProtocolError(ErrorCode.MALFORMED, f"{len(padded)} bytes is not a bucket")
    end = padded.rstrip(b"\x00")
    if not end or end[-1] != _MARKER:
        raise RemoteProtocolError(ErrorCode.MALFORMED, "padding marker missing")
    return end[:-1]


def wrap_slots(members: int) -> int:
    """PRIV-3.1: the wrap-table size for a room of `members` members."""
    for slots in WRAP_TABLE_SIZES:
        if members <= slots:
            return slots
    raise LocalProtocolError(f"a room of {members} members exceeds the largest wrap table")


def padme_length(size: int) -> int:
    """Padmé: `size` rounded up so that only its top O(log log size) bits vary."""
    if size < 2:
        return size
    exponent = size.bit_length() - 1
    mantissa_bits = exponent.bit_length()
    mask = (1 << (exponent - mantissa_bits)) - 1
    return (size + mask) & ~mask


@dataclass(frozen=True, slots=True, kw_only=True)
class Overhead:
    """One row of the bucket-vs-Padmé comparison (sizes in bytes)."""

    size: int
    bucket: int
    bucket_overhead: float  #: (bucket - size) / size
    padme: int
    padme_overhead: float


def overhead_table(sizes: Iterable[int]) -> list[Overhead]:
    """The padded size of each frame size under the three buckets and under Padmé."""
    rows = []
    for size in sizes:
        bucket = frame_bucket(size)
        padme = padme_length(size + 1)  # + 1: the same 0x80 marker as the buckets
        rows.append(
            Overhead(
                size=size,
                bucket=bucket,
                bucket_overhead=(bucket - size) / size,
                padme=padme,
                padme_overhead=(padme - size) / size,
            )
        )
    return rows
