"""bootstrap.json: signed bootstrap manifests and root rotation (BOOT-1..3), and the race (BOOT-4).

Every case is one row of a table: a trusted root, the document(s) a client
receives, the clock, and what the client must conclude (the accepted version,
or the `Rejection` reason). Keys come from fixed seeds, so each build gives
the same bytes. The race schedule cases are rows too: the candidates each
source offers and the clock, and the attempts the race must start, in order.
"""

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Final, NamedTuple

from railgun_ref.bootstrap import manifest as m
from railgun_ref.conformance.builders import bootstrap_race
from railgun_ref.conformance.builders.base import T0, T0_MS, Vectors, flip, seed_for
from railgun_ref.conformance.common import JsonObject
from railgun_ref.core import cbor
from railgun_ref.identity.keys import Identity

NOTES: Final = {
    "Valid": "A document the client must accept.",
    "Rotation": "A root rotation (BOOT-2.1).",
    "Forged": "A signature that does not verify, or a body changed after signing.",
    "Threshold": "Too few distinct role keys signed.",
    "DuplicateKey": "One key listed or counted twice.",
    "Rollback": "A version older than the one trusted.",
    "Expired": "The document or the trusted root is past its expiry.",
    "MixAndMatch": "A manifest signed under an older root than the trusted one.",
    "UnknownRoot": "A root or a manifest with no chain to the trusted root.",
    "Oversize": "A document over its size cap.",
    "Malformed": "A document of the wrong shape.",
    **bootstrap_race.NOTES,
}

HEADER: Final = [
    "Bootstrap manifests (BOOT-1..3) and the race schedule (BOOT-4). A signed document",
    "is CBOR {0: body bytes, 1: [[public key, signature], ...]}; signatures are Ed25519",
    "over a domain string || body. 'trustedRoot' is the self-signed root a client ships",
    "with; a manifest test gives the document, 'lastVersion' and 'now', a root test a",
    "chain of root documents applied in order. A valid case gives the accepted version;",
    "an invalid one the reason ('expectedReason') and the wire code ('expectedError').",
]

_KEYS: Final = {
    name: Identity.from_seed(seed_for(f"bootstrap/{name}"))
    for name in ("r1", "r2", "r3", "r4", "r5", "r6", "m1", "m2", "m3", "x")
}
_FAR: Final = T0_MS + 365 * 86_400_000


def _k(*names: str) -> list[Identity]:
    return [_KEYS[n] for n in names]


def _root(version: int, roots: str, manifests: str = "m1 m2 m3", expires: int = _FAR) -> m.Root:
    return m.Root(
        version=version,
        expires_ms=expires,
        root_keys=tuple(k.public_key for k in _k(*roots.split())),
        root_threshold=2,
        manifest_keys=tuple(k.public_key for k in _k(*manifests.split())),
        manifest_threshold=2,
    )


ROOT_1: Final = _root(1, "r1 r2 r3")
ROOT_2: Final = _root(2, "r2 r3 r4")
ROOT_3: Final = _root(3, "r4 r5 r6")
EXPIRED_ROOT: Final = _root(1, "r1 r2 r3", expires=T0_MS)


def _node(n: int, port: int) -> m.BootstrapNode:
    key = Identity.from_seed(seed_for(f"bootstrap/node-{n}")).public_key
    return m.BootstrapNode(
        public_key=key,
        addresses=((m.AddressKind.UDP, f"127.0.0.1:{port}"),),
    )


def _manifest(version: int = 1, root_version: int = 1, **changes: Any) -> m.Manifest:
    fields: dict[str, Any] = {
        "version": version,
        "expires_ms": T0_MS + 7 * 86_400_000,
        "root_version": root_version,
        "nodes": (_node(1, 7001), _node(2, 7002)),
        "sources": ((m.SourceKind.DNS_SRV, "_railgun._udp.example.org."),),
    }
    return m.Manifest(**(fields | changes))


def _signed(body: m.Manifest | m.Root, signers: str) -> bytes:
    return m.sign_document(body.body(), _k(*signers.split()))


def _reshape(document: bytes, change: Callable[[dict[int, Any]], object]) -> bytes:
    """`document` with its outer map changed by `change` (signatures are not redone)."""
    value = cbor.decode(document)
    change(value)
    return cbor.encode(value)


def _forge_signature(document: bytes, name: str) -> bytes:
    """`document` with the signature of key `name` altered in one bit."""
    key = _KEYS[name].public_key

    def change(value: dict[int, Any]) -> None:
        for pair in value[1]:
            if pair[0] == key:
                pair[1] = flip(pair[1], 5)

    return _reshape(document, change)


def _swap_body(document: bytes, body: m.Manifest | m.Root) -> bytes:
    def change(value: dict[int, Any]) -> None:
        value[0] = cbor.encode(body.body())

    return _reshape(document, change)


def _repeat_first_signature(document: bytes) -> bytes:
    def change(value: dict[int, Any]) -> None:
        value[1].append(value[1][0])

    return _reshape(document, change)


def _cross_domain(body: m.Manifest, signers: str) -> bytes:
    """A manifest body signed with the root domain: the right keys, the wrong purpose."""
    data = cbor.encode(body.body())
    pairs = sorted([k.public_key, k.sign(m.ROOT_DOMAIN + data)] for k in _k(*signers.split()))
    return cbor.encode({0: data, 1: pairs})


def _big_manifest() -> m.Manifest:
    nodes = tuple(
        m.BootstrapNode(
            public_key=_node(10 + i, 7000).public_key,
            addresses=tuple((m.AddressKind.ONION, f"{i:03d}{j}" + "a" * 240) for j in range(8)),
        )
        for i in range(17)
    )
    return _manifest(nodes=nodes)


def _outsider_signatures(document: bytes, count: int) -> bytes:
    def change(value: dict[int, Any]) -> None:
        for i in range(count):
            key = Identity.from_seed(seed_for(f"bootstrap/outsider-{i}"))
            value[1].append([key.public_key, key.sign(m.ROOT_DOMAIN + value[0])])
        value[1].sort()

    return _reshape(document, change)


class _ManifestCase(NamedTuple):
    comment: str
    flags: tuple[str, ...]
    clause: str
    document: Callable[[], bytes]
    last_version: int = 0
    trusted: m.Root = ROOT_1


_GOOD: Final = _manifest()

MANIFEST_CASES: Final = (
    _ManifestCase("2 of 3 manifest keys", ("Valid",), "BOOT-3.2", lambda: _signed(_GOOD, "m1 m2")),
    _ManifestCase(
        "3 of 3 manifest keys", ("Valid",), "BOOT-3.2", lambda: _signed(_GOOD, "m1 m2 m3")
    ),
    _ManifestCase(
        "2 keys and a key outside the role (ignored)",
        ("Valid",),
        "BOOT-1.3",
        lambda: _signed(_GOOD, "m1 m2 x"),
    ),
    _ManifestCase(
        "3 keys, one forged: the threshold is still met",
        ("Valid", "Forged"),
        "BOOT-1.3",
        lambda: _forge_signature(_signed(_GOOD, "m1 m2 m3"), "m3"),
    ),
    _ManifestCase(
        "the same version as the last accepted",
        ("Valid",),
        "BOOT-3.3",
        lambda: _signed(_manifest(version=4), "m1 m2"),
        last_version=4,
    ),
    _ManifestCase("1 of 3 manifest keys", ("Threshold",), "BOOT-1.3", lambda: _signed(_GOOD, "m1")),
    _ManifestCase(
        "1 manifest key and an outsider",
        ("Threshold",),
        "BOOT-1.3",
        lambda: _signed(_GOOD, "m1 x"),
    ),
    _ManifestCase(
        "signed by root keys, not manifest keys",
        ("Threshold",),
        "BOOT-1.3",
        lambda: _signed(_GOOD, "r1 r2 r3"),
    ),
    _ManifestCase(
        "2 keys, one signature forged",
        ("Forged",),
        "BOOT-1.3",
        lambda: _forge_signature(_signed(_GOOD, "m1 m2"), "m2"),
    ),
    _ManifestCase(
        "body changed after signing (a node added)",
        ("Forged",),
        "BOOT-1.2",
        lambda: _swap_body(_signed(_GOOD, "m1 m2"), _manifest(nodes=(_node(1, 7001),))),
    ),
    _ManifestCase(
        "signed over the root domain",
        ("Forged",),
        "BOOT-1.2",
        lambda: _cross_domain(_GOOD, "m1 m2"),
    ),
    _ManifestCase(
        "one key's signature listed twice",
        ("DuplicateKey",),
        "BOOT-1.3",
        lambda: _repeat_first_signature(_signed(_GOOD, "m1")),
    ),
    _ManifestCase(
        "one node key listed twice",
        ("DuplicateKey",),
        "BOOT-3.5",
        lambda: _signed(_manifest(nodes=(_node(1, 7001), _node(1, 7002))), "m1 m2"),
    ),
    _ManifestCase(
        "version 3 after version 4",
        ("Rollback",),
        "BOOT-3.3",
        lambda: _signed(_manifest(version=3), "m1 m2"),
        last_version=4,
    ),
    _ManifestCase(
        "expiry equal to now",
        ("Expired",),
        "BOOT-3.4",
        lambda: _signed(_manifest(expires_ms=T0_MS), "m1 m2"),
    ),
    _ManifestCase(
        "a fresh manifest under an expired root",
        ("Expired",),
        "BOOT-3.4",
        lambda: _signed(_GOOD, "m1 m2"),
        trusted=EXPIRED_ROOT,
    ),
    _ManifestCase(
        "signed under root 1 while root 2 is trusted",
        ("MixAndMatch",),
        "BOOT-3.2",
        lambda: _signed(_GOOD, "m1 m2"),
        trusted=ROOT_2,
    ),
    _ManifestCase(
        "signed under root 2 while root 1 is trusted",
        ("UnknownRoot",),
        "BOOT-3.2",
        lambda: _signed(_manifest(root_version=2), "m1 m2"),
    ),
    _ManifestCase(
        "over 32768 bytes, otherwise valid",
        ("Oversize",),
        "BOOT-3.1",
        lambda: _signed(_big_manifest(), "m1 m2"),
    ),
    _ManifestCase("not CBOR", ("Malformed",), "BOOT-1.2", lambda: b"\xff\x00"),
    _ManifestCase(
        "a root document offered as a manifest",
        ("Malformed",),
        "BOOT-1.2",
        lambda: _signed(ROOT_1, "r1 r2"),
    ),
    _ManifestCase(
        "a 63-byte signature",
        ("Malformed",),
        "BOOT-1.2",
        lambda: _reshape(
            _signed(_GOOD, "m1 m2"), lambda v: v[1][0].__setitem__(1, v[1][0][1][:63])
        ),
    ),
)


class _RootCase(NamedTuple):
    comment: str
    flags: tuple[str, ...]
    clause: str
    chain: Callable[[], Sequence[bytes]]


ROOT_CASES: Final = (
    _RootCase(
        "root 2 signed by 2 old and 2 new keys",
        ("Valid", "Rotation"),
        "BOOT-2.1",
        lambda: [_signed(ROOT_2, "r1 r2 r3")],
    ),
    _RootCase(
        "root 1 to 3 through 2, all keys replaced",
        ("Valid", "Rotation"),
        "BOOT-2.2",
        lambda: [_signed(ROOT_2, "r1 r2 r3"), _signed(ROOT_3, "r2 r3 r4 r5")],
    ),
    _RootCase(
        "root 2 signed only by its new keys",
        ("Rotation", "Threshold"),
        "BOOT-2.1",
        lambda: [_signed(ROOT_2, "r3 r4")],
    ),
    _RootCase(
        "root 3 signed by root 2's keys only",
        ("Rotation", "Threshold"),
        "BOOT-2.1",
        lambda: [_signed(ROOT_2, "r1 r2 r3"), _signed(ROOT_3, "r2 r3 r4")],
    ),
    _RootCase(
        "root 2, one of two old signatures forged",
        ("Rotation", "Forged"),
        "BOOT-2.1",
        lambda: [_forge_signature(_signed(ROOT_2, "r2 r3 r4"), "r2")],
    ),
    _RootCase(
        "root 1 again",
        ("Rollback",),
        "BOOT-2.1",
        lambda: [_signed(ROOT_1, "r1 r2 r3")],
    ),
    _RootCase(
        "root 3 without root 2",
        ("UnknownRoot",),
        "BOOT-2.1",
        lambda: [_signed(ROOT_3, "r1 r2 r3 r4 r5")],
    ),
    _RootCase(
        "root 2 listing one root key twice",
        ("DuplicateKey",),
        "BOOT-1.4",
        lambda: [_swap_body(_signed(ROOT_2, "r1 r2 r3"), _root(2, "r2 r3 r3"))],
    ),
    _RootCase(
        "root 2 with 90 extra signatures, over 8192 bytes",
        ("Oversize",),
        "BOOT-2.1",
        lambda: [_outsider_signatures(_signed(ROOT_2, "r1 r2 r3"), 90)],
    ),
)


def _outcome(call: Callable[[], object]) -> tuple[str, JsonObject]:
    try:
        accepted = call()
    except m.ManifestError as exc:
        return "invalid", {"expectedReason": exc.reason.value, "expectedError": exc.code.name}
    assert isinstance(accepted, m.Manifest | m.Root)
    return "valid", {"version": accepted.version}


def _add_manifest_cases(v: Vectors) -> None:
    groups: dict[int, list[JsonObject]] = {}
    for case in MANIFEST_CASES:
        key = id(case.trusted)
        if key not in groups:
            trusted = _signed(case.trusted, "r1 r2 r3" if case.trusted.version == 1 else "r2 r3")
            groups[key] = v.group("BootstrapManifestTest", trustedRoot=trusted.hex(), now=T0)
        document = case.document()
        result, fields = _outcome(
            partial(
                m.verify_manifest, case.trusted, document, now=T0, last_version=case.last_version
            )
        )
        assert (result == "valid") == ("Valid" in case.flags), case.comment
        v.test(
            groups[key],
            comment=case.comment,
            result=result,
            clause=case.clause,
            flags=case.flags,
            document=document.hex(),
            lastVersion=case.last_version,
            **fields,
        )


def _add_root_cases(v: Vectors) -> None:
    trusted = _signed(ROOT_1, "r1 r2")
    tests = v.group("BootstrapRootUpdateTest", trustedRoot=trusted.hex())
    for case in ROOT_CASES:
        chain = list(case.chain())
        result, fields = _outcome(partial(m.update_root_chain, ROOT_1, chain))
        assert (result == "valid") == ("Valid" in case.flags), case.comment
        v.test(
            tests,
            comment=case.comment,
            result=result,
            clause=case.clause,
            flags=case.flags,
            chain=[d.hex() for d in chain],
            **fields,
        )


def build() -> JsonObject:
    v = Vectors("bootstrap", "railgun-bootstrap-v1", HEADER, NOTES)
    _add_manifest_cases(v)
    _add_root_cases(v)
    bootstrap_race.add_cases(v)
    return v.document()
