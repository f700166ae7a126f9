"""Helpers for tests that run real NodeHosts on 127.0.0.0/8."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import pytest

from railgun_ref.drivers.udp import NodeHost
from railgun_ref.identity.keys import Identity


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def identity(n: int) -> Identity:
    """A fixed identity per small integer, so failures are reproducible."""
    return Identity.from_seed(bytes([n]) * 32)


@asynccontextmanager
async def serving(*hosts: NodeHost) -> AsyncIterator[None]:
    """Run `hosts` for the duration of the block, then stop them all."""
    async with anyio.create_task_group() as tg:
        for host in hosts:
            await tg.start(host.run)
        yield
        tg.cancel_scope.cancel()


async def wait_until(predicate: Callable[[], bool], *, timeout: float = 2.0) -> None:
    """Poll `predicate()` until it is true; fail the test after `timeout` seconds."""
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.005)
