"""The TURN server, the STUN responder, the NAT classifier and the call controller are
`ProtocolCore`s (the core contract): mypy checks the assignments below, and the tests check the
behaviour the contract promises (pull one action at a time, None when idle)."""

import random
import subprocess
import sys
from pathlib import Path

import pytest

from railgun_ref.capacity.nat import NatAction, NatClassifier, SendRequest
from railgun_ref.capacity.sharing import CapacitySharing, CapacitySharingConfig
from railgun_ref.core.contract import ProtocolCore
from railgun_ref.relay.turn import TurnAction, TurnConfig, TurnServer
from railgun_ref.stun.server import BindingServer, ServerAddresses, StunAction
from railgun_ref.voice.controller import Action as CallAction
from railgun_ref.voice.controller import CallController
from unit.capacity.helpers import caps

ADDRESSES = ServerAddresses(
    primary_host="127.0.0.1", primary_port=3478, alternate_host="127.0.0.2", alternate_port=3479
)


def turn_core() -> ProtocolCore[TurnAction]:
    return TurnServer(
        TurnConfig(realm="r"),
        users={"a": "b"},
        sharing=CapacitySharing(caps(), CapacitySharingConfig(), now=0.0),
        random_bytes=random.Random(1).randbytes,
    )


def stun_core() -> ProtocolCore[StunAction]:
    return BindingServer(ADDRESSES)


def nat_core() -> ProtocolCore[NatAction]:
    return NatClassifier(
        primary=ADDRESSES.primary,
        local=("127.0.0.1", 5000),
        random_bytes=random.Random(1).randbytes,
    )


def call_core() -> ProtocolCore[CallAction]:
    return CallController()


@pytest.mark.parametrize("make", [turn_core, stun_core, nat_core, call_core])
def test_a_fresh_core_is_idle(make: object) -> None:
    assert callable(make)
    core = make()
    assert core.next_action() is None
    assert core.next_deadline() is None
    core.on_timer(now=0.0)  # nothing due: harmless
    assert core.next_action() is None


def test_nat_classifier_actions_are_pulled_one_at_a_time() -> None:
    classifier = NatClassifier(
        primary=ADDRESSES.primary,
        local=("127.0.0.1", 5000),
        random_bytes=random.Random(1).randbytes,
    )
    classifier.start(now=0.0)
    first = classifier.next_action()
    assert isinstance(first, SendRequest) and first.destination == ADDRESSES.primary
    assert classifier.next_action() is None
    assert classifier.next_deadline() == 0.5


def test_mypy_accepts_every_core_as_a_protocol_core() -> None:
    """The assignments above type-check under --strict (a new method signature that breaks
    the contract fails here, not only in a driver)."""
    pytest.importorskip("mypy")
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", __file__],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"MYPYPATH": f"{root}:{root / 'tests'}", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
