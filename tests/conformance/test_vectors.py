"""Every committed vector against the reference, every file against its schema, and freshness.

The vectors are data other implementations load; here the reference must agree
with each one (`railgun_ref.conformance.runner`), each file must match the
JSON schema it names, and the files must be what the generator produces now.
"""

import copy
import json
from typing import Any

import jsonschema
import nacl.bindings
import nacl.exceptions
import nacl.signing
import pytest

from railgun_ref.conformance import generate, runner
from railgun_ref.conformance.common import (
    VECTOR_AREAS,
    load_schema,
    load_vectors,
    vector_file_name,
)
from railgun_ref.conformance.traceability import SPEC_PATH, parse_spec
from railgun_ref.identity import ed25519_math, verify
from railgun_ref.identity.keys import Identity
from railgun_ref.wire import cbor

ALL_VECTORS = [
    pytest.param(area, group, test, id=f"{area}-{test['tcId']}")
    for area in VECTOR_AREAS
    for group, test in runner.iter_vectors(area)
]


@pytest.mark.parametrize(("area", "group", "test"), ALL_VECTORS)
def test_reference_agrees_with_vector(
    area: str, group: dict[str, Any], test: dict[str, Any]
) -> None:
    result = runner.run_test(area, group, test)
    assert result.passed, f"{result.test_id} [{result.clause}] {test['comment']}: {result.detail}"


@pytest.mark.parametrize("area", VECTOR_AREAS)
def test_file_matches_its_schema(area: str) -> None:
    document = load_vectors(area)
    schema = load_schema(area)
    assert document["schema"] == f"{area}_schema.json"
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = [
        f"{list(error.absolute_path)}: {error.message}"
        for error in jsonschema.Draft202012Validator(schema).iter_errors(document)
    ]
    assert errors == []


@pytest.mark.parametrize("area", VECTOR_AREAS)
def test_schema_refuses_broken_tests(area: str) -> None:
    """The schemas are not vacuous: a test without tcId or with a bad result is refused."""
    validator = jsonschema.Draft202012Validator(load_schema(area))
    for breakage in ("drop-tcId", "bad-result", "bad-clause", "extra-field"):
        document = copy.deepcopy(load_vectors(area))
        test = document["testGroups"][0]["tests"][0]
        if breakage == "drop-tcId":
            del test["tcId"]
        elif breakage == "bad-result":
            test["result"] = "maybe"
        elif breakage == "bad-clause":
            test["clause"] = "ENV 2.4"
        else:
            test["unexpected"] = 1
        assert not validator.is_valid(document), breakage


@pytest.mark.parametrize("area", VECTOR_AREAS)
def test_file_structure(area: str) -> None:
    """tcIds are unique, counts right, every flag explained, every clause in the spec."""
    document = load_vectors(area)
    tests = [test for group in document["testGroups"] for test in group["tests"]]
    ids = [test["tcId"] for test in tests]
    assert len(ids) == len(set(ids)) == document["numberOfTests"]
    flags = {flag for test in tests for flag in test["flags"]}
    assert flags == set(document["notes"])
    clauses = {clause.id for clause in parse_spec(SPEC_PATH.read_text(encoding="utf-8"))}
    assert {test["clause"] for test in tests} <= clauses
    results = {test["result"] for test in tests}
    assert "invalid" in results, "every area needs cases that must be refused"


def test_committed_vectors_are_fresh() -> None:
    """`railgun-ref conformance vectors --check`: the generator reproduces the files exactly."""
    built = generate.build_all()
    assert list(generate.stale_files(built)) == []
    assert generate.main(check=True) == 0


def test_check_reports_a_stale_file(monkeypatch: pytest.MonkeyPatch) -> None:
    real = generate.read_committed

    def tampered(area: str) -> str | None:
        text = real(area)
        return None if text is None else text.replace('"valid"', '"invalid"', 1)

    monkeypatch.setattr(generate, "read_committed", tampered)
    assert sorted(generate.stale_files(generate.build_all())) == sorted(
        f"{vector_file_name(area)} differs from what the generator produces"
        for area in VECTOR_AREAS
    )
    assert generate.main(check=True) == 1


def test_generator_is_deterministic() -> None:
    assert generate.build_all() == generate.build_all()


def _other_outcome(step: dict[str, Any]) -> None:
    """Make a store step expect an outcome other than the one it has."""
    step.pop("expectedError", None)
    step["outcome"] = "STORED" if step.get("outcome") == "REPLACED" else "REPLACED"


def _is(result: str) -> Any:
    return lambda test: test["result"] == result


@pytest.mark.parametrize(
    ("area", "applies", "mutate"),
    [
        pytest.param("cbor", _is("valid"), lambda t: t.update(diagnostic="1"), id="cbor-value"),
        pytest.param("cbor", _is("invalid"), lambda t: t.update(result="valid"), id="cbor-result"),
        pytest.param(
            "envelope",
            lambda t: "expectedError" in t,
            lambda t: t.update(expectedError="REPLAY"),
            id="envelope-code",
        ),
        pytest.param(
            "envelope",
            lambda t: "decoded" in t,
            lambda t: t["decoded"].update(timestampMs=1),
            id="envelope-decoded",
        ),
        pytest.param(
            "ed25519", _is("valid"), lambda t: t.update(msg=t["msg"] + "00"), id="ed25519-msg"
        ),
        pytest.param(
            "ed25519",
            _is("invalid"),
            lambda t: t.update(cofactored=not t["cofactored"]),
            id="ed25519-equation",
        ),
        pytest.param("framing", lambda t: t["frames"], lambda t: t.update(frames=[]), id="frames"),
        pytest.param(
            "identity", _is("valid"), lambda t: t.update(result="invalid"), id="identity-result"
        ),
        pytest.param(
            "node_ping",
            _is("valid"),
            lambda t: t["steps"][0]["expect"].update(requestsInFlight=7),
            id="node-step",
        ),
        pytest.param(
            "node_ping",
            _is("invalid"),
            lambda t: t["counters"].update({"received.datagram": 0}),
            id="node-counters",
        ),
        pytest.param(
            "dht_geometry",
            lambda t: t.get("bucketIndex") is not None,
            lambda t: t.update(bucketIndex=t["bucketIndex"] + 1),
            id="dht-bucket",
        ),
        pytest.param(
            "dht_geometry", lambda t: "key" in t, lambda t: t.update(key="00" * 32), id="dht-key"
        ),
        pytest.param(
            "dht_records",
            lambda t: "signature" in t,
            lambda t: t.update(signature="00" * 64),
            id="dht-record-signature",
        ),
        pytest.param(
            "dht_records",
            lambda t: "expectedError" in t,
            lambda t: t.update(expectedError="QUOTA"),
            id="dht-record-code",
        ),
        pytest.param(
            "dht_records",
            lambda t: bool(t.get("held")),
            lambda t: t.update(held=[]),
            id="dht-store-held",
        ),
        pytest.param(
            "dht_records",
            lambda t: "steps" in t,
            lambda t: _other_outcome(t["steps"][-1]),
            id="dht-store-outcome",
        ),
        pytest.param(
            "dht_lookup",
            lambda t: True,
            lambda t: t["steps"][0].update(expect={"step": "waiting", "until": None}),
            id="dht-lookup-step",
        ),
        pytest.param(
            "dht_lookup",
            lambda t: any("closest" in s.get("expect", {}) for s in t["steps"]),
            lambda t: [
                s["expect"].update(closest=[])
                for s in t["steps"]
                if "closest" in s.get("expect", {})
            ],
            id="dht-lookup-result",
        ),
        pytest.param(
            "dht_messages", _is("valid"), lambda t: t.update(decoded={}), id="dht-message-decoded"
        ),
        pytest.param(
            "dht_messages",
            _is("invalid"),
            lambda t: t.update(result="valid"),
            id="dht-message-result",
        ),
        pytest.param(
            "dht_node",
            lambda t: True,
            lambda t: t["steps"][-1]["expect"].update(datagrams=[]),
            id="dht-node-step",
        ),
        pytest.param(
            "voice",
            lambda t: "plan" in t,
            lambda t: t["plan"].update(hosts=list(reversed(t["plan"]["participants"]))[:1]),
            id="voice-plan-hosts",
        ),
        pytest.param(
            "voice",
            lambda t: "streams" in t,
            lambda t: t["streams"].update({k: [0, 0] for k in t["streams"]}),
            id="voice-plan-streams",
        ),
        pytest.param(
            "voice", _is("invalid"), lambda t: t.update(result="valid"), id="voice-result"
        ),
        pytest.param(
            "voice",
            lambda t: "steps" in t,
            lambda t: t["steps"][-1]["expect"].update(actions=[]),
            id="voice-step-actions",
        ),
        pytest.param(
            "storeforward",
            lambda t: "dhtKey" in t,
            lambda t: t.update(dhtKey="00" * 32),
            id="sf-rendezvous-key",
        ),
        pytest.param(
            "storeforward",
            lambda t: "decoded" in t,
            lambda t: t["decoded"].update(message="Other"),
            id="sf-decoded",
        ),
        pytest.param(
            "storeforward",
            lambda t: "steps" in t and t["result"] == "invalid",
            lambda t: t["steps"][-1]["expect"].update(refusal=None),
            id="sf-script-refusal",
        ),
        pytest.param(
            "storeforward",
            lambda t: "steps" in t,
            lambda t: t["steps"][0]["expect"].update(held=["00" * 32]),
            id="sf-script-held",
        ),
        pytest.param(
            "relays",
            lambda t: "decoded" in t,
            lambda t: t["decoded"].update(type="ROOM"),
            id="relays-decoded",
        ),
        pytest.param(
            "relays",
            lambda t: "publicKey" in t,
            lambda t: t.update(result="valid" if t["result"] == "invalid" else "invalid"),
            id="relays-status",
        ),
        pytest.param(
            "relays",
            lambda t: "committee" in t,
            lambda t: t.update(committee=list(reversed(t["committee"]))),
            id="relays-committee",
        ),
    ],
)
def test_runner_catches_a_tampered_vector(area: str, applies: Any, mutate: Any) -> None:
    """The runner is not vacuous: changing what a vector expects makes that vector fail."""
    tampered = 0
    for group, test in runner.iter_vectors(area):
        if not applies(test):
            continue
        candidate = copy.deepcopy(test)
        mutate(candidate)
        if candidate == test:
            continue
        result = runner.run_test(area, group, candidate)
        assert not result.passed, f"{area}-{test['tcId']} still passes after tampering"
        assert result.detail
        tampered += 1
    assert tampered > 0


def test_runner_reports_every_vector() -> None:
    results = runner.run_all()
    expected = sum(load_vectors(area)["numberOfTests"] for area in VECTOR_AREAS)
    assert len(results) == expected
    assert [r for r in results if not r.passed] == []
    assert runner.main() == 0


def _pynacl_accepts(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """libsodium's verdict, through PyNaCl's API (which refuses wrong lengths itself)."""
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    if len(signature) == 64:  # the combined form too, as crypto_sign_open sees it
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    return True


@pytest.mark.clause("ID-2.1", "ID-2.2", "ID-2.3", "ID-2.4", "ID-2.5")
@pytest.mark.parametrize(
    ("group", "test"),
    [
        pytest.param(group, test, id=f"ed25519-{test['tcId']}")
        for group, test in runner.iter_vectors("ed25519")
    ],
)
def test_ed25519_vectors_agree_with_pynacl(group: dict[str, Any], test: dict[str, Any]) -> None:
    """The reference rules and libsodium (via PyNaCl) agree on every edge case, ID-2.1..ID-2.5."""
    public_key = bytes.fromhex(group["publicKey"])
    message = bytes.fromhex(test["msg"])
    signature = bytes.fromhex(test["sig"])
    ours = verify(public_key, message, signature)
    theirs = _pynacl_accepts(public_key, message, signature)
    assert ours == theirs == (test["result"] == "valid")


def test_ed25519_vectors_show_where_lax_rules_differ() -> None:
    """The file pins the disagreements it claims: bare equations accept some invalid tests."""
    tests = [test for _, test in runner.iter_vectors("ed25519")]
    lax_only = [t for t in tests if t["result"] == "invalid" and t["cofactorless"]]
    cofactored_only = [t for t in tests if not t["cofactorless"] and t["cofactored"]]
    assert {"NonCanonicalS", "SmallOrderPublicKey", "SmallOrderR"} <= {
        flag for t in lax_only for flag in t["flags"]
    }
    assert all("CofactoredOnly" in t["flags"] for t in cofactored_only)
    assert any("MixedOrderPublicKey" in t["flags"] for t in cofactored_only)


#: RFC 8032 §7.1 TEST 1..3: (secret key, public key, message, signature), hex.
RFC8032_TESTS = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]


@pytest.mark.parametrize(("secret", "public", "message", "signature"), RFC8032_TESTS)
def test_rfc8032_vectors_anchor_the_generator(
    secret: str, public: str, message: str, signature: str
) -> None:
    """ID-1.1, ID-1.2: the key derivation and signing the vectors rely on match RFC 8032 §7.1,
    in PyNaCl and in the pure-Python arithmetic the generator builds edge cases with."""
    seed, msg = bytes.fromhex(secret), bytes.fromhex(message)
    identity = Identity.from_seed(seed)
    assert identity.public_key.hex() == public
    assert identity.sign(msg).hex() == signature
    assert ed25519_math.sign(seed, msg).hex() == signature
    assert verify(identity.public_key, msg, bytes.fromhex(signature))


#: RFC 8949 Appendix A examples inside the ENC-1.2 data model: (diagnostic value, hex).
RFC8949_EXAMPLES: list[tuple[Any, str]] = [
    (0, "00"),
    (1, "01"),
    (10, "0a"),
    (23, "17"),
    (24, "1818"),
    (25, "1819"),
    (100, "1864"),
    (1000, "1903e8"),
    (1000000, "1a000f4240"),
    (1000000000000, "1b000000e8d4a51000"),
    (18446744073709551615, "1bffffffffffffffff"),
    (-18446744073709551616, "3bffffffffffffffff"),
    (-1, "20"),
    (-10, "29"),
    (-100, "3863"),
    (-1000, "3903e7"),
    (False, "f4"),
    (True, "f5"),
    (None, "f6"),
    (b"", "40"),
    (bytes.fromhex("01020304"), "4401020304"),
    ("", "60"),
    ("a", "6161"),
    ("IETF", "6449455446"),
    ('"\\', "62225c"),
    ("\u00fc", "62c3bc"),
    ("\u6c34", "63e6b0b4"),
    ("\U00010151", "64f0908591"),
    ([], "80"),
    ([1, 2, 3], "83010203"),
    ([1, [2, 3], [4, 5]], "8301820203820405"),
    (list(range(1, 26)), "98190102030405060708090a0b0c0d0e0f101112131415161718181819"),
    ({}, "a0"),
    ({1: 2, 3: 4}, "a201020304"),
]


@pytest.mark.parametrize(("value", "encoded"), RFC8949_EXAMPLES)
def test_cbor_matches_rfc8949_appendix_a(value: Any, encoded: str) -> None:
    """ENC-1.1: the deterministic encoder reproduces RFC 8949's own examples byte for byte."""
    assert cbor.encode(value).hex() == encoded
    assert cbor.decode(bytes.fromhex(encoded)) == value


def test_vector_files_are_plain_utf8_json() -> None:
    for area in VECTOR_AREAS:
        text = generate.read_committed(area)
        assert text is not None and text.endswith("\n")
        assert json.loads(text) == load_vectors(area)
