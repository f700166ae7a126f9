"""NAT-2: the traversal codec round-trips what it encodes and refuses what it must."""

from pathlib import Path

import pytest

from railgun_ref.capacity.nat import NatType
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.traversal import messages as m

NONCE = bytes(range(16))
ALL = [
    m.Register(),
    m.Observed(address=("198.51.100.1", 4000)),
    m.Relay(to=NodeId(bytes(32)), inner=b"x"),
    m.Connect(nonce=NONCE, addresses=(("2001:db8::1", 9),), nat=NatType.SYMMETRIC),
    m.Sync(nonce=NONCE, attempt=2, plan=m.Plan.REVERSE),
    m.Punch(nonce=NONCE, attempt=1),
    m.PunchAck(nonce=NONCE, attempt=8),
]


@pytest.mark.parametrize("message", ALL, ids=lambda x: type(x).__name__)
def test_round_trip(message: m.TraversalMessage) -> None:
    """NAT-2.1..NAT-2.5."""
    assert m.decode(m.encode(message)) == message


def test_a_connect_needs_candidates() -> None:
    with pytest.raises(LocalProtocolError):
        m.encode(m.Connect(nonce=NONCE, addresses=(), nat=NatType.OPEN))


@pytest.mark.parametrize("data", [b"", b"\xff", b"\xa0", b"\xa1\x00\x18\x63"])
def test_garbage_is_malformed(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        m.decode(data)


FUZZ_CORPUS = Path(__file__).parents[2] / "fuzz" / "corpus" / "traversal"


@pytest.mark.parametrize("name", ["crash-connect-nat-map", "crash-sync-plan-list"])
def test_unhashable_nat_or_plan_is_malformed(name: str) -> None:
    """NAT-4: a CONNECT whose NAT type, or a SYNC whose plan, is a map or a list is MALFORMED.

    The fuzzer found both raising TypeError (unhashable) instead; ABUSE-5.2 keeps the
    inputs (tests/fuzz/corpus).
    """
    with pytest.raises(RemoteProtocolError) as info:
        m.decode((FUZZ_CORPUS / name).read_bytes())
    assert info.value.code is ErrorCode.MALFORMED
