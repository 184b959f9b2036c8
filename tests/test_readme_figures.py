"""Every measured figure the README quotes comes from a committed artifact (issue #22, item 8)."""

import json
import re

from nbhelpers import ROOT

ARTIFACTS = (
    sorted((ROOT / "data" / "bench").glob("*.json"))
    + [ROOT / "data" / "checkpoints" / "diffusion.json"]
    + [ROOT / "data" / "checkpoints" / "autoregressive.json"]
    + sorted((ROOT / "data" / "checkpoints" / "spans").glob("*.json"))
)


def _numbers(data):
    if isinstance(data, bool):
        return
    if isinstance(data, (int, float)):
        yield float(data)
    elif isinstance(data, dict):
        for value in data.values():
            yield from _numbers(value)
    elif isinstance(data, list):
        for value in data:
            yield from _numbers(value)


def test_bench_artifacts_name_their_device_command_and_date():
    for path in ROOT.glob("data/bench/*.json"):
        data = json.loads(path.read_text())
        for key in ("device", "command", "date"):
            assert isinstance(data.get(key), str) and data[key].strip(), f"{path.name} has no {key}"


def test_every_percentage_in_the_readme_is_recorded_in_an_artifact():
    readme = (ROOT / "README.md").read_text()
    recorded = [x for path in ARTIFACTS for x in _numbers(json.loads(path.read_text()))]
    quoted = [float(p) for p in re.findall(r"(\d+(?:\.\d+)?)%", readme)]
    missing = [
        p for p in quoted if not any(abs(100 * x - p) < 0.05 or abs(x - p) < 0.05 for x in recorded)
    ]
    assert not missing, (
        f"README figures in no artifact (data/bench/, the checkpoints' .json, spans/): {missing}"
    )
    for name in re.findall(r"data/bench/([\w.-]+\.json)", readme):
        assert (ROOT / "data" / "bench" / name).is_file(), name


def test_readme_headlines_the_method_that_reaches_the_target_in_fewest_passes():
    """The checkpoint's headline is the method that reaches 90% on every field in the fewest
    forward passes per record, as re-scored with chapter 04's sampler (diffusion.json's decoding
    section), quoted with its passes and the command that measured it."""
    from unmasked.records import FIELDS
    from unmasked.train import TARGET_ACCURACY

    decoding = json.loads((ROOT / "data" / "checkpoints" / "diffusion.json").read_text())[
        "decoding"
    ]
    reached = [
        r
        for r in decoding["evaluations"]
        if min(r["accuracy"][k] for k in FIELDS) >= TARGET_ACCURACY
    ]
    best = min(reached, key=lambda r: r["passes"]["mean"])
    readme = (ROOT / "README.md").read_text()
    assert f"`{decoding['command']}`" in readme
    headline = (
        f"{100 * best['accuracy']['all']:.1f}% of them in {best['passes']['mean']:.2f} forward "
        "passes per record"
    )
    assert headline in " ".join(readme.split()), headline
