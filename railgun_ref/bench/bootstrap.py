"""`railgun-ref bench bootstrap`: the staggered race (BOOT-4) vs the sequential priority order.

Every combination of one surviving method and five blocked ones (blocked by
*blackhole*: nothing ever answers; or by *refusal*: a reset after one RTT)
is run `runs` times with the race's defaults and with the sequential
baseline (one method after another, one attempt at a time, each method
given up only when all its candidates failed). Each method offers three
candidates; the survivor's first `dead_ahead` (default 1) are gone
(blackholed) and the next one answers, so the stagger within a source is
exercised too. With ``--dead-ahead 2`` both of a source's two slots (BOOT-4.3)
are held by dead peers until the attempt timeout (3 s), which the results show.

Time is virtual: the race core is played against `bootstrap.script`'s
scripted network, exactly as the anyio driver pumps it, with every answer
arriving one RTT (default 150 ms, with uniform jitter of +-20 %) after the
attempt started; fetches (DNS SRV, IPFS) cost one RTT and two RTTs. This
measures the schedule — when each method gets its chance — not socket
overheads (the driver's tests run the same race on real sockets).

Also reported: a client whose cache is 30 days old (9 of its 10 cached peers
gone, every other method blocked) and the manifest verification rate
(real CPU time, best of 5 batches).

``--driver localhost`` runs the real race driver (`drivers.bootstrap`) on
real sockets instead, against `lab.bootstrap.BootstrapLab`: five nodes, a DNS
server, an IPFS gateway, pproxy as Tor's SOCKS5 port and a SAM v3 bridge on
127.0.0.1, one candidate per method, each blocked as `lab.bootstrap.BLOCKS`
says (blackholes for the cache, the list and Tor; refusals for I2P, IPFS and
DNS), so each survivor is one combination (``blocked_by: "lab"``). The RTT is
added to every method (`BootstrapLab.start`): to UDP PINGs by the `NodeHost`
send delay at both ends, to each DNS answer by the DNS server, and to the
IPFS gateway and the Tor and I2P streams' far ends by delaying TCP proxies
(half an RTT each way); the SOCKS5 proxy and SAM bridge themselves are local,
as a Tor or I2P router on the client's machine would be.
The keys are the same; it needs the lab extra and pproxy.
"""

import json
import os
import platform
import random
import statistics
import time
from collections.abc import Iterator, Sequence
from typing import Any, Final

from railgun_ref.bootstrap import manifest as m
from railgun_ref.bootstrap.race import Candidate, Failure, Method, RaceConfig, RaceWon
from railgun_ref.bootstrap.script import Outcome, run_script
from railgun_ref.identity.keys import Identity

T0: Final = 1_700_000_000.0
CANDIDATES: Final = 3
#: The priority order (BOOT), one thing at a time (the baseline).
SEQUENTIAL: Final = RaceConfig(
    source_offsets=(1e9,) * len(Method), attempt_delay=1e9, per_source=1, max_in_flight=1
)
FETCHED: Final = {Method.IPFS: 2, Method.DNS_SRV: 1}  #: RTTs a fetch costs


def _key(n: int) -> bytes:
    return Identity.from_seed(n.to_bytes(32, "big")).public_key


def _candidates(method: Method) -> list[Candidate]:
    return [
        Candidate(method=method, public_key=_key(method * 10 + i), address=f"{method.name}-{i}")
        for i in range(CANDIDATES)
    ]


def _network(
    survivor: Method, block: str, rtt: float, rng: random.Random, dead_ahead: int
) -> tuple[dict[Method, list[Candidate] | None], dict[Method, Outcome], dict[str, Outcome]]:
    """One run's network: `survivor` works (after `dead_ahead` dead peers), the rest are blocked."""

    def delay(rtts: float = 1.0) -> float:
        return rtts * rtt * rng.uniform(0.8, 1.2)

    sources: dict[Method, list[Candidate] | None] = {}
    fetches: dict[Method, Outcome] = {}
    attempts: dict[str, Outcome] = {}
    for method in Method:
        candidates = _candidates(method)
        blocked = method is not survivor
        for i, candidate in enumerate(candidates):
            if not blocked and i == dead_ahead:
                attempts[candidate.address] = Outcome(delay=delay())
            elif blocked and block == "refused":
                attempts[candidate.address] = Outcome(
                    delay=delay(), failure=Failure.CONNECTION_REFUSED
                )
            else:
                attempts[candidate.address] = Outcome(delay=None)
        if method in FETCHED:
            sources[method] = None
            if blocked and block == "blackhole":
                fetches[method] = Outcome(delay=None)
            elif blocked:
                fetches[method] = Outcome(delay=delay(), failure=Failure.CONNECTION_REFUSED)
            else:
                fetches[method] = Outcome(delay=delay(FETCHED[method]), found=tuple(candidates))
        else:
            sources[method] = candidates
    return sources, fetches, attempts


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return {
        "p50": round(statistics.median(ordered), 3),
        "p95": round(p95, 3),
        "max": round(ordered[-1], 3),
    }


def _series(
    survivor: Method, block: str, config: RaceConfig, params: dict[str, Any]
) -> dict[str, Any]:
    runs, rtt, dead_ahead = params["runs"], params["rtt_s"], params["dead_ahead"]
    rng = random.Random(f"{params['seed']}/{survivor.name}/{block}")
    times: list[float] = []
    in_flight = 0
    for _ in range(runs):
        network = _network(survivor, block, rtt, rng, dead_ahead)
        result = run_script(*network, now=T0, config=config)
        in_flight = max(in_flight, result.max_in_flight)
        if isinstance(result.outcome, RaceWon):
            times.append(result.outcome.elapsed)
    return {
        "first_peer_s": _summary(times) if times else None,
        "joined": len(times),
        "runs": runs,
        "max_in_flight": in_flight,
    }


def _combinations() -> Iterator[tuple[Method, str]]:
    for block in ("blackhole", "refused"):
        for survivor in Method:
            yield survivor, block


def _stale_cache(rtt: float, seed: int, runs: int) -> dict[str, Any]:
    """30 days away: 9 of 10 cached peers gone, everything else blocked."""
    rng = random.Random(f"{seed}/stale")
    cached = [
        Candidate(
            method=Method.CACHED, public_key=_key(900 + i), address=f"old-{i}", last_good=i == 0
        )
        for i in range(10)
    ]
    times = []
    for _ in range(runs):
        attempts = {c.address: Outcome(delay=None) for c in cached}
        attempts[cached[rng.randrange(1, 10)].address] = Outcome(delay=rtt * rng.uniform(0.8, 1.2))
        result = run_script({Method.CACHED: cached}, {}, attempts, now=T0)
        if isinstance(result.outcome, RaceWon):
            times.append(result.outcome.elapsed)
    return {"first_peer_s": _summary(times), "joined": len(times), "runs": runs}


def _verification_rate() -> float:
    keys = [Identity.from_seed(bytes([i]) * 32) for i in range(1, 4)]
    root = m.Root(
        version=1,
        expires_ms=int((T0 + 86_400) * 1000),
        root_keys=(keys[0].public_key,),
        root_threshold=1,
        manifest_keys=(keys[1].public_key, keys[2].public_key),
        manifest_threshold=2,
    )
    nodes = tuple(
        m.BootstrapNode(public_key=_key(i), addresses=((m.AddressKind.UDP, f"192.0.2.{i}:7000"),))
        for i in range(1, 21)
    )
    manifest = m.Manifest(version=1, expires_ms=root.expires_ms, root_version=1, nodes=nodes)
    document = m.sign_document(manifest.body(), keys[1:])
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(200):
            m.verify_manifest(root, document, now=T0)
        best = max(best, 200 / (time.perf_counter() - start))
    return round(best, 1)


def run(*, runs: int = 30, rtt: float = 0.15, seed: int = 1, dead_ahead: int = 1) -> dict[str, Any]:
    if not 0 <= dead_ahead < CANDIDATES:
        raise ValueError(f"dead_ahead must be 0..{CANDIDATES - 1}")
    params: dict[str, Any] = {
        "runs": runs,
        "rtt_s": rtt,
        "seed": seed,
        "candidates_per_method": CANDIDATES,
        "dead_ahead": dead_ahead,
    }
    rows: list[dict[str, Any]] = []
    for survivor, block in _combinations():
        rows.append(
            {
                "survivor": survivor.name,
                "blocked_by": block,
                "race": _series(survivor, block, RaceConfig(), params),
                "sequential": _series(survivor, block, SEQUENTIAL, params),
            }
        )
    race_p95 = max(r["race"]["first_peer_s"]["p95"] for r in rows)
    sequential_p95 = max(r["sequential"]["first_peer_s"]["p95"] for r in rows)
    max_in_flight = max(r["race"]["max_in_flight"] for r in rows)
    stale = _stale_cache(rtt, seed, runs)
    return {
        "benchmark": "bootstrap",
        "network": "scripted, virtual time (bootstrap.script)",
        "params": params,
        "environment": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "first_peer_s": {"p95": race_p95},
        "max_in_flight": max_in_flight,
        "sequential": {"first_peer_s": {"p95": sequential_p95}},
        "stale_cache_30d": stale,
        "manifest_verifications_per_s": _verification_rate(),
        "goals": {
            "p95 <= 3 s with any single survivor": race_p95 <= 3.0,
            "never more than 10 attempts in flight": max_in_flight <= 10,
            "a 30-day-old cache still joins": stale["joined"] == runs,
        },
        "combinations": rows,
    }


def _live_series(lab: Any, runs: int, config: RaceConfig) -> dict[str, Any]:
    from railgun_ref.lab.bootstrap import in_flight_peaks, timeline_frame  # noqa: PLC0415

    lab.config = config
    times: list[float] = []
    in_flight = 0
    for _ in range(runs):
        race = lab.race()
        peaks = in_flight_peaks(timeline_frame([race]))
        in_flight = max(in_flight, int(peaks["max_in_flight"].max()))
        if isinstance(race.result, RaceWon):
            times.append(race.result.elapsed)
    return {
        "first_peer_s": _summary(times) if times else None,
        "joined": len(times),
        "runs": runs,
        "max_in_flight": in_flight,
    }


def run_localhost(
    *, runs: int = 5, rtt: float = 0.15, survivors: Sequence[Method] = tuple(Method)
) -> dict[str, Any]:
    """The race and the sequential baseline on real sockets, one survivor at a time."""
    from railgun_ref.lab.bootstrap import BLOCKS, BootstrapLab  # noqa: PLC0415

    rows: list[dict[str, Any]] = []
    with BootstrapLab.start(rtt=rtt) as lab:
        for survivor in survivors:
            lab.blocked = [method for method in Method if method is not survivor]
            rows.append(
                {
                    "survivor": survivor.name,
                    "blocked_by": "lab",
                    "race": _live_series(lab, runs, RaceConfig()),
                    "sequential": _live_series(lab, runs, SEQUENTIAL),
                }
            )
    joined = [r for r in rows if r["race"]["first_peer_s"] is not None]
    race_p95 = max(r["race"]["first_peer_s"]["p95"] for r in joined) if joined else None
    sequential_p95 = max(
        (r["sequential"]["first_peer_s"]["p95"] for r in rows if r["sequential"]["joined"]),
        default=None,
    )
    max_in_flight = max(r["race"]["max_in_flight"] for r in rows)
    # survivor CACHED: the cache's only peer worked 30 days ago, everything else is blocked
    stale = (
        next(r["race"] for r in rows if r["survivor"] == Method.CACHED.name)
        if (Method.CACHED in survivors)
        else {"first_peer_s": None, "joined": 0}
    )
    return {
        "benchmark": "bootstrap",
        "network": "localhost: real sockets, the race driver and lab.bootstrap's services",
        "params": {
            "runs": runs,
            "rtt_s": rtt,
            "rtt_added_to": (
                "every method: UDP PINGs (send delay at both ends), each DNS answer, the IPFS"
                " gateway, and the Tor and I2P streams' far ends (delaying TCP proxies)"
            ),
            "candidates_per_method": 1,
            "blocks": {method.name: text for method, text in BLOCKS.items()},
        },
        "environment": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "first_peer_s": {"p95": race_p95},
        "max_in_flight": max_in_flight,
        "sequential": {"first_peer_s": {"p95": sequential_p95}},
        "stale_cache_30d": {
            "first_peer_s": stale["first_peer_s"],
            "joined": stale["joined"],
            "runs": runs,
        },
        "manifest_verifications_per_s": _verification_rate(),
        "goals": {
            "p95 <= 3 s with any single survivor": race_p95 is not None and race_p95 <= 3.0,
            "never more than 10 attempts in flight": max_in_flight <= 10,
            "a 30-day-old cache still joins": stale["joined"] == runs,
        },
        "combinations": rows,
    }


def main(
    *,
    json_output: bool,
    runs: int | None,
    rtt: float,
    seed: int,
    dead_ahead: int,
    driver: str = "sim",
) -> int:
    if driver == "localhost":
        result = run_localhost(runs=runs or 5, rtt=rtt)
    else:
        result = run(runs=runs or 30, rtt=rtt, seed=seed, dead_ahead=dead_ahead)
    print(json.dumps(result, indent=2) if json_output else result)
    return 0
