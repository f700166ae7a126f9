"""`make paper`: regenerate every figure and table of ``paper/paper.md`` from data.

Two kinds of source feed the paper:

* **sweeps** (`railgun_ref.sweep`): seeded simulator runs over a grid, with 95 % CIs;
  the full sizes for the committed figures, small ones with ``--quick`` (CI);
* **saved benchmark runs** (``benchmarks/results/*.json``, each printed by a
  ``railgun-ref bench ...`` command against its named peer).

Each figure is written as Vega-Lite JSON, SVG and PNG (altair + vl-convert, so nothing
loads a remote script); each table as Markdown, spliced into ``paper.md`` between
``<!-- table:NAME -->`` and ``<!-- /table -->``. ``MANIFEST.json`` records, per item, the
sweep it came from or the SHA-256 of the benchmark files it read. ``--check`` fails when
the text references a figure or table the pipeline does not make, when a committed
figure is missing, or when it is stale: its recorded sources differ from today's (a
benchmark file changed, or a sweep's grid or seeds changed) -- a paper whose numbers no
longer come from its data.
"""

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from railgun_ref.sweep.experiments import EXPERIMENTS
from railgun_ref.sweep.runner import run_sweep

#: Repository root (the package lives in ``railgun_ref/``).
ROOT: Final = Path(__file__).resolve().parents[2]
PAPER: Final = ROOT / "paper"
RESULTS: Final = ROOT / "benchmarks" / "results"

_FIGURE_REF: Final = re.compile(r"\]\((figures/[A-Za-z0-9_.-]+\.(?:svg|png))\)")
_TABLE_BLOCK: Final = re.compile(
    r"(<!-- table:([A-Za-z0-9_-]+) -->\n)(.*?)(<!-- /table -->)", re.DOTALL
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepSpec:
    """A sweep behind a figure: experiment, grid and seeds, full and quick."""

    experiment: str
    grid: Mapping[str, Sequence[int | float]]
    seeds: int
    quick_grid: Mapping[str, Sequence[int | float]]
    quick_seeds: int

    def record(self, *, quick: bool) -> dict[str, Any]:
        grid = self.quick_grid if quick else self.grid
        return {
            "experiment": self.experiment,
            "grid": {k: list(v) for k, v in grid.items()},
            "seeds": self.quick_seeds if quick else self.seeds,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Figure:
    name: str
    sweep: SweepSpec | None = None
    results: tuple[str, ...] = ()  #: benchmark files (under benchmarks/results) it reads
    build: Callable[[Any], Any]  #: sweep summary (DataFrame) or {file: json} -> altair chart


@dataclass(frozen=True, slots=True, kw_only=True)
class Table:
    name: str
    results: tuple[str, ...]
    build: Callable[[Mapping[str, Any]], str]  #: {file: json} -> Markdown


# ------------------------------------------------------------------ figures


def _ci_chart(summary: Any, *, x: str, metrics: Sequence[tuple[str, str]], title: str) -> Any:
    """Mean with a 95 % CI band per metric against `x`, one panel per metric."""
    import altair as alt  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    frames = []
    for metric, label in metrics:
        frame = summary[[x]].copy()
        frame["metric"] = label
        frame["mean"] = summary[f"{metric}_mean"]
        frame["low"] = summary[f"{metric}_ci_low"].fillna(summary[f"{metric}_mean"])
        frame["high"] = summary[f"{metric}_ci_high"].fillna(summary[f"{metric}_mean"])
        if "rate" in metric:  # a t interval can leave [0, 1]; a rate cannot
            frame["low"], frame["high"] = frame["low"].clip(0, 1), frame["high"].clip(0, 1)
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True)
    # The layers carry no data of their own: the facet hands each panel its metric's rows.
    base = alt.Chart().encode(x=alt.X(f"{x}:Q", title=x))
    band = base.mark_area(opacity=0.25).encode(y="low:Q", y2="high:Q")
    line = base.mark_line(point=True).encode(y=alt.Y("mean:Q", title=None))
    return (
        alt.layer(band, line)
        .properties(width=260, height=180)
        .facet(column=alt.Column("metric:N", title=None), data=data)
        .resolve_scale(y="independent")
        .properties(title=title)
    )


def _dht_scale(summary: Any) -> Any:
    return _ci_chart(
        summary,
        x="nodes",
        metrics=(("hops_mean", "hops per get (mean)"), ("rpcs_mean", "FIND_VALUE RPCs per get")),
        title="DHT lookups against network size (simulator, 95 % CI across sampled networks)",
    )


def _sf_redundancy(summary: Any) -> Any:
    return _ci_chart(
        summary,
        x="redundancy",
        metrics=(
            ("delivery_rate", "delivered, with repair"),
            ("delivery_rate_without_repair", "delivered, without repair"),
        ),
        title="Store-and-forward delivery against the number of holders k (KAD churn)",
    )


def _dht_vs_kademlia(results: Mapping[str, Any]) -> Any:
    import altair as alt  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    run = results["dht_n200_churn0.3_rtt50.json"]
    rows = []
    for impl, label in (("ours", "railgun_ref"), ("kademlia", "kademlia (PyPI)")):
        gets = run["impls"][impl]["gets"]
        for stat in ("median", "p95"):
            rows.append({"impl": label, "statistic": stat, "ms": gets["latency_ms"][stat]})
    return (
        alt.Chart(pd.DataFrame(rows))
        .mark_bar()
        .encode(
            x=alt.X("impl:N", title=None),
            y=alt.Y("ms:Q", scale=alt.Scale(type="log"), title="get latency, ms (log)"),
            color=alt.Color("impl:N", legend=None),
            column=alt.Column("statistic:N", title=None),
        )
        .properties(width=140, height=200, title="200 nodes, 30 % churn, 50 ms RTT, real UDP")
    )


def _detectors(results: Mapping[str, Any]) -> Any:
    import altair as alt  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    run = results["detectors_1000h.json"]
    rows = [
        {"detector": name, "statistic": stat, "s": run[name]["detection_s"][stat]}
        for name in ("threshold_30s_x3", "phi_1s_8")
        for stat in ("median", "p95", "max")
    ]
    return (
        alt.Chart(pd.DataFrame(rows))
        .mark_bar()
        .encode(
            x=alt.X("statistic:N", sort=["median", "p95", "max"], title=None),
            y=alt.Y("s:Q", title="time to detect a takedown, s"),
            color="detector:N",
            xOffset="detector:N",
        )
        .properties(width=260, height=200, title="Failure detection, 500 takedowns")
    )


FIGURES: Final[tuple[Figure, ...]] = (
    Figure(
        name="dht_scale",
        sweep=SweepSpec(
            experiment="dht",
            grid={"nodes": [25, 50, 100, 200], "keys": [50]},
            seeds=5,
            quick_grid={"nodes": [12, 24], "keys": [4]},
            quick_seeds=2,
        ),
        build=_dht_scale,
    ),
    Figure(
        name="sf_redundancy",
        sweep=SweepSpec(
            experiment="storeforward",
            grid={"redundancy": [1, 2, 3, 4, 5]},
            seeds=5,
            quick_grid={"redundancy": [1, 3], "messages": [10], "days": [1.0]},
            quick_seeds=2,
        ),
        build=_sf_redundancy,
    ),
    Figure(
        name="dht_vs_kademlia", results=("dht_n200_churn0.3_rtt50.json",), build=_dht_vs_kademlia
    ),
    Figure(name="detectors", results=("detectors_1000h.json",), build=_detectors),
)


# ------------------------------------------------------------------ tables


def _at(data: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(data, Mapping) or key not in data:
            return None
        data = data[key]
    return data


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


#: (benchmark file, what, our value, the peer's value or None, goal text)
HEADLINES: Final = (
    (
        "dht_n200_churn0.3_rtt50.json",
        "DHT get success, 30 % churn",
        "impls.ours.gets.success_rate",
        "impls.kademlia.gets.success_rate",
        "1.0",
    ),
    (
        "dht_n200_churn0.3_rtt50.json",
        "DHT get median, ms",
        "impls.ours.gets.latency_ms.median",
        "impls.kademlia.gets.latency_ms.median",
        "–",
    ),
    (
        "dht_sim_n10000.json",
        "DHT get success, 10,000 simulated nodes",
        "impls.ours.gets.success_rate",
        None,
        "1.0",
    ),
    (
        "detectors_1000h.json",
        "takedown detection p95, s (φ vs 30 s × 3)",
        "phi_1s_8.detection_s.p95",
        "threshold_30s_x3.detection_s.p95",
        "≤ 10",
    ),
    (
        "storeforward_sim.json",
        "store-and-forward delivery, with repair",
        "delivery_rate",
        None,
        "≥ 0.999",
    ),
    (
        "storeforward_sim.json",
        "store-and-forward delivery, without repair",
        "delivery_rate_without_repair",
        None,
        "–",
    ),
    (
        "storeforward_sim.json",
        "store-and-forward replicas deleted within a repair period of the holder online",
        "deleted_within_repair_period_of_holder_online",
        None,
        "≥ 0.99",
    ),
    ("storeforward_sim.json", "resurrected messages", "resurrections", None, "0"),
    (
        "bootstrap.json",
        "bootstrap, first verified peer p95, s (raced vs sequential)",
        "first_peer_s.p95",
        "sequential.first_peer_s.p95",
        "≤ 3",
    ),
    (
        "voice.json",
        "SFU, min frames/s per stream at 8",
        "goals.G1_every_stream_at_8_ge_49_5_fps.min_frames_per_s",
        None,
        "≥ 49.5",
    ),
    (
        "nat_netlab.json",
        "NAT traversal on kernel NATs: punchable pairs direct (DCUtR in IPFS: 0.70)",
        "punchable_direct_rate",
        None,
        "≥ 0.99",
    ),
    (
        "nat_netlab.json",
        "NAT traversal: pairs connected (direct or relayed)",
        "connected_rate",
        None,
        "1.0",
    ),
    (
        "attacks_sim.json",
        "gets with 20 % lying nodes, 1,000 simulated nodes (defences vs none)",
        "lookup_success_malicious_20pct",
        "lookup_success_malicious_20pct_undefended",
        "≥ 0.99",
    ),
    (
        "attacks_sim.json",
        "two-IP eclipse: attacker's share of a new node's table (diversity vs none)",
        "eclipse_share_2_ips",
        "eclipse_share_2_ips_without_diversity",
        "< 0.10",
    ),
    (
        "attacks_sim.json",
        "honest PINGs answered under a 10× flood (limits vs none)",
        "honest_delivery_under_flood",
        "honest_delivery_under_flood_undefended",
        "≥ 0.95",
    ),
    (
        "voice_video.json",
        "video SFU host CPU per forwarded frame at 12, ours / stock MediaRelay",
        "goals.V3_host_cpu_per_forwarded_frame_le_tenth_of_stock.ours_over_stock_by_participants.12",
        None,
        "≤ 0.1",
    ),
    (
        "voice_video.json",
        "video, min frames/s per stream at 8 (loaded 2-core machine)",
        "goals.V1_every_video_stream_at_8_ge_29_fps.fps_min",
        None,
        "≥ 29",
    ),
    (
        "flood_localhost.json",
        "PINGs from 20 known contacts answered under a 10,000-PING flood",
        "known_contacts_answered_under_flood",
        None,
        "≥ 0.99",
    ),
    (
        "dht_n500_churn0.json",
        "DHT on UDP, 500 nodes: setup s (ours vs kademlia)",
        "impls.ours.setup_s",
        "impls.kademlia.setup_s",
        "≤ 2× peer",
    ),
    (
        "wire.json",
        "envelope decode+verify / raw Ed25519 verify",
        "decode_verify_vs_raw_verify",
        None,
        "≥ 0.8",
    ),
)


def _headlines(results: Mapping[str, Any]) -> str:
    lines = [
        "| result | ours | peer or baseline | goal | source |",
        "|---|---|---|---|---|",
    ]
    for source, what, ours, peer, goal in HEADLINES:
        data = results[source]
        peer_value = _fmt(_at(data, peer)) if peer else "–"
        lines.append(f"| {what} | {_fmt(_at(data, ours))} | {peer_value} | {goal} | `{source}` |")
    return "\n".join(lines) + "\n"


TABLES: Final[tuple[Table, ...]] = (
    Table(
        name="headlines",
        results=tuple(dict.fromkeys(row[0] for row in HEADLINES)),
        build=_headlines,
    ),
)


# ------------------------------------------------------------------ pipeline


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_results(names: Sequence[str]) -> dict[str, Any]:
    return {name: json.loads((RESULTS / name).read_text(encoding="utf-8")) for name in names}


def sources_of(item: Figure | Table, *, quick: bool) -> dict[str, Any]:
    """What an item is made from, as the manifest records it."""
    record: dict[str, Any] = {"results": {name: _sha256(RESULTS / name) for name in item.results}}
    if isinstance(item, Figure) and item.sweep is not None:
        record["sweep"] = item.sweep.record(quick=quick)
    return record


def _sweep_summary(spec: SweepSpec, *, quick: bool, workers: int | None) -> Any:
    grid = spec.quick_grid if quick else spec.grid
    seeds = list(range(1, (spec.quick_seeds if quick else spec.seeds) + 1))
    result = run_sweep(EXPERIMENTS[spec.experiment], grid, seeds=seeds, workers=workers)
    if result.failed_runs:
        errors = sorted({e for e in result.rows["error"] if isinstance(e, str)})
        raise RuntimeError(f"sweep {spec.experiment}: {result.failed_runs} runs failed: {errors}")
    return result.summary


def _save_chart(chart: Any, out: Path, name: str) -> None:
    import vl_convert as vlc  # noqa: PLC0415

    spec = chart.to_dict()
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.vl.json").write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
    (out / f"{name}.svg").write_text(vlc.vegalite_to_svg(spec), encoding="utf-8")
    (out / f"{name}.png").write_bytes(vlc.vegalite_to_png(spec, scale=2))


def _manifest(out: Path, *, quick: bool, only: frozenset[str] | None) -> dict[str, Any]:
    """The manifest to update: the existing one when regenerating only some items."""
    path = out / "MANIFEST.json"
    if only is not None and path.exists():
        existing: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if existing.get("quick") == quick:
            return existing
    return {"quick": quick, "items": {}}


def generate(
    out: Path,
    *,
    quick: bool,
    workers: int | None,
    log: Callable[[str], None],
    only: frozenset[str] | None = None,
) -> None:
    """Every figure and table (or those named in `only`) into `out`, with MANIFEST.json."""
    names = {figure.name for figure in FIGURES} | {table.name for table in TABLES}
    unknown = (only or frozenset()) - names
    if unknown:
        raise SystemExit(f"paper: no figure or table named {', '.join(sorted(unknown))}")
    manifest = _manifest(out, quick=quick, only=only)
    for figure in FIGURES:
        if only is not None and figure.name not in only:
            continue
        log(f"figure {figure.name}")
        if figure.sweep is not None:
            data = _sweep_summary(figure.sweep, quick=quick, workers=workers)
        else:
            data = _load_results(figure.results)
        _save_chart(figure.build(data), out / "figures", figure.name)
        manifest["items"][f"figures/{figure.name}.svg"] = sources_of(figure, quick=quick)
    for table in TABLES:
        if only is not None and table.name not in only:
            continue
        log(f"table {table.name}")
        (out / "tables").mkdir(parents=True, exist_ok=True)
        text = table.build(_load_results(table.results))
        (out / "tables" / f"{table.name}.md").write_text(text, encoding="utf-8")
        manifest["items"][f"tables/{table.name}.md"] = sources_of(table, quick=quick)
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def splice_tables(paper: str, tables: Path) -> str:
    """`paper` with every table block replaced by the generated Markdown."""

    def replace(match: re.Match[str]) -> str:
        return (
            match.group(1) + (tables / f"{match.group(2)}.md").read_text("utf-8") + match.group(4)
        )

    return _TABLE_BLOCK.sub(replace, paper)


def check(paper_dir: Path = PAPER) -> list[str]:
    """What is wrong with the committed paper: missing, unknown or stale items."""
    text = (paper_dir / "paper.md").read_text(encoding="utf-8")
    manifest_path = paper_dir / "MANIFEST.json"
    if not manifest_path.exists():
        return ["paper/MANIFEST.json is missing: run `make paper`"]
    recorded = json.loads(manifest_path.read_text(encoding="utf-8"))["items"]
    known = {f"figures/{f.name}.svg": f for f in FIGURES} | {
        f"tables/{t.name}.md": t for t in TABLES
    }
    problems = []
    referenced = [m.group(1).replace(".png", ".svg") for m in _FIGURE_REF.finditer(text)]
    referenced += [f"tables/{m.group(2)}.md" for m in _TABLE_BLOCK.finditer(text)]
    for ref in dict.fromkeys(referenced):
        item = known.get(ref)
        if item is None:
            problems.append(f"{ref}: referenced by paper.md but no pipeline item makes it")
        elif not (paper_dir / ref).exists():
            problems.append(f"{ref}: missing (run `make paper`)")
        elif recorded.get(ref) != sources_of(item, quick=False):
            problems.append(f"{ref}: stale, its sources changed since it was made (`make paper`)")
    expected = splice_tables(text, paper_dir / "tables")
    if expected != text:
        problems.append("paper.md: a table block differs from tables/ (run `make paper`)")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m railgun_ref.sweep.paper")
    parser.add_argument("--quick", action="store_true", help="small sweeps into --out (CI)")
    parser.add_argument("--out", default=None, help="output directory (default: paper/)")
    parser.add_argument("--workers", type=int, default=None, help="sweep pool size")
    parser.add_argument("--check", action="store_true", help="only check the committed paper")
    parser.add_argument(
        "--only", action="append", default=None, metavar="NAME", help="regenerate only these"
    )
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(f"[paper] {message}", file=sys.stderr, flush=True)

    if not args.check:
        out = Path(args.out) if args.out else PAPER
        only = frozenset(args.only) if args.only else None
        generate(out, quick=args.quick, workers=args.workers, log=log, only=only)
        if not args.quick:
            paper = out / "paper.md"
            paper.write_text(splice_tables(paper.read_text("utf-8"), out / "tables"), "utf-8")
    problems = check()
    for problem in problems:
        print(f"paper: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
