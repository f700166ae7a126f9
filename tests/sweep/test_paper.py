"""`make paper`: every figure and table the text references is made by the pipeline,
exists and is fresh; the quick pipeline (what CI runs) makes all of them."""

import json
import shutil
from pathlib import Path

import pytest

from railgun_ref.sweep import paper

pytestmark = pytest.mark.timeout(600)


def test_committed_paper_is_complete_and_fresh() -> None:
    assert paper.check() == []


def test_quick_pipeline_makes_every_item(tmp_path: Path) -> None:
    paper.generate(tmp_path, quick=True, workers=0, log=lambda _m: None)
    manifest = json.loads((tmp_path / "MANIFEST.json").read_text())
    assert manifest["quick"] is True
    for figure in paper.FIGURES:
        for suffix in (".svg", ".png", ".vl.json"):
            made = tmp_path / "figures" / f"{figure.name}{suffix}"
            assert made.stat().st_size > 0, made
        assert "<svg" in (tmp_path / "figures" / f"{figure.name}.svg").read_text()
        assert f"figures/{figure.name}.svg" in manifest["items"]
    for table in paper.TABLES:
        assert (tmp_path / "tables" / f"{table.name}.md").read_text().startswith("| ")


def _copy_paper(tmp_path: Path) -> Path:
    copy = tmp_path / "paper"
    shutil.copytree(paper.PAPER, copy, ignore=shutil.ignore_patterns("spec.md"))
    return copy


def test_check_finds_a_stale_figure(tmp_path: Path) -> None:
    copy = _copy_paper(tmp_path)
    manifest = json.loads((copy / "MANIFEST.json").read_text())
    item = manifest["items"]["figures/dht_vs_kademlia.svg"]
    name = next(iter(item["results"]))
    item["results"][name] = "0" * 64  # made from an older version of the benchmark file
    (copy / "MANIFEST.json").write_text(json.dumps(manifest))
    assert paper.check(copy) == [
        "figures/dht_vs_kademlia.svg: stale, its sources changed since it was made (`make paper`)"
    ]


def test_check_finds_missing_unknown_and_edited_items(tmp_path: Path) -> None:
    copy = _copy_paper(tmp_path)
    (copy / "figures" / "detectors.svg").unlink()
    text = (copy / "paper.md").read_text()
    text += "\n![nothing makes this](figures/no_such_figure.svg)\n"
    text = text.replace("| result | ours |", "| result (edited by hand) | ours |")
    (copy / "paper.md").write_text(text)
    problems = paper.check(copy)
    assert "figures/detectors.svg: missing (run `make paper`)" in problems
    assert any(p.startswith("figures/no_such_figure.svg: referenced") for p in problems)
    assert any(p.startswith("paper.md: a table block differs") for p in problems)
