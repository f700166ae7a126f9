"""The ipywidgets panels: restart a network and redraw its heatmap; run and draw a lookup."""

import pytest

from railgun_ref.dht.service import DhtConfig
from railgun_ref.lab import (
    LocalNetwork,
    LookupPanel,
    NetworkPanel,
    lookup_panel,
    network_panel,
    room_key,
)
from railgun_ref.node import NodeConfig

pytestmark = pytest.mark.integration


def test_clicking_the_button_restarts_with_the_slider_count_and_draws() -> None:
    with LocalNetwork.start(3, seed=1) as net:
        panel = network_panel(net, max_nodes=8)
        assert isinstance(panel, NetworkPanel)
        assert (panel.slider.value, panel.slider.max) == (3, 8)
        assert panel.output.outputs == ()
        panel.slider.value = 4
        panel.button.click()
        assert net.size == 4
        assert panel.last_pings is not None and len(panel.last_pings) == 12
        assert panel.last_pings["outcome"].eq("pong").all()
        assert panel.status.value == "4 nodes, 12 pings: {'pong': 12}"
        (output,) = panel.output.outputs
        assert output["output_type"] == "display_data" and output["data"]
        panel.slider.value = 2
        panel.redraw()
        assert net.size == 2 and len(panel.output.outputs) == 1


def test_the_panel_displays_as_its_widget() -> None:
    with LocalNetwork.start(2, seed=1) as net:
        panel = network_panel(net)
        bundle = panel._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == panel.widget.model_id


def test_the_lookup_panel_runs_the_lookup_it_is_set_to_and_draws_it() -> None:
    config = NodeConfig(request_timeout=1.0, dht=DhtConfig(k=3))
    with LocalNetwork.start(8, seed=3, config=config, join=True) as net:
        panel = lookup_panel(net, start=2, room="general")
        assert isinstance(panel, LookupPanel)
        assert panel.start.options == tuple((f"node {i}", i) for i in range(8))
        assert panel.start.value == 2 and panel.output.outputs == ()
        panel.start.value, panel.room.value = 6, "lobby"
        panel.button.click()
        result, frame = panel.last_result, panel.last_frame
        assert result is not None and frame is not None
        assert result.target == room_key("lobby") and len(result.closest) == 3
        assert 6 not in set(frame["node"]) and set(frame["learned_from"]) >= {6}
        assert panel.status.value.startswith("node 6 -> room 'lobby': 3 closest found")
        (output,) = panel.output.outputs
        assert output["output_type"] == "display_data" and output["data"]
        net.stop_nodes([0, 6])
        panel.button.click()  # node 6 is still selected, but no longer runs
        assert panel.status.value == "node 6 was stopped; pick another"
        assert [value for _, value in panel.start.options] == [1, 2, 3, 4, 5, 7]
        assert panel.start.value == 1  # the first running node instead
        assert panel.last_result is result  # nothing new was drawn
        assert len(panel.run()) >= 1 and panel.last_result is not result


def test_the_lookup_panel_displays_as_its_widget() -> None:
    with LocalNetwork.start(2, seed=1) as net:
        panel = lookup_panel(net)
        bundle = panel._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == panel.widget.model_id
