"""Closed rooms across partitions: membership changed on both sides converges on heal (ROOM-3.6).

A pure-core simulation (`tests/unit/rooms/helpers.RoomNet`): eight nodes, a
room with a few of them, the network cut in two or three groups, a random
run of invitations, removals and leaves in each group, then healed. After one
exchange of logs every node that holds the log computes the same member list
and the same refusals, and every member agrees with every other member.
"""

import random

import pytest

from railgun_ref.rooms import RoomState
from tests.unit.rooms.helpers import T0, converged, random_change, room_of

NAMES = [f"n{i}" for i in range(8)]


@pytest.mark.parametrize("seed", range(12))
def test_partitions_that_changed_membership_converge_when_healed(seed: int) -> None:
    rng = random.Random(seed)
    net, room_id = room_of(NAMES[:4], others=NAMES[4:])
    groups: list[list[str]] = [[], [], []][: rng.choice([2, 3])]
    for name in NAMES:
        rng.choice(groups).append(name)
    net.partition(*groups)
    now = T0
    for _ in range(30):
        now += 1
        random_change(net, room_id, rng, now=now)
    assert not converged(net, room_id)  # the partitions did disagree
    net.heal()
    net.sync(room_id, now=now + 1)
    assert converged(net, room_id)
    members = [n for n, c in net.cores.items() if c.state(room_id) is RoomState.MEMBER]
    for name in members:
        assert net.members(name, room_id) == set(members)
    assert net.errors == []
