"""Run the bootstrap race (BOOT-4) on anyio: real PINGs, DNS SRV, an IPFS gateway, the peer cache.

`run_bootstrap` builds the race's sources from a `BootstrapSetup`, pumps the
`Race` core with `CoreLoop`, and carries out its actions:

* `StartAttempt` -> a PING from the client's `NodeHost` to the candidate's
  UDP address; the PONG's signer (its node id) goes back to the race, which
  compares it with the candidate's key (BOOT-4.5);
* `FetchCandidates` -> `bootstrap_sources.fetch_dns_srv` or
  `fetch_ipfs_manifest`, whose `SourceError` label becomes the source's failure;
* `CancelAttempt` / `CancelFetch` -> the task's cancel scope;
* `RaceWon` / `RaceFailed` -> the result.

Every task runs in its own cancel scope created at dispatch time, so a
cancellation that arrives before the task starts still holds. After the
race, the winner is recorded as a success in the peer cache and every
failed cached peer as a failure (BOOT-4.4, `drivers.peer_cache`), each with
the kind of its address (BOOT-4.8). Onion addresses are PINGed through a
SOCKS5 proxy and I2P destinations through a SAM v3 bridge
(`drivers.bootstrap_proxies`), whichever method offered them; without that
proxy or bridge set up such an attempt fails with ``unreachable``.
A method the setup does not enable is not raced (BOOT-4.1).
"""

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import assert_never

import anyio
import anyio.abc

from railgun_ref.bootstrap import manifest as m
from railgun_ref.bootstrap.race import (
    CancelAttempt,
    CancelFetch,
    Candidate,
    Failure,
    FetchCandidates,
    Method,
    Race,
    RaceAction,
    RaceConfig,
    RaceFailed,
    RaceWon,
    StartAttempt,
)
from railgun_ref.core.contract import ProtocolCore
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.drivers.bootstrap_proxies import (
    AttemptError,
    SamBridge,
    TorProxy,
    i2p_ping,
    tor_ping,
)
from railgun_ref.drivers.bootstrap_sources import (
    SourceError,
    fetch_dns_srv,
    fetch_ipfs_manifest,
    manifest_candidates,
)
from railgun_ref.drivers.loop import CoreLoop
from railgun_ref.drivers.peer_cache import PeerCache
from railgun_ref.drivers.udp import NodeHost
from railgun_ref.events import ErrorReceived, PongReceived

__all__ = ["BootstrapSetup", "DnsSrvSource", "IpfsSource", "run_bootstrap", "udp_address"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsSrvSource:
    """Where to resolve the SRV owner `name`: a name server over UDP, or a DoH URL (RFC 8484)."""

    name: str  #: e.g. "_railgun._udp.example.org."
    nameserver: Address | None = None
    doh_url: str | None = None  #: e.g. "https://dns.example/dns-query"; wins over `nameserver`


@dataclass(frozen=True, slots=True, kw_only=True)
class IpfsSource:
    cid: str
    gateway: Address
    root: m.Root  #: the trusted root the fetched manifest must verify under
    last_version: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class BootstrapSetup:
    """Which methods this client can use (a method left as None is not raced, BOOT-4.1)."""

    cache: PeerCache | None = None
    #: The shipped list, already verified (BOOT-3), or why it was refused (BOOT-1.6:
    #: the method then fails with ``manifest_rejected``); `drivers.hardcoded` loads it.
    hardcoded: m.Manifest | m.ManifestError | None = None
    dns_srv: DnsSrvSource | None = None
    ipfs: IpfsSource | None = None
    tor: TorProxy | None = None  #: races the manifest's onion addresses through this proxy
    i2p: SamBridge | None = None  #: races the manifest's I2P addresses through this bridge
    config: RaceConfig = field(default_factory=RaceConfig)


def _shipped(setup: BootstrapSetup) -> m.Manifest | None:
    return setup.hardcoded if isinstance(setup.hardcoded, m.Manifest) else None


def _sources(setup: BootstrapSetup) -> dict[Method, list[Candidate] | Failure | None]:
    sources: dict[Method, list[Candidate] | Failure | None] = {}
    if setup.cache is not None:
        sources[Method.CACHED] = setup.cache.candidates()
    shipped = _shipped(setup)
    if isinstance(setup.hardcoded, m.ManifestError):
        sources[Method.HARDCODED] = Failure.MANIFEST_REJECTED  # BOOT-1.6
    elif shipped is not None:
        sources[Method.HARDCODED] = manifest_candidates(shipped, Method.HARDCODED)
    if setup.tor is not None and shipped is not None:
        sources[Method.TOR] = _addresses(shipped, m.AddressKind.ONION, Method.TOR)
    if setup.i2p is not None and shipped is not None:
        sources[Method.I2P] = _addresses(shipped, m.AddressKind.I2P, Method.I2P)
    if setup.ipfs is not None:
        sources[Method.IPFS] = None
    if setup.dns_srv is not None:
        sources[Method.DNS_SRV] = None
    return sources


def _addresses(manifest: m.Manifest, kind: m.AddressKind, method: Method) -> list[Candidate]:
    return [
        Candidate(method=method, public_key=node.public_key, address=address, kind=kind)
        for node in manifest.nodes
        for listed, address in node.addresses
        if listed is kind
    ]


def _trusted_keys(setup: BootstrapSetup) -> set[bytes]:
    """BOOT-3.6: the keys a DNS SRV target may name (manifest nodes and cached peers)."""
    shipped = _shipped(setup)
    keys = {n.public_key for n in shipped.nodes} if shipped is not None else set()
    if setup.cache is not None:
        keys |= {p.public_key for p in setup.cache.peers()}
    return keys


def udp_address(text: str) -> Address:
    """``host:port`` (IPv6 hosts in brackets) as an address."""
    host, _, port = text.rpartition(":")
    return (host.strip("[]"), int(port))


@dataclass(slots=True)
class _Run:
    host: NodeHost
    setup: BootstrapSetup
    race: Race
    loop: CoreLoop
    tg: anyio.abc.TaskGroup
    rng: random.Random
    clock: Callable[[], float]
    scopes: dict[int | Method, anyio.CancelScope] = field(default_factory=dict)
    observe: Callable[[RaceAction, float], None] | None = None
    result: RaceWon | RaceFailed | None = None
    done: anyio.Event = field(default_factory=anyio.Event)

    def dispatch(self, action: RaceAction) -> None:
        if self.observe is not None:
            self.observe(action, self.clock() - self.race.started_at)
        match action:
            case FetchCandidates(method=method):
                self.tg.start_soon(self._fetch, method, self._scope(method))
            case StartAttempt(attempt_id=attempt_id, candidate=candidate):
                self.tg.start_soon(self._attempt, attempt_id, candidate, self._scope(attempt_id))
            case CancelAttempt(attempt_id=attempt_id):
                self._cancel(attempt_id)
            case CancelFetch(method=method):
                self._cancel(method)
            case RaceWon() | RaceFailed():
                self.result = action
                self.done.set()
            case _:
                assert_never(action)

    def _scope(self, key: int | Method) -> anyio.CancelScope:
        scope = self.scopes[key] = anyio.CancelScope()
        return scope

    def _cancel(self, key: int | Method) -> None:
        scope = self.scopes.pop(key, None)
        if scope is not None:
            scope.cancel()

    async def _attempt(
        self, attempt_id: int, candidate: Candidate, scope: anyio.CancelScope
    ) -> None:
        with scope:
            try:
                peer_id = await self._ping(candidate)
            except AttemptError as exc:
                self.race.attempt_failed(attempt_id, exc.failure, now=self.clock())
            else:
                self.race.attempt_verified(attempt_id, peer_id, now=self.clock())
            self.loop.poke()

    async def _ping(self, candidate: Candidate) -> NodeId:
        """BOOT-4.5: PING `candidate` the way its address is reached (BOOT-4.8: a cached
        onion or I2P peer too); the id of the node that answered."""
        kind = candidate.reached_by
        if kind is not m.AddressKind.UDP and (
            (self.setup.tor if kind is m.AddressKind.ONION else self.setup.i2p) is None
        ):
            raise AttemptError(Failure.UNREACHABLE, f"no {kind.name} path set up here")
        if kind is m.AddressKind.ONION and self.setup.tor is not None:
            return await tor_ping(
                self.setup.tor,
                candidate.address,
                self.host.node.identity,
                rng=self.rng,
                now=self.clock(),
                timeout=self.setup.config.proxy_attempt_timeout,
            )
        if kind is m.AddressKind.I2P and self.setup.i2p is not None:
            return await i2p_ping(
                self.setup.i2p,
                candidate.address,
                self.host.node.identity,
                rng=self.rng,
                now=self.clock(),
            )
        try:
            outcome = await self.host.ping(udp_address(candidate.address))
        except ValueError:  # not an address this host may send to
            raise AttemptError(Failure.UNREACHABLE, candidate.address) from None
        if isinstance(outcome, PongReceived):
            return outcome.peer_id
        if isinstance(outcome, ErrorReceived):
            raise AttemptError(Failure.INVALID_RESPONSE, "an ERROR, not a PONG")
        raise AttemptError(Failure.GENERIC_TIMEOUT, "no PONG")

    async def _fetch(self, method: Method, scope: anyio.CancelScope) -> None:
        with scope:
            try:
                found = await self._candidates(method)
            except SourceError as exc:
                self.race.source_failed(method, exc.failure, now=self.clock())
            else:
                self.race.candidates_found(method, found, now=self.clock())
            self.loop.poke()

    async def _candidates(self, method: Method) -> list[Candidate]:
        if method is Method.DNS_SRV and self.setup.dns_srv is not None:
            source = self.setup.dns_srv
            return await fetch_dns_srv(
                source.name,
                nameserver=source.nameserver,
                doh_url=source.doh_url,
                trusted_keys=_trusted_keys(self.setup),
                rng=self.rng,
                timeout=self.setup.config.fetch_timeout,
            )
        if method is Method.IPFS and self.setup.ipfs is not None:
            ipfs, cache = self.setup.ipfs, self.setup.cache
            kept = cache.manifest_version() if cache is not None else 0
            manifest, found = await fetch_ipfs_manifest(
                ipfs.cid,
                gateway=ipfs.gateway,
                root=ipfs.root,
                last_version=max(ipfs.last_version, kept),  # BOOT-3.3 across restarts
                now=self.clock(),
            )
            if cache is not None:
                cache.record_manifest_version(manifest.version)  # BOOT-1.5
            return found
        raise SourceError(Failure.UNREACHABLE, f"{method.name} is not set up")


def _remember(setup: BootstrapSetup, result: RaceWon | RaceFailed, now: float) -> None:
    """BOOT-4.4: the winner becomes the last-good peer; failing cached peers age out."""
    if setup.cache is None:
        return
    cached = {c.address: c for c in setup.cache.candidates()}
    for failure in result.failures:
        if failure.method is Method.CACHED and failure.address in cached:
            peer = cached[failure.address]
            setup.cache.record_failure(peer.public_key, now=now, kind=peer.reached_by)
    if isinstance(result, RaceWon):
        winner = result.candidate  # BOOT-4.8: kept with the kind of address that answered
        setup.cache.record_success(
            winner.public_key, winner.address, now=now, kind=winner.reached_by
        )


async def run_bootstrap(
    host: NodeHost,
    setup: BootstrapSetup,
    *,
    rng: random.Random | None = None,
    clock: Callable[[], float] = time.time,
    observe: Callable[[RaceAction, float], None] | None = None,
) -> tuple[RaceWon | RaceFailed, Race]:
    """Race every method `setup` enables from `host`; the outcome and the race (its counters).

    `observe`, if given, sees every action of the race as it is carried out,
    with the seconds since the race began (a timeline of attempts, e.g. `lab.bootstrap`).
    """
    race = Race(_sources(setup), now=clock(), config=setup.config)
    loop = CoreLoop(clock=clock)
    async with anyio.create_task_group() as tg:
        run = _Run(host, setup, race, loop, tg, rng or random.Random(), clock, observe=observe)
        tg.start_soon(loop.run)
        core: ProtocolCore[RaceAction] = race
        loop.add(core, run.dispatch)
        await run.done.wait()
        tg.cancel_scope.cancel()
    assert run.result is not None
    _remember(setup, run.result, clock())
    return run.result, race
