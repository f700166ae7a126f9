"""The PyPI `kademlia` package (bmuller, asyncio, k=20, alpha=3) under the `bench dht` harness.

`kademlia` is an optional benchmark extra (``pip install 'railgun-ref[bench]'``),
never a runtime dependency: it is imported only inside `import_kademlia`,
which the benchmark worker calls once it knows it runs the peer.

How the peer is set up, as little changed as possible:

* ``Server(ksize=k, alpha=alpha, node_id=SHA-1(node seed))`` listening on
  127.0.0.1:0, so the node ids come from the harness seed as ours do.
* RPC timeout: ``rpcudp.RPCProtocol.__init__(wait_timeout=5)`` is the only
  knob, and ``KademliaProtocol.__init__`` passes nothing, so the default is
  already 5 s. After ``listen()`` the adapter sets ``protocol._wait_timeout``
  to the harness timeout anyway, so the two implementations use the same
  number even if a release changes the default.
* Link delay and RPC counting: after ``listen()`` the protocol's transport is
  wrapped (`LinkTransport`): ``sendto`` counts datagrams and requests (rpcudp
  frames start with 0x00 for a request, 0x01 for a reply) and, with a delay,
  sends through ``loop.call_later``. It drops anything not addressed to
  127.0.0.0/8. The server keeps the real transport, which ``stop()`` closes.
* kademlia logs every timeout at WARNING/ERROR; the adapter silences its
  loggers so the logging module's last-resort handler does not flood stderr.

What the peer does that ours does not (reported, not corrected):
``ValueSpiderCrawl`` waits for whole rounds (``asyncio.gather`` over alpha
peers), so one dead peer in a round costs the full RPC timeout; and once it
finds a value it awaits a STORE of it on the nearest peer that lacked it
before ``get`` returns.
"""

import asyncio
import hashlib
import logging
import time
from typing import Any

from railgun_ref.bench.dht_common import (
    BenchParams,
    ImplRun,
    LoopLag,
    OpResult,
    Progress,
    Workload,
    kernel_udp_drops,
)
from railgun_ref.drivers.console import ProgressReport

_REQUEST: bytes = b"\x00"  # rpcudp: first byte of a request datagram


def import_kademlia() -> Any:
    """Import `kademlia.network` (the optional extra) and silence its chatty loggers."""
    import kademlia.network  # noqa: PLC0415

    for name in ("kademlia", "rpcudp"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return kademlia.network


class LinkTransport:
    """A datagram transport that counts what it sends and may hold it `delay` seconds."""

    def __init__(
        self, inner: asyncio.DatagramTransport, loop: asyncio.AbstractEventLoop, delay: float
    ) -> None:
        self.inner = inner
        self.loop = loop
        self.delay = delay
        self.datagrams = 0
        self.requests = 0
        self.refused = 0

    def sendto(self, data: bytes, addr: Any = None) -> None:
        if addr is None or not str(addr[0]).startswith("127."):
            self.refused += 1  # the benchmark never leaves 127.0.0.0/8
            return
        self.datagrams += 1
        if data[:1] == _REQUEST:
            self.requests += 1
        if self.delay > 0:
            self.loop.call_later(self.delay, self._send, data, addr)
        else:
            self._send(data, addr)

    def _send(self, data: bytes, addr: Any) -> None:
        if not self.inner.is_closing():
            self.inner.sendto(data, addr)

    def is_closing(self) -> bool:
        return self.inner.is_closing()

    def close(self) -> None:
        self.inner.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.inner.get_extra_info(name, default)


def run_kademlia(params: BenchParams, workload: Workload, progress: Progress) -> ImplRun:
    """The peer on real UDP sockets, one asyncio loop, the harness's workload."""
    return asyncio.run(_run(params, workload, progress))


async def _with_cap(coro: Any, cap: float) -> tuple[Any, bool]:
    """(result, False), or (None, True) if `coro` ran past `cap` seconds (then cancelled)."""
    try:
        return await asyncio.wait_for(coro, cap), False
    except TimeoutError:
        return None, True


async def _run(params: BenchParams, workload: Workload, progress: Progress) -> ImplRun:
    return await _KademliaBench(params, workload, progress).run()


class _KademliaBench:
    """One `run_kademlia`: the package's servers on loopback, the workload, its outcomes."""

    def __init__(self, params: BenchParams, workload: Workload, progress: Progress) -> None:
        self.params, self.workload, self.progress = params, workload, progress
        self.network = import_kademlia()
        self.loop = asyncio.get_running_loop()
        self.servers: list[Any] = []
        self.links: list[LinkTransport] = []
        self.lag = LoopLag()
        self.joins_failed = 0
        self.join_limit = asyncio.Semaphore(params.join_concurrency)
        self.limit = asyncio.Semaphore(params.op_concurrency)
        self.getter_locks: list[asyncio.Lock] = []
        self.setup_cpu_s: float | None = None

    async def start(self, seed: bytes) -> None:
        params = self.params
        server = self.network.Server(
            ksize=params.k, alpha=params.alpha, node_id=hashlib.sha1(seed).digest()
        )
        await server.listen(0, interface="127.0.0.1")
        protocol = server.protocol
        protocol._wait_timeout = params.rpc_timeout
        link = LinkTransport(protocol.transport, self.loop, params.send_delay)
        protocol.transport = link
        self.servers.append(server)
        self.links.append(link)
        self.getter_locks.append(asyncio.Lock())

    async def watch_lag(self) -> None:
        lag = self.lag
        while True:
            begin = self.loop.time()
            await asyncio.sleep(lag.interval)
            lag.record(self.loop.time() - begin - lag.interval)

    async def join(self, i: int, bootstrap: Any, report: ProgressReport) -> None:
        async with self.join_limit:
            found, capped = await _with_cap(
                self.servers[i].bootstrap([bootstrap]), self.params.op_timeout
            )
        if capped or not found:
            self.joins_failed += 1
        report.advance()

    async def store(self, i: int) -> OpResult:
        server = self.servers[self.workload.store_from[i]]
        async with self.limit:
            begin = time.perf_counter()
            ok, capped = await _with_cap(
                server.set(self.workload.idents[i], self.workload.values[i]),
                self.params.op_timeout,
            )
            elapsed = time.perf_counter() - begin
        if capped:
            return OpResult(ok=False, latency_s=elapsed, error="harness_timeout")
        ok = bool(ok)
        return OpResult(ok=ok, latency_s=elapsed, error=None if ok else "no_remote_replica")

    async def get(self, i: int) -> OpResult:
        getter, ident = self.workload.get_from[i], self.workload.idents[i]
        link, server = self.links[getter], self.servers[getter]
        async with self.getter_locks[getter], self.limit:
            local = server.storage.get(hashlib.sha1(ident).digest())
            requests_before = link.requests
            begin = time.perf_counter()
            value, capped = await _with_cap(server.get(ident), self.params.op_timeout)
            elapsed = time.perf_counter() - begin
            rpcs = link.requests - requests_before
        held = local is not None
        if capped:
            return OpResult(
                ok=False, latency_s=elapsed, rpcs=rpcs, error="harness_timeout", local=held
            )
        ok = value == self.workload.values[i]
        error = None if ok else ("not_found" if value is None else "wrong_value")
        return OpResult(ok=ok, latency_s=elapsed, rpcs=rpcs, error=error, local=held)

    async def setup(self) -> float:
        """Start every server and join it through the first; the wall seconds it took."""
        started, started_cpu = time.perf_counter(), time.process_time()
        for seed in self.workload.node_seeds:
            await self.start(seed)
        bootstrap = self.servers[0].transport.get_extra_info("sockname")[:2]
        total = len(self.servers) - 1
        with self.progress.phase("setup", total=total, unit="nodes joined") as joining:
            await asyncio.gather(
                *(self.join(i, bootstrap, joining) for i in range(1, len(self.servers)))
            )
        setup_s = time.perf_counter() - started
        self.setup_cpu_s = round(time.process_time() - started_cpu, 3)
        self.progress(
            f"setup {len(self.servers)} nodes in {setup_s:.1f}s ({self.joins_failed} joins failed)"
        )
        return setup_s

    async def run(self) -> ImplRun:
        params, workload, lag = self.params, self.workload, self.lag
        watcher = asyncio.create_task(self.watch_lag())
        setup_s = await self.setup()
        lag.phase = "settle"
        await asyncio.sleep(params.settle_s)
        lag.phase = "stores"
        stores = list(await asyncio.gather(*(self.store(i) for i in range(params.keys))))
        self.progress(f"{params.keys} stores done")
        for i in workload.stopped:
            self.servers[i].stop()
        self.progress(f"churn: stopped {len(workload.stopped)} nodes")
        lag.phase = "gets"
        gets = list(await asyncio.gather(*(self.get(i) for i in range(params.keys))))
        self.progress(f"{params.keys} gets done")
        refused = sum(link.refused for link in self.links)
        ports = [link.get_extra_info("sockname")[1] for link in self.links]
        dropped = kernel_udp_drops(ports)
        for i, server in enumerate(self.servers):
            if i not in set(workload.stopped):
                server.stop()
        watcher.cancel()
        await asyncio.sleep(0)  # let the transports' close callbacks and the cancellation run
        return ImplRun(
            impl="kademlia",
            driver="udp",
            setup_s=setup_s,
            joins_failed=self.joins_failed,
            stores=stores,
            gets=gets,
            notes=_notes(params),
            extra={
                "setup_cpu_s": self.setup_cpu_s,
                "datagrams_sent_total": sum(link.datagrams for link in self.links),
                "datagrams_refused_non_loopback": refused,
                "dropped_datagrams": {"kernel": dropped},
            },
            loop_lag=lag,
        )


def _notes(params: BenchParams) -> list[str]:
    return [
        f"Server(ksize={params.k}, alpha={params.alpha}); RPC timeout: "
        f"protocol._wait_timeout = {params.rpc_timeout} s (rpcudp's default is already 5)",
        "rpcs per get: request datagrams the getter's transport sent during its get "
        "(includes the STORE to the nearest peer without the value)",
        "link delay: the protocol's transport.sendto goes through loop.call_later(rtt/2)",
        "lookups wait for whole rounds (asyncio.gather over alpha peers): a dead peer "
        "costs its round the full RPC timeout",
    ]
