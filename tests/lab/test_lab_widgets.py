"""The ipywidgets panel restarts a live network and redraws its heatmap."""

import pytest

from railgun_ref.lab import LocalNetwork, NetworkPanel, network_panel

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
