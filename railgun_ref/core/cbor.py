"""Deterministic CBOR (ENC-1.x): RFC 8949 §4.2.1 core deterministic encoding.

The data model is deliberately small so that every implementation can produce
the same bytes: unsigned and negative integers (64-bit range), byte strings,
UTF-8 text strings, arrays, maps whose keys are unsigned integers, booleans and
null. No floats, no tags, no indefinite lengths, no duplicate keys.

Because map keys are unsigned integers only, RFC 8949's bytewise ordering of
encoded keys is the same as numeric ordering, and the same as the older
length-first "canonical" ordering of RFC 7049 that some libraries (cbor2's
``canonical=True`` among them) implement. That removes the one place where
common CBOR libraries disagree (ENC-1.3).

Decoding is strict: an item is accepted only if its map keys appear in
increasing order and re-encoding it gives back the exact input bytes
(ENC-1.5). That rejects non-shortest integer and length heads, unsorted maps,
trailing bytes, tags (which decode to values outside the data model or
re-encode differently) and so on, without a parser of our own. Every failure
is a `RemoteProtocolError(MALFORMED)`.
"""

from collections.abc import Iterable
from typing import Any, Final

import cbor2

from railgun_ref.core.constants import MAX_CBOR_DEPTH
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError

#: ENC-1.2: integers are limited to what a 64-bit CBOR head can carry.
_UINT64_MAX: Final = 2**64 - 1
_NINT64_MIN: Final = -(2**64)

#: The CBOR data model values this spec allows (ENC-1.2).
CborValue = Any


_SCALARS: Final = frozenset({bytes, str, bool, type(None)})


def _check(value: object, depth: int, *, sorted_keys: bool = False) -> str | None:
    """Return why `value` is outside the data model, or None if it is inside.

    With `sorted_keys`, also require every map's keys to appear in strictly
    increasing order (ENC-1.3), as they do in a decoded deterministic item.
    Scalars inside containers are checked inline: this runs on every message
    encoded and decoded, and recursion per scalar would dominate its cost.
    """
    if depth > MAX_CBOR_DEPTH:
        return f"nesting deeper than {MAX_CBOR_DEPTH}"
    kind = type(value)
    if kind in _SCALARS:
        return None
    if isinstance(value, int):  # IntEnum members encode as their value
        if not _NINT64_MIN <= value <= _UINT64_MAX:
            return "integer outside the 64-bit range"
        return None
    # Exact types: a subclass (a NamedTuple, say) would decode as its base type.
    items: Iterable[object]
    if type(value) is list or type(value) is tuple:
        items = value
    elif type(value) is dict:
        previous = -1
        for key in value:
            if type(key) is not int or key < 0 or key > _UINT64_MAX:
                return "map key is not an unsigned integer"
            if sorted_keys:
                if key <= previous:
                    return "map keys not in increasing order"
                previous = key
        items = value.values()
    else:
        return f"type {kind.__name__} is outside the data model"
    for item in items:
        if depth >= MAX_CBOR_DEPTH:
            return f"nesting deeper than {MAX_CBOR_DEPTH}"
        if type(item) in _SCALARS:
            continue
        if type(item) is int:
            if not _NINT64_MIN <= item <= _UINT64_MAX:
                return "integer outside the 64-bit range"
            continue
        reason = _check(item, depth + 1, sorted_keys=sorted_keys)
        if reason is not None:
            return reason
    return None


def encode(value: CborValue) -> bytes:
    """Encode `value` deterministically (ENC-1.1).

    Raises `LocalProtocolError` if `value` is outside the data model: that is
    a bug in the caller, never something a peer can cause.
    """
    # One walk checks the data model and, on the way, that every map is already
    # in key order (as every message body is); such a value encodes canonically
    # with the plain encoder, at a third of the canonical encoder's cost. Only a
    # value with some map out of order (or outside the model) is walked again.
    reason = _check(value, 0, sorted_keys=True)
    in_order = reason is None
    if not in_order:
        reason = _check(value, 0)
    if reason is not None:
        raise LocalProtocolError(f"cannot encode: {reason}")
    try:
        if in_order:
            return cbor2.dumps(value)
        return cbor2.dumps(value, canonical=True)
    except UnicodeEncodeError as exc:  # a str holding a lone surrogate has no UTF-8 form
        raise LocalProtocolError(f"cannot encode: text is not valid Unicode ({exc})") from None


def decode(data: bytes) -> CborValue:
    """Decode one deterministic CBOR item that must span all of `data`.

    Raises only `RemoteProtocolError(MALFORMED)`, whatever the bytes.
    """
    try:
        value = cbor2.loads(
            data,
            max_depth=MAX_CBOR_DEPTH + 1,
            allow_indefinite=False,
            allow_duplicate_keys=False,
        )
    except Exception as exc:  # cbor2 raises several types; all mean "malformed"
        raise RemoteProtocolError(ErrorCode.MALFORMED, f"not CBOR: {exc}") from None
    # Maps decode into dicts in wire order, so checking that keys increase
    # checks the wire order (ENC-1.3); a plain re-encode in that same order then
    # reproduces the input exactly iff every head was shortest-form and nothing
    # else (tags, indefinite lengths, trailing bytes) was there (ENC-1.5). Both
    # together are what a canonical re-encode would check, at a third the cost.
    reason = _check(value, 0, sorted_keys=True)
    if reason is not None:
        raise RemoteProtocolError(ErrorCode.MALFORMED, reason)
    try:
        again = cbor2.dumps(value)
    except Exception as exc:
        raise RemoteProtocolError(ErrorCode.MALFORMED, f"not re-encodable: {exc}") from None
    if again != data:
        raise RemoteProtocolError(ErrorCode.MALFORMED, "not deterministic CBOR")
    return value
