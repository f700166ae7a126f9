"""Fixtures for the notebook helpers: small live networks on 127.0.0.1."""

from collections.abc import Iterator

import pandas as pd
import pytest

from railgun_ref.lab import LocalNetwork


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def network() -> Iterator[LocalNetwork]:
    """Five running nodes shared by a module's read-only tests."""
    with LocalNetwork.start(5, seed=11) as net:
        yield net


@pytest.fixture(scope="module")
def pings(network: LocalNetwork) -> pd.DataFrame:
    return network.ping_all_pairs()
