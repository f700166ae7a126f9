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
sockets. Anything that is not a well-formed query -- garbage, a truncated
header, a *response* sent to us, a query without a question -- is counted
under ``malformed`` and dropped; the server never crashes on input.

Counters (`counters`, named by `DnsCounter`): ``queries``, ``answers``
labelled by the `DnsMode` that produced the reply (``answers.silent`` counts
the dropped ones), ``malformed``, ``send_errors``, ``receive_errors``.
"""

from enum import Enum, StrEnum
from typing import Final

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from dnslib import QTYPE, RCODE, RR, SRV, A, DNSRecord

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
        self, *, host: str = "127.0.0.1", port: int = 0, allow_public: bool = False
    ) -> None:
        check_bind_host(host, allow_public=allow_public)
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

    def handle(self, data: bytes) -> bytes | None:
        """One datagram in; the reply to send, or None (dropped: silent or malformed)."""
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
        reply = query.reply()  # copies id and question, sets QR, AA and RD/RA
        if mode is not DnsMode.ANSWER:
            reply.header.rcode = _RCODES[mode]
        elif question.qtype == QTYPE.SRV and name in self._srv:
            for priority, weight, port, target in self._srv[name]:
                rdata = SRV(priority=priority, weight=weight, port=port, target=target)
                reply.add_answer(RR(name, QTYPE.SRV, rdata=rdata, ttl=ANSWER_TTL))
        elif name not in self._records and name not in self._srv:
            reply.header.rcode = RCODE.NXDOMAIN
        elif question.qtype == QTYPE.A and name in self._records:
            reply.add_answer(
                RR(name, QTYPE.A, rdata=A(self._records[name]), ttl=ANSWER_TTL),
            )
        # Another type for a known name: NOERROR with no answer (NODATA).
        packed: bytes = reply.pack()
        return packed

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
        sock = await anyio.create_udp_socket(
            family=family_of(self._host), local_host=self._host, local_port=self._port
        )
        async with sock, anyio.create_task_group() as tg:
            local = sock.extra(SocketAttribute.local_address)
            assert isinstance(local, tuple)
            self._address = (str(local[0]), int(local[1]))
            task_status.started(self)
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
