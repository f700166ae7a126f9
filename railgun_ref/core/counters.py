"""Typed counters: every core and driver counts with names from its own enum.

A counter name is a member of a ``StrEnum`` the component declares (its value
is the name ``/metrics`` and ``snapshot()`` show); an optional *label*
refines it with a member of another enum (an error code, a path, a state), so
``received.p2p`` is ``counters.inc(TransportCounter.RECEIVED, label=Path.P2P)``.
A label is written by one rule (`label_text`): its value when the value is
text, else its name exactly as declared -- so error codes, which are
``IntEnum`` members, appear as ``rejected.BAD_SIGNATURE`` with no mirror enum.
No counter is ever named by a string literal: a rename is a type error, not a
silently new series.
"""

from collections.abc import Iterator, Mapping
from enum import Enum, StrEnum
from typing import Generic, TypeVar

__all__ = ["Counters", "label_text"]

N = TypeVar("N", bound=StrEnum)


def label_text(label: Enum) -> str:
    """A label in a flat counter name: the member's value if it is text, else its name as is."""
    value = label.value
    return value if isinstance(value, str) else label.name


class Counters(Mapping[str, int], Generic[N]):
    """Monotonic counters keyed by (name, label); read as a flat ``{"name.label": n}`` mapping."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: dict[tuple[N, str | None], int] = {}

    def inc(self, name: N, amount: int = 1, *, label: Enum | None = None) -> None:
        key = (name, None if label is None else label_text(label))
        self._values[key] = self._values.get(key, 0) + amount

    def get_count(self, name: N, label: Enum | None = None) -> int:
        """The value of one counter (0 if it never moved)."""
        return self._values.get((name, None if label is None else label_text(label)), 0)

    def total(self, name: N) -> int:
        """The sum over every label of ``name`` (and the unlabelled counter)."""
        return sum(v for (n, _), v in self._values.items() if n is name)

    def snapshot(self) -> dict[str, int]:
        """A plain ``{"name" or "name.label": value}`` copy, sorted by key."""
        return dict(sorted(self._flat().items()))

    def _flat(self) -> dict[str, int]:
        return {
            name.value if label is None else f"{name.value}.{label}": value
            for (name, label), value in self._values.items()
        }

    # Mapping[str, int]: the flat view, for /metrics and for printing.
    def __getitem__(self, key: str) -> int:
        return self._flat()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        return len(self._values)
