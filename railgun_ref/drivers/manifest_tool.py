"""`railgun-ref manifest ...`: create, sign, rotate and verify bootstrap manifests (BOOT-1..3).

The workflow is TUF's: a document is *created* unsigned, each key holder
*signs* it in turn with their own key file (offline keys never meet), and
anyone *verifies* it against a trusted root. A key rotation creates root
N+1 from root N; it must then be signed by a threshold of the old root keys
and a threshold of the new ones (BOOT-2.1). Key files are identity files
(ID-3.1, mode 0600). Documents are the signed CBOR of BOOT-1.2, written
atomically. Every mistake a user can make is a `UsageError` (one line, exit 2).
"""

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from railgun_ref.bootstrap import manifest as m
from railgun_ref.core import cbor
from railgun_ref.core.errors import LocalProtocolError, RemoteProtocolError
from railgun_ref.drivers.console import UsageError
from railgun_ref.drivers.keystore import load_or_create_identity
from railgun_ref.identity.keys import Identity, public_key_problem

_DAY_MS = 86_400_000

_ADDRESS_KINDS = {"udp": m.AddressKind.UDP, "onion": m.AddressKind.ONION, "i2p": m.AddressKind.I2P}
_SOURCE_KINDS = {"dns": m.SourceKind.DNS_SRV, "ipfs": m.SourceKind.IPFS}


def keygen(path: Path) -> Identity:
    """A new signing key in `path` (refuses to replace an existing file)."""
    if path.exists():
        raise UsageError(f"{path} exists: a key file is never overwritten")
    return load_or_create_identity(path)


def load_key(path: Path) -> Identity:
    if not path.is_file():
        raise UsageError(f"{path}: no such key file")
    return load_or_create_identity(path)


def public_key(text: str) -> bytes:
    """A public key given as 64 hex digits or as the path of a key file."""
    try:
        key = bytes.fromhex(text)
    except ValueError:
        return load_key(Path(text)).public_key
    problem = public_key_problem(key)
    if problem is not None:
        raise UsageError(f"{text[:16]}...: {problem}")
    return key


def parse_node(text: str) -> m.BootstrapNode:
    """``KEY=kind:address[,kind:address...]``, e.g. ``ab12..=udp:127.0.0.1:7000``."""
    key_text, sep, rest = text.partition("=")
    if not sep or not rest:
        raise UsageError(f"--node {text!r}: expected KEY=kind:address[,kind:address]")
    addresses = []
    for item in rest.split(","):
        kind, _, address = item.partition(":")
        if kind not in _ADDRESS_KINDS or not address:
            raise UsageError(
                f"--node address {item!r}: kind must be one of {sorted(_ADDRESS_KINDS)}"
            )
        addresses.append((_ADDRESS_KINDS[kind], address))
    return m.BootstrapNode(public_key=public_key(key_text), addresses=tuple(addresses))


def parse_source(text: str) -> tuple[m.SourceKind, str]:
    """``dns:_railgun._udp.example.org.`` or ``ipfs:CID``."""
    kind, _, value = text.partition(":")
    if kind not in _SOURCE_KINDS or not value:
        raise UsageError(f"--source {text!r}: expected dns:NAME or ipfs:CID")
    return _SOURCE_KINDS[kind], value


def read_document(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such document") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a document") from None
    return data


def write_document(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (a reader never sees half a document)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True, kw_only=True)
class RootSpec:
    """What `create root` and `rotate` are told (keys as bytes, expiry in days)."""

    root_keys: Sequence[bytes]
    root_threshold: int
    manifest_keys: Sequence[bytes]
    manifest_threshold: int
    expires_in_days: float


def _root(version: int, spec: RootSpec) -> m.Root:
    root = m.Root(
        version=version,
        expires_ms=_now_ms() + int(spec.expires_in_days * _DAY_MS),
        root_keys=tuple(spec.root_keys),
        root_threshold=spec.root_threshold,
        manifest_keys=tuple(spec.manifest_keys),
        manifest_threshold=spec.manifest_threshold,
    )
    try:  # the same checks a client applies (BOOT-1.4), before anyone signs it
        m.decode_root(cbor.encode(root.body()))
    except m.ManifestError as exc:
        raise UsageError(f"not a valid root: {exc.message}") from None
    return root


def create_root(spec: RootSpec, version: int = 1) -> bytes:
    """An unsigned root document of `version`."""
    return m.sign_document(_root(version, spec).body(), [])


def rotate(current: bytes, spec: RootSpec) -> bytes:
    """An unsigned root N+1 following the root in `current` (sign with old and new keys)."""
    try:
        old = m.decode_root(m.document_body(current))
    except m.ManifestError as exc:
        raise UsageError(f"not a root document: {exc.message}") from None
    return create_root(spec, version=old.version + 1)


def trusted_root(document: bytes) -> m.Root:
    try:
        return m.root_from_document(document)
    except m.ManifestError as exc:
        raise UsageError(f"the trusted root is not usable: {exc.message}") from None


def create_manifest(
    root: bytes,
    *,
    version: int,
    expires_in_days: float,
    nodes: Sequence[m.BootstrapNode],
    sources: Sequence[tuple[m.SourceKind, str]],
) -> bytes:
    """An unsigned manifest under the (self-signed) root in `root`."""
    manifest = m.Manifest(
        version=version,
        expires_ms=_now_ms() + int(expires_in_days * _DAY_MS),
        root_version=trusted_root(root).version,
        nodes=tuple(nodes),
        sources=tuple(sources),
    )
    try:
        m.decode_manifest(cbor.encode(manifest.body()))
    except m.ManifestError as exc:
        raise UsageError(f"not a valid manifest: {exc.message}") from None
    return m.sign_document(manifest.body(), [])


def sign(document: bytes, keys: Sequence[Identity]) -> bytes:
    try:
        return m.add_signatures(document, keys)
    except RemoteProtocolError as exc:
        raise UsageError(f"not a signed document: {exc.message}") from None
    except LocalProtocolError as exc:  # a key that already signed
        raise UsageError(str(exc)) from None


def _is_root(body: bytes) -> bool:
    try:
        value = cbor.decode(body)
    except RemoteProtocolError:
        return False  # verify_manifest refuses it with its reason
    return type(value) is dict and value.get(0) == m.DocumentKind.ROOT


def verify(
    document: bytes, root: bytes, chain: Sequence[bytes], *, last_version: int, now: float
) -> str:
    """One line describing what `document` is, or `ManifestError` if a client must refuse it."""
    trusted = m.update_root_chain(trusted_root(root), chain)
    if _is_root(m.document_body(document)):
        new = m.update_root(trusted, document)
        return f"root {new.version}: accepted after root {trusted.version}"
    manifest = m.verify_manifest(trusted, document, now=now, last_version=last_version)
    return (
        f"manifest {manifest.version} under root {manifest.root_version}: "
        f"{len(manifest.nodes)} nodes, {len(manifest.sources)} sources"
    )
