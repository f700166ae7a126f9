"""Generate the conformance vectors by running the reference implementation.

``python -m railgun_ref.conformance.generate`` rewrites
``railgun_ref/conformance/vectors/*.json``; ``--check`` (also
``railgun-ref conformance vectors --check``) rebuilds them in memory and fails
if the committed files differ. The builders live in
`railgun_ref.conformance.builders`, one module per area; they use fixed seeds, a
seeded `random.Random` and fixed times, never a clock or ``os.urandom``, so
two runs give byte-identical files. Every vector is checked against the
reference while it is built; a reviewer then reads the diff and commits it.
"""

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from railgun_ref.conformance.builders import (
    abuse,
    bootstrap,
    capacity,
    cbor,
    dht_geometry,
    dht_lookup,
    dht_messages,
    dht_node,
    dht_records,
    ed25519,
    envelope,
    framing,
    identity,
    node_ping,
    privacy,
    relays,
    rooms,
    storeforward,
    traversal,
    voice,
)
from railgun_ref.conformance.common import (
    VECTOR_AREAS,
    JsonObject,
    read_committed,
    render_json,
    vector_file_name,
)

_VECTORS_DIR: Final = Path(__file__).resolve().parent / "vectors"

_BUILDERS: Final[dict[str, Callable[[], JsonObject]]] = {
    "cbor": cbor.build,
    "ed25519": ed25519.build,
    "identity": identity.build,
    "envelope": envelope.build,
    "framing": framing.build,
    "node_ping": node_ping.build,
    "dht_geometry": dht_geometry.build,
    "dht_records": dht_records.build,
    "dht_lookup": dht_lookup.build,
    "dht_messages": dht_messages.build,
    "dht_node": dht_node.build,
    "capacity": capacity.build,
    "voice": voice.build,
    "rooms": rooms.build,
    "bootstrap": bootstrap.build,
    "storeforward": storeforward.build,
    "abuse": abuse.build,
    "traversal": traversal.build,
    "relays": relays.build,
    "privacy": privacy.build,
}
assert tuple(_BUILDERS) == VECTOR_AREAS


def build_all() -> dict[str, str]:
    """The text of every vector file, by area, built from scratch."""
    return {area: render_json(build()) for area, build in _BUILDERS.items()}


def stale_files(built: dict[str, str]) -> Iterator[str]:
    """Why each committed file that differs from `built` is stale."""
    for area, text in built.items():
        committed = read_committed(area)
        if committed is None:
            yield f"{vector_file_name(area)} is missing"
        elif committed != text:
            yield f"{vector_file_name(area)} differs from what the generator produces"


def main(check: bool) -> int:
    """Write the vector files; with `check`, only report (exit status 1) stale ones."""
    built = build_all()
    if check:
        problems = list(stale_files(built))
        for problem in problems:
            print(f"conformance vectors: {problem}", file=sys.stderr)
        if problems:
            print(
                "conformance vectors: run `python -m railgun_ref.conformance.generate`,"
                " review the diff and commit it",
                file=sys.stderr,
            )
            return 1
        print(f"conformance vectors: all {len(built)} files are up to date")
        return 0
    _VECTORS_DIR.mkdir(parents=True, exist_ok=True)
    for area, text in built.items():
        path = _VECTORS_DIR / vector_file_name(area)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(check="--check" in sys.argv[1:]))
