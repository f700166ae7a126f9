"""`railgun-ref demo`: the main job — a live localhost network, shown working.

Starts `nodes` real nodes (UDP + TCP sockets on 127.0.0.1, 127.0.0.2 and
127.0.0.3), then:

1. pings every ordered pair for `rounds` rounds, over datagrams and, in the
   last round, over the TCP stream channel with a payload no datagram could
   carry, with a live table of per-node RTTs;
2. joins every node to the Kademlia DHT through the first one, stores signed
   records, announces a room and finds its peers from other nodes;
3. prints a summary and exits non-zero if anything that must work did not.

The failover demo of the hybrid transport will take this command over.
"""

import random
import statistics
import time
from dataclasses import dataclass, field

import anyio
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.drivers.udp import NodeHost
from railgun_ref.events import PongReceived
from railgun_ref.identity.keys import Identity
from railgun_ref.node import NodeConfig
from railgun_ref.rpc.requests import Channel

_HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
_STREAM_PAYLOAD = 20_000  # far above the 1200-byte datagram limit


@dataclass(slots=True)
class _Stats:
    ok: int = 0
    failed: int = 0
    rtts_ms: list[float] = field(default_factory=list)


def _table(hosts: list[NodeHost], stats: list[_Stats]) -> Table:
    table = Table(title="Rail Gun nodes on localhost", expand=False)
    for column in ("#", "address", "node id", "pongs", "failed", "median RTT ms", "rejected"):
        table.add_column(
            column, justify="right" if column not in ("address", "node id") else "left"
        )
    for i, (host, stat) in enumerate(zip(hosts, stats, strict=True)):
        rejected = sum(v for k, v in host.counters.items() if k.startswith("rejected."))
        median = f"{statistics.median(stat.rtts_ms):.2f}" if stat.rtts_ms else "-"
        table.add_row(
            str(i),
            f"{host.address[0]}:{host.address[1]}",
            host.node_id.hex()[:16],
            str(stat.ok),
            str(stat.failed),
            median,
            str(rejected),
        )
    return table


async def _demo(nodes: int, rounds: int, seed: int, console: Console) -> bool:
    rng = random.Random(seed)
    config = NodeConfig(request_timeout=2.0)
    hosts = [
        NodeHost(
            Identity.from_seed(rng.randbytes(32)),
            host=_HOSTS[i % len(_HOSTS)],
            config=config,
            rng=random.Random(rng.getrandbits(64)),
        )
        for i in range(nodes)
    ]
    stats = [_Stats() for _ in hosts]
    pairs = [(i, j) for i in range(nodes) for j in range(nodes) if i != j]
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    ping_task = progress.add_task("pings (all pairs)", total=len(pairs) * rounds)
    dht_task = progress.add_task("DHT join + store/get", total=nodes + 6)
    ok = True
    async with anyio.create_task_group() as tg:
        for host in hosts:
            await tg.start(host.run)
        with Live(
            Group(progress, _table(hosts, stats)), console=console, refresh_per_second=8
        ) as live:
            limiter = anyio.CapacityLimiter(16)

            async def ping(i: int, j: int, channel: Channel, payload: int) -> None:
                async with limiter:
                    outcome = await hosts[i].ping(
                        hosts[j].address, channel=channel, payload=bytes(payload)
                    )
                if isinstance(outcome, PongReceived):
                    stats[i].ok += 1
                    stats[i].rtts_ms.append(outcome.rtt * 1000)
                else:
                    stats[i].failed += 1
                progress.advance(ping_task)

            for r in range(rounds):
                last = r == rounds - 1
                channel = Channel.STREAM if last else Channel.DATAGRAM
                async with anyio.create_task_group() as pings:
                    for i, j in pairs:
                        pings.start_soon(ping, i, j, channel, _STREAM_PAYLOAD if last else 0)
                live.update(Group(progress, _table(hosts, stats)))

            first = hosts[0].address
            for host in hosts[1:]:
                await host.bootstrap([first])
                progress.advance(dht_task)
            progress.advance(dht_task)
            stores = [
                await hosts[k % nodes].store(KeyType.RENDEZVOUS, f"mailbox-{k}".encode(), b"hi")
                for k in range(3)
            ]
            progress.advance(dht_task, 3)
            gets = [
                await hosts[(k + nodes // 2) % nodes].get(
                    derive_key(KeyType.RENDEZVOUS, f"mailbox-{k}".encode())
                )
                for k in range(3)
            ]
            progress.advance(dht_task)
            room = b"demo-room"
            for host in hosts[: min(4, nodes)]:
                await host.announce_room(room)
            members = await hosts[-1].find_room_peers(room)
            progress.advance(dht_task, 2)
            live.update(Group(progress, _table(hosts, stats)))
        tg.cancel_scope.cancel()

    sent = len(pairs) * rounds
    pongs = sum(s.ok for s in stats)
    rtts = sorted(r for s in stats for r in s.rtts_ms)
    summary = Table(title="Summary", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    summary.add_row("nodes", str(nodes))
    summary.add_row("pings answered", f"{pongs} / {sent}")
    if rtts:
        summary.add_row(
            "RTT median / p95 ms", f"{rtts[len(rtts) // 2]:.2f} / {rtts[int(len(rtts) * 0.95)]:.2f}"
        )
    tables = [len(h.node.dht.routing) for h in hosts]
    summary.add_row(
        "DHT contacts per node (min/median)", f"{min(tables)} / {statistics.median(tables)}"
    )
    summary.add_row("records stored on k closest", ", ".join(str(s.accepted) for s in stores))
    summary.add_row("records found by other nodes", f"{sum(g.found for g in gets)} / {len(gets)}")
    summary.add_row("room members found", f"{len(members.records)} / {min(4, nodes)}")
    console.print()
    console.print(summary)
    ok = pongs == sent and all(g.found for g in gets) and len(members.records) == min(4, nodes)
    console.print("[bold green]demo OK[/]" if ok else "[bold red]demo FAILED[/]")
    return ok


def run_demo(*, nodes: int, rounds: int, seed: int) -> int:
    if nodes < 2 or rounds < 1:
        raise SystemExit("need at least 2 nodes and 1 round")
    console = Console()
    started = time.perf_counter()
    ok = anyio.run(_demo, nodes, rounds, seed, console)
    console.print(f"finished in {time.perf_counter() - started:.1f} s")
    return 0 if ok else 1
