"""The demo's live table shows states and failures as text, never as raw markup.

The live view is redrawn each time a log line is printed above it with
``print(markup=False)``; rich then renders the view with markup off, so any markup
string in it (``[green]connected-aws[/]``) showed as text. The view is built from
`rich.text.Text`, which has no markup to show. Both a terminal and a captured
(non-terminal) run are checked.
"""

import io
from pathlib import Path

import pytest
from rich.console import Console
from rich.live import Live

from railgun_ref.apps.demo import ClientView, FailoverNetwork, render

SCENARIOS = ("dns", "ip", "takedown")


def _network(tmp_path: Path) -> FailoverNetwork:
    network = FailoverNetwork(peers=3, data_dir=tmp_path)
    network.scenario = "takedown"
    network.phase = "FAULT - the central process is killed"
    states = ("connected-aws", "connected-p2p", "degraded")
    for index, state in enumerate(states):
        network.views.append(
            ClientView(
                index=index,
                address=f"127.0.0.{index + 2}:4000",
                node_id=f"{index:064x}",
                state=state,
                path="p2p" if state == "connected-p2p" else "central",
                last_failure="[Errno 111] connection refused" if index else "",
            )
        )
    return network


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "captured"])
def test_live_view_prints_no_markup(tmp_path: Path, terminal: bool) -> None:
    network = _network(tmp_path)
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, width=160, color_system=None)
    with Live(render(network, SCENARIOS), console=console, auto_refresh=False) as live:
        for second in range(3):
            live.console.print(f"[{second:6.1f} s] takedown: a log line", markup=False)
            live.update(render(network, SCENARIOS), refresh=True)
    text = out.getvalue()
    assert "[/" not in text
    assert "[green]" not in text and "[bold]" not in text
    for state in ("connected-aws", "connected-p2p", "degraded"):
        assert state in text
    # A failure text with brackets is shown as it is, not taken for a style.
    assert "[Errno 111] connection refused" in text
    assert "3/3 Complete takedown" in text
