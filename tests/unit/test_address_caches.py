"""The per-datagram address work is remembered, never at the cost of a changed policy.

`drivers.addresses.check_destination_host` remembers its verdict per host and
harness setting, so a harness that narrows the allowed networks later still
refuses what it no longer allows; the UDP driver hands the node one shared
tuple per source address (`udp._interned`).
"""

import pytest

from railgun_ref.drivers import udp
from railgun_ref.drivers.addresses import ALLOWED_NETWORKS_ENV, check_destination_host


def test_destination_verdict_follows_the_harness_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOWED_NETWORKS_ENV, "127.0.0.0/8,10.0.0.0/8")
    assert check_destination_host("10.1.2.3") == "10.1.2.3"
    monkeypatch.setenv(ALLOWED_NETWORKS_ENV, "127.0.0.0/8")
    with pytest.raises(ValueError, match=r"10\.1\.2\.3"):
        check_destination_host("10.1.2.3")
    monkeypatch.setenv(ALLOWED_NETWORKS_ENV, "127.0.0.0/8,10.0.0.0/8")
    assert check_destination_host("10.1.2.3") == "10.1.2.3"


def test_destination_refusals_are_remembered_too() -> None:
    for _ in range(2):
        with pytest.raises(ValueError, match="not a unicast address"):
            check_destination_host("224.0.0.1")
        with pytest.raises(ValueError, match="not an IP address literal"):
            check_destination_host("example.org")


def test_source_addresses_are_shared_tuples() -> None:
    first = udp._interned("127.0.0.1", 40001)
    again = udp._interned("".join(["127.0.0.", "1"]), 40001)
    assert first == ("127.0.0.1", 40001)
    assert again is first
    assert udp._interned("127.0.0.1", 40002) == ("127.0.0.1", 40002)
