"""Signed bootstrap manifests: a root of trust with k-of-n keys, rotation, no rollback (BOOT-1..3).

Theory of operation
===================

The trust model is the root role of The Update Framework (TUF specification
v1.0, §5.3), written down again for this project's wire (deterministic CBOR,
ENC-1) and Ed25519 rules (ID-2):

1. A *root* names two key sets, each with a threshold: the root keys (who may
   sign the next root) and the manifest keys (who may sign manifests). A
   client ships with one trusted root (BOOT-1.1).
2. Both documents travel as a *signed document*: ``{0: body, 1: signatures}``
   where ``body`` is the deterministic CBOR of the body map and each signature
   is ``[public key, Ed25519 signature over DOMAIN || body]`` (BOOT-1.2). The
   domain string differs per kind, so a root signature never verifies as a
   manifest signature or as an envelope.
3. A role is satisfied when at least ``threshold`` *distinct* keys of the role
   signed validly; signatures by keys outside the role are ignored; a document
   naming the same key twice is refused outright (BOOT-1.3).
4. Root N+1 is accepted only from root N, only if its version is exactly N+1,
   and only if it satisfies the root role of N *and* its own root role
   (BOOT-2.1). Older versions are rollbacks; later ones have no chain.
5. A manifest is accepted only under the root it names (BOOT-3.2: no mixing
   of versions), with a version no lower than the last one accepted
   (BOOT-3.3), before its expiry and before the root's own (BOOT-3.4), and
   only if it is at most `MAX_MANIFEST_SIZE` bytes (BOOT-3.1).

Every refusal is a `ManifestError` carrying a `Rejection` reason, so a
driver counts it by reason and goes on with other sources.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any, Final

from railgun_ref.core import cbor
from railgun_ref.core.constants import PUBLIC_KEY_SIZE, SIGNATURE_SIZE
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.identity.keys import Identity, public_key_problem, verify

__all__ = [
    "MAX_MANIFEST_SIZE",
    "MAX_ROOT_SIZE",
    "AddressKind",
    "BootstrapNode",
    "Manifest",
    "ManifestError",
    "Rejection",
    "Root",
    "SourceKind",
    "decode_manifest",
    "decode_root",
    "sign_document",
    "update_root",
    "verify_manifest",
]

#: BOOT-1.2: signature domains, one per document kind.
ROOT_DOMAIN: Final = b"railgun/v1/bootstrap-root\x00"
MANIFEST_DOMAIN: Final = b"railgun/v1/bootstrap-manifest\x00"

#: BOOT-3.1 / BOOT-2.1: size caps of the whole signed document, checked before decoding.
MAX_ROOT_SIZE: Final = 8192
MAX_MANIFEST_SIZE: Final = 32768
#: BOOT-1.4: limits on the body contents.
MAX_KEYS: Final = 16
MAX_NODES: Final = 64
MAX_ADDRESSES: Final = 8
MAX_SOURCES: Final = 16
MAX_TEXT: Final = 255


class Rejection(StrEnum):
    """Why a root or a manifest was refused (BOOT-1..3); also a counter label."""

    MALFORMED = "malformed"  #: not a signed document of the expected shape
    OVERSIZE = "oversize"  #: larger than the size cap (BOOT-2.1, BOOT-3.1)
    BAD_SIGNATURE = "bad_signature"  #: below threshold and a role key's signature failed
    BELOW_THRESHOLD = "below_threshold"  #: fewer valid role signatures than the threshold
    DUPLICATE_KEY = "duplicate_key"  #: one key listed twice (BOOT-1.3)
    ROLLBACK = "rollback"  #: a version older than the one trusted
    EXPIRED = "expired"  #: the document or its root is past its expiry (no freeze)
    MIX_AND_MATCH = "mix_and_match"  #: a manifest signed under an older root
    UNKNOWN_ROOT = "unknown_root"  #: a root or manifest with no chain to the trusted root


_ERROR_CODES: Final = {
    Rejection.MALFORMED: ErrorCode.MALFORMED,
    Rejection.OVERSIZE: ErrorCode.TOO_LARGE,
    Rejection.BAD_SIGNATURE: ErrorCode.BAD_SIGNATURE,
    Rejection.BELOW_THRESHOLD: ErrorCode.BAD_SIGNATURE,
    Rejection.DUPLICATE_KEY: ErrorCode.BAD_SIGNATURE,
    Rejection.ROLLBACK: ErrorCode.STALE_SEQUENCE,
    Rejection.EXPIRED: ErrorCode.EXPIRED,
    Rejection.MIX_AND_MATCH: ErrorCode.WRONG_KEY,
    Rejection.UNKNOWN_ROOT: ErrorCode.FORBIDDEN,
}


class ManifestError(RemoteProtocolError):
    """A root or manifest refused for `reason` (the wire code follows from it)."""

    def __init__(self, reason: Rejection, message: str) -> None:
        super().__init__(_ERROR_CODES[reason], f"{reason.value}: {message}")
        self.reason = reason


class DocumentKind(IntEnum):
    """BOOT-1.2: field 0 of every body."""

    ROOT = 1
    MANIFEST = 2


class AddressKind(IntEnum):
    """BOOT-3.5: how a bootstrap node is reached."""

    UDP = 1  #: "host:port" (IPv6 hosts in brackets)
    ONION = 2  #: "<56 base32 chars>.onion:port", through a SOCKS5 proxy (Tor)
    I2P = 3  #: "<52 base32 chars>.b32.i2p:port" or a full destination, through SAM v3


class SourceKind(IntEnum):
    """BOOT-3.5: where a fresher list can be fetched."""

    DNS_SRV = 1  #: an SRV owner name, e.g. "_railgun._udp.example.org."
    IPFS = 2  #: a CID or an /ipns/ path of the next manifest


@dataclass(frozen=True, slots=True, kw_only=True)
class Root:
    """A verified (or locally built) root: who signs roots and manifests (BOOT-1.1)."""

    version: int
    expires_ms: int
    root_keys: tuple[bytes, ...]
    root_threshold: int
    manifest_keys: tuple[bytes, ...]
    manifest_threshold: int

    def body(self) -> dict[int, Any]:
        return {
            0: int(DocumentKind.ROOT),
            1: self.version,
            2: self.expires_ms,
            3: list(self.root_keys),
            4: self.root_threshold,
            5: list(self.manifest_keys),
            6: self.manifest_threshold,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class BootstrapNode:
    """One bootstrap node: the key its PONG must be signed with, and where it listens."""

    public_key: bytes
    addresses: tuple[tuple[AddressKind, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """A verified (or locally built) manifest of bootstrap nodes (BOOT-3.5)."""

    version: int
    expires_ms: int
    root_version: int
    nodes: tuple[BootstrapNode, ...]
    sources: tuple[tuple[SourceKind, str], ...] = ()

    def body(self) -> dict[int, Any]:
        return {
            0: int(DocumentKind.MANIFEST),
            1: self.version,
            2: self.expires_ms,
            3: self.root_version,
            4: [
                {0: n.public_key, 1: [[int(k), text] for k, text in n.addresses]}
                for n in self.nodes
            ],
            5: [[int(k), text] for k, text in self.sources],
        }


# --- signing (the publisher's side) -------------------------------------------------------


def _domain(body: dict[int, Any]) -> bytes:
    return ROOT_DOMAIN if body[0] == DocumentKind.ROOT else MANIFEST_DOMAIN


def sign_document(body: dict[int, Any], signers: Sequence[Identity]) -> bytes:
    """The signed document ``{0: body, 1: [[key, sig], ...]}`` (BOOT-1.2), keys sorted."""
    data = cbor.encode(body)
    keys = [s.public_key for s in signers]
    if len(set(keys)) != len(keys):
        raise LocalProtocolError("the same key cannot sign a document twice")
    message = _domain(body) + data
    signatures = sorted([s.public_key, s.sign(message)] for s in signers)
    return cbor.encode({0: data, 1: signatures})


def add_signatures(document: bytes, signers: Sequence[Identity]) -> bytes:
    """`document` with signatures of `signers` added (a threshold collected one key at a time)."""
    body_bytes, signatures = _split(document)
    body = cbor.decode(body_bytes)
    message = _domain(body) + body_bytes
    present = {key for key, _ in signatures}
    for signer in signers:
        if signer.public_key in present:
            raise LocalProtocolError("that key has already signed this document")
        signatures.append((signer.public_key, signer.sign(message)))
    return cbor.encode({0: body_bytes, 1: sorted([k, s] for k, s in signatures)})


# --- decoding -----------------------------------------------------------------------------


def _malformed(message: str) -> ManifestError:
    return ManifestError(Rejection.MALFORMED, message)


def _split(document: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The body bytes and the signature pairs of a signed document (BOOT-1.2 shape only)."""
    try:
        value = cbor.decode(document)
    except RemoteProtocolError as exc:
        raise _malformed(exc.message) from None
    if type(value) is not dict or set(value) != {0, 1}:
        raise _malformed("a signed document is the map {0: body, 1: signatures}")
    body, signatures = value[0], value[1]
    if type(body) is not bytes or type(signatures) is not list:
        raise _malformed("body must be a byte string and signatures a list")
    pairs: list[tuple[bytes, bytes]] = []
    for item in signatures:
        if (
            type(item) is not list
            or len(item) != 2
            or type(item[0]) is not bytes
            or type(item[1]) is not bytes
            or len(item[0]) != PUBLIC_KEY_SIZE
            or len(item[1]) != SIGNATURE_SIZE
        ):
            raise _malformed("a signature is [32-byte key, 64-byte signature]")
        pairs.append((item[0], item[1]))
    if len({key for key, _ in pairs}) != len(pairs):
        raise ManifestError(Rejection.DUPLICATE_KEY, "one key signed twice")
    return body, pairs


def _uint(value: object, what: str, *, low: int = 0) -> int:
    if type(value) is not int or value < low:
        raise _malformed(f"{what} must be an integer >= {low}")
    return value


def _text(value: object, what: str) -> str:
    if type(value) is not str or not 1 <= len(value) <= MAX_TEXT:
        raise _malformed(f"{what} must be text of 1..{MAX_TEXT} characters")
    return value


def _keys(value: object, what: str) -> tuple[bytes, ...]:
    if type(value) is not list or not 1 <= len(value) <= MAX_KEYS:
        raise _malformed(f"{what} must list 1..{MAX_KEYS} keys")
    for key in value:
        if type(key) is not bytes or public_key_problem(key) is not None:
            raise _malformed(f"{what}: not an acceptable Ed25519 public key (ID-2.2)")
    if len(set(value)) != len(value):
        raise ManifestError(Rejection.DUPLICATE_KEY, f"{what} lists one key twice")
    return tuple(value)


def _body(body_bytes: bytes, kind: DocumentKind, size: int) -> dict[int, Any]:
    try:
        body = cbor.decode(body_bytes)
    except RemoteProtocolError as exc:
        raise _malformed(exc.message) from None
    if type(body) is not dict or body.get(0) != kind:
        raise _malformed(f"body is not a {kind.name.lower()} body")
    if set(body) != set(range(size)):
        raise _malformed(f"a {kind.name.lower()} body has exactly keys 0..{size - 1}")
    return body


def decode_root(body_bytes: bytes) -> Root:
    """The root in `body_bytes` (shape only, BOOT-1.4); signatures are checked elsewhere."""
    body = _body(body_bytes, DocumentKind.ROOT, 7)
    root = Root(
        version=_uint(body[1], "version", low=1),
        expires_ms=_uint(body[2], "expires"),
        root_keys=_keys(body[3], "root keys"),
        root_threshold=_uint(body[4], "root threshold", low=1),
        manifest_keys=_keys(body[5], "manifest keys"),
        manifest_threshold=_uint(body[6], "manifest threshold", low=1),
    )
    if root.root_threshold > len(root.root_keys):
        raise _malformed("root threshold exceeds the number of root keys")
    if root.manifest_threshold > len(root.manifest_keys):
        raise _malformed("manifest threshold exceeds the number of manifest keys")
    return root


def _pairs(value: object, what: str, limit: int, kinds: type[IntEnum]) -> list[tuple[Any, str]]:
    if type(value) is not list or len(value) > limit:
        raise _malformed(f"{what} must be a list of at most {limit}")
    out: list[tuple[Any, str]] = []
    for item in value:
        if type(item) is not list or len(item) != 2 or type(item[0]) is not int:
            raise _malformed(f"each of {what} is [kind, text]")
        try:
            kind = kinds(item[0])
        except ValueError:
            raise _malformed(f"unknown kind {item[0]} in {what}") from None
        out.append((kind, _text(item[1], what)))
    return out


def _node(value: object) -> BootstrapNode:
    if type(value) is not dict or set(value) != {0, 1}:
        raise _malformed("a node is the map {0: public key, 1: addresses}")
    key = value[0]
    if type(key) is not bytes or public_key_problem(key) is not None:
        raise _malformed("a node's key is not an acceptable Ed25519 public key (ID-2.2)")
    addresses = _pairs(value[1], "addresses", MAX_ADDRESSES, AddressKind)
    if not addresses:
        raise _malformed("a node has at least one address")
    return BootstrapNode(public_key=key, addresses=tuple(addresses))


def decode_manifest(body_bytes: bytes) -> Manifest:
    """The manifest in `body_bytes` (shape only, BOOT-3.5); signatures are checked elsewhere."""
    body = _body(body_bytes, DocumentKind.MANIFEST, 6)
    nodes = body[4]
    if type(nodes) is not list or len(nodes) > MAX_NODES:
        raise _malformed(f"nodes must be a list of at most {MAX_NODES}")
    parsed = tuple(_node(n) for n in nodes)
    if len({n.public_key for n in parsed}) != len(parsed):
        raise ManifestError(Rejection.DUPLICATE_KEY, "one node key listed twice")
    return Manifest(
        version=_uint(body[1], "version", low=1),
        expires_ms=_uint(body[2], "expires"),
        root_version=_uint(body[3], "root version", low=1),
        nodes=parsed,
        sources=tuple(_pairs(body[5], "sources", MAX_SOURCES, SourceKind)),
    )


# --- verification (the client's side) ----------------------------------------------------


def check_threshold(
    message: bytes,
    signatures: Sequence[tuple[bytes, bytes]],
    keys: Sequence[bytes],
    threshold: int,
    role: str,
) -> None:
    """BOOT-1.3: at least `threshold` distinct role keys signed `message` validly."""
    allowed = set(keys)
    valid = 0
    failed = 0
    for key, signature in signatures:
        if key not in allowed:
            continue  # a key outside the role neither counts nor harms (TUF §5.3.4)
        if verify(key, message, signature):
            valid += 1
        else:
            failed += 1
    if valid >= threshold:
        return
    reason = Rejection.BAD_SIGNATURE if failed else Rejection.BELOW_THRESHOLD
    raise ManifestError(reason, f"{role}: {valid} valid of {threshold} required")


def _expired(expires_ms: int, now: float) -> bool:
    return expires_ms <= int(now * 1000)


def update_root(trusted: Root, document: bytes) -> Root:
    """BOOT-2.1: root `trusted.version + 1` from `document`, signed by both root roles.

    Expiry is not checked here: an intermediate root may have expired while a
    client was away; `verify_manifest` refuses a manifest under an expired root.
    """
    if len(document) > MAX_ROOT_SIZE:
        raise ManifestError(Rejection.OVERSIZE, f"root over {MAX_ROOT_SIZE} bytes")
    body_bytes, signatures = _split(document)
    new = decode_root(body_bytes)
    if new.version <= trusted.version:
        raise ManifestError(
            Rejection.ROLLBACK, f"root {new.version} is not newer than {trusted.version}"
        )
    if new.version != trusted.version + 1:
        raise ManifestError(
            Rejection.UNKNOWN_ROOT, f"root {new.version} does not follow {trusted.version}"
        )
    message = ROOT_DOMAIN + body_bytes
    check_threshold(message, signatures, trusted.root_keys, trusted.root_threshold, "old root")
    check_threshold(message, signatures, new.root_keys, new.root_threshold, "new root")
    return new


def update_root_chain(trusted: Root, documents: Sequence[bytes]) -> Root:
    """Apply root updates in order (TUF §5.3: one version at a time)."""
    for document in documents:
        trusted = update_root(trusted, document)
    return trusted


def verify_manifest(
    trusted: Root, document: bytes, *, now: float, last_version: int = 0
) -> Manifest:
    """BOOT-3.x: the manifest in `document`, or `ManifestError` with the first reason found."""
    if len(document) > MAX_MANIFEST_SIZE:  # BOOT-3.1: before any parsing
        raise ManifestError(Rejection.OVERSIZE, f"manifest over {MAX_MANIFEST_SIZE} bytes")
    body_bytes, signatures = _split(document)
    manifest = decode_manifest(body_bytes)
    if manifest.root_version > trusted.version:
        raise ManifestError(
            Rejection.UNKNOWN_ROOT, f"signed under root {manifest.root_version}, not yet trusted"
        )
    if manifest.root_version < trusted.version:
        raise ManifestError(
            Rejection.MIX_AND_MATCH,
            f"signed under root {manifest.root_version}, trusted root is {trusted.version}",
        )
    check_threshold(
        MANIFEST_DOMAIN + body_bytes,
        signatures,
        trusted.manifest_keys,
        trusted.manifest_threshold,
        "manifest",
    )
    if manifest.version < last_version:
        raise ManifestError(
            Rejection.ROLLBACK, f"manifest {manifest.version} older than {last_version}"
        )
    if _expired(trusted.expires_ms, now):
        raise ManifestError(Rejection.EXPIRED, "the trusted root has expired")
    if _expired(manifest.expires_ms, now):
        raise ManifestError(Rejection.EXPIRED, "the manifest has expired")
    return manifest


def root_from_document(document: bytes) -> Root:
    """A root read from a self-signed document, as shipped with a client (BOOT-1.1).

    The document must satisfy its own root role: the trust anchor is the
    document itself, delivered with the software, never fetched.
    """
    if len(document) > MAX_ROOT_SIZE:
        raise ManifestError(Rejection.OVERSIZE, f"root over {MAX_ROOT_SIZE} bytes")
    body_bytes, signatures = _split(document)
    root = decode_root(body_bytes)
    check_threshold(
        ROOT_DOMAIN + body_bytes, signatures, root.root_keys, root.root_threshold, "root"
    )
    return root


def document_body(document: bytes) -> bytes:
    """The body bytes of a signed document (for inspection; no checks beyond its shape)."""
    return _split(document)[0]
