"""railgun_ref: reference implementation, conformance spec and research toolkit of the
Rail Gun hybrid transport (README.md; the normative text is paper/spec.md).

The packages are layered (tests/test_sans_io.py): the sans-IO protocol cores
(`core`, `wire`, `identity`, `rpc`, `dht`, `capacity`, `stun`, `transport`,
`voice`, `relay`, `node`, ...), all IO in `drivers`, the integration API
`client`, and above it `apps`, `lab`, `bench` and `cli`.

`__version__` is the installed distribution's version or, in a source checkout
that was never installed, the version in pyproject.toml. It is looked up on
first use, so importing a core reads no file and loads no metadata library.
"""

import functools
from typing import Final

#: The distribution's name on the package index (pyproject.toml ``[project] name``).
DISTRIBUTION: Final = "railgun-ref"

__all__ = ["DISTRIBUTION", "__version__"]


@functools.cache
def _version() -> str:
    # Imported here: importlib.metadata alone costs tens of milliseconds at start-up.
    import tomllib  # noqa: PLC0415
    from importlib import metadata  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        try:
            project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
            return str(project["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "0+unknown"


def __getattr__(name: str) -> str:
    if name == "__version__":
        return _version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
