"""The wire runner against nodes it did not start: one good, several deliberately broken.

Each node is a separate process (tests/conformance/responders.py, or the real
``railgun-ref node``) that prints its address on its first stdout line; the
runner only knows that address. A good node must pass every check, and each
broken one must fail the clause it breaks.
"""

import importlib.util
import json
from collections.abc import Callable
from contextlib import AbstractContextManager

import anyio
import pytest

from railgun_ref.conformance import wire_runner
from railgun_ref.conformance.catalog import WIRE_CHECKS
from railgun_ref.conformance.wire_runner import Report, TargetError, parse_target

from .responders import MUTANTS

#: Each wait for a reply (or for silence) in these runs, seconds.
TIMEOUT = 0.5

Starter = Callable[..., AbstractContextManager[tuple[str, str]]]

#: Clauses a passing run checks (and names in its report): those of the catalog.
CHECKED = {clause for clause, _ in WIRE_CHECKS}
#: Checks in a full run.
CHECK_COUNT = len(WIRE_CHECKS)


def _run(target: str) -> Report:
    async def go() -> Report:
        with anyio.fail_after(30):
            return await wire_runner.run(target, timeout=TIMEOUT)

    return anyio.run(go)


@pytest.mark.integration
@pytest.mark.clause(*sorted(CHECKED))
def test_good_responder_passes_every_check(responder: Starter) -> None:
    """A node built on the sans-IO core passes MSG-2.1/2.2, NODE-1.2, ENV-2.4, MSG-1.3 ...
    the DHT checks (DHT-5.1, DHT-7.1 .. DHT-7.8, DHT-3.3, DHT-3.4) and APP-1.1/APP-1.2."""
    with responder("good") as (target, node_id):
        report = _run(target)
    assert report.passed, report.to_json()
    assert report.node_id == node_id
    assert {check.clause for check in report.checks} == CHECKED
    assert [(c.clause, c.check) for c in report.checks] == list(WIRE_CHECKS)


#: Mutants whose fault shows in their own clause only.
_ONLY = {
    "replays-ok",
    "nodes-unsorted",
    "no-stream",
    "observed-moved",
    "clock-an-hour-behind",
    "answers-oversize",
    "answers-stale",
    "small-order-keys-ok",
    "long-heads-ok",
    "replay-by-bytes",
    "unknown-as-malformed",
    "malformed-ping-silent",
    "nodes-empty",
    "lax-find-node",
    "lax-find-value",
    "answers-responses",
    "stores-expired",
    "ttl-unbounded",
    "forbidden-ok",
    "seq-ignored",
    "answers-app-topic-0",
    "oversize-pong",
}


def test_one_mutant_per_clause_the_runner_claims() -> None:
    """The mutation set covers every clause a full wire run checks, and nothing else."""
    assert {clause for clause, _ in MUTANTS.values()} == CHECKED


@pytest.mark.integration
@pytest.mark.parametrize("mode", sorted(MUTANTS))
def test_broken_responder_fails_the_clause_it_breaks(responder: Starter, mode: str) -> None:
    """Mutation score: every deliberately broken responder fails the runner, on its clause
    (among them the three faults of a conformance review: replies over 1200 bytes instead
    of ERROR TOO_LARGE, NODE-1.4; non-canonical envelopes accepted, ENC-1.3/ENC-1.5;
    expired or beyond-TTL records stored, DHT-3.3/DHT-3.2)."""
    must_fail = MUTANTS[mode][0]
    with responder(mode) as (target, _):
        report = _run(target)
    assert not report.passed
    assert must_fail in report.failed_clauses, report.to_json()
    if mode in _ONLY:
        assert report.failed_clauses == [must_fail], report.to_json()
    failing = [check for check in report.checks if check.clause == must_fail and not check.passed]
    assert all(check.detail for check in failing)


@pytest.mark.integration
def test_reference_node_process_passes(reference_node: Starter) -> None:
    """`railgun-ref node` (the anyio UDP driver), started as its own process, conforms."""
    if importlib.util.find_spec("railgun_ref.drivers.node_main") is None:
        pytest.skip("railgun_ref.drivers.node_main (the `node` command) is not there yet")
    with reference_node() as (target, node_id):
        report = _run(target)
    assert report.passed, report.to_json()
    assert report.node_id == node_id


@pytest.mark.integration
def test_main_prints_json_and_a_table(
    responder: Starter, capsys: pytest.CaptureFixture[str]
) -> None:
    with responder("good") as (target, _):
        assert wire_runner.main(target, json_output=True, timeout=TIMEOUT) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed["passed"] is True and printed["target"] == target
        assert len(printed["checks"]) == CHECK_COUNT
        assert wire_runner.main(target, json_output=False, timeout=TIMEOUT) == 0
        table = capsys.readouterr().out
    assert "PASS" in table and "FAIL" not in table and "NODE-1.2" in table


@pytest.mark.parametrize(
    "target",
    [
        "udp://8.8.8.8:53",
        "udp://10.0.0.1:9000",
        "udp://[2001:db8::1]:9000",
        "udp://localhost:9000",
        "tcp://127.0.0.1:9000",
        "udp://127.0.0.1",
        "udp://127.0.0.1:0",
        "127.0.0.1:9000",
    ],
)
def test_refuses_targets_off_loopback(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(TargetError):
        parse_target(target)
    assert wire_runner.main(target, json_output=False) == 2
    assert "railgun-ref conformance run" in capsys.readouterr().err


def test_accepts_loopback_targets() -> None:
    assert parse_target("udp://127.0.0.1:9000") == ("127.0.0.1", 9000)
    assert parse_target("udp://127.1.2.3:1") == ("127.1.2.3", 1)
    assert parse_target("udp://[::1]:9000") == ("::1", 9000)


def test_report_without_checks_does_not_pass() -> None:
    report = Report(target="udp://127.0.0.1:1", node_id=None, timeout=1.0)
    assert not report.passed
    assert json.loads(report.to_json())["passed"] is False
