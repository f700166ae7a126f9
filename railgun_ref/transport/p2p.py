"""The P2P path of the hybrid transport: room delivery between peers (HT-6.x).

One `P2PRoomCore` per client. It keeps, for every room the client joined,
the members it learned from the DHT (`find_room_peers` records whose value
is a room announcement, HT-6.1), and delivers end-to-end encrypted blobs to
them over the node's application channel (APP messages on `config.topic`).
It is sans-IO: inputs carry `now`; outputs are pulled with `next_action()`;
`next_deadline()` / `on_timer(now=)` drive retries and probes.

Theory of operation:

* **Jobs.** Every (message id, member) still to deliver is a *job*. A job
  sends the ROOM frame straight to the member's announced address, with
  exponential backoff, until the member's signed *receipt* comes back
  (HT-6.3), the message expires, or `max_attempts` is used up (the job
  stalls; the HybridTransportService's periodic re-send revives it).
* **Receipts.** A member acknowledges a message with an ACK frame holding
  its Ed25519 signature over the room id and message id (HT-6.3). Because a
  receipt is signed by the member itself, it can travel back through
  bridges and still prove delivery; `Acked` feeds
  `HybridTransportService.p2p_acked`.
* **Bridges** (HT-6.5). When a member does not answer directly (its probes
  fail, or `relay_after` direct attempts went unacknowledged), the sender
  asks up to `max_bridges` members it *can* reach to relay: the same ROOM
  frame with ``relay_to`` naming only the members the sender could not
  reach, and a hop budget. A bridge delivers the message to itself, then
  runs its own jobs for those members (dedup per (message, member), so a
  message is relayed at most once per bridge and target), forwards their
  receipts upstream, and, while the hop budget lasts, may itself ask
  bridges. A partitioned room with a few bridge peers thus gets eventual
  delivery, and the traffic stays bounded by members × bridges × hops.
* **Reachability** (HT-6.4). Every member is probed each `probe_interval`;
  any valid frame from it counts as an answer. A member is *reachable* once
  it answered and fewer than `probe_failures` probes in a row timed out,
  *unreachable* after that many. The room's reach (all / some / none) goes
  to `HybridTransportService.reachability`; `some` gives `degraded`. A member
  unreachable directly counts as reached through the committee when one of
  its rooms has a committee relay other than itself: reach `some` (RLY-7.4).
* **Closed rooms** (ROOM-6.1). A room joined with a `ClosedRoom` is looked
  up and announced under the DHT ident derived from its secret, its
  announcement carries the proof of the secret (ROOM-6.2), and only
  publishers whose Ed25519 key is in its member list (the rooms core's log,
  `set_members`) become its peers: records of anyone else are refused and
  counted, and a member removed from the list stops being a peer at once,
  so no job, relay or probe targets it any more. A room joined without one
  (the simulator, whose scenario fixes the membership) is open.
* **Large messages** (HT-7.1, HT-7.2). A ROOM frame over one APP message
  (a body in the 64 KiB padding bucket) goes as PART frames of
  `PART_SIZE` bytes; the receiver reassembles per (sender, message id),
  at most `max_reassemblies` at once, each for `reassembly_timeout`, then
  handles the whole as a ROOM frame. Bridges pass parts on the same way.
* **Per-client blocking** (HT-7.3, HT-7.4). A client cut off from the
  central service (`set_central_reachable(False)`) tells its rooms so in
  signed STATUS frames, repeated every `status_interval`. A member whose
  message the central service took (`settled_centrally`) keeps its P2P jobs
  for those members only, and delivers its messages of the last
  `recent_window` to a member whose notice arrives later.
* **Capacity** (HT-7.5, HT-7.6). Bridges are ranked by the capacity their
  advertisements give (`set_capacity`), not by when they were last heard;
  a bridge's relay jobs draw on the device's `SharingBudget` (CAP-7).
* **Strict decoding.** Frames are deterministic CBOR maps decoded by
  `decode_frame`, which raises only `RemoteProtocolError`; `receive` counts
  each refusal under `P2PCounter.REJECTED` (label: its code) and never raises for peer input.
"""

import dataclasses
import hashlib
import heapq
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, IntEnum, StrEnum
from typing import Any, Final

from railgun_ref.abuse.admission import MAX_POW_TRIES, SolvePow
from railgun_ref.capacity.budget import Duty, SharingBudget
from railgun_ref.capacity.scoring import score
from railgun_ref.capacity.selection import Role, is_eligible
from railgun_ref.capacity.sharing import Granted
from railgun_ref.capacity.types import DeviceCapabilities
from railgun_ref.core.constants import APP_TOPIC_RELAY, APP_TOPIC_ROOM
from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId, parse_node_id
from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.dht.records import decode_record
from railgun_ref.identity.keys import Identity, node_id_of, verify
from railgun_ref.privacy.padding import pad_frame, unpad_frame
from railgun_ref.rooms.announce import check_announcement_proof
from railgun_ref.transport.state import Reach
from railgun_ref.wire import cbor
from railgun_ref.wire.pow import DEFAULT_MAX_EFFORT, NONCE_SIZE, PowSolution
from railgun_ref.wire.relay import (
    MAX_RELAY_BLOB,
    RelayFrame,
    decode_busy_frame,
    encode_relay_frame,
)

#: HT-6.2: the P2P room frames' format version.
P2P_VERSION: Final = 1
#: HT-6.3: domain of a member's delivery receipt signature.
RECEIPT_DOMAIN: Final = b"railgun/v1/room-receipt\x00"
#: HT-7.3: domain of a member's signed central-status notice.
STATUS_DOMAIN: Final = b"railgun/v1/central-status\x00"
#: HT-7.3: a status notice is believed at most this long after it arrives, seconds.
MAX_STATUS_TTL: Final = 600.0
#: HT-6.1: domain-separating tag of a room announcement value.
ANNOUNCEMENT_VERSION: Final = 1
#: HT-6.2: room ids are 1..64 bytes (as on the central path, CEN-2).
MAX_ROOM_ID_SIZE: Final = 64
#: HT-6.2: message ids are 16 bytes (ROOM-1.2).
MESSAGE_ID_SIZE: Final = 16
#: HT-6.5: the largest hop budget a frame may carry.
MAX_HOPS: Final = 8
#: HT-6.2: at most this many members in one relay request or receipts in one ACK.
MAX_LIST: Final = 256
#: HT-6.2: a message id is remembered at most this long (the default 7-day TTL, HT-5.1), seconds.
MAX_MESSAGE_TTL: Final = 7 * 24 * 3600.0
#: An APP payload is at most 64 KiB (APP-1.2); a ROOM frame must fit in one.
MAX_FRAME_SIZE: Final = 65536
#: HT-7.1: a blob whose ROOM frame would not fit one APP message goes in parts of this size.
PART_SIZE: Final = 49152
#: HT-7.1: the largest blob the P2P path carries (in parts), bytes.
MAX_BLOB_SIZE: Final = 262144
_SIGNATURE_SIZE: Final = 64


class FrameType(IntEnum):
    """HT-6.2: the P2P room frame types."""

    ROOM = 1  #: a room message (possibly a relay request)
    ACK = 2  #: signed delivery receipts
    PROBE = 3  #: are you there?
    PROBE_ACK = 4  #: yes
    PART = 5  #: one part of a room message too large for one frame (HT-7.1)
    STATUS = 6  #: a member's signed notice that it is off (or back on) central (HT-7.3)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomFrame:
    """HT-6.2: ``{0: 1, 1: 1, 2: room, 3: msg id, 4: expires_ms, 5: blob, 6: hops,
    7: relay_to}``."""

    room_id: bytes
    message_id: bytes
    expires_ms: int
    blob: bytes
    hops: int = 0  #: HT-6.5: how many further relay levels the receiver may ask for
    relay_to: tuple[NodeId, ...] = ()  #: HT-6.5: members the receiver is asked to relay to

    def to_value(self) -> dict[int, Any]:
        return {
            0: P2P_VERSION,
            1: FrameType.ROOM,
            2: self.room_id,
            3: self.message_id,
            4: self.expires_ms,
            5: self.blob,
            6: self.hops,
            7: list(self.relay_to),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    """HT-6.3: `member` signed ``RECEIPT_DOMAIN || room id || message id``."""

    member: NodeId
    signature: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class AckFrame:
    """HT-6.2: ``{0: 1, 1: 2, 2: room, 3: msg id, 4: [[member, signature]...]}``."""

    room_id: bytes
    message_id: bytes
    receipts: tuple[Receipt, ...]

    def to_value(self) -> dict[int, Any]:
        return {
            0: P2P_VERSION,
            1: FrameType.ACK,
            2: self.room_id,
            3: self.message_id,
            4: [[r.member, r.signature] for r in self.receipts],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeFrame:
    """HT-6.2: ``{0: 1, 1: 3 or 4, 2: nonce}``."""

    nonce: int
    answer: bool = False

    def to_value(self) -> dict[int, Any]:
        kind = FrameType.PROBE_ACK if self.answer else FrameType.PROBE
        return {0: P2P_VERSION, 1: kind, 2: self.nonce}


def part_count(total: int) -> int:
    """HT-7.1: how many PART frames carry a blob of `total` bytes."""
    return -(-total // PART_SIZE)


def part_length(index: int, total: int) -> int:
    """HT-7.1: the chunk size of part `index`: PART_SIZE, the last one the remainder."""
    return min(PART_SIZE, total - index * PART_SIZE)


@dataclass(frozen=True, slots=True, kw_only=True)
class PartFrame:
    """HT-7.1: ``{0: 1, 1: 5, 2: room, 3: msg id, 4: expires_ms, 5: chunk, 6: hops,
    7: relay_to, 8: index, 9: total}``: part `index` of a blob of `total` bytes."""

    room_id: bytes
    message_id: bytes
    expires_ms: int
    index: int
    total: int  #: the whole blob's size, bytes
    chunk: bytes  #: blob[index * PART_SIZE : (index + 1) * PART_SIZE]
    hops: int = 0
    relay_to: tuple[NodeId, ...] = ()

    def to_value(self) -> dict[int, Any]:
        return {
            0: P2P_VERSION,
            1: FrameType.PART,
            2: self.room_id,
            3: self.message_id,
            4: self.expires_ms,
            5: self.chunk,
            6: self.hops,
            7: list(self.relay_to),
            8: self.index,
            9: self.total,
        }

    def same_message(self, other: "PartFrame") -> bool:
        """HT-7.2: do both parts agree on everything but their index and chunk?"""
        return (self.room_id, self.expires_ms, self.total, self.hops, self.relay_to) == (
            other.room_id,
            other.expires_ms,
            other.total,
            other.hops,
            other.relay_to,
        )


def split_frame(frame: RoomFrame) -> list["RoomFrame | PartFrame"]:
    """HT-7.1: `frame` itself if it fits one APP message, else its PART frames.

    PRIV-2.1: "fits" leaves the byte the padding marker needs, so a padded frame fits too.
    """
    if len(encode_frame(frame)) < MAX_FRAME_SIZE:
        return [frame]
    return list(_parts(frame))


def encode_room_frame(frame: RoomFrame) -> list[bytes]:
    """HT-7.1: the encoding of `frame` if it fits one APP message, else those of its
    PART frames (`split_frame`, with the whole frame encoded once, not twice)."""
    whole = encode_frame(frame)
    if len(whole) < MAX_FRAME_SIZE:
        return [whole]
    return [encode_frame(part) for part in _parts(frame)]


def _parts(frame: RoomFrame) -> list["PartFrame"]:
    """HT-7.1: the PART frames of `frame`, PART_SIZE bytes of its blob each."""
    total = len(frame.blob)
    return [
        PartFrame(
            room_id=frame.room_id,
            message_id=frame.message_id,
            expires_ms=frame.expires_ms,
            index=index,
            total=total,
            chunk=frame.blob[index * PART_SIZE : (index + 1) * PART_SIZE],
            hops=frame.hops,
            relay_to=frame.relay_to,
        )
        for index in range(part_count(total))
    ]


def status_message(room_id: bytes, off_central: bool, expires_ms: int) -> bytes:
    """HT-7.3: the bytes a member signs in a STATUS frame."""
    return STATUS_DOMAIN + room_id + bytes([off_central]) + expires_ms.to_bytes(8, "big")


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusFrame:
    """HT-7.3: ``{0: 1, 1: 6, 2: room, 3: off_central, 4: expires_ms, 5: signature}``."""

    room_id: bytes
    off_central: bool  #: True: the member cannot reach the central service
    expires_ms: int  #: the notice holds until then (ms since the epoch)
    signature: bytes  #: the member's Ed25519 signature over `status_message`

    def to_value(self) -> dict[int, Any]:
        return {
            0: P2P_VERSION,
            1: FrameType.STATUS,
            2: self.room_id,
            3: self.off_central,
            4: self.expires_ms,
            5: self.signature,
        }


def _decode_status(value: dict[int, Any]) -> StatusFrame:
    _keys(value, 6, "STATUS")
    if type(value[3]) is not bool:
        raise _malformed("off_central must be a boolean")
    return StatusFrame(
        room_id=_bstr(value[2], "room id", 1, MAX_ROOM_ID_SIZE),
        off_central=value[3],
        expires_ms=_uint(value[4], "expires_ms"),
        signature=_bstr(value[5], "signature", _SIGNATURE_SIZE, _SIGNATURE_SIZE),
    )


Frame = RoomFrame | AckFrame | ProbeFrame | PartFrame | StatusFrame


def encode_frame(frame: Frame) -> bytes:
    return cbor.encode(frame.to_value())


def _malformed(reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.MALFORMED, reason)


def _keys(value: dict[int, Any], expected: int, name: str) -> None:
    if value.keys() != set(range(expected)):
        raise _malformed(f"{name} frame must have keys 0..{expected - 1}")


def _bstr(value: object, name: str, low: int, high: int) -> bytes:
    if not isinstance(value, bytes) or not low <= len(value) <= high:
        raise _malformed(f"{name} must be a byte string of {low}..{high} bytes")
    return value


def _uint(value: object, name: str, high: int = 2**64 - 1) -> int:
    if type(value) is not int or not 0 <= value <= high:
        raise _malformed(f"{name} must be an unsigned integer <= {high}")
    return value


def _node_ids(value: object, name: str) -> tuple[NodeId, ...]:
    if not isinstance(value, list) or len(value) > MAX_LIST:
        raise _malformed(f"{name} must be a list of at most {MAX_LIST} node ids")
    ids = tuple(parse_node_id(_bstr(item, name, 32, 32)) for item in value)
    if len(set(ids)) != len(ids):
        raise _malformed(f"{name} lists a node twice")
    return ids


def decode_frame(data: bytes) -> Frame:
    """HT-6.2: parse one P2P room frame. Raises only `RemoteProtocolError`, whatever the bytes."""
    if len(data) > MAX_FRAME_SIZE:
        raise RemoteProtocolError(ErrorCode.TOO_LARGE, f"frame over {MAX_FRAME_SIZE} bytes")
    value = cbor.decode(data)
    if not isinstance(value, dict) or 0 not in value or 1 not in value:
        raise _malformed("a P2P frame is a map with a version and a type")
    if value[0] != P2P_VERSION or type(value[0]) is not int:
        raise RemoteProtocolError(ErrorCode.UNSUPPORTED_VERSION, f"P2P version {value[0]!r}")
    kind = value[1]
    if type(kind) is not int or kind not in set(FrameType):
        raise RemoteProtocolError(ErrorCode.UNKNOWN_TYPE, f"P2P frame type {kind!r}")
    if kind == FrameType.ROOM:
        _keys(value, 8, "ROOM")
        return RoomFrame(
            room_id=_bstr(value[2], "room id", 1, MAX_ROOM_ID_SIZE),
            message_id=_bstr(value[3], "message id", MESSAGE_ID_SIZE, MESSAGE_ID_SIZE),
            expires_ms=_uint(value[4], "expires_ms"),
            blob=_bstr(value[5], "blob", 1, MAX_FRAME_SIZE),
            hops=_uint(value[6], "hops", MAX_HOPS),
            relay_to=_node_ids(value[7], "relay_to"),
        )
    if kind == FrameType.PART:
        return _decode_part(value)
    if kind == FrameType.STATUS:
        return _decode_status(value)
    if kind == FrameType.ACK:
        _keys(value, 5, "ACK")
        raw = value[4]
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_LIST:
            raise _malformed(f"receipts must be a list of 1..{MAX_LIST}")
        receipts = []
        for item in raw:
            if not isinstance(item, list) or len(item) != 2:
                raise _malformed("a receipt is [member, signature]")
            receipts.append(
                Receipt(
                    member=parse_node_id(_bstr(item[0], "member", 32, 32)),
                    signature=_bstr(item[1], "signature", _SIGNATURE_SIZE, _SIGNATURE_SIZE),
                )
            )
        return AckFrame(
            room_id=_bstr(value[2], "room id", 1, MAX_ROOM_ID_SIZE),
            message_id=_bstr(value[3], "message id", MESSAGE_ID_SIZE, MESSAGE_ID_SIZE),
            receipts=tuple(receipts),
        )
    _keys(value, 3, "PROBE")
    return ProbeFrame(nonce=_uint(value[2], "nonce"), answer=kind == FrameType.PROBE_ACK)


def _decode_part(value: dict[int, Any]) -> PartFrame:
    _keys(value, 10, "PART")
    total = _uint(value[9], "total", MAX_BLOB_SIZE)
    index = _uint(value[8], "index")
    if total < 1 or index >= part_count(total):
        raise _malformed("part index past the last part of its total")
    length = part_length(index, total)
    return PartFrame(
        room_id=_bstr(value[2], "room id", 1, MAX_ROOM_ID_SIZE),
        message_id=_bstr(value[3], "message id", MESSAGE_ID_SIZE, MESSAGE_ID_SIZE),
        expires_ms=_uint(value[4], "expires_ms"),
        chunk=_bstr(value[5], "chunk", length, length),
        hops=_uint(value[6], "hops", MAX_HOPS),
        relay_to=_node_ids(value[7], "relay_to"),
        index=index,
        total=total,
    )


def receipt_message(room_id: bytes, message_id: bytes) -> bytes:
    """HT-6.3: the bytes a member signs to acknowledge `message_id` in `room_id`."""
    return RECEIPT_DOMAIN + room_id + message_id


# ------------------------------------------------------------- membership (HT-6.1)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomMember:
    """A member as announced in the DHT: identity, P2P address, announcement expiry."""

    node_id: NodeId
    public_key: bytes
    address: Address
    expires_at: float


def encode_announcement(address: Address) -> bytes:
    """HT-6.1: the value `announce_room` stores: ``{0: 1, 1: host, 2: port}``."""
    host, port = address
    if not 0 < port <= 0xFFFF:
        raise LocalProtocolError(f"port must be 1..65535, not {port}")
    return cbor.encode({0: ANNOUNCEMENT_VERSION, 1: host, 2: port})


def decode_announcement(value: bytes) -> Address:
    """HT-6.1: parse an announcement value; raises only `RemoteProtocolError`."""
    parsed = cbor.decode(value)
    if not isinstance(parsed, dict) or parsed.keys() != {0, 1, 2}:
        raise _malformed("a room announcement is {0: 1, 1: host, 2: port}")
    if parsed[0] != ANNOUNCEMENT_VERSION or type(parsed[0]) is not int:
        raise RemoteProtocolError(ErrorCode.UNSUPPORTED_VERSION, "room announcement version")
    host, port = parsed[1], parsed[2]
    if not isinstance(host, str) or not 1 <= len(host) <= 253:
        raise _malformed("announcement host must be text of 1..253 characters")
    return host, _uint(port, "announcement port", 0xFFFF)


def member_from_record(
    record_bytes: bytes, *, room_id: bytes, now: float, closed: bool = False
) -> RoomMember:
    """HT-6.1: a `find_room_peers` record, fully checked (signature, key, expiry) and parsed.

    `room_id` is the room's DHT ident. With `closed`, the value must be a closed
    room's announcement whose proof verifies for the publisher (ROOM-6.2).
    """
    record = decode_record(
        cbor.decode(record_bytes), now=now, key=derive_key(KeyType.ROOM, room_id)
    )
    if record.key_type is not KeyType.ROOM or record.ident != room_id:
        raise RemoteProtocolError(ErrorCode.WRONG_KEY, "not an announcement for this room")
    if closed:
        proven = check_announcement_proof(
            record.value, publisher=record.publisher_key, dht_ident=room_id
        )
        address: Address = (proven.host, proven.port)
    else:
        address = decode_announcement(record.value)
    if address[1] == 0:
        raise _malformed("announcement port 0")
    return RoomMember(
        node_id=record.publisher_id,
        public_key=record.publisher_key,
        address=address,
        expires_at=record.expires_at,
    )


#: ROOM-6.1: at most this many non-member publishers remembered per room for replies.
MAX_WAITING: Final = 64
#: RLY-9.4: (relay, message) pairs remembered as paid before those of finished jobs go.
MAX_RELAY_PAID: Final = 1024


# ------------------------------------------------------------------ config


@dataclass(frozen=True, slots=True, kw_only=True)
class P2PConfig:
    """HT-6.6: parameters of the P2P path (seconds unless stated)."""

    topic: int = APP_TOPIC_ROOM  #: APP topic of room frames
    initial_backoff: float = 0.5  #: first retry after this long
    backoff_factor: float = 2.0
    max_backoff: float = 8.0
    max_attempts: int = 6  #: direct attempts per job before it stalls
    relay_after: int = 2  #: unacknowledged direct attempts before bridges are asked
    max_bridges: int = 2  #: bridges asked per (message, round)
    max_relay_hops: int = 2  #: relay levels a message may go through
    max_relay_jobs: int = 1024  #: relay jobs a node runs for others at once
    probe_interval: float = 5.0
    probe_timeout: float = 2.0  #: HT-6.8: the least a probe waits; more when RTTs are long
    max_probe_timeout: float = 16.0  #: HT-6.8: the most a probe waits
    probe_failures: int = 2  #: timed-out probes in a row before a member is unreachable
    announce_interval: float = 600.0  #: re-announce membership this often
    lookup_interval: float = 30.0  #: refresh the member list this often
    unknown_lookup_interval: float = 5.0  #: at most this often for a stranger's frame
    max_seen: int = 200_000  #: message ids remembered for dedup
    max_reassemblies: int = 64  #: HT-7.2: messages being reassembled from parts at once
    reassembly_timeout: float = 30.0  #: HT-7.2: an unfinished reassembly ends after this long
    status_interval: float = 10.0  #: HT-7.3: an off-central notice is repeated this often
    status_ttl: float = 30.0  #: HT-7.3: how long one notice holds
    recent_window: float = 120.0  #: HT-7.4: own central messages kept this long for late notices
    max_recent: int = 128  #: HT-7.4: at most this many of them
    #: PRIV-2.1: pad every frame to a bucket and refuse unpadded ones (both ends must agree)
    pad_frames: bool = False
    max_pow_effort: int = DEFAULT_MAX_EFFORT  #: RLY-9.4: the highest price paid to a relay
    max_pow_tries: int = MAX_POW_TRIES  #: RLY-9.4: hashes one solution may take

    def __post_init__(self) -> None:
        for name in (
            "initial_backoff",
            "max_backoff",
            "probe_interval",
            "probe_timeout",
            "max_probe_timeout",
            "announce_interval",
            "lookup_interval",
            "unknown_lookup_interval",
            "reassembly_timeout",
            "status_interval",
            "status_ttl",
            "recent_window",
        ):
            if not getattr(self, name) > 0:
                raise LocalProtocolError(f"{name} must be positive")
        if self.backoff_factor < 1:
            raise LocalProtocolError("backoff_factor must be >= 1")
        if self.max_probe_timeout < self.probe_timeout:
            raise LocalProtocolError("max_probe_timeout must be >= probe_timeout")
        counts = (self.max_attempts, self.relay_after, self.probe_failures, self.max_seen)
        if min(*counts, self.max_reassemblies, self.max_recent) < 1:
            raise LocalProtocolError("counts must be at least 1")
        if not 0 <= self.max_relay_hops <= MAX_HOPS or self.max_bridges < 0:
            raise LocalProtocolError(f"max_relay_hops must be 0..{MAX_HOPS}, max_bridges >= 0")
        if not 1 <= self.topic <= 0xFFFF:
            raise LocalProtocolError("topic must be 1..65535")

    def backoff(self, attempts: int) -> float:
        return float(
            min(self.initial_backoff * self.backoff_factor ** (attempts - 1), self.max_backoff)
        )


# ----------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True, kw_only=True)
class SendApp:
    """Send `payload` as an APP message on `topic` to node `peer` at `address`."""

    peer: NodeId
    address: Address
    topic: int
    payload: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivered:
    """A room message arrived (first time at this node): hand it to the service's `received`."""

    room_id: bytes
    message_id: bytes
    blob: bytes
    expires_at: float
    via: NodeId  #: the node it came from (the sender or a bridge)


@dataclass(frozen=True, slots=True, kw_only=True)
class Acked:
    """`member`'s signed receipt for our message: feed `HybridTransportService.p2p_acked`."""

    room_id: bytes
    message_id: bytes
    member: NodeId
    via: NodeId  #: who brought the receipt (the member, or a bridge)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryStalled:
    """A job for one of our messages stopped without a receipt (re-sent by the service later)."""

    room_id: bytes
    message_id: bytes
    member: NodeId
    attempts: int
    reason: str  #: "attempts" or "too_large"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReachabilityChanged:
    """HT-6.4: the P2P reach of the joined rooms changed."""

    reach: Reach
    anything_reachable: bool  #: at least one member answers
    reachable: int
    members: int
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Announce:
    """Publish our membership: `NodeHost.announce_room(dht_ident, value)`."""

    room_id: bytes
    dht_ident: bytes  #: the DHT ident of the room (ROOM-2.2; the room id if open)
    value: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupMembers:
    """Look the room's members up (`find_room_peers(dht_ident)`), report with `members_found`."""

    room_id: bytes
    dht_ident: bytes  #: the DHT ident of the room (ROOM-2.2; the room id if open)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClosedRoom:
    """ROOM-6.1, ROOM-6.2: what the P2P path needs to keep a room closed."""

    dht_ident: bytes  #: `railgun_ref.rooms.ids.dht_ident_of(secret)`
    announcement: bytes  #: our signed DHT value (`railgun_ref.rooms.announce.room_announcement`)
    members: frozenset[bytes]  #: Ed25519 keys the room's log counts as members


@dataclass(frozen=True, slots=True, kw_only=True)
class MembersChanged:
    room_id: bytes
    members: frozenset[NodeId]  #: other members with a known address and key


#: The closed set of what `P2PRoomCore.next_action` returns (CORE-1.2).
Action = (
    SendApp
    | SolvePow
    | Delivered
    | Acked
    | DeliveryStalled
    | ReachabilityChanged
    | Announce
    | LookupMembers
    | MembersChanged
)


class P2PCounter(StrEnum):
    """Counters of `P2PRoomCore` (labels: `ErrorCode` or `Refusal` for refusals)."""

    REJECTED = "rejected"  #: a frame refused; label: its `ErrorCode` or `Refusal`
    REJECTED_MEMBER = "rejected.member"  #: a member record refused; label: its `ErrorCode`
    PROBE_ANSWERED = "probe.answered"  #: probes we answered
    PROBE_ANSWER = "probe.answer"  #: answers to our probes
    PROBE_TIMEOUT = "probe.timeout"
    RTT_SAMPLES = "probe.rtt_samples"  #: HT-6.8: answers that matched our last probe
    ROOM_DELIVERED = "room.delivered"
    ROOM_DUPLICATE = "room.duplicate"
    RELAY_REFUSED_STRANGER = "relay.refused_stranger"
    RELAY_REFUSED_QUOTA = "relay.refused_quota"
    RELAY_STARTED = "relay.started"
    RELAY_RECEIPTS_FORWARDED = "relay.receipts_forwarded"
    RELAY_ASKED = "relay.asked"
    RELAY_DIRECT = "relay.direct"
    RELAY_STALLED = "relay.stalled"
    COMMITTEE_ASKED = "committee.asked"  #: RLY-6.1: RELAY requests sent to committee relays
    RELAY_THROTTLED = "relay.throttled"  #: HT-7.6: a relay attempt over the bandwidth budget
    ACK_UNKNOWN_MEMBER = "ack.unknown_member"
    ACK_UNSOLICITED = "ack.unsolicited"
    ACK_VERIFIED = "ack.verified"
    SEND_DIRECT = "send.direct"
    SEND_STALLED = "send.stalled"
    SEND_TOO_LARGE = "send.too_large"
    MEMBER_EXPIRED = "member.expired"
    SEEN_EVICTED = "seen.evicted"
    PART_SENT = "part.sent"  #: HT-7.1: PART frames sent
    PART_REASSEMBLED = "part.reassembled"  #: HT-7.2: messages rebuilt from their parts
    PART_TIMEOUT = "part.timeout"  #: HT-7.2: reassemblies that ended unfinished
    STATUS_SENT = "status.sent"  #: HT-7.3: STATUS frames sent
    STATUS_ACCEPTED = "status.accepted"  #: HT-7.3: verified notices from members
    STATUS_UNKNOWN_MEMBER = "status.unknown_member"  #: HT-7.3: a notice from a non-member
    COVER_STARTED = "cover.started"  #: HT-7.4: jobs for members off central
    DIRECT_PATH = "direct.path"  #: NAT-6.3: a member's frames moved to a traversed path
    RELAY_BUSY = "relay.busy"  #: RLY-9.4: BUSY answers from committee relays
    RELAY_POW_ASKED = "relay.pow_asked"  #: RLY-9.4: a relay's price accepted, solving
    RELAY_POW_DECLINED = "relay.pow_declined"  #: RLY-9.4: over max_pow_effort, or paid already
    RELAY_POW_PAID = "relay.pow_paid"  #: RLY-9.4: RELAY requests sent again with a solution
    RELAY_POW_UNSOLVED = "relay.pow_unsolved"  #: RLY-9.4: no solution within max_pow_tries
    RELAY_POW_LATE = "relay.pow_late"  #: RLY-9.4: a solution for a message no longer sent


class Refusal(StrEnum):
    """Why a well-formed frame was refused (labels of `P2PCounter.REJECTED`)."""

    NOT_JOINED = "not_joined"  #: a ROOM frame for a room this node has not joined
    EXPIRED = "expired"  #: a ROOM frame whose message has expired
    BAD_RECEIPT = "bad_receipt"  #: a receipt whose signature does not verify (HT-6.3)
    PART_MISMATCH = "part_mismatch"  #: HT-7.2: a part disagreeing with the earlier ones
    PART_BUSY = "part_busy"  #: HT-7.2: max_reassemblies messages already being reassembled
    BAD_STATUS = "bad_status"  #: HT-7.3: a STATUS signature that does not verify


# ----------------------------------------------------------------- internals


class PeerStatus(Enum):
    UNKNOWN = "unknown"
    REACHABLE = "reachable"
    UNREACHABLE = "unreachable"


#: HT-6.8: probes per member whose answers still count as RTT samples
PROBES_REMEMBERED: Final = 4
#: Messages whose encoded direct ROOM frames are kept for re-sends (`_direct_payloads`).
DIRECT_PAYLOADS_KEPT: Final = 64


@dataclass(slots=True)
class _Peer:
    node_id: NodeId
    public_key: bytes
    address: Address  #: where frames go: the announced address, or a direct path (NAT-6.3)
    announced: Address  #: the address its room record announces (HT-6.1)
    rooms: dict[bytes, float] = field(default_factory=dict)  #: room id -> announcement expiry
    heard: bool = False
    last_heard: float = float("-inf")
    failures: int = 0
    probe_sent_at: float | None = None
    next_probe: float = float("-inf")
    #: HT-6.8: nonce -> send time of the last PROBES_REMEMBERED probes (kept after they
    #: timed out, so a late answer still gives an RTT sample), the smoothed RTT and its
    #: variation
    probes: dict[int, float] = field(default_factory=dict)
    srtt: float | None = None
    rttvar: float = 0.0
    #: HT-7.3: room id -> until when the member said it cannot reach the central service
    off_central: dict[bytes, float] = field(default_factory=dict)


@dataclass(slots=True)
class _Room:
    room_id: bytes
    next_announce: float
    next_lookup: float
    last_unknown_lookup: float = float("-inf")
    closed: ClosedRoom | None = None
    #: ROOM-6.1: publishers with a valid proof whose membership this node's log does not
    #: show (yet): not peers, but their address answers their probes (a new member's
    #: ACCEPT may still be on its way to us in its first frame).
    waiting: dict[NodeId, "RoomMember"] = field(default_factory=dict)
    #: RLY-1.1: the room's committee relays and their addresses (`set_committee`)
    committee: dict[NodeId, Address] = field(default_factory=dict)

    @property
    def dht_ident(self) -> bytes:
        return self.room_id if self.closed is None else self.closed.dht_ident

    def admits(self, public_key: bytes) -> bool:
        """ROOM-6.1: may this key be a peer of the room?"""
        return self.closed is None or public_key in self.closed.members


@dataclass(slots=True)
class _Reassembly:
    """HT-7.2: the parts of one message from one sender received so far."""

    first: PartFrame
    deadline: float
    chunks: dict[int, bytes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Recent:
    """HT-7.4: one of our messages the central service took, kept for late notices."""

    room_id: bytes
    blob: bytes
    expires_at: float
    sent_at: float


@dataclass(slots=True)
class _Job:
    """Deliver one message to one member (ours, or relayed for `upstream`)."""

    room_id: bytes
    message_id: bytes
    blob: bytes
    expires_at: float
    target: NodeId
    hops: int  #: relay levels this node may still ask for
    origin: bool  #: our own message (receipts become `Acked`)
    upstream: dict[NodeId, Address] = field(default_factory=dict)
    attempts: int = 0
    next_at: float = 0.0
    bridges_asked: set[NodeId] = field(default_factory=set)


class P2PRoomCore:
    """The P2P room path of one client. See the module docstring."""

    def __init__(
        self,
        identity: Identity,
        address: Address,
        *,
        config: P2PConfig | None = None,
        budget: SharingBudget | None = None,
        now: float,
    ) -> None:
        """`budget`: the device's sharing budget (CAP-7); bridging draws on it. None: no limit."""
        self.identity = identity
        self.budget = budget
        #: HT-7.5: members' advertised capabilities (CAP-3), for choosing bridges.
        self._capacities: dict[NodeId, DeviceCapabilities] = {}
        #: HT-7.6: relay jobs running per target, each target holding one BRIDGE slot.
        self._bridging: dict[NodeId, int] = {}
        self.node_id = identity.node_id
        self.address = address
        self.config = config or P2PConfig()
        self.counters: Counters[P2PCounter] = Counters()
        self._actions: deque[Action] = deque()
        self._rooms: dict[bytes, _Room] = {}
        self._peers: dict[NodeId, _Peer] = {}
        self._jobs: dict[tuple[bytes, NodeId], _Job] = {}
        self._relay_jobs = 0
        #: (message id, member) -> (receipt signature, expiry): what we can prove was delivered.
        self._receipts: dict[tuple[bytes, NodeId], tuple[bytes, float]] = {}
        self._receipt_expiries: list[tuple[float, bytes, NodeId]] = []
        self._seen: dict[bytes, float] = {}
        self._seen_expiries: list[tuple[float, bytes]] = []
        self._reassembly: dict[tuple[NodeId, bytes], _Reassembly] = {}
        self._off_central = False  #: HT-7.3: do we tell members we are off central?
        #: RLY-9.4: token -> (relay, message id) of a price being paid, and those paid
        self._relay_pow: dict[int, tuple[NodeId, bytes]] = {}
        self._relay_paid: set[tuple[NodeId, bytes]] = set()
        self._next_pow_token = 1
        self._next_status: float | None = None  #: when the next STATUS round goes out
        #: HT-7.4: our messages the central service took, oldest first, by message id.
        self._recent: dict[bytes, _Recent] = {}
        self._next_nonce = 1
        self._reported: tuple[Reach, bool, int, int] | None = None
        #: message id -> ((room id, blob, expiry ms), payloads) of its direct ROOM frame: the
        #: same bytes for every member and every attempt, so encoded once (oldest first).
        self._direct: dict[bytes, tuple[tuple[bytes, bytes, int], tuple[bytes, ...]]] = {}

    # ----------------------------------------------------------- queries

    @property
    def rooms(self) -> frozenset[bytes]:
        return frozenset(self._rooms)

    def members(self, room_id: bytes) -> dict[NodeId, bytes]:
        """The other members of `room_id` with a known address: NodeId -> Ed25519 public key."""
        return {p.node_id: p.public_key for p in self._peers.values() if room_id in p.rooms}

    def member_address(self, node_id: NodeId) -> Address | None:
        peer = self._peers.get(node_id)
        return None if peer is None else peer.address

    def status(self, node_id: NodeId) -> PeerStatus:
        peer = self._peers.get(node_id)
        return PeerStatus.UNKNOWN if peer is None else self._status(peer)

    def reach(self) -> Reach:
        return self._reach()[0]

    def pending(self) -> int:
        """Jobs in flight (ours and relayed)."""
        return len(self._jobs)

    def next_action(self) -> Action | None:
        return self._actions.popleft() if self._actions else None

    # ---------------------------------------------------------- membership

    def join(self, room_id: bytes, *, now: float, closed: ClosedRoom | None = None) -> None:
        """Start announcing our membership of `room_id` and looking its members up.

        With `closed`, the room is closed (ROOM-6.1): only its members become peers.
        """
        if not 1 <= len(room_id) <= MAX_ROOM_ID_SIZE:
            raise LocalProtocolError(f"room id must be 1..{MAX_ROOM_ID_SIZE} bytes")
        if room_id in self._rooms:
            if closed is not None:
                self.set_members(room_id, closed.members, now=now)
            return
        room = _Room(room_id=room_id, next_announce=now, next_lookup=now, closed=closed)
        self._rooms[room_id] = room
        self._timers(now)

    def reannounce(self, *, now: float) -> None:
        """Announce every room again at once (the DHT just got peers to store on)."""
        for room in self._rooms.values():
            room.next_announce = now
        self._timers(now)

    def readdress(
        self, address: Address, *, announcements: Mapping[bytes, bytes], now: float
    ) -> None:
        """HT-6.7: announce `address` from now on (the address peers observe, behind a
        NAT); `announcements` holds each closed room's value re-signed for it."""
        self.address = address
        for room_id, room in self._rooms.items():
            if room.closed is not None and room_id in announcements:
                room.closed = ClosedRoom(
                    dht_ident=room.closed.dht_ident,
                    announcement=announcements[room_id],
                    members=room.closed.members,
                )
        self.reannounce(now=now)

    def set_members(self, room_id: bytes, members: Iterable[bytes], *, now: float) -> None:
        """ROOM-6.1: the closed room's members changed (its log moved); drop the others."""
        room = self._rooms.get(room_id)
        if room is None or room.closed is None:
            raise LocalProtocolError("set_members is for closed rooms joined with ClosedRoom")
        before = frozenset(self.members(room_id))
        room.closed = ClosedRoom(
            dht_ident=room.closed.dht_ident,
            announcement=room.closed.announcement,
            members=frozenset(members),
        )
        for peer in list(self._peers.values()):
            if room_id in peer.rooms and not room.admits(peer.public_key):
                self._drop_peer_room(peer, room_id)
        admitted = [m for m in room.waiting.values() if room.admits(m.public_key)]
        for member in admitted:
            del room.waiting[member.node_id]
        self.add_members(room_id, admitted, now=now)
        after = frozenset(self.members(room_id))
        if after != before:
            self._actions.append(MembersChanged(room_id=room_id, members=after))
            room.next_lookup = now  # a new member may already have announced itself
        self._timers(now)

    def _drop_peer_room(self, peer: _Peer, room_id: bytes) -> None:
        """Forget `peer` as a member of `room_id`: its jobs there end, and the peer
        itself when it shares no other room with us."""
        peer.rooms.pop(room_id, None)
        for key in [k for k, job in self._jobs.items() if job.room_id == room_id]:
            if key[1] == peer.node_id:
                self._drop_job(key)
        if not peer.rooms:
            del self._peers[peer.node_id]

    def leave(self, room_id: bytes, *, now: float) -> None:
        if self._rooms.pop(room_id, None) is None:
            return
        for peer in list(self._peers.values()):
            peer.rooms.pop(room_id, None)
            if not peer.rooms:
                del self._peers[peer.node_id]
        for key in [k for k, job in self._jobs.items() if job.room_id == room_id]:
            self._drop_job(key)
        self._report_reach(now)

    def members_found(self, room_id: bytes, records: Iterable[bytes], *, now: float) -> int:
        """Feed `find_room_peers` records; returns how many valid members they named.

        Records that fail any check are counted under `P2PCounter.REJECTED_MEMBER`.
        """
        room = self._rooms.get(room_id)
        if room is None:
            raise LocalProtocolError("join the room before adding its members")
        members = []
        for record in records:
            try:
                member = member_from_record(
                    record, room_id=room.dht_ident, now=now, closed=room.closed is not None
                )
                if not room.admits(member.public_key):  # ROOM-6.1
                    if len(room.waiting) < MAX_WAITING:
                        room.waiting[member.node_id] = member
                    raise RemoteProtocolError(ErrorCode.FORBIDDEN, "not a member of the room")
                members.append(member)
            except RemoteProtocolError as exc:
                self.counters.inc(P2PCounter.REJECTED_MEMBER, label=exc.code)
        self.add_members(room_id, members, now=now)
        return len(members)

    def add_members(self, room_id: bytes, members: Iterable[RoomMember], *, now: float) -> None:
        """Learn members of `room_id` (from the DHT, or given directly by a simulator)."""
        if room_id not in self._rooms:
            raise LocalProtocolError("join the room before adding its members")
        room = self._rooms[room_id]
        before = frozenset(self.members(room_id))
        for member in members:
            if member.node_id == self.node_id or member.expires_at <= now:
                continue
            if not room.admits(member.public_key):  # ROOM-6.1
                self.counters.inc(P2PCounter.REJECTED_MEMBER, label=ErrorCode.FORBIDDEN)
                continue
            if node_id_of(member.public_key) != member.node_id:
                raise LocalProtocolError("member node id does not match its key")
            peer = self._peers.get(member.node_id)
            if peer is None:
                peer = _Peer(member.node_id, member.public_key, member.address, member.address)
                self._peers[member.node_id] = peer
            elif peer.announced != member.address:  # a new mapping: any direct path is stale
                peer.address = peer.announced = member.address
                peer.failures = 0  # a new address deserves a fresh chance
                peer.next_probe = now
            peer.rooms[room_id] = max(peer.rooms.get(room_id, 0.0), member.expires_at)
        after = frozenset(self.members(room_id))
        if after != before:
            self._actions.append(MembersChanged(room_id=room_id, members=after))
        self._timers(now)

    # ------------------------------------------------------------- sending

    def send(
        self,
        *,
        room_id: bytes,
        message_id: bytes,
        blob: bytes,
        expires_at: float,
        members: Iterable[NodeId],
        now: float,
    ) -> None:
        """Deliver our message to `members` (those that have not acknowledged it yet).

        Idempotent per (message, member): a job already running keeps its
        backoff; a stalled one starts again (the service's re-send, HT-4.2).
        """
        if room_id not in self._rooms:
            raise LocalProtocolError("join the room before sending to it")
        if len(message_id) != MESSAGE_ID_SIZE:
            raise LocalProtocolError(f"message ids are {MESSAGE_ID_SIZE} bytes")
        # HT-7.1: anything up to MAX_BLOB_SIZE travels, in parts if it must.
        too_large = len(blob) > MAX_BLOB_SIZE
        for member in sorted(set(members) - {self.node_id}):
            if too_large:
                self.counters.inc(P2PCounter.SEND_TOO_LARGE)
                self._actions.append(
                    DeliveryStalled(
                        room_id=room_id,
                        message_id=message_id,
                        member=member,
                        attempts=0,
                        reason="too_large",
                    )
                )
                continue
            self._start_job(room_id, message_id, blob, expires_at, member, now)
        self._timers(now)

    def _start_job(
        self,
        room_id: bytes,
        message_id: bytes,
        blob: bytes,
        expires_at: float,
        member: NodeId,
        now: float,
    ) -> bool:
        """An origin job for (message, member) unless one runs; False if one already did."""
        key = (message_id, member)
        if key in self._jobs:
            return False
        self._jobs[key] = _Job(
            room_id=room_id,
            message_id=message_id,
            blob=blob,
            expires_at=expires_at,
            target=member,
            hops=self.config.max_relay_hops,
            origin=True,
            next_at=now,
        )
        return True

    def cancel(self, message_id: bytes) -> None:
        """Stop delivering our message (it was settled another way, e.g. the central path)."""
        for key in [k for k, job in self._jobs.items() if job.origin and k[0] == message_id]:
            self._drop_job(key)

    # ------------------------------------------------- per-client blocking (HT-7.3, HT-7.4)

    def set_central_reachable(self, reachable: bool, *, now: float) -> None:
        """HT-7.3: whether this client reaches the central service; members are told.

        Off central, a signed STATUS goes to every member every `status_interval`;
        back on it, one STATUS saying so goes out and the repetition stops.
        """
        if (not reachable) == self._off_central:
            return
        self._off_central = not reachable
        self._next_status = now
        self._timers(now)

    @property
    def off_central(self) -> bool:
        return self._off_central

    def unreachable_members(self) -> frozenset[NodeId]:
        """Members of any room that stopped answering probes (HT-6.4)."""
        return frozenset(
            p.node_id for p in self._peers.values() if self._status(p) is PeerStatus.UNREACHABLE
        )

    def set_direct(self, node_id: NodeId, address: Address, *, now: float) -> None:
        """NAT-6.3: traversal found a direct path to `node_id` at `address`: send there from
        now on (until its announcement names a new address), probing it at once."""
        peer = self._peers.get(node_id)
        if peer is None or peer.address == address:
            return
        peer.address = address
        peer.failures = 0
        peer.probe_sent_at = None
        peer.next_probe = now
        peer.probes.clear()  # HT-6.8: a new path, a new RTT estimate
        peer.srtt, peer.rttvar = None, 0.0
        self.counters.inc(P2PCounter.DIRECT_PATH)
        self._timers(now)

    def blocked_members(self, room_id: bytes, *, now: float) -> frozenset[NodeId]:
        """HT-7.3: members of `room_id` whose live notice says they cannot reach central."""
        return frozenset(
            peer.node_id
            for peer in self._peers.values()
            if room_id in peer.rooms and peer.off_central.get(room_id, float("-inf")) > now
        )

    def settled_centrally(
        self, *, room_id: bytes, message_id: bytes, blob: bytes, expires_at: float, now: float
    ) -> None:
        """HT-7.4: the central service took our message. P2P jobs end, except for members
        off central, which get it over P2P (started now if need be); it is kept for
        `recent_window` so a member whose notice comes later still gets it."""
        blocked = self.blocked_members(room_id, now=now) if room_id in self._rooms else frozenset()
        for key, job in list(self._jobs.items()):
            if job.origin and key[0] == message_id and job.target not in blocked:
                self._drop_job(key)
        if room_id not in self._rooms:
            return
        self._recent[message_id] = _Recent(
            room_id=room_id, blob=blob, expires_at=expires_at, sent_at=now
        )
        while len(self._recent) > self.config.max_recent:
            del self._recent[next(iter(self._recent))]
        self._cover(room_id, blocked, now)
        self._timers(now)

    def _cover(self, room_id: bytes, members: Iterable[NodeId], now: float) -> None:
        """HT-7.4: deliver our recent central messages of `room_id` to `members` over P2P."""
        for message_id, recent in list(self._recent.items()):
            if recent.sent_at + self.config.recent_window <= now or recent.expires_at <= now:
                del self._recent[message_id]
                continue
            if recent.room_id != room_id:
                continue
            for member in members:
                if (message_id, member) in self._receipts:
                    continue
                blob, expires_at = recent.blob, recent.expires_at
                if self._start_job(room_id, message_id, blob, expires_at, member, now):
                    self.counters.inc(P2PCounter.COVER_STARTED)

    def _on_status(self, sender: NodeId, frame: StatusFrame, now: float) -> None:
        """HT-7.3: a member says it is off (or back on) the central service."""
        if frame.room_id not in self._rooms:
            self.counters.inc(P2PCounter.REJECTED, label=Refusal.NOT_JOINED)
            return
        peer = self._peers.get(sender)
        if peer is None or frame.room_id not in peer.rooms:
            self.counters.inc(P2PCounter.STATUS_UNKNOWN_MEMBER)
            return
        message = status_message(frame.room_id, frame.off_central, frame.expires_ms)
        if not verify(peer.public_key, message, frame.signature):
            self.counters.inc(P2PCounter.REJECTED, label=Refusal.BAD_STATUS)
            return
        until = min(frame.expires_ms / 1000, now + MAX_STATUS_TTL)
        if until <= now:
            self.counters.inc(P2PCounter.REJECTED, label=Refusal.EXPIRED)
            return
        self.counters.inc(P2PCounter.STATUS_ACCEPTED)
        if not frame.off_central:
            peer.off_central.pop(frame.room_id, None)
            return
        peer.off_central[frame.room_id] = until
        # Every notice (they repeat) revives delivery of what it has not acknowledged yet.
        self._cover(frame.room_id, [sender], now)

    def _status_round(self, now: float) -> None:
        """HT-7.3: one signed STATUS to every member of every room."""
        off = self._off_central
        expires_ms = _ms(now + self.config.status_ttl)
        for room in self._rooms.values():
            signature = self.identity.sign(status_message(room.room_id, off, expires_ms))
            frame = StatusFrame(
                room_id=room.room_id, off_central=off, expires_ms=expires_ms, signature=signature
            )
            for peer in self._peers.values():
                if room.room_id in peer.rooms:
                    self.counters.inc(P2PCounter.STATUS_SENT)
                    self._send(peer.node_id, peer.address, frame)
        self._next_status = now + self.config.status_interval if off else None

    # ----------------------------------------------------------- receiving

    def receive(self, sender: NodeId, address: Address, payload: bytes, *, now: float) -> None:
        """An APP message on our topic from the authenticated node `sender`. Never raises."""
        try:
            frame = decode_frame(unpad_frame(payload) if self.config.pad_frames else payload)
        except RemoteProtocolError as exc:
            self.counters.inc(P2PCounter.REJECTED, label=exc.code)
            return
        self._heard(sender, now)
        match frame:
            case ProbeFrame(answer=False):
                self.counters.inc(P2PCounter.PROBE_ANSWERED)
                reply_to = self._reply_address(sender, address)
                self._send(sender, reply_to, ProbeFrame(nonce=frame.nonce, answer=True))
            case ProbeFrame(answer=True):
                self.counters.inc(P2PCounter.PROBE_ANSWER)
                self._rtt_sample(sender, frame.nonce, now)
            case RoomFrame():
                self._on_room(sender, address, frame, now)
            case PartFrame():
                self._on_part(sender, address, frame, now)
            case StatusFrame():
                self._on_status(sender, frame, now)
            case AckFrame():
                self._on_ack(sender, frame, now)
        self._timers(now)

    def _reply_address(self, sender: NodeId, address: Address) -> Address:
        peer = self._peers.get(sender)
        if peer is not None:
            return peer.address
        for room in self._rooms.values():
            if sender in room.waiting:
                return room.waiting[sender].address
        return address

    def _on_room(self, sender: NodeId, address: Address, frame: RoomFrame, now: float) -> None:
        room = self._rooms.get(frame.room_id)
        if room is None:
            self.counters.inc(P2PCounter.REJECTED, label=Refusal.NOT_JOINED)
            return
        expires_at = min(frame.expires_ms / 1000, now + MAX_MESSAGE_TTL)
        if expires_at <= now:
            self.counters.inc(P2PCounter.REJECTED, label=Refusal.EXPIRED)
            return
        known = sender in self._peers and frame.room_id in self._peers[sender].rooms
        if not known and now - room.last_unknown_lookup >= self.config.unknown_lookup_interval:
            # A member we have not seen announced yet: refresh the member list.
            room.last_unknown_lookup = now
            self._actions.append(LookupMembers(room_id=frame.room_id, dht_ident=room.dht_ident))
        reply_to = self._reply_address(sender, address)
        if self._first_time(frame.message_id, expires_at, now):
            self.counters.inc(P2PCounter.ROOM_DELIVERED)
            self._actions.append(
                Delivered(
                    room_id=frame.room_id,
                    message_id=frame.message_id,
                    blob=frame.blob,
                    expires_at=expires_at,
                    via=sender,
                )
            )
        else:
            self.counters.inc(P2PCounter.ROOM_DUPLICATE)
        # HT-6.3: acknowledge every copy (the previous receipt may have been lost).
        own = Receipt(
            member=self.node_id,
            signature=self.identity.sign(receipt_message(frame.room_id, frame.message_id)),
        )
        receipts = [own]
        if frame.relay_to:
            receipts += self._relay(sender, reply_to, frame, expires_at, known, now)
        for start in range(0, len(receipts), MAX_LIST):
            chunk = tuple(receipts[start : start + MAX_LIST])
            ack = AckFrame(room_id=frame.room_id, message_id=frame.message_id, receipts=chunk)
            self._send(sender, reply_to, ack)

    def _on_part(self, sender: NodeId, address: Address, part: PartFrame, now: float) -> None:
        """HT-7.2: keep the part; the last one makes the ROOM frame `_on_room` handles."""
        if part.room_id not in self._rooms:
            self.counters.inc(P2PCounter.REJECTED, label=Refusal.NOT_JOINED)
            return
        if part.expires_ms / 1000 <= now:
            self.counters.inc(P2PCounter.REJECTED, label=Refusal.EXPIRED)
            return
        if part.message_id in self._seen and not part.relay_to:
            # Delivered already (its receipt was lost): any part earns the receipt again;
            # `_on_room` sees a duplicate and never reads the blob.
            whole = RoomFrame(
                room_id=part.room_id,
                message_id=part.message_id,
                expires_ms=part.expires_ms,
                blob=part.chunk,
            )
            self._on_room(sender, address, whole, now)
            return
        key = (sender, part.message_id)
        entry = self._reassembly.get(key)
        if entry is None:
            if len(self._reassembly) >= self.config.max_reassemblies:
                self.counters.inc(P2PCounter.REJECTED, label=Refusal.PART_BUSY)
                return
            entry = _Reassembly(first=part, deadline=now + self.config.reassembly_timeout)
            self._reassembly[key] = entry
        elif not entry.first.same_message(part):
            del self._reassembly[key]
            self.counters.inc(P2PCounter.REJECTED, label=Refusal.PART_MISMATCH)
            return
        entry.chunks[part.index] = part.chunk
        if len(entry.chunks) < part_count(part.total):
            return
        del self._reassembly[key]
        self.counters.inc(P2PCounter.PART_REASSEMBLED)
        whole = RoomFrame(
            room_id=part.room_id,
            message_id=part.message_id,
            expires_ms=part.expires_ms,
            blob=b"".join(entry.chunks[i] for i in range(part_count(part.total))),
            hops=part.hops,
            relay_to=part.relay_to,
        )
        self._on_room(sender, address, whole, now)

    def _relay(
        self,
        sender: NodeId,
        reply_to: Address,
        frame: RoomFrame,
        expires_at: float,
        known: bool,
        now: float,
    ) -> list[Receipt]:
        """HT-6.5: run relay jobs for `frame.relay_to`; returns receipts already held."""
        if not known:
            self.counters.inc(P2PCounter.RELAY_REFUSED_STRANGER)
            return []
        held = []
        for target in frame.relay_to:
            if target in (self.node_id, sender):
                continue
            receipt = self._receipts.get((frame.message_id, target))
            if receipt is not None:
                held.append(Receipt(member=target, signature=receipt[0]))
                continue
            key = (frame.message_id, target)
            job = self._jobs.get(key)
            if job is not None:
                job.upstream[sender] = reply_to
                continue
            if self._relay_jobs >= self.config.max_relay_jobs or not self._bridge_slot(target):
                self.counters.inc(P2PCounter.RELAY_REFUSED_QUOTA)
                continue
            self.counters.inc(P2PCounter.RELAY_STARTED)
            self._relay_jobs += 1
            self._jobs[key] = _Job(
                room_id=frame.room_id,
                message_id=frame.message_id,
                blob=frame.blob,
                expires_at=expires_at,
                target=target,
                hops=min(frame.hops, self.config.max_relay_hops),
                origin=False,
                upstream={sender: reply_to},
                next_at=now,
            )
        return held

    def _on_ack(self, sender: NodeId, frame: AckFrame, now: float) -> None:
        forward: dict[NodeId, tuple[Address, list[Receipt]]] = {}
        for receipt in frame.receipts:
            peer = self._peers.get(receipt.member)
            if peer is None or frame.room_id not in peer.rooms:
                self.counters.inc(P2PCounter.ACK_UNKNOWN_MEMBER)
                continue
            message = receipt_message(frame.room_id, frame.message_id)
            if not verify(peer.public_key, message, receipt.signature):
                self.counters.inc(P2PCounter.REJECTED, label=Refusal.BAD_RECEIPT)
                continue
            key = (frame.message_id, receipt.member)
            job = self._jobs.get(key)
            if job is None:
                self.counters.inc(P2PCounter.ACK_UNSOLICITED)
                continue
            self.counters.inc(P2PCounter.ACK_VERIFIED)
            self._remember_receipt(key, receipt.signature, job.expires_at)
            self._drop_job(key)
            if job.origin:
                self._actions.append(
                    Acked(
                        room_id=job.room_id,
                        message_id=job.message_id,
                        member=receipt.member,
                        via=sender,
                    )
                )
            for up, up_address in job.upstream.items():
                forward.setdefault(up, (up_address, []))[1].append(receipt)
        for up, (up_address, receipts) in forward.items():
            self.counters.inc(P2PCounter.RELAY_RECEIPTS_FORWARDED, len(receipts))
            ack = AckFrame(
                room_id=frame.room_id,
                message_id=frame.message_id,
                receipts=tuple(receipts[:MAX_LIST]),
            )
            self._send(up, up_address, ack)

    # -------------------------------------------------------------- timers

    def next_deadline(self) -> float | None:
        deadlines = [job.next_at for job in self._jobs.values()]
        deadlines += [min(r.next_announce, r.next_lookup) for r in self._rooms.values()]
        deadlines += [entry.deadline for entry in self._reassembly.values()]
        if self._next_status is not None:
            deadlines.append(self._next_status)
        for peer in self._peers.values():
            if peer.probe_sent_at is not None:
                deadlines.append(peer.probe_sent_at + self._probe_timeout(peer))
            else:
                deadlines.append(peer.next_probe)
        return min(deadlines) if deadlines else None

    def on_timer(self, *, now: float) -> None:
        self._timers(now)

    def _timers(self, now: float) -> None:
        config = self.config
        for room in self._rooms.values():
            if now >= room.next_announce:
                room.next_announce = now + config.announce_interval
                value = (
                    encode_announcement(self.address)
                    if room.closed is None
                    else room.closed.announcement
                )
                self._actions.append(
                    Announce(room_id=room.room_id, dht_ident=room.dht_ident, value=value)
                )
            if now >= room.next_lookup:
                room.next_lookup = now + config.lookup_interval
                self._actions.append(LookupMembers(room_id=room.room_id, dht_ident=room.dht_ident))
        self._expire_members(now)
        if self._next_status is not None and now >= self._next_status:
            self._status_round(now)
        for key, entry in list(self._reassembly.items()):
            if entry.deadline <= now:
                del self._reassembly[key]
                self.counters.inc(P2PCounter.PART_TIMEOUT)
        for peer in self._peers.values():
            if peer.probe_sent_at is not None and now >= peer.probe_sent_at + self._probe_timeout(
                peer
            ):
                peer.probe_sent_at = None
                peer.failures += 1
                self.counters.inc(P2PCounter.PROBE_TIMEOUT)
            if peer.probe_sent_at is None and now >= peer.next_probe:
                peer.probe_sent_at = now
                peer.next_probe = now + config.probe_interval
                nonce = self._next_nonce
                self._next_nonce += 1
                peer.probes[nonce] = now
                if len(peer.probes) > PROBES_REMEMBERED:
                    del peer.probes[next(iter(peer.probes))]
                self._send(peer.node_id, peer.address, ProbeFrame(nonce=nonce))
        self._run_jobs(now)
        self._report_reach(now)
        self._forget(now)

    def _run_jobs(self, now: float) -> None:
        config = self.config
        asks: dict[tuple[bytes, NodeId], tuple[_Job, list[NodeId]]] = {}
        committee_asks: dict[bytes, _Job] = {}
        for key, job in list(self._jobs.items()):
            if job.next_at > now:
                continue
            if job.expires_at <= now or job.attempts >= config.max_attempts:
                self._drop_job(key)
                if job.origin:
                    self.counters.inc(P2PCounter.SEND_STALLED)
                    self._actions.append(
                        DeliveryStalled(
                            room_id=job.room_id,
                            message_id=job.message_id,
                            member=job.target,
                            attempts=job.attempts,
                            reason="expired" if job.expires_at <= now else "attempts",
                        )
                    )
                else:
                    self.counters.inc(P2PCounter.RELAY_STALLED)
                continue
            if not job.origin and not self._relay_bandwidth(job, now):
                continue
            job.attempts += 1
            peer = self._peers.get(job.target)
            job.next_at = now + self._resend_after(job.attempts, peer)
            if peer is not None:
                self.counters.inc(P2PCounter.SEND_DIRECT if job.origin else P2PCounter.RELAY_DIRECT)
                self._send_payloads(peer.node_id, peer.address, self._direct_payloads(job))
            unreachable = peer is None or self._status(peer) is PeerStatus.UNREACHABLE
            if job.hops >= 1 and (unreachable or job.attempts > config.relay_after):
                bridges = self._bridges(job)
                for bridge in bridges:
                    job.bridges_asked.add(bridge)
                    asks.setdefault((job.message_id, bridge), (job, []))[1].append(job.target)
                if job.origin and not bridges:  # RLY-7.5: only when no member can bridge
                    committee_asks.setdefault(job.message_id, job)
        for job in committee_asks.values():
            self._ask_committee(job)
        for (_, bridge), (job, targets) in asks.items():
            peer = self._peers[bridge]
            self.counters.inc(P2PCounter.RELAY_ASKED)
            frame = RoomFrame(
                room_id=job.room_id,
                message_id=job.message_id,
                expires_ms=_ms(job.expires_at),
                blob=job.blob,
                hops=job.hops - 1,
                relay_to=tuple(sorted(targets)[:MAX_LIST]),
            )
            self._send_room(bridge, peer.address, frame)

    def set_committee(self, room_id: bytes, relays: Iterable[tuple[NodeId, Address]]) -> None:
        """RLY-1.1: the committee relays of `room_id` (chosen with `select_committee`)."""
        room = self._rooms.get(room_id)
        if room is None:
            raise LocalProtocolError("join the room before giving its committee")
        room.committee = dict(relays)
        # RLY-7.4: the room's reach may change; it is reported at the next timer.

    def _ask_committee(self, job: _Job) -> None:
        """RLY-6.1: a member we cannot reach: every committee relay gets a RELAY request
        (closed rooms only: a relay admits requesters by their room record's proof)."""
        room = self._rooms.get(job.room_id)
        if room is None or room.closed is None or len(job.blob) > MAX_RELAY_BLOB:
            return
        frame = RelayFrame(
            room_id=job.room_id,
            dht_ident=room.closed.dht_ident,
            message_id=job.message_id,
            expires_ms=_ms(job.expires_at),
            blob=job.blob,
        )
        payload = encode_relay_frame(frame)
        for relay, address in sorted(room.committee.items()):
            self.counters.inc(P2PCounter.COMMITTEE_ASKED)
            self._actions.append(
                SendApp(peer=relay, address=address, topic=APP_TOPIC_RELAY, payload=payload)
            )

    def _committee_frame(
        self, relay: NodeId, message_id: bytes
    ) -> tuple[RelayFrame, Address] | None:
        """RLY-2.1: the RELAY request we would send `relay` for `message_id`, if still due."""
        for job in self._jobs.values():
            room = self._rooms.get(job.room_id)
            if job.message_id != message_id or room is None or room.closed is None:
                continue
            address = room.committee.get(relay)
            if address is not None:
                frame = RelayFrame(
                    room_id=job.room_id,
                    dht_ident=room.closed.dht_ident,
                    message_id=job.message_id,
                    expires_ms=_ms(job.expires_at),
                    blob=job.blob,
                )
                return frame, address
        return None

    def relay_busy(self, sender: NodeId, payload: bytes, *, now: float) -> None:
        """RLY-9.4: a committee relay's BUSY: pay its price once per message. Never raises."""
        try:
            busy = decode_busy_frame(payload)
        except RemoteProtocolError as exc:
            self.counters.inc(P2PCounter.REJECTED, label=exc.code)
            return
        self.counters.inc(P2PCounter.RELAY_BUSY)
        key = (sender, busy.message_id)
        if self._committee_frame(sender, busy.message_id) is None:
            self.counters.inc(P2PCounter.REJECTED, label=ErrorCode.UNEXPECTED_RESPONSE)
            return
        if key in self._relay_paid or busy.challenge.effort > self.config.max_pow_effort:
            self.counters.inc(P2PCounter.RELAY_POW_DECLINED)
            return
        token, self._next_pow_token = self._next_pow_token, self._next_pow_token + 1
        if len(self._relay_paid) >= MAX_RELAY_PAID:  # forget messages no longer being sent
            live = {job.message_id for job in self._jobs.values()}
            self._relay_paid = {k for k in self._relay_paid if k[1] in live}
        self._relay_paid.add(key)
        self._relay_pow[token] = key
        self.counters.inc(P2PCounter.RELAY_POW_ASKED)
        # No randomness in the core: any start works, and one per (relay, message, seed)
        # is enough as each pays once (POW-3.2's replay cache is per requester and nonce).
        start = hashlib.sha256(sender + busy.message_id + busy.challenge.seed).digest()
        self._actions.append(
            SolvePow(
                token=token,
                service=sender,
                requester=self.node_id,
                challenge=busy.challenge,
                start=start[:NONCE_SIZE],
                max_tries=self.config.max_pow_tries,
            )
        )

    def relay_pow_solved(self, token: int, solution: PowSolution | None, *, now: float) -> None:
        """RLY-9.4: the driver's answer to `SolvePow`: ask the relay again, paying."""
        key = self._relay_pow.pop(token, None)
        if key is None:
            self.counters.inc(P2PCounter.RELAY_POW_LATE)
            return
        if solution is None:
            self.counters.inc(P2PCounter.RELAY_POW_UNSOLVED)
            return
        relay, message_id = key
        found = self._committee_frame(relay, message_id)
        if found is None:  # delivered, expired or given up meanwhile
            self.counters.inc(P2PCounter.RELAY_POW_LATE)
            return
        frame, address = found
        paid = dataclasses.replace(frame, pow_solution=solution)
        self.counters.inc(P2PCounter.RELAY_POW_PAID)
        self._actions.append(
            SendApp(
                peer=relay, address=address, topic=APP_TOPIC_RELAY, payload=encode_relay_frame(paid)
            )
        )

    def _relay_bandwidth(self, job: _Job, now: float) -> bool:
        """HT-7.6: charge one relay attempt to the BRIDGE budget; False: wait and retry."""
        if self.budget is None:
            return True
        decision = self.budget.bandwidth(Duty.BRIDGE, len(job.blob), now=now)
        if isinstance(decision, Granted):
            return True
        self.counters.inc(P2PCounter.RELAY_THROTTLED)
        wait = decision.retry_after
        job.next_at = now + (self.config.max_backoff if wait is None else max(wait, 0.001))
        if wait is None:
            job.attempts += 1  # it never fits: let the job run out of attempts
        return False

    def _bridges(self, job: _Job) -> list[NodeId]:
        """HT-7.5: up to `max_bridges` reachable members to relay `job`, by capacity."""
        candidates = [
            p
            for p in self._peers.values()
            if job.room_id in p.rooms
            and p.node_id != job.target
            and p.node_id not in job.upstream
            and self._status(p) is PeerStatus.REACHABLE
            and self._may_bridge(p.node_id)
        ]
        candidates.sort(key=lambda p: self._bridge_rank(p, job))
        return [p.node_id for p in candidates[: self.config.max_bridges]]

    def _may_bridge(self, node_id: NodeId) -> bool:
        """CAP-4.2: a member whose advertisement rules out the relay role never bridges."""
        capabilities = self._capacities.get(node_id)
        return capabilities is None or is_eligible(capabilities, Role.RELAY)

    def _bridge_rank(self, peer: _Peer, job: _Job) -> tuple[bool, bool, int, float, bytes]:
        """HT-7.5: not asked yet first; then advertised capacity, highest first (members with
        no advertisement after those with one); last-heard time only breaks ties."""
        capabilities = self._capacities.get(peer.node_id)
        total = score(capabilities).total if capabilities is not None else 0
        asked = peer.node_id in job.bridges_asked
        return (asked, capabilities is None, -total, -peer.last_heard, peer.node_id)

    # ----------------------------------------------------------- internals

    def _status(self, peer: _Peer) -> PeerStatus:
        if peer.failures >= self.config.probe_failures:
            return PeerStatus.UNREACHABLE
        return PeerStatus.REACHABLE if peer.heard else PeerStatus.UNKNOWN

    def _resend_after(self, attempts: int, peer: "_Peer | None") -> float:
        """HT-6.9: the backoff, but never sooner than the member's probe timeout (HT-6.8):
        a receipt cannot come back faster than a probe's answer."""
        backoff = self.config.backoff(attempts)
        if peer is None or peer.srtt is None:
            return backoff
        return max(backoff, self._probe_timeout(peer))

    def _probe_timeout(self, peer: _Peer) -> float:
        """HT-6.8: SRTT + 4 RTTVAR (RFC 6298), within [probe_timeout, max_probe_timeout]."""
        config = self.config
        if peer.srtt is None:
            return config.probe_timeout
        rto = peer.srtt + 4 * peer.rttvar
        return min(config.max_probe_timeout, max(config.probe_timeout, rto))

    def _rtt_sample(self, sender: NodeId, nonce: int, now: float) -> None:
        """HT-6.8: the answer to our last probe, late or not, is one RTT sample."""
        peer = self._peers.get(sender)
        sent_at = None if peer is None else peer.probes.pop(nonce, None)
        if peer is None or sent_at is None:
            return
        sample = max(0.0, now - sent_at)
        if peer.srtt is None:
            peer.srtt, peer.rttvar = sample, sample / 2
        else:
            peer.rttvar = 0.75 * peer.rttvar + 0.25 * abs(peer.srtt - sample)
            peer.srtt = 0.875 * peer.srtt + 0.125 * sample
        self.counters.inc(P2PCounter.RTT_SAMPLES)

    def _heard(self, node_id: NodeId, now: float) -> None:
        peer = self._peers.get(node_id)
        if peer is None:
            return
        peer.heard = True
        peer.last_heard = now
        peer.failures = 0
        peer.probe_sent_at = None

    def _reach(self) -> tuple[Reach, bool, int, int]:
        statuses = [self._status(p) for p in self._peers.values()]
        total = len(statuses)
        reachable = statuses.count(PeerStatus.REACHABLE)
        relayed = sum(
            1
            for p in self._peers.values()
            if self._status(p) is PeerStatus.UNREACHABLE and self._relayable(p)
        )
        if PeerStatus.UNKNOWN in statuses:
            reach = Reach.UNKNOWN
        elif total == 0 or reachable + relayed == 0:
            reach = Reach.NONE if self._rooms else Reach.UNKNOWN
        elif reachable == total:
            reach = Reach.ALL
        else:
            reach = Reach.SOME  # RLY-7.4: members reached through a committee only: some
        return reach, reachable > 0, reachable, total

    def _relayable(self, peer: _Peer) -> bool:
        """RLY-7.4: a committee relay other than the member itself serves one of its rooms."""
        return any(
            set(room.committee) - {peer.node_id}
            for room_id in peer.rooms
            if (room := self._rooms.get(room_id)) is not None
        )

    def _report_reach(self, now: float) -> None:
        current = self._reach()
        if current == self._reported:
            return
        self._reported = current
        reach, anything, reachable, total = current
        self._actions.append(
            ReachabilityChanged(
                reach=reach, anything_reachable=anything, reachable=reachable, members=total, at=now
            )
        )

    def _expire_members(self, now: float) -> None:
        for peer in list(self._peers.values()):
            for room_id, expires_at in list(peer.rooms.items()):
                if expires_at <= now:
                    del peer.rooms[room_id]
                    self.counters.inc(P2PCounter.MEMBER_EXPIRED)
            if not peer.rooms:
                del self._peers[peer.node_id]

    def _send(self, peer: NodeId, address: Address, frame: Frame) -> None:
        payload = encode_frame(frame)
        if self.config.pad_frames:  # PRIV-2.1: ACK, PROBE, STATUS and PART alike
            payload = pad_frame(payload)
        self._actions.append(
            SendApp(peer=peer, address=address, topic=self.config.topic, payload=payload)
        )

    def _send_room(self, peer: NodeId, address: Address, frame: RoomFrame) -> None:
        """HT-7.1: a ROOM frame, in PART frames when it does not fit one APP message."""
        self._send_payloads(peer, address, self._room_payloads(frame))

    def _room_payloads(self, frame: RoomFrame) -> tuple[bytes, ...]:
        """The APP payloads of a ROOM frame: itself or its parts (HT-7.1), padded (PRIV-2.1)."""
        payloads = encode_room_frame(frame)
        if self.config.pad_frames:
            payloads = [pad_frame(payload) for payload in payloads]
        return tuple(payloads)

    def _direct_payloads(self, job: _Job) -> tuple[bytes, ...]:
        """The payloads of `job`'s direct ROOM frame (hops 0, no relay list): the same for
        every member and attempt, so kept for the last DIRECT_PAYLOADS_KEPT messages."""
        expires_ms = _ms(job.expires_at)
        what = (job.room_id, job.blob, expires_ms)
        kept = self._direct.get(job.message_id)
        if kept is not None and kept[0] == what:
            return kept[1]
        frame = RoomFrame(
            room_id=job.room_id, message_id=job.message_id, expires_ms=expires_ms, blob=job.blob
        )
        payloads = self._room_payloads(frame)
        self._direct.pop(job.message_id, None)
        self._direct[job.message_id] = (what, payloads)
        if len(self._direct) > DIRECT_PAYLOADS_KEPT:
            del self._direct[next(iter(self._direct))]
        return payloads

    def _send_payloads(self, peer: NodeId, address: Address, payloads: tuple[bytes, ...]) -> None:
        if len(payloads) > 1:
            self.counters.inc(P2PCounter.PART_SENT, len(payloads))
        for payload in payloads:
            self._actions.append(
                SendApp(peer=peer, address=address, topic=self.config.topic, payload=payload)
            )

    def _drop_job(self, key: tuple[bytes, NodeId]) -> None:
        job = self._jobs.pop(key, None)
        if job is not None and not job.origin:
            self._relay_jobs -= 1
            self._bridging[job.target] -= 1
            if not self._bridging[job.target]:
                del self._bridging[job.target]
                if self.budget is not None:
                    self.budget.close(Duty.BRIDGE, job.target)

    def _bridge_slot(self, target: NodeId) -> bool:
        """HT-7.6: one BRIDGE connection slot per member we relay to; False if refused."""
        if target not in self._bridging:
            budget = self.budget
            if budget is not None and not isinstance(budget.open(Duty.BRIDGE, target), Granted):
                return False
            self._bridging[target] = 0
        self._bridging[target] += 1
        return True

    def set_capacity(self, node_id: NodeId, capabilities: DeviceCapabilities | None) -> None:
        """HT-7.5: `node_id`'s advertised capabilities (CAP-3), or None to forget them."""
        if capabilities is None:
            self._capacities.pop(node_id, None)
        else:
            self._capacities[node_id] = capabilities

    def _first_time(self, message_id: bytes, expires_at: float, now: float) -> bool:
        if message_id in self._seen:
            return False
        if len(self._seen) >= self.config.max_seen:
            # Forget the id closest to expiry (its copies are the least likely to recur).
            while self._seen_expiries:
                _, old = heapq.heappop(self._seen_expiries)
                if self._seen.pop(old, None) is not None:
                    self.counters.inc(P2PCounter.SEEN_EVICTED)
                    break
        self._seen[message_id] = expires_at
        heapq.heappush(self._seen_expiries, (expires_at, message_id))
        return True

    def _remember_receipt(
        self, key: tuple[bytes, NodeId], signature: bytes, expires: float
    ) -> None:
        self._receipts[key] = (signature, expires)
        heapq.heappush(self._receipt_expiries, (expires, key[0], key[1]))

    def _forget(self, now: float) -> None:
        while self._seen_expiries and self._seen_expiries[0][0] <= now:
            _, message_id = heapq.heappop(self._seen_expiries)
            self._seen.pop(message_id, None)
        while self._receipt_expiries and self._receipt_expiries[0][0] <= now:
            _, message_id, member = heapq.heappop(self._receipt_expiries)
            self._receipts.pop((message_id, member), None)


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))
