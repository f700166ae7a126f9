"""Shared pieces of the vector builders: the file skeleton, fixed seeds, small helpers.

Nothing here reads a clock or ``os.urandom``: seeds are
``SHA-256("railgun-ref/vectors/" || label)`` and "random" bytes are SHA-256 in
counter mode, so every build gives the same bytes.
"""

import hashlib
from collections.abc import Callable
from typing import Any, Final

from railgun_ref.conformance.common import JsonObject, schema_file_name
from railgun_ref.core.errors import ErrorCode, RemoteProtocolError

#: Bumped whenever the generated content changes on purpose.
GENERATOR_VERSION: Final = "1.0"

#: The fixed "now" of the vectors: 2023-11-14T22:13:20Z, in seconds and milliseconds.
T0: Final = 1_700_000_000.0
T0_MS: Final = 1_700_000_000_000

RESULTS: Final = ("valid", "invalid", "acceptable")


def seed_for(label: str) -> bytes:
    """The fixed 32-byte seed of a vector key: SHA-256("railgun-ref/vectors/" || label)."""
    return hashlib.sha256(b"railgun-ref/vectors/" + label.encode("ascii")).digest()


def pseudo_random(label: str, size: int) -> bytes:
    """`size` reproducible bytes (SHA-256 in counter mode) for payloads and garbage."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{label}/{counter}".encode("ascii")).digest()
        counter += 1
    return bytes(out[:size])


def flip(data: bytes, bit: int) -> bytes:
    """`data` with bit number `bit` (little-endian bit order within bytes) inverted."""
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def payload_for_size(make: Callable[[int], bytes], total: int) -> bytes:
    """The zero payload of the size n for which ``len(make(n)) == total``."""
    start = max(0, total - len(make(0)) - 8)
    for n in range(start, total + 1):
        if len(make(n)) == total:
            return bytes(n)
    raise AssertionError(f"no payload size gives {total} bytes")


def refusal(call: Callable[[], object]) -> ErrorCode | None:
    """Run `call`; the code of the RemoteProtocolError it raised, or None if it returned."""
    try:
        call()
    except RemoteProtocolError as exc:
        return exc.code
    return None


class Vectors:
    """One vector file under construction (the Wycheproof skeleton)."""

    def __init__(self, area: str, algorithm: str, header: list[str], notes: dict[str, str]) -> None:
        self.area = area
        self.algorithm = algorithm
        self.header = header
        self.notes = notes
        self.groups: list[JsonObject] = []
        self._next_id = 1

    def group(self, group_type: str, **params: Any) -> list[JsonObject]:
        """Open a test group sharing `params`; returns its list of tests to fill."""
        tests: list[JsonObject] = []
        self.groups.append({"type": group_type, **params, "tests": tests})
        return tests

    def test(
        self,
        tests: list[JsonObject],
        *,
        comment: str,
        result: str,
        clause: str,
        flags: tuple[str, ...] = (),
        **fields: Any,
    ) -> None:
        unknown = [flag for flag in flags if flag not in self.notes]
        if unknown:
            raise AssertionError(f"{self.area}: flags without a note: {unknown}")
        if result not in RESULTS:
            raise AssertionError(f"{self.area}: bad result {result!r}")
        tests.append(
            {
                "tcId": self._next_id,
                "comment": comment,
                "flags": list(flags),
                "result": result,
                "clause": clause,
                **fields,
            }
        )
        self._next_id += 1

    def document(self) -> JsonObject:
        used = {flag for group in self.groups for test in group["tests"] for flag in test["flags"]}
        unused = sorted(set(self.notes) - used)
        if unused:
            raise AssertionError(f"{self.area}: notes for unused flags {unused}")
        return {
            "algorithm": self.algorithm,
            "schema": schema_file_name(self.area),
            "generatorVersion": GENERATOR_VERSION,
            "numberOfTests": self._next_id - 1,
            "header": self.header,
            "notes": self.notes,
            "testGroups": self.groups,
        }
