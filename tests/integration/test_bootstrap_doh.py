"""DNS SRV over DNS-over-HTTPS (RFC 8484, BOOT-3.6): a local DoH endpoint on 127.0.0.1.

The endpoint (`drivers.doh_server`) answers from the project's DNS server
data, so the same records and modes serve UDP and DoH. A fresh client's race
joins through an SRV record fetched over DoH; every bad answer -- HTTP 403,
a body that is not DNS, REFUSED, NXDOMAIN, silence, no endpoint -- fails the
source with its own label and the race ends without a crash.
"""

import base64
import random
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import dns.message
import httpx2
import pytest

from railgun_ref.bootstrap import manifest as m
from railgun_ref.bootstrap.race import Failure, Method, RaceConfig, RaceFailed, RaceWon
from railgun_ref.drivers.bootstrap import BootstrapSetup, DnsSrvSource, run_bootstrap
from railgun_ref.drivers.bootstrap_sources import SourceError, fetch_dns_srv, key_label
from railgun_ref.drivers.dns_server import DnsCounter, DnsMode, DnsServer
from railgun_ref.drivers.doh_server import DNS_MESSAGE, DohCounter, DohMode, DohServer
from railgun_ref.drivers.udp import NodeHost
from railgun_ref.identity.keys import Identity
from railgun_ref.node import NodeConfig

from .conftest import identity, serving

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(60)]

SRV_NAME = "_railgun._udp.doh.test"
LIST_KEY = Identity.from_seed(b"\x75" * 32)
FAST = RaceConfig(attempt_timeout=0.6, fetch_timeout=1.0)


def trusted(key: bytes, now: float) -> m.Manifest:
    """A verified shipped list naming `key` (at an address nobody answers): DNS may move it."""
    root = m.Root(
        version=1,
        expires_ms=int((now + 3600) * 1000),
        root_keys=(LIST_KEY.public_key,),
        root_threshold=1,
        manifest_keys=(LIST_KEY.public_key,),
        manifest_threshold=1,
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"
    node = m.BootstrapNode(public_key=key, addresses=((m.AddressKind.UDP, dead),))
    body = m.Manifest(
        version=1, expires_ms=int((now + 3600) * 1000), root_version=1, nodes=(node,)
    ).body()
    return m.verify_manifest(root, m.sign_document(body, [LIST_KEY]), now=now)


@asynccontextmanager
async def doh_network() -> AsyncIterator[tuple[NodeHost, NodeHost, DnsServer, DohServer]]:
    client = NodeHost(identity(1), config=NodeConfig(request_timeout=0.5))
    alive = NodeHost(identity(10))
    dns_server = DnsServer()
    doh = DohServer(dns_server)
    async with serving(client, alive), anyio.create_task_group() as tg:
        await tg.start(dns_server.run)
        await tg.start(doh.run)
        target = f"{key_label(identity(10).public_key)}.nodes.doh.test"
        dns_server.register(target, alive.address[0])
        dns_server.register_srv(
            SRV_NAME, [(0, 1, 7000, "garbage.doh.test"), (1, 1, alive.address[1], target)]
        )
        yield client, alive, dns_server, doh
        tg.cancel_scope.cancel()


async def test_a_fresh_client_joins_through_srv_over_doh() -> None:
    """BOOT-3.7: SRV and A queries over DoH; the race wins through the SRV target."""
    async with doh_network() as (client, alive, dns_server, doh):
        now = time.time()
        setup = BootstrapSetup(
            hardcoded=trusted(identity(10).public_key, now),
            dns_srv=DnsSrvSource(name=SRV_NAME, doh_url=doh.url),
            config=FAST,
        )
        result, _ = await run_bootstrap(client, setup, rng=random.Random(3))
        assert isinstance(result, RaceWon), result
        assert result.candidate.method is Method.DNS_SRV
        assert result.candidate.address == f"{alive.address[0]}:{alive.address[1]}"
        assert doh.counters.get_count(DohCounter.ANSWERS, DohMode.ANSWER) >= 2  # SRV, then A
        assert doh.counters.get_count(DohCounter.BAD_REQUESTS) == 0
        assert dns_server.counters.get_count(DnsCounter.QUERIES) >= 2  # the same server's data


@pytest.mark.parametrize(
    ("doh_mode", "dns_mode", "failure"),
    [
        (DohMode.FORBIDDEN, DnsMode.ANSWER, Failure.HTTP_ERROR),
        (DohMode.GARBAGE, DnsMode.ANSWER, Failure.DNS_BOGUS_ANSWER),
        (DohMode.ANSWER, DnsMode.REFUSED, Failure.DNS_SERVFAIL),
        (DohMode.ANSWER, DnsMode.SERVFAIL, Failure.DNS_SERVFAIL),
        (DohMode.ANSWER, DnsMode.NXDOMAIN, Failure.DNS_NXDOMAIN),
        (DohMode.ANSWER, DnsMode.SILENT, Failure.DNS_TIMEOUT),
    ],
)
async def test_bad_doh_answers_are_labelled(
    doh_mode: DohMode, dns_mode: DnsMode, failure: Failure
) -> None:
    """BOOT-3.6, BOOT-3.7: each refusal has its label; the race reports it and ends."""
    async with doh_network() as (client, _, dns_server, doh):
        doh.mode = doh_mode
        dns_server.set_mode(dns_mode)
        with pytest.raises(SourceError) as caught:
            await fetch_dns_srv(
                SRV_NAME,
                doh_url=doh.url,
                trusted_keys={identity(10).public_key},
                rng=random.Random(1),
                timeout=0.5,
            )
        assert caught.value.failure is failure
        setup = BootstrapSetup(dns_srv=DnsSrvSource(name=SRV_NAME, doh_url=doh.url), config=FAST)
        result, _ = await run_bootstrap(client, setup)
        assert isinstance(result, RaceFailed)
        assert [(f.method, f.failure) for f in result.failures] == [
            (Method.DNS_SRV, Failure.GENERIC_TIMEOUT if dns_mode is DnsMode.SILENT else failure)
        ]


async def test_untrusted_targets_over_doh_are_dropped_and_no_endpoint_is_refused() -> None:
    async with doh_network() as (_, _, _, doh):
        with pytest.raises(SourceError) as untrusted:
            await fetch_dns_srv(
                SRV_NAME, doh_url=doh.url, trusted_keys=set(), rng=random.Random(1), timeout=1.0
            )
        url = doh.url
    assert untrusted.value.failure is Failure.DNS_BOGUS_ANSWER
    with pytest.raises(SourceError) as nobody:
        await fetch_dns_srv(
            SRV_NAME, doh_url=url, trusted_keys=set(), rng=random.Random(1), timeout=1.0
        )
    assert nobody.value.failure is Failure.CONNECTION_REFUSED


async def test_the_endpoint_speaks_rfc_8484_get_and_post_and_refuses_the_rest() -> None:
    """RFC 8484 §4.1: GET with ?dns=base64url (no padding) and POST of the wire format."""
    async with doh_network() as (_, _, _, doh):
        wire = dns.message.make_query(SRV_NAME, "SRV").to_wire()
        text = base64.urlsafe_b64encode(wire).rstrip(b"=").decode()
        async with httpx2.AsyncClient() as http:
            got = await http.get(doh.url, params={"dns": text})
            posted = await http.post(doh.url, content=wire, headers={"content-type": DNS_MESSAGE})
            wrong_type = await http.post(doh.url, content=wire)
            empty = await http.get(doh.url)
    assert got.status_code == posted.status_code == 200
    assert got.headers["content-type"] == DNS_MESSAGE
    answers = [dns.message.from_wire(r.content).answer for r in (got, posted)]
    assert answers[0] == answers[1] and len(answers[0][0]) == 2
    assert wrong_type.status_code == empty.status_code == 400
    assert doh.counters.get_count(DohCounter.BAD_REQUESTS) == 2
