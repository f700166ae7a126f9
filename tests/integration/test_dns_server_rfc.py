"""The scenario DNS server against an independent client (dnspython), for what resolvers
expect of an authoritative server: no AD bit it did not earn (RFC 6840 §5.8), EDNS(0)
answered in kind (RFC 6891), SOA in negative answers (RFC 2308) and TCP (RFC 7766)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from railgun_ref.drivers.dns_server import (
    EDNS_PAYLOAD,
    NEGATIVE_TTL,
    DnsCounter,
    DnsMode,
    DnsServer,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(60)]

NAME = "central.railgun.test"
SRV_NAME = "_railgun._udp.railgun.test"
#: Enough SRV records that the answer exceeds 512 bytes (but not 1232).
MANY_TARGETS = [(10, 5, 7000 + i, f"node-{i:02d}.railgun.test.") for i in range(20)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def dns_server() -> AsyncIterator[DnsServer]:
    async with anyio.create_task_group() as tg:
        server: DnsServer = await tg.start(DnsServer().run)
        server.register(NAME, "127.0.0.1")
        server.register_srv(SRV_NAME, MANY_TARGETS)
        yield server
        tg.cancel_scope.cancel()


async def ask_udp(server: DnsServer, query: dns.message.Message) -> dns.message.Message:
    host, port = server.address
    return await anyio.to_thread.run_sync(
        lambda: dns.query.udp(query, host, port=port, timeout=5, ignore_trailing=False)
    )


async def ask_tcp(server: DnsServer, query: dns.message.Message) -> dns.message.Message:
    host, port = server.address
    return await anyio.to_thread.run_sync(lambda: dns.query.tcp(query, host, port=port, timeout=5))


async def test_ad_bit_is_not_copied() -> None:
    """RFC 6840 §5.8: a server that validates nothing answers a query with AD set without AD."""
    async with dns_server() as server:
        query = dns.message.make_query(NAME, "A")
        query.flags |= dns.flags.AD | dns.flags.CD
        reply = await ask_udp(server, query)
    assert not reply.flags & dns.flags.AD
    assert reply.flags & dns.flags.CD  # CD is copied (RFC 4035 §3.1.6)
    assert [rr.address for rr in reply.answer[0]] == ["127.0.0.1"]


async def test_edns_query_gets_an_opt_record_back() -> None:
    """RFC 6891 §7, RFC 3225: an EDNS(0) query gets OPT with our payload size and DO copied;
    a query without EDNS gets none; EDNS version 1 gets BADVERS."""
    async with dns_server() as server:
        with_do = dns.message.make_query(NAME, "A", use_edns=0, want_dnssec=True, payload=4096)
        reply = await ask_udp(server, with_do)
        plain = await ask_udp(server, dns.message.make_query(NAME, "A"))
        future = await ask_udp(server, dns.message.make_query(NAME, "A", use_edns=1))
    assert reply.edns == 0 and reply.payload == EDNS_PAYLOAD
    assert reply.ednsflags & dns.flags.DO
    assert plain.edns == -1
    assert future.rcode() == dns.rcode.BADVERS and not future.answer


@pytest.mark.parametrize(
    ("name", "qtype", "rcode"),
    [("nowhere.railgun.test", "A", dns.rcode.NXDOMAIN), (NAME, "AAAA", dns.rcode.NOERROR)],
    ids=["nxdomain", "nodata"],
)
async def test_negative_answers_carry_the_zone_soa(name: str, qtype: str, rcode: int) -> None:
    """RFC 2308 §3: NXDOMAIN and NODATA carry the zone's SOA, TTL = MINIMUM, so a resolver
    caches the negative answer for NEGATIVE_TTL seconds -- also while the name is blocked."""
    async with dns_server() as server:
        reply = await ask_udp(server, dns.message.make_query(name, qtype))
        server.set_mode(DnsMode.NXDOMAIN, name=NAME)
        blocked = await ask_udp(server, dns.message.make_query(NAME, "A"))
    for answer, code in ((reply, rcode), (blocked, dns.rcode.NXDOMAIN)):
        assert answer.rcode() == code and not answer.answer
        (soa_set,) = answer.authority
        assert soa_set.rdtype == dns.rdatatype.SOA and soa_set.name.to_text() == "test."
        assert soa_set.ttl == NEGATIVE_TTL and soa_set[0].minimum == NEGATIVE_TTL


async def test_tcp_and_truncation() -> None:
    """RFC 7766, RFC 1035 §4.2.2: a large answer over plain UDP comes back with TC and no
    records; over TCP (several queries on one connection) it comes back whole; dnspython's
    UDP-with-fallback gets it whole; an EDNS client with room gets it over UDP."""
    async with dns_server() as server:
        query = dns.message.make_query(SRV_NAME, "SRV")
        cut = await ask_udp(server, query)
        whole = await ask_tcp(server, query)
        host, port = server.address

        def fallback() -> tuple[dns.message.Message, bool]:
            return dns.query.udp_with_fallback(query, host, port=port, timeout=5)

        again, used_tcp = await anyio.to_thread.run_sync(fallback)
        roomy = await ask_udp(server, dns.message.make_query(SRV_NAME, "SRV", use_edns=0))
        counters = server.counters
    assert cut.flags & dns.flags.TC and not cut.answer
    assert len(whole.answer[0]) == len(MANY_TARGETS) and not whole.flags & dns.flags.TC
    assert used_tcp and len(again.answer[0]) == len(MANY_TARGETS)
    assert len(roomy.answer[0]) == len(MANY_TARGETS) and not roomy.flags & dns.flags.TC
    assert counters.get_count(DnsCounter.TRUNCATED) == 2
    assert counters.get_count(DnsCounter.TCP_QUERIES) == 2
