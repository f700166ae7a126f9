"""The lab's third-party modules, checked before any of them is imported.

Without the ``lab`` extra, ``import railgun_ref.lab`` raises one `ImportError`
naming the command that fixes it, not a bare `ModuleNotFoundError` from deep
inside a helper module.
"""

from importlib.util import find_spec
from typing import Final

#: The modules the ``lab`` extra installs that the helpers import.
LAB_EXTRA_MODULES: Final = ("pandas", "altair", "vl_convert", "networkx", "scipy", "ipywidgets")

_missing = [name for name in LAB_EXTRA_MODULES if find_spec(name) is None]
if _missing:
    raise ImportError(
        f"railgun_ref.lab needs the lab extra (missing: {', '.join(_missing)}); "
        "install it with: pip install 'railgun-ref[lab]'",
        name=__name__,
    )
