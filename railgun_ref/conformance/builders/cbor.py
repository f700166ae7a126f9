"""cbor.json: deterministic CBOR encodings (ENC-1.x), valid and invalid.

Valid tests are built from values with the reference encoder; invalid ones are
hand-written byte strings, each checked here to be refused with MALFORMED by
the reference decoder before it is written.
"""

from typing import Any, Final

from railgun_ref.conformance.builders.base import Vectors, refusal
from railgun_ref.conformance.common import JsonObject, diagnostic
from railgun_ref.core.errors import ErrorCode
from railgun_ref.wire import cbor

NOTES: Final = {
    "Boundary": "An integer or length at the edge of a head size (23/24, 255/256, ...).",
    "NonShortestHead": "An integer or length written with a longer head than needed.",
    "MapOrder": "Map keys out of ascending order.",
    "DuplicateKey": "A map key that appears twice.",
    "NonUintKey": "A map key that is not an unsigned integer.",
    "Float": "A floating-point value (excluded from the data model).",
    "SimpleValue": "A simple value other than false, true and null.",
    "Tag": "A tagged item (tags are excluded from the data model).",
    "BigInt": "An integer outside the 64-bit range, only expressible with a bignum tag.",
    "Indefinite": "An indefinite-length string, array or map, or a lone break.",
    "TrailingBytes": "Bytes left over after one complete item.",
    "Truncated": "Input ending before the item it starts is complete.",
    "ReservedHead": "Additional-information values 28 to 30, which are not well-formed.",
    "Depth": "Nesting at or beyond the depth limit of ENC-1.4.",
    "InvalidUtf8": "A text string whose bytes are not valid UTF-8.",
    "LengthTooLarge": "A length far larger than the input, which must not be trusted.",
}

HEADER: Final = [
    "Deterministic CBOR (paper/spec.md ENC-1.x): RFC 8949 section 4.2.1 core",
    "deterministic encoding over a restricted data model. A decoder must accept",
    "an input exactly when it is one item of the data model whose deterministic",
    "re-encoding equals the input; every refusal is the error MALFORMED.",
    "Valid tests give the decoded value in RFC 8949 section 8 diagnostic notation.",
]


def _nested(inner: Any, depth: int) -> Any:
    for _ in range(depth):
        inner = [inner]
    return inner


_B: Final = ("Boundary",)

#: (value, comment, flags) of the valid tests.
VALID: Final[list[tuple[Any, str, tuple[str, ...]]]] = [
    *((n, f"unsigned integer {n}", ()) for n in (0, 1, 10, 100, 1000)),
    *((n, f"unsigned integer {n}", _B) for n in (23, 24, 25, 255, 256, 65535, 65536)),
    (2**32 - 1, "unsigned integer 2^32-1", _B),
    (2**32, "unsigned integer 2^32", _B),
    (1_000_000_000_000, "unsigned integer 10^12", ()),
    (2**64 - 1, "unsigned integer 2^64-1, the largest", _B),
    *((n, f"negative integer {n}", ()) for n in (-1, -10, -100, -1000)),
    *((n, f"negative integer {n}", _B) for n in (-24, -25, -256, -257)),
    (-(2**32), "negative integer -2^32", _B),
    (-(2**32) - 1, "negative integer -2^32-1", _B),
    (-(2**64), "negative integer -2^64, the smallest", _B),
    (b"", "empty byte string", ()),
    (bytes.fromhex("01020304"), "byte string of 4 bytes", ()),
    (bytes(range(23)), "byte string of 23 bytes", _B),
    (bytes(range(24)), "byte string of 24 bytes", _B),
    (bytes(256), "byte string of 256 bytes", _B),
    ("", "empty text string", ()),
    ("a", "text string 'a'", ()),
    ("IETF", "text string 'IETF'", ()),
    ("\u00fc", "text string U+00FC (2 UTF-8 bytes)", ()),
    ("\u6c34", "text string U+6C34 (3 UTF-8 bytes)", ()),
    ("\U00010151", "text string U+10151 (4 UTF-8 bytes)", ()),
    ("x" * 24, "text string of 24 characters", _B),
    ([], "empty array", ()),
    ([1, 2, 3], "array [1, 2, 3]", ()),
    ([1, [2, 3], [4, 5]], "nested arrays", ()),
    (list(range(25)), "array of 25 elements", _B),
    ({}, "empty map", ()),
    ({0: 1}, "map {0: 1}", ()),
    ({1: 2, 3: 4}, "map {1: 2, 3: 4}", ()),
    ({10: "a", 24: "b", 256: "c", 2**32: "d"}, "keys with 1-, 2-, 3- and 9-byte heads", _B),
    ({0: {1: [b"\x00", "t", -1]}, 5: None}, "nested map and array", ()),
    (True, "true", ()),
    (False, "false", ()),
    (None, "null", ()),
    (_nested(0, 8), "integer at depth 8 inside 8 arrays: the deepest allowed", ("Depth",)),
    (_nested([], 8), "empty array at depth 8 inside 8 arrays", ("Depth",)),
]

_S: Final = ("NonShortestHead",)
_T: Final = ("Truncated",)

#: (hex, comment, clause, flags) of the invalid tests; every one must be MALFORMED.
INVALID: Final[list[tuple[str, str, str, tuple[str, ...]]]] = [
    ("1800", "0 with a 1-byte argument", "ENC-1.5", _S),
    ("1817", "23 with a 1-byte argument", "ENC-1.5", _S),
    ("1900ff", "255 with a 2-byte argument", "ENC-1.5", _S),
    ("1a0000ffff", "65535 with a 4-byte argument", "ENC-1.5", _S),
    ("1b00000000ffffffff", "2^32-1 with an 8-byte argument", "ENC-1.5", _S),
    ("3800", "-1 with a 1-byte argument", "ENC-1.5", _S),
    ("3b00000000ffffffff", "-2^32 with an 8-byte argument", "ENC-1.5", _S),
    ("580100", "byte string length 1 in a 1-byte argument", "ENC-1.5", _S),
    ("780161", "text string length 1 in a 1-byte argument", "ENC-1.5", _S),
    ("98020102", "array length 2 in a 1-byte argument", "ENC-1.5", _S),
    ("b8010001", "map length 1 in a 1-byte argument", "ENC-1.5", _S),
    ("a2 01 00 00 00", "map {1: 0, 0: 0}: keys descending", "ENC-1.3", ("MapOrder",)),
    ("a2 1818 00 0a 00", "map key 24 before key 10", "ENC-1.3", ("MapOrder",)),
    ("a2 190100 00 18ff 00", "map key 256 before key 255", "ENC-1.3", ("MapOrder",)),
    ("a2 00 00 00 01", "map with key 0 twice", "ENC-1.3", ("DuplicateKey",)),
    ("a1 6161 00", "map with a text key", "ENC-1.3", ("NonUintKey",)),
    ("a1 20 00", "map with a negative integer key", "ENC-1.3", ("NonUintKey",)),
    ("a1 40 00", "map with a byte string key", "ENC-1.3", ("NonUintKey",)),
    ("a1 f5 00", "map with key true", "ENC-1.3", ("NonUintKey",)),
    ("a1 f6 00", "map with key null", "ENC-1.3", ("NonUintKey",)),
    ("a1 80 00", "map with an array key", "ENC-1.3", ("NonUintKey",)),
    ("f90000", "half-precision float 0.0", "ENC-1.2", ("Float",)),
    ("f93c00", "half-precision float 1.0", "ENC-1.2", ("Float",)),
    ("fa3f800000", "single-precision float 1.0", "ENC-1.2", ("Float",)),
    ("fb3ff0000000000000", "double-precision float 1.0", "ENC-1.2", ("Float",)),
    ("f97e00", "half-precision NaN", "ENC-1.2", ("Float",)),
    ("f7", "undefined", "ENC-1.2", ("SimpleValue",)),
    ("f0", "simple value 16", "ENC-1.2", ("SimpleValue",)),
    ("f820", "simple value 32", "ENC-1.2", ("SimpleValue",)),
    ("f814", "false written with a 1-byte argument", "ENC-1.2", ("SimpleValue",)),
    ("c074323031332d30332d32315432303a30343a30305a", "tag 0 (date string)", "ENC-1.2", ("Tag",)),
    ("c100", "tag 1 (epoch time) on 0", "ENC-1.2", ("Tag",)),
    ("c24101", "tag 2 bignum of value 1", "ENC-1.2", ("Tag",)),
    ("c600", "unassigned tag 6 on 0", "ENC-1.2", ("Tag",)),
    ("d818 4100", "tag 24 (embedded CBOR)", "ENC-1.2", ("Tag",)),
    ("d9d9f7 00", "self-described CBOR tag 55799", "ENC-1.2", ("Tag",)),
    ("c249 010000000000000000", "2^64 as a bignum", "ENC-1.2", ("Tag", "BigInt")),
    ("c349 010000000000000000", "-2^64-1 as a negative bignum", "ENC-1.2", ("Tag", "BigInt")),
    ("5f 4100 ff", "indefinite-length byte string", "ENC-1.2", ("Indefinite",)),
    ("7f 6161 ff", "indefinite-length text string", "ENC-1.2", ("Indefinite",)),
    ("9f 00 ff", "indefinite-length array", "ENC-1.2", ("Indefinite",)),
    ("bf 00 00 ff", "indefinite-length map", "ENC-1.2", ("Indefinite",)),
    ("ff", "a lone break code", "ENC-1.2", ("Indefinite",)),
    ("0000", "two items: 0 then 0", "ENC-1.5", ("TrailingBytes",)),
    ("80 00", "empty array followed by a byte", "ENC-1.5", ("TrailingBytes",)),
    ("", "empty input", "ENC-1.5", _T),
    ("19 01", "2-byte argument cut short", "ENC-1.5", _T),
    ("1b 00000000000000", "8-byte argument cut short", "ENC-1.5", _T),
    ("42 00", "byte string of 2 with 1 byte", "ENC-1.5", _T),
    ("62 61", "text string of 2 with 1 byte", "ENC-1.5", _T),
    ("82 00", "array of 2 with 1 element", "ENC-1.5", _T),
    ("a1 00", "map of 1 with a key but no value", "ENC-1.5", _T),
    *(
        (head, f"initial byte 0x{head}: reserved argument size", "ENC-1.5", ("ReservedHead",))
        for head in ("1c", "1d", "1e", "3c", "5c", "7c", "9c", "bc", "dc", "fc")
    ),
    ("81" * 9 + "00", "integer at depth 9 inside 9 arrays", "ENC-1.4", ("Depth",)),
    ("81" * 9 + "80", "empty array at depth 9", "ENC-1.4", ("Depth",)),
    ("a100" * 8 + "a10000", "map value at depth 9 inside 9 maps", "ENC-1.4", ("Depth",)),
    ("81" * 40 + "00", "integer at depth 40", "ENC-1.4", ("Depth",)),
    ("62 c328", "text with an invalid continuation byte", "ENC-1.2", ("InvalidUtf8",)),
    ("61 ff", "text with byte 0xff", "ENC-1.2", ("InvalidUtf8",)),
    ("63 eda080", "text with a UTF-16 surrogate", "ENC-1.2", ("InvalidUtf8",)),
    ("62 c080", "text with an overlong encoding of U+0000", "ENC-1.2", ("InvalidUtf8",)),
    ("5b ffffffffffffffff", "byte string of 2^64-1 bytes", "ENC-1.5", ("LengthTooLarge", *_T)),
    ("9b ffffffffffffffff", "array of 2^64-1 elements", "ENC-1.5", ("LengthTooLarge", *_T)),
]


def build() -> JsonObject:
    v = Vectors("cbor", "railgun-deterministic-cbor", HEADER, NOTES)
    tests = v.group("CborDecodeTest", maxDepth=8)
    for value, comment, flags in VALID:
        encoded = cbor.encode(value)
        decoded = cbor.decode(encoded)
        assert cbor.encode(decoded) == encoded, comment
        v.test(tests, comment=comment, result="valid", clause="ENC-1.1", flags=flags,
               encoded=encoded.hex(), diagnostic=diagnostic(decoded))  # fmt: skip
    tests = v.group("CborDecodeTest", maxDepth=8)
    for text, comment, clause, flags in INVALID:
        data = bytes.fromhex(text.replace(" ", ""))
        code = refusal(lambda: cbor.decode(data))  # noqa: B023
        assert code is ErrorCode.MALFORMED, (comment, code)
        v.test(tests, comment=comment, result="invalid", clause=clause, flags=flags,
               encoded=data.hex(), expectedError=code.name)  # fmt: skip
    return v.document()
