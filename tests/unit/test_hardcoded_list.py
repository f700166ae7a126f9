"""The hard-coded list shipped in the package (BOOT-1.1, BOOT-1.6): verified before use.

A test root and test keys stand in for a deployment's; the packaged files
are checked as shipped (an empty list under a self-signed placeholder root).
A refused list is a labelled source failure in the race, never a crash.
"""

import time
from pathlib import Path

import pytest

from railgun_ref.bootstrap import manifest as m
from railgun_ref.bootstrap.race import Failure, Method, Race, RaceCounter, RaceFailed
from railgun_ref.cli import main
from railgun_ref.drivers.bootstrap import BootstrapSetup, _sources
from railgun_ref.drivers.bootstrap_proxies import TorProxy
from railgun_ref.drivers.hardcoded import (
    hardcoded_list,
    load_hardcoded,
    packaged_documents,
)
from railgun_ref.identity.keys import Identity

ROOT_KEY = Identity.from_seed(b"\x61" * 32)
LIST_KEY = Identity.from_seed(b"\x62" * 32)
OTHER_KEY = Identity.from_seed(b"\x63" * 32)
NODE_KEY = Identity.from_seed(b"\x64" * 32).public_key
NOW = 1_800_000_000.0


def _root(*signers: Identity, expires: float = NOW + 86_400) -> bytes:
    body = m.Root(
        version=1,
        expires_ms=int(expires * 1000),
        root_keys=(ROOT_KEY.public_key,),
        root_threshold=1,
        manifest_keys=(LIST_KEY.public_key,),
        manifest_threshold=1,
    ).body()
    return m.sign_document(body, list(signers))


def _list(*signers: Identity, expires: float = NOW + 3600, root_version: int = 1) -> bytes:
    node = m.BootstrapNode(
        public_key=NODE_KEY,
        addresses=((m.AddressKind.UDP, "127.0.0.1:7000"), (m.AddressKind.ONION, "a.onion:1")),
    )
    body = m.Manifest(
        version=1, expires_ms=int(expires * 1000), root_version=root_version, nodes=(node,)
    ).body()
    return m.sign_document(body, list(signers))


def test_the_packaged_list_verifies_under_the_packaged_root_and_is_empty() -> None:
    """BOOT-1.1, BOOT-1.6: the shipped documents load through the real path."""
    root, document = packaged_documents()
    assert m.root_from_document(root).version == 1
    shipped = load_hardcoded(now=time.time())
    assert shipped.nodes == () and shipped.version == 1
    assert load_hardcoded(now=time.time(), root=root, document=document) == shipped


def test_an_empty_shipped_list_is_a_labelled_failure_in_the_race() -> None:
    """BOOT-4.2: a source with no candidates fails with no_candidates; the race goes on."""
    setup = BootstrapSetup(hardcoded=hardcoded_list(), tor=TorProxy(address=("127.0.0.1", 9)))
    race = Race(_sources(setup), now=NOW)
    result = race.next_action()
    assert isinstance(result, RaceFailed)
    assert {(f.method, f.failure) for f in result.failures} == {
        (Method.HARDCODED, Failure.NO_CANDIDATES),
        (Method.TOR, Failure.NO_CANDIDATES),
    }


def test_a_list_signed_under_the_test_root_is_used() -> None:
    shipped = load_hardcoded(now=NOW, root=_root(ROOT_KEY), document=_list(LIST_KEY))
    assert [n.public_key for n in shipped.nodes] == [NODE_KEY]
    sources = _sources(BootstrapSetup(hardcoded=shipped, tor=TorProxy(address=("127.0.0.1", 9))))
    assert [c.address for c in sources[Method.TOR]] == ["a.onion:1"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("root", "document", "reason"),
    [
        (_root(ROOT_KEY), _list(), m.Rejection.BELOW_THRESHOLD),  # unsigned
        (_root(ROOT_KEY), _list(OTHER_KEY), m.Rejection.BELOW_THRESHOLD),  # not the list key
        (_root(ROOT_KEY), _list(ROOT_KEY), m.Rejection.BELOW_THRESHOLD),  # root key: wrong role
        (_root(ROOT_KEY), _list(LIST_KEY, expires=NOW - 1), m.Rejection.EXPIRED),
        (_root(ROOT_KEY, expires=NOW - 1), _list(LIST_KEY), m.Rejection.EXPIRED),
        (_root(ROOT_KEY), _list(LIST_KEY, root_version=2), m.Rejection.UNKNOWN_ROOT),
        (_root(), _list(LIST_KEY), m.Rejection.BELOW_THRESHOLD),  # a root not self-signed
        (_root(OTHER_KEY), _list(LIST_KEY), m.Rejection.BELOW_THRESHOLD),
        (_root(ROOT_KEY), b"\xa0", m.Rejection.MALFORMED),
        (_root(ROOT_KEY), b"\x00" * (m.MAX_MANIFEST_SIZE + 1), m.Rejection.OVERSIZE),
    ],
)
def test_a_bad_shipped_list_is_refused_with_its_reason(
    root: bytes, document: bytes, reason: m.Rejection
) -> None:
    """BOOT-1.6: verified before use; the reason is kept."""
    with pytest.raises(m.ManifestError) as caught:
        load_hardcoded(now=NOW, root=root, document=document)
    assert caught.value.reason is reason
    refused = hardcoded_list(now=NOW, root=root, document=document)
    assert isinstance(refused, m.ManifestError) and refused.reason is reason


def test_a_forged_list_is_bad_signature() -> None:
    document = bytearray(_list(LIST_KEY))
    document[-1] ^= 1  # the last byte of the signature
    refused = hardcoded_list(now=NOW, root=_root(ROOT_KEY), document=bytes(document))
    assert isinstance(refused, m.ManifestError) and refused.reason is m.Rejection.BAD_SIGNATURE


def test_a_refused_list_fails_its_method_with_manifest_rejected() -> None:
    """BOOT-1.6, BOOT-4.2: the race reports it and opens the next method at once."""
    refused = hardcoded_list(now=NOW, root=_root(ROOT_KEY), document=_list())
    assert isinstance(refused, m.ManifestError)
    setup = BootstrapSetup(hardcoded=refused, tor=TorProxy(address=("127.0.0.1", 9)))
    sources = _sources(setup)
    assert Method.TOR not in sources  # no onion addresses from a list not trusted
    sources[Method.DNS_SRV] = None
    race = Race(sources, now=NOW)
    assert race.counters.get_count(RaceCounter.SOURCE_FAILED, Method.HARDCODED) == 1
    fetch = race.next_action()  # DNS SRV opens at once: every source before it failed
    assert fetch is not None and getattr(fetch, "method", None) is Method.DNS_SRV
    race.source_failed(Method.DNS_SRV, Failure.DNS_NXDOMAIN, now=NOW + 0.1)
    result = race.next_action()
    assert isinstance(result, RaceFailed)
    assert [(f.method, f.failure) for f in result.failures] == [
        (Method.HARDCODED, Failure.MANIFEST_REJECTED),
        (Method.DNS_SRV, Failure.DNS_NXDOMAIN),
    ]


def test_the_documented_deployer_workflow_replaces_the_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """railgun_ref/bootstrap/data/README.md: keygen, create, sign, create, sign, verify."""

    def run(*argv: str) -> str:
        assert main(list(argv)) == 0
        return capsys.readouterr().out.strip()

    keys = {name: tmp_path / f"{name}.key" for name in ("root1", "root2", "list1")}
    public = {name: run("manifest", "keygen", str(path)) for name, path in keys.items()}
    root, document = tmp_path / "root.cbor", tmp_path / "hardcoded.cbor"
    run("manifest", "create", "root", "--out", str(root), "--expires-in-days", "365",
        "--root-key", str(keys["root1"]), "--root-key", str(keys["root2"]),
        "--root-threshold", "2", "--manifest-key", str(keys["list1"]))  # fmt: skip
    for name in ("root1", "root2"):
        run("manifest", "sign", str(root), "--key", str(keys[name]))
    node = f"{public['root1']}=udp:127.0.0.1:7000,onion:{'n' * 56}.onion:7000"
    run("manifest", "create", "manifest", "--out", str(document), "--root", str(root),
        "--version", "1", "--expires-in-days", "90", "--node", node)  # fmt: skip
    assert isinstance(hardcoded_list(root=root.read_bytes(), document=document.read_bytes()),
                      m.ManifestError)  # fmt: skip  # not signed yet
    run("manifest", "sign", str(document), "--key", str(keys["list1"]))
    assert "1 nodes" in run("manifest", "verify", str(document), "--root", str(root))
    shipped = load_hardcoded(
        now=time.time(), root=root.read_bytes(), document=document.read_bytes()
    )
    assert [n.public_key.hex() for n in shipped.nodes] == [public["root1"]]
