"""Papermill injects parameters after the `parameters` cell, and the notebook obeys them."""

import papermill as pm
from nbhelpers import ROOT


def _stdout(nb) -> str:
    return "".join(
        o.get("text", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.get("output_type") == "stream"
    )


def test_injected_parameters_change_the_run(tmp_path):
    out = tmp_path / "welcome.ipynb"
    nb = pm.execute_notebook(
        str(ROOT / "notebooks" / "00_welcome.ipynb"),
        str(out),
        kernel_name="python3",
        parameters={"LOG_LINES": 7, "SEED": 3},
        cwd=str(ROOT / "notebooks"),
        progress_bar=False,
    )
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    injected = tags.index(["injected-parameters"])
    assert tags[injected - 1] == ["parameters"], "injected right after the parameters cell"
    assert "LOG_LINES = 7" in nb.cells[injected].source
    # The slider starts where the parameter says. nbclient stores every widget's state in the
    # notebook's metadata; the shown view (a VBox) must hold the "log lines" slider, at 7, not 40.
    views = [
        o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
        for c in nb.cells
        for o in c.get("outputs", [])
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert views, "the welcome notebook shows a widget"
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    sliders = {
        k: w["state"]
        for k, w in state.items()
        if w["model_name"] == "IntSliderModel" and w["state"].get("description") == "log lines"
    }
    assert len(sliders) == 1, "one 'log lines' slider"
    ((slider_id, slider),) = sliders.items()
    assert slider["value"] == 7, f"the slider starts at {slider['value']}, not the injected 7"
    assert f"IPY_MODEL_{slider_id}" in state[views[-1]]["state"]["children"], "the box shows it"
    assert "checks OK" in _stdout(nb)


def test_lab_parameters_are_injectable(tmp_path):
    out = tmp_path / "lab.ipynb"
    nb = pm.execute_notebook(
        str(ROOT / "solutions" / "lab01_tokens.ipynb"),
        str(out),
        kernel_name="python3",
        parameters={"FAST": True, "SEED": 5},
        cwd=str(ROOT / "solutions"),
        progress_bar=False,
    )
    figure = [
        o
        for c in nb.cells
        for o in c.get("outputs", [])
        if "application/vnd.plotly.v1+json" in o.get("data", {})
    ]
    assert figure, "the lab ends with a plotly figure"
    xs = figure[-1]["data"]["application/vnd.plotly.v1+json"]["data"][0]["x"]
    assert len(xs) == 20, "FAST=True shortens the plotted range to 20 turns"
