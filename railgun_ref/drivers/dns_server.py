"""A controllable DNS server (loopback by default) for the DNS-blocking scenario.

The scenario needs a resolver the experiment owns: clients resolve the
central service's name through it, and the experiment makes it start lying
or going quiet, the way a censoring resolver does. `DnsServer` answers A
queries for the names registered with `register` (and SRV queries for those
given to `register_srv`), over UDP, and its
behaviour is switched at run time, globally or per name:

* ``answer``   -- the registered A record (NXDOMAIN for a name it does not know);
* ``nxdomain`` -- "no such name", whatever is registered (a DNS block);
* ``servfail`` -- the resolver reports a failure;
* ``refused``  -- the resolver refuses to answer;
* ``silent``   -- the query is dropped: the client times out.

A per-name mode wins over the global one, so "block only the central
service's name" and "the whole resolver is down" are both one call.

Packets are encoded and decoded with dnslib; `DnsServer.handle` is the whole
protocol logic, bytes in and bytes (or nothing) out, so it is tested without
sockets. What a real resolver expects of an authoritative server, checked
against independent clients (dnspython, dig):

* the server does not validate DNSSEC, so the AD bit of a query is never
  copied into the reply (RFC 4035 §3.2.3, RFC 6840 §5.8);
* a query with an EDNS(0) OPT record gets one back (RFC 6891 §7), with the
  DO bit copied (RFC 3225) and a payload size of `EDNS_PAYLOAD`; an EDNS
  version other than 0 gets BADVERS (RFC 6891 §6.1.3);
* a negative answer (NXDOMAIN, or NODATA for a known name) carries the SOA
  of the zone `zone` in its authority section, so it can be cached for the
  SOA's minimum TTL (RFC 2308 §3);
* it serves TCP on the same port as UDP (RFC 7766, RFC 1035 §4.2.2: each
  message prefixed by its 2-byte length), and a UDP reply larger than the
  client can take (512 bytes, or its EDNS payload size) is sent truncated
  with TC set, so the client retries over TCP.

Anything that is not a well-formed query -- garbage, a truncated header, a
*response* sent to us, a query without a question -- is counted under
``malformed`` and dropped; the server never crashes on input.

Counters (`counters`, named by `DnsCounter`): ``queries``, ``answers``
labelled by the `DnsMode` that produced the reply (``answers.silent`` counts
the dropped ones), ``malformed``, ``truncated``, ``tcp_queries``,
``send_errors``, ``receive_errors``.
"""

import errno
from enum import Enum, StrEnum
from typing import Final

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from anyio.streams.buffered import BufferedByteReceiveStream
from dnslib import EDNS0, QTYPE, RCODE, RR, SOA, SRV, A, DNSRecord

from railgun_ref.core.counters import Counters
from railgun_ref.core.ids import Address
from railgun_ref.drivers.addresses import (
    check_bind_host,
    check_destination_host,
    family_of,
    parse_ip,
)
from railgun_ref.drivers.udp_receive import udp_datagrams

#: TTL of the A records served, seconds (short: scenarios flip answers at run time).
ANSWER_TTL: Final = 5
#: Bytes asked of the socket per datagram (DNS over UDP without EDNS fits in 512).
_MAX_DATAGRAM: Final = 65535
#: The largest UDP reply to a client without EDNS (RFC 1035 §2.3.4).
PLAIN_UDP_PAYLOAD: Final = 512
#: The UDP payload size the server announces and the most it sends (DNS flag day 2020).
EDNS_PAYLOAD: Final = 1232
#: Negative answers may be cached this long: the SOA's MINIMUM and TTL (RFC 2308 §5), s.
NEGATIVE_TTL: Final = 5
#: A TCP connection idle this long is closed (RFC 7766 §6.2.3 suggests seconds), s.
TCP_IDLE_TIMEOUT: Final = 10.0
# tries for a port free on both UDP and TCP when the kernel picks it
BIND_ATTEMPTS: Final = 20
#: EDNS extended RCODE BADVERS (RFC 6891 §6.1.3): 16, of which the OPT carries 16 >> 4.
_BADVERS_HIGH: Final = 1


class DnsMode(Enum):
    """How the server treats a query (see the module docstring)."""

    ANSWER = "answer"
    NXDOMAIN = "nxdomain"
    SERVFAIL = "servfail"
    REFUSED = "refused"
    SILENT = "silent"


class DnsCounter(StrEnum):
    """What `DnsServer.counters` counts."""

    QUERIES = "queries"  #: well-formed queries
    ANSWERS = "answers"  #: label: the `DnsMode` that produced the reply (or the silence)
    MALFORMED = "malformed"  #: not a query with one question: dropped
    TRUNCATED = "truncated"  #: UDP replies sent with TC set (too large for the client)
    TCP_QUERIES = "tcp_queries"  #: queries that came over TCP
    SEND_ERRORS = "send_errors"
    RECEIVE_ERRORS = "receive_errors"


_RCODES: Final = {
    DnsMode.NXDOMAIN: RCODE.NXDOMAIN,
    DnsMode.SERVFAIL: RCODE.SERVFAIL,
    DnsMode.REFUSED: RCODE.REFUSED,
}


def normalise_name(name: str) -> str:
    """Lower case, no trailing dot: the form names are registered and matched in."""
    return name.rstrip(".").lower()


class DnsServer:
    """A UDP DNS server. Run it with ``await tg.start(server.run)``.

    `address` is known once `run` has reported itself started.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        zone: str = "test",
        allow_public: bool = False,
    ) -> None:
        check_bind_host(host, allow_public=allow_public)
        self.zone = normalise_name(zone)  #: the zone whose SOA negative answers carry
        if not 0 <= port <= 0xFFFF:
            raise ValueError(f"port must be 0..65535, got {port}")
        self._host = host
        self._port = port
        self._address: Address | None = None
        self._records: dict[str, str] = {}
        self._srv: dict[str, list[tuple[int, int, int, str]]] = {}
        self._name_modes: dict[str, DnsMode] = {}
        self.mode = DnsMode.ANSWER  #: the global mode, for names without their own
        #: Seconds every answer is held before it is sent (an emulated round trip; 0: none).
        self.answer_delay = 0.0
        self.counters: Counters[DnsCounter] = Counters()

    # ------------------------------------------------------------ control

    @property
    def address(self) -> Address:
        if self._address is None:
            raise RuntimeError("the DNS server is not bound yet: start run() first")
        return self._address

    def register(self, name: str, ipv4: str) -> None:
        """Answer A queries for `name` with `ipv4` (an IPv4 literal) in ``answer`` mode."""
        if parse_ip(ipv4).version != 4:
            raise ValueError(f"{ipv4} is not an IPv4 address (A records only)")
        check_destination_host(ipv4)  # a test harness answers only with its own hosts
        self._records[normalise_name(name)] = ipv4

    def unregister(self, name: str) -> None:
        self._records.pop(normalise_name(name), None)
        self._srv.pop(normalise_name(name), None)

    def register_srv(self, name: str, records: list[tuple[int, int, int, str]]) -> None:
        """Answer SRV queries for `name` with (priority, weight, port, target) records (RFC 2782).

        Targets are served as given, garbage included: bootstrap tests need a
        server that hands out bad targets.
        """
        self._srv[normalise_name(name)] = list(records)

    def set_mode(self, mode: DnsMode, *, name: str | None = None) -> None:
        """Switch the global mode, or (with `name`) the mode of that one name."""
        if name is None:
            self.mode = mode
        else:
            self._name_modes[normalise_name(name)] = mode

    def clear_mode(self, name: str) -> None:
        """Make `name` follow the global mode again."""
        self._name_modes.pop(normalise_name(name), None)

    def mode_for(self, name: str) -> DnsMode:
        return self._name_modes.get(normalise_name(name), self.mode)

    # ------------------------------------------------------------ protocol

    def handle(self, data: bytes, *, tcp: bool = False) -> bytes | None:
        """One query in (a UDP datagram, or a TCP message without its length prefix); the
        reply to send, or None (dropped: silent or malformed)."""
        try:
            query = DNSRecord.parse(data)
        except Exception:  # dnslib raises several types on hostile input; all mean "malformed"
            self.counters.inc(DnsCounter.MALFORMED)
            return None
        if query.header.qr != 0 or len(query.questions) != 1:
            self.counters.inc(DnsCounter.MALFORMED)
            return None
        self.counters.inc(DnsCounter.QUERIES)
        question = query.q
        name = normalise_name(str(question.qname))
        mode = self.mode_for(name)
        self.counters.inc(DnsCounter.ANSWERS, label=mode)
        if mode is DnsMode.SILENT:
            return None
        if tcp:
            self.counters.inc(DnsCounter.TCP_QUERIES)
        reply = query.reply()  # copies id, question and flags (RD, CD, AD); sets QR, AA, RA
        reply.header.ad = 0  # we validate nothing (RFC 6840 §5.8)
        reply.header.tc = 0
        opt = next((rr for rr in query.ar if rr.rtype == QTYPE.OPT), None)
        if opt is not None and (opt.ttl >> 16) & 0xFF != 0:
            reply.add_ar(EDNS0(udp_len=EDNS_PAYLOAD, ext_rcode=_BADVERS_HIGH))
            return self._packed(reply, tcp=True)  # no answer data: always small
        if mode is not DnsMode.ANSWER:
            reply.header.rcode = _RCODES[mode]
            if mode is DnsMode.NXDOMAIN:
                self._add_soa(reply, name)
        else:
            self._answer(reply, name, question.qtype)
        if opt is not None:
            reply.add_ar(EDNS0(udp_len=EDNS_PAYLOAD, flags="do" if opt.ttl & 0x8000 else ""))
        limit = min(opt.rclass, EDNS_PAYLOAD) if opt is not None else PLAIN_UDP_PAYLOAD
        return self._packed(reply, tcp=tcp, limit=max(limit, PLAIN_UDP_PAYLOAD))

    def _answer(self, reply: DNSRecord, name: str, qtype: int) -> None:
        """The answer section in ``answer`` mode, or a negative answer with the SOA."""
        if qtype == QTYPE.SRV and name in self._srv:
            for priority, weight, port, target in self._srv[name]:
                rdata = SRV(priority=priority, weight=weight, port=port, target=target)
                reply.add_answer(RR(name, QTYPE.SRV, rdata=rdata, ttl=ANSWER_TTL))
            return
        if qtype == QTYPE.A and name in self._records:
            reply.add_answer(RR(name, QTYPE.A, rdata=A(self._records[name]), ttl=ANSWER_TTL))
            return
        if name not in self._records and name not in self._srv:
            reply.header.rcode = RCODE.NXDOMAIN
        # Otherwise another type for a known name: NOERROR with no answer (NODATA).
        self._add_soa(reply, name)

    def _add_soa(self, reply: DNSRecord, name: str) -> None:
        """RFC 2308 §3: a negative answer for a name in our zone carries the zone's SOA,
        its TTL and MINIMUM the negative-caching time."""
        if name != self.zone and not name.endswith("." + self.zone):
            return
        zone = self.zone + "."
        rdata = SOA(
            mname="ns." + zone,
            rname="hostmaster." + zone,
            times=(1, 3600, 600, 86400, NEGATIVE_TTL),
        )
        reply.add_auth(RR(zone, QTYPE.SOA, rdata=rdata, ttl=NEGATIVE_TTL))

    def _packed(self, reply: DNSRecord, *, tcp: bool, limit: int = PLAIN_UDP_PAYLOAD) -> bytes:
        """The reply's bytes; over UDP, cut to the header, question and OPT with TC set
        when longer than `limit` (RFC 2181 §9, RFC 7766 §5)."""
        packed = bytes(reply.pack())  # dnslib packs into a bytearray
        if tcp or len(packed) <= limit:
            return packed
        self.counters.inc(DnsCounter.TRUNCATED)
        reply.rr, reply.auth = [], []
        reply.header.tc = 1
        return bytes(reply.pack())

    # ------------------------------------------------------------ IO

    def _count_receive_error(self) -> None:
        # e.g. an ICMP port-unreachable from a client that went away
        self.counters.inc(DnsCounter.RECEIVE_ERRORS)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus["DnsServer"] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Bind, report `self` through `task_status`, serve until cancelled."""
        if self._address is not None:
            raise RuntimeError("a DnsServer runs only once; make a new one")
        sock, listener = await self._bind_pair()
        async with sock, anyio.create_task_group() as tg:
            local = sock.extra(SocketAttribute.local_address)
            assert isinstance(local, tuple)
            self._address = (str(local[0]), int(local[1]))
            async with listener:
                tg.start_soon(listener.serve, self._serve_tcp)
                task_status.started(self)
                await self._serve_udp(sock, tg)
                tg.cancel_scope.cancel()

    async def _bind_pair(
        self,
    ) -> tuple[anyio.abc.UDPSocket, anyio.abc.Listener[anyio.abc.SocketStream]]:
        """A UDP socket and a TCP listener on the same port. With port 0 the kernel picks
        the UDP port, and another process may hold that number on TCP: pick again
        (up to BIND_ATTEMPTS times) instead of failing."""
        family = family_of(self._host)
        for attempt in range(BIND_ATTEMPTS):
            sock = await anyio.create_udp_socket(
                family=family, local_host=self._host, local_port=self._port
            )
            local = sock.extra(SocketAttribute.local_address)
            assert isinstance(local, tuple)
            try:
                listener = await anyio.create_tcp_listener(
                    local_host=self._host, local_port=int(local[1]), family=family
                )
            except OSError as exc:
                await sock.aclose()
                if self._port != 0 or exc.errno != errno.EADDRINUSE or attempt + 1 == BIND_ATTEMPTS:
                    raise
                continue
            return sock, listener
        raise AssertionError("unreachable: the last attempt raises")

    async def _serve_tcp(self, stream: anyio.abc.SocketStream) -> None:
        """RFC 7766: length-prefixed queries, answered in order, until EOF or idleness."""
        async with stream:
            buffered = BufferedByteReceiveStream(stream)
            try:
                while True:
                    with anyio.fail_after(TCP_IDLE_TIMEOUT):
                        size = int.from_bytes(await buffered.receive_exactly(2), "big")
                        data = await buffered.receive_exactly(size)
                    reply = self.handle(data, tcp=True)
                    if reply is not None:
                        if self.answer_delay > 0:
                            await anyio.sleep(self.answer_delay)
                        await stream.send(len(reply).to_bytes(2, "big") + reply)
            except (TimeoutError, anyio.EndOfStream, anyio.IncompleteRead, OSError):
                return
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.counters.inc(DnsCounter.SEND_ERRORS)

    async def _serve_udp(self, sock: anyio.abc.UDPSocket, tg: anyio.abc.TaskGroup) -> None:
        async for data, (host, port) in udp_datagrams(sock, on_error=self._count_receive_error):
            reply = self.handle(data)
            if reply is None:
                continue
            if self.answer_delay > 0:
                tg.start_soon(self._send, sock, reply, (host, port), self.answer_delay)
            else:
                await self._send(sock, reply, (host, port))

    async def _send(
        self, sock: anyio.abc.UDPSocket, reply: bytes, to: Address, delay: float = 0.0
    ) -> None:
        if delay:
            await anyio.sleep(delay)
        try:
            check_destination_host(to[0])
            await sock.sendto(reply, to[0], to[1])
        except (ValueError, OSError, anyio.BrokenResourceError):
            self.counters.inc(DnsCounter.SEND_ERRORS)
