"""Store-and-forward decoding and the holder fed anything (SF-6.2, SF-3.1).

The codec raises only RemoteProtocolError for any bytes; a holder fed any
bytes (random, or mutations of valid messages) never raises, refuses with a
counter, and never loses a message it already kept.
"""

import contextlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.storeforward import messages as m
from tests.unit.storeforward.sf import KEY, MAILBOX, T0, drain, holder, store

from .strategies import model_values, mutated

VALID = [
    m.encode(store()),
    m.encode(m.Result(request_id=1, status=0, message_id=bytes(32))),
    m.encode(m.sign_pickup(MAILBOX, request_id=1, timestamp_ms=1, rendezvous_key=KEY)),
    m.encode(m.PickupReply(request_id=1, entries=((5, bytes(256)),), more=False)),
    m.encode(m.sign_receipt(MAILBOX, timestamp_ms=1, rendezvous_key=KEY, message_ids=(KEY,))),
    m.encode(m.Sync(reply=False, rendezvous_key=KEY, message_ids=(KEY,), receipts=())),
    m.encode(m.Replicate(rendezvous_key=KEY, mailbox_key=KEY, expires_ms=1, ciphertext=bytes(256))),
]


def _decodes_or_refuses(data: bytes) -> None:
    try:
        message = m.decode(data)
    except RemoteProtocolError:
        return
    assert m.encode(message) == data  # SF-6.2: what decodes re-encodes to the same bytes


@given(st.binary(max_size=600))
def test_any_bytes(data: bytes) -> None:
    _decodes_or_refuses(data)


@given(st.sampled_from(VALID).flatmap(mutated))
def test_mutations_of_valid_messages(data: bytes) -> None:
    _decodes_or_refuses(data)


@given(model_values())
def test_any_cbor_value(value: Any) -> None:
    with contextlib.suppress(RemoteProtocolError):
        m.from_map(value)


def test_every_truncation_and_bit_flip_of_a_store() -> None:
    data = VALID[0][:400]
    for cut in range(len(data)):
        _decodes_or_refuses(data[:cut])
    for bit in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        _decodes_or_refuses(bytes(flipped))


@settings(max_examples=60)
@given(st.lists(st.sampled_from(VALID).flatmap(mutated) | st.binary(max_size=300), max_size=8))
def test_holder_never_raises_and_keeps_what_it_held(inputs: list[bytes]) -> None:
    h = holder()
    kept = store(99)
    h.receive(m.encode(kept), peer=NodeId(KEY), now=T0)
    drain(h)
    for data in inputs:
        h.receive(data, peer=NodeId(KEY), now=T0)
        drain(h)
    assert kept.message_id in h.held
