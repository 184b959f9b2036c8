"""unmasked.prices: prices.json rebuilt from a litellm price map (a small fake one here; no
litellm needed)."""

import importlib.util
import json

import pytest

from unmasked import costs, prices

FAKE_LITELLM = {
    "sample_spec": {"input_cost_per_token": 0.0},
    "big-model": {
        "input_cost_per_token": 5e-06,
        "output_cost_per_token": 2.5e-05,
        "cache_read_input_token_cost": 5e-07,
        "cache_creation_input_token_cost": 6.25e-06,
        "max_input_tokens": 1_000_000,
        "max_output_tokens": 64_000,
        "input_cost_per_token_above_200k_tokens": 1e-05,
        "output_cost_per_token_above_200k_tokens": 3.75e-05,
        "cache_read_input_token_cost_above_200k_tokens": 1e-06,
        "source": "https://example.com/pricing",
        "supports_vision": True,
    },
    "old-model": {
        "input_cost_per_token": 3e-06,
        "output_cost_per_token": 1.5e-05,
        "max_input_tokens": 200_000,
        "deprecation_date": "2026-01-01",
    },
    "acme/diffuser": {
        "input_cost_per_token": 2.5e-07,
        "output_cost_per_token": 7.5e-07,
        "max_input_tokens": 128_000,
    },
    "unused-model": {
        "input_cost_per_token": 1e-06,
        "output_cost_per_token": 1e-06,
        "max_input_tokens": 8_000,
    },
}
FAKE_COURSE = {
    "big": dict(litellm="big-model", provider="acme", tier="frontier"),
    "old": dict(litellm="old-model", provider="acme", tier="mid"),
    "acme/diffuser": dict(
        litellm="acme/diffuser",
        provider="acme",
        tier="fast",
        kind="diffusion",
        hand=dict(output_tokens_per_second=900),
        hand_note="900 tok/s entered by hand from a blog.",
    ),
}


@pytest.fixture
def fake_litellm(tmp_path):
    path = tmp_path / "model_prices_and_context_window_backup.json"
    path.write_text(json.dumps(FAKE_LITELLM))
    return path


def test_refresh_keeps_the_course_models_with_provenance(fake_litellm, tmp_path, monkeypatch):
    monkeypatch.setattr(prices, "COURSE_MODELS", FAKE_COURSE)
    out = tmp_path / "prices.json"
    doc = prices.refresh(out, fake_litellm, version="9.9.9", today="2026-06-01")
    assert json.loads(out.read_text()) == doc
    assert (
        doc["_about"]["litellm_version"] == "9.9.9" and doc["_about"]["refreshed"] == "2026-06-01"
    )
    assert set(doc) == {"_about", "big", "old", "acme/diffuser"}  # unused-model is left out
    big = doc["big"]
    assert big["input_cost_per_token"] == 5e-06 and big["max_input_tokens"] == 1_000_000
    assert "supports_vision" not in big
    assert big["source"] == "https://example.com/pricing" and big["date"] == "2026-06-01"
    assert big["note"].startswith("From litellm 9.9.9") and "'big-model'" in big["note"]
    assert big["long_context_above_tokens"] == 200_000
    assert big["long_context_prices"] == {
        "input_cost_per_token": 1e-05,
        "output_cost_per_token": 3.75e-05,
        "cache_read_input_token_cost": 1e-06,
        "cache_creation_input_token_cost": 6.25e-06,
    }
    loaded = costs.load_prices(out)
    assert loaded["big"].rates(250_000)["input_cost_per_token"] == 1e-05
    assert loaded["big"].rates(150_000)["input_cost_per_token"] == 5e-06


def test_refresh_marks_retired_models_fills_cache_prices_and_names_hand_entries(
    fake_litellm, tmp_path, monkeypatch
):
    monkeypatch.setattr(prices, "COURSE_MODELS", FAKE_COURSE)
    doc = prices.refresh(tmp_path / "p.json", fake_litellm, version="9.9.9", today="2026-06-01")
    old = doc["old"]
    assert old["retired"] and "Retired" in old["note"] and "2026-01-01" in old["note"]
    assert old["cache_creation_input_token_cost"] == old["input_cost_per_token"]
    assert "no cache-write price" in old["note"]
    assert old["source"] == prices.LITELLM_REPO_FILE
    diffuser = doc["acme/diffuser"]
    assert diffuser["output_tokens_per_second"] == 900 and "by hand" in diffuser["note"]
    assert not doc["big"]["retired"]
    # the same map a year earlier: not yet retired
    assert not prices.refresh(
        tmp_path / "q.json", fake_litellm, version="9.9.9", today="2025-06-01"
    )["old"]["retired"]


def test_refresh_names_a_model_litellm_lacks(fake_litellm, tmp_path, monkeypatch):
    monkeypatch.setattr(
        prices, "COURSE_MODELS", {"ghost": dict(litellm="ghost-1", provider="x", tier="mid")}
    )
    with pytest.raises(KeyError, match="no entry 'ghost-1' for the course's model 'ghost'"):
        prices.refresh(tmp_path / "p.json", fake_litellm, version="1", today="2026-06-01")


def test_cli_refresh_from_a_given_file(fake_litellm, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(prices, "COURSE_MODELS", FAKE_COURSE)
    out = tmp_path / "p.json"
    prices.main(
        [
            "--refresh",
            "--litellm-json",
            str(fake_litellm),
            "--litellm-version",
            "9.9.9",
            "--out",
            str(out),
        ]
    )
    assert "3 models from litellm 9.9.9" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        prices.main([])


def test_committed_prices_name_every_course_model():
    raw = json.loads(costs.PRICES_PATH.read_text())
    assert set(raw) - {"_about"} == set(prices.COURSE_MODELS)
    for name, spec in prices.COURSE_MODELS.items():
        assert raw[name]["litellm_key"] == spec["litellm"]


@pytest.mark.skipif(
    importlib.util.find_spec("litellm") is None, reason="needs the optional 'prices' extra"
)
def test_committed_prices_are_what_the_refresh_writes_from_the_recorded_litellm(tmp_path):
    committed = json.loads(costs.PRICES_PATH.read_text())
    about = committed["_about"]
    path, version = prices.litellm_price_file()
    if version != about["litellm_version"]:
        pytest.skip(f"installed litellm {version}, prices.json records {about['litellm_version']}")
    fresh = prices.refresh(tmp_path / "p.json", path, version=version, today=about["refreshed"])
    assert fresh == committed
