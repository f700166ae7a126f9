"""The sans-IO RFC 5780 classifier, driven by scripted server answers (no network, no sim).

A script names, for each of the five tests, the mapped address the "server"
reports, or None for silence; the helper plays the server: it answers each
request from the address RFC 5780 says it must come from.
"""

import itertools
import random
from dataclasses import dataclass

import pytest

from railgun_ref.capacity.nat import (
    TRANSITIONS,
    NatBehaviour,
    NatClassifier,
    NatCounter,
    NatDetected,
    NatDetection,
    NatDetectionConfig,
    NatType,
    ProbeEvent,
    ProbeState,
    SendRequest,
    advertised_nat_type,
    classify,
)
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.stun.codec import (
    Attribute,
    ChangeRequest,
    Fingerprint,
    MappedAddress,
    MessageClass,
    OtherAddress,
    RawAttribute,
    StunMessage,
    XorMappedAddress,
    decode_message,
    encode_message,
    error_response,
    success_response,
)

PRIMARY = ("127.0.0.1", 3478)
ALTERNATE = ("127.0.0.2", 3479)
LOCAL = ("127.100.0.2", 5000)
PUBLIC = ("127.200.0.1", 20000)
PUBLIC_2 = ("127.200.0.1", 20001)
PUBLIC_3 = ("127.200.0.1", 20002)

EIM = NatBehaviour.ENDPOINT_INDEPENDENT
ADM = NatBehaviour.ADDRESS_DEPENDENT
APDM = NatBehaviour.ADDRESS_AND_PORT_DEPENDENT

#: (destination, change IP, change port) -> which RFC 5780 test the request is.
TESTS = {
    (PRIMARY, False, False): "I",
    (PRIMARY, True, True): "filtering-II",
    (PRIMARY, False, True): "filtering-III",
    ((ALTERNATE[0], PRIMARY[1]), False, False): "mapping-II",
    (ALTERNATE, False, False): "mapping-III",
}
#: Where RFC 5780 says each test's answer comes from.
ORIGIN = {
    "I": PRIMARY,
    "filtering-II": ALTERNATE,
    "filtering-III": (PRIMARY[0], ALTERNATE[1]),
    "mapping-II": (ALTERNATE[0], PRIMARY[1]),
    "mapping-III": ALTERNATE,
}


def sent(
    classifier: NatClassifier, detected: list[NatDetection] | None = None
) -> list[tuple[bytes, tuple[str, int]]]:
    """Pull every action: the requests to send, and the conclusion into `detected`."""
    out: list[tuple[bytes, tuple[str, int]]] = []
    while (action := classifier.next_action()) is not None:
        match action:
            case SendRequest(data=data, destination=destination):
                out.append((data, destination))
            case NatDetected(detection=detection):
                assert detected is not None, f"concluded unexpectedly: {detection}"
                detected.append(detection)
    return out


@dataclass
class Run:
    result: NatDetection
    tests: list[str]  #: every request sent, by test name, retransmissions included
    classifier: NatClassifier


def run(
    script: dict[str, tuple[str, int] | None],
    *,
    alternate: tuple[str, int] | None = None,
    other_address: tuple[str, int] | None = ALTERNATE,
    respond: "dict[str, StunMessage] | None" = None,
    config: NatDetectionConfig | None = None,
) -> Run:
    """Drive a classifier to its conclusion against a scripted server.

    `script[test]`: the mapped address to report, or None (never answer; also
    for tests missing from the script). `respond[test]`: a whole response to
    send instead. Each answer arrives 10 ms after its request.
    """
    classifier = NatClassifier(
        primary=PRIMARY,
        alternate=alternate,
        local=LOCAL,
        random_bytes=random.Random(7).randbytes,
        config=config,
    )
    now = 0.0
    classifier.start(now=now)
    tests: list[str] = []
    detected: list[NatDetection] = []
    for _ in range(100):
        if classifier.done:
            break
        out = sent(classifier, detected)
        if not out:
            deadline = classifier.next_deadline()
            assert deadline is not None and deadline > now
            now = deadline
            classifier.on_timer(now=now)
            continue
        for data, destination in out:
            request = decode_message(data)
            assert request.message_class is MessageClass.REQUEST
            assert request.find(Fingerprint) is not None
            change = request.find(ChangeRequest) or ChangeRequest()
            test = TESTS[(destination, change.change_ip, change.change_port)]
            tests.append(test)
            if respond is not None and test in respond:
                response = respond[test]
                response = StunMessage(
                    method=response.method,
                    message_class=response.message_class,
                    transaction_id=request.transaction_id,
                    attributes=response.attributes,
                )
            elif script.get(test) is not None:
                mapped = script[test]
                assert mapped is not None
                attributes: tuple[Attribute, ...] = (XorMappedAddress(mapped),)
                if other_address is not None:
                    attributes += (OtherAddress(other_address),)
                response = success_response(request, *attributes)
            else:
                continue
            now += 0.01
            classifier.receive_datagram(encode_message(response), ORIGIN[test], now=now)
    assert classifier.result is not None
    sent(classifier, detected)
    assert detected == [classifier.result]  # the conclusion is an action, once
    return Run(classifier.result, tests, classifier)


def nat_script(mapping: NatBehaviour, filtering: NatBehaviour) -> dict[str, tuple[str, int] | None]:
    """What a NAT with these behaviours lets the server see and lets back in."""
    return {
        "I": PUBLIC,
        "filtering-II": PUBLIC if filtering is EIM else None,
        "filtering-III": PUBLIC if filtering in (EIM, ADM) else None,
        "mapping-II": PUBLIC if mapping is EIM else PUBLIC_2,
        "mapping-III": {EIM: PUBLIC, ADM: PUBLIC_2, APDM: PUBLIC_3}[mapping],
    }


CLASSIC = {
    (EIM, EIM): NatType.FULL_CONE,
    (EIM, ADM): NatType.RESTRICTED,
    (EIM, APDM): NatType.PORT_RESTRICTED,
}


# ------------------------------------------------------------------ classification


@pytest.mark.parametrize(
    ("mapping", "filtering"),
    list(itertools.product(NatBehaviour, NatBehaviour)),
    ids=lambda b: b.value,
)
def test_every_behaviour_combination_behind_a_nat(
    mapping: NatBehaviour, filtering: NatBehaviour
) -> None:
    """CAP-6.3: RFC 5780 §4.3/§4.4: all nine (mapping, filtering) pairs are recovered exactly."""
    outcome = run(nat_script(mapping, filtering)).result
    assert (outcome.mapping, outcome.filtering) == (mapping, filtering)
    assert outcome.behind_nat is True
    assert outcome.mapped_address == PUBLIC
    assert outcome.local_address == LOCAL
    assert outcome.alternate_address == ALTERNATE
    assert outcome.nat_type is CLASSIC.get((mapping, filtering), NatType.SYMMETRIC)


@pytest.mark.parametrize(
    ("filtering", "expected"),
    [(EIM, NatType.OPEN), (ADM, NatType.RESTRICTED), (APDM, NatType.PORT_RESTRICTED)],
    ids=lambda v: v.value,
)
def test_no_nat(filtering: NatBehaviour, expected: NatType) -> None:
    """Mapped == local: no NAT, mapping tests skipped; a filtering firewall still shows."""
    script = {
        test: LOCAL if answered else None for test, answered in nat_script(EIM, filtering).items()
    }
    outcome = run(script)
    assert outcome.result.nat_type is expected
    assert outcome.result.behind_nat is False
    assert outcome.result.mapping is EIM
    assert outcome.result.filtering is filtering
    assert not any(test.startswith("mapping") for test in outcome.tests)


def test_request_sequences() -> None:
    """CAP-6.1: The tests run in the documented order; decisive answers skip the rest."""
    assert run(nat_script(EIM, EIM)).tests == ["I", "filtering-II", "mapping-II"]
    assert run(nat_script(EIM, ADM)).tests == ["I"] + ["filtering-II"] * 3 + [
        "filtering-III",
        "mapping-II",
    ]
    assert run(nat_script(APDM, APDM)).tests == ["I"] + ["filtering-II"] * 3 + [
        "filtering-III"
    ] * 3 + ["mapping-II", "mapping-III"]
    assert run({"I": LOCAL, "filtering-II": LOCAL}).tests == ["I", "filtering-II"]


def test_udp_blocked_after_every_retransmission() -> None:
    """No answer to test I: ``udp-blocked`` after max_transmissions sends, RTO doubling."""
    outcome = run({})
    assert outcome.result.nat_type is NatType.UDP_BLOCKED
    assert outcome.tests == ["I", "I", "I"]
    assert outcome.result.requests_sent == 3
    assert outcome.result.duration == pytest.approx(0.5 + 1.0 + 2.0)
    assert outcome.result.behind_nat is None and outcome.result.mapped_address is None


def test_retransmissions_repeat_the_same_bytes_at_doubling_intervals() -> None:
    """CAP-6.2."""
    classifier = NatClassifier(
        primary=PRIMARY, local=LOCAL, random_bytes=random.Random(1).randbytes
    )
    classifier.start(now=10.0)
    [(first, destination)] = sent(classifier)
    assert destination == PRIMARY
    deadlines = []
    for _ in range(2):
        deadline = classifier.next_deadline()
        assert deadline is not None
        deadlines.append(deadline)
        classifier.on_timer(now=deadline - 0.001)  # early: nothing happens
        assert sent(classifier) == []
        classifier.on_timer(now=deadline)
        assert sent(classifier) == [(first, PRIMARY)]
    assert deadlines == [10.5, 11.5]
    assert classifier.next_deadline() == 13.5


def test_alternate_from_other_address_or_configuration() -> None:
    """Without a configured alternate the first response's OTHER-ADDRESS is used; without
    either, the NAT can be detected but not classified."""
    configured = run(nat_script(EIM, EIM), alternate=ALTERNATE, other_address=None)
    assert configured.result.nat_type is NatType.FULL_CONE
    neither = run(nat_script(EIM, EIM), other_address=None)
    assert neither.result.nat_type is NatType.UNKNOWN
    assert neither.result.behind_nat is True
    assert neither.tests == ["I"]
    public = run({"I": LOCAL}, other_address=None)
    assert public.result.nat_type is NatType.UNKNOWN
    assert public.result.behind_nat is False


def test_useless_other_address_is_not_used() -> None:
    """An OTHER-ADDRESS sharing the primary's IP or port cannot answer "change IP and port"."""
    outcome = run(nat_script(EIM, EIM), other_address=(PRIMARY[0], 9999))
    assert outcome.result.nat_type is NatType.UNKNOWN
    assert outcome.classifier.counters.get_count(NatCounter.UNUSABLE_OTHER_ADDRESS) == 1


def test_error_response_to_test_one_is_unknown_not_blocked() -> None:
    request = StunMessage(method=1, message_class=MessageClass.REQUEST, transaction_id=bytes(12))
    outcome = run({}, respond={"I": error_response(request, 500)})
    assert outcome.result.nat_type is NatType.UNKNOWN
    assert outcome.result.behind_nat is None
    assert outcome.tests == ["I"]


def test_server_ignoring_change_request_is_inconclusive() -> None:
    """CAP-6.2: a "change IP and port" answer from the primary proves nothing."""
    classifier = NatClassifier(
        primary=PRIMARY, local=LOCAL, random_bytes=random.Random(3).randbytes
    )
    classifier.start(now=0.0)
    [(data, _)] = sent(classifier)
    reply = success_response(
        decode_message(data), XorMappedAddress(PUBLIC), OtherAddress(ALTERNATE)
    )
    classifier.receive_datagram(encode_message(reply), PRIMARY, now=0.01)
    assert classifier.state is ProbeState.FILTERING_II
    [(data, _)] = sent(classifier)
    reply = success_response(decode_message(data), XorMappedAddress(PUBLIC))
    classifier.receive_datagram(encode_message(reply), PRIMARY, now=0.02)  # wrong origin
    assert classifier.counters.get_count(NatCounter.WRONG_ORIGIN) == 1
    assert classifier.state is ProbeState.MAPPING_II


@pytest.mark.parametrize(
    "attributes",
    [(), (RawAttribute(0x7FF0, b""), XorMappedAddress(PUBLIC))],
    ids=["no-mapped-address", "unknown-required-attribute"],
)
def test_unusable_success_responses(attributes: tuple[Attribute, ...]) -> None:
    """RFC 8489 §6.3.3: a response without an address or with unknown required attributes
    fails the transaction; it is not silence."""
    request = StunMessage(method=1, message_class=MessageClass.REQUEST, transaction_id=bytes(12))
    outcome = run({}, respond={"I": success_response(request, *attributes)})
    assert outcome.result.nat_type is NatType.UNKNOWN
    assert outcome.classifier.counters.get_count(NatCounter.UNUSABLE_RESPONSE) == 1


def test_plain_mapped_address_is_accepted() -> None:
    """A server that sends only MAPPED-ADDRESS (pre-RFC 5389 style) still gives the mapping."""
    request = StunMessage(method=1, message_class=MessageClass.REQUEST, transaction_id=bytes(12))
    reply = success_response(request, MappedAddress(LOCAL), OtherAddress(ALTERNATE))
    outcome = run({"filtering-II": LOCAL}, respond={"I": reply})
    assert outcome.result.nat_type is NatType.OPEN


def test_stale_garbage_and_requests_are_ignored() -> None:
    classifier = NatClassifier(
        primary=PRIMARY, local=LOCAL, random_bytes=random.Random(4).randbytes
    )
    classifier.start(now=0.0)
    [(data, _)] = sent(classifier)
    request = decode_message(data)
    stale = StunMessage(
        method=1,
        message_class=MessageClass.SUCCESS_RESPONSE,
        transaction_id=b"\xff" * 12,
        attributes=(XorMappedAddress(PUBLIC),),
    )
    classifier.receive_datagram(encode_message(stale), PRIMARY, now=0.01)
    classifier.receive_datagram(b"not stun at all", PRIMARY, now=0.01)
    classifier.receive_datagram(data, PRIMARY, now=0.01)  # our own request reflected
    assert classifier.state is ProbeState.TEST_I
    assert classifier.counters.snapshot() == {
        NatCounter.IGNORED_STALE.value: 1,
        NatCounter.REJECTED_MALFORMED.value: 1,
        NatCounter.IGNORED_NOT_RESPONSE.value: 1,
    }
    reply = success_response(request, XorMappedAddress(LOCAL), OtherAddress(ALTERNATE))
    classifier.receive_datagram(encode_message(reply), PRIMARY, now=0.02)
    assert classifier.state is ProbeState.FILTERING_II


def test_config_and_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        NatDetectionConfig(rto=0)
    with pytest.raises(LocalProtocolError):
        NatDetectionConfig(max_transmissions=0)
    with pytest.raises(LocalProtocolError):
        NatClassifier(primary=PRIMARY, alternate=(PRIMARY[0], 1), local=LOCAL, random_bytes=bytes)
    classifier = NatClassifier(
        primary=PRIMARY, local=LOCAL, random_bytes=random.Random(1).randbytes
    )
    classifier.start(now=0.0)
    with pytest.raises(LocalProtocolError):
        classifier.start(now=0.0)  # IDLE is the only state START leaves
    classifier.on_timer(now=0.1)  # early timers are harmless
    assert classifier.result is None and not classifier.done


def test_single_transmission_config_and_software() -> None:
    config = NatDetectionConfig(rto=0.2, max_transmissions=1, software="railgun-ref test")
    outcome = run({}, config=config)
    assert outcome.tests == ["I"]
    assert outcome.result.duration == pytest.approx(0.2)


# ------------------------------------------------------------------ the tables


@pytest.mark.parametrize(
    ("reachable", "behind_nat", "mapping", "filtering", "expected"),
    [
        (False, None, None, None, NatType.UDP_BLOCKED),
        (True, None, None, None, NatType.UNKNOWN),
        (True, False, EIM, EIM, NatType.OPEN),
        (True, False, EIM, ADM, NatType.RESTRICTED),
        (True, False, EIM, APDM, NatType.PORT_RESTRICTED),
        (True, False, None, None, NatType.UNKNOWN),
        (True, False, None, EIM, NatType.OPEN),
        (True, True, EIM, EIM, NatType.FULL_CONE),
        (True, True, EIM, ADM, NatType.RESTRICTED),
        (True, True, EIM, APDM, NatType.PORT_RESTRICTED),
        (True, True, ADM, EIM, NatType.SYMMETRIC),
        (True, True, APDM, APDM, NatType.SYMMETRIC),
        (True, True, ADM, None, NatType.SYMMETRIC),
        (True, True, None, EIM, NatType.UNKNOWN),
        (True, True, EIM, None, NatType.UNKNOWN),
    ],
)
def test_classify_table(
    reachable: bool,
    behind_nat: bool | None,
    mapping: NatBehaviour | None,
    filtering: NatBehaviour | None,
    expected: NatType,
) -> None:
    """CAP-6.3: The RFC 5780 -> classic name table of the module docstring."""
    got = classify(reachable=reachable, behind_nat=behind_nat, mapping=mapping, filtering=filtering)
    assert got is expected


def test_nat_type_values_are_the_shared_vocabulary() -> None:
    """The strings the capacity scoring uses, plus udp-blocked (advertised as unknown)."""
    assert [t.value for t in NatType] == [
        "open",
        "full-cone",
        "restricted",
        "port-restricted",
        "symmetric",
        "unknown",
        "udp-blocked",
    ]
    assert advertised_nat_type(NatType.UDP_BLOCKED) is NatType.UNKNOWN
    assert advertised_nat_type(NatType.SYMMETRIC) is NatType.SYMMETRIC


def test_transition_table_is_closed() -> None:
    """Every state is reachable from IDLE and every path ends in DONE, which has no exits."""
    reachable = {ProbeState.IDLE}
    frontier = [ProbeState.IDLE]
    while frontier:
        for target in TRANSITIONS[frontier.pop()].values():
            if target not in reachable:
                reachable.add(target)
                frontier.append(target)
    assert reachable == set(ProbeState)
    assert TRANSITIONS[ProbeState.DONE] == {}
    assert all(
        ProbeEvent.START not in TRANSITIONS[s] for s in ProbeState if s is not ProbeState.IDLE
    )
