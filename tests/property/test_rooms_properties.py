"""Properties of the membership log (ROOM-3.5..3.8) and of the rooms decoders (ROOM-3.3, ROOM-4.2).

* The member list is a function of the *set* of changes: any arrival order,
  with repeats, gives the same membership (convergence, idempotence).
* Decoding a change or opening an invitation raises only RemoteProtocolError,
  whatever the bytes.
"""

import contextlib
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.rooms import ChangeLog, decode_change, open_invitation
from tests.unit.rooms.helpers import T0, identity, random_change, room_of

NAMES = [f"p{i}" for i in range(6)]


def _random_log(seed: int) -> ChangeLog:
    rng = random.Random(seed)
    net, room_id = room_of(NAMES[:3], others=NAMES[3:])
    net.partition(NAMES[::2], NAMES[1::2])
    for step in range(12):
        random_change(net, room_id, rng, now=T0 + step)
    net.heal()
    net.sync(room_id, now=T0 + 20)
    return net.cores["p0"]._log(room_id)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), shuffle=st.randoms(use_true_random=False))
def test_membership_depends_only_on_the_set_of_changes(seed: int, shuffle: random.Random) -> None:
    log = _random_log(seed)
    changes = list(log.ordered())
    arrival = changes[1:] + changes[1 : 1 + len(changes) // 2]  # with repeats
    shuffle.shuffle(arrival)
    again = ChangeLog(changes[0])
    for change in arrival:  # one at a time, so parents often arrive after children
        again.insert([change])
    assert again.orphans == 0
    assert again.membership.member_keys() == log.membership.member_keys()
    assert dict(again.membership.refused) == dict(log.membership.refused)
    assert again.membership.order == log.membership.order


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=1200))
def test_decode_change_raises_only_remote_protocol_errors(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        decode_change(data)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000))
def test_open_invitation_raises_only_remote_protocol_errors(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        open_invitation(identity("p0"), data, now=T0)


@settings(max_examples=100, deadline=None)
@given(position=st.integers(0, 10_000), value=st.integers(0, 255))
def test_mutated_invitations_raise_only_remote_protocol_errors(position: int, value: int) -> None:
    net, room_id = room_of(["p0"], others=["p1"])
    net.auto_accept = False
    invitation = net.cores["p0"].invite(room_id, net.key("p1"), now=T0)
    data = bytearray(invitation)
    data[position % len(data)] = value
    with contextlib.suppress(RemoteProtocolError):
        open_invitation(identity("p1"), bytes(data), now=T0)
