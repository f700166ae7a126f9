"""The requester-side runner against `railgun-ref node` and three broken requesters.

The runner starts each target itself through the control surface of REQ-1.1
(``node --bootstrap {bootstrap} --lookup {key}``), plays the network it joins,
and judges what the target sent.
"""

import sys
from pathlib import Path

import anyio
import pytest

from railgun_ref.conformance import requester_runner
from railgun_ref.conformance.catalog import REQUESTER_CHECKS
from railgun_ref.conformance.wire_runner import Report

from .requesters import MUTANTS

REQUESTERS = Path(__file__).with_name("requesters.py")
CONTROL = ["node", "--host", "127.0.0.1", "--bootstrap", "{bootstrap}", "--lookup", "{key}"]


def _run(command: list[str]) -> Report:
    async def go() -> Report:
        with anyio.fail_after(60):
            return await requester_runner.run(command, timeout=30)

    return anyio.run(go)


@pytest.mark.integration
@pytest.mark.clause("REQ-1.1", "REQ-1.2")
def test_reference_node_passes_as_a_requester() -> None:
    """`railgun-ref node` joins, looks up and evicts as DHT-6.1, DHT-6.3, DHT-6.4, DHT-6.6,
    RPC-1.3 and DHT-5.2 require."""
    report = _run([sys.executable, "-m", "railgun_ref.cli", *CONTROL])
    assert report.passed, report.to_json()
    assert [(c.clause, c.check) for c in report.checks] == list(REQUESTER_CHECKS)


@pytest.mark.integration
@pytest.mark.parametrize("mode", sorted(MUTANTS))
def test_broken_requester_fails_the_clause_it_breaks(mode: str) -> None:
    report = _run([sys.executable, str(REQUESTERS), mode, *CONTROL])
    assert not report.passed
    assert MUTANTS[mode] in report.failed_clauses, report.to_json()


@pytest.mark.integration
def test_a_target_that_never_prints_fails_the_control_surface() -> None:
    report = _run([sys.executable, "-c", "print('hello')"])
    assert not report.passed
    assert report.failed_clauses == ["REQ-1.1"]
