"""The store-and-forward lab: the ring and replica charts, and one live story on 127.0.0.1."""

import pandas as pd
import pytest

from railgun_ref.lab.storeforward import (
    REPLICA_COLUMNS,
    RING_COLUMNS,
    StoreForwardLab,
    replica_chart,
    ring_chart,
    ring_frame,
)

KEY = bytes(32)


def test_ring_frame_places_ids_by_angle_and_measures_xor_distance() -> None:
    nodes = {0: bytes([0x80]) + bytes(31), 1: bytes(31) + b"\x01", 2: bytes([0x40]) + bytes(31)}
    ring = ring_frame(nodes, KEY, {0: "holder", 1: "holder", 2: "away"})
    assert tuple(ring.columns) == RING_COLUMNS
    by = ring.set_index("member")
    assert by.loc[-1, "role"] == "rendezvous key" and by.loc[-1, "distance_bits"] == 0
    assert by.loc[1, "distance_bits"] == 1 and by.loc[0, "distance_bits"] == 256
    assert by.loc[0, "angle"] == pytest.approx(3.1416, abs=1e-3)  # half way round
    assert by.loc[2, "x"] == pytest.approx(1.0, abs=1e-3)  # a quarter: on the right
    assert list(ring["angle"]) == sorted(ring["angle"])


def test_charts_are_layered_data() -> None:
    ring = ring_frame({0: b"\x01" * 32}, KEY, {0: "holder"})
    assert ring_chart(ring).to_dict()["layer"]
    steps = pd.DataFrame([{"step": "stored", "held": 3, "tombstones": 0}])
    spec = replica_chart(steps).to_dict()
    assert spec["mark"]["type"] == "bar"


def test_the_lab_needs_a_sender_and_k_holders() -> None:
    with pytest.raises(ValueError, match="at least 4"):
        StoreForwardLab(3)


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_away_member_story_end_to_end() -> None:
    """SF-8.3, SF-7.1, SF-8.4, SF-4, SF-7.4 through the lab: stored on k holders, repaired
    after a holder stops, picked up once after the sender quits, deleted everywhere."""
    with StoreForwardLab.start(5) as lab:
        lab.take_down()
        assert set(lab.states().values()) == {"connected-p2p"}
        lab.go_away(4)
        message = lab.send(0, "while away")
        holders = lab.wait_for_holders(message, 3)
        assert 4 not in holders and 0 not in holders
        assert lab.ring(message, away=[4]).set_index("member").loc[4, "role"] == "away"
        victim = holders[0]
        lab.stop(victim)
        assert victim not in lab.repair(message)
        lab.go_away(0)
        lab.come_back(4, [message])
        got = lab.received(4)
        assert list(got["copies"]) == [1] and list(got["path"]) == ["store"]
        lab.wait_until_deleted(message)
        lab.come_back(victim)
        lab.wait_until_deleted(message)
        assert tuple(lab.replicas([message]).columns) == REPLICA_COLUMNS
        assert victim in lab.tombstones(message)
    assert "0/5" in repr(lab)
