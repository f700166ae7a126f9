"""Tampering with a signed record never yields an accepted record (DHT-3.3).

A valid record is taken apart and one signed field is changed to any other
value (or its signature bytes are edited); the result must be refused with a
`RemoteProtocolError` — usually BAD_SIGNATURE, but shape, size or key checks
may catch it first — and never pass, and never raise anything else.
"""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.dht.keys import KeyType
from railgun_ref.dht.records import decode_record, sign_record
from railgun_ref.identity.keys import Identity
from railgun_ref.wire import cbor

from .strategies import model_values, mutated

T0 = 1_700_000_000.0
PUBLISHER = Identity.from_seed(b"\x07" * 32)
VALID = sign_record(
    PUBLISHER,
    key_type=KeyType.PEER,
    ident=PUBLISHER.node_id,
    seq=5,
    expires_ms=int((T0 + 3600) * 1000),
    value=b"presence",
).to_cbor_value()

#: Replacement values per signed field: plausible ones first, then anything.
FIELD_VALUES: dict[int, st.SearchStrategy[Any]] = {
    0: st.one_of(st.sampled_from([int(t) for t in KeyType]), model_values(1)),
    1: st.one_of(st.binary(max_size=80), model_values(1)),
    2: st.one_of(st.binary(min_size=32, max_size=32), model_values(1)),
    3: st.one_of(st.integers(0, 2**64 - 1), model_values(1)),
    4: st.one_of(
        st.integers(int(T0 * 1000) + 1, int((T0 + 86400) * 1000)), st.integers(0, 2**64 - 1)
    ),
    5: st.one_of(st.binary(max_size=300), model_values(1)),
}


def refused(value: object) -> ErrorCode:
    with pytest.raises(RemoteProtocolError) as info:
        decode_record(value, now=T0)
    return info.value.code


def test_the_untouched_record_is_accepted() -> None:
    """DHT-3.3: the baseline the mutations start from is valid."""
    assert decode_record(cbor.decode(cbor.encode(VALID)), now=T0).seq == 5


@given(st.sampled_from(sorted(FIELD_VALUES)), st.data())
def test_changing_any_signed_field_is_refused(number: int, data: st.DataObject) -> None:
    """DHT-3.3: any change to a signed field is refused, never accepted."""
    new = data.draw(FIELD_VALUES[number])
    if type(new) is type(VALID[number]) and new == VALID[number]:
        return
    tampered = {**VALID, number: new}
    code = refused(tampered)
    well_typed = (number in (3, 4) and type(new) is int and new >= 0) or (
        number == 5 and type(new) is bytes and len(new) <= 256
    )
    if well_typed:
        # A change that keeps the shape and sizes is caught by the signature, first.
        assert code is ErrorCode.BAD_SIGNATURE


@given(st.data())
def test_editing_signature_bytes_is_refused(data: st.DataObject) -> None:
    """DHT-3.3: a signature changed in any byte is BAD_SIGNATURE (or MALFORMED if resized)."""
    signature = VALID[6]
    edited = data.draw(mutated(signature))
    if edited == signature:
        return
    code = refused({**VALID, 6: edited})
    expected = ErrorCode.BAD_SIGNATURE if len(edited) == 64 else ErrorCode.MALFORMED
    assert code is expected


@given(st.data())
def test_editing_encoded_bytes_never_passes_as_another_record(data: st.DataObject) -> None:
    """DHT-3.3: byte edits of the encoded record decode to the same record or are refused."""
    encoded = cbor.encode(VALID)
    edited = data.draw(mutated(encoded))
    try:
        value = cbor.decode(edited)
    except RemoteProtocolError:
        return
    try:
        rec = decode_record(value, now=T0)
    except RemoteProtocolError:
        return
    assert rec.encode() == encoded
