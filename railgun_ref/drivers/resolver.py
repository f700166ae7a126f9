"""A stub resolver that asks one DNS server, for `check_health(resolve=...)`.

`StubResolver(server)` is a `central_client.Resolver`: awaited with a host
name, it sends one A query over UDP (dnslib) to `server` and returns the
first IPv4 address of the answer, or raises the typed errors `check_health`
turns into HT-2.1 labels:

* NXDOMAIN, or an answer with no A record (NODATA) -> `DnsNxDomainError`
  (``dns_nxdomain``: for a client, a name without an address is as blocked as
  a name that does not exist);
* SERVFAIL, REFUSED or any other error code -> `DnsServFailError`
  (``dns_servfail``);
* no usable answer before the deadline -> `DnsTimeoutError` (``dns_timeout``).

A datagram that does not decode, is not a response, carries another query
id, or answers another question is ignored and counted (``mismatched``), as
stub resolvers do against spoofing: the wait goes on until the deadline.
Query ids come from an injected byte source (default `os.urandom`), so a
test can make them reproducible. Runs on any anyio backend.
"""

import os
from enum import StrEnum
from typing import Final

import anyio
from dnslib import QTYPE, RCODE, DNSRecord

from railgun_ref.core.counters import Counters
from railgun_ref.core.ids import Address
from railgun_ref.drivers.addresses import check_destination, family_of
from railgun_ref.drivers.central_client import (
    DnsNxDomainError,
    DnsServFailError,
    DnsTimeoutError,
)
from railgun_ref.drivers.dns_server import normalise_name
from railgun_ref.identity.keys import RandomBytes

#: Seconds to wait after a socket error before reading again (no busy loop).
_ERROR_PAUSE: Final = 0.05


class ResolverCounter(StrEnum):
    """What `StubResolver.counters` counts."""

    QUERIES = "queries"  #: names asked (one per call, whatever the attempts)
    SEND_ERRORS = "send_errors"
    RECEIVE_ERRORS = "receive_errors"  #: e.g. ICMP port unreachable
    MISMATCHED = "mismatched"  #: undecodable, not a response, or another id/question: ignored
    TIMEOUTS = "timeouts"  #: no usable answer before the deadline
    NXDOMAIN = "nxdomain"
    SERVFAIL = "servfail"  #: SERVFAIL, REFUSED or any other error code
    ANSWERS = "answers"  #: an A record returned
    NODATA = "nodata"  #: NOERROR without an A record


class StubResolver:
    """Resolve names with A queries to one DNS server (see the module docstring)."""

    def __init__(
        self,
        server: Address,
        *,
        timeout: float = 2.0,
        attempts: int = 1,
        random_bytes: RandomBytes = os.urandom,
    ) -> None:
        check_destination(server)
        if timeout <= 0 or attempts < 1:
            raise ValueError("timeout must be positive and attempts at least 1")
        self.server = server
        self.timeout = timeout  #: seconds for all attempts together
        self.attempts = attempts
        self._random_bytes = random_bytes
        self.counters: Counters[ResolverCounter] = Counters()

    async def __call__(self, name: str) -> str:
        wanted = normalise_name(name)
        per_attempt = self.timeout / self.attempts
        self.counters.inc(ResolverCounter.QUERIES)
        async with await anyio.create_connected_udp_socket(
            self.server[0], self.server[1], family=family_of(self.server[0])
        ) as sock:
            for _attempt in range(self.attempts):
                query = DNSRecord.question(wanted, "A")
                query.header.id = int.from_bytes(self._random_bytes(2), "big")
                try:
                    await sock.send(query.pack())
                except OSError:
                    self.counters.inc(ResolverCounter.SEND_ERRORS)
                    continue
                reply: DNSRecord | None = None
                with anyio.move_on_after(per_attempt):
                    reply = await self._matching_reply(sock, query.header.id, wanted)
                if reply is not None:
                    return self._address_from(reply, name)
        self.counters.inc(ResolverCounter.TIMEOUTS)
        raise DnsTimeoutError(f"no answer from {self.server[0]}:{self.server[1]} for {name}")

    async def _matching_reply(
        self, sock: anyio.abc.ConnectedUDPSocket, query_id: int, wanted: str
    ) -> DNSRecord:
        while True:
            try:
                data = await sock.receive()
            except (anyio.BrokenResourceError, OSError):
                # ICMP port unreachable: nobody listens there; keep waiting like a timeout
                self.counters.inc(ResolverCounter.RECEIVE_ERRORS)
                await anyio.sleep(_ERROR_PAUSE)
                continue
            try:
                reply = DNSRecord.parse(data)
            except Exception:  # dnslib raises several types on hostile input
                self.counters.inc(ResolverCounter.MISMATCHED)
                continue
            if (
                reply.header.qr != 1
                or reply.header.id != query_id
                or len(reply.questions) != 1
                or normalise_name(str(reply.q.qname)) != wanted
            ):
                self.counters.inc(ResolverCounter.MISMATCHED)
                continue
            return reply

    def _address_from(self, reply: DNSRecord, name: str) -> str:
        rcode = reply.header.rcode
        if rcode == RCODE.NXDOMAIN:
            self.counters.inc(ResolverCounter.NXDOMAIN)
            raise DnsNxDomainError(f"{name}: NXDOMAIN")
        if rcode != RCODE.NOERROR:
            self.counters.inc(ResolverCounter.SERVFAIL)
            raise DnsServFailError(f"{name}: {RCODE.get(rcode)}")
        for record in reply.rr:
            if record.rtype == QTYPE.A:
                self.counters.inc(ResolverCounter.ANSWERS)
                return str(record.rdata)
        self.counters.inc(ResolverCounter.NODATA)
        raise DnsNxDomainError(f"{name}: no A record (NODATA)")
