"""Capacity (CAP): the spec's tables against the code, and capacity.json against the reference.

`test_vectors.py` runs every vector of every area; this file adds what is
particular to capacity.json: that it covers every enumeration value and
boundary the spec names, that its runner checks are not vacuous, and that
the numbers in paper/spec.md's CAP tables are the code's.
"""

import copy
import re
from typing import Any

import pytest

from railgun_ref.capacity import Availability, DeviceClass, Ineligibility, NatType, Role
from railgun_ref.capacity.advert import (
    ADVERT_VERSION,
    DEFAULT_ADVERT_TTL,
    MAX_ADVERT_LIFETIME,
    MAX_ADVERT_TTL,
    MIN_REPUBLISH_INTERVAL,
    REFRESH_FRACTION,
)
from railgun_ref.capacity.scoring import (
    AVAILABILITY_SCORES,
    CLASS_SCORES,
    FULL_BANDWIDTH,
    NAT_SCORES,
)
from railgun_ref.capacity.selection import MIN_BATTERY_PERCENT
from railgun_ref.capacity.sharing import CapacitySharingConfig
from railgun_ref.capacity.types import MAX_CAPACITY_INTEGER
from railgun_ref.conformance import runner
from railgun_ref.conformance.traceability import SPEC_PATH, parse_spec

SPEC = SPEC_PATH.read_text(encoding="utf-8")
CAP = SPEC[SPEC.index("## 13. Capacity (CAP)") :]
VECTORS = list(runner.iter_vectors("capacity"))


def _table_after(anchor: str) -> list[list[str]]:
    """The body rows of the first Markdown table after `anchor` in the CAP section."""
    rows: list[list[str]] = []
    for line in CAP[CAP.index(anchor) :].splitlines()[1:]:
        if line.startswith("|"):
            rows.append([cell.strip().strip("`") for cell in line.strip("|").split("|")])
        elif rows:
            break
    return rows[2:]


def _of_type(kind: str) -> list[dict[str, Any]]:
    return [test for group, test in VECTORS if group["type"] == kind]


@pytest.mark.clause("CAP-2.2", "CAP-2.4")
def test_score_tables_match_the_code() -> None:
    """CAP-2.2, CAP-2.4: the class and NAT tables of the spec are the code's."""
    classes = {name: int(points) for name, points in _table_after("**CAP-2.2**")}
    assert classes == {c.value: p for c, p in CLASS_SCORES.items()}
    nats = {name: int(points) for name, points in _table_after("**CAP-2.4**")}
    assert nats == {n.value: p for n, p in NAT_SCORES.items()}
    assert {a.value: p for a, p in AVAILABILITY_SCORES.items()} == {
        "always": 10_000,
        "when-active": 5_000,
        "scheduled": 5_000,
    }


def test_enumeration_table_matches_the_code() -> None:
    """CAP-1.2: the spec lists exactly the enum members."""
    rows = {name: cells.replace("`", "") for name, cells in _table_after("**CAP-1.2**")}
    for name, enum in (
        ("DeviceClass", DeviceClass),
        ("NatType", NatType),
        ("Availability", Availability),
    ):
        assert rows[name].split(", ") == [member.value for member in enum]


def test_ineligibility_table_matches_the_code() -> None:
    """CAP-4.2: the reasons, in the table's order, are the enum's."""
    reasons: list[str] = []
    for cells in _table_after("**CAP-4.2**"):
        for reason in cells[0].replace("`", "").split(", "):
            if reason not in reasons:
                reasons.append(reason)
    assert reasons == [r.value for r in Ineligibility]
    assert MIN_BATTERY_PERCENT == 50


def test_parameter_table_matches_the_code() -> None:
    """The CAP parameter table against the constants and defaults."""
    rows = {name: value for name, value, _ in _table_after("## 13. Capacity (CAP)")}

    def number(name: str) -> float:
        match = re.match(r"[\d.]+", rows[name])
        assert match is not None, rows[name]
        return float(match.group())

    assert rows["largest count or bandwidth"] == "2^53 − 1" and MAX_CAPACITY_INTEGER == 2**53 - 1
    assert number("full bandwidth score from") == FULL_BANDWIDTH
    assert number("advertisement format version") == ADVERT_VERSION
    assert number("advertisement TTL (default)") == DEFAULT_ADVERT_TTL
    assert number("advertisement TTL (maximum)") == MAX_ADVERT_TTL
    assert number("advertisement lifetime a fetcher accepts") == MAX_ADVERT_LIFETIME
    assert rows["refresh"] == "after half the TTL" and REFRESH_FRACTION == 0.5
    assert number("early re-publication spacing") == MIN_REPUBLISH_INTERVAL
    assert number("battery level for relay or sfu-host on battery") == MIN_BATTERY_PERCENT
    config = CapacitySharingConfig()
    assert number("maxUploadShare (default)") == config.max_upload_share
    assert number("maxRelayConnections (default)") == config.max_relay_connections
    assert number("bucket depth (default)") == config.burst


def test_cap_clauses_are_numbered_in_order() -> None:
    """Every CAP clause the code cites exists, in document order."""
    ids = [c.id for c in parse_spec(SPEC) if c.id.startswith("CAP-")]
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i[4:].split(".")))
    assert len(ids) == len(set(ids))
    assert {f"CAP-{m}.1" for m in range(1, 7)} <= set(ids)  # sections 1..6 all present


# ------------------------------------------------------------------ coverage of the file


@pytest.mark.clause("CAP-2.2", "CAP-2.4", "CAP-2.5")
def test_score_vectors_cover_every_value() -> None:
    """Every class, NAT type and availability value is scored by some vector."""
    tests = _of_type("CapabilityScoreTest")
    seen = {
        field: {t["capabilities"][field] for t in tests}
        for field in ("deviceClass", "natType", "availability")
    }
    assert seen["deviceClass"] == {c.value for c in DeviceClass}
    assert seen["natType"] == {n.value for n in NatType}
    assert seen["availability"] == {a.value for a in Availability}


@pytest.mark.clause("CAP-2.3")
def test_score_vectors_pin_the_bandwidth_boundaries() -> None:
    """0, just under, at and over 10 Mbps, and 10 binary megabits."""
    rates = {
        min(t["capabilities"]["uploadBandwidth"], t["capabilities"]["downloadBandwidth"]): t[
            "score"
        ]["bandwidth"]
        for t in _of_type("CapabilityScoreTest")
    }
    assert rates[0] == 0
    assert rates[FULL_BANDWIDTH - 1] == 49_999
    assert rates[FULL_BANDWIDTH] == rates[FULL_BANDWIDTH + 1] == 50_000
    assert rates[10 * 2**20 // 8] == 50_000


@pytest.mark.clause("CAP-1.3")
def test_validation_vectors_refuse_nan_negatives_and_unknown_strings() -> None:
    """NaN, infinities, negatives and unknown enum strings each have an invalid vector."""
    invalid = [t for t in _of_type("CapabilityValidationTest") if t["result"] == "invalid"]
    non_finite = {v for t in invalid for v in t.get("nonFinite", {}).values()}
    assert non_finite == {"NaN", "Infinity", "-Infinity"}
    flags = {flag for t in invalid for flag in t["flags"]}
    assert {"Negative", "UnknownEnum", "Fraction", "WrongType", "Shape"} <= flags


@pytest.mark.clause("CAP-4.2", "CAP-4.3")
def test_selection_vectors_cover_every_role_and_reason() -> None:
    tests = [t for t in _of_type("SelectionTest") if t["result"] == "valid"]
    assert {t["role"] for t in tests} == {r.value for r in Role}
    reasons = {r for t in tests for x in t["excluded"] for r in x["reasons"]}
    assert reasons == {r.value for r in Ineligibility}


@pytest.mark.clause("CAP-3.5")
def test_record_vectors_cover_forgery_and_staleness() -> None:
    codes = {t.get("expectedError") for t in _of_type("CapabilityRecordTest")}
    assert {"BAD_SIGNATURE", "FORBIDDEN", "WRONG_KEY", "EXPIRED", "TTL_TOO_LONG"} <= codes


def _is(result: str) -> Any:
    return lambda test: test["result"] == result


TAMPERINGS = [
    pytest.param(
        "CapabilityScoreTest",
        lambda t: True,
        lambda t: t["score"].update(total=t["score"]["total"] + 1),
        id="score-total",
    ),
    pytest.param(
        "CapabilityValidationTest",
        _is("invalid"),
        lambda t: t.update(invalidField="natType" if t["invalidField"] != "natType" else "x"),
        id="validation-field",
    ),
    pytest.param(
        "CapabilityValidationTest",
        _is("valid"),
        lambda t: t.update(result="invalid", invalidField="x"),
        id="validation-result",
    ),
    pytest.param(
        "CapabilityEncodeTest", lambda t: True, lambda t: t.update(value="a0"), id="encode-value"
    ),
    pytest.param(
        "CapabilityDecodeTest",
        _is("invalid"),
        lambda t: t.update(expectedError="QUOTA"),
        id="decode-code",
    ),
    pytest.param(
        "CapabilityRecordTest",
        _is("valid"),
        lambda t: t["capabilities"].update(natType="symmetric"),
        id="record-capabilities",
    ),
    pytest.param(
        "CapabilityRecordTest",
        _is("invalid"),
        lambda t: t.update(result="valid"),
        id="record-result",
    ),
    pytest.param(
        "CapabilityDirectoryTest",
        lambda t: bool(t["held"]),
        lambda t: t.update(held={}),
        id="directory-held",
    ),
    pytest.param(
        "SelectionTest",
        lambda t: len(t.get("ranked", [])) > 1,
        lambda t: t["ranked"].reverse(),
        id="selection-order",
    ),
    pytest.param(
        "SelectionTest",
        _is("invalid"),
        lambda t: t.update(result="valid", ranked=[], excluded=[]),
        id="selection-duplicate",
    ),
    pytest.param(
        "SharingScriptTest",
        lambda t: True,
        lambda t: t["steps"][-1].update(granted=not t["steps"][-1].get("granted", True)),
        id="sharing-step",
    ),
    pytest.param(
        "SharingScriptTest",
        lambda t: any(s.get("retryAfter") for s in t["steps"]),
        lambda t: [
            s.update(retryAfter=s["retryAfter"] * 2) for s in t["steps"] if s.get("retryAfter")
        ],
        id="sharing-retry-after",
    ),
]


@pytest.mark.parametrize(("kind", "applies", "mutate"), TAMPERINGS)
def test_runner_catches_a_tampered_capacity_vector(kind: str, applies: Any, mutate: Any) -> None:
    """The capacity checks are not vacuous: changing an expectation makes the vector fail."""
    tampered = 0
    for group, test in VECTORS:
        if group["type"] != kind or not applies(test):
            continue
        candidate = copy.deepcopy(test)
        mutate(candidate)
        if candidate == test:
            continue
        result = runner.run_test("capacity", group, candidate)
        assert not result.passed, f"capacity-{test['tcId']} still passes after tampering"
        tampered += 1
    assert tampered > 0
