"""The race-schedule part of bootstrap.json (BOOT-4): scripted networks and the timeline they give.

A scenario says, per method, the candidates it offers (or that it must be
fetched, and what the fetch returns) and, per address, what the network does
with an attempt: a PONG after some seconds (from the right key or a wrong
one), a failure label, or nothing at all. The race is played against it in
virtual time (`railgun_ref.bootstrap.script`), and the vector records every
action the race emits, when, and how it ends. Another implementation plays
the same script and must emit the same timeline.
"""

from typing import Any, Final, NamedTuple

from railgun_ref.bootstrap.race import Candidate, Failure, Method, RaceConfig, RaceFailed, RaceWon
from railgun_ref.bootstrap.script import Outcome, ScriptResult, run_script
from railgun_ref.conformance.builders.base import T0, Vectors, seed_for
from railgun_ref.conformance.common import JsonObject
from railgun_ref.identity.keys import Identity

NOTES: Final = {
    "Race": "A race schedule: the actions the race emits against a scripted network.",
    "HeadStart": "The last peer that worked starts alone for head_start seconds.",
    "Blackhole": "Attempts or fetches that never answer (they time out).",
    "Refused": "Attempts or fetches that fail fast with a label.",
    "WrongKey": "A peer answering with a PONG signed by another key.",
    "InFlightCap": "More candidates than max_in_flight: the cap holds.",
    "AllFail": "No method works: the race fails with every reason.",
}

#: A scenario, as JSON: {"sources": {METHOD: [address...] | "fetch"},
#: "fetches": {METHOD: outcome}, "attempts": {address: outcome}, "lastGood": address}
#: with outcome {"after": s} (success), {"after": s, "failure": label},
#: {"after": s, "wrongKey": true} or {} (never answers).


def key_of(address: str) -> bytes:
    """The public key a scenario's candidate at `address` holds."""
    return Identity.from_seed(seed_for(f"bootstrap/race/{address}")).public_key


WRONG_KEY: Final = key_of("someone-else")


def _candidate(method: Method, address: str, last_good: str | None) -> Candidate:
    return Candidate(
        method=method, public_key=key_of(address), address=address, last_good=address == last_good
    )


def _outcome(value: JsonObject, method: Method | None = None) -> Outcome:
    if "after" not in value:
        return Outcome(delay=None)
    failure = Failure(value["failure"]) if "failure" in value else None
    found: tuple[Candidate, ...] = ()
    if method is not None and failure is None:
        found = tuple(_candidate(method, a, None) for a in value.get("found", ()))
    signer = WRONG_KEY if value.get("wrongKey") else None
    return Outcome(delay=float(value["after"]), failure=failure, signer=signer, found=found)


def play(scenario: JsonObject, config: RaceConfig) -> ScriptResult:
    """Run `scenario` (JSON, as in the vectors) against the reference race."""
    last_good = scenario.get("lastGood")
    sources: dict[Method, list[Candidate] | None] = {}
    for name, offered in scenario["sources"].items():
        method = Method[name]
        sources[method] = (
            None if offered == "fetch" else [_candidate(method, a, last_good) for a in offered]
        )
    fetches = {Method[n]: _outcome(v, Method[n]) for n, v in scenario.get("fetches", {}).items()}
    attempts = {a: _outcome(v) for a, v in scenario.get("attempts", {}).items()}
    return run_script(sources, fetches, attempts, now=T0, config=config)


def result_json(result: ScriptResult) -> JsonObject:
    """The observable end of a race: who won (or that it failed), when, and every failure."""
    outcome = result.outcome
    assert outcome is not None
    failures = [
        {"method": f.method.name, "address": f.address, "failure": str(f.failure)}
        for f in outcome.failures
    ]
    fields: JsonObject = {"elapsed": round(outcome.elapsed, 6), "failures": failures}
    if isinstance(outcome, RaceWon):
        fields |= {"won": outcome.candidate.method.name, "address": outcome.candidate.address}
    else:
        assert isinstance(outcome, RaceFailed)
        fields |= {"won": None}
    return fields | {"maxInFlight": result.max_in_flight}


def config_json(config: RaceConfig) -> JsonObject:
    return {
        "sourceOffsets": list(config.source_offsets),
        "attemptDelay": config.attempt_delay,
        "perSource": config.per_source,
        "maxInFlight": config.max_in_flight,
        "headStart": config.head_start,
        "attemptTimeout": config.attempt_timeout,
        "proxyAttemptTimeout": config.proxy_attempt_timeout,
        "fetchTimeout": config.fetch_timeout,
    }


def config_from_json(value: JsonObject) -> RaceConfig:
    return RaceConfig(
        source_offsets=tuple(float(x) for x in value["sourceOffsets"]),
        attempt_delay=float(value["attemptDelay"]),
        per_source=int(value["perSource"]),
        max_in_flight=int(value["maxInFlight"]),
        head_start=float(value["headStart"]),
        attempt_timeout=float(value["attemptTimeout"]),
        proxy_attempt_timeout=float(value["proxyAttemptTimeout"]),
        fetch_timeout=float(value["fetchTimeout"]),
    )


class _RaceCase(NamedTuple):
    comment: str
    flags: tuple[str, ...]
    clause: str
    scenario: JsonObject


_OK: Final = {"after": 0.05}
_REFUSED: Final = {"after": 0.01, "failure": "connection_refused"}
_ALL_SIX: Final = {
    "CACHED": ["127.0.0.1:7001", "127.0.0.1:7002"],
    "HARDCODED": ["127.0.0.2:7000", "127.0.0.3:7000", "127.0.0.4:7000"],
    "TOR": ["aaaa.onion:7000"],
    "I2P": ["bbbb.b32.i2p:7000"],
    "IPFS": "fetch",
    "DNS_SRV": "fetch",
}
_FETCHED: Final = {
    "IPFS": {"after": 0.1, "found": ["127.0.0.5:7000"]},
    "DNS_SRV": {"after": 0.1, "found": ["127.0.0.6:7000"]},
}


def _only(survivor: str, how: JsonObject) -> JsonObject:
    """All six methods; every address refuses except `survivor`'s."""
    attempts = {a: dict(how) for m, v in _ALL_SIX.items() if v != "fetch" for a in v}
    attempts |= {"127.0.0.5:7000": dict(how), "127.0.0.6:7000": dict(how)}
    attempts[survivor] = dict(_OK)
    return {"sources": _ALL_SIX, "fetches": _FETCHED, "attempts": attempts}


RACE_CASES: Final = (
    _RaceCase(
        "the last-good cached peer answers within its head start",
        ("Race", "HeadStart"),
        "BOOT-4.4",
        {"sources": _ALL_SIX, "fetches": _FETCHED, "attempts": {"127.0.0.1:7002": _OK}}
        | {"lastGood": "127.0.0.1:7002"},
    ),
    _RaceCase(
        "the last-good peer is blackholed: the others start when its head start ends",
        ("Race", "HeadStart", "Blackhole"),
        "BOOT-4.4",
        {"sources": _ALL_SIX, "fetches": _FETCHED, "attempts": {"127.0.0.3:7000": _OK}}
        | {"lastGood": "127.0.0.1:7001"},
    ),
    _RaceCase(
        "five methods refuse: DNS SRV opens as soon as every earlier source failed",
        ("Race", "Refused"),
        "BOOT-4.2",
        _only("127.0.0.6:7000", _REFUSED),
    ),
    _RaceCase(
        "five methods blackholed: DNS SRV opens at its offset and wins",
        ("Race", "Blackhole"),
        "BOOT-4.2",
        _only("127.0.0.6:7000", {}),
    ),
    _RaceCase(
        "five methods blackholed: I2P wins",
        ("Race", "Blackhole"),
        "BOOT-4.2",
        _only("bbbb.b32.i2p:7000", {}),
    ),
    _RaceCase(
        "a hard-coded node answers with the wrong key; the race goes on",
        ("Race", "WrongKey"),
        "BOOT-4.5",
        {
            "sources": _ALL_SIX,
            "fetches": _FETCHED,
            "attempts": {
                "127.0.0.2:7000": {"after": 0.01, "wrongKey": True},
                "127.0.0.5:7000": _OK,
            },
        },
    ),
    _RaceCase(
        "wrong CID, garbage SRV, a lying proxy: the hard-coded list still wins",
        ("Race", "Refused"),
        "BOOT-4.6",
        {
            "sources": _ALL_SIX,
            "fetches": {
                "IPFS": {"after": 0.05, "failure": "wrong_cid"},
                "DNS_SRV": {"after": 0.05, "failure": "dns_bogus_answer"},
            },
            "attempts": {
                "aaaa.onion:7000": {"after": 0.01, "failure": "proxy_error"},
                "127.0.0.4:7000": {"after": 1.5},
            },
        },
    ),
    _RaceCase(
        "30 blackholed cached peers cannot hold more than two slots",
        ("Race", "Blackhole", "InFlightCap"),
        "BOOT-4.3",
        {
            "sources": {
                "CACHED": [f"127.0.1.{i}:7000" for i in range(1, 31)],
                "HARDCODED": ["127.0.0.2:7000"],
            },
            "attempts": {"127.0.0.2:7000": {"after": 0.2}},
        },
    ),
    _RaceCase(
        "every source has many blackholed peers: at most 10 in flight, then failure",
        ("Race", "Blackhole", "InFlightCap", "AllFail"),
        "BOOT-4.3",
        {
            "sources": {
                m.name: [f"127.0.{m.value}.{i}:7000" for i in range(1, 4)]
                for m in (Method.CACHED, Method.HARDCODED, Method.TOR, Method.I2P)
            }
            | {"IPFS": "fetch", "DNS_SRV": "fetch"},
            "fetches": {
                "IPFS": {"after": 0.1, "found": ["127.0.5.1:7000", "127.0.5.2:7000"]},
                "DNS_SRV": {"after": 0.1, "found": ["127.0.6.1:7000", "127.0.6.2:7000"]},
            },
        },
    ),
    _RaceCase(
        "no method works: every reason is reported",
        ("Race", "Refused", "AllFail"),
        "BOOT-4.6",
        {
            "sources": {"CACHED": [], "HARDCODED": ["127.0.0.2:7000"], "DNS_SRV": "fetch"},
            "fetches": {"DNS_SRV": {"after": 0.02, "failure": "dns_nxdomain"}},
            "attempts": {"127.0.0.2:7000": _REFUSED},
        },
    ),
)


def add_cases(v: Vectors) -> None:
    config = RaceConfig()
    tests = v.group("BootstrapRaceTest", config=config_json(config))
    for case in RACE_CASES:
        result = play(case.scenario, config)
        assert result.max_in_flight <= config.max_in_flight, case.comment
        v.test(
            tests,
            comment=case.comment,
            result="valid",
            clause=case.clause,
            flags=case.flags,
            scenario=_json_copy(case.scenario),
            steps=result.timeline,
            outcome=result_json(result),
        )


def _json_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_copy(v) for v in value]
    return value
