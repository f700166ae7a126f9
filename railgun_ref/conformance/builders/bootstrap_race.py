"""The race-schedule part of bootstrap.json (BOOT-4): filled in with the race core."""

from typing import Final

from railgun_ref.conformance.builders.base import Vectors

NOTES: Final[dict[str, str]] = {}


def add_cases(v: Vectors) -> None:
    """No race cases yet."""
