"""The normative text and the code state the same numbers.

paper/spec.md carries tables (error codes, message types, parameters, the
small-order points) that the code defines too; these tests read the tables
out of the Markdown and compare them with the code, so neither can drift.
"""

import re

import pytest

from railgun_ref.conformance.traceability import SPEC_PATH, parse_spec
from railgun_ref.core import constants
from railgun_ref.core.errors import ErrorCode
from railgun_ref.identity import ed25519_math
from railgun_ref.node import NodeConfig
from railgun_ref.wire.envelope import ENVELOPE_DOMAIN
from railgun_ref.wire.messages import MAX_HOST_LENGTH, MAX_REASON_LENGTH, MessageType

SPEC = SPEC_PATH.read_text(encoding="utf-8")


def _table_after(anchor: str) -> list[list[str]]:
    """The rows (cells stripped, header and rule dropped) of the first table after `anchor`."""
    start = SPEC.index(anchor)
    rows: list[list[str]] = []
    for line in SPEC[start:].splitlines()[1:]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            break
    return rows[2:]


@pytest.mark.clause("ERR-1.1")
def test_error_code_table_matches_the_enum() -> None:
    rows = _table_after("**ERR-1.1**")
    assert {name: int(code) for code, name, _ in rows} == {c.name: c.value for c in ErrorCode}


@pytest.mark.clause("MSG-1.1")
def test_message_type_table_matches_the_enum() -> None:
    rows = _table_after("**MSG-1.1**")
    assert {name: int(number) for number, name, *_ in rows} == {
        t.name: t.value for t in MessageType
    }
    requests = {name for _, name, kind, *_ in rows if kind == "request"}
    assert requests == {"PING", "FIND_NODE", "FIND_VALUE", "STORE"}


@pytest.mark.clause("ID-2.2", "ID-2.3")
def test_small_order_table_matches_the_curve() -> None:
    rows = _table_after("y-coordinates of the eight small-order points")
    listed = {int.from_bytes(bytes.fromhex(cell.strip("`")), "little") for _, cell in rows}
    assert listed == ed25519_math.small_order_y_values()


def test_parameters_table_matches_the_constants() -> None:
    """Section 0.4 against core.constants, the node defaults and the wire modules."""
    rows = {name: value for name, value, _ in _table_after("### 0.4 Parameters")}

    def number(name: str) -> int:
        match = re.match(r"\d+", rows[name])
        assert match is not None, rows[name]
        return int(match.group())

    assert number("protocol version") == constants.PROTOCOL_VERSION
    assert number("datagram envelope limit") == constants.MAX_DATAGRAM_SIZE
    assert number("stream message limit") == constants.MAX_STREAM_MESSAGE_SIZE
    assert number("stream length prefix") == constants.STREAM_LENGTH_PREFIX_SIZE
    assert number("CBOR depth limit") == constants.MAX_CBOR_DEPTH
    assert number("clock skew") == constants.MAX_CLOCK_SKEW == NodeConfig().max_clock_skew
    assert number("request timeout (default)") == NodeConfig().request_timeout
    assert number("ERROR reason length") == MAX_REASON_LENGTH
    assert rows["address host length"].startswith(f"1..{MAX_HOST_LENGTH} ")
    assert rows["envelope signature domain"] == "`railgun/v1/envelope` 0x00 (20 bytes)"
    assert ENVELOPE_DOMAIN == b"railgun/v1/envelope\x00"
    assert ENVELOPE_DOMAIN.hex() in SPEC


def test_clause_ids_are_unique_and_well_formed() -> None:
    clauses = parse_spec(SPEC)
    assert len({c.id for c in clauses}) == len(clauses) > 40
    assert all(c.section for c in clauses)
    areas = {c.id.split("-")[0] for c in clauses}
    assert areas == {"ENC", "ID", "ENV", "MSG", "RPC", "NODE", "STR", "ERR"}


def test_every_decision_follows_a_clause() -> None:
    """A **Decision:** paragraph explains the clause above it, so one must precede it."""
    seen_clause = False
    for line in SPEC.splitlines():
        if line.startswith("**") and parse_spec(line):
            seen_clause = True
        if line.startswith("**Decision:**"):
            assert seen_clause, line
