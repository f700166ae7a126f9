"""The central-service runner (``conformance run --target ws://...``) against our service,
one good and several deliberately broken.

Each broken service is the real `CentralService` (or its store) with one rule broken; the
runner must fail exactly the checks of that rule and pass the others.
"""

import dataclasses
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from railgun_ref.conformance.catalog import CENTRAL_RUNNER_CHECKS
from railgun_ref.conformance.runner_central import parse_central_target, run
from railgun_ref.conformance.wire_runner import TargetError
from railgun_ref.core.ids import NodeId
from railgun_ref.drivers.central import CentralService, MailboxStore, serve_central
from railgun_ref.wire.central import Send

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

#: Each wait for a frame (or for silence) in these runs, seconds.
TIMEOUT = 0.4


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class DuplicatesResends(CentralService):
    """Stores and delivers a resent SEND again (no idempotence by message id), under a
    message id of its own."""

    async def _send(self, session: object, frame: Send, req: int) -> None:
        fresh = dataclasses.replace(frame, message_id=os.urandom(16))
        await super()._send(session, fresh, req)  # type: ignore[arg-type]


class NoMembershipCheck(CentralService):
    """Takes a SEND to any room, making the sender a member on the way."""

    async def _send(self, session: object, frame: Send, req: int) -> None:
        self.store.join(frame.room_id, session.node_id)  # type: ignore[attr-defined]
        await super()._send(session, frame, req)  # type: ignore[arg-type]


class IgnoresAcks(MailboxStore):
    """Answers every ACK with 0 deleted and keeps the entries."""

    def ack(self, member: NodeId, seqs: Iterable[int]) -> int:
        return 0


def static_nonce(size: int) -> bytes:
    """The same challenge for every connection (and anything else the service draws)."""
    return bytes(size)


@asynccontextmanager
async def central(
    tmp_path: Path,
    service: type[CentralService] = CentralService,
    store: type[MailboxStore] = MailboxStore,
    **options: object,
) -> AsyncIterator[str]:
    instance = service(store(tmp_path / "mailbox.sqlite"), **options)  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        url: str = await tg.start(serve_central, instance)
        yield url.replace("http://", "ws://")
        tg.cancel_scope.cancel()
    instance.store.close()


def failing(report_checks: Iterable[object]) -> set[int]:
    return {i for i, c in enumerate(report_checks, 1) if not c.passed}  # type: ignore[attr-defined]


async def test_our_central_service_passes_every_check(tmp_path: Path) -> None:
    async with central(tmp_path) as target:
        report = await run(target, timeout=TIMEOUT)
    assert report.passed, [c for c in report.checks if not c.passed]
    assert [(c.clause, c.check) for c in report.checks] == list(CENTRAL_RUNNER_CHECKS)


@pytest.mark.parametrize(
    ("service", "store", "options", "breaks"),
    [
        (CentralService, MailboxStore, {"random_bytes": static_nonce}, {1, 4}),
        # it also hands out message ids the sender never chose, which C11 sees
        (DuplicatesResends, MailboxStore, {}, {10, 11}),
        (NoMembershipCheck, MailboxStore, {}, {8}),
        (CentralService, IgnoresAcks, {}, {10}),
    ],
    ids=["static-nonce", "duplicates-resends", "no-membership-check", "ignores-acks"],
)
async def test_broken_services_fail_what_they_break(
    tmp_path: Path,
    service: type[CentralService],
    store: type[MailboxStore],
    options: dict[str, object],
    breaks: set[int],
) -> None:
    """C1/C4 (CEN-3.1, CEN-3.3), C10 (CEN-4.3, CEN-4.6), C8 (CEN-4.3): numbered as in
    `catalog.CENTRAL_RUNNER_CHECKS`."""
    async with central(tmp_path, service, store, **options) as target:
        report = await run(target, timeout=TIMEOUT)
    assert failing(report.checks) == breaks, [c for c in report.checks if not c.passed]


@pytest.mark.parametrize("target", ["ws://10.0.0.1:80", "http://127.0.0.1:80", "ws://127.0.0.1"])
def test_targets_outside_loopback_are_refused(target: str) -> None:
    with pytest.raises(TargetError):
        parse_central_target(target)
