"""The demo's fresh client: it has never seen a peer, starts mid-outage and still joins (BOOT-4).

During the takedown, once every client is on P2P, the demo starts one more
client process with an empty data directory: no peer cache entry, no
``--bootstrap`` address, and the hard-coded list the package ships (which is
empty: there are no public bootstrap nodes yet). What it has is what a
deployment gives its users:

* the deployment's **root** (`BootstrapDeployment`: keys made for the run,
  the root signed by its root key), as a client would ship it;
* a **signed manifest** of bootstrap nodes (three of the running clients,
  by key and UDP address), published by CID on an IPFS-style gateway on
  127.0.0.4 (`drivers.ipfs_gateway`);
* **DNS SRV** records under `SRV_NAME` on the demo's DNS server -- which the
  censor blocks for the outage (the name answers REFUSED), as it blocked the
  service's name in the ``dns`` scenario.

Its bootstrap race (`drivers.bootstrap.run_bootstrap`, the default
`RaceConfig`) reports which method won and why each other did not
(`race_record`: a failure label, ``not reached`` when the race was won before
the method opened, or ``not set up``). Client 0 then invites it with one
pasteable line (`apps.chat.encode_invitation`), the fresh client accepts the
line, finds the members over the DHT it joined through the winner, and the
members find it: from then on every message is encrypted for it as well.

Exactly once, for it too: a message is expected at the fresh client if its
sender encrypted it for it, or if its sender accepted it after every member
knew the fresh client (`LateJoiner.known_at`; membership only grows here, so
such a message must name it). `LateJoiner.fold` adds those deliveries to the
demo's `DeliverySummary` (its ``late`` field): delivered, duplicated, still
queued (in a sender's outbox or the central mailbox) or lost.
"""

import dataclasses
import os
import time
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import anyio

from railgun_ref.apps.chat import encode_invitation
from railgun_ref.apps.demo_clients import CLIENT_START_TIMEOUT, ClientProcess
from railgun_ref.bootstrap import manifest as m
from railgun_ref.bootstrap.race import Method, RaceFailed, RaceWon
from railgun_ref.drivers.bootstrap_sources import key_label
from railgun_ref.drivers.dns_server import DnsMode, DnsServer
from railgun_ref.drivers.ipfs_gateway import IpfsGateway
from railgun_ref.identity.keys import Identity

if TYPE_CHECKING:
    from railgun_ref.apps.demo import DeliverySummary, FailoverNetwork

#: The SRV owner name the deployment publishes its bootstrap nodes under (RFC 2782).
SRV_NAME: Final = "_railgun._udp.bootstrap.railgun.test"
#: The domain the SRV targets live in (``<key in base32>.nodes.bootstrap.railgun.test``).
SRV_TARGET_DOMAIN: Final = "nodes.bootstrap.railgun.test"
#: Where the IPFS-style gateway listens.
GATEWAY_HOST: Final = "127.0.0.4"
#: How many of the running clients the manifest and the SRV records name.
MANIFEST_NODES: Final = 3
#: Seconds the manifest and the root stay valid (BOOT-3.4: no freeze).
MANIFEST_LIFETIME: Final = 3600.0
ROOT_LIFETIME: Final = 86_400.0
#: Seconds of bounds (stretched by loop lag like every demo bound).
LATE_JOIN_TIMEOUT: Final = 30.0
LATE_DELIVERY_TIMEOUT: Final = 20.0
#: Why each method can or cannot help the fresh client in this demo (for the report).
METHOD_SETUP: Final = {
    Method.CACHED: "a fresh client: its peer cache is empty",
    Method.HARDCODED: "the shipped list is empty: no public nodes yet",
    Method.TOR: "no Tor proxy in this demo",
    Method.I2P: "no I2P router in this demo",
    Method.IPFS: f"the signed manifest by CID, gateway on {GATEWAY_HOST}",
    Method.DNS_SRV: "SRV records on the demo's DNS server, which the censor makes refuse them",
}


# ------------------------------------------------------------------ the race, reported


def race_record(result: RaceWon | RaceFailed, configured: Collection[Method]) -> dict[str, Any]:
    """BOOT-4.6 as JSON: the winner (or None) and, per method, its outcome and why.

    ``outcome`` is ``won``, ``failed`` (``labels``: the failure of each attempt
    or fetch), ``not reached`` (set up, but the race was won before it
    opened or finished) or ``not set up``.
    """
    winner = result.candidate if isinstance(result, RaceWon) else None
    labels: dict[Method, list[str]] = {}
    for attempt in result.failures:
        if attempt.failure is not None:
            labels.setdefault(attempt.method, []).append(attempt.failure.value)
    methods = []
    for method in Method:
        entry: dict[str, Any] = {"method": method.name.lower(), "labels": labels.get(method, [])}
        if winner is not None and winner.method is method:
            entry.update(outcome="won", address=winner.address)
        elif method in labels:
            entry["outcome"] = "failed"
        else:
            entry["outcome"] = "not reached" if method in configured else "not set up"
        methods.append(entry)
    return {
        "winner": None if winner is None else winner.method.name.lower(),
        "elapsed_s": round(result.elapsed, 3),
        "methods": methods,
    }


def race_lines(record: Mapping[str, Any]) -> list[str]:
    """The race in words: who won in how long, and why each other method did not."""
    winner = record.get("winner")
    head = (
        f"bootstrap race won by {winner} in {record['elapsed_s']:.2f} s"
        if winner
        else f"bootstrap race FAILED after {record['elapsed_s']:.2f} s: every method failed"
    )
    lines = [head]
    for entry in record["methods"]:
        why = METHOD_SETUP.get(Method[entry["method"].upper()], "")
        outcome = entry["outcome"]
        if outcome == "won":
            outcome = f"won: a verified PONG from {entry['address']}"
        elif outcome == "failed":
            outcome = "failed: " + ", ".join(sorted(set(entry["labels"])))
        elif outcome == "not reached":
            outcome = "not reached: the race was won before it opened"
        lines.append(f"  {entry['method']:<9} {outcome} - {why}")
    return lines


# ------------------------------------------------------------------ the deployment


class BootstrapDeployment:
    """The deployment's bootstrap documents for one run: keys, the root, signed manifests."""

    def __init__(self, data_dir: Path, *, random_bytes: Any = os.urandom) -> None:
        self.root_key = Identity.generate(random_bytes)
        self.manifest_key = Identity.generate(random_bytes)
        self.version = 0
        now = time.time()
        body = m.Root(
            version=1,
            expires_ms=int((now + ROOT_LIFETIME) * 1000),
            root_keys=(self.root_key.public_key,),
            root_threshold=1,
            manifest_keys=(self.manifest_key.public_key,),
            manifest_threshold=1,
        ).body()
        self.root_document = m.sign_document(body, [self.root_key])
        self.root_path = data_dir / "bootstrap-root.cbor"  #: what the client ships with
        self.root_path.write_bytes(self.root_document)
        self.cid = ""

    def publish(
        self, gateway: IpfsGateway, dns: DnsServer, nodes: Sequence[tuple[bytes, str]]
    ) -> str:
        """Sign a manifest of `nodes` (public key, ``host:port``), serve it on `gateway`, and
        publish the same nodes as SRV records on `dns`; returns the manifest's CID."""
        self.version += 1
        manifest = m.Manifest(
            version=self.version,
            expires_ms=int((time.time() + MANIFEST_LIFETIME) * 1000),
            root_version=1,
            nodes=tuple(
                m.BootstrapNode(public_key=key, addresses=((m.AddressKind.UDP, address),))
                for key, address in nodes
            ),
        )
        self.cid = gateway.add(m.sign_document(manifest.body(), [self.manifest_key]))
        records = []
        for key, address in nodes:
            host, _, port = address.rpartition(":")
            target = f"{key_label(key)}.{SRV_TARGET_DOMAIN}"
            dns.register(target, host)
            records.append((0, 1, int(port), target))
        dns.register_srv(SRV_NAME, records)
        return self.cid

    def worker_args(self, gateway: IpfsGateway) -> list[str]:
        """The fresh client's bootstrap arguments (`railgun_ref.apps.demo_worker`)."""
        host, port = gateway.address
        return [
            *("--bootstrap-root", str(self.root_path), "--ipfs-cid", self.cid),
            *("--ipfs-gateway", f"{host}:{port}", "--srv-name", SRV_NAME),
        ]


# ------------------------------------------------------------------ the fresh client


@dataclass(slots=True)
class LateJoiner:
    """The fresh client as the coordinator sees it; times are seconds since the demo started."""

    process: ClientProcess
    started_at: float
    accepted_at: float | None = None  #: it accepted its invitation
    known_at: float | None = None  #: every member had found it (reachable)
    race: dict[str, Any] | None = None  #: `race_record`, as the worker reported it
    invitation: str = ""  #: the pasteable line it accepted
    state: str = "connecting"
    received: Counter[bytes] = field(default_factory=Counter)
    paths: dict[bytes, str] = field(default_factory=dict)
    #: Messages whose sender encrypted them for it, and when each sender accepted
    #: a chat message (s since start), for the rule in the module docstring.
    addressed: set[bytes] = field(default_factory=set)
    accepted: dict[bytes, float] = field(default_factory=dict)

    @property
    def index(self) -> int:
        return self.process.index

    def expected(self, sender_of: Mapping[bytes, int]) -> set[bytes]:
        """The chat messages it must get exactly once (module docstring)."""
        known = self.known_at
        return {
            mid
            for mid in sender_of
            if mid in self.addressed or (known is not None and self.accepted.get(mid, -1.0) > known)
        }

    def all_delivered(self, sender_of: Mapping[bytes, int]) -> bool:
        return self.expected(sender_of) <= set(self.received)

    def fold(
        self,
        summary: "DeliverySummary",
        sender_of: Mapping[bytes, int],
        queued: Collection[tuple[int, bytes]],
    ) -> "DeliverySummary":
        """`summary` with this member's deliveries added (its ``late`` field says how many)."""
        expected = self.expected(sender_of)
        delivered = expected & set(self.received)
        waiting = {mid for index, mid in queued if index == self.index} & (expected - delivered)
        by_path = Counter(summary.by_path)
        by_path.update(self.paths[mid] for mid in delivered if mid in self.paths)
        return dataclasses.replace(
            summary,
            expected=summary.expected + len(expected),
            delivered=summary.delivered + len(delivered),
            duplicates=summary.duplicates + sum(max(0, n - 1) for n in self.received.values()),
            queued=summary.queued + len(waiting),
            lost=summary.lost + len(expected) - len(delivered) - len(waiting),
            unexpected=summary.unexpected + len(set(self.received) - expected),
            late=summary.late + len(expected),
            by_path=dict(by_path),
        )

    def to_json(self, sender_of: Mapping[bytes, int]) -> dict[str, Any]:
        expected = self.expected(sender_of)
        return {
            "client": self.index,
            "address": self.process.address,
            "node_id": self.process.node_id,
            "started_at": round(self.started_at, 3),
            "accepted_at": self.accepted_at,
            "known_at": self.known_at,
            "invitation": self.invitation,
            "bootstrap": self.race,
            "expected": len(expected),
            "delivered": len(expected & set(self.received)),
            "duplicates": sum(max(0, n - 1) for n in self.received.values()),
            "joined": self.joined,
        }

    @property
    def joined(self) -> bool:
        """It won a race, accepted, and every member found it."""
        winner = self.race is not None and self.race.get("winner") is not None
        return winner and self.accepted_at is not None and self.known_at is not None

    def lines(self) -> list[str]:
        """What the demo's summary prints about it."""
        verdict = "OK" if self.joined else "FAILED"
        head = f"fresh client c{self.index:02d} joined mid-outage: {verdict}"
        if self.race is None:
            return [head, "  it reported no bootstrap race"]
        return [head, *(f"  {line}" for line in race_lines(self.race))]


def on_accepted(late: LateJoiner, record: dict[str, Any], t: float) -> None:
    """A chat member's ``accepted`` record: note whether it names the fresh client (and
    drop the recipient list from the record: events.json keeps the count)."""
    to = record.pop("to", [])
    mid = bytes.fromhex(record["message_id"])
    late.accepted[mid] = t
    if late.process.node_id and late.process.node_id in to:
        late.addressed.add(mid)


# ------------------------------------------------------------------ joining mid-outage


def _on_late_record(network: "FailoverNetwork", late: LateJoiner, record: dict[str, Any]) -> None:
    """One line from the fresh client's process: keep its deliveries, race and events."""
    kind = record.pop("kind")
    at = record.pop("at", None)
    if kind in ("ready", "reply"):
        return
    view = network.views[late.index]
    if kind == "status":
        late.state = view.state = str(record["state"])
        return
    if kind == "lag":
        network.lags.append((network.now(), record["lag_ms"] / 1000))
    elif kind == "bootstrap":
        late.race = record
    elif kind == "state":
        late.state = view.state = late.process.status["state"] = record["new"]
    elif kind == "received":
        mid = bytes.fromhex(record["message_id"])
        count = late.received[mid]
        late.received[mid] = count + 1
        if count:
            view.duplicates += 1
        else:
            view.delivered += 1
            late.paths[mid] = record["path"]
            view.via_p2p += record["path"] == "p2p"
            view.via_central += record["path"] != "p2p"
        record["sender"] = network.index_of(record["sender"])
        record["duplicate"] = bool(count)
    network.record_event(late.index, kind, at, **record)


async def join_mid_outage(network: "FailoverNetwork", deployment: BootstrapDeployment) -> bool:
    """Start the fresh client, invite it, and wait until it is in the room and has a message
    over P2P (module docstring). True if it joined within the bounds."""
    assert network.dns is not None and network.gateway is not None
    network.dns.set_mode(DnsMode.REFUSED, name=SRV_NAME)  # the censor blocks this name too
    network.set_phase("a fresh client (never saw a peer, empty cache) starts mid-outage")
    late = await _start_late(network, deployment)
    creator = network.clients[0]
    invited = await creator.request("invite", public_key=late.process.public_key)
    late.invitation = encode_invitation(bytes.fromhex(invited["invitation"]))
    network.log(f"  c00 invites it with one line: {late.invitation[:48]}...")
    accepted = await late.process.request("accept", line=late.invitation, name=network.room)
    if "room_id" not in accepted:
        network.log(f"  the fresh client could not accept: {accepted}")
        return False
    late.accepted_at = network.now()
    peers = network.peers
    found = await network.wait_until(
        lambda: late.process.reachable >= 1 and all(c.reachable >= peers for c in network.clients),
        LATE_JOIN_TIMEOUT,
        "fresh client joins",
    )
    if late.race is not None:
        for line in race_lines(late.race):
            network.log(f"  {line}")
    if not found:
        network.set_phase(f"the fresh client did not join ({network.bound_note()})")
        return False
    late.known_at = network.now()
    network.set_phase(
        f"the fresh client joined {late.known_at - late.started_at:.1f} s after it started"
    )
    got = await network.wait_until(
        lambda: any(path == "p2p" for path in late.paths.values()),
        LATE_DELIVERY_TIMEOUT,
        "fresh client's first P2P delivery",
    )
    if got:
        network.set_phase("the fresh client receives the room's messages over P2P")
    return got


async def _start_late(network: "FailoverNetwork", deployment: BootstrapDeployment) -> LateJoiner:
    assert network.tg is not None and network.gateway is not None
    index = network.peers
    data = network.data_dir / f"client-{index:02d}-fresh"
    data.mkdir(parents=True, exist_ok=True)
    process = ClientProcess(index=index, log_path=data / "stderr.log")
    late = network.late = LateJoiner(process=process, started_at=network.now())
    network.add_view(index)
    await process.start(
        [*network.worker_argv(index, data), *deployment.worker_args(network.gateway)]
    )
    network.tg.start_soon(process.pump, lambda _, record: _on_late_record(network, late, record))
    with anyio.fail_after(CLIENT_START_TIMEOUT):
        await process.ready.wait()
    network.add_client_identity(process)
    return late
