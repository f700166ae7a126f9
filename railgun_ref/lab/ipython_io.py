"""Typed doors to IPython's display functions, which have no annotations.

IPython ships ``py.typed`` but defines ``display`` and ``DisplayHandle.update``
without annotations, so mypy --strict refuses a call to them from typed code.
This module is the one place the lab calls them: each is bound to a name
typed ``Callable[..., object]`` (a call that claims nothing about its result),
and the wrappers check a result at run time before giving it a type.
(`railgun_ref.lab.notebooks` does the same for nbformat, which only the
notebook runner needs.)
"""

from collections.abc import Callable, Mapping
from typing import Any, Final

from IPython.core.display_functions import DisplayHandle, display

__all__ = ["DisplayHandle", "display_updatable", "update_display"]

_display: Final[Callable[..., object]] = display


def display_updatable(bundle: Mapping[str, Any]) -> DisplayHandle | None:
    """Display the raw mime `bundle` with a fresh display id; its handle updates it in place.

    ``None`` outside IPython, where there is no display to update.
    """
    handle = _display(bundle, raw=True, display_id=True)
    return handle if isinstance(handle, DisplayHandle) else None


def update_display(handle: DisplayHandle, bundle: Mapping[str, Any]) -> None:
    """Replace what `handle` shows with the raw mime `bundle`."""
    update: Callable[..., object] = handle.update
    update(bundle, raw=True)
