"""The event and counter names node vectors use are the spec's (OBS-1.1, OBS-1.2)."""

import re
from collections.abc import Iterator
from typing import Any

import pytest

from railgun_ref.conformance.common import load_vectors
from railgun_ref.conformance.observations import EVENTS, SpecCounter, SpecEvent, spec_counter
from railgun_ref.conformance.traceability import SPEC_PATH

_FILES = ("node_ping", "dht_node")


def _spec_table(clause: str) -> list[str]:
    """The backticked first cells of the table that follows `clause` in the spec."""
    text = SPEC_PATH.read_text(encoding="utf-8")
    after = text[text.index(f"**{clause}**") :]
    table = after[after.index("\n|") : after.index("\n\n", after.index("\n|"))]
    return re.findall(r"^\| `([^`]+)` \|", table, flags=re.MULTILINE)


def _walk(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def _counter_family(name: str) -> str:
    return name.partition(".")[0]


@pytest.mark.clause("OBS-1.1")
def test_events_are_the_spec_table() -> None:
    """OBS-1.1: the spec's event table is `SpecEvent`, and vectors use only those names."""
    assert _spec_table("OBS-1.1") == [str(e) for e in SpecEvent]
    assert set(EVENTS.values()) == set(SpecEvent)
    used = {
        event["event"]
        for area in _FILES
        for node in _walk(load_vectors(area))
        for event in node.get("events", [])
        if isinstance(node.get("events"), list)
    }
    assert used and used <= {str(e) for e in SpecEvent}


@pytest.mark.clause("OBS-1.2")
def test_counters_are_the_spec_table() -> None:
    """OBS-1.2: the spec's counter table is `SpecCounter`, and vectors use only those names."""
    assert [_counter_family(n) for n in _spec_table("OBS-1.2")] == [str(c) for c in SpecCounter]
    used = {
        name
        for area in _FILES
        for node in _walk(load_vectors(area))
        if isinstance(node.get("counters"), dict)
        for name in node["counters"]
    }
    assert used and {_counter_family(n) for n in used} <= {str(c) for c in SpecCounter}
    assert spec_counter("rejected.WRONG_SENDER") == "refused.WRONG_SENDER"
    assert spec_counter("request.find_value") == "requests.FIND_VALUE"
    with pytest.raises(KeyError):
        spec_counter("dht.unnamed")
