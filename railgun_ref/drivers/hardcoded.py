"""The hard-coded bootstrap list shipped in the package, verified before use (BOOT-1.1, BOOT-1.6).

The package carries two signed documents (BOOT-1.2) in
``railgun_ref/bootstrap/data/``:

* ``root.cbor`` -- the trusted root (BOOT-1.1): trusted because it came with
  the software, and only if it satisfies its own root role;
* ``hardcoded.cbor`` -- the hard-coded list: a manifest (BOOT-3) that must
  verify under that root, every time it is loaded (BOOT-1.6).

`load_hardcoded` reads both (or documents given to it, e.g. a deployment's
own or a test root) and returns the verified `Manifest`, or raises
`ManifestError` with the reason (`Rejection`) it was refused: an unsigned
list is ``below_threshold``, a forged one ``bad_signature``, one under
another root ``unknown_root`` or ``mix_and_match``, a stale one ``expired``.
`hardcoded_list` returns the refusal instead of raising it, which is what
`BootstrapSetup.hardcoded` takes: the race then reports the method as failed
with ``manifest_rejected`` and goes on with the other methods.

What is shipped is honest about there being no public bootstrap nodes yet:
the list is *empty* (the race reports ``no_candidates`` for it), under a
placeholder root whose private keys were discarded after signing, so nobody
can sign anything under it. A deployment replaces both files with its own
(``railgun-ref manifest``: keygen, create root, sign, create manifest,
sign, verify; see ``railgun_ref/bootstrap/data/README.md``).
"""

import time
from importlib import resources
from typing import Final

from railgun_ref.bootstrap import manifest as m

__all__ = [
    "DATA_PACKAGE",
    "LIST_FILE",
    "ROOT_FILE",
    "hardcoded_list",
    "load_hardcoded",
    "packaged_documents",
]

#: The package whose ``data/`` directory holds the documents (package data, not a package).
DATA_PACKAGE: Final = "railgun_ref.bootstrap"
ROOT_FILE: Final = "root.cbor"
LIST_FILE: Final = "hardcoded.cbor"


def packaged_documents() -> tuple[bytes, bytes]:
    """The shipped root and hard-coded list documents, as bytes (unverified)."""
    files = resources.files(DATA_PACKAGE) / "data"
    return (files / ROOT_FILE).read_bytes(), (files / LIST_FILE).read_bytes()


def load_hardcoded(
    *, now: float, root: bytes | None = None, document: bytes | None = None
) -> m.Manifest:
    """The hard-coded list verified under the shipped root (BOOT-1.6), or `ManifestError`.

    `root` and `document` default to the packaged files. The list's version is
    not checked against manifests fetched later: it came with the software.
    """
    if root is None or document is None:
        packaged_root, packaged_list = packaged_documents()
        root = packaged_root if root is None else root
        document = packaged_list if document is None else document
    trusted = m.root_from_document(root)  # BOOT-1.1: satisfies its own root role
    return m.verify_manifest(trusted, document, now=now)


def hardcoded_list(
    *, now: float | None = None, root: bytes | None = None, document: bytes | None = None
) -> m.Manifest | m.ManifestError:
    """`load_hardcoded`, with a refusal returned rather than raised (for `BootstrapSetup`)."""
    try:
        return load_hardcoded(now=time.time() if now is None else now, root=root, document=document)
    except m.ManifestError as exc:
        return exc
