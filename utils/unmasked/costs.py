"""What a long agent session costs, turn by turn, with and without compaction.

An agent re-sends its whole history every turn, so turn t pays for everything said before it.
This module simulates that growth with per-token prices from data/prices.json (litellm's field
names), splitting each turn's input into uncached input, cache reads and cache writes, and it
simulates the same session under a compaction policy. Everything is a pure function of its
arguments; the figures are plotly figures built from the same numbers.

Billing model (documented assumptions, each one a parameter or a line to change):
- Each turn adds `tokens_per_turn` new input tokens (user message, tool results) and the model
  writes `output_tokens` tokens; both join the history that later turns re-send.
- With prompt caching on, a turn reads the prefix that the previous request wrote (at the
  cache-read price) and writes the rest of its prompt to the cache (at the cache-write price),
  as Anthropic's cache breakpoints at the end of the prompt do. Turns are assumed to come within
  the cache lifetime (5 minutes for Anthropic's default cache). The system prompt (and any
  `initial_history`) starts warm: it is shared with earlier sessions.
- Compaction rewrites the history, so the cached prefix is lost: after it only the system
  prompt is still cached, and the next turn writes the rest again.
- The compaction call reads the compacted span and writes the summary at the compactor's output
  price. When the compactor is the session's own model, caching is on and the policy's
  `reuse_cache` is set (the default), the call re-sends the cached history followed by a
  "summarise" instruction, so it reads that span at the cache-read price; otherwise (another
  model, or a prompt that starts with its own instructions) it pays the uncached input price.
- A prompt over the model's window (max_input_tokens) is an error, or, with on_overflow="compact",
  a forced compaction that the turn records. A request whose prompt passes a vendor's long-context
  threshold is billed, input and output, at the long-context rates.
- Latency: prefill and decode come from the reference deployment of the model's tier
  (unmasked.latency.DEPLOYMENTS); decode slows as the context grows.

The claims ledger (claims_ledger) recomputes the seed's numbers under SEED_ASSUMPTIONS and judges
each with one rule (judge).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from unmasked import latency as _lat

PRICES_PATH = Path(__file__).resolve().parents[2] / "data" / "prices.json"
PRICE_FIELDS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
)
REQUIRED_FIELDS = PRICE_FIELDS + ("max_input_tokens", "source", "date")
KINDS = ("autoregressive", "diffusion")
PER_MILLION = 1_000_000


# --------------------------------------------------------------------------- prices


@dataclass(frozen=True)
class ModelPrice:
    """One model's per-token prices, window and published speed, as read from prices.json."""

    name: str
    input_cost_per_token: float
    output_cost_per_token: float
    cache_read_input_token_cost: float
    cache_creation_input_token_cost: float
    max_input_tokens: int
    source: str
    date: str
    kind: str = "autoregressive"
    output_tokens_per_second: float | None = None
    time_to_first_token_s: float | None = None
    provider: str = ""
    tier: str = ""
    as_of: str = ""
    note: str = ""
    litellm_key: str = ""
    max_output_tokens: int | None = None
    deprecation_date: str | None = None
    retired: bool = False
    long_context_above_tokens: int | None = None
    long_context_prices: dict | None = None

    @property
    def speed_is_published(self) -> bool:
        return self.output_tokens_per_second is not None

    @property
    def tokens_per_second(self) -> float:
        """Published output speed, else the seed's 100 tokens/s (10 ms/token), flagged as
        assumed."""
        if self.output_tokens_per_second is not None:
            return float(self.output_tokens_per_second)
        return _lat.ASSUMED_AR_TOKENS_PER_SECOND

    def rates(self, prompt_tokens: float) -> dict[str, float]:
        """Per-token prices for a request of `prompt_tokens`: the long-context rates above their
        threshold.

        Anthropic and OpenAI bill the whole request (input, cache and output) at the higher rates
        once its prompt passes the threshold.
        """
        above = self.long_context_above_tokens
        if above is not None and self.long_context_prices and prompt_tokens > above:
            return {f: self.long_context_prices.get(f, getattr(self, f)) for f in PRICE_FIELDS}
        return {f: getattr(self, f) for f in PRICE_FIELDS}


class PriceFileError(ValueError):
    """prices.json has a missing or bad field; the message names the entry and the field."""


def _number(entry: str, key: str, value, *, allow_none: bool = False, positive: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise PriceFileError(
            f"prices entry {entry!r}: field {key!r} must be a number, got {value!r}"
        )
    if value < 0 or (positive and value == 0):
        sign = "positive" if positive else "non-negative"
        raise PriceFileError(f"prices entry {entry!r}: field {key!r} must be {sign}, got {value!r}")
    return value


def validate_prices(raw: Mapping) -> dict[str, ModelPrice]:
    """Check every entry of a prices mapping and return ModelPrice objects by name.

    Keys starting with '_' are documentation and are skipped.
    """
    if not isinstance(raw, Mapping):
        raise PriceFileError(
            f"prices must be a JSON object of model entries, got {type(raw).__name__}"
        )
    models = {}
    for name, entry in raw.items():
        if name.startswith("_"):
            continue
        if not isinstance(entry, Mapping):
            raise PriceFileError(
                f"prices entry {name!r} must be an object, got {type(entry).__name__}"
            )
        missing = [k for k in REQUIRED_FIELDS if k not in entry]
        if missing:
            raise PriceFileError(
                f"prices entry {name!r} is missing field(s) {', '.join(missing)}; "
                f"every entry needs: {', '.join(REQUIRED_FIELDS)}"
            )
        for key in PRICE_FIELDS:
            _number(name, key, entry[key])
        _number(name, "max_input_tokens", entry["max_input_tokens"], positive=True)
        _number(
            name,
            "output_tokens_per_second",
            entry.get("output_tokens_per_second"),
            allow_none=True,
            positive=True,
        )
        _number(name, "time_to_first_token_s", entry.get("time_to_first_token_s"), allow_none=True)
        for key in ("source", "date"):
            if not isinstance(entry[key], str) or not entry[key].strip():
                raise PriceFileError(
                    f"prices entry {name!r}: field {key!r} must be a non-empty string"
                )
        if entry.get("long_context_prices") is not None:
            _number(
                name,
                "long_context_above_tokens",
                entry.get("long_context_above_tokens"),
                positive=True,
            )
            for key, value in entry["long_context_prices"].items():
                if key not in PRICE_FIELDS:
                    raise PriceFileError(
                        f"prices entry {name!r}: long_context_prices has unknown field {key!r}"
                    )
                _number(name, f"long_context_prices.{key}", value)
        kind = entry.get("kind", "autoregressive")
        if kind not in KINDS:
            raise PriceFileError(
                f"prices entry {name!r}: field 'kind' is {kind!r}; accepted: {', '.join(KINDS)}"
            )
        known = {f for f in ModelPrice.__dataclass_fields__ if f != "name"}
        models[name] = ModelPrice(name=name, **{k: v for k, v in entry.items() if k in known})
    if not models:
        raise PriceFileError("prices holds no model entries")
    return models


def load_prices(path: str | Path | None = None) -> dict[str, ModelPrice]:
    """Read and validate data/prices.json (or `path`)."""
    path = Path(path) if path is not None else PRICES_PATH
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PriceFileError(f"no price file at {path}") from None
    except json.JSONDecodeError as exc:
        raise PriceFileError(f"{path} is not valid JSON: {exc}") from None
    return validate_prices(raw)


def get_model(model, prices: Mapping[str, ModelPrice] | None = None) -> ModelPrice:
    """A ModelPrice from a name (or pass one through); unknown names list the accepted ones."""
    if isinstance(model, ModelPrice):
        return model
    prices = load_prices() if prices is None else prices
    if model in prices:
        return prices[model]
    # litellm names some models with their provider ("inception/mercury-2"); the bare name works too
    matches = [k for k in prices if k.split("/")[-1] == model]
    if len(matches) == 1:
        return prices[matches[0]]
    raise ValueError(f"unknown model {model!r}; accepted: {', '.join(sorted(prices))}")


def token_cost(tokens: float, price_per_token: float) -> float:
    """Dollars for `tokens` at a per-token price: 150,000 tokens at $3/M is $0.45."""
    _check_tokens("tokens", tokens)
    return tokens * price_per_token


# --------------------------------------------------------------------------- policy & checks


def _check_tokens(name: str, value) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or math.isnan(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be a non-negative number of tokens, got {value!r}")


def _check_count(name: str, value, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


class ContextWindowError(ValueError):
    """A prompt (or a compaction call) is longer than the model's context window."""


OVERFLOW_ACTIONS = ("error", "compact")


@dataclass(frozen=True)
class CompactionPolicy:
    """When and how hard to compact.

    threshold: compact before a turn whose prompt would exceed this many tokens.
    keep_last: the most recent turns kept verbatim; older turns become one summary.
    ratio: summary tokens / compacted tokens, in (0, 1]; 10:1 compression is 0.1.
    max_summary_tokens: a cap on the summary (the seed's min(raw × 0.1, 8000)); None for no cap.
    compactor: the model that writes the summary (None: the session's own model).
    reuse_cache: a same-model compactor reads the history from the prompt cache (see module doc).
    """

    threshold: int = 25_000
    keep_last: int = 2
    ratio: float = 0.1
    compactor: str | None = None
    reuse_cache: bool = True
    max_summary_tokens: int | None = None

    def __post_init__(self):
        _check_tokens("threshold", self.threshold)
        _check_count("keep_last", self.keep_last)
        r = self.ratio
        if (
            isinstance(r, bool)
            or not isinstance(r, (int, float))
            or math.isnan(r)
            or not 0 < r <= 1
        ):
            raise ValueError(
                "ratio must be in (0, 1] (summary tokens / compacted tokens; 0.1 is 10:1), got "
                f"{r!r}"
            )
        if self.max_summary_tokens is not None:
            _check_count("max_summary_tokens", self.max_summary_tokens, 1)

    def summary_tokens(self, compacted: float) -> int:
        """max(1, round(min(ratio × compacted, cap)))."""
        budget = self.ratio * compacted
        if self.max_summary_tokens is not None:
            budget = min(budget, self.max_summary_tokens)
        return max(1, round(budget))


# --------------------------------------------------------------------------- simulation


@dataclass(frozen=True)
class TurnRecord:
    """What one turn sent, paid and waited for."""

    turn: int
    prompt_tokens: int  # everything sent this turn
    uncached_input: int
    cached_input: int  # read from the prompt cache
    cache_write: int  # written to the prompt cache
    output_tokens: int
    compacted: bool
    compacted_tokens: int  # history replaced by a summary before this turn
    summary_tokens: int
    input_cost: float
    output_cost: float
    compaction_cost: float
    prefill_s: float
    decode_s: float
    compaction_s: float
    forced: bool = False  # the compaction was forced by the context window, not the policy
    long_context_rates: bool = False  # billed at the >N-token rates

    @property
    def cost(self) -> float:
        return self.input_cost + self.output_cost + self.compaction_cost

    @property
    def latency_s(self) -> float:
        return self.prefill_s + self.decode_s + self.compaction_s


@dataclass(frozen=True)
class SessionResult:
    """A simulated session: its turns, and the settings that produced it."""

    model: str
    caching: bool
    policy: CompactionPolicy | None
    turns: tuple[TurnRecord, ...] = field(default_factory=tuple)
    window: int = 0
    on_overflow: str = "error"

    @property
    def total_cost(self) -> float:
        return sum(t.cost for t in self.turns)

    def cost(self, include_compaction: bool = True) -> float:
        """Session dollars, with or without what the compaction calls cost."""
        return sum(t.cost if include_compaction else t.cost - t.compaction_cost for t in self.turns)

    def mean_latency_s(self, include_compaction: bool = True) -> float:
        """Mean seconds per turn, with or without the compaction calls' time."""
        if not self.turns:
            return 0.0
        return sum(
            t.latency_s if include_compaction else t.latency_s - t.compaction_s for t in self.turns
        ) / len(self.turns)

    @property
    def cumulative_cost(self) -> list[float]:
        out, running = [], 0.0
        for t in self.turns:
            running += t.cost
            out.append(running)
        return out

    @property
    def latencies(self) -> list[float]:
        return [t.latency_s for t in self.turns]

    @property
    def total_latency_s(self) -> float:
        return sum(self.latencies)

    @property
    def compactions(self) -> int:
        return sum(t.compacted for t in self.turns)

    @property
    def forced_compactions(self) -> int:
        return sum(t.forced for t in self.turns)

    @property
    def window_note(self) -> str:
        """What the context window did to this session, in a sentence."""
        forced = [t.turn for t in self.turns if t.forced]
        dear = [t.turn for t in self.turns if t.long_context_rates]
        parts = []
        if forced:
            parts.append(
                f"{self.model}'s {self.window:,}-token window forced a compaction before turn(s) "
                f"{', '.join(map(str, forced))}"
            )
        if dear:
            parts.append(f"turns {dear[0]}-{dear[-1]} billed at {self.model}'s long-context rates")
        return "; ".join(parts) or f"every prompt fits {self.model}'s {self.window:,}-token window"

    def rows(self) -> list[dict]:
        """One dict per turn (for pandas.DataFrame), with cost and latency totals."""
        return [dict(asdict(t), cost=t.cost, latency_s=t.latency_s) for t in self.turns]


def _decode_seconds(
    model: ModelPrice,
    tokens: int,
    context: int,
    deployment: _lat.Deployment,
    diffusion_steps: int | None,
    step_seconds: float | None,
) -> float:
    """AR: bandwidth-bound, slower with context. Diffusion: its published speed, else steps ×
    step time (the seed's 16 × 60 ms unless given)."""
    if tokens == 0:
        return 0.0
    if model.kind == "diffusion":
        if diffusion_steps is None and model.speed_is_published:
            return _lat.ar_decode_seconds(tokens, model.output_tokens_per_second)
        steps = _lat.SEED_DIFFUSION_STEPS if diffusion_steps is None else diffusion_steps
        step = _lat.SEED_DIFFUSION_STEP_SECONDS if step_seconds is None else step_seconds
        return _lat.diffusion_decode_seconds(steps, step)
    return deployment.decode_seconds(tokens, context)


def _deployment(model: ModelPrice, deployment) -> _lat.Deployment:
    if deployment is not None:
        return deployment
    return _lat.deployment_for(model.tier if model.tier in _lat.DEPLOYMENTS else "mid")


def simulate_session(
    turns: int,
    tokens_per_turn: int,
    model,
    *,
    output_tokens: int = 500,
    system_tokens: int = 0,
    initial_history: int | list[int] = 0,
    caching: bool = True,
    policy: CompactionPolicy | None = None,
    prices: Mapping[str, ModelPrice] | None = None,
    prefill: _lat.PrefillModel | None = None,
    deployment: _lat.Deployment | None = None,
    diffusion_steps: int | None = None,
    diffusion_step_seconds: float | None = None,
    on_overflow: str = "error",
) -> SessionResult:
    """Simulate `turns` turns of a growing session, optionally compacting under `policy`.

    initial_history: tokens already in the history before turn 1 (an int is one block; a list
    gives one block per earlier turn), e.g. a session picked up mid-way; it is cached if caching
    is on. deployment: the hardware and model shape behind the latency (default: the reference
    deployment of the model's tier, latency.DEPLOYMENTS); prefill overrides its prefill only.
    diffusion_steps (with diffusion_step_seconds, default the seed's 60 ms) makes a diffusion
    model decode in steps x step time instead of at its published tokens/s.

    on_overflow: what a prompt longer than the model's window does. "error" raises
    ContextWindowError; "compact" compacts before that turn (under `policy`, or keep_last=2 and
    10:1 without one) and marks the turn `forced`. A compactor asked to read more than its own
    window is always an error. Prompts over a long-context threshold are billed at its rates.
    """
    _check_count("turns", turns)
    _check_tokens("tokens_per_turn", tokens_per_turn)
    _check_tokens("output_tokens", output_tokens)
    _check_tokens("system_tokens", system_tokens)
    if on_overflow not in OVERFLOW_ACTIONS:
        raise ValueError(
            f"on_overflow must be one of {', '.join(OVERFLOW_ACTIONS)}, got {on_overflow!r}"
        )
    initial = (
        [initial_history] if isinstance(initial_history, (int, float)) else list(initial_history)
    )
    for value in initial:
        _check_tokens("initial_history", value)
    if policy is not None and not isinstance(policy, CompactionPolicy):
        raise ValueError(f"policy must be a CompactionPolicy or None, got {type(policy).__name__}")
    if prices is None and not isinstance(model, ModelPrice):
        prices = load_prices()
    m = get_model(model, prices)
    dep = _deployment(m, deployment)
    pf = dep.prefill if prefill is None else prefill
    window = int(m.max_input_tokens)
    forced_policy = replace(
        policy or CompactionPolicy(), threshold=window
    )  # compacts at the window
    comp = m if policy is None or policy.compactor is None else get_model(policy.compactor, prices)
    comp_dep = _deployment(comp, None if comp.name != m.name else deployment)

    blocks: list[int] = [int(b) for b in initial if b]
    cached_prefix = int(system_tokens + sum(blocks)) if caching else 0
    records = []
    for t in range(1, turns + 1):
        history = system_tokens + sum(blocks)
        compacted = summary = 0
        compaction_cost = compaction_s = 0.0
        forced = False
        for use in (policy, forced_policy):
            over_window = history + tokens_per_turn > window
            if use is policy and use is None:
                continue
            if use is forced_policy:
                if not over_window:
                    break
                if on_overflow == "error":
                    raise ContextWindowError(
                        f"turn {t}: the prompt of {history + tokens_per_turn:,} tokens is over "
                        f"{m.name}'s window of "
                        f"{window:,}; compact (on_overflow='compact' or a lower policy threshold) "
                        "or pick a "
                        "longer window"
                    )
            if history + tokens_per_turn <= use.threshold or len(blocks) <= use.keep_last:
                continue
            split = len(blocks) - use.keep_last
            old, kept = blocks[:split], blocks[split:]
            compacted += sum(old)
            summary = use.summary_tokens(sum(old))
            blocks = [summary] + kept
            reads_cache = caching and use.reuse_cache and comp.name == m.name
            read = history if reads_cache else sum(old)  # what the compaction call's prompt holds
            if read > comp.max_input_tokens:
                raise ContextWindowError(
                    f"turn {t}: the compactor {comp.name} would read {read:,} tokens, over its "
                    "window of "
                    f"{comp.max_input_tokens:,}"
                )
            rates = comp.rates(read)
            read_price = (
                rates["cache_read_input_token_cost"]
                if reads_cache
                else rates["input_cost_per_token"]
            )
            compaction_cost += sum(old) * read_price + summary * rates["output_cost_per_token"]
            compaction_s += (
                0.0 if reads_cache else comp_dep.prefill.seconds(sum(old))
            ) + _decode_seconds(
                comp, summary, read, comp_dep, diffusion_steps, diffusion_step_seconds
            )
            cached_prefix = system_tokens if caching else 0
            history = system_tokens + sum(blocks)
            forced = forced or use is forced_policy

        prompt = history + tokens_per_turn
        if prompt > window:
            raise ContextWindowError(
                f"turn {t}: even after compacting, the prompt of {prompt:,} tokens is over "
                f"{m.name}'s window of "
                f"{window:,} (the {forced_policy.keep_last} kept turns and the new tokens are too "
                "long)"
            )
        if caching:
            cached = min(cached_prefix, prompt)
            written, uncached = prompt - cached, 0
        else:
            cached = written = 0
            uncached = prompt
        rates = m.rates(prompt)
        input_cost = (
            uncached * rates["input_cost_per_token"]
            + cached * rates["cache_read_input_token_cost"]
            + written * rates["cache_creation_input_token_cost"]
        )
        records.append(
            TurnRecord(
                turn=t,
                prompt_tokens=int(prompt),
                uncached_input=int(uncached),
                cached_input=int(cached),
                cache_write=int(written),
                output_tokens=int(output_tokens),
                compacted=bool(compacted),
                compacted_tokens=int(compacted),
                summary_tokens=int(summary),
                input_cost=input_cost,
                output_cost=output_tokens * rates["output_cost_per_token"],
                compaction_cost=compaction_cost,
                prefill_s=pf.seconds(uncached + written, cached),
                decode_s=_decode_seconds(
                    m, output_tokens, prompt, dep, diffusion_steps, diffusion_step_seconds
                ),
                compaction_s=compaction_s,
                forced=forced,
                long_context_rates=rates["input_cost_per_token"] != m.input_cost_per_token,
            )
        )
        blocks.append(int(tokens_per_turn + output_tokens))
        cached_prefix = prompt if caching else 0
    return SessionResult(
        model=m.name,
        caching=caching,
        policy=policy,
        turns=tuple(records),
        window=window,
        on_overflow=on_overflow,
    )


def session_cost(turns: int, tokens_per_turn: int, model, **kwargs) -> float:
    """Total dollars of a simulated session (keyword arguments as simulate_session)."""
    return simulate_session(turns, tokens_per_turn, model, **kwargs).total_cost


def compaction_savings(
    turns: int, tokens_per_turn: int, model, policy: CompactionPolicy, **kwargs
) -> float:
    """Fraction of the session's cost that compaction saves (negative when it costs more)."""
    base = session_cost(turns, tokens_per_turn, model, **kwargs)
    with_policy = session_cost(turns, tokens_per_turn, model, policy=policy, **kwargs)
    return 0.0 if base == 0 else 1 - with_policy / base


# --------------------------------------------------------------------------- thresholds


def threshold_sweep(
    turns,
    tokens_per_turn,
    model,
    thresholds,
    *,
    keep_last=2,
    ratio=0.1,
    compactor=None,
    reuse_cache=True,
    max_summary_tokens=None,
    **kwargs,
) -> list[tuple[int | None, float]]:
    """(threshold, session cost) for each threshold; the no-compaction cost is one row with None."""
    rows = [(None, session_cost(turns, tokens_per_turn, model, **kwargs))]
    for th in thresholds:
        policy = CompactionPolicy(
            threshold=th,
            keep_last=keep_last,
            ratio=ratio,
            compactor=compactor,
            reuse_cache=reuse_cache,
            max_summary_tokens=max_summary_tokens,
        )
        rows.append((th, session_cost(turns, tokens_per_turn, model, policy=policy, **kwargs)))
    return rows


def best_threshold(turns, tokens_per_turn, model, thresholds, **kwargs) -> tuple[int | None, float]:
    """The threshold with the cheapest session, or None when never compacting is cheapest."""
    rows = threshold_sweep(turns, tokens_per_turn, model, thresholds, **kwargs)
    th, cost = min(rows, key=lambda r: (r[1], r[0] is not None))
    return th, cost


def break_even_threshold(
    model,
    tokens_per_turn: int,
    horizon: int,
    *,
    output_tokens: int = 500,
    keep_last: int = 2,
    ratio: float = 0.1,
    compactor: str | None = None,
    reuse_cache: bool = True,
    caching: bool = True,
    system_tokens: int = 0,
    candidates=None,
    prices=None,
) -> int | None:
    """The smallest history size at which compacting now pays for itself within `horizon` turns.

    For each candidate history size H (built from turns of tokens_per_turn + output_tokens), it
    compares `horizon` more turns under a policy with threshold H (so it compacts at once, and again
    only if the history regrows past H) against the same turns without. A compaction costs a summary
    call and, with caching, the loss of the cached prefix; it saves re-sending (1 - ratio) of the
    old history on every later turn. Returns None if no candidate pays back.
    """
    _check_count("horizon", horizon, 1)
    _check_tokens("tokens_per_turn", tokens_per_turn)
    block = tokens_per_turn + output_tokens
    if block <= 0:
        raise ValueError("tokens_per_turn + output_tokens must be positive")
    if candidates is None:
        candidates = range(block * (keep_last + 1), 400_001, 1_000)
    prices = load_prices() if prices is None and not isinstance(model, ModelPrice) else prices
    m = get_model(model, prices)
    common = dict(
        output_tokens=output_tokens, system_tokens=system_tokens, caching=caching, prices=prices
    )
    for h in candidates:
        old = h - block * keep_last
        if (
            old <= 0 or h + horizon * block > m.max_input_tokens
        ):  # the run without compaction must fit
            continue
        history = [old] + [block] * keep_last
        without = session_cost(horizon, tokens_per_turn, m, initial_history=history, **common)
        policy = CompactionPolicy(
            threshold=h,
            keep_last=keep_last,
            ratio=ratio,
            compactor=compactor,
            reuse_cache=reuse_cache,
        )
        with_c = session_cost(
            horizon, tokens_per_turn, m, initial_history=history, policy=policy, **common
        )
        if with_c < without:
            return int(h)
    return None


# --------------------------------------------------------------------------- figures


def _per_turn_figure(
    results: Mapping[str, SessionResult], series: str, title: str, yaxis_title: str
):
    """One line per labelled session of `series` (a per-turn list on SessionResult) against the
    turn."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, res in results.items():
        fig.add_scatter(
            x=[t.turn for t in res.turns],
            y=getattr(res, series),
            name=label,
            mode="lines+markers",
            marker=dict(size=4),
        )
    fig.update_layout(
        title=title,
        xaxis_title="turn",
        yaxis_title=yaxis_title,
        template="plotly_white",
        legend=dict(orientation="h", y=-0.2),
    )
    return fig


def cumulative_cost_figure(results: Mapping[str, SessionResult], title: str | None = None):
    """Cumulative dollars per turn, one line per labelled session."""
    if (
        title is None
    ):  # &#36; is "$": plotly.js would read the text between two "$" as LaTeX and hide the title
        title = "Cumulative session cost: " + ", ".join(
            f"{k} &#36;{r.total_cost:,.2f}" for k, r in results.items()
        )
    return _per_turn_figure(results, "cumulative_cost", title, "cumulative cost (USD)")


def turn_latency_figure(results: Mapping[str, SessionResult], title: str | None = None):
    """Seconds per turn (prefill + decode + any compaction), one line per labelled session."""
    if title is None:
        title = "Per-turn latency: " + ", ".join(
            f"{k} mean {(r.total_latency_s / max(1, len(r.turns))):.1f} s"
            for k, r in results.items()
        )
    return _per_turn_figure(results, "latencies", title, "seconds (prefill + decode + compaction)")


def context_figure(results: Mapping[str, SessionResult], title: str = "Prompt size per turn"):
    """Tokens sent per turn: the sawtooth that compaction makes of a growing context."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, res in results.items():
        fig.add_scatter(
            x=[t.turn for t in res.turns],
            y=[t.prompt_tokens for t in res.turns],
            name=label,
            mode="lines",
        )
    fig.update_layout(
        title=title, xaxis_title="turn", yaxis_title="prompt tokens", template="plotly_white"
    )
    return fig


def copy_traces(target, source) -> None:
    """Update a FigureWidget in place from a freshly built figure with the same traces.

    Widgets keep their identity (so the browser sees one figure changing), while the numbers
    come from the pure figure functions above.
    """
    if len(target.data) != len(source.data):
        raise ValueError(
            f"target has {len(target.data)} traces, source {len(source.data)}: build both alike"
        )
    with target.batch_update():
        for old, new in zip(target.data, source.data):
            old.x, old.y, old.name = new.x, new.y, new.name
        target.layout.title.text = source.layout.title.text


# --------------------------------------------------------------------------- claims ledger

VERDICTS = ("holds", "holds with a caveat", "does not hold", "not measured here")

# Tolerances of the one rule (judge). A figure the seed states exactly must come within 5% of
# it; a percentage within 2 points; a figure the seed itself calls rough ("roughly one second",
# "≈1 s") within 50%. A range or a bound ("20-30K", "1,000+") is taken as stated.
EXACT_TOLERANCE = 0.05
POINTS_TOLERANCE = 0.02
ROUGH_TOLERANCE = 0.5


@dataclass(frozen=True)
class Claim:
    """What the seed claims about one figure: an interval it must fall in."""

    label: str
    lo: float
    hi: float = math.inf

    def holds(self, value) -> bool:
        return value is not None and not math.isnan(value) and self.lo <= value <= self.hi

    @classmethod
    def about(cls, label: str, value: float, tolerance: float = EXACT_TOLERANCE) -> Claim:
        return cls(label, value * (1 - tolerance), value * (1 + tolerance))

    @classmethod
    def percent(cls, label: str, fraction: float, points: float = POINTS_TOLERANCE) -> Claim:
        return cls(label, fraction - points, fraction + points)

    def show(self) -> str:
        """The interval in the figure's own units: "$0.43 to $0.47", "80% to 84%", "1,000 tok/s
        or more"."""
        if self.label.startswith("$"):
            fmt = lambda v: f"${v:,.2f}"  # noqa: E731
        elif self.label == "saving" or self.label.startswith("kept"):
            fmt = lambda v: f"{v:.0%}" if v >= 0.1 else f"{v:.1%}"  # noqa: E731
        else:
            unit = self.label.split()[-1] if self.label.split()[-1] in ("s", "tok/s", "x") else ""
            fmt = lambda v: (  # noqa: E731
                f"{v:,.0f}{' ' + unit if unit else ''}"
                if v >= 1000
                else f"{v:.3g}{' ' + unit if unit else ''}"
            )
        what = self.label if not self.label.startswith("$") else self.label[2:]
        if math.isinf(self.hi):
            return f"{what}: {fmt(self.lo)} or more"
        return f"{what}: {fmt(self.lo)} to {fmt(self.hi)}"


def judge(claims, main, alternatives: Mapping[str, list]) -> tuple[str, str]:
    """The one rule: (verdict, why) for figures computed under the main assumptions and under each
    alternative setting of the assumptions the seed leaves open.

    not measured here: a figure is None (nothing here computes it).
    does not hold: a main figure falls outside its claim.
    holds with a caveat: every main figure is inside, but some alternative takes one outside.
    holds: inside under the main assumptions and under every alternative.
    """
    inside = lambda values: all(c.holds(v) for c, v in zip(claims, values))  # noqa: E731
    if any(v is None for v in main):
        return "not measured here", "nothing in this package measures it"
    if not inside(main):
        rescues = [label for label, values in alternatives.items() if inside(values)]
        return "does not hold", ("it would hold with " + " or ".join(rescues)) if rescues else ""
    failing = [label for label, values in alternatives.items() if not inside(values)]
    if failing:
        return "holds with a caveat", "it does not hold with " + " or ".join(failing)
    return "holds", ""


# The assumptions under which the ledger recomputes the seed's claims, every one a parameter.
# The seed states 150K tokens, 20 turns, 10:1 capped at 8K, 10 ms per AR token, 16 steps of 60 ms
# and Mercury; it leaves open the price tier, caching, how the session grows and whether the
# compaction call counts (OPEN_ASSUMPTIONS): the ledger judges each claim under the values here
# and under the other value of each open one.
SEED_ASSUMPTIONS = dict(
    price_tier="frontier",
    frontier_model="claude-opus-4-6",  # the seed's named frontier model ($5/M input)
    mid_model="claude-sonnet-4-6",  # the current $3/M model
    caching=True,  # coding agents cache their prompt prefix
    growth="growing",  # growing: the history grows to context_tokens; flat: every turn re-sends it
    count_compaction_call=True,
    context_tokens=150_000,
    turns=20,
    output_tokens=500,
    threshold=25_000,  # the middle of the seed's 20-30K
    keep_last=2,
    ratio=0.1,  # 10:1
    max_summary_tokens=8_000,  # min(raw x 0.1, 8000)
    summary_floor=0.05,
    ar_seconds_per_token=_lat.SEED_AR_SECONDS_PER_TOKEN,
    diffusion_steps=_lat.SEED_DIFFUSION_STEPS,
    diffusion_step_seconds=_lat.SEED_DIFFUSION_STEP_SECONDS,
    diffusion_model="inception/mercury-2",
)
OPEN_ASSUMPTIONS = dict(
    price_tier=("frontier", "mid"),
    caching=(True, False),
    growth=("growing", "flat"),
    count_compaction_call=(True, False),
)


class _Scenario:
    """The sessions of one setting of the assumptions, computed once and shared by the rows."""

    def __init__(self, a: Mapping, prices: Mapping[str, ModelPrice]):
        self.a, self.prices = a, prices
        self.model = get_model(a[f"{a['price_tier']}_model"], prices)
        self.diffusion = get_model(a["diffusion_model"], prices)
        self.policy = CompactionPolicy(
            threshold=a["threshold"],
            keep_last=a["keep_last"],
            ratio=a["ratio"],
            max_summary_tokens=a["max_summary_tokens"],
        )
        block = a["context_tokens"] // a["turns"]
        if a["growth"] == "growing":
            self.shape = dict(turns=a["turns"], tokens_per_turn=block - a["output_tokens"])
        elif a["growth"] == "flat":
            self.shape = dict(
                turns=a["turns"], tokens_per_turn=0, initial_history=[block] * a["turns"]
            )
        else:
            raise ValueError(f"growth must be 'growing' or 'flat', got {a['growth']!r}")
        self.common = dict(output_tokens=a["output_tokens"], caching=a["caching"], prices=prices)
        self._cache = {}

    def session(self, compact: bool) -> SessionResult:
        if compact not in self._cache:
            self._cache[compact] = simulate_session(
                model=self.model,
                policy=self.policy if compact else None,
                **self.shape,
                **self.common,
            )
        return self._cache[compact]

    def turn_at_context(self) -> TurnRecord:
        """The turn of the uncompacted session whose prompt is nearest context_tokens."""
        return min(
            self.session(False).turns, key=lambda t: abs(t.prompt_tokens - self.a["context_tokens"])
        )

    def summary_tokens(self) -> int:
        return self.policy.summary_tokens(self.a["context_tokens"])


def _money(v):
    return f"${v:,.2f}"


def _pct(v):
    return f"{v:.0%}"


def _row_per_turn(s):
    t = s.turn_at_context()
    text = f"{_money(t.input_cost)} for the input of a {t.prompt_tokens:,}-token turn"
    return [t.input_cost], text


def _row_session(s):
    cost = s.session(False).cost()
    return [cost], f"{_money(cost)} for {s.a['turns']} turns (input and output, no compaction)"


def _row_cost_saving(s):
    base = s.session(False).cost()
    with_c = s.session(True).cost(s.a["count_compaction_call"])
    saving = 1 - with_c / base
    return [saving], f"{_pct(saving)}: {_money(base)} -> {_money(with_c)}"


def _row_latency_saving(s):
    count = s.a["count_compaction_call"]
    base, with_c = s.session(False).mean_latency_s(), s.session(True).mean_latency_s(count)
    saving = 1 - with_c / base if base else math.nan
    return [saving], f"{_pct(saving)}: mean turn {base:.1f} s -> {with_c:.1f} s"


def _row_ratio(s):
    n, summary = s.a["context_tokens"], s.summary_tokens()
    return [n / summary], f"{n:,} -> {summary:,} tokens: {n / summary:.2f}:1"


def _row_floor(s):
    n, window = s.a["context_tokens"], s.model.max_input_tokens
    at_n, at_window = s.summary_tokens() / n, s.policy.summary_tokens(window) / window
    edge = s.a["max_summary_tokens"] / s.a["summary_floor"]
    return [at_n, at_window], (
        f"summary keeps {at_n:.2%} of {n:,}; {at_window:.2%} of a {window:,}-token history "
        f"({s.model.name}'s window); below the floor above {edge:,.0f}"
    )


def _row_threshold(s):
    grid = range(5_000, s.a["context_tokens"] + 1, 5_000)
    shape = dict(s.shape)
    best, cost = best_threshold(
        shape.pop("turns"),
        shape.pop("tokens_per_turn"),
        s.model,
        grid,
        keep_last=s.a["keep_last"],
        ratio=s.a["ratio"],
        max_summary_tokens=s.a["max_summary_tokens"],
        **shape,
        **s.common,
    )
    found = "never compacting is cheapest" if best is None else f"cheapest threshold {best:,}"
    text = f"{found} ({_money(cost)}) on a grid of {grid.start:,}-{grid.stop - 1:,}"
    return [math.nan if best is None else best], text


def _row_speed(s):
    speed = s.diffusion.output_tokens_per_second
    return (
        [speed],
        "no published speed"
        if speed is None
        else f"{speed:,g} tok/s published for {s.diffusion.name}",
    )


def _row_ar_vs_diffusion(s):
    n, summary = s.a["context_tokens"], s.a["max_summary_tokens"]
    ar = _deployment(s.model, None).decode_seconds(summary, n)
    speed = s.diffusion.output_tokens_per_second
    diff = math.nan if speed is None else summary / speed
    seed = summary * s.a["ar_seconds_per_token"]
    return [ar, diff], (
        f"{summary:,} tokens: AR {ar:.0f} s ({s.model.tier} deployment, bandwidth-bound at "
        f"{n:,} context; the seed's {s.a['ar_seconds_per_token'] * 1e3:g} ms/token gives "
        f"{seed:.0f} s); diffusion {diff:.1f} s at {s.diffusion.name}'s published speed"
    )


def _row_steps(s):
    steps, step = s.a["diffusion_steps"], s.a["diffusion_step_seconds"]
    total = _lat.diffusion_decode_seconds(steps, step)
    return [total], (
        f"{steps} x {step * 1e3:g} ms = {total:.2f} s; for {s.a['max_summary_tokens']:,} tokens "
        "that is "
        f"{s.a['max_summary_tokens'] / steps:,.0f} tokens fixed per step"
    )


def _compaction_call(s, model: ModelPrice, same_model: bool) -> tuple[float, float]:
    """(seconds, dollars) of one call that reads context_tokens and writes the summary."""
    n, summary = s.a["context_tokens"], s.summary_tokens()
    if n > model.max_input_tokens:
        return math.nan, math.nan
    dep = _deployment(model, None)
    cached = same_model and s.a["caching"]
    rates = model.rates(n)
    read = rates["cache_read_input_token_cost"] if cached else rates["input_cost_per_token"]
    prefill = 0.0 if cached else dep.prefill.seconds(n)
    decode = _decode_seconds(
        model, summary, n, dep, s.a["diffusion_steps"], s.a["diffusion_step_seconds"]
    )
    return prefill + decode, n * read + summary * rates["output_cost_per_token"]


def _row_one_vs_ten(s):
    diff_s, _ = _compaction_call(s, s.diffusion, False)
    ar_s, _ = _compaction_call(s, s.model, True)
    shown = "cannot: over its window" if math.isnan(diff_s) else f"{diff_s:.1f} s"
    return [diff_s, ar_s], (
        f"compacting {s.a['context_tokens']:,} tokens: {s.diffusion.name} {shown}; "
        f"{s.model.name} {ar_s:.0f} s"
    )


def _row_cheaper(s):
    _, ar_cost = _compaction_call(s, s.model, True)
    n, summary = s.a["context_tokens"], s.summary_tokens()
    d = s.diffusion
    # at list price and uncached (it holds no cache of this session), its window aside
    diff_cost = n * d.input_cost_per_token + summary * d.output_cost_per_token
    return [ar_cost / diff_cost], (
        f"one compaction call: {s.model.name} {_money(ar_cost)}, {d.name} "
        f"{_money(diff_cost)} ({ar_cost / diff_cost:.1f}x)"
    )


def _row_waits(s):
    t = s.turn_at_context()
    return [t.latency_s], (
        f"{t.latency_s:.0f} s for a {t.prompt_tokens:,}-token turn ({t.prefill_s:.0f} s prefill, "
        f"{t.decode_s:.0f} s to write {t.output_tokens} tokens)"
    )


def _row_window(s):
    w = s.diffusion.max_input_tokens
    text = f"{s.diffusion.name}: {w:,} tokens, against a {s.a['context_tokens']:,}-token history"
    return [w], text


def _row_json_steps(s):
    text = "not measured in unmasked.costs: see notebook 04's measurement of steps per field"
    return [None, None], text


def _ledger_rows(a: Mapping):
    """(claim, claims, assumptions used, figure function, note) for each of the seed's numbers."""
    n, cap, ratio = a["context_tokens"], a["max_summary_tokens"], a["ratio"]
    session = ("price_tier", "caching", "growth", "context_tokens", "turns", "output_tokens")
    compaction = ("threshold", "keep_last", "ratio", "max_summary_tokens")
    return [
        (
            "$0.45 per turn at 150K tokens",
            [Claim.about("$ per turn", 0.45)],
            session,
            _row_per_turn,
            "$0.45 is 150K tokens at $3/M uncached; the seed's named frontier models charge $5/M, "
            "and a cache hit a "
            "tenth of the input price.",
        ),
        (
            "$9 per session",
            [Claim.about("$ per session", 9.0)],
            session,
            _row_session,
            "$9 is 20 turns that each send 150K tokens uncached; a session that grows to 150K "
            "sends about half that.",
        ),
        (
            "90% less cost with compaction",
            [Claim.percent("saving", 0.90)],
            session + compaction + ("count_compaction_call",),
            _row_cost_saving,
            "10:1 cuts one re-sent history by 90%, but the session also pays for the turns before "
            "the threshold, the "
            "kept turns, the summaries and, with caching, re-writing the cache after each "
            "compaction.",
        ),
        (
            "82% less latency with compaction",
            [Claim.percent("saving", 0.82)],
            session + compaction + ("count_compaction_call",),
            _row_latency_saving,
            "Mean seconds per turn (prefill on the tier's reference deployment + bandwidth-bound "
            "decode); compaction "
            "shortens prefill and, a little, decode, and its own call adds time when it is "
            "counted.",
        ),
        (
            "10:1 compression, with the 8K cap",
            [Claim.about("ratio", 1 / ratio)],
            ("context_tokens",) + compaction,
            _row_ratio,
            f"min(raw x {ratio:g}, {cap:,}) caps the summary, so '150K to 15K' cannot happen: "
            "above "
            f"{cap / ratio:,.0f} tokens the ratio is set by the cap, not by 10:1.",
        ),
        (
            "a 5% floor on the summary",
            [
                Claim("kept of the history", a["summary_floor"], 1.0),
                Claim("kept at the model's window", a["summary_floor"], 1.0),
            ],
            ("price_tier", "context_tokens", "max_summary_tokens", "summary_floor", "ratio"),
            _row_floor,
            f"The {cap:,}-token cap keeps under {a['summary_floor']:.0%} of any history over "
            f"{cap / a['summary_floor']:,.0f} tokens, which the model's window allows.",
        ),
        (
            "a 20-30K threshold",
            [Claim("threshold", 20_000, 30_000)],
            session + compaction,
            _row_threshold,
            "On cost alone the cheapest threshold depends on caching: each compaction re-writes "
            "the cache. A 20-30K "
            "threshold is a quality choice (lost in the middle), not a cost optimum.",
        ),
        (
            "1,000+ tok/s for a diffusion LM",
            [Claim("tok/s", 1000)],
            ("diffusion_model",),
            _row_speed,
            "The vendor's own launch figure on its own hardware (see the prices.json note); "
            "per-request speed depends "
            "on load, output length and hardware.",
        ),
        (
            "80 s (AR) against ≈1 s (diffusion) for an 8K summary",
            [Claim.about("AR s", 80.0), Claim.about("diffusion s", 1.0, ROUGH_TOLERANCE)],
            (
                "price_tier",
                "context_tokens",
                "max_summary_tokens",
                "ar_seconds_per_token",
                "diffusion_model",
            ),
            _row_ar_vs_diffusion,
            "The seed's 80 s is 8,000 x 10 ms; the course's decode model reads the weights and the "
            "KV cache for every "
            "token, so a larger model at a long context is slower, and no published dLLM speed "
            "gives 8K in 1 s.",
        ),
        (
            "16 steps x 60 ms ≈ 1 s",
            [Claim.about("s", 1.0, ROUGH_TOLERANCE)],
            ("diffusion_steps", "diffusion_step_seconds", "max_summary_tokens"),
            _row_steps,
            "The arithmetic is right, but 16 steps for an 8K summary fixes 500 tokens a step; "
            "dLLMs decode long "
            "outputs in blocks, with more steps in all.",
        ),
        (
            "the compaction step adds roughly one second instead of ten",
            [
                Claim.about("diffusion s", 1.0, ROUGH_TOLERANCE),
                Claim.about("AR s", 10.0, ROUGH_TOLERANCE),
            ],
            (
                "price_tier",
                "caching",
                "context_tokens",
                "ratio",
                "max_summary_tokens",
                "diffusion_model",
                "diffusion_steps",
                "diffusion_step_seconds",
            ),
            _row_one_vs_ten,
            "One compaction call: prefill of the history (none when the same model reads it from "
            "its cache) plus "
            "writing the summary. The seed's own AR figure for the summary is 80 s, not ten.",
        ),
        (
            "8 steps for JSON against 16-20 for prose",
            [Claim("JSON steps", 8, 8), Claim("prose steps", 16, 20)],
            (),
            _row_json_steps,
            "Notebook 04 counts the denoising steps the course's model needs per field.",
        ),
        (
            "a diffusion compactor is 10-20x cheaper",
            [Claim("x", 10, 20)],
            (
                "price_tier",
                "caching",
                "context_tokens",
                "ratio",
                "max_summary_tokens",
                "diffusion_model",
            ),
            _row_cheaper,
            "The same call priced both ways: the session's model reads the history (from its cache "
            "when caching is "
            "on); the diffusion model reads it uncached, since it holds no cache of this session.",
        ),
        (
            "'2-3 minute waits' at 150K tokens",
            [Claim("s", 120, 180)],
            session,
            _row_waits,
            "One turn at about 150K tokens on the tier's reference deployment. Long waits come "
            "from long outputs "
            "(many tool calls, long edits), which compaction does not shorten.",
        ),
        (
            "Mercury can compact a 150K history",
            [Claim("window", n)],
            ("diffusion_model", "context_tokens"),
            _row_window,
            "A compactor must read the history it compacts in one prompt.",
        ),
    ]


def claims_ledger(
    prices: Mapping[str, ModelPrice] | None = None, assumptions: Mapping | None = None
) -> list[dict]:
    """Recompute each numeric claim of the seed and judge it with the one rule, `judge`.

    Every figure is computed from prices.json, unmasked.latency and `assumptions` (SEED_ASSUMPTIONS
    updated with yours); the alternatives flip each OPEN_ASSUMPTIONS entry a row uses.
    """
    prices = load_prices() if prices is None else prices
    a = dict(SEED_ASSUMPTIONS, **(assumptions or {}))
    unknown = set(a) - set(SEED_ASSUMPTIONS)
    if unknown:
        raise ValueError(
            f"unknown assumption(s) {', '.join(sorted(unknown))}; accepted: "
            f"{', '.join(SEED_ASSUMPTIONS)}"
        )
    for key, values in OPEN_ASSUMPTIONS.items():
        if a[key] not in values:
            raise ValueError(f"assumption {key} must be one of {values}, got {a[key]!r}")
    scenarios = {(): _Scenario(a, prices)}

    def scenario(key, value):
        if (key, value) not in scenarios:
            scenarios[(key, value)] = _Scenario({**a, key: value}, prices)
        return scenarios[(key, value)]

    rows = []
    for claim, claims, uses, figures, note in _ledger_rows(a):
        main, computed = figures(scenarios[()])
        alternatives = {}
        for key in uses:
            if key in OPEN_ASSUMPTIONS:
                other = next(v for v in OPEN_ASSUMPTIONS[key] if v != a[key])
                alternatives[f"{key}={other}"] = figures(scenario(key, other))[0]
        verdict, why = judge(claims, main, alternatives)
        rows.append(
            dict(
                claim=claim,
                claimed="; ".join(c.show() for c in claims),
                assumptions="; ".join(f"{k}={a[k]}" for k in uses) or "none",
                computed=computed,
                verdict=verdict,
                reason=(why + ". " if why else "") + note,
                figures=main,
            )
        )
    return rows


# --------------------------------------------------------------------------- calculator & context
# figures


def calculator_results(
    turns: int,
    tokens_per_turn: int,
    model: str,
    caching: bool,
    threshold: int,
    ratio: float,
    compactor: str | None = None,
    *,
    keep_last: int = 2,
    output_tokens: int = 500,
    max_summary_tokens: int | None = None,
    on_overflow: str = "compact",
    prices=None,
) -> dict[str, SessionResult]:
    """The two sessions the calculator compares: without and with compaction, same settings.

    A prompt over the model's window forces a compaction (on_overflow="compact", marked on the
    turn and in SessionResult.window_note) or raises ContextWindowError (on_overflow="error").
    """
    prices = load_prices() if prices is None else prices
    policy = CompactionPolicy(
        threshold=threshold,
        keep_last=keep_last,
        ratio=ratio,
        compactor=compactor,
        max_summary_tokens=max_summary_tokens,
    )
    common = dict(
        output_tokens=output_tokens, caching=caching, prices=prices, on_overflow=on_overflow
    )
    return {
        "no compaction": simulate_session(turns, tokens_per_turn, model, **common),
        "with compaction": simulate_session(turns, tokens_per_turn, model, policy=policy, **common),
    }


def calculator_figures(*args, **kwargs):
    """(cumulative cost figure, per-turn latency figure) for calculator_results(*args, **kwargs)."""
    results = calculator_results(*args, **kwargs)
    return cumulative_cost_figure(results), turn_latency_figure(results)


def threshold_sweep_figure(
    rows_by_label: Mapping[str, list], title: str = "Session cost against threshold"
):
    """Session cost per threshold (from threshold_sweep), with the never-compact cost dashed."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, rows in rows_by_label.items():
        base = next(c for th, c in rows if th is None)
        pts = [(th, c) for th, c in rows if th is not None]
        line = fig.add_scatter(
            x=[p[0] for p in pts],
            y=[p[1] for p in pts],
            name=f"{label}: compact at threshold",
            mode="lines+markers",
        ).data[-1]
        fig.add_scatter(
            x=[pts[0][0], pts[-1][0]],
            y=[base, base],
            name=f"{label}: never compact",
            mode="lines",
            line=dict(dash="dash", color=line.line.color),
        )
    fig.update_layout(
        title=title,
        xaxis_title="compaction threshold (tokens)",
        yaxis_title="session cost (USD)",
        template="plotly_white",
    )
    return fig


# Liu et al., "Lost in the Middle: How Language Models Use Long Contexts", TACL 12 (2024), 157-173
# (arXiv:2307.03172). Multi-document QA: accuracy by the position of the one document that holds
# the answer. GPT-3.5-Turbo (0613) with 20 documents (~4K tokens), the answer at positions 1, 5,
# 10, 15 and 20 (arXiv v3, appendix G, Table 6), and its closed-book and oracle accuracies
# (Table 1). `longer`: GPT-3.5-Turbo (16K) with 30 documents (~6K tokens), 7 positions (Table 7),
# and that model's closed-book and oracle accuracies (Table 1).
LOST_IN_THE_MIDDLE = dict(
    citation="Liu et al. 2024, Lost in the Middle, TACL 12:157-173 (arXiv:2307.03172)",
    model="GPT-3.5-Turbo (0613)",
    documents=20,
    positions=(1, 5, 10, 15, 20),
    accuracy=(75.8, 57.2, 53.8, 55.4, 63.2),
    source="arXiv:2307.03172v3, Table 6",
    closed_book=56.1,
    oracle=88.3,
    longer=dict(
        model="GPT-3.5-Turbo (16K)",
        documents=30,
        positions=(1, 5, 10, 15, 20, 25, 30),
        accuracy=(73.4, 55.1, 50.5, 50.9, 51.8, 54.9, 63.7),
        source="arXiv:2307.03172v3, Table 7",
        closed_book=56.0,
        oracle=88.6,
    ),
)


def position_accuracy_figure(data: Mapping = LOST_IN_THE_MIDDLE):
    """Accuracy by position of the relevant document, against the closed-book and oracle lines.

    Every point is a measured one from the paper's tables: the lines between them only join
    them, the paper has no value there.
    """
    import plotly.graph_objects as go

    curves = [data] + ([data["longer"]] if data.get("longer") else [])
    fig = go.Figure()
    for curve, (dash, symbol) in zip(curves, (("solid", "circle"), ("dashdot", "square"))):
        fig.add_scatter(
            x=list(curve["positions"]),
            y=list(curve["accuracy"]),
            name=f"{curve['model']}, {curve['documents']} documents",
            mode="lines+markers",
            line=dict(dash=dash),
            marker=dict(symbol=symbol, size=8),
            hovertemplate="answer in document %{x}: %{y}% correct<extra></extra>",
        )
    xs = [min(min(c["positions"]) for c in curves), max(max(c["positions"]) for c in curves)]
    for key, dash in (("closed_book", "dash"), ("oracle", "dot")):
        fig.add_scatter(
            x=xs,
            y=[data[key]] * 2,
            mode="lines",
            line=dict(dash=dash, color="grey"),
            name=f"{key.replace('_', '-')}, {data['model']} ({data[key]}%)",
        )
    fig.update_layout(
        title=f"Accuracy by where the answer is: {data['citation']}",
        xaxis_title="position of the document with the answer (1 = first in the prompt)",
        yaxis_title="accuracy (%)",
        template="plotly_white",
        legend=dict(orientation="h", yanchor="top", y=-0.2),
    )
    return fig


VERDICT_COLOURS = {
    "holds": "#d8f0d8",
    "holds with a caveat": "#fbf0c8",
    "does not hold": "#f6d5d5",
    "not measured here": "#e4e4e4",
}


def html_text(value) -> str:
    """HTML-escaped text with "$" as &#36;: plotly titles then keep their dollars (for an HTML
    output in JupyterLab, also mark the element `mathjax_ignore`, as ledger_html does)."""
    import html

    return html.escape(str(value)).replace("$", "&#36;")


def ledger_html(
    rows: list[dict], columns=("claim", "claimed", "computed", "verdict", "assumptions", "reason")
) -> str:
    """The ledger as an HTML table, one row per claim, coloured by verdict."""
    head = "".join(f"<th style='text-align:left'>{html_text(c)}</th>" for c in columns)
    body = []
    for row in rows:
        colour = VERDICT_COLOURS.get(row["verdict"], "white")
        cells = "".join(
            f"<td style='text-align:left;vertical-align:top'>{html_text(row[c])}</td>"
            for c in columns
        )
        body.append(f"<tr style='background:{colour}'>{cells}</tr>")
    # JupyterLab's MathJax reads "&#36;" as a dollar too (the browser decodes it first): the class
    # mathjax_ignore is what keeps it off the table.
    return (
        f"<table class='claims-ledger mathjax_ignore'><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )
