"""The takedown scenarios on localhost against the real central service (HT-2.1, HT-2.2).

Clients reach the service the way the scenarios need: by a name resolved by
the scenario's `DnsServer` (scenario 1), through the `FaultProxy` (scenario
2, and the latency rule), or directly to a `railgun-ref central` process
that gets killed (scenario 3). Each test switches the fault on at run time
and checks the label `check_health` reports, as network-measurement tools
would name it.
"""

import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anyio
import pytest

from railgun_ref.core.ids import NodeId
from railgun_ref.drivers.central import CentralConfig, CentralService, MailboxStore, serve_central
from railgun_ref.drivers.central_client import (
    CentralClosedError,
    check_health,
    connect_central,
    origin_of,
    websocket_url,
)
from railgun_ref.drivers.dns_server import DnsCounter, DnsMode, DnsServer
from railgun_ref.drivers.fault_proxy import FaultProxy, ListenerEvent, ProxyCounter, ProxyMode
from railgun_ref.drivers.resolver import StubResolver
from railgun_ref.identity.keys import Identity
from railgun_ref.transport.health import FailureLabel, ThresholdDetector
from railgun_ref.transport.service import (
    CheckHealth,
    HybridTransportConfig,
    HybridTransportService,
    ServiceCounter,
    StateChanged,
)
from railgun_ref.transport.state import Reach, TransportState

from .rooms_helpers import room_log

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(60)]

NAME = "central.railgun.test"
#: Deadline of one check in these tests (the fault, not the deadline, decides the label).
CHECK_TIMEOUT = 1.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Scenario:
    central_url: str  #: the service itself, http://127.0.0.1:PORT
    proxy: FaultProxy
    dns: DnsServer
    resolve: StubResolver

    @property
    def proxy_port(self) -> int:
        return self.proxy.address[1]

    @property
    def by_name(self) -> str:
        """The URL a DNS-scenario client uses: the service's name, the proxy's port."""
        return f"http://{NAME}:{self.proxy_port}"


@asynccontextmanager
async def scenario(tmp_path: Path) -> AsyncIterator[Scenario]:
    """The real central service, a fault proxy in front of it, and a DNS server naming it."""
    store = MailboxStore(tmp_path / "central.sqlite3")
    try:
        async with anyio.create_task_group() as tg:
            url = await tg.start(partial(serve_central, CentralService(store, CentralConfig())))
            host, port = url.removeprefix("http://").split(":")
            proxy: FaultProxy = await tg.start(FaultProxy((host, int(port))).run)
            dns: DnsServer = await tg.start(DnsServer().run)
            dns.register(NAME, "127.0.0.1")
            resolve = StubResolver(dns.address, timeout=CHECK_TIMEOUT / 2)
            yield Scenario(central_url=url, proxy=proxy, dns=dns, resolve=resolve)
            tg.cancel_scope.cancel()
    finally:
        store.close()


async def label_of(url: str, resolve: StubResolver | None = None) -> FailureLabel | None:
    result = await check_health(url, CHECK_TIMEOUT, resolve=resolve)
    assert result.ok == (result.label is None)
    return result.label


async def test_scenario_1_dns_blocking(tmp_path: Path) -> None:
    """HT-2.1, CEN-8.1: the resolver the client uses answers NXDOMAIN, SERVFAIL, REFUSED or
    nothing; each is labelled as such, and the service is healthy again once it answers."""
    async with scenario(tmp_path) as s:
        assert await label_of(s.by_name, s.resolve) is None
        expected = {
            DnsMode.NXDOMAIN: FailureLabel.DNS_NXDOMAIN,
            DnsMode.SERVFAIL: FailureLabel.DNS_SERVFAIL,
            DnsMode.REFUSED: FailureLabel.DNS_SERVFAIL,
            DnsMode.SILENT: FailureLabel.DNS_TIMEOUT,
        }
        for mode, label in expected.items():
            s.dns.set_mode(mode, name=NAME)
            assert await label_of(s.by_name, s.resolve) is label, mode
        s.dns.set_mode(DnsMode.ANSWER, name=NAME)
        assert await label_of(s.by_name, s.resolve) is None
        assert s.dns.counters.get_count(DnsCounter.ANSWERS, DnsMode.SILENT) == 1


async def test_scenario_2_ip_blocking_blackhole(tmp_path: Path) -> None:
    """HT-2.1, CEN-8.1: a blackholed address accepts and stays silent: generic_timeout."""
    async with scenario(tmp_path) as s:
        assert await label_of(s.proxy.url) is None
        s.proxy.set_mode(ProxyMode.BLACKHOLE)
        assert await label_of(s.proxy.url) is FailureLabel.GENERIC_TIMEOUT
        # By name, the name still resolves: it is the address that is blocked.
        assert await label_of(s.by_name, s.resolve) is FailureLabel.GENERIC_TIMEOUT
        s.proxy.set_mode(ProxyMode.PASS)
        assert await label_of(s.proxy.url) is None


async def test_refused_and_reset(tmp_path: Path) -> None:
    """HT-2.1, CEN-8.1: nothing listening is connection_refused; an injected RST is
    connection_reset."""
    async with scenario(tmp_path) as s:
        s.proxy.set_mode(ProxyMode.REFUSE)
        with anyio.fail_after(5):
            while s.proxy.counters.get_count(ProxyCounter.LISTENER, ListenerEvent.CLOSED) == 0:
                await anyio.sleep(0.01)
        assert await label_of(s.proxy.url) is FailureLabel.CONNECTION_REFUSED
        s.proxy.set_mode(ProxyMode.RESET)
        with anyio.fail_after(5):
            while s.proxy.counters.get_count(ProxyCounter.LISTENER, ListenerEvent.OPENED) < 2:
                await anyio.sleep(0.01)
        assert await label_of(s.proxy.url) is FailureLabel.CONNECTION_RESET
        s.proxy.set_mode(ProxyMode.PASS)
        assert await label_of(s.proxy.url) is None


async def test_latency_rule(tmp_path: Path) -> None:
    """HT-2.2: a check slower than awsLatencyThreshold (2 s) answers, but the baseline
    failover rule counts it as a failure labelled high_latency."""
    async with scenario(tmp_path) as s:
        detector = ThresholdDetector(failure_threshold=3, latency_threshold=2.0)
        s.proxy.set_delay_ms(1050)  # per direction: the exchange takes > 2.1 s
        result = await check_health(s.proxy.url, 10.0)
        assert result.ok
        assert result.latency is not None and result.latency > 2.0
        assert detector.classify(result).label is FailureLabel.HIGH_LATENCY
        s.proxy.set_mode(ProxyMode.PASS)
        fast = await check_health(s.proxy.url, 10.0)
        assert detector.classify(fast).ok


async def test_reset_cuts_a_websocket_session(tmp_path: Path) -> None:
    """A session through the proxy works, and an injected reset ends it with a clear error."""
    async with scenario(tmp_path) as s:
        identity = Identity.from_seed(bytes([61]) * 32)
        origin = origin_of(websocket_url(s.central_url))  # the service's own origin
        async with connect_central(s.proxy.url, identity, origin=origin) as client:
            await client.join(*room_log(identity))
            s.proxy.set_mode(ProxyMode.RESET)
            with pytest.raises(CentralClosedError):
                with anyio.fail_after(10):
                    await client.receive()


async def test_real_checks_drive_failover_and_failback(tmp_path: Path) -> None:
    """HT-2.2, HT-3.3: the baseline failover rule fed with real checks through the proxy fails over
    after 3 failed checks (peers reachable) and fails back after 3 healthy ones spanning
    failbackMinInterval. Times are the event loop's; intervals are shortened."""
    async with scenario(tmp_path) as s:
        config = HybridTransportConfig(
            aws_health_check_interval=0.05, failback_min_interval=0.1, resend_interval=60.0
        )
        service = HybridTransportService(
            config, local_id=NodeId(bytes(32)), now=anyio.current_time()
        )
        service.reachability(reach=Reach.ALL, anything_reachable=True, now=anyio.current_time())
        states: list[TransportState] = []

        async def run_until(predicate: TransportState, limit: int) -> None:
            for _ in range(limit):
                service.on_timer(now=anyio.current_time())
                while (action := service.next_action()) is not None:
                    if isinstance(action, CheckHealth):
                        result = await check_health(s.proxy.url, 1.0)
                        service.health_result(result, now=anyio.current_time())
                    elif isinstance(action, StateChanged):
                        states.append(action.new)
                if service.state is predicate:
                    return
                await anyio.sleep(config.aws_health_check_interval)
            pytest.fail(f"never reached {predicate}; states {states}")

        await run_until(TransportState.CONNECTED_AWS, 10)
        s.proxy.set_mode(ProxyMode.BLACKHOLE)
        await run_until(TransportState.CONNECTED_P2P, 20)
        assert (
            service.counters.get_count(ServiceCounter.CENTRAL_FAILURE, FailureLabel.GENERIC_TIMEOUT)
            == 3
        )
        s.proxy.set_mode(ProxyMode.PASS)
        await run_until(TransportState.CONNECTED_AWS, 40)
        assert states == [
            TransportState.CONNECTED_AWS,
            TransportState.CONNECTED_P2P,
            TransportState.CONNECTED_AWS,
        ]


@pytest.fixture
def central_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "railgun_ref.cli", "central"),
            *("--host", "127.0.0.1", "--port", "0", "--db", str(tmp_path / "central.sqlite3")),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # EOF (not a hang) if the process dies
        assert first.startswith("railgun-ref central listening http://127.0.0.1:"), first
        yield proc, first.split()[-1]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


async def test_scenario_3_takedown_kills_the_process(
    central_process: tuple[subprocess.Popen[str], str],
) -> None:
    """HT-2.1, CEN-8.1: the real `railgun-ref central` process is killed: the port refuses."""
    proc, url = central_process
    assert await label_of(url) is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert await label_of(url) is FailureLabel.CONNECTION_REFUSED
