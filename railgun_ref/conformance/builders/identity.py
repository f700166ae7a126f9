"""identity.json: identity files (ID-3.1) and the node ids they yield (ID-1.1)."""

from typing import Final

from railgun_ref.conformance.builders.base import Vectors, seed_for
from railgun_ref.conformance.common import JsonObject
from railgun_ref.identity.keyfile import KeyFileError, dump_identity, load_identity
from railgun_ref.identity.keys import Identity, node_id_of

NOTES: Final = {
    "Canonical": "Exactly the bytes a writer produces.",
    "Lenient": "Not what a writer produces, but unambiguous; a reader may accept it.",
    "BadTag": "The file does not start with the tag railgun-identity-v1.",
    "BadSeed": "The seed is not 64 hex digits.",
    "NotAscii": "The file is not ASCII.",
    "WhiteSpace": "White space (0x20, 0x09..0x0D: ID-3.1) before the tag or after the seed.",
    "NotWhiteSpace": "A control character that is not white space by ID-3.1 (0x1C..0x1F).",
}

HEADER: Final = [
    "Identity files (ID-3.1) and node ids (ID-1.1). A valid file yields the Ed25519",
    "public key of its seed (RFC 8032) and the node id SHA-256(public key).",
    "'acceptable' marks inputs a reader may accept or refuse; the reference accepts",
    "them, and when accepted they must yield the key and node id given.",
]


def build() -> JsonObject:
    v = Vectors("identity", "railgun-identity-file", HEADER, NOTES)
    tests = v.group("IdentityFileTest")

    def add(data: bytes, comment: str, result: str, flag: str) -> None:
        try:
            identity: Identity | None = load_identity(data)
        except KeyFileError:
            identity = None
        assert (identity is not None) == (result != "invalid"), comment
        fields: JsonObject = {"keyFile": data.hex()}
        if identity is not None:
            assert identity.node_id == node_id_of(identity.public_key)
            fields |= {"publicKey": identity.public_key.hex(), "nodeId": identity.node_id.hex()}
        clause = "ID-1.1" if flag == "Canonical" else "ID-3.1"
        v.test(tests, comment=comment, result=result, clause=clause, flags=(flag,), **fields)

    for label in ("identity/key-1", "identity/key-2"):
        identity = Identity.from_seed(seed_for(label))
        add(dump_identity(identity), f"the identity file of seed {label!r}", "valid", "Canonical")
    identity = Identity.from_seed(seed_for("identity/key-1"))
    line = dump_identity(identity).rstrip(b"\n")
    tag = b"railgun-identity-v1 "
    seed = identity.seed.hex().encode("ascii")
    for data, comment, result, flag in (
        (line, "no final newline", "acceptable", "Lenient"),
        (line + b"\r\n", "CRLF line ending", "acceptable", "Lenient"),
        (tag + seed.upper() + b"\n", "upper-case hex", "acceptable", "Lenient"),
        (b"railgun-identity-v2 " + seed + b"\n", "tag of a version 2", "invalid", "BadTag"),
        (seed + b"\n", "seed without the tag", "invalid", "BadTag"),
        (b"", "empty file", "invalid", "BadTag"),
        (tag.rstrip() + b"\n", "tag without a seed", "invalid", "BadSeed"),
        (tag + seed[:62] + b"\n", "31-byte seed", "invalid", "BadSeed"),
        (tag + seed + b"00\n", "33-byte seed", "invalid", "BadSeed"),
        (tag + seed[:63] + b"g\n", "non-hex digit", "invalid", "BadSeed"),
        (tag + seed + b"\xc3\xa9\n", "non-ASCII bytes after the seed", "invalid", "NotAscii"),
        (b" \t" + line + b"\n", "space and tab before the tag", "acceptable", "WhiteSpace"),
        (b"\n\n" + line + b"\n", "blank lines before the tag", "acceptable", "WhiteSpace"),
        (
            line + b"\x0b\x0c\r\n \n",
            "VT, FF, CR LF, space, LF after the seed",
            "acceptable",
            "WhiteSpace",
        ),
        (line + b"\x1c\n", "0x1C (file separator) after the seed", "invalid", "NotWhiteSpace"),
        (
            b"\x1f" + line + b"\n",
            "0x1F (unit separator) before the tag",
            "invalid",
            "NotWhiteSpace",
        ),
        (b"\xc2\xa0" + line + b"\n", "U+00A0 no-break space before the tag", "invalid", "NotAscii"),
        (tag + b" " + seed + b"\n", "two spaces between tag and seed", "invalid", "BadSeed"),
        (tag.rstrip() + b"\t" + seed + b"\n", "a tab between tag and seed", "invalid", "BadTag"),
        (
            tag + seed[:32] + b" " + seed[32:] + b"\n",
            "a space inside the seed",
            "invalid",
            "BadSeed",
        ),
    ):
        add(data, comment, result, flag)
    return v.document()
