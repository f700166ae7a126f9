"""`railgun-ref node`: one node on real sockets until SIGINT/SIGTERM.

Its first line on stdout is the contract other programs (the conformance
runner's tests, scripts) rely on::

    railgun-ref node listening udp://HOST:PORT id=<64 hex digits>

With ``--bootstrap HOST:PORT`` (repeatable) it joins the DHT through those
nodes and prints a second line ``joined: N contacts`` when the join lookup
ends.
"""

import os
import signal
import sys
from pathlib import Path

import anyio

from railgun_ref.drivers.keystore import load_or_create_identity
from railgun_ref.drivers.sqlite_store import SqliteNodeStore
from railgun_ref.drivers.udp import NodeHost
from railgun_ref.identity.keys import Identity


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


#: A join that found nobody is retried this often, doubling up to the cap (seconds).
_JOIN_RETRY_FIRST = 2.0
_JOIN_RETRY_MAX = 60.0


async def _join(host: NodeHost, bootstrap: list[tuple[str, int]]) -> None:
    """Join through `bootstrap`; while nobody answers, retry with exponential backoff."""
    delay = _JOIN_RETRY_FIRST
    while True:
        joined = await host.bootstrap(bootstrap)
        contacts = len(host.node.dht.routing)
        if joined.closest or contacts:
            _print(f"joined: {contacts} contacts, {joined.queries} queries")
            return
        _print(f"join: no bootstrap node answered; retrying in {delay:.0f} s")
        await anyio.sleep(delay)
        delay = min(delay * 2, _JOIN_RETRY_MAX)


async def _serve(host: NodeHost, bootstrap: list[tuple[str, int]]) -> None:
    async with anyio.create_task_group() as tg:
        address = await tg.start(host.run)
        _print(
            f"railgun-ref node listening udp://{address[0]}:{address[1]} id={host.node_id.hex()}"
        )
        if bootstrap:
            tg.start_soon(_join, host, bootstrap)
        restored = host.counters["driver.records_restored"]
        if restored:
            _print(f"restored: {restored} records")
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                tg.cancel_scope.cancel()
                return


def run_node(
    *,
    host: str,
    port: int,
    identity_path: str | None,
    bootstrap: list[tuple[str, int]],
    data_dir: str | None = None,
) -> int:
    """Serve a node. With `data_dir`, its identity, held records and cached peers live
    there (``identity``, ``node.sqlite3``) and survive restarts; a restarted node with
    no ``--bootstrap`` rejoins through its cached peers."""
    store = None
    if data_dir is not None:
        directory = Path(data_dir)
        identity_path = identity_path or str(directory / "identity")
        store = SqliteNodeStore(directory / "node.sqlite3")
    identity = (
        load_or_create_identity(Path(identity_path))
        if identity_path
        else Identity.generate(os.urandom)
    )
    try:
        node_host = NodeHost(identity, host=host, port=port, store=store)
        if not bootstrap:
            bootstrap = node_host.cached_peers()
        anyio.run(_serve, node_host, bootstrap)
    finally:
        if store is not None:
            store.close()
    return 0
