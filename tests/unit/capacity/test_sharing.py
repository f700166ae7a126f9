"""Capacity sharing: the upload token bucket and the relay connection limit (CAP-5.x)."""

import math

import pytest

from railgun_ref.capacity import (
    BandwidthRefused,
    CapacitySharing,
    CapacitySharingConfig,
    ConnectionsRefused,
    Granted,
    LimitKind,
    SharingDisabled,
    TokenBucket,
)
from railgun_ref.capacity.sharing import connection_limit, sharing_rate
from railgun_ref.core.errors import ErrorCode, LocalProtocolError

from .helpers import caps

T = 1_700_000_000.0


def test_defaults_are_the_seeds() -> None:
    """CAP-5.1: capacitySharing {enabled: true, maxUploadShare: 0.5, maxRelayConnections: 20}."""
    config = CapacitySharingConfig()
    assert (config.enabled, config.max_upload_share, config.max_relay_connections) == (
        True,
        0.5,
        20,
    )
    assert config.burst == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_upload_share": -0.1},
        {"max_upload_share": 1.5},
        {"max_upload_share": math.nan},
        {"max_relay_connections": -1},
        {"burst": 0.0},
        {"burst": math.inf},
        {"enabled": 1},
    ],
)
def test_config_is_checked(kwargs: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        CapacitySharingConfig(**kwargs)  # type: ignore[arg-type]


def test_rate_and_limit_are_the_smaller_of_config_and_device() -> None:
    """CAP-5.1: floor(upload x share) capped by maxRelayBandwidth; min of the two counts."""
    device = caps(upload_bandwidth=10**7, max_relay_bandwidth=10**6, max_relay_connections=5)
    assert sharing_rate(device, CapacitySharingConfig()) == 10**6
    assert sharing_rate(device, CapacitySharingConfig(max_upload_share=0.05)) == 500_000
    assert connection_limit(device, CapacitySharingConfig()) == 5
    assert connection_limit(device, CapacitySharingConfig(max_relay_connections=2)) == 2
    off = CapacitySharingConfig(enabled=False)
    assert sharing_rate(device, off) == connection_limit(device, off) == 0


def test_bucket_grants_refuses_and_refills() -> None:
    """CAP-5.2: full at creation, refill at the rate, capped at the burst."""
    bucket = TokenBucket(rate=1000, capacity=1000, now=T)
    assert bucket.take(600, now=T).granted
    refused = bucket.take(600, now=T)
    assert not refused.granted and refused.retry_after == pytest.approx(0.2)
    assert refused.available == 400  # a refusal takes nothing
    assert bucket.take(600, now=T + 0.2).granted
    assert bucket.available(now=T + 100) == 1000  # never above the burst


def test_bucket_retry_after_is_exact_when_waited() -> None:
    """CAP-5.2: waiting retry_after seconds makes the same request fit."""
    bucket = TokenBucket(rate=3000, capacity=4096, now=T)
    bucket.take(4000, now=T)
    decision = bucket.take(2500, now=T + 0.1)
    assert decision.retry_after is not None
    assert bucket.take(2500, now=T + 0.1 + decision.retry_after).granted


def test_bucket_never_fits_and_zero_rate() -> None:
    """CAP-5.2: over the burst, or at rate 0, there is no retry-after."""
    bucket = TokenBucket(rate=1000, capacity=1000, now=T)
    assert bucket.take(1001, now=T).retry_after is None
    empty = TokenBucket(rate=0, capacity=0, now=T)
    assert empty.take(0, now=T).granted
    assert empty.take(1, now=T).retry_after is None
    odd = TokenBucket(rate=0, capacity=10, now=T)
    odd.take(10, now=T)
    assert odd.take(1, now=T + 5).retry_after is None


def test_clock_stepping_back_mints_nothing() -> None:
    """CAP-5.2: elapsed time is never negative, and the mark stays put."""
    bucket = TokenBucket(rate=1000, capacity=1000, now=T)
    bucket.take(1000, now=T + 10)
    assert bucket.available(now=T + 9) == 0
    assert bucket.available(now=T + 10.5) == 500
    for now in (T + 5, T + 10.5, T + 5, T + 10.5):
        assert bucket.available(now=now) == 500


def test_bucket_arguments_are_checked() -> None:
    with pytest.raises(LocalProtocolError):
        TokenBucket(rate=-1, capacity=0, now=T)
    bucket = TokenBucket(rate=1, capacity=1, now=T)
    with pytest.raises(LocalProtocolError):
        bucket.take(-1, now=T)
    with pytest.raises(LocalProtocolError):
        bucket.take(1.5, now=T)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        bucket.resize(rate=1, capacity=-1, now=T)


def test_bandwidth_refusal_is_actionable() -> None:
    """CAP-5.4: QUOTA, the limit, the use, the retry-after, and the reason text."""
    sharing = CapacitySharing(caps(upload_bandwidth=2000, max_relay_bandwidth=10**6), now=T)
    assert (sharing.rate, sharing.burst) == (1000, 1000)
    granted = sharing.request_bandwidth(600, now=T)
    assert granted == Granted(kind=LimitKind.BANDWIDTH, requested=600, limit=1000, in_use=600)
    refused = sharing.request_bandwidth(600, now=T)
    assert isinstance(refused, BandwidthRefused)
    assert refused.code is ErrorCode.QUOTA and refused.kind is LimitKind.BANDWIDTH
    assert (refused.limit, refused.in_use, refused.burst, refused.available) == (
        1000,
        600,
        1000,
        400,
    )
    assert refused.retry_after == pytest.approx(0.2) and refused.retry_after_ms == 200
    assert refused.reason() == (
        "quota bandwidth limit=1000 in_use=600 requested=600 retry_after_ms=200"
    )
    never = sharing.request_bandwidth(5000, now=T)
    assert isinstance(never, BandwidthRefused) and never.retry_after is None
    assert never.reason().endswith("retry_after_ms=never")
    assert len(never.reason()) <= 200  # fits an ERROR reason (MSG-3.1)


def test_connections_are_limited_and_freed() -> None:
    """CAP-5.3: at most the limit open; a close frees a slot; keys are tracked."""
    sharing = CapacitySharing(caps(max_relay_connections=2), now=T)
    assert isinstance(sharing.open_relay_connection("a"), Granted)
    assert isinstance(sharing.open_relay_connection("b"), Granted)
    refused = sharing.open_relay_connection("c")
    assert refused == ConnectionsRefused(limit=2, in_use=2)
    assert refused.code is ErrorCode.QUOTA and refused.retry_after is None
    assert refused.reason() == "quota connections limit=2 in_use=2 requested=1"
    sharing.close_relay_connection("a")
    assert sharing.open_relay_connection("c") == Granted(
        kind=LimitKind.CONNECTIONS, requested=1, limit=2, in_use=2
    )
    with pytest.raises(LocalProtocolError):
        sharing.open_relay_connection("c")  # already open: the caller's bug
    with pytest.raises(LocalProtocolError):
        sharing.close_relay_connection("a")  # already closed


def test_disabled_sharing_refuses_everything() -> None:
    """CAP-5.4: kind disabled, limit 0."""
    sharing = CapacitySharing(caps(), CapacitySharingConfig(enabled=False), now=T)
    for refused in (sharing.request_bandwidth(1, now=T), sharing.open_relay_connection(1)):
        assert isinstance(refused, SharingDisabled)
        assert (refused.kind, refused.limit, refused.in_use) == (LimitKind.DISABLED, 0, 0)
        assert refused.code is ErrorCode.QUOTA
    assert sharing.request_bandwidth(1, now=T).reason() == (
        "quota disabled limit=0 in_use=0 requested=1"
    )


def test_update_keeps_what_is_in_use() -> None:
    """CAP-5.3: a lower limit keeps open connections but refuses new ones."""
    sharing = CapacitySharing(caps(upload_bandwidth=2000, max_relay_bandwidth=10**6), now=T)
    for key in range(3):
        sharing.open_relay_connection(key)
    sharing.request_bandwidth(200, now=T)
    sharing.update(caps(upload_bandwidth=1000, max_relay_connections=2), now=T)
    assert (sharing.rate, sharing.burst, sharing.connection_limit) == (500, 500, 2)
    assert sharing.connections_in_use == 3
    assert isinstance(sharing.open_relay_connection(9), ConnectionsRefused)
    assert sharing.available(now=T) == 500  # 800 left, clamped to the new burst
    sharing.update(caps(), CapacitySharingConfig(enabled=False), now=T)
    assert isinstance(sharing.request_bandwidth(1, now=T), SharingDisabled)
    assert sharing.config.enabled is False
