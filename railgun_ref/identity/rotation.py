"""Signing-key rotation (ROT): a signed handover from an identity's old key to its new one.

Theory of operation
===================

1. ROT-1: a *handover* is the deterministic CBOR map ``{0: 1, 1: old key,
   2: new key, 3: generation, 4: issued ms, 5: expires ms, 6: old signature,
   7: new signature}``. The old key signs ``"railgun/v1/key-rotation-old" ||
   0x00 || CBOR(keys 0..5)``, the new key signs the same body under
   ``"railgun/v1/key-rotation-new" || 0x00``: the old key vouches for its
   successor and the new key accepts the succession (so nobody can claim
   another's key as theirs). ``generation`` counts rotations from the first
   key (0), so a handover moves generation *g - 1* to *g*.
2. ROT-2: the node id follows the key (ID-1.1 is unchanged): the new key
   *is* a new node id, in another part of the key space. Until the handover
   expires, the old key keeps publishing the handover as the value of its
   own ``peer`` record (a *forwarding record*, DHT-3.4 holds: the old id
   publishes about itself), and every peer that learns it replaces the old
   id by the new one wherever it kept it: contacts, room membership (a
   ROTATE change, ROOM-3.9), capability adverts (the new key re-publishes its
   own; adverts still signed by the old key are refused once the rotation is
   known), and E2EE wraps (messages are wrapped to the members' keys after
   the ROTATE, so new messages go to the new key only).
3. ROT-3: a receiver accepts a handover only if both signatures verify, the
   keys are acceptable (ID-2.2) and different, it expires after it was issued
   and at most ``MAX_HANDOVER`` later, and has not expired. A second,
   different handover from an old key already known to have rotated is a
   *fork* -- the old key signed two successors, so it is compromised or
   misused -- and is refused; the first one stays.
4. `RotationTracker` is a sans-IO core holding the handovers a node knows
   until they expire; it answers which key currently speaks for an old id.

Errors are `RotationError` (a `RemoteProtocolError`) with a `RotationRefusal`
and a counter per refusal.
"""

import hashlib
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from railgun_ref.core import cbor
from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.identity.keys import Identity, node_id_of, public_key_problem, verify

__all__ = [
    "DEFAULT_HANDOVER",
    "MAX_HANDOVER",
    "Handover",
    "RotationCounter",
    "RotationError",
    "RotationLearned",
    "RotationRefusal",
    "RotationTracker",
    "decode_handover",
    "sign_handover",
]

OLD_DOMAIN: Final = b"railgun/v1/key-rotation-old\x00"
NEW_DOMAIN: Final = b"railgun/v1/key-rotation-new\x00"
HANDOVER_VERSION: Final = 1
#: ROT-1.3: a handover lasts at most 30 days (ms).
MAX_HANDOVER: Final = 30 * 86_400_000
#: ROT-1.3: the default handover period, seconds (7 days).
DEFAULT_HANDOVER: Final = 7 * 86_400.0
#: ROT-1.1: an encoded handover is at most this many bytes (it fits a DHT value).
MAX_HANDOVER_SIZE: Final = 256
#: ROT-4.2: at most this many rotations are followed from one id.
MAX_CHAIN: Final = 16


class RotationRefusal(StrEnum):
    """ROT-3: why a handover was refused (counter labels)."""

    MALFORMED = "malformed"
    BAD_KEY = "bad-key"
    BAD_OLD_SIGNATURE = "bad-old-signature"  #: not signed by the key it retires
    BAD_NEW_SIGNATURE = "bad-new-signature"  #: not accepted by the key it names
    WRONG_OLD_KEY = "wrong-old-key"  #: retires a key other than the one expected
    EXPIRED = "expired"
    TOO_LONG = "too-long"
    FORK = "fork"  #: the old key already handed over to another key


_CODES: Final = {
    RotationRefusal.MALFORMED: ErrorCode.MALFORMED,
    RotationRefusal.BAD_KEY: ErrorCode.BAD_KEY,
    RotationRefusal.BAD_OLD_SIGNATURE: ErrorCode.BAD_SIGNATURE,
    RotationRefusal.BAD_NEW_SIGNATURE: ErrorCode.BAD_SIGNATURE,
    RotationRefusal.WRONG_OLD_KEY: ErrorCode.WRONG_SENDER,
    RotationRefusal.EXPIRED: ErrorCode.EXPIRED,
    RotationRefusal.TOO_LONG: ErrorCode.TTL_TOO_LONG,
    RotationRefusal.FORK: ErrorCode.FORBIDDEN,
}


class RotationError(RemoteProtocolError):
    """A refused handover; `refusal` names the rule."""

    def __init__(self, refusal: RotationRefusal, message: str) -> None:
        super().__init__(_CODES[refusal], f"key handover: {message}")
        self.refusal = refusal


class RotationCounter(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"  #: label: RotationRefusal
    EXPIRED = "expired"  #: handovers forgotten at their expiry


@dataclass(frozen=True, slots=True, kw_only=True)
class Handover:
    """ROT-1.1: one verified handover; `encoded` is its wire form."""

    old_key: bytes
    new_key: bytes
    generation: int
    issued_ms: int
    expires_ms: int
    encoded: bytes = field(repr=False)

    @property
    def old_id(self) -> NodeId:
        return node_id_of(self.old_key)

    @property
    def new_id(self) -> NodeId:
        return node_id_of(self.new_key)

    @property
    def hash(self) -> bytes:
        return hashlib.sha256(self.encoded).digest()


def _body(old: bytes, new: bytes, generation: int, issued_ms: int, expires_ms: int) -> bytes:
    return cbor.encode(
        {0: HANDOVER_VERSION, 1: old, 2: new, 3: generation, 4: issued_ms, 5: expires_ms}
    )


def sign_handover(
    old: Identity, new: Identity, *, generation: int, issued_ms: int, expires_ms: int
) -> Handover:
    """ROT-1.1: the handover from `old` to `new` (both sign); checked as a receiver would."""
    body = _body(old.public_key, new.public_key, generation, issued_ms, expires_ms)
    value = cbor.decode(body)
    assert isinstance(value, dict)
    value[6] = old.sign(OLD_DOMAIN + body)
    value[7] = new.sign(NEW_DOMAIN + body)
    try:
        return decode_handover(cbor.encode(value), now_ms=issued_ms)
    except RotationError as exc:
        raise LocalProtocolError(f"this handover would be refused: {exc}") from None


def _bytes(value: dict[object, object], key: int, size: int) -> bytes:
    item = value[key]
    if not isinstance(item, bytes) or len(item) != size:
        raise RotationError(RotationRefusal.MALFORMED, f"field {key} must be {size} bytes")
    return item


def _uint(value: dict[object, object], key: int) -> int:
    item = value[key]
    if type(item) is not int or not 0 <= item < 2**64:
        raise RotationError(RotationRefusal.MALFORMED, f"field {key} must be a uint64")
    return item


def decode_handover(data: bytes, *, now_ms: int, expected_old: bytes | None = None) -> Handover:
    """ROT-1, ROT-3: parse and verify a handover. Raises only `RemoteProtocolError`.

    `expected_old` is the key the receiver knows for this identity, if any.
    """
    if len(data) > MAX_HANDOVER_SIZE:
        raise RotationError(RotationRefusal.MALFORMED, "over 256 bytes")
    try:
        value = cbor.decode(data)
    except RemoteProtocolError as exc:
        raise RotationError(RotationRefusal.MALFORMED, exc.message) from None
    if not isinstance(value, dict) or value.keys() != set(range(8)) or value[0] != 1:
        raise RotationError(RotationRefusal.MALFORMED, "must be a version-1 map with keys 0..7")
    old, new = _bytes(value, 1, 32), _bytes(value, 2, 32)
    generation, issued, expires = _uint(value, 3), _uint(value, 4), _uint(value, 5)
    old_sig, new_sig = _bytes(value, 6, 64), _bytes(value, 7, 64)
    if old == new or generation < 1:
        raise RotationError(RotationRefusal.MALFORMED, "old = new key, or generation 0")
    if public_key_problem(old) is not None or public_key_problem(new) is not None:
        raise RotationError(RotationRefusal.BAD_KEY, "unusable key")
    if expected_old is not None and old != expected_old:
        raise RotationError(RotationRefusal.WRONG_OLD_KEY, "retires another key")
    body = _body(old, new, generation, issued, expires)
    if not verify(old, OLD_DOMAIN + body, old_sig):
        raise RotationError(RotationRefusal.BAD_OLD_SIGNATURE, "old key's signature")
    if not verify(new, NEW_DOMAIN + body, new_sig):
        raise RotationError(RotationRefusal.BAD_NEW_SIGNATURE, "new key's signature")
    if not issued < expires <= issued + MAX_HANDOVER:
        raise RotationError(RotationRefusal.TOO_LONG, "expiry not within 30 days of issue")
    if expires <= now_ms:
        raise RotationError(RotationRefusal.EXPIRED, "handover expired")
    return Handover(
        old_key=old,
        new_key=new,
        generation=generation,
        issued_ms=issued,
        expires_ms=expires,
        encoded=data,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RotationLearned:
    """ROT-2.2: replace `old_id` by `new_id` in contacts, rooms and adverts."""

    old_id: NodeId
    new_id: NodeId
    handover: Handover


class RotationTracker:
    """The handovers one node knows, until they expire (a sans-IO core, ROT-3, ROT-4)."""

    def __init__(self) -> None:
        self.counters: Counters[RotationCounter] = Counters()
        self._by_old: dict[NodeId, Handover] = {}
        self._actions: deque[RotationLearned] = deque()

    def accept(self, data: bytes, *, now: float, expected_old: bytes | None = None) -> Handover:
        """ROT-3: verify and keep a handover; raises (and counts) `RotationError`."""
        self.on_timer(now=now)
        try:
            handover = decode_handover(data, now_ms=int(now * 1000), expected_old=expected_old)
            known = self._by_old.get(handover.old_id)
            if known is not None and known.encoded != handover.encoded:
                raise RotationError(RotationRefusal.FORK, "the old key has another successor")
        except RotationError as exc:
            self.counters.inc(RotationCounter.REFUSED, label=exc.refusal)
            raise
        if known is None:
            self._by_old[handover.old_id] = handover
            self.counters.inc(RotationCounter.ACCEPTED)
            self._actions.append(
                RotationLearned(old_id=handover.old_id, new_id=handover.new_id, handover=handover)
            )
        return handover

    def current_id(self, node_id: NodeId) -> NodeId:
        """ROT-4.2: the id that speaks for `node_id` now (itself if it never rotated)."""
        for _ in range(MAX_CHAIN):
            handover = self._by_old.get(node_id)
            if handover is None:
                break
            node_id = handover.new_id
        return node_id

    def is_retired(self, public_key: bytes) -> bool:
        """ROT-2.2: has `public_key` handed over (so records it signs are refused)?"""
        return node_id_of(public_key) in self._by_old

    def on_timer(self, *, now: float) -> None:
        """ROT-4.1: forget handovers at their expiry."""
        now_ms = int(now * 1000)
        for old_id in [k for k, h in self._by_old.items() if h.expires_ms <= now_ms]:
            del self._by_old[old_id]
            self.counters.inc(RotationCounter.EXPIRED)

    def next_deadline(self) -> float | None:
        if not self._by_old:
            return None
        return min(h.expires_ms for h in self._by_old.values()) / 1000

    def next_action(self) -> RotationLearned | None:
        return self._actions.popleft() if self._actions else None
