"""The bootstrap lab: tables from hand-made races, the rotation checks, and one live lab.

The tables are checked on races whose answers are known; the live test
starts the lab (five nodes, DNS, IPFS gateway, pproxy, SAM bridge on
127.0.0.1), blocks methods and checks who won and with which labels
(BOOT-4.5, BOOT-4.6). Nothing asserts on timings.
"""

import time

import pandas as pd
import pytest

from railgun_ref.bootstrap.race import (
    Attempt,
    Candidate,
    Failure,
    FetchCandidates,
    Method,
    RaceConfig,
    RaceFailed,
    RaceWon,
    StartAttempt,
)
from railgun_ref.lab.bootstrap import (
    METHOD_NODES,
    ROTATION_COLUMNS,
    TIMELINE_COLUMNS,
    BootstrapLab,
    RaceRun,
    Signers,
    _peak,
    _Recorder,
    _rows,
    in_flight_peaks,
    rotation_checks,
    timeline_chart,
    timeline_frame,
)

KEY = Signers.of(9).root_key.public_key


def _candidate(method: Method, address: str) -> Candidate:
    return Candidate(method=method, public_key=KEY, address=address)


def _won_race() -> RaceRun:
    """Cached peer times out, DNS is fetched, its candidate wins, a Tor attempt is cancelled."""
    recorder = _Recorder()
    recorder(StartAttempt(attempt_id=1, candidate=_candidate(Method.CACHED, "127.0.0.1:1")), 0.0)
    recorder(StartAttempt(attempt_id=2, candidate=_candidate(Method.TOR, "x.onion:1")), 0.5)
    recorder(FetchCandidates(method=Method.DNS_SRV), 2.0)
    recorder(StartAttempt(attempt_id=6, candidate=_candidate(Method.DNS_SRV, "127.0.0.1:2")), 2.1)
    failure = Attempt(
        method=Method.CACHED,
        address="127.0.0.1:1",
        failure=Failure.GENERIC_TIMEOUT,
        started=0.0,
        ended=1.5,
    )
    result = RaceWon(
        candidate=_candidate(Method.DNS_SRV, "127.0.0.1:2"), elapsed=2.2, failures=(failure,)
    )
    return RaceRun(title="r1", blocked=(), result=result, rows=tuple(_rows("r1", result, recorder)))


def test_rows_name_every_attempt_and_fetch_with_its_outcome() -> None:
    run = _won_race()
    frame = timeline_frame([run])
    assert tuple(frame.columns) == TIMELINE_COLUMNS
    outcomes = list(zip(frame["method"], frame["kind"], frame["outcome"], strict=True))
    assert outcomes == [
        ("cached", "attempt", "generic_timeout"),
        ("tor", "attempt", "cancelled"),
        ("dns_srv", "fetch", "fetched"),  # the fetch (keyed apart from attempt 6 = DNS_SRV)
        ("dns_srv", "attempt", "won"),
    ]
    assert frame.loc[frame["outcome"] == "cancelled", "end"].tolist() == [2.2]
    assert run.winner is Method.DNS_SRV
    assert run.labels() == {"cached": ["generic_timeout"]}


def test_a_failed_race_has_no_winner_and_every_label() -> None:
    failures = (
        Attempt(method=Method.IPFS, address="", failure=Failure.WRONG_CID, started=1.5, ended=1.6),
        Attempt(
            method=Method.DNS_SRV, address="", failure=Failure.DNS_SERVFAIL, started=2, ended=2
        ),
    )
    result = RaceFailed(elapsed=2.0, failures=failures)
    recorder = _Recorder()
    recorder(FetchCandidates(method=Method.IPFS), 1.5)
    run = RaceRun(
        title="r", blocked=(Method.IPFS,), result=result, rows=tuple(_rows("r", result, recorder))
    )
    assert run.winner is None
    assert run.labels() == {"dns_srv": ["dns_servfail"], "ipfs": ["wrong_cid"]}
    assert [r["outcome"] for r in run.rows] == ["wrong_cid", "dns_servfail"]


def test_peaks_count_overlapping_attempts_only() -> None:
    assert _peak([(0, 1), (1, 2), (2, 3)]) == 1  # back to back: never two at once
    assert _peak([(0, 3), (1, 2), (1.5, 4)]) == 3
    assert _peak([]) == 0
    peaks = in_flight_peaks(timeline_frame([_won_race()]))
    # cached 0-1.5 and tor 0.5-2.2 overlap; the DNS fetch and attempt overlap tor
    assert peaks.to_dict("records") == [{"race": "r1", "max_in_flight": 3, "max_per_method": 1}]


def test_timeline_chart_is_faceted_by_race_and_coloured_by_outcome() -> None:
    spec = timeline_chart(timeline_frame([_won_race()])).to_dict()
    assert spec["facet"]["row"]["field"] == "race"
    encoding = spec["spec"]["encoding"]
    assert encoding["color"]["field"] == "outcome"
    domain = encoding["color"]["scale"]["domain"]
    assert domain[:3] == ["won", "fetched", "cancelled"] and "generic_timeout" in domain
    assert encoding["y"]["sort"][0] == "cached"


def test_rotation_needs_both_root_keys_and_retires_the_old_manifest_key() -> None:
    checks, root2, document = rotation_checks(now=time.time())
    assert tuple(checks.columns) == ROTATION_COLUMNS
    assert checks["verdict"].tolist() == [
        "accepted",
        "refused: below_threshold",  # old key only: the new root role is not satisfied
        "refused: below_threshold",  # new key only: the old root role is not satisfied
        "accepted",
        "refused: mix_and_match",
        "refused: below_threshold",
    ]
    assert root2.version == 2 and root2.manifest_keys == (Signers.of(2).manifest_key.public_key,)
    assert len(document) > 0


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_live_lab_blocks_methods_one_by_one() -> None:
    """BOOT-4.2, BOOT-4.6: the highest-priority open method wins; blocked ones are labelled."""
    config = RaceConfig(attempt_timeout=0.6, proxy_attempt_timeout=0.8, fetch_timeout=1.0)
    with BootstrapLab.start(config=config) as lab:
        assert lab.race().winner is Method.CACHED
        winners = []
        for method in (Method.CACHED, Method.HARDCODED, Method.TOR, Method.I2P, Method.IPFS):
            lab.block(method)
            winners.append(lab.race().winner)
        assert winners == [Method.HARDCODED, Method.TOR, Method.I2P, Method.IPFS, Method.DNS_SRV]
        lab.block(Method.DNS_SRV)
        last = lab.race("all blocked")
        assert last.winner is None
        assert last.labels() == {
            "cached": ["generic_timeout"],
            "dns_srv": ["dns_servfail"],
            "hardcoded": ["generic_timeout"],
            "i2p": ["connection_refused"],
            "ipfs": ["wrong_cid"],
            "tor": ["generic_timeout"],
        }
        lab.unblock(Method.HARDCODED)  # blocks are lifted as easily
        assert lab.race().winner is Method.HARDCODED
        lab.block(Method.HARDCODED)
        _, root2, _ = rotation_checks(now=lab.now)
        lab.publish_ipfs(lab.ipfs_manifest(Signers.of(1), root_version=2), root=root2)
        assert lab.race().labels()["ipfs"] == ["manifest_rejected"]
        lab.publish_ipfs(lab.ipfs_manifest(Signers.of(2), root_version=2), root=root2)
        assert lab.race().winner is Method.IPFS
        frame = timeline_frame(lab.runs)
        assert isinstance(frame, pd.DataFrame) and len(frame["race"].unique()) == len(lab.runs)
        assert set(METHOD_NODES) == set(Method)
    assert not lab.running and "stopped" in repr(lab)


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_with_an_rtt_every_method_still_reaches_its_node() -> None:
    """BOOT-4.5: with a round trip added to every method (UDP send delays, held DNS answers,
    delaying proxies in front of the gateway and of the Tor and I2P streams' ends), each
    method alone still wins: the delayed paths lead where the undelayed ones did."""
    with BootstrapLab.start(rtt=0.15) as lab:
        winners = []
        for survivor in Method:
            lab.blocked = [method for method in Method if method is not survivor]
            winners.append(lab.race(survivor.name).winner)
    assert winners == list(Method)
