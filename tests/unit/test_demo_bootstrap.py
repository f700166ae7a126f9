"""The demo's fresh client (apps/demo_bootstrap.py): the race reported, its deliveries judged.

A race outcome becomes, per method, ``won``, ``failed`` with its labels, ``not
reached`` (set up, but the race was won first) or ``not set up``. The fresh
client's deliveries fold into the demo's exactly-once summary: a message is
due to it if its sender encrypted it for it, or accepted it after every
member knew it; one due and missing is still queued if an outbox or the
central mailbox holds it for it, else lost. The deployment's documents verify
under its own root. The end-to-end run is tests/integration/test_demo.py.
"""

import random
import time
from collections import Counter
from pathlib import Path

import anyio

from railgun_ref.apps.demo import judge
from railgun_ref.apps.demo_bootstrap import (
    SRV_NAME,
    BootstrapDeployment,
    LateJoiner,
    on_accepted,
    race_lines,
    race_record,
)
from railgun_ref.apps.demo_clients import ClientProcess
from railgun_ref.bootstrap import manifest as m
from railgun_ref.bootstrap.race import Attempt, Candidate, Failure, Method, RaceFailed, RaceWon
from railgun_ref.drivers.bootstrap_sources import fetch_dns_srv, fetch_ipfs_manifest
from railgun_ref.drivers.dns_server import DnsServer
from railgun_ref.drivers.ipfs_gateway import IpfsGateway

KEY = bytes(range(32))
A, B, C, D = (bytes([n]) * 16 for n in b"abcd")


def _attempt(method: Method, failure: Failure) -> Attempt:
    return Attempt(method=method, address="", failure=failure, started=0.0, ended=0.0)


def test_race_record_names_the_winner_and_why_each_other_method_did_not_win() -> None:
    winner = Candidate(method=Method.IPFS, public_key=KEY, address="127.0.0.1:9000")
    failures = (
        _attempt(Method.CACHED, Failure.NO_CANDIDATES),
        _attempt(Method.HARDCODED, Failure.NO_CANDIDATES),
    )
    configured = {Method.CACHED, Method.HARDCODED, Method.IPFS, Method.DNS_SRV}
    record = race_record(RaceWon(candidate=winner, elapsed=0.1234, failures=failures), configured)
    assert record["winner"] == "ipfs" and record["elapsed_s"] == 0.123
    outcomes = {e["method"]: (e["outcome"], e["labels"]) for e in record["methods"]}
    assert outcomes == {
        "cached": ("failed", ["no_candidates"]),
        "hardcoded": ("failed", ["no_candidates"]),
        "tor": ("not set up", []),
        "i2p": ("not set up", []),
        "ipfs": ("won", []),
        "dns_srv": ("not reached", []),
    }
    lines = race_lines(record)
    assert lines[0] == "bootstrap race won by ipfs in 0.12 s"
    assert any("ipfs" in line and "127.0.0.1:9000" in line for line in lines)
    assert any(line.split()[:2] == ["dns_srv", "not"] for line in lines)


def test_a_lost_race_says_every_method_failed() -> None:
    failures = (_attempt(Method.DNS_SRV, Failure.DNS_SERVFAIL),)
    record = race_record(RaceFailed(elapsed=2.0, failures=failures), {Method.DNS_SRV})
    assert record["winner"] is None
    assert race_lines(record)[0].startswith("bootstrap race FAILED")
    assert any("failed: dns_servfail" in line for line in race_lines(record))


def _late(tmp_path: Path) -> LateJoiner:
    process = ClientProcess(index=3, log_path=tmp_path / "log")
    process.node_id = "ff" * 32
    return LateJoiner(process=process, started_at=10.0)


def test_the_fresh_client_is_due_what_names_it_or_came_after_everyone_knew_it(
    tmp_path: Path,
) -> None:
    """A: before it joined (not due). B: encrypted for it. C, D: accepted after every member
    knew it -- C was delivered, D was not and is named nowhere, so it is lost."""
    late = _late(tmp_path)
    for mid, t, to in (
        (A, 11.0, []),
        (B, 12.0, [late.process.node_id]),
        (C, 20.0, []),
        (D, 21.0, []),
    ):
        record = {"message_id": mid.hex(), "to": to}
        on_accepted(late, record, t)
        assert "to" not in record  # events.json keeps the count only
    late.known_at = 15.0
    sender_of = {A: 0, B: 1, C: 2, D: 0}
    assert late.expected(sender_of) == {B, C, D}
    late.received.update({B: 1, C: 2})
    late.paths.update({B: "p2p", C: "central"})
    assert not late.all_delivered(sender_of)

    members = [Counter({B: 1, C: 1}), Counter({A: 1, C: 1, D: 1}), Counter({A: 1, B: 1, D: 1})]
    base = judge(3, sender_of, members, [{}, {}, {}])
    assert base.ok
    folded = late.fold(base, sender_of, queued=set())
    assert folded.late == 3
    assert folded.expected == base.expected + 3
    assert folded.delivered == base.delivered + 2
    assert (folded.duplicates, folded.lost, folded.queued) == (1, 1, 0)
    assert not folded.ok
    assert " + 3 to the fresh client = " in folded.line()
    assert folded.by_path["p2p"] == base.by_path.get("p2p", 0) + 1

    held = late.fold(base, sender_of, queued={(3, D), (1, D)})  # D waits for it somewhere
    assert (held.queued, held.lost) == (1, 0)


def test_the_fresh_client_handed_what_nobody_sent_it_is_unexpected(tmp_path: Path) -> None:
    late = _late(tmp_path)
    late.received.update({A: 1})  # sent before it joined: not encrypted for it
    base = judge(2, {A: 0}, [Counter(), Counter({A: 1})], [{}, {}])
    folded = late.fold(base, {A: 0}, queued=set())
    assert (folded.late, folded.unexpected) == (0, 1) and not folded.ok


def test_the_deployment_publishes_a_manifest_and_srv_records_a_client_accepts(
    tmp_path: Path,
) -> None:
    """What the fresh client fetches verifies under the root it ships with (BOOT-3), and the
    SRV records name the same nodes, for a client that trusts their keys (BOOT-3.6)."""
    deployment = BootstrapDeployment(tmp_path)
    root = m.root_from_document(deployment.root_path.read_bytes())
    keys = [bytes([n]) * 32 for n in (7, 8)]

    async def main() -> tuple[list[Candidate], list[Candidate]]:
        async with anyio.create_task_group() as tg:
            gateway = await tg.start(IpfsGateway().run)
            dns = await tg.start(DnsServer().run)
            nodes = [(keys[0], "127.0.0.1:7001"), (keys[1], "127.0.0.1:7002")]
            cid = deployment.publish(gateway, dns, nodes)
            assert deployment.worker_args(gateway)[3] == cid
            _, from_ipfs = await fetch_ipfs_manifest(
                cid, gateway=gateway.address, root=root, last_version=0, now=time.time()
            )
            from_dns = await fetch_dns_srv(
                SRV_NAME,
                nameserver=dns.address,
                trusted_keys=keys,
                rng=random.Random(1),
            )
            tg.cancel_scope.cancel()
        return from_ipfs, from_dns

    from_ipfs, from_dns = anyio.run(main)
    expected = {(keys[0], "127.0.0.1:7001"), (keys[1], "127.0.0.1:7002")}
    assert {(c.public_key, c.address) for c in from_ipfs} == expected
    assert {(c.public_key, c.address) for c in from_dns} == expected
