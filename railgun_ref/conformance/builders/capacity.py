"""capacity.json: device capabilities, score, advertisement, selection, sharing (CAP-x).

Every vector is computed by the reference (`railgun_ref.capacity`) while it is
built; the expected numbers below are also written out by hand where the
spec gives them (scores, rates), and the builder asserts both agree, so a
regression in the reference cannot silently rewrite the file.
"""

import math
from collections.abc import Callable
from functools import cache, partial
from typing import Any, Final, NamedTuple

import cbor2

from railgun_ref.capacity.advert import (
    MAX_ADVERT_LIFETIME,
    CapabilityDirectory,
    capability_key,
    decode_capabilities,
    encode_capabilities,
    sign_advertisement,
    verify_advertisement,
)
from railgun_ref.capacity.scoring import score
from railgun_ref.capacity.selection import Candidate, Role, rank_candidates
from railgun_ref.capacity.sharing import (
    BandwidthRefused,
    CapacitySharing,
    CapacitySharingConfig,
    Granted,
    Refusal,
)
from railgun_ref.capacity.types import CapabilityError, DeviceCapabilities
from railgun_ref.conformance.builders.base import T0, T0_MS, Vectors, flip, seed_for
from railgun_ref.conformance.common import JsonObject
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.dht.keys import KeyType
from railgun_ref.dht.records import RECORD_DOMAIN, sign_record
from railgun_ref.identity.keys import Identity
from railgun_ref.wire import cbor

NOTES: Final = {
    "DeviceClass": "One case per device class of CAP-1.2.",
    "NatType": "One case per NAT type of CAP-1.2.",
    "Availability": "One case per availability value of CAP-1.2.",
    "Bandwidth": "The bandwidth factor: which direction counts and the linear scale.",
    "Boundary": "A value exactly at, or one unit either side of, a limit.",
    "Battery": "A battery status or battery device class.",
    "NonFinite": "A number JSON cannot write (NaN, Infinity): 'nonFinite' sets it.",
    "Negative": "A negative count, bandwidth or level.",
    "Fraction": "A number with a fractional part where an integer is required.",
    "WrongType": "A value of the wrong JSON or CBOR type.",
    "UnknownEnum": "A string that is not a value of its enumeration (CAP-1.2).",
    "Shape": "A missing or unexpected field or key.",
    "Version": "The advertisement format version (CAP-3.1 key 0).",
    "NonCanonical": "Not deterministic CBOR (ENC-1.x).",
    "SizeLimit": "The 256-byte DHT value limit.",
    "Forged": "A record not validly signed by the node it claims to describe.",
    "WrongKey": "A record under another key type or of another node.",
    "Expiry": "The record's expiry relative to now.",
    "Sequence": "Several advertisements of one node with various seq.",
    "TieBreak": "Candidates with equal totals, ordered by NodeId.",
    "Reputation": "Ranked with reputation scores (REP-5.1): rank_score and low-reputation.",
    "Eligibility": "Candidates ruled out by a rule of CAP-4.2.",
    "Duplicate": "The same NodeId twice among the candidates: the caller's error.",
    "ClockBack": "The caller's clock steps backwards.",
    "Disabled": "capacitySharing.enabled is false.",
    "RateCap": "The sharing rate capped by maxRelayBandwidth or rounded down.",
}

HEADER: Final = [
    "Capacity (CAP-x). Capabilities are written in their JSON form (CAP-1.1: the design's",
    "field names and enumeration strings); scores are integers in millipoints (CAP-2.1).",
    "CapabilityScoreTest: score 'capabilities'; 'score' is the breakdown and total.",
    "CapabilityValidationTest: build 'capabilities' after setting each field named in",
    "'nonFinite' (a dotted path) to the IEEE 754 value named ('NaN', 'Infinity',",
    "'-Infinity'); invalid tests name the field refused ('invalidField').",
    "CapabilityEncodeTest: the advertisement value (CAP-3.1) byte for byte.",
    "CapabilityDecodeTest: decode 'value'; valid tests give the capabilities, invalid",
    "ones the code (CAP-3.2).",
    "CapabilityRecordTest: verify 'record' (a DHT record, deterministic CBOR) at 'now'",
    "as an advertisement of 'nodeId' (null: of whichever node published it), CAP-3.5.",
    "CapabilityDirectoryTest: offer each step's record at its 'now' to one directory",
    "(CAP-3.6); each step gives the outcome or the code; 'held' is the seq held per",
    "node after the last step at its 'now'.",
    "SelectionTest: rank 'candidates' for 'role' (CAP-4.x): 'ranked' in order with",
    "totals, 'excluded' by NodeId with every reason in CAP-4.2's order; an invalid",
    "test must be refused as the caller's error.",
    "SharingScriptTest: a device with 'capabilities' and 'config' (the design's",
    "capacitySharing plus 'burst' seconds) created at 'createdAt' has 'rate' and",
    "'burst'; each step requests 'bytes' of bandwidth, or opens or closes the relay",
    "connection 'key', at 'now'; 'granted' or the refusal (kind, limit, inUse,",
    "retryAfter in seconds and retryAfterMs rounded up, or null: never) follow, with",
    "the bytes 'available' after a bandwidth step (IEEE 754 binary64, CAP-5.2) and",
    "the SHOULD reason text of CAP-5.4.",
]

_NODE_IDS: Final = [NodeId(bytes([n]) * 32) for n in range(16)]


def caps_json(**changes: Any) -> JsonObject:
    """A valid JSON-form capabilities object, with `changes` applied (None deletes)."""
    value: JsonObject = {
        "deviceClass": "desktop-standard",
        "uploadBandwidth": 1_250_000,
        "downloadBandwidth": 12_500_000,
        "maxRelayConnections": 20,
        "maxRelayBandwidth": 625_000,
        "canActAsTurn": True,
        "canStoreMessages": True,
        "natType": "open",
        "availability": "always",
    }
    for key, item in changes.items():
        if item is None:
            value.pop(key, None)
        else:
            value[key] = item
    return value


def _caps(value: JsonObject) -> DeviceCapabilities:
    return DeviceCapabilities.from_json(value)


# ------------------------------------------------------------------ score


class _ScoreCase(NamedTuple):
    """Capabilities and the hand-written (class, bandwidth, NAT, availability) points."""

    caps: JsonObject
    want: tuple[int, int, int, int]
    comment: str
    clause: str
    flags: tuple[str, ...]


_CLASS_POINTS: Final = (
    ("server", 30_000),
    ("desktop-powerful", 25_000),
    ("desktop-standard", 20_000),
    ("laptop-plugged", 15_000),
    ("laptop-battery", 10_000),
    ("mobile-wifi", 5_000),
    ("mobile-cellular", 0),
)
#: (upload, download, bandwidth points, comment, extra flags)
_BANDWIDTH_POINTS: Final[tuple[tuple[int, int, int, str, tuple[str, ...]], ...]] = (
    (0, 0, 0, "no bandwidth at all", ("Boundary",)),
    (24, 24, 0, "24 bytes/s: below one millipoint", ("Boundary",)),
    (25, 25, 1, "25 bytes/s: one millipoint", ("Boundary",)),
    (49, 49, 1, "49 bytes/s rounds down to one millipoint", ()),
    (625_000, 625_000, 25_000, "5 Mbps: half marks", ()),
    (1_249_975, 10**7, 49_999, "one millipoint short of full marks", ("Boundary",)),
    (1_249_999, 10**7, 49_999, "1 byte/s under 10 Mbps", ("Boundary",)),
    (1_250_000, 1_250_000, 50_000, "exactly 10 Mbps (10^7 bit/s) both ways", ("Boundary",)),
    (1_250_001, 10**7, 50_000, "1 byte/s over 10 Mbps", ("Boundary",)),
    (1_310_720, 10**7, 50_000, "10 binary megabits: over the SI 10 Mbps", ()),
    (2**53 - 1, 2**53 - 1, 50_000, "the largest bandwidth", ("Boundary",)),
    (10**8, 500_000, 20_000, "fast upload, 4 Mbps download: download counts", ()),
    (400_000, 10**8, 16_000, "asymmetric: 3.2 Mbps upload counts", ()),
)
_NAT_POINTS: Final = (
    ("open", 10_000),
    ("full-cone", 10_000),
    ("restricted", 6_000),
    ("port-restricted", 4_000),
    ("symmetric", 2_000),
    ("unknown", 0),
    ("udp-blocked", 0),
)
_AVAILABILITY_POINTS: Final = (("always", 10_000), ("when-active", 5_000), ("scheduled", 5_000))
_BATTERIES: Final = (
    ({"levelPercent": 100, "pluggedIn": True}, "full battery on mains: same score"),
    ({"levelPercent": 3, "pluggedIn": False}, "3 % on battery: same score"),
)

SCORE_CASES: Final = (
    *(
        _ScoreCase(
            caps_json(deviceClass=name),
            (points, 50_000, 10_000, 10_000),
            f"device class {name}",
            "CAP-2.2",
            ("DeviceClass",),
        )
        for name, points in _CLASS_POINTS
    ),
    *(
        _ScoreCase(
            caps_json(uploadBandwidth=up, downloadBandwidth=down),
            (20_000, points, 10_000, 10_000),
            comment,
            "CAP-2.3",
            ("Bandwidth", *extra),
        )
        for up, down, points, comment, extra in _BANDWIDTH_POINTS
    ),
    *(
        _ScoreCase(
            caps_json(natType=name),
            (20_000, 50_000, points, 10_000),
            f"NAT type {name}",
            "CAP-2.4",
            ("NatType",),
        )
        for name, points in _NAT_POINTS
    ),
    *(
        _ScoreCase(
            caps_json(availability=name),
            (20_000, 50_000, 10_000, points),
            f"availability {name}",
            "CAP-2.5",
            ("Availability",),
        )
        for name, points in _AVAILABILITY_POINTS
    ),
    *(
        _ScoreCase(
            caps_json(deviceClass="laptop-plugged", batteryStatus=battery),
            (15_000, 50_000, 10_000, 10_000),
            comment,
            "CAP-2.6",
            ("Battery",),
        )
        for battery, comment in _BATTERIES
    ),
    _ScoreCase(
        caps_json(deviceClass="server", uploadBandwidth=10**9, downloadBandwidth=10**9),
        (30_000, 50_000, 10_000, 10_000),
        "the best device: 100 points",
        "CAP-2.1",
        (),
    ),
    _ScoreCase(
        caps_json(
            deviceClass="mobile-cellular",
            uploadBandwidth=0,
            natType="unknown",
            availability="when-active",
            batteryStatus={"levelPercent": 15, "pluggedIn": False},
        ),
        (0, 0, 0, 5_000),
        "a phone on cellular with no measured bandwidth: 5 points",
        "CAP-2.1",
        (),
    ),
    _ScoreCase(
        caps_json(
            deviceClass="laptop-plugged",
            uploadBandwidth=312_500,
            downloadBandwidth=6_250_000,
            natType="port-restricted",
            availability="scheduled",
        ),
        (15_000, 12_500, 4_000, 5_000),
        "a typical laptop: 36.5 points",
        "CAP-2.1",
        (),
    ),
)


def _score_tests(v: Vectors) -> None:
    tests = v.group("CapabilityScoreTest", unit="millipoint")
    for case in SCORE_CASES:
        got = score(_caps(case.caps))
        parts = (got.device_class, got.bandwidth, got.nat, got.availability)
        assert parts == case.want, case.comment
        v.test(
            tests,
            comment=case.comment,
            result="valid",
            clause=case.clause,
            flags=case.flags,
            capabilities=case.caps,
            score=got.to_json(),
        )


# ------------------------------------------------------------------ validation


_NON_FINITE: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def apply_non_finite(value: JsonObject, non_finite: dict[str, str]) -> JsonObject:
    """`value` with each dotted path of `non_finite` set to the IEEE value it names."""
    out = {k: dict(item) if isinstance(item, dict) else item for k, item in value.items()}
    for path, name in non_finite.items():
        target = out
        *parents, leaf = path.split(".")
        for parent in parents:
            target = target[parent]
        target[leaf] = _NON_FINITE[name]
    return out


class _ValidationCase(NamedTuple):
    """Capabilities to build; `invalid_field` the field refused (None: valid)."""

    caps: JsonObject
    comment: str
    clause: str
    flags: tuple[str, ...]
    invalid_field: str | None = None
    non_finite: dict[str, str] | None = None


_TOP: Final = 2**53 - 1
_LEVEL: Final = "batteryStatus.levelPercent"
_NON_FINITE_FIELDS: Final = (
    ("uploadBandwidth", "NaN"),
    ("downloadBandwidth", "Infinity"),
    ("maxRelayBandwidth", "-Infinity"),
    ("maxRelayConnections", "NaN"),
)
_UNKNOWN_ENUMS: Final = (
    ("deviceClass", "laptop"),
    ("deviceClass", "Server"),
    ("deviceClass", "desktop_powerful"),
    ("natType", "cone"),
    ("natType", "Symmetric"),
    ("availability", "never"),
    ("availability", ""),
)


def _battery(level: object, plugged: object = True, **more: object) -> JsonObject:
    return caps_json(batteryStatus={"levelPercent": level, "pluggedIn": plugged, **more})


_V = _ValidationCase
VALIDATION_CASES: Final = (
    _V(caps_json(), "all fields, no battery", "CAP-1.1", ()),
    _V(_battery(0, False), "battery at 0 %", "CAP-1.3", ("Battery", "Boundary")),
    _V(_battery(100), "battery at 100 %", "CAP-1.3", ("Battery", "Boundary")),
    _V(
        caps_json(
            uploadBandwidth=0, downloadBandwidth=0, maxRelayConnections=0, maxRelayBandwidth=0
        ),
        "every count and bandwidth 0",
        "CAP-1.3",
        ("Boundary",),
    ),
    _V(
        caps_json(
            uploadBandwidth=_TOP,
            downloadBandwidth=_TOP,
            maxRelayConnections=_TOP,
            maxRelayBandwidth=_TOP,
        ),
        "every count and bandwidth 2^53 - 1",
        "CAP-1.3",
        ("Boundary",),
    ),
    _V(
        caps_json(uploadBandwidth=1_000_000.0),
        "a whole number written 1000000.0 is the integer 1000000",
        "CAP-1.3",
        ("Fraction",),
    ),
    *(
        _V(caps_json(deviceClass=name), f"device class {name}", "CAP-1.2", ("DeviceClass",))
        for name in ("server", "mobile-cellular")
    ),
    *(
        _V(caps_json(natType=name), f"NAT type {name}", "CAP-1.2", ("NatType",))
        for name in ("port-restricted", "udp-blocked")
    ),
    _V(caps_json(availability="scheduled"), "availability scheduled", "CAP-1.2", ("Availability",)),
    *(
        _V(caps_json(), f"{path} is {name}", "CAP-1.3", ("NonFinite",), path, {path: name})
        for path, name in _NON_FINITE_FIELDS
    ),
    _V(
        _battery(50, False),
        "battery level is NaN",
        "CAP-1.3",
        ("NonFinite", "Battery"),
        _LEVEL,
        {_LEVEL: "NaN"},
    ),
    *(
        _V(caps_json(**{field: -1}), f"{field} is -1", "CAP-1.3", ("Negative",), field)
        for field in ("uploadBandwidth", "downloadBandwidth", "maxRelayConnections")
    ),
    _V(_battery(-1), "battery level -1", "CAP-1.3", ("Negative", "Battery", "Boundary"), _LEVEL),
    _V(_battery(101), "battery level 101", "CAP-1.3", ("Battery", "Boundary"), _LEVEL),
    _V(_battery(50.5), "battery level 50.5", "CAP-1.3", ("Battery", "Fraction"), _LEVEL),
    _V(
        caps_json(uploadBandwidth=1_250_000.5),
        "uploadBandwidth 1250000.5",
        "CAP-1.3",
        ("Fraction",),
        "uploadBandwidth",
    ),
    _V(
        caps_json(maxRelayBandwidth=2**53),
        "maxRelayBandwidth 2^53",
        "CAP-1.3",
        ("Boundary",),
        "maxRelayBandwidth",
    ),
    _V(
        caps_json(uploadBandwidth="1250000"),
        "a bandwidth written as a string",
        "CAP-1.3",
        ("WrongType",),
        "uploadBandwidth",
    ),
    _V(
        caps_json(maxRelayConnections=True),
        "a count written as a boolean",
        "CAP-1.3",
        ("WrongType",),
        "maxRelayConnections",
    ),
    _V(
        caps_json(canActAsTurn=1),
        "canActAsTurn written as a number",
        "CAP-1.3",
        ("WrongType",),
        "canActAsTurn",
    ),
    _V(
        _battery(80, "yes"),
        "pluggedIn written as a string",
        "CAP-1.3",
        ("WrongType", "Battery"),
        "batteryStatus.pluggedIn",
    ),
    *(
        _V(caps_json(**{field: value}), f"{field} {value!r}", "CAP-1.2", ("UnknownEnum",), field)
        for field, value in _UNKNOWN_ENUMS
    ),
    _V(
        caps_json(deviceClass=3),
        "deviceClass written as a number",
        "CAP-1.3",
        ("WrongType",),
        "deviceClass",
    ),
    _V(caps_json(natType=None), "natType missing", "CAP-1.3", ("Shape",), "natType"),
    _V(caps_json(availability=None), "availability missing", "CAP-1.3", ("Shape",), "availability"),
    _V(caps_json(cpuCores=8), "a field CAP-1.1 does not have", "CAP-1.3", ("Shape",), "cpuCores"),
    _V(
        {**caps_json(), "batteryStatus": None},
        "batteryStatus null (absent is the way to say none)",
        "CAP-1.3",
        ("Shape", "Battery"),
        "batteryStatus",
    ),
    _V(
        caps_json(batteryStatus={"levelPercent": 80}),
        "batteryStatus without pluggedIn",
        "CAP-1.3",
        ("Shape", "Battery"),
        "batteryStatus.pluggedIn",
    ),
    _V(
        _battery(80, True, charging=True),
        "batteryStatus with a field of the W3C Battery API",
        "CAP-1.3",
        ("Shape", "Battery"),
        "batteryStatus.charging",
    ),
)


def _validated(case: _ValidationCase) -> JsonObject:
    """The expected fields of `case`: the normalized capabilities or the field refused."""
    try:
        built = DeviceCapabilities.from_json(apply_non_finite(case.caps, case.non_finite or {}))
    except CapabilityError as exc:
        assert exc.field == case.invalid_field, (case.comment, exc)
        return {"invalidField": case.invalid_field}
    assert case.invalid_field is None, case.comment
    return {"normalized": built.to_json()}


def _validation_tests(v: Vectors) -> None:
    tests = v.group("CapabilityValidationTest")
    for case in VALIDATION_CASES:
        fields: JsonObject = {"capabilities": case.caps}
        if case.non_finite:
            fields["nonFinite"] = case.non_finite
        v.test(
            tests,
            comment=case.comment,
            result="valid" if case.invalid_field is None else "invalid",
            clause=case.clause,
            flags=case.flags,
            **fields,
            **_validated(case),
        )


# ------------------------------------------------------------------ the value


_ENCODE_CASES: Final = [
    (caps_json(), "desktop, no battery", ()),
    (
        caps_json(
            deviceClass="laptop-plugged",
            uploadBandwidth=625_000,
            downloadBandwidth=5_000_000,
            maxRelayBandwidth=312_500,
            canActAsTurn=False,
            natType="restricted",
            availability="when-active",
            batteryStatus={"levelPercent": 80, "pluggedIn": True},
        ),
        "laptop with a battery status",
        ("Battery",),
    ),
    (
        caps_json(
            deviceClass="desktop-powerful",
            uploadBandwidth=2**53 - 1,
            downloadBandwidth=2**53 - 1,
            maxRelayConnections=2**53 - 1,
            maxRelayBandwidth=2**53 - 1,
            natType="port-restricted",
            availability="when-active",
            batteryStatus={"levelPercent": 100, "pluggedIn": False},
        ),
        "the largest value: every integer 2^53 - 1, longest strings",
        ("Boundary", "SizeLimit", "Battery"),
    ),
    (
        caps_json(
            deviceClass="mobile-cellular",
            uploadBandwidth=0,
            downloadBandwidth=0,
            maxRelayConnections=0,
            maxRelayBandwidth=0,
            canActAsTurn=False,
            canStoreMessages=False,
            natType="symmetric",
            availability="scheduled",
            batteryStatus={"levelPercent": 0, "pluggedIn": False},
        ),
        "a phone offering nothing",
        ("Boundary", "Battery"),
    ),
    (
        caps_json(
            deviceClass="server", natType="full-cone", uploadBandwidth=23, downloadBandwidth=24
        ),
        "integers at the one-byte head limit (23, 24)",
        ("Boundary",),
    ),
]


def _encode_tests(v: Vectors) -> None:
    tests = v.group("CapabilityEncodeTest", maxValueSize=256)
    for caps, comment, flags in _ENCODE_CASES:
        value = encode_capabilities(_caps(caps))
        assert decode_capabilities(value) == _caps(caps)
        v.test(
            tests,
            comment=comment,
            result="valid",
            clause="CAP-3.1",
            flags=flags,
            capabilities=caps,
            value=value.hex(),
            size=len(value),
        )


def _map(**changes: Any) -> dict[int, Any]:
    """The CAP-3.1 map of `caps_json()` with integer-keyed `changes` (k<n>=..., None deletes)."""
    body: dict[int, Any] = cbor.decode(encode_capabilities(_caps(caps_json())))
    for name, item in changes.items():
        key = int(name[1:])
        if item is None:
            body.pop(key, None)
        else:
            body[key] = item
    return dict(sorted(body.items()))


def _replace_once(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1, (data.hex(), old.hex())
    return data.replace(old, new)


class _DecodeCase(NamedTuple):
    """A CAP-3.1 value as received; `error` the refusal code (None: decodes)."""

    data: bytes
    comment: str
    flags: tuple[str, ...]
    error: ErrorCode | None = None
    clause: str = "CAP-3.2"


_GOOD_VALUE: Final = cbor.encode(_map())
_MALFORMED: Final = ErrorCode.MALFORMED
_VERSION: Final = ErrorCode.UNSUPPORTED_VERSION
_SWAPPED: Final = {1: _map()[1], 0: _map()[0], **{k: v for k, v in _map().items() if k > 1}}
_OVERSIZED: Final = cbor.encode({**_map(), 11: bytes(256 - len(_GOOD_VALUE) - 3 + 1)})
assert len(_OVERSIZED) == 257
_D = _DecodeCase
DECODE_CASES: Final = (
    _D(_GOOD_VALUE, "the desktop of the encode tests", ()),
    _D(cbor.encode(_map(k9={0: 42, 1: False})), "with a battery map", ("Battery",)),
    _D(
        cbor.encode(_map(k2=2**53 - 1)),
        "uploadBandwidth 2^53 - 1",
        ("Boundary",),
        clause="CAP-1.3",
    ),
    _D(b"\xff", "not CBOR", ("NonCanonical",), _MALFORMED),
    _D(b"", "empty", ("Shape",), _MALFORMED),
    _D(cbor.encode([1, "server"]), "an array, not a map", ("WrongType",), _MALFORMED),
    _D(cbor.encode(_map(k0=2)), "version 2", ("Version",), _VERSION),
    _D(cbor.encode(_map(k0=0)), "version 0", ("Version",), _VERSION),
    _D(
        cbor.encode({**_map(k0=2), 11: b"future"}),
        "version 2 with a key version 1 lacks: the version is checked first",
        ("Version", "Shape"),
        _VERSION,
    ),
    _D(cbor.encode(_map(k0="1")), "version as text", ("Version", "WrongType"), _MALFORMED),
    _D(cbor.encode(_map(k0=None)), "no version key", ("Version", "Shape"), _MALFORMED),
    _D(cbor.encode(_map(k8=None)), "natType (key 8) missing", ("Shape",), _MALFORMED),
    _D(cbor.encode({**_map(), 11: 0}), "an unknown key 11", ("Shape",), _MALFORMED),
    _D(cbor.encode(_map(k2=-1)), "uploadBandwidth -1", ("Negative",), _MALFORMED, "CAP-1.3"),
    _D(
        cbor.encode(_map(k3=2**53)),
        "downloadBandwidth 2^53",
        ("Boundary",),
        _MALFORMED,
        "CAP-1.3",
    ),
    _D(
        cbor.encode(_map(k4=b"\x14")),
        "maxRelayConnections as bytes",
        ("WrongType",),
        _MALFORMED,
    ),
    _D(cbor.encode(_map(k6=1)), "canActAsTurn as the integer 1", ("WrongType",), _MALFORMED),
    _D(cbor.encode(_map(k7=None)), "canStoreMessages missing", ("Shape",), _MALFORMED),
    _D(cbor.encode(_map(k1="laptop")), "deviceClass 'laptop'", ("UnknownEnum",), _MALFORMED),
    _D(cbor.encode(_map(k1=1)), "deviceClass as an integer", ("WrongType",), _MALFORMED),
    _D(cbor.encode(_map(k8="SYMMETRIC")), "natType upper case", ("UnknownEnum",), _MALFORMED),
    _D(cbor.encode(_map(k10="never")), "availability 'never'", ("UnknownEnum",), _MALFORMED),
    _D(
        cbor.encode(_map(k9={0: 101, 1: True})),
        "battery level 101",
        ("Battery", "Boundary"),
        _MALFORMED,
        "CAP-1.3",
    ),
    _D(
        cbor.encode(_map(k9={0: 50, 1: True, 2: 0})),
        "battery map with a key 2",
        ("Battery", "Shape"),
        _MALFORMED,
    ),
    _D(
        cbor.encode(_map(k9=[50, True])),
        "battery as an array",
        ("Battery", "WrongType"),
        _MALFORMED,
    ),
    _D(
        cbor.encode(_map(k9={0: 50, 1: 1})),
        "battery pluggedIn as an integer",
        ("Battery", "WrongType"),
        _MALFORMED,
    ),
    _D(_GOOD_VALUE + b"\x00", "a trailing byte", ("NonCanonical",), _MALFORMED),
    _D(cbor2.dumps(_SWAPPED), "keys 0 and 1 out of order", ("NonCanonical",), _MALFORMED),
    _D(
        _replace_once(
            _GOOD_VALUE, b"\x05\x1a\x00\x09\x89\x68", b"\x05\x1b" + (625_000).to_bytes(8, "big")
        ),
        "maxRelayBandwidth 625000 in a non-shortest 8-byte head",
        ("NonCanonical",),
        _MALFORMED,
    ),
    _D(
        _replace_once(_GOOD_VALUE, b"\x06\xf5", b"\x06\xf9\x3c\x00"),
        "canActAsTurn as a half-precision float 1.0",
        ("NonCanonical", "WrongType"),
        _MALFORMED,
    ),
    _D(_OVERSIZED, "257 bytes: over the DHT value limit", ("SizeLimit",), ErrorCode.TOO_LARGE),
)


def _decoded(case: _DecodeCase) -> JsonObject:
    """The expected fields of `case`: the capabilities or the refusal code."""
    try:
        got = decode_capabilities(case.data)
    except RemoteProtocolError as exc:
        assert exc.code is case.error, (case.comment, exc)
        return {"expectedError": exc.code.name}
    assert case.error is None, case.comment
    return {"capabilities": got.to_json()}


def _decode_tests(v: Vectors) -> None:
    tests = v.group("CapabilityDecodeTest", maxValueSize=256)
    for case in DECODE_CASES:
        v.test(
            tests,
            comment=case.comment,
            result="valid" if case.error is None else "invalid",
            clause=case.clause,
            flags=case.flags,
            value=case.data.hex(),
            **_decoded(case),
        )


# ------------------------------------------------------------------ records


@cache
def _publisher(n: int) -> Identity:
    return Identity.from_seed(seed_for(f"capacity/publisher-{n}"))


_ALICE_CAPS: Final = caps_json(batteryStatus={"levelPercent": 64, "pluggedIn": True})
_LIFETIME_MS: Final = round(MAX_ADVERT_LIFETIME * 1000)


def _alice_value() -> bytes:
    return encode_capabilities(_caps(_ALICE_CAPS))


def _signed_ad(
    n: int = 1,
    *,
    key_type: KeyType = KeyType.CAPABILITY,
    seq: int = T0_MS,
    ttl_ms: int = 1_800_000,
    payload: bytes | None = None,
) -> bytes:
    """A record publisher `n` signs over its own node id (alice is 1, mallory 2)."""
    identity = _publisher(n)
    return sign_record(
        identity,
        key_type=key_type,
        ident=identity.node_id,
        seq=seq,
        expires_ms=T0_MS + ttl_ms,
        value=_alice_value() if payload is None else payload,
    ).encode()


@cache
def _advert() -> bytes:
    """Alice's 30-minute advertisement, made by `sign_advertisement`."""
    alice = _publisher(1)
    caps = _caps(_ALICE_CAPS)
    record = sign_advertisement(alice, caps, seq=T0_MS, expires_ms=T0_MS + 1_800_000).encode()
    assert record == _signed_ad()
    return record


def _advert_with(**changes: object) -> Callable[[], bytes]:
    """Alice's advertisement with fields (k<n>=...) replaced after signing."""
    return lambda: cbor.encode(
        {**cbor.decode(_advert()), **{int(k[1:]): x for k, x in changes.items()}}
    )


def _flipped_signature() -> bytes:
    fields = cbor.decode(_advert())
    return cbor.encode({**fields, 6: flip(fields[6], 9)})


def _resigned_by_mallory() -> bytes:
    """Alice's advertisement with mallory's key, signed by mallory: ident is not hers."""
    mallory = _publisher(2)
    unsigned = {**cbor.decode(_advert()), 2: mallory.public_key}
    del unsigned[6]
    return cbor.encode({**unsigned, 6: mallory.sign(RECORD_DOMAIN + cbor.encode(unsigned))})


class _RecordCase(NamedTuple):
    """A record as received; checked as alice's advertisement (`for_alice`) or anyone's."""

    make: Callable[[], bytes]
    comment: str
    clause: str
    flags: tuple[str, ...]
    error: ErrorCode | None = None
    for_alice: bool = True


_R = _RecordCase
RECORD_CASES: Final = (
    _R(_advert, "a 30-minute advertisement of the node asked for", "CAP-3.3", ()),
    _R(_advert, "the same, not asked for a particular node", "CAP-3.5", (), for_alice=False),
    _R(
        partial(_signed_ad, ttl_ms=_LIFETIME_MS),
        "expires exactly now + 24 h + 300 s",
        "CAP-3.5",
        ("Expiry", "Boundary"),
    ),
    _R(
        partial(_signed_ad, ttl_ms=_LIFETIME_MS + 1),
        "expires 1 ms past now + 24 h + 300 s",
        "CAP-3.5",
        ("Expiry", "Boundary"),
        ErrorCode.TTL_TOO_LONG,
    ),
    _R(
        partial(_signed_ad, ttl_ms=7 * 86_400_000),
        "a 7-day record: fine for the DHT, too long for capabilities",
        "CAP-3.5",
        ("Expiry",),
        ErrorCode.TTL_TOO_LONG,
    ),
    _R(
        partial(_signed_ad, ttl_ms=0),
        "expires exactly now",
        "CAP-3.5",
        ("Expiry", "Boundary"),
        ErrorCode.EXPIRED,
    ),
    _R(
        partial(_signed_ad, ttl_ms=-60_000),
        "expired a minute ago",
        "CAP-3.5",
        ("Expiry",),
        ErrorCode.EXPIRED,
    ),
    _R(
        _flipped_signature,
        "one signature bit flipped",
        "CAP-3.5",
        ("Forged",),
        ErrorCode.BAD_SIGNATURE,
    ),
    _R(
        _advert_with(k5=encode_capabilities(_caps(caps_json(deviceClass="server")))),
        "the value upgraded to server after signing",
        "CAP-3.5",
        ("Forged",),
        ErrorCode.BAD_SIGNATURE,
    ),
    _R(
        _resigned_by_mallory,
        "mallory signs a capability record naming alice",
        "CAP-3.5",
        ("Forged",),
        ErrorCode.FORBIDDEN,
    ),
    _R(
        partial(_signed_ad, 2),
        "mallory's own valid advertisement, offered as alice's",
        "CAP-3.5",
        ("WrongKey",),
        ErrorCode.WRONG_KEY,
    ),
    _R(
        partial(_signed_ad, key_type=KeyType.PEER),
        "alice's peer record (same ident, another key type)",
        "CAP-3.5",
        ("WrongKey",),
        ErrorCode.WRONG_KEY,
    ),
    _R(
        partial(_signed_ad, key_type=KeyType.PEER),
        "alice's peer record, not asked for a node: still not a capability record",
        "CAP-3.5",
        ("WrongKey",),
        ErrorCode.WRONG_KEY,
        for_alice=False,
    ),
    _R(
        partial(_signed_ad, payload=cbor.encode(_map(k0=2))),
        "validly signed, value of format version 2",
        "CAP-3.5",
        ("Version",),
        ErrorCode.UNSUPPORTED_VERSION,
    ),
    _R(
        partial(_signed_ad, payload=b"\xa1\x00\x01"),
        "validly signed, value of version 1 missing every field",
        "CAP-3.5",
        ("Shape",),
        ErrorCode.MALFORMED,
    ),
    _R(
        lambda: _advert()[:-1],
        "the record cut short",
        "CAP-3.5",
        ("Shape",),
        ErrorCode.MALFORMED,
    ),
)


def _verified(record: bytes, node_id: NodeId | None, case: _RecordCase) -> JsonObject:
    """The expected fields of `case`: what the advertisement says, or the refusal code."""
    try:
        advert = verify_advertisement(record, now=T0, node_id=node_id)
    except RemoteProtocolError as exc:
        assert exc.code is case.error, (case.comment, exc)
        return {"expectedError": exc.code.name}
    assert case.error is None, case.comment
    return {
        "publisherId": advert.node_id.hex(),
        "seq": str(advert.seq),
        "expiresMs": round(advert.expires_at * 1000),
        "capabilities": advert.capabilities.to_json(),
    }


def _record_tests(v: Vectors) -> None:
    alice = _publisher(1)
    tests = v.group(
        "CapabilityRecordTest",
        publisherSeed=alice.seed.hex(),
        publisherKey=alice.public_key.hex(),
        publisherId=alice.node_id.hex(),
        capabilityKey=capability_key(alice.node_id).hex(),
        maxLifetime=MAX_ADVERT_LIFETIME,
    )
    for case in RECORD_CASES:
        record = case.make()
        node_id = alice.node_id if case.for_alice else None
        v.test(
            tests,
            comment=case.comment,
            result="valid" if case.error is None else "invalid",
            clause=case.clause,
            flags=case.flags,
            record=record.hex(),
            nodeId=None if node_id is None else node_id.hex(),
            now=T0,
            **_verified(record, node_id, case),
        )


# ------------------------------------------------------------------ directory


def _directory_ad(n: int, seq: int, ttl_s: int, **changes: Any) -> bytes:
    caps = _caps(caps_json(**changes))
    return sign_advertisement(_publisher(n), caps, seq=seq, expires_ms=seq + ttl_s * 1000).encode()


#: The advertisements the directory tests offer, by name.
_DIRECTORY_ADS: Final[dict[str, Callable[[], bytes]]] = {
    "a1": partial(_directory_ad, 1, T0_MS, 1800),
    "a2": partial(_directory_ad, 1, T0_MS + 60_000, 1800, natType="symmetric"),
    "twin": partial(_directory_ad, 1, T0_MS, 1800, availability="when-active"),
    "b1": partial(_directory_ad, 3, T0_MS + 5, 600, deviceClass="server"),
    "short": partial(_directory_ad, 1, T0_MS + 120_000, 60),
}
#: The publishers by name: alice is publisher 1, bob publisher 3.
_DIRECTORY_NODES: Final = {"alice": 1, "bob": 3}


class _DirectoryCase(NamedTuple):
    """Steps (now, advertisement name, node asked for or None) offered to one directory."""

    steps: tuple[tuple[float, str, str | None], ...]
    comment: str
    flags: tuple[str, ...]
    result: str


DIRECTORY_CASES: Final = (
    _DirectoryCase(
        ((T0, "a1", "alice"), (T0 + 60, "a2", "alice"), (T0 + 61, "a2", "alice")),
        "a newer advertisement replaces; the same one again changes nothing",
        ("Sequence",),
        "valid",
    ),
    _DirectoryCase(
        ((T0 + 60, "a2", "alice"), (T0 + 61, "a1", "alice")),
        "an older advertisement after a newer one is stale",
        ("Sequence",),
        "invalid",
    ),
    _DirectoryCase(
        ((T0, "a1", "alice"), (T0 + 1, "twin", None)),
        "the same seq with a different value is refused",
        ("Sequence",),
        "invalid",
    ),
    _DirectoryCase(
        ((T0, "a1", "alice"), (T0 + 1, "b1", "bob"), (T0 + 2, "a2", None)),
        "two nodes held side by side",
        ("Sequence",),
        "valid",
    ),
    _DirectoryCase(
        ((T0 + 120, "short", "alice"), (T0 + 180, "a1", "alice")),
        "after the held advertisement expired an older one is taken (it is still valid)",
        ("Sequence", "Expiry"),
        "valid",
    ),
    _DirectoryCase(
        ((T0 + 1800, "a1", "alice"),),
        "an advertisement offered at its expiry",
        ("Expiry", "Boundary"),
        "invalid",
    ),
)


def _offer_ad(
    directory: CapabilityDirectory, now: float, name: str, asked: str | None
) -> JsonObject:
    """Offer one named advertisement at `now`; the step's record with its outcome or code."""
    data = _DIRECTORY_ADS[name]()
    node_id = None if asked is None else _publisher(_DIRECTORY_NODES[asked]).node_id
    step: JsonObject = {
        "now": now,
        "record": data.hex(),
        "nodeId": None if node_id is None else node_id.hex(),
    }
    try:
        step["outcome"] = directory.offer(data, now=now, node_id=node_id).name
    except RemoteProtocolError as exc:
        step["expectedError"] = exc.code.name
    return step


def _held_seqs(directory: CapabilityDirectory, now: float) -> dict[str, str]:
    held: dict[str, str] = {}
    for candidate in directory.candidates(now=now):
        advert = directory.get(candidate.node_id, now=now)
        assert advert is not None
        held[candidate.node_id.hex()] = str(advert.seq)
    return held


def _directory_tests(v: Vectors) -> None:
    tests = v.group(
        "CapabilityDirectoryTest",
        publishers=[
            {"name": name, "nodeId": _publisher(n).node_id.hex()}
            for name, n in _DIRECTORY_NODES.items()
        ],
    )
    for case in DIRECTORY_CASES:
        directory = CapabilityDirectory()
        steps = [_offer_ad(directory, *step) for step in case.steps]
        v.test(
            tests,
            comment=case.comment,
            result=case.result,
            clause="CAP-3.6",
            flags=case.flags,
            steps=steps,
            held=_held_seqs(directory, case.steps[-1][0]),
        )


# ------------------------------------------------------------------ selection


_PLUGGED: Final = {"levelPercent": 90, "pluggedIn": True}
_SAME: Final = caps_json(deviceClass="desktop-standard")

#: A mixed population: one node ruled out by each rule of CAP-4.2 and some for none.
_POPULATION: Final[tuple[tuple[NodeId, JsonObject], ...]] = (
    (_NODE_IDS[9], caps_json(deviceClass="server", uploadBandwidth=10**8, natType="full-cone")),
    (_NODE_IDS[3], caps_json(deviceClass="desktop-powerful", natType="restricted")),
    (
        _NODE_IDS[5],
        caps_json(deviceClass="desktop-standard", natType="symmetric", canActAsTurn=False),
    ),
    (
        _NODE_IDS[7],
        caps_json(
            deviceClass="laptop-plugged",
            uploadBandwidth=500_000,
            natType="port-restricted",
            availability="when-active",
            batteryStatus=_PLUGGED,
        ),
    ),
    (
        _NODE_IDS[2],
        caps_json(
            deviceClass="laptop-battery",
            availability="when-active",
            batteryStatus={"levelPercent": 72, "pluggedIn": False},
        ),
    ),
    (
        _NODE_IDS[4],
        caps_json(
            deviceClass="mobile-wifi",
            uploadBandwidth=250_000,
            canActAsTurn=False,
            canStoreMessages=False,
            natType="symmetric",
            availability="when-active",
            batteryStatus={"levelPercent": 95, "pluggedIn": True},
        ),
    ),
    (
        _NODE_IDS[6],
        caps_json(
            deviceClass="mobile-cellular",
            uploadBandwidth=1_250_000,
            natType="symmetric",
            availability="when-active",
        ),
    ),
    (
        _NODE_IDS[8],
        caps_json(deviceClass="desktop-standard", maxRelayConnections=0, natType="unknown"),
    ),
    (_NODE_IDS[1], caps_json(deviceClass="desktop-standard", natType="udp-blocked")),
)


def _on_battery(level: int | None, device_class: str = "laptop-battery") -> JsonObject:
    battery = None if level is None else {"levelPercent": level, "pluggedIn": False}
    return caps_json(deviceClass=device_class, batteryStatus=battery)


#: Battery levels and classes around the limits of CAP-4.3.
_BATTERIES_POPULATION: Final[tuple[tuple[NodeId, JsonObject], ...]] = (
    (_NODE_IDS[1], _on_battery(49)),
    (_NODE_IDS[2], _on_battery(50)),
    (_NODE_IDS[3], _on_battery(None)),
    (_NODE_IDS[4], caps_json(deviceClass="laptop-battery", batteryStatus=_PLUGGED)),
    (_NODE_IDS[5], _on_battery(100, "desktop-standard")),
    (_NODE_IDS[6], _on_battery(None, "laptop-plugged")),
    (_NODE_IDS[7], _on_battery(80, "mobile-wifi")),
)


class _SelectionCase(NamedTuple):
    role: Role
    candidates: tuple[tuple[NodeId, JsonObject], ...]
    comment: str
    clause: str
    flags: tuple[str, ...]
    reputation: tuple[tuple[NodeId, int], ...] | None = None  #: REP-5.1 scores, if any


SELECTION_CASES: Final = (
    *(
        _SelectionCase(
            role,
            _POPULATION,
            f"a mixed population, role {role.value}",
            "CAP-4.2",
            ("Eligibility", "Battery"),
        )
        for role in Role
    ),
    _SelectionCase(
        Role.RELAY,
        (
            (_NODE_IDS[12], _SAME),
            (_NODE_IDS[2], _SAME),
            (_NODE_IDS[10], _SAME),
            (NodeId(bytes(31) + b"\xff"), _SAME),
        ),
        "four equal totals: NodeId bytes ascending",
        "CAP-4.4",
        ("TieBreak",),
    ),
    _SelectionCase(
        Role.SFU_HOST,
        (
            (_NODE_IDS[1], caps_json(uploadBandwidth=1_249_975)),
            (_NODE_IDS[2], caps_json(uploadBandwidth=1_250_000)),
            (_NODE_IDS[0], caps_json(uploadBandwidth=1_249_999)),
        ),
        "one millipoint decides before the NodeId does",
        "CAP-4.4",
        ("TieBreak", "Boundary"),
    ),
    *(
        _SelectionCase(
            role,
            _BATTERIES_POPULATION,
            f"battery rules, role {role.value}",
            "CAP-4.3",
            ("Battery", "Boundary"),
        )
        for role in Role
    ),
    _SelectionCase(
        Role.TURN,
        (
            (_NODE_IDS[1], _SAME),
            (_NODE_IDS[2], caps_json(deviceClass="server")),
            (_NODE_IDS[1], _SAME),
        ),
        "a NodeId given twice",
        "CAP-4.4",
        ("Duplicate",),
    ),
    _SelectionCase(Role.MESSAGE_STORAGE, (), "no candidates: nothing ranked", "CAP-4.4", ()),
    _SelectionCase(
        Role.RELAY,
        (
            (_NODE_IDS[1], caps_json(deviceClass="server")),
            (_NODE_IDS[2], _SAME),
            (_NODE_IDS[3], caps_json(deviceClass="server")),
            (_NODE_IDS[4], _SAME),
        ),
        "with reputation: known beats fresh, shunned excluded, unknown counts 0",
        "REP-5.1",
        ("Reputation",),
        ((_NODE_IDS[2], 20_000), (_NODE_IDS[3], -10_001), (_NODE_IDS[4], -10_000)),
    ),
)


def _ranked(case: _SelectionCase) -> JsonObject | None:
    """The ranking of `case`, or None if the reference refuses the candidates."""
    built = [Candidate(node_id=n, capabilities=_caps(c)) for n, c in case.candidates]
    reputation = None if case.reputation is None else dict(case.reputation)
    try:
        ranking = rank_candidates(built, case.role, reputation=reputation)
    except LocalProtocolError:
        return None
    return {
        "ranked": [
            {
                "nodeId": r.node_id.hex(),
                "total": r.score.total,
                **({} if reputation is None else {"rank": r.rank}),
            }
            for r in ranking.ranked
        ],
        "excluded": [
            {"nodeId": n.hex(), "reasons": [reason.value for reason in reasons]}
            for n, reasons in ranking.excluded
        ],
    }


def _selection_tests(v: Vectors) -> None:
    tests = v.group("SelectionTest")
    for case in SELECTION_CASES:
        ranked = _ranked(case)
        v.test(
            tests,
            comment=case.comment,
            result="invalid" if ranked is None else "valid",
            clause=case.clause,
            flags=case.flags,
            role=case.role.value,
            candidates=[{"nodeId": n.hex(), "capabilities": c} for n, c in case.candidates],
            **(
                {}
                if case.reputation is None
                else {"reputation": {n.hex(): score for n, score in case.reputation}}
            ),
            **(ranked or {}),
        )


# ------------------------------------------------------------------ sharing


def _outcome_json(outcome: Granted | Refusal) -> JsonObject:
    if isinstance(outcome, Granted):
        return {"granted": True, "limit": outcome.limit, "inUse": outcome.in_use}
    out: JsonObject = {
        "granted": False,
        "kind": outcome.kind.value,
        "limit": outcome.limit,
        "inUse": outcome.in_use,
        "retryAfter": outcome.retry_after,
        "retryAfterMs": outcome.retry_after_ms if isinstance(outcome, BandwidthRefused) else None,
        "reason": outcome.reason(),
    }
    return out


class _SharingCase(NamedTuple):
    """A device sharing capacity: steps (seconds after T0, op, bytes or connection key) and
    the hand-written token-bucket rate and burst it must get."""

    caps: JsonObject
    config: CapacitySharingConfig
    steps: tuple[tuple[float, str, Any], ...]
    comment: str
    clause: str
    flags: tuple[str, ...]
    rate: int
    burst: int


_SMALL: Final = caps_json(uploadBandwidth=2000, maxRelayBandwidth=10**6)
_DEFAULT_SHARING: Final = CapacitySharingConfig()

SHARING_CASES: Final = (
    _SharingCase(
        _SMALL,
        _DEFAULT_SHARING,
        (
            (0.0, "bandwidth", 600),
            (0.0, "bandwidth", 600),
            (0.25, "bandwidth", 600),
            (0.25, "bandwidth", 1001),
            (0.25, "bandwidth", 1000),
            (10.0, "bandwidth", 1000),
            (10.0, "bandwidth", 0),
        ),
        "rate 1000 B/s, burst 1000 B: grant, refuse with retry-after, refill, never-fits",
        "CAP-5.2",
        ("Boundary",),
        1000,
        1000,
    ),
    _SharingCase(
        _SMALL,
        _DEFAULT_SHARING,
        (
            (10.0, "bandwidth", 1000),
            (9.0, "bandwidth", 1),
            (9.5, "bandwidth", 1),
            (10.5, "bandwidth", 500),
            (10.5, "bandwidth", 1),
        ),
        "the clock steps back a second: no tokens minted, then refill from the mark",
        "CAP-5.2",
        ("ClockBack",),
        1000,
        1000,
    ),
    _SharingCase(
        _SMALL,
        CapacitySharingConfig(burst=0.5),
        ((0.0, "bandwidth", 500), (0.0, "bandwidth", 501), (0.125, "bandwidth", 125)),
        "half a second of burst",
        "CAP-5.2",
        ("Boundary",),
        1000,
        500,
    ),
    _SharingCase(
        caps_json(uploadBandwidth=10**7, maxRelayBandwidth=10**6),
        _DEFAULT_SHARING,
        ((0.0, "bandwidth", 10**6), (0.0, "bandwidth", 250_000)),
        "half of 80 Mbps upload capped at maxRelayBandwidth 1 MB/s",
        "CAP-5.1",
        ("RateCap",),
        10**6,
        10**6,
    ),
    _SharingCase(
        caps_json(uploadBandwidth=1_000_001, maxRelayBandwidth=10**6),
        CapacitySharingConfig(max_upload_share=0.3),
        ((0.0, "bandwidth", 300_000), (0.0, "bandwidth", 1)),
        "share 0.3 of 1000001 B/s: 300000.3 rounds down",
        "CAP-5.1",
        ("RateCap",),
        300_000,
        300_000,
    ),
    _SharingCase(
        _SMALL,
        CapacitySharingConfig(max_upload_share=0.0),
        ((0.0, "bandwidth", 0), (0.0, "bandwidth", 1)),
        "share 0: nothing ever fits",
        "CAP-5.4",
        ("Boundary",),
        0,
        0,
    ),
    _SharingCase(
        _SMALL,
        CapacitySharingConfig(enabled=False),
        ((0.0, "bandwidth", 1), (0.0, "open", "peer-a")),
        "sharing disabled: every request refused",
        "CAP-5.4",
        ("Disabled",),
        0,
        0,
    ),
    _SharingCase(
        caps_json(maxRelayConnections=3),
        _DEFAULT_SHARING,
        (
            (0.0, "open", "peer-a"),
            (0.0, "open", "peer-b"),
            (0.0, "open", "peer-c"),
            (0.0, "open", "peer-d"),
            (1.0, "close", "peer-b"),
            (1.0, "open", "peer-d"),
            (1.0, "open", "peer-e"),
        ),
        "the device's maxRelayConnections 3 is below the config's 20",
        "CAP-5.3",
        ("Boundary",),
        625_000,
        625_000,
    ),
    _SharingCase(
        caps_json(maxRelayConnections=100),
        CapacitySharingConfig(max_relay_connections=2),
        ((0.0, "open", "a"), (0.0, "open", "b"), (0.0, "open", "c")),
        "the config's 2 connections is below the device's 100",
        "CAP-5.3",
        ("Boundary",),
        625_000,
        625_000,
    ),
)


def _share_step(sharing: CapacitySharing, offset: float, op: str, arg: Any) -> JsonObject:
    """Run one sharing step at T0 + `offset`; its JSON record with the outcome."""
    now = T0 + offset
    step: JsonObject = {"now": now, "op": op}
    if op == "bandwidth":
        step["bytes"] = arg
        step.update(_outcome_json(sharing.request_bandwidth(arg, now=now)))
        step["available"] = sharing.available(now=now)
    elif op == "open":
        step["key"] = arg
        step.update(_outcome_json(sharing.open_relay_connection(arg)))
    else:
        step["key"] = arg
        sharing.close_relay_connection(arg)
        step["inUse"] = sharing.connections_in_use
    return step


def _sharing_tests(v: Vectors) -> None:
    tests = v.group("SharingScriptTest")
    for case in SHARING_CASES:
        sharing = CapacitySharing(_caps(case.caps), case.config, now=T0)
        assert (sharing.rate, sharing.burst) == (case.rate, case.burst), case.comment
        steps = [_share_step(sharing, *step) for step in case.steps]
        refused = any(step.get("granted") is False for step in steps)
        config = case.config
        v.test(
            tests,
            comment=case.comment,
            result="invalid" if refused else "valid",
            clause=case.clause,
            flags=case.flags,
            capabilities=case.caps,
            config={
                "enabled": config.enabled,
                "maxUploadShare": config.max_upload_share,
                "maxRelayConnections": config.max_relay_connections,
                "burst": config.burst,
            },
            createdAt=T0,
            rate=case.rate,
            burst=case.burst,
            steps=steps,
        )


_BUILDERS: Final[list[Callable[[Vectors], None]]] = [
    _score_tests,
    _validation_tests,
    _encode_tests,
    _decode_tests,
    _record_tests,
    _directory_tests,
    _selection_tests,
    _sharing_tests,
]


def build() -> JsonObject:
    v = Vectors("capacity", "railgun-capacity-v1", HEADER, NOTES)
    for builder in _BUILDERS:
        builder(v)
    return v.document()
