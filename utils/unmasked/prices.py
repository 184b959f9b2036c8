"""Rebuild data/prices.json from litellm's price map: `python -m unmasked.prices --refresh`.

litellm ships model_prices_and_context_window_backup.json, a community-kept map of per-token
prices and context windows. The refresh reads that file from an installed litellm (the optional
`prices` extra; nothing imports litellm at run time), keeps only the models the course uses,
and records litellm's version and the date of the refresh in every entry. A figure litellm does
not have (a published output speed) is entered by hand here, in COURSE_MODELS, and the entry's
note says so. A model whose deprecation date has passed is kept, marked `retired`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import importlib.util
import json
import re
from pathlib import Path

from unmasked.costs import PRICE_FIELDS, PRICES_PATH, validate_prices

LITELLM_FILE = "model_prices_and_context_window_backup.json"
LITELLM_REPO_FILE = (
    "https://github.com/BerriAI/litellm/blob/main/model_prices_and_context_window.json"
)
LONG_CONTEXT_FIELD = re.compile(rf"^({'|'.join(PRICE_FIELDS)})_above_(\d+)k_tokens$")

# The course's models: its name -> litellm's key, its tier and kind, and anything hand-entered.
COURSE_MODELS = {
    "claude-opus-4-6": dict(litellm="claude-opus-4-6", provider="anthropic", tier="frontier"),
    "gpt-5.5": dict(litellm="gpt-5.5", provider="openai", tier="frontier"),
    "claude-opus-4-5": dict(litellm="claude-opus-4-5", provider="anthropic", tier="frontier"),
    "claude-sonnet-4-6": dict(
        litellm="claude-sonnet-4-6",
        provider="anthropic",
        tier="mid",
        hand=dict(output_tokens_per_second=95.3, time_to_first_token_s=1.207),
        hand_note="output_tokens_per_second 95.3 and time_to_first_token_s 1.207 are entered by "
        "hand: the medians "
        "a third party measured on Anthropic's API (BridgeBench, "
        "https://www.bridgebench.ai/speedbench/claude-sonnet-4-6, read 2026-12-01; outputs of "
        "about 4K "
        "tokens after short prompts). Anthropic publishes no speed.",
    ),
    "claude-sonnet-4": dict(
        litellm="anthropic.claude-sonnet-4-20250514-v1:0",
        provider="anthropic",
        tier="mid",
        note="Anthropic's own claude-sonnet-4 entry is no longer in litellm's map; these are the "
        "prices of the "
        "same model on Amazon Bedrock (litellm's key anthropic.claude-sonnet-4-20250514-v1:0), "
        "which match "
        "Anthropic's list prices of $3 / $15 per million. Kept because the course's first labs use "
        "it.",
    ),
    "gpt-4.1": dict(litellm="gpt-4.1", provider="openai", tier="mid"),
    "claude-haiku-4-5": dict(litellm="claude-haiku-4-5", provider="anthropic", tier="fast"),
    "inception/mercury-2": dict(
        litellm="inception/mercury-2",
        provider="inception",
        tier="fast",
        kind="diffusion",
        hand=dict(output_tokens_per_second=1009),
        hand_note="output_tokens_per_second 1,009 is entered by hand: Inception's launch figure "
        "for Mercury 2 on "
        "NVIDIA Blackwell GPUs (Inception, 'Introducing Mercury 2', 2026-02-24, as reported by "
        "several "
        "outlets); litellm has no speed field.",
    ),
    "inception/mercury-2.5": dict(
        litellm="inception/mercury-2.5", provider="inception", tier="fast", kind="diffusion"
    ),
}
KEEP_FIELDS = PRICE_FIELDS + ("max_input_tokens", "max_output_tokens", "deprecation_date")


def litellm_price_file() -> tuple[Path, str]:
    """The price map inside the installed litellm package, and litellm's version (no import of
    litellm)."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "litellm is not installed: pip install 'unmasked[prices]' (or pip install litellm)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / LITELLM_FILE
    if not path.exists():
        raise SystemExit(f"litellm is installed but has no {LITELLM_FILE} at {path}")
    return path, importlib.metadata.version("litellm")


def course_entry(name: str, spec: dict, litellm: dict, version: str, today: str) -> dict:
    """One prices.json entry from litellm's entry for spec['litellm'], with its provenance."""
    key = spec["litellm"]
    if key not in litellm:
        raise KeyError(f"litellm {version} has no entry {key!r} for the course's model {name!r}")
    src = litellm[key]
    entry = dict(
        provider=spec["provider"],
        tier=spec["tier"],
        kind=spec.get("kind", "autoregressive"),
        litellm_key=key,
    )
    for field in KEEP_FIELDS:
        if field in src:
            entry[field] = src[field]
    # OpenAI and Inception charge no cache-write premium, so litellm leaves the field out.
    entry.setdefault("cache_creation_input_token_cost", entry["input_cost_per_token"])
    entry.setdefault("cache_read_input_token_cost", entry["input_cost_per_token"])
    long_context = {}
    for field, value in src.items():
        match = LONG_CONTEXT_FIELD.match(field)
        if match:
            long_context.setdefault(int(match.group(2)) * 1000, {})[match.group(1)] = value
    if long_context:
        above = min(long_context)
        entry["long_context_above_tokens"] = above
        rates = long_context[above]
        # a cache price litellm leaves out follows the input price, as in the base rates above
        entry["long_context_prices"] = {
            f: rates.get(
                f,
                rates.get("input_cost_per_token", entry[f])
                if f.startswith("cache") and f not in src
                else entry[f],
            )
            for f in PRICE_FIELDS
        }
    entry["output_tokens_per_second"] = None
    entry["time_to_first_token_s"] = None
    entry.update(spec.get("hand", {}))
    deprecation = entry.get("deprecation_date")
    entry["retired"] = bool(deprecation and deprecation <= today)
    entry["source"] = src.get("source") or LITELLM_REPO_FILE
    entry["date"] = today
    notes = [f"From litellm {version} ({LITELLM_FILE}, key {key!r}), refreshed {today}."]
    if spec.get("note"):
        notes.append(spec["note"])
    if spec.get("hand_note"):
        notes.append(spec["hand_note"])
    if "cache_creation_input_token_cost" not in src:
        notes.append("litellm lists no cache-write price: set to the input price (no premium).")
    if entry["retired"]:
        notes.append(f"Retired: litellm gives the deprecation date {deprecation}.")
    entry["note"] = " ".join(notes)
    return entry


def build_prices(litellm: dict, version: str, today: str, models: dict | None = None) -> dict:
    """The whole prices.json document, from a litellm price map."""
    models = COURSE_MODELS if models is None else models
    doc = {
        "_about": {
            "units": "USD per token for *_cost* fields (litellm's field names); tokens for "
            "max_input_tokens; "
            "tokens per second and seconds for the speed fields",
            "fields": "input_cost_per_token: uncached input. cache_read_input_token_cost: input "
            "served from the prompt "
            "cache. cache_creation_input_token_cost: input written to the cache. "
            "output_cost_per_token: "
            "generated tokens. long_context_prices apply to a whole request whose prompt is over "
            "long_context_above_tokens. retired: the deprecation date has passed.",
            "litellm_version": version,
            "refreshed": today,
            "how": "python -m unmasked.prices --refresh (reads the price map of the installed "
            "litellm package). Every "
            "hand-entered figure is named in its entry's note.",
            "loader": "unmasked.costs.load_prices validates this file; keys that start with '_' "
            "are skipped.",
        }
    }
    for name, spec in models.items():
        doc[name] = course_entry(name, spec, litellm, version, today)
    validate_prices(doc)
    return doc


def refresh(
    out: Path = PRICES_PATH,
    litellm_json: Path | None = None,
    version: str | None = None,
    today: str | None = None,
) -> dict:
    """Write prices.json from litellm's price map (the installed package's, unless a file is
    given)."""
    if litellm_json is None:
        litellm_json, installed = litellm_price_file()
        version = version or installed
    today = today or dt.datetime.now(dt.timezone.utc).date().isoformat()
    doc = build_prices(
        json.loads(Path(litellm_json).read_text(encoding="utf-8")), version or "unknown", today
    )
    Path(out).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return doc


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--refresh", action="store_true", help="rebuild prices.json from litellm's price map"
    )
    parser.add_argument(
        "--litellm-json", type=Path, help="a litellm price map to read instead of the installed one"
    )
    parser.add_argument("--litellm-version", help="the version to record with --litellm-json")
    parser.add_argument("--out", type=Path, default=PRICES_PATH)
    args = parser.parse_args(argv)
    if not args.refresh:
        parser.error("nothing to do: pass --refresh")
    doc = refresh(args.out, args.litellm_json, args.litellm_version)
    models = [k for k in doc if not k.startswith("_")]
    print(f"wrote {args.out}: {len(models)} models from litellm {doc['_about']['litellm_version']}")


if __name__ == "__main__":
    main()
