"""The repository stands on its own: no tracked text points at a file outside it.

The design is described in the project's own words (paper/spec.md §0.7, "the Rail Gun
design") and calibration figures cite their public sources (datasets/README.md,
"References"). This test fails when a tracked text file names an outside working file
(a ``shared/`` path, a calibration notes file) or speaks of the design as an outside
"seed" document. "Seed" in its other senses stays legal: a random seed (``--seed``,
``Simulator(seed=1)``, "the same seed gives the same trace") and an Ed25519 private-key
seed (RFC 8032; ``Identity.from_seed``, "the 32-byte seed", "the seed's secret scalar").
"""

import json
import re
import subprocess
from pathlib import Path
from typing import Final

import pytest

REPO: Final = Path(__file__).resolve().parents[1]

#: Each pattern names an outside file or the design as an outside document. Case-insensitive.
FORBIDDEN: Final = (
    re.compile(r"(?<![\w.-])shared/"),
    re.compile(r"CALIBRATION\.md", re.IGNORECASE),
    re.compile(r"\bseed[ -]document", re.IGNORECASE),
    re.compile(r"\bthe seed (document|design|architecture)\b", re.IGNORECASE),
    # "the seed's defaults / rule / API / table ..."; key material after it is an Ed25519 seed.
    re.compile(
        r"\bthe seed's\b(?!\s+(secret|private|public|scalar|bytes|hex|length|size)\b)",
        re.IGNORECASE,
    ),
    re.compile(r"\bin the seed\b(?!s\b|\s*(=|\(|\[|bytes|file|of the|rng|generator))", re.I),
    re.compile(r"\b(beyond|than|unlike) the seed\b(?!s)", re.IGNORECASE),
    re.compile(r"\bthe seed (says|calls|names|scores|fixes|types|lets|prices|spells)\b", re.I),
)

#: This file quotes the forbidden phrases as examples, so it is the one file not scanned.
SELF: Final = Path(__file__).resolve().relative_to(REPO).as_posix()


def offending(text: str) -> list[str]:
    """The forbidden phrases found in `text`, in order."""
    found: list[tuple[int, str]] = []
    for pattern in FORBIDDEN:
        found.extend((m.start(), m.group(0)) for m in pattern.finditer(text))
    return [phrase for _, phrase in sorted(found)]


def notebook_text(raw: str) -> str:
    """A notebook's cell sources (markdown and code), without the stored outputs."""
    cells = json.loads(raw).get("cells", [])
    return "\n".join("".join(cell.get("source", [])) for cell in cells)


def tracked_texts() -> list[tuple[str, str]]:
    """(path, text) of every tracked text file; binary and undecodable files are skipped."""
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout
    out = []
    for name in listing.decode().split("\0"):
        path = REPO / name
        if not name or name == SELF or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        out.append((name, notebook_text(text) if name.endswith(".ipynb") else text))
    return out


@pytest.mark.parametrize(
    "text",
    [
        "Calibration notes: the project's `shared/CALIBRATION.md`.",
        "see /work/shared/seed/rail-gun-hybrid-transport.md",
        "CALIBRATION.md 3.4 quotes the medians",
        "where the seed document or the literature leaves a choice open",
        "where the seed design, an RFC or common libraries leave more than one option",
        "the Seed Architecture of the transport",
        "the seed's defaults: 30 s checks, 3 failures",
        "The seed's `HybridTransportService`: modes, states",
        "failover within the seed's window",
        "as defined in the seed, the client fails over",
        "Beyond the seed, the configuration MAY add `detector`",
        'the seed says "10+ Mbps: 50 points"',
        'the service the seed calls "AWS"',
    ],
)
def test_design_document_references_are_caught(text: str) -> None:
    assert offending(text)


@pytest.mark.parametrize(
    "text",
    [
        "railgun-ref sim --nodes 50 --seed 1 --json",
        "net = LocalNetwork.start(20, seed=1)",
        "in a discrete-event simulator where the same seed gives the same trace byte for byte",
        "Node ids come from the seed, so they are the same on every run.",
        "All randomness comes from one Generator seeded with `SEED`; the same seed and",
        "An identity file holds the seed as one line of ASCII",
        "identity = Identity.from_seed(seed_for('identity/key-1'))",
        "S = r + k·a for the seed's secret scalar a",
        "the public key derived from the seed (ID-1.1)",
        "non-ASCII bytes after the seed",
        "The seeds are dealt round-robin to `d` paths",
        "nodes learned in the seeds list are hop 1",
        "packages/shared_utils/ and a node's shared-secret",
        "the fields of the config are read in the seed = n repeated form",
    ],
)
def test_random_and_key_seeds_are_not_caught(text: str) -> None:
    assert offending(text) == []


def test_notebook_outputs_are_not_scanned() -> None:
    raw = json.dumps(
        {
            "cells": [
                {"cell_type": "markdown", "source": ["Identities come from the seed."]},
                {"cell_type": "code", "source": ["x = 1"], "outputs": [{"text": "shared/"}]},
            ]
        }
    )
    assert offending(notebook_text(raw)) == []


def test_no_tracked_file_points_outside_the_repository() -> None:
    texts = tracked_texts()
    assert any(name == "paper/spec.md" for name, _ in texts)  # the listing worked
    hits = {name: found for name, text in texts if (found := offending(text))}
    assert hits == {}
