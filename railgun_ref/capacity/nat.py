"""NAT type detection by RFC 5780 behaviour discovery, sans-IO.

`NatClassifier` runs the mapping (RFC 5780 §4.3) and filtering (§4.4) tests
against a STUN server that has a primary and an alternate address (two IPs,
two ports), from one local socket. It never touches a socket or a clock; it
is a protocol core like any other (CORE-1): the driver calls `start(now=)`,
pulls actions with `next_action()` (`SendRequest`: send these bytes; and
last, `NatDetected`: the conclusion, also kept in `result`), feeds every
datagram that arrives on the socket to `receive_datagram(..., now=)`, and
calls `on_timer(now=)` at `next_deadline()`.

The tests, in the order run (A = primary, B = alternate IP, a = primary port,
b = alternate port; the server is at Aa, its OTHER-ADDRESS is Bb):

==============  =========  ==================  ==============  ============================
state           sent to    CHANGE-REQUEST      answer from     what it tells
==============  =========  ==================  ==============  ============================
TEST_I          Aa         --                  Aa              mapped address; no NAT if
                                                               it equals the local address
FILTERING_II    Aa         change IP and port  Bb              answered: endpoint-indep.
FILTERING_III   Aa         change port         Ab              answered: address-dependent,
                                                               else address-and-port-dep.
MAPPING_II      Ba         --                  Ba              same mapping as I: endpoint-
                                                               independent mapping
MAPPING_III     Bb         --                  Bb              same as II: address-dep.,
                                                               else address-and-port-dep.
==============  =========  ==================  ==============  ============================

The filtering tests run *before* the mapping tests on purpose: the mapping
tests send to B, which opens an address-dependent filter for B, after which
the "change IP" answer of FILTERING_II would pass any filter. Filtering tests
whose answer is decisive skip the rest (FILTERING_II answered => no
FILTERING_III; MAPPING_II same => no MAPPING_III); mapping tests are skipped
when there is no NAT. Silence is an answer in the filtering tests, so each
request is retransmitted only `max_transmissions` times (RFC 8489's 7 would
take 39.5 s per silent test).

A response counts only if it matches the outstanding transaction id, comes
from the expected server address (a server that ignores CHANGE-REQUEST
answers from the wrong one and the test is inconclusive, not a pass), is a
success response without unknown comprehension-required attributes
(RFC 8489 §6.3.3) and carries a mapped address.

Classic names from RFC 5780 behaviours (`classify`):

=====================  ===========================  ==================
mapping                filtering                    `NatType`
=====================  ===========================  ==================
(no answer to test I)  --                           ``udp-blocked``
no NAT                 endpoint-independent         ``open``
no NAT                 address-dependent            ``restricted`` [*]
no NAT                 address-and-port-dependent   ``port-restricted`` [*]
endpoint-independent   endpoint-independent         ``full-cone``
endpoint-independent   address-dependent            ``restricted``
endpoint-independent   address-and-port-dependent   ``port-restricted``
address-dependent      any                          ``symmetric``
address-and-port-dep.  any                          ``symmetric``
anything inconclusive                               ``unknown``
=====================  ===========================  ==================

[*] A public address behind a stateful firewall (RFC 3489's "symmetric UDP
firewall") is reachable exactly like the cone NAT with the same filtering, so
it gets that name: ``open`` means unsolicited datagrams from anywhere arrive.
"""

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Final

from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import Address
from railgun_ref.stun.codec import (
    ChangeRequest,
    MessageClass,
    OtherAddress,
    Software,
    StunMessage,
    binding_request,
    decode_message,
    encode_message,
    new_transaction_id,
)


class NatType(StrEnum):
    """The classic (RFC 3489-style) NAT names, derived from RFC 5780 behaviours (see above).

    The values are the capability advertisement's strings (CAP-1.2), plus
    ``udp-blocked``, which a node advertises as ``unknown`` (`advertised_nat_type`).
    """

    OPEN = "open"  #: no NAT, nothing filters: the mapped address is the local address
    FULL_CONE = "full-cone"  #: endpoint-independent mapping and filtering
    RESTRICTED = "restricted"  #: endpoint-independent mapping, address-dependent filtering
    PORT_RESTRICTED = "port-restricted"  #: EIM, address-and-port-dependent filtering
    SYMMETRIC = "symmetric"  #: address(-and-port)-dependent mapping
    UNKNOWN = "unknown"  #: the tests could not decide (e.g. the server has no alternate)
    UDP_BLOCKED = "udp-blocked"  #: the server never answered the first Binding request


class NatBehaviour(StrEnum):
    """RFC 4787 §4.1 / §5 mapping and filtering behaviours, as RFC 5780 names them."""

    ENDPOINT_INDEPENDENT = "endpoint-independent"
    ADDRESS_DEPENDENT = "address-dependent"
    ADDRESS_AND_PORT_DEPENDENT = "address-and-port-dependent"


def classify(
    *,
    reachable: bool,
    behind_nat: bool | None,
    mapping: NatBehaviour | None,
    filtering: NatBehaviour | None,
) -> NatType:
    """The classic name of measured behaviours (the table in the module docstring).

    `reachable`: the first Binding request was answered at all. `behind_nat`:
    the mapped address differs from the local one (None: not known). `mapping` /
    `filtering`: None when the test was inconclusive. A mapping that is not
    endpoint-independent is ``symmetric`` whatever the filtering.
    """
    if not reachable:
        return NatType.UDP_BLOCKED
    if behind_nat is None:
        return NatType.UNKNOWN
    if behind_nat and mapping is not None and mapping is not NatBehaviour.ENDPOINT_INDEPENDENT:
        return NatType.SYMMETRIC
    if filtering is None or (behind_nat and mapping is None):
        return NatType.UNKNOWN
    if filtering is NatBehaviour.ENDPOINT_INDEPENDENT:
        return NatType.FULL_CONE if behind_nat else NatType.OPEN
    if filtering is NatBehaviour.ADDRESS_DEPENDENT:
        return NatType.RESTRICTED
    return NatType.PORT_RESTRICTED


def advertised_nat_type(nat_type: NatType) -> NatType:
    """What a node advertises in its capabilities: ``udp-blocked`` becomes ``unknown``."""
    return NatType.UNKNOWN if nat_type is NatType.UDP_BLOCKED else nat_type


@dataclass(frozen=True, slots=True, kw_only=True)
class NatDetection:
    """The outcome of a classifier run."""

    nat_type: NatType
    mapping: NatBehaviour | None  #: None when inconclusive or not measured
    filtering: NatBehaviour | None  #: None when inconclusive or not measured
    behind_nat: bool | None  #: None when test I got no usable answer
    local_address: Address
    mapped_address: Address | None  #: the reflexive address test I saw
    alternate_address: Address | None  #: the server's alternate address used (OTHER-ADDRESS)
    requests_sent: int  #: datagrams sent, retransmissions included
    duration: float  #: seconds from `start` to the conclusion


@dataclass(frozen=True, slots=True, kw_only=True)
class NatDetectionConfig:
    """Timers of the classifier. Times in seconds."""

    rto: float = 0.5  #: first retransmission timeout (RFC 8489 §6.2.1's RTO)
    #: Requests sent per test; each wait doubles, so silence costs rto * (2**n - 1).
    max_transmissions: int = 3
    software: str | None = None  #: SOFTWARE to put in requests, if any

    def __post_init__(self) -> None:
        if not self.rto > 0:
            raise LocalProtocolError("rto must be positive")
        if self.max_transmissions < 1:
            raise LocalProtocolError("max_transmissions must be at least 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class SendRequest:
    """Send `data` (a Binding request) from the local socket to `destination`."""

    data: bytes
    destination: Address


@dataclass(frozen=True, slots=True, kw_only=True)
class NatDetected:
    """The tests are over: `detection` is the conclusion (the classifier's last action)."""

    detection: NatDetection


#: Everything a `NatClassifier` asks its driver to do.
NatAction = SendRequest | NatDetected


class NatCounter(StrEnum):
    """What `NatClassifier.counters` counts."""

    TEST_TIMEOUTS = "nat.test_timeouts"  #: a test whose every transmission went unanswered
    REJECTED_MALFORMED = "nat.rejected_malformed"  #: not a STUN message
    IGNORED_STALE = "nat.ignored_stale"  #: no test waits for this transaction id
    IGNORED_NOT_RESPONSE = "nat.ignored_not_response"  #: a request or an indication
    WRONG_ORIGIN = "nat.wrong_origin"  #: answered from an unexpected address: inconclusive
    UNUSABLE_RESPONSE = "nat.unusable_response"  #: error, unknown attribute or no address
    UNUSABLE_OTHER_ADDRESS = "nat.unusable_other_address"  #: OTHER-ADDRESS not an alternate
    RESULT = "nat.result"  #: label: the `NatType` concluded


class ProbeState(Enum):
    IDLE = "idle"
    TEST_I = "test-i"
    FILTERING_II = "filtering-ii"
    FILTERING_III = "filtering-iii"
    MAPPING_II = "mapping-ii"
    MAPPING_III = "mapping-iii"
    DONE = "done"


class ProbeEvent(Enum):
    START = "start"
    RESPONSE = "response"  #: a usable success response (filtering tests, test I)
    SAME_MAPPING = "same-mapping"  #: mapping tests: the mapped address did not change
    NEW_MAPPING = "new-mapping"  #: mapping tests: the mapped address changed
    TIMEOUT = "timeout"  #: every transmission went unanswered
    ERROR = "error"  #: an error response, or an unusable one: the test is inconclusive
    SKIP = "skip"  #: the test does not apply (no alternate address, or no NAT)


S, E = ProbeState, ProbeEvent
#: The classifier's only transitions; anything else is a bug (LocalProtocolError).
TRANSITIONS: Final[dict[ProbeState, dict[ProbeEvent, ProbeState]]] = {
    S.IDLE: {E.START: S.TEST_I},
    S.TEST_I: {E.RESPONSE: S.FILTERING_II, E.TIMEOUT: S.DONE, E.ERROR: S.DONE},
    S.FILTERING_II: {
        E.RESPONSE: S.MAPPING_II,
        E.TIMEOUT: S.FILTERING_III,
        E.ERROR: S.MAPPING_II,
        E.SKIP: S.MAPPING_II,
    },
    S.FILTERING_III: {E.RESPONSE: S.MAPPING_II, E.TIMEOUT: S.MAPPING_II, E.ERROR: S.MAPPING_II},
    S.MAPPING_II: {
        E.SAME_MAPPING: S.DONE,
        E.NEW_MAPPING: S.MAPPING_III,
        E.TIMEOUT: S.DONE,
        E.ERROR: S.DONE,
        E.SKIP: S.DONE,
    },
    S.MAPPING_III: {
        E.SAME_MAPPING: S.DONE,
        E.NEW_MAPPING: S.DONE,
        E.TIMEOUT: S.DONE,
        E.ERROR: S.DONE,
    },
    S.DONE: {},
}
del S, E


@dataclass(frozen=True, slots=True)
class _Probe:
    """One outstanding test request, retransmitted until answered or out of tries."""

    transaction_id: bytes
    data: bytes
    destination: Address
    expected_origin: Address
    transmissions: int
    deadline: float


class NatClassifier:
    """RFC 5780 mapping + filtering discovery from one local address (module docstring).

    `primary` is the server address to query; `alternate`, if known, the
    address differing from it in both IP and port -- otherwise the
    OTHER-ADDRESS of the first response is used. `local` is the address the
    driver's socket is bound to (the "no NAT" test compares against it).
    `random_bytes` draws transaction ids (e.g. ``random.Random(seed).randbytes``).
    """

    def __init__(
        self,
        *,
        primary: Address,
        local: Address,
        random_bytes: Callable[[int], bytes],
        alternate: Address | None = None,
        config: NatDetectionConfig | None = None,
    ) -> None:
        if alternate is not None:
            _check_alternate(primary, alternate)
        self.primary = primary
        self.local = local
        self.config = config or NatDetectionConfig()
        self.counters: Counters[NatCounter] = Counters()
        self._random_bytes = random_bytes
        self._alternate = alternate
        self._state = ProbeState.IDLE
        self._probe: _Probe | None = None
        self._actions: deque[NatAction] = deque()
        self._started_at = 0.0
        self._requests_sent = 0
        self._reachable = False
        self._mapped_i: Address | None = None
        self._mapped_ii: Address | None = None
        self._behind_nat: bool | None = None
        self._mapping: NatBehaviour | None = None
        self._filtering: NatBehaviour | None = None
        self._result: NatDetection | None = None

    # ---------------------------------------------------------------- API

    @property
    def state(self) -> ProbeState:
        return self._state

    @property
    def done(self) -> bool:
        return self._state is ProbeState.DONE

    @property
    def result(self) -> NatDetection | None:
        """The conclusion, once `done`; None before."""
        return self._result

    def start(self, *, now: float) -> None:
        """Send the first Binding request (test I)."""
        self._started_at = now
        self._fire(ProbeEvent.START, now=now)

    def next_action(self) -> NatAction | None:
        """The oldest action not yet taken, or None (CORE-1.2)."""
        return self._actions.popleft() if self._actions else None

    def next_deadline(self) -> float | None:
        """When `on_timer` must run next (a retransmission or a test's timeout)."""
        return self._probe.deadline if self._probe is not None else None

    def on_timer(self, *, now: float) -> None:
        probe = self._probe
        if probe is None or now < probe.deadline:
            return
        if probe.transmissions < self.config.max_transmissions:
            self._transmit(probe.data, probe.destination)
            wait = self.config.rto * 2**probe.transmissions
            self._probe = _Probe(
                probe.transaction_id,
                probe.data,
                probe.destination,
                probe.expected_origin,
                probe.transmissions + 1,
                now + wait,
            )
            return
        self.counters.inc(NatCounter.TEST_TIMEOUTS)
        self._probe = None
        if self._state is ProbeState.FILTERING_III:
            self._filtering = NatBehaviour.ADDRESS_AND_PORT_DEPENDENT
        self._fire(ProbeEvent.TIMEOUT, now=now)

    def receive_datagram(self, data: bytes, src: Address, *, now: float) -> None:
        """Feed a datagram that arrived on the local socket. Never raises for its content."""
        probe = self._probe
        try:
            message = decode_message(data)
        except RemoteProtocolError:
            self.counters.inc(NatCounter.REJECTED_MALFORMED)
            return
        if probe is None or message.transaction_id != probe.transaction_id:
            self.counters.inc(NatCounter.IGNORED_STALE)  # a late answer to an earlier request
            return
        if message.message_class is MessageClass.REQUEST or (
            message.message_class is MessageClass.INDICATION
        ):
            self.counters.inc(NatCounter.IGNORED_NOT_RESPONSE)
            return
        if src != probe.expected_origin:
            # A server that ignored CHANGE-REQUEST, or something spoofing it: inconclusive.
            self.counters.inc(NatCounter.WRONG_ORIGIN)
            self._conclude_test(None, now=now)
            return
        mapped = message.mapped_address
        if (
            message.message_class is MessageClass.ERROR_RESPONSE
            or message.unknown_comprehension_required
            or mapped is None
        ):
            self.counters.inc(NatCounter.UNUSABLE_RESPONSE)
            self._conclude_test(None, now=now)
            return
        self._conclude_test((message, mapped), now=now)

    # ---------------------------------------------------------------- internals

    def _conclude_test(self, answer: tuple[StunMessage, Address] | None, *, now: float) -> None:
        """Record what the current test's answer (None: unusable) means, then move on."""
        self._probe = None
        state = self._state
        if state is ProbeState.TEST_I:
            self._reachable = True  # something answered, even if uselessly: UDP gets through
        if answer is None:
            self._fire(ProbeEvent.ERROR, now=now)
            return
        message, mapped = answer
        match state:
            case ProbeState.TEST_I:
                self._mapped_i = mapped
                self._behind_nat = mapped != self.local
                other = message.find(OtherAddress)
                if self._alternate is None and other is not None:
                    try:
                        _check_alternate(self.primary, other.address)
                    except LocalProtocolError:
                        self.counters.inc(NatCounter.UNUSABLE_OTHER_ADDRESS)
                    else:
                        self._alternate = other.address
                self._fire(ProbeEvent.RESPONSE, now=now)
            case ProbeState.FILTERING_II:
                self._filtering = NatBehaviour.ENDPOINT_INDEPENDENT
                self._fire(ProbeEvent.RESPONSE, now=now)
            case ProbeState.FILTERING_III:
                self._filtering = NatBehaviour.ADDRESS_DEPENDENT
                self._fire(ProbeEvent.RESPONSE, now=now)
            case ProbeState.MAPPING_II:
                if mapped == self._mapped_i:
                    self._mapping = NatBehaviour.ENDPOINT_INDEPENDENT
                    self._fire(ProbeEvent.SAME_MAPPING, now=now)
                else:
                    self._mapped_ii = mapped
                    self._fire(ProbeEvent.NEW_MAPPING, now=now)
            case ProbeState.MAPPING_III:
                if mapped == self._mapped_ii:
                    self._mapping = NatBehaviour.ADDRESS_DEPENDENT
                    self._fire(ProbeEvent.SAME_MAPPING, now=now)
                else:
                    self._mapping = NatBehaviour.ADDRESS_AND_PORT_DEPENDENT
                    self._fire(ProbeEvent.NEW_MAPPING, now=now)
            case ProbeState.IDLE | ProbeState.DONE:  # pragma: no cover - no probe in these
                raise LocalProtocolError(f"an answer in state {state.value}")

    def _fire(self, event: ProbeEvent, *, now: float) -> None:
        target = TRANSITIONS[self._state].get(event)
        if target is None:
            raise LocalProtocolError(f"event {event.value} in state {self._state.value}")
        self._state = target
        self._enter(now)

    def _enter(self, now: float) -> None:
        """Send the request of the state just entered, skip it, or conclude."""
        alternate = self._alternate
        primary = self.primary
        match self._state:
            case ProbeState.TEST_I:
                self._send_probe(primary, primary, ChangeRequest(), now=now)
            case ProbeState.FILTERING_II | ProbeState.FILTERING_III if alternate is None:
                self._fire(ProbeEvent.SKIP, now=now)
            case ProbeState.FILTERING_II:
                assert alternate is not None
                change = ChangeRequest(change_ip=True, change_port=True)
                self._send_probe(primary, alternate, change, now=now)
            case ProbeState.FILTERING_III:
                assert alternate is not None
                change = ChangeRequest(change_port=True)
                self._send_probe(primary, (primary[0], alternate[1]), change, now=now)
            case ProbeState.MAPPING_II | ProbeState.MAPPING_III if (
                alternate is None or not self._behind_nat
            ):
                if self._behind_nat is False:
                    # RFC 5780 §4.3: no NAT, so nothing maps; the mapping is trivially EIM.
                    self._mapping = NatBehaviour.ENDPOINT_INDEPENDENT
                self._fire(ProbeEvent.SKIP, now=now)
            case ProbeState.MAPPING_II:
                assert alternate is not None
                target = (alternate[0], primary[1])
                self._send_probe(target, target, None, now=now)
            case ProbeState.MAPPING_III:
                assert alternate is not None
                self._send_probe(alternate, alternate, None, now=now)
            case ProbeState.DONE:
                self._finish(now)
            case ProbeState.IDLE:  # pragma: no cover - nothing leads back to IDLE
                raise LocalProtocolError("re-entered IDLE")

    def _send_probe(
        self,
        destination: Address,
        expected_origin: Address,
        change: ChangeRequest | None,
        *,
        now: float,
    ) -> None:
        transaction_id = new_transaction_id(self._random_bytes)
        attributes: list[ChangeRequest | Software] = []
        if change is not None and (change.change_ip or change.change_port):
            attributes.append(change)
        if self.config.software is not None:
            attributes.append(Software(self.config.software))
        data = encode_message(binding_request(transaction_id, *attributes), fingerprint=True)
        self._transmit(data, destination)
        self._probe = _Probe(
            transaction_id, data, destination, expected_origin, 1, now + self.config.rto
        )

    def _transmit(self, data: bytes, destination: Address) -> None:
        self._requests_sent += 1
        self._actions.append(SendRequest(data=data, destination=destination))

    def _finish(self, now: float) -> None:
        nat_type = classify(
            reachable=self._reachable,
            behind_nat=self._behind_nat,
            mapping=self._mapping,
            filtering=self._filtering,
        )
        self._result = NatDetection(
            nat_type=nat_type,
            mapping=self._mapping,
            filtering=self._filtering,
            behind_nat=self._behind_nat,
            local_address=self.local,
            mapped_address=self._mapped_i,
            alternate_address=self._alternate,
            requests_sent=self._requests_sent,
            duration=now - self._started_at,
        )
        self.counters.inc(NatCounter.RESULT, label=nat_type)
        self._actions.append(NatDetected(detection=self._result))


def _check_alternate(primary: Address, alternate: Address) -> None:
    if alternate[0] == primary[0] or alternate[1] == primary[1]:
        raise LocalProtocolError(
            f"the alternate address {alternate} must differ from {primary} in IP and port"
        )
