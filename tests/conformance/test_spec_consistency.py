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
from railgun_ref.dht import service
from railgun_ref.dht.keys import KEY_DOMAIN, MAX_IDENT_SIZE, KeyType
from railgun_ref.dht.records import MAX_TTL, MAX_VALUE_SIZE, RECORD_DOMAIN
from railgun_ref.dht.service import DhtConfig
from railgun_ref.dht.storage import StorageLimits
from railgun_ref.identity import ed25519_math
from railgun_ref.node import NodeConfig
from railgun_ref.wire.envelope import ENVELOPE_DOMAIN
from railgun_ref.wire.messages import (
    MAX_CONTACTS,
    MAX_HOST_LENGTH,
    MAX_REASON_LENGTH,
    MAX_RECORDS,
    MessageType,
)

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
    assert areas >= {
        *("ENC", "ID", "ENV", "MSG", "RPC", "NODE", "STR", "ERR", "CORE"),
        *("DHT", "ROOM", "HT", "CAP", "CEN", "APP", "VOICE", "TURN"),
        "BOOT",
    }
    # Every area is introduced by a heading that names it, e.g. "## 10. ... (DHT)".
    headings = [line for line in SPEC.splitlines() if line.startswith("#")]
    for area in areas:
        assert any(f"({area})" in h or f" {area}-" in h for h in headings), area


def test_every_decision_follows_a_clause() -> None:
    """A **Decision:** paragraph explains the clause above it, so one must precede it."""
    seen_clause = False
    for line in SPEC.splitlines():
        if line.startswith("**") and parse_spec(line):
            seen_clause = True
        if line.startswith("**Decision:**"):
            assert seen_clause, line


@pytest.mark.clause("DHT-2.1")
def test_key_type_table_matches_the_enum() -> None:
    rows = _table_after("**DHT-2.1**")
    assert {name: int(number) for number, name, *_ in rows} == {
        t.wire_name.decode("ascii"): t.value for t in KeyType
    }
    assert KEY_DOMAIN.hex() in SPEC and RECORD_DOMAIN.hex() in SPEC


@pytest.mark.clause("DHT-9.1")
def test_dht_parameters_table_matches_the_code() -> None:
    """DHT-9.1 against DhtConfig, StorageLimits and the wire constants of the DHT."""
    rows = {name: (value, kind) for name, value, kind, _ in _table_after("**DHT-9.1**")}

    def number(name: str) -> float:
        match = re.match(r"[0-9.]+", rows[name][0])
        assert match is not None, rows[name]
        return float(match.group())

    def last(name: str) -> int:
        return int(re.findall(r"\d+", rows[name][0].split(" (")[0])[-1])

    config, limits = DhtConfig(), StorageLimits()
    assert {name for name, (_, kind) in rows.items() if kind == "wire"} == {
        "id and key size",
        "key derivation domain",
        "ident size",
        "record signature domain",
        "record value size",
        "maximum TTL",
        "contacts per NODES or VALUE",
        "records per VALUE",
        "reply overhead",
    }
    assert number("id and key size") == 32
    assert rows["key derivation domain"][0] == "`railgun/v1/dht-key` 0x00 (19 bytes)"
    assert KEY_DOMAIN == b"railgun/v1/dht-key\x00"
    assert rows["record signature domain"][0] == "`railgun/v1/record` 0x00 (18 bytes)"
    assert RECORD_DOMAIN == b"railgun/v1/record\x00"
    assert last("ident size") == MAX_IDENT_SIZE
    assert last("record value size") == MAX_VALUE_SIZE
    assert number("maximum TTL") == MAX_TTL
    assert number("contacts per NODES or VALUE") == MAX_CONTACTS
    assert number("records per VALUE") == MAX_RECORDS
    assert number("reply overhead") == service._ENVELOPE_OVERHEAD
    assert number("k (bucket size, replication)") == config.k
    assert number("α (queries in flight)") == config.alpha
    assert number("max_failures") == config.max_failures
    slow = rows["slow_after"][0]
    assert f"{config.slow_after_rtt_factor:g} × SRTT" in slow
    assert f"{config.slow_after_min:g}..{config.slow_after_max:g} s" in slow
    assert f"({config.slow_after_max / 2:g} s before any sample)" in slow
    assert number("refresh interval") == config.refresh_interval
    assert number("republish interval") == config.republish_interval
    assert number("replicate interval") == config.replicate_interval
    assert number("record TTL") == config.record_ttl
    assert number("records per key") == limits.per_key
    assert number("records per publisher") == limits.per_publisher
    assert number("records in total") == limits.total
    assert number("disjoint paths") == config.disjoint_paths
