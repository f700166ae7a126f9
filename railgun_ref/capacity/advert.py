"""Capability advertisements (CAP-3.x): encode, publish, refresh, fetch, verify.

A node advertises its `DeviceCapabilities` as the value of a signed DHT
record under the ``capability`` key type, ident = its own NodeId (DHT-2.1,
DHT-3.4). The DHT record already carries the signature, the publisher key,
a sequence number and an expiry; this module adds:

* the value: deterministic CBOR with small integer keys (CAP-3.1), well
  under the DHT's 256-byte value limit, decoded strictly: any bytes give a
  `DeviceCapabilities` or a `RemoteProtocolError` (CAP-3.2);
* the verification a fetcher runs on every record it is given (CAP-3.5):
  the DHT acceptance checks under the node's capability key (so a record
  signed by anyone else, or stored under another key, is refused), then a
  lifetime bound tighter than the DHT's (capabilities go stale in hours, not
  days), then the value;
* `CapabilityDirectory`, the fetcher's cache: the newest advertisement per
  node wins, an older one is refused as STALE_SEQUENCE, expired ones leave
  (CAP-3.6);
* `Advertiser`, the publisher's schedule: publish at once, refresh at half
  the TTL, and re-publish early (at most once a minute) when the score or
  an eligibility changes (CAP-3.4). It returns actions; the driver stores.

Nothing here does IO: the driver (`NodeHost.advertise_capabilities`,
`NodeHost.fetch_capabilities`) moves the records.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from railgun_ref.capacity.nat import NatType
from railgun_ref.capacity.scoring import score
from railgun_ref.capacity.selection import Candidate, Role, eligibility
from railgun_ref.capacity.types import (
    MAX_BATTERY_PERCENT,
    MAX_CAPACITY_INTEGER,
    Availability,
    BatteryStatus,
    CapabilityError,
    DeviceCapabilities,
    DeviceClass,
)
from railgun_ref.core.constants import MAX_CLOCK_SKEW
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.dht.records import MAX_VALUE_SIZE, Record, check_record, sign_record
from railgun_ref.dht.storage import PutOutcome
from railgun_ref.identity.keys import Identity
from railgun_ref.wire import cbor

#: CAP-3.1: the advertisement format this implementation writes and reads.
ADVERT_VERSION: Final = 1
#: CAP-3.3: the TTL a publisher uses unless configured otherwise, seconds.
DEFAULT_ADVERT_TTL: Final = 1800.0
#: CAP-3.3: the longest TTL a publisher may use, seconds.
MAX_ADVERT_TTL: Final = 24 * 3600.0
#: CAP-3.5: a fetcher refuses an advertisement expiring further ahead than this (TTL + skew).
MAX_ADVERT_LIFETIME: Final = MAX_ADVERT_TTL + MAX_CLOCK_SKEW
#: CAP-3.4: refresh when this fraction of the TTL has passed.
REFRESH_FRACTION: Final = 0.5
#: CAP-3.4: early re-publications (on a change) are at least this far apart, seconds.
MIN_REPUBLISH_INTERVAL: Final = 60.0

#: CAP-3.1: map keys of the advertisement value, in the design's field order.
_VERSION, _CLASS, _UP, _DOWN, _MAX_CONN, _MAX_BW, _TURN, _STORE, _NAT, _BATTERY, _AVAIL = range(11)
_REQUIRED_KEYS: Final = frozenset(range(11)) - {_BATTERY}
_ALL_KEYS: Final = frozenset(range(11))
_BATTERY_LEVEL, _BATTERY_PLUGGED = 0, 1


# ------------------------------------------------------------------ the value


def encode_capabilities(capabilities: DeviceCapabilities) -> bytes:
    """CAP-3.1: the advertisement value of `capabilities`, deterministic CBOR."""
    body: dict[int, Any] = {
        _VERSION: ADVERT_VERSION,
        _CLASS: capabilities.device_class.value,
        _UP: capabilities.upload_bandwidth,
        _DOWN: capabilities.download_bandwidth,
        _MAX_CONN: capabilities.max_relay_connections,
        _MAX_BW: capabilities.max_relay_bandwidth,
        _TURN: capabilities.can_act_as_turn,
        _STORE: capabilities.can_store_messages,
        _NAT: capabilities.nat_type.value,
    }
    battery = capabilities.battery_status
    if battery is not None:
        body[_BATTERY] = {
            _BATTERY_LEVEL: battery.level_percent,
            _BATTERY_PLUGGED: battery.plugged_in,
        }
    body[_AVAIL] = capabilities.availability.value
    data = cbor.encode(body)
    assert len(data) <= MAX_VALUE_SIZE  # CAP-3.1: at most ~130 bytes by construction
    return data


def _malformed(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.MALFORMED, f"capability advertisement: {message}")


def _uint(body: dict[int, Any], key: int, name: str, maximum: int = MAX_CAPACITY_INTEGER) -> int:
    value = body[key]
    if type(value) is not int or not 0 <= value <= maximum:
        raise _malformed(f"{name} must be an integer 0..{maximum}")
    return value


def _flag(body: dict[int, Any], key: int, name: str) -> bool:
    value = body[key]
    if type(value) is not bool:
        raise _malformed(f"{name} must be a boolean")
    return value


_E = TypeVar("_E", DeviceClass, NatType, Availability)


def _text_enum(body: dict[int, Any], key: int, name: str, enum: type[_E]) -> _E:
    value = body[key]
    if type(value) is not str:
        raise _malformed(f"{name} must be a text string")
    try:
        return enum(value)
    except ValueError:
        raise _malformed(f"unknown {name} {value!r}") from None


def decode_capabilities(data: bytes) -> DeviceCapabilities:
    """CAP-3.2: parse an advertisement value; raises only `RemoteProtocolError`.

    TOO_LARGE over 256 bytes; UNSUPPORTED_VERSION for a well-formed map whose
    version (key 0) is an integer other than 1; MALFORMED for anything else
    that is not exactly the CAP-3.1 map.
    """
    if len(data) > MAX_VALUE_SIZE:
        raise RemoteProtocolError(ErrorCode.TOO_LARGE, "capability advertisement over 256 bytes")
    body = cbor.decode(data)
    if type(body) is not dict:
        raise _malformed("not a map")
    version = body.get(_VERSION)
    if type(version) is not int:
        raise _malformed("key 0 (version) must be an integer")
    if version != ADVERT_VERSION:
        raise RemoteProtocolError(
            ErrorCode.UNSUPPORTED_VERSION, f"capability advertisement version {version}"
        )
    keys = set(body)
    if not keys >= _REQUIRED_KEYS or not keys <= _ALL_KEYS:
        raise _malformed("keys must be 0..10 (9 optional)")
    battery: BatteryStatus | None = None
    if _BATTERY in body:
        raw = body[_BATTERY]
        if type(raw) is not dict or set(raw) != {_BATTERY_LEVEL, _BATTERY_PLUGGED}:
            raise _malformed("batteryStatus must be the map {0: level, 1: pluggedIn}")
        battery = BatteryStatus(
            level_percent=_uint(raw, _BATTERY_LEVEL, "batteryStatus level", MAX_BATTERY_PERCENT),
            plugged_in=_flag(raw, _BATTERY_PLUGGED, "batteryStatus pluggedIn"),
        )
    try:
        return DeviceCapabilities(
            device_class=_text_enum(body, _CLASS, "deviceClass", DeviceClass),
            upload_bandwidth=_uint(body, _UP, "uploadBandwidth"),
            download_bandwidth=_uint(body, _DOWN, "downloadBandwidth"),
            max_relay_connections=_uint(body, _MAX_CONN, "maxRelayConnections"),
            max_relay_bandwidth=_uint(body, _MAX_BW, "maxRelayBandwidth"),
            can_act_as_turn=_flag(body, _TURN, "canActAsTurn"),
            can_store_messages=_flag(body, _STORE, "canStoreMessages"),
            nat_type=_text_enum(body, _NAT, "natType", NatType),
            battery_status=battery,
            availability=_text_enum(body, _AVAIL, "availability", Availability),
        )
    except CapabilityError as exc:  # pragma: no cover - every field was checked above
        raise _malformed(str(exc)) from None


# ------------------------------------------------------------------ records


def capability_key(node_id: NodeId) -> bytes:
    """DHT-2.1: the DHT key `node_id` advertises its capabilities under."""
    return derive_key(KeyType.CAPABILITY, node_id)


def sign_advertisement(
    identity: Identity, capabilities: DeviceCapabilities, *, seq: int, expires_ms: int
) -> Record:
    """CAP-3.3: the signed capability record of `identity` (what `Dht.store` publishes)."""
    return sign_record(
        identity,
        key_type=KeyType.CAPABILITY,
        ident=identity.node_id,
        seq=seq,
        expires_ms=expires_ms,
        value=encode_capabilities(capabilities),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Advertisement:
    """A verified capability advertisement (CAP-3.5)."""

    node_id: NodeId  #: the publisher, whose capability key it was under
    capabilities: DeviceCapabilities
    seq: int  #: the record's sequence number: higher is newer
    expires_at: float  #: seconds since the Unix epoch
    record: bytes  #: the record as received (deterministic CBOR)


def verify_advertisement(
    data: bytes, *, now: float, node_id: NodeId | None = None
) -> Advertisement:
    """CAP-3.5: check a capability record received from the DHT; raises only RemoteProtocolError.

    In order: the record's shape (MALFORMED, TOO_LARGE), the DHT acceptance
    checks of DHT-3.3 under `node_id`'s capability key (BAD_KEY,
    BAD_SIGNATURE, WRONG_KEY, FORBIDDEN, EXPIRED, TTL_TOO_LONG), this
    section's lifetime bound (TTL_TOO_LONG), then the value (CAP-3.2).
    Without `node_id` the record must still be a ``capability`` record
    (WRONG_KEY) and name its publisher (FORBIDDEN).
    """
    record = Record.from_cbor_value(cbor.decode(data))
    expected_key = None if node_id is None else capability_key(node_id)
    check_record(record, now=now, key=expected_key)
    if record.key_type is not KeyType.CAPABILITY:
        raise RemoteProtocolError(ErrorCode.WRONG_KEY, "not a capability record")
    if record.expires_at > now + MAX_ADVERT_LIFETIME:
        raise RemoteProtocolError(
            ErrorCode.TTL_TOO_LONG, "a capability advertisement lives at most 24 h"
        )
    capabilities = decode_capabilities(record.value)
    return Advertisement(
        node_id=record.publisher_id,
        capabilities=capabilities,
        seq=record.seq,
        expires_at=record.expires_at,
        record=record.encode(),
    )


def pick_advertisement(
    records: Iterable[bytes], *, now: float, node_id: NodeId
) -> Advertisement | None:
    """The newest valid advertisement of `node_id` among `records` (a `get` result), if any.

    Records that fail `verify_advertisement` are skipped: one forged or stale
    copy from a bad holder must not hide the genuine one (CAP-3.5, CAP-3.6).
    """
    best: Advertisement | None = None
    for data in records:
        try:
            advert = verify_advertisement(data, now=now, node_id=node_id)
        except RemoteProtocolError:
            continue
        if best is None or advert.seq > best.seq:
            best = advert
    return best


class CapabilityDirectory:
    """CAP-3.6: the newest verified advertisement per node, as a fetcher holds them."""

    def __init__(self) -> None:
        self._held: dict[NodeId, Advertisement] = {}

    def __len__(self) -> int:
        return len(self._held)

    def offer(self, data: bytes, *, now: float, node_id: NodeId | None = None) -> PutOutcome:
        """Verify and hold a capability record, or raise RemoteProtocolError saying why not.

        STORED for a node not held (or whose advertisement expired), REPLACED
        for a higher seq, UNCHANGED for the identical record; a lower seq, or
        the same seq with different bytes, is STALE_SEQUENCE.
        """
        advert = verify_advertisement(data, now=now, node_id=node_id)
        held = self.get(advert.node_id, now=now)
        if held is not None:
            if advert.seq < held.seq:
                raise RemoteProtocolError(
                    ErrorCode.STALE_SEQUENCE, f"seq {advert.seq} < held {held.seq}"
                )
            if advert.seq == held.seq:
                if advert.record == held.record:
                    return PutOutcome.UNCHANGED
                raise RemoteProtocolError(
                    ErrorCode.STALE_SEQUENCE, "same seq, different advertisement: refused"
                )
        self._held[advert.node_id] = advert
        return PutOutcome.STORED if held is None else PutOutcome.REPLACED

    def get(self, node_id: NodeId, *, now: float) -> Advertisement | None:
        """The advertisement held for `node_id`, unless it expired by `now` (then it leaves)."""
        held = self._held.get(node_id)
        if held is not None and held.expires_at <= now:
            del self._held[node_id]
            return None
        return held

    def expire(self, *, now: float) -> list[NodeId]:
        """Drop every advertisement expired by `now`; their node ids, ascending."""
        gone = sorted(n for n, advert in self._held.items() if advert.expires_at <= now)
        for node_id in gone:
            del self._held[node_id]
        return gone

    def next_deadline(self) -> float | None:
        """The earliest expiry held, for a driver's timer."""
        return min((advert.expires_at for advert in self._held.values()), default=None)

    def candidates(self, *, now: float) -> list[Candidate]:
        """Every live advertisement as a selection candidate (CAP-4.4), by node id."""
        self.expire(now=now)
        return [
            Candidate(node_id=node_id, capabilities=self._held[node_id].capabilities)
            for node_id in sorted(self._held)
        ]


# ------------------------------------------------------------------ publishing


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishAdvertisement:
    """Action: store `value` under this node's capability key with `ttl` (CAP-3.3)."""

    capabilities: DeviceCapabilities
    value: bytes  #: encode_capabilities(capabilities)
    ttl: float  #: seconds

    key_type: KeyType = KeyType.CAPABILITY


def _profile(capabilities: DeviceCapabilities) -> tuple[object, ...]:
    """What makes a change worth an early re-publication (CAP-3.4)."""
    return (score(capabilities), tuple(eligibility(capabilities, role) for role in Role))


class Advertiser:
    """CAP-3.3, CAP-3.4: when this node (re-)publishes its capability advertisement.

    A `ProtocolCore[PublishAdvertisement]` (CORE-1): the driver calls `update`
    with every fresh reading of its capabilities, `on_timer(now=...)` at
    `next_deadline()` (and after each update), and stores each
    `PublishAdvertisement` it drains from `next_action()`. A change that moves the score
    or an eligibility is published early, but at most once per
    `min_interval`; any other change waits for the regular refresh.
    """

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_ADVERT_TTL,
        refresh_fraction: float = REFRESH_FRACTION,
        min_interval: float = MIN_REPUBLISH_INTERVAL,
    ) -> None:
        if not 0 < ttl <= MAX_ADVERT_TTL:
            raise LocalProtocolError(f"ttl must be within (0, {MAX_ADVERT_TTL}] seconds")
        if not 0 < refresh_fraction < 1:
            raise LocalProtocolError("refresh_fraction must be within (0, 1)")
        if not 0 <= min_interval < ttl * refresh_fraction:
            raise LocalProtocolError("min_interval must be below the refresh interval")
        self.ttl = ttl
        self.refresh_interval = ttl * refresh_fraction
        self.min_interval = min_interval
        self._current: DeviceCapabilities | None = None
        self._published: DeviceCapabilities | None = None
        self._published_at: float | None = None
        self._due: float | None = None
        self._action: PublishAdvertisement | None = None

    @property
    def published(self) -> DeviceCapabilities | None:
        """What was last handed out for publication."""
        return self._published

    def update(self, capabilities: DeviceCapabilities, *, now: float) -> None:
        """A fresh reading of this node's capabilities."""
        self._current = capabilities
        if self._published is None or self._published_at is None:
            self._due = now
        elif capabilities != self._published and _profile(capabilities) != _profile(
            self._published
        ):
            early = max(now, self._published_at + self.min_interval)
            self._due = early if self._due is None else min(self._due, early)

    def next_deadline(self) -> float | None:
        return self._due

    def on_timer(self, *, now: float) -> None:
        """Queue the publication due at `now`, if any, and schedule the next one."""
        if self._current is None or self._due is None or now < self._due:
            return
        self._published = self._current
        self._published_at = now
        self._due = now + self.refresh_interval
        self._action = PublishAdvertisement(
            capabilities=self._current, value=encode_capabilities(self._current), ttl=self.ttl
        )

    def next_action(self) -> PublishAdvertisement | None:
        """CORE-1.2: the publication queued by `on_timer` (only the newest is kept)."""
        action, self._action = self._action, None
        return action
