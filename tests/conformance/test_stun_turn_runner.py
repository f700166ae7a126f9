"""The STUN and TURN runners (``conformance run --target stun://...``, ``turn://...``)
against our servers, one good and several deliberately broken of each.

The broken servers run the real drivers with a mutated protocol core (the drivers'
``core_class``): each breaks one observable rule, and the runner must fail the clause
it breaks and pass the others. The good servers must pass every check.
"""

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import pytest

from railgun_ref.conformance.runner_stun import STUN_CHECKS, TURN_CHECKS, parse_stun_target, run
from railgun_ref.conformance.wire_runner import Report, TargetError
from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.core.ids import Address
from railgun_ref.drivers.stun_server import StunServer
from railgun_ref.drivers.turn_server import TurnUdpServer
from railgun_ref.relay.turn import TurnServer, _RejectError
from railgun_ref.stun.codec import (
    Attribute,
    ChangeRequest,
    EvenPort,
    Fingerprint,
    Lifetime,
    MessageClass,
    Padding,
    RawAttribute,
    StunErrorCode,
    StunMessage,
    decode_message,
    encode_message,
)
from railgun_ref.stun.server import BindingServer, StunReply

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

#: Each wait for an answer (or for silence) in these runs, seconds.
TIMEOUT = 0.3
USER, PASSWORD = "runner", "pass word"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def rewrite(
    data: bytes, drop: Callable[[Attribute], bool], *, as_class: MessageClass | None = None
) -> bytes:
    """`data` with the attributes `drop` selects removed (and its class changed)."""
    try:
        message = decode_message(data)
    except RemoteProtocolError:
        return data
    kept = tuple(a for a in message.attributes if not drop(a) and not isinstance(a, Fingerprint))
    changed = dataclasses.replace(
        message,
        attributes=kept,
        message_class=message.message_class if as_class is None else as_class,
    )
    return encode_message(changed, fingerprint=message.find(Fingerprint) is not None)


# ------------------------------------------------------------ broken STUN servers


class IgnoresPadding(BindingServer):
    """Neither echoes PADDING nor refuses it with RESPONSE-PORT (the fault coturn found)."""

    def _answer(self, data: bytes, src: Address, local: Address) -> list[StunReply]:
        return super()._answer(rewrite(data, lambda a: isinstance(a, Padding)), src, local)


class IgnoresChangeRequest(BindingServer):
    """Advertises OTHER-ADDRESS but always answers from where the request arrived."""

    def _answer(self, data: bytes, src: Address, local: Address) -> list[StunReply]:
        return super()._answer(rewrite(data, lambda a: isinstance(a, ChangeRequest)), src, local)


class WrongMappedAddress(BindingServer):
    """Reports the source port plus one."""

    def _answer(self, data: bytes, src: Address, local: Address) -> list[StunReply]:
        replies = super()._answer(data, (src[0], src[1] % 65535 + 1), local)
        return [dataclasses.replace(r, destination=src) for r in replies]


class AnswersIndications(BindingServer):
    """Answers a Binding indication as if it were a request."""

    def _answer(self, data: bytes, src: Address, local: Address) -> list[StunReply]:
        promoted = rewrite(data, lambda a: False, as_class=MessageClass.REQUEST)
        return super()._answer(promoted, src, local)


class IgnoresUnknownAttributes(BindingServer):
    """Answers success to an unknown comprehension-required attribute instead of 420."""

    def _answer(self, data: bytes, src: Address, local: Address) -> list[StunReply]:
        return super()._answer(rewrite(data, lambda a: isinstance(a, RawAttribute)), src, local)


# ------------------------------------------------------------ broken TURN servers


class UnboundNonce(TurnServer):
    """Nonces good from any address: a captured signed Allocate can be replayed."""

    def new_nonce(self, *, client: Address, now: float) -> str:
        return super().new_nonce(client=("127.0.0.1", 1), now=now)

    def nonce_valid(self, nonce: str, *, client: Address, now: float) -> bool:
        return super().nonce_valid(nonce, client=("127.0.0.1", 1), now=now)


class RefusesEvenPort(TurnServer):
    """The old behaviour: EVEN-PORT answered with 420."""

    def _port_request(
        self, request: StunMessage, now: float
    ) -> tuple[EvenPort | None, bytes | None]:
        if request.find(EvenPort) is not None:
            raise _RejectError(StunErrorCode.UNKNOWN_ATTRIBUTE)
        return super()._port_request(request, now)


class IgnoresReservation(TurnServer):
    """Gives an even port but ignores the R bit: no RESERVATION-TOKEN."""

    def _port_request(
        self, request: StunMessage, now: float
    ) -> tuple[EvenPort | None, bytes | None]:
        even, token = super()._port_request(request, now)
        return (EvenPort() if even is not None else None), token


class NoPermissionCheck(TurnServer):
    """Relays data from any peer, permission or not."""

    def receive_relayed(
        self, data: bytes, from_peer: Address, allocation: int, *, now: float
    ) -> None:
        current = self._by_id.get(allocation)  # type: ignore[call-overload]
        if current is not None:
            current.permissions[from_peer[0]] = now + 300
        super().receive_relayed(data, from_peer, allocation, now=now)  # type: ignore[arg-type]


class NeverDeletes(TurnServer):
    """A Refresh with LIFETIME 0 refreshes instead of deleting."""

    def _refresh(self, request: StunMessage, *args: object) -> list[object]:
        kept = tuple(a for a in request.attributes if not isinstance(a, Lifetime))
        return super()._refresh(dataclasses.replace(request, attributes=kept), *args)  # type: ignore[arg-type, return-value]


# ------------------------------------------------------------ harness


@asynccontextmanager
async def stun_target(core: type[BindingServer]) -> AsyncIterator[str]:
    async with anyio.create_task_group() as tg:
        server: StunServer = await tg.start(StunServer(core_class=core).run)
        yield f"stun://{server.primary[0]}:{server.primary[1]}"
        tg.cancel_scope.cancel()


@asynccontextmanager
async def turn_target(core: type[TurnServer]) -> AsyncIterator[str]:
    async with anyio.create_task_group() as tg:
        server = await tg.start(TurnUdpServer(users={USER: PASSWORD}, core_class=core).run)
        host, port = server.address
        yield f"turn://{USER}:pass%20word@{host}:{port}"
        tg.cancel_scope.cancel()


def failed(report: Report) -> set[str]:
    return {check.check for check in report.checks if not check.passed}


def names(checks: list[tuple[str, str, object]], *wanted: str) -> set[str]:
    found = {name for name, _, _ in checks if any(w in name for w in wanted)}
    assert len(found) >= len(wanted)
    return found


async def test_our_stun_server_passes_every_check() -> None:
    async with stun_target(BindingServer) as target:
        report = await run(target, timeout=TIMEOUT)
    assert report.passed, [c for c in report.checks if not c.passed]
    assert len(report.checks) == len(STUN_CHECKS)


async def test_our_turn_server_passes_every_check() -> None:
    async with turn_target(TurnServer) as target:
        report = await run(target, timeout=TIMEOUT)
    assert report.passed, [c for c in report.checks if not c.passed]
    assert {c.clause for c in report.checks} >= {"TURN-1.3", "TURN-1.12", "TURN-1.7", "TURN-1.9"}


@pytest.mark.parametrize(
    ("core", "breaks"),
    [
        (IgnoresPadding, ("PADDING echoed", "PADDING with RESPONSE-PORT")),
        (IgnoresChangeRequest, ("CHANGE-REQUEST",)),
        (WrongMappedAddress, ("Binding",)),
        (AnswersIndications, ("garbage and indications",)),
        (IgnoresUnknownAttributes, ("unknown comprehension-required",)),
    ],
)
async def test_broken_stun_servers_fail_what_they_break(
    core: type[BindingServer], breaks: tuple[str, ...]
) -> None:
    async with stun_target(core) as target:
        report = await run(target, timeout=TIMEOUT)
    assert failed(report) == names(STUN_CHECKS, *breaks)


@pytest.mark.parametrize(
    ("core", "breaks"),
    [
        (UnboundNonce, ("replayed from another port",)),
        (RefusesEvenPort, ("EVEN-PORT",)),
        (IgnoresReservation, ("EVEN-PORT",)),
        (NoPermissionCheck, ("without permission",)),
        (NeverDeletes, ("LIFETIME 0",)),
    ],
)
async def test_broken_turn_servers_fail_what_they_break(
    core: type[TurnServer], breaks: tuple[str, ...]
) -> None:
    async with turn_target(core) as target:
        report = await run(target, timeout=TIMEOUT)
    assert failed(report) == names(TURN_CHECKS, *breaks)


@pytest.mark.parametrize(
    "target",
    ["stun://10.0.0.1:3478", "turn://127.0.0.1:3478", "http://127.0.0.1:1", "stun://127.0.0.1"],
)
def test_targets_outside_loopback_or_without_credentials_are_refused(target: str) -> None:
    with pytest.raises(TargetError):
        parse_stun_target(target)
