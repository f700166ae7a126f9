"""Hypothesis strategies for the CBOR data model (ENC-1.2) and a few edge-heavy neighbours."""

from typing import Any

from hypothesis import strategies as st

from railgun_ref.core.constants import MAX_CBOR_DEPTH

UINT64_MAX = 2**64 - 1
NINT64_MIN = -(2**64)

#: Integers where CBOR heads change width, and the ends of the 64-bit range.
INT_BOUNDARIES = sorted(
    {
        s * b + d
        for b in (0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1)
        for d in (-1, 0, 1)
        for s in (1, -1)
        if NINT64_MIN <= s * b + d <= UINT64_MAX
    }
)

ints = st.one_of(st.integers(NINT64_MIN, UINT64_MAX), st.sampled_from(INT_BOUNDARIES))
uints = st.one_of(
    st.integers(0, UINT64_MAX), st.sampled_from([i for i in INT_BOUNDARIES if i >= 0])
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    st.binary(max_size=40),
    st.text(max_size=20),
)


def model_values(depth: int = MAX_CBOR_DEPTH) -> st.SearchStrategy[Any]:
    """Values of the data model whose every item sits at depth <= `depth` (top is 0)."""
    if depth == 0:
        return scalars
    inner = model_values(depth - 1)
    return st.one_of(
        scalars,
        st.lists(inner, max_size=3),
        st.dictionaries(uints, inner, max_size=3),
    )


@st.composite
def deep_chains(draw: st.DrawFn, depth: int = MAX_CBOR_DEPTH) -> Any:
    """A narrow value nested exactly `depth` containers deep (arrays and maps mixed)."""
    value = draw(scalars)
    for _ in range(depth):
        value = [value] if draw(st.booleans()) else {draw(uints): value}
    return value


#: Python values around the model: floats, text keys, big ints, sets, deeper nesting.
near_model: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        scalars,
        st.floats(allow_nan=True),
        st.integers(-(2**70), 2**70),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.one_of(uints, st.text(max_size=3), st.integers(-5, 5)), inner, max_size=3
        ),
    ),
    max_leaves=12,
)


def same(a: Any, b: Any) -> bool:
    """Structural equality that also compares types (so True != 1 and b"" != "")."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with a few random byte edits: flips, insertions, deletions, truncation."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        if not out and op != "insert":
            op = "insert"
        position = draw(st.integers(0, max(len(out) - 1, 0)))
        if op == "flip":
            out[position] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            out[position] = draw(st.integers(0, 255))
        elif op == "insert":
            out.insert(position, draw(st.integers(0, 255)))
        elif op == "delete":
            del out[position]
        else:
            del out[position:]
    return bytes(out)
