"""`railgun-ref demo`: the main job, run as a user runs it (HT-3.2, HT-3.3, HT-4.3).

`--quick` runs the complete takedown with four clients: the central process
is killed, the clients fail over to P2P and keep chatting, the process comes
back, they fail back, and the summary proves exactly-once delivery. The
report's JSON is checked against itself: the summary it states must follow
from the events it lists. `judge`, the exactly-once arithmetic, is checked
on hand-made deliveries. Nothing asserts on timings.
"""

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from railgun_ref.apps.demo import EXPECTED_LABELS, judge, path_name
from railgun_ref.cli import build_parser

EXACTLY_ONCE = re.compile(
    r"^exactly once: (\d+) sent x (\d+) other members(?: \+ (\d+) to the fresh client)? = "
    r"(\d+) expected, "
    r"(\d+) delivered, (\d+) duplicates, (\d+) still queued, (\d+) lost - (OK|FAILED)$",
    re.MULTILINE,
)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, dict[str, Any]]:
    """One `railgun-ref demo --quick` for the module: exit status, stdout, report."""
    workdir = tmp_path_factory.mktemp("demo")
    done = subprocess.run(
        [*(sys.executable, "-m", "railgun_ref.cli", "demo", "--quick"), "--report", "out"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=200,  # the fresh client adds a phase to the takedown
        check=False,
    )
    report_path = workdir / "out" / "events.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return done.returncode, done.stdout + done.stderr, report


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_quick_demo_survives_the_takedown_exactly_once(
    quick_run: tuple[int, str, dict[str, Any]],
) -> None:
    """HT-3.2, HT-3.3, HT-4.3: exit status 0, and the printed proof adds up."""
    code, output, _ = quick_run
    assert code == 0, output
    match = EXACTLY_ONCE.search(output)
    assert match is not None, output
    sent, others, late, expected, delivered, duplicates, queued, lost = (
        int(group or 0) for group in match.groups()[:8]
    )
    assert others == 3  # four clients
    assert sent > 0
    assert late > 0  # the fresh client that joined mid-outage got messages too
    assert expected == sent * others + late == delivered
    assert duplicates == 0 and queued == 0 and lost == 0
    assert match.group(9) == "OK"
    assert "takedown: OK" in output
    assert "fresh client c04 joined mid-outage: OK" in output
    assert "demo OK" in output


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_an_away_member_gets_what_a_departed_sender_stored(
    quick_run: tuple[int, str, dict[str, Any]],
) -> None:
    """SF-8.3, SF-8.4: during the takedown a member goes away, a sender writes and quits;
    the member comes back and picks every message up from holders, once each."""
    code, output, report = quick_run
    assert code == 0, output
    story = report["away_member"]
    assert story["stored"] and story["picked_up"], output
    assert story["sent_while_away"] == 2
    assert story["via_store"] == 2
    assert story["copies_at_away"] == [1, 1]
    assert "picked up from holders" in output


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_output_is_plain_lines_without_a_terminal(
    quick_run: tuple[int, str, dict[str, Any]],
) -> None:
    """Piped output (CI) carries no terminal control sequences and no live table."""
    _, output, _ = quick_run
    assert "\x1b[" not in output
    assert "┃" not in output
    assert re.search(r"^\[ *\d+\.\d s\] takedown: FAULT", output, re.MULTILINE), output


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_report_json_follows_from_its_events(quick_run: tuple[int, str, dict[str, Any]]) -> None:
    """The summary in events.json is what its own events imply; the scenario went through
    failover and failback, with messages delivered over both paths."""
    code, output, report = quick_run
    assert code == 0, output
    assert report["demo"]["peers"] == 4
    events = report["events"]

    sender = {e["message_id"]: e["client"] for e in events if e["kind"] == "accepted"}
    received = Counter((e["client"], e["message_id"]) for e in events if e["kind"] == "received")
    summary = report["summary"]
    assert summary["sent"] == len(sender) > 0
    assert summary["expected"] == len(sender) * 3 + summary["late"]
    pairs = {(c, m) for c, m in received if m in sender and sender[m] != c}
    assert len(pairs) == summary["delivered"] == summary["expected"]
    assert sum(received.values()) - len(received) == summary["duplicates"] == 0
    assert summary["lost"] == 0 and summary["queued"] == 0 and summary["exactly_once"] is True
    assert {e["path"] for e in events if e["kind"] == "received"} == {"central", "p2p", "store"}
    assert sum(summary["by_path"].values()) == summary["delivered"]

    (scenario,) = report["scenarios"]
    assert scenario["scenario"] == "takedown"
    assert scenario["failed_over"] is True and scenario["failed_back"] is True
    assert EXPECTED_LABELS["takedown"] in scenario["labels"]
    assert {row["client"] for row in scenario["per_client"]} == {0, 1, 2, 3}
    assert all(row["failover_s"] is not None for row in scenario["per_client"])
    actions = [e["action"] for e in events if e["kind"] == "central"]
    assert actions == ["started", "killed", "started"]
    for client in range(4):
        states = [e["new"] for e in events if e["kind"] == "state" and e["client"] == client]
        assert "connected-p2p" in states or "degraded" in states
        assert states[-1] == "connected-aws"
    assert all(c["outbox"] == 0 for c in report["clients"])


def test_judge_counts_duplicates_losses_and_strays() -> None:
    """The exactly-once arithmetic: each message once at every member but its sender."""
    a, b, c = b"a" * 16, b"b" * 16, b"c" * 16
    sender_of = {a: 0, b: 1}
    paths: list[dict[bytes, str]] = [{b: "p2p"}, {a: "central"}, {a: "p2p", b: "central"}]
    clean = judge(3, sender_of, [Counter({b: 1}), Counter({a: 1}), Counter({a: 1, b: 1})], paths)
    assert (clean.expected, clean.delivered, clean.duplicates, clean.lost) == (4, 4, 0, 0)
    assert clean.ok
    assert clean.by_path == {"p2p": 2, "central": 2}
    assert "4 expected, 4 delivered, 0 duplicates, 0 still queued, 0 lost - OK" in clean.line()

    twice = judge(3, sender_of, [Counter({b: 2}), Counter({a: 1}), Counter({a: 1, b: 1})], paths)
    assert twice.duplicates == 1 and not twice.ok

    missing = judge(3, sender_of, [Counter({b: 1}), Counter(), Counter({a: 1, b: 1})], paths)
    assert missing.lost == 1 and not missing.ok

    stray = judge(
        3, sender_of, [Counter({a: 1, b: 1}), Counter({a: 1, c: 1}), Counter({a: 1, b: 1})], paths
    )
    assert stray.unexpected == 2 and stray.lost == 0 and not stray.ok

    assert not judge(3, {}, [Counter(), Counter(), Counter()], paths).ok  # nothing sent


def test_path_names() -> None:
    assert path_name(central=True, p2p=False) == "central"
    assert path_name(central=False, p2p=True) == "p2p"
    assert path_name(central=True, p2p=True) == "both"
    assert path_name(central=False, p2p=False) == "none"


@pytest.mark.parametrize("bad", ["bogus", ",", "dns,partition"])
def test_demo_refuses_unknown_scenarios(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["demo", "--scenarios", bad])
    assert exit_info.value.code == 2
    assert "comma-separated list of dns, ip, takedown" in capsys.readouterr().err


def test_demo_arguments(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["demo", "--peers", "6", "--report", str(tmp_path), "--scenarios", "ip,dns", "--quick"]
    )
    assert (args.peers, args.report, args.scenarios, args.quick) == (
        6,
        str(tmp_path),
        ["ip", "dns"],
        True,
    )
    assert build_parser().parse_args(["demo", "--scenarios", "dns,"]).scenarios == ["dns"]
    defaults = build_parser().parse_args(["demo"])
    assert (defaults.peers, defaults.scenarios, defaults.quick) == (None, None, False)


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_a_fresh_client_joins_mid_outage_without_the_cache(
    quick_run: tuple[int, str, dict[str, Any]],
) -> None:
    """BOOT-4.1, BOOT-4.6 (issue 14): a client with an empty data directory starts while the central
    process is down, wins its bootstrap race through a method other than the (empty) cache,
    joins the room by invitation and gets every message sent to it exactly once."""
    code, output, report = quick_run
    assert code == 0, output
    fresh = report["fresh_client"]
    assert fresh["client"] == 4 and fresh["joined"] is True
    assert fresh["invitation"].startswith("railgun-invite:")
    race = fresh["bootstrap"]
    assert race["winner"] not in (None, "cached")
    outcomes = {e["method"]: e for e in race["methods"]}
    assert outcomes[race["winner"]]["outcome"] == "won"
    assert outcomes["cached"]["outcome"] == "failed"
    assert outcomes["cached"]["labels"] == ["no_candidates"]  # it never saw a peer
    assert "bootstrap race won by " + race["winner"] in output
    for method in ("cached", "hardcoded", "tor", "i2p", "ipfs", "dns_srv"):
        assert re.search(rf"^ +{method} +(won|failed|not reached|not set up)", output, re.M)

    events = report["events"]
    central = [(e["t"], e["action"]) for e in events if e["kind"] == "central"]
    killed = next(t for t, action in central if action == "killed")
    restarted = max(t for t, action in central if action == "started")
    assert killed < fresh["started_at"] < fresh["known_at"] < restarted  # while central was down
    mine = [e for e in events if e["kind"] == "received" and e["client"] == 4]
    assert any(e["path"] == "p2p" and e["t"] < restarted for e in mine)
    ids = Counter(e["message_id"] for e in mine)
    assert all(count == 1 for count in ids.values())  # exactly once
    sent = {e["message_id"] for e in events if e["kind"] == "accepted"}
    assert set(ids) <= sent
    assert fresh["delivered"] == fresh["expected"] == report["summary"]["late"] == len(ids) > 0
