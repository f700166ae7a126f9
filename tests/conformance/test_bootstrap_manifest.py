"""Signed bootstrap manifests and root rotation (BOOT-1..3), beyond the committed vectors."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from railgun_ref.bootstrap import manifest as m
from railgun_ref.conformance.builders import bootstrap as b
from railgun_ref.conformance.builders.base import T0, T0_MS, seed_for
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.identity.keys import Identity


def _key(name: str) -> Identity:
    return Identity.from_seed(seed_for(f"bootstrap/{name}"))


def _reason(call: object) -> m.Rejection:
    with pytest.raises(m.ManifestError) as info:
        call()  # type: ignore[operator]
    return info.value.reason


@pytest.mark.clause("BOOT-1.1")
def test_shipped_root_must_satisfy_its_own_root_role() -> None:
    signed = m.sign_document(b.ROOT_1.body(), [_key("r1"), _key("r2")])
    assert m.root_from_document(signed) == b.ROOT_1
    once = m.sign_document(b.ROOT_1.body(), [_key("r1")])
    assert _reason(lambda: m.root_from_document(once)) is m.Rejection.BELOW_THRESHOLD
    by_outsiders = m.sign_document(b.ROOT_1.body(), [_key("m1"), _key("m2")])
    assert _reason(lambda: m.root_from_document(by_outsiders)) is m.Rejection.BELOW_THRESHOLD


@pytest.mark.clause("BOOT-1.2")
def test_signatures_are_domain_separated_by_kind() -> None:
    """A root body signed under the manifest domain does not verify as a root."""
    root_bytes = m.sign_document(b.ROOT_1.body(), [_key("r1"), _key("r2")])
    body = m.document_body(root_bytes)
    keys = [_key("r1"), _key("r2")]
    forged = m.cbor.encode(
        {0: body, 1: sorted([k.public_key, k.sign(m.MANIFEST_DOMAIN + body)] for k in keys)}
    )
    assert _reason(lambda: m.root_from_document(forged)) is m.Rejection.BAD_SIGNATURE


@pytest.mark.clause("BOOT-1.3")
def test_signing_twice_with_one_key_is_a_caller_error() -> None:
    with pytest.raises(LocalProtocolError):
        m.sign_document(b.ROOT_1.body(), [_key("r1"), _key("r1")])
    document = m.sign_document(b.ROOT_1.body(), [_key("r1")])
    with pytest.raises(LocalProtocolError):
        m.add_signatures(document, [_key("r1")])


@pytest.mark.clause("BOOT-1.3")
def test_threshold_collected_one_signer_at_a_time() -> None:
    """Offline key holders sign in turn; the document verifies once k have signed."""
    document = m.sign_document(b.ROOT_2.body(), [_key("r1")])
    with pytest.raises(m.ManifestError):
        m.update_root(b.ROOT_1, document)
    for name in ("r2", "r3"):
        document = m.add_signatures(document, [_key(name)])
    assert m.update_root(b.ROOT_1, document) == b.ROOT_2


@pytest.mark.clause("BOOT-1.4")
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({4: 4}, m.Rejection.MALFORMED),  # threshold above the number of keys
        ({4: 0}, m.Rejection.MALFORMED),
        ({5: []}, m.Rejection.MALFORMED),
        ({3: [bytes(32)] * 2}, m.Rejection.MALFORMED),  # small-order key (ID-2.2)
        ({1: 0}, m.Rejection.MALFORMED),
        ({7: 0}, m.Rejection.MALFORMED),
    ],
)
def test_root_body_shape_is_checked(change: dict[int, object], reason: m.Rejection) -> None:
    body = b.ROOT_1.body() | change
    with pytest.raises(m.ManifestError) as info:
        m.decode_root(m.cbor.encode(body))
    assert info.value.reason is reason
    assert info.value.code is ErrorCode.MALFORMED


@pytest.mark.clause("BOOT-2.2")
def test_a_client_a_year_behind_walks_the_chain_through_expired_roots() -> None:
    expired_2 = m.Root(
        version=2,
        expires_ms=T0_MS - 1,
        root_keys=b.ROOT_2.root_keys,
        root_threshold=2,
        manifest_keys=b.ROOT_2.manifest_keys,
        manifest_threshold=2,
    )
    chain = [
        m.sign_document(expired_2.body(), [_key(n) for n in ("r1", "r2", "r3")]),
        m.sign_document(b.ROOT_3.body(), [_key(n) for n in ("r2", "r3", "r4", "r5")]),
    ]
    trusted = m.update_root_chain(b.ROOT_1, chain)
    assert trusted == b.ROOT_3
    good = m.sign_document(b._manifest(root_version=3).body(), [_key("m1"), _key("m2")])
    assert m.verify_manifest(trusted, good, now=T0).root_version == 3


@pytest.mark.clause("BOOT-3.4")
def test_expiry_is_judged_at_now_in_milliseconds() -> None:
    document = m.sign_document(b._manifest(expires_ms=T0_MS + 1).body(), [_key("m1"), _key("m2")])
    assert m.verify_manifest(b.ROOT_1, document, now=T0).expires_ms == T0_MS + 1
    assert _reason(lambda: m.verify_manifest(b.ROOT_1, document, now=T0 + 0.001)) is (
        m.Rejection.EXPIRED
    )


@pytest.mark.clause("BOOT-3.5")
def test_manifest_round_trips_nodes_and_sources() -> None:
    manifest = b._manifest(
        nodes=(
            m.BootstrapNode(
                public_key=_key("x").public_key,
                addresses=(
                    (m.AddressKind.UDP, "[::1]:7000"),
                    (m.AddressKind.ONION, "a" * 56 + ".onion:7000"),
                    (m.AddressKind.I2P, "b" * 52 + ".b32.i2p:7000"),
                ),
            ),
        ),
        sources=(
            (m.SourceKind.IPFS, "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"),
        ),
    )
    document = m.sign_document(manifest.body(), [_key("m2"), _key("m3")])
    assert m.verify_manifest(b.ROOT_1, document, now=T0) == manifest


@pytest.mark.clause("BOOT-3.5")
@pytest.mark.parametrize(
    "node",
    [
        {0: bytes(32), 1: [[1, "127.0.0.1:1"]]},
        {0: b"\x01" * 31, 1: [[1, "127.0.0.1:1"]]},
        {0: seed_for("k"), 1: []},
        {0: seed_for("k"), 1: [[9, "127.0.0.1:1"]]},
        {0: seed_for("k"), 1: [[1, ""]]},
        {0: seed_for("k"), 1: [[1, "x" * 256]]},
        {0: seed_for("k"), 1: [[1, "127.0.0.1:1"]] * 9},
        {0: seed_for("k")},
    ],
)
def test_bad_nodes_are_malformed(node: dict[int, object]) -> None:
    body = b._manifest().body()
    body[4] = [node]
    with pytest.raises(m.ManifestError) as info:
        m.decode_manifest(m.cbor.encode(body))
    assert info.value.reason is m.Rejection.MALFORMED


@pytest.mark.clause("BOOT-1.2", "BOOT-3.1")
@given(st.binary(max_size=300))
def test_any_bytes_give_only_a_typed_rejection(data: bytes) -> None:
    try:
        m.verify_manifest(b.ROOT_1, data, now=T0)
    except m.ManifestError as exc:
        assert isinstance(exc, RemoteProtocolError)
        assert exc.reason in m.Rejection
    with contextlib.suppress(m.ManifestError):
        m.update_root(b.ROOT_1, data)
