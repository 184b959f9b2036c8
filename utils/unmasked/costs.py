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
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
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
    """One model's per-token prices and published speed, as read from prices.json."""

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

    @property
    def speed_is_published(self) -> bool:
        return self.output_tokens_per_second is not None

    @property
    def tokens_per_second(self) -> float:
        """Published output speed, else the seed's 100 tokens/s (10 ms/token), flagged as assumed."""
        if self.output_tokens_per_second is not None:
            return float(self.output_tokens_per_second)
        return _lat.ASSUMED_AR_TOKENS_PER_SECOND


class PriceFileError(ValueError):
    """prices.json has a missing or bad field; the message names the entry and the field."""


def _number(entry: str, key: str, value, *, allow_none: bool = False, positive: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise PriceFileError(f"prices entry {entry!r}: field {key!r} must be a number, got {value!r}")
    if value < 0 or (positive and value == 0):
        sign = "positive" if positive else "non-negative"
        raise PriceFileError(f"prices entry {entry!r}: field {key!r} must be {sign}, got {value!r}")
    return value


def validate_prices(raw: Mapping) -> dict[str, ModelPrice]:
    """Check every entry of a prices mapping and return ModelPrice objects by name.

    Keys starting with '_' are documentation and are skipped.
    """
    if not isinstance(raw, Mapping):
        raise PriceFileError(f"prices must be a JSON object of model entries, got {type(raw).__name__}")
    models = {}
    for name, entry in raw.items():
        if name.startswith("_"):
            continue
        if not isinstance(entry, Mapping):
            raise PriceFileError(f"prices entry {name!r} must be an object, got {type(entry).__name__}")
        missing = [k for k in REQUIRED_FIELDS if k not in entry]
        if missing:
            raise PriceFileError(
                f"prices entry {name!r} is missing field(s) {', '.join(missing)}; "
                f"every entry needs: {', '.join(REQUIRED_FIELDS)}"
            )
        for key in PRICE_FIELDS:
            _number(name, key, entry[key])
        _number(name, "max_input_tokens", entry["max_input_tokens"], positive=True)
        _number(name, "output_tokens_per_second", entry.get("output_tokens_per_second"), allow_none=True,
                positive=True)
        _number(name, "time_to_first_token_s", entry.get("time_to_first_token_s"), allow_none=True)
        for key in ("source", "date"):
            if not isinstance(entry[key], str) or not entry[key].strip():
                raise PriceFileError(f"prices entry {name!r}: field {key!r} must be a non-empty string")
        kind = entry.get("kind", "autoregressive")
        if kind not in KINDS:
            raise PriceFileError(f"prices entry {name!r}: field 'kind' is {kind!r}; accepted: {', '.join(KINDS)}")
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
    if model not in prices:
        raise ValueError(f"unknown model {model!r}; accepted: {', '.join(sorted(prices))}")
    return prices[model]


def token_cost(tokens: float, price_per_token: float) -> float:
    """Dollars for `tokens` at a per-token price: 150,000 tokens at $3/M is $0.45."""
    _check_tokens("tokens", tokens)
    return tokens * price_per_token


# --------------------------------------------------------------------------- policy & checks


def _check_tokens(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number of tokens, got {value!r}")


def _check_count(name: str, value, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class CompactionPolicy:
    """When and how hard to compact.

    threshold: compact before a turn whose prompt would exceed this many tokens.
    keep_last: the most recent turns kept verbatim; older turns become one summary.
    ratio: summary tokens / compacted tokens, in (0, 1]; 10:1 compression is 0.1.
    compactor: the model that writes the summary (None: the session's own model).
    reuse_cache: a same-model compactor reads the history from the prompt cache (see module doc).
    """

    threshold: int = 25_000
    keep_last: int = 2
    ratio: float = 0.1
    compactor: str | None = None
    reuse_cache: bool = True

    def __post_init__(self):
        _check_tokens("threshold", self.threshold)
        _check_count("keep_last", self.keep_last)
        r = self.ratio
        if isinstance(r, bool) or not isinstance(r, (int, float)) or math.isnan(r) or not 0 < r <= 1:
            raise ValueError(f"ratio must be in (0, 1] (summary tokens / compacted tokens; 0.1 is 10:1), got {r!r}")


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

    @property
    def total_cost(self) -> float:
        return sum(t.cost for t in self.turns)

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

    def rows(self) -> list[dict]:
        """One dict per turn (for pandas.DataFrame), with cost and latency totals."""
        return [dict(asdict(t), cost=t.cost, latency_s=t.latency_s) for t in self.turns]


def _decode_seconds(model: ModelPrice, tokens: int, diffusion_steps: int | None, step_seconds: float | None):
    if tokens == 0:
        return 0.0
    if model.kind == "diffusion" and diffusion_steps is not None:
        step = _lat.SEED_DIFFUSION_STEP_SECONDS if step_seconds is None else step_seconds
        return _lat.diffusion_decode_seconds(diffusion_steps, step)
    return _lat.ar_decode_seconds(tokens, model.tokens_per_second)


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
    prefill: _lat.PrefillModel = _lat.REFERENCE_PREFILL,
    diffusion_steps: int | None = None,
    diffusion_step_seconds: float | None = None,
) -> SessionResult:
    """Simulate `turns` turns of a growing session, optionally compacting under `policy`.

    initial_history: tokens already in the history before turn 1 (an int is one block; a list
    gives one block per earlier turn), e.g. a session picked up mid-way; it is cached if caching
    is on. diffusion_steps (with diffusion_step_seconds, default the seed's 60 ms) makes a
    diffusion model decode in steps x step time instead of at its published tokens/s.

    Returns a SessionResult whose turns hold the per-turn split of input (uncached, cache read,
    cache write), output, compaction, cost and latency.
    """
    _check_count("turns", turns)
    _check_tokens("tokens_per_turn", tokens_per_turn)
    _check_tokens("output_tokens", output_tokens)
    _check_tokens("system_tokens", system_tokens)
    initial = [initial_history] if isinstance(initial_history, (int, float)) else list(initial_history)
    for value in initial:
        _check_tokens("initial_history", value)
    if policy is not None and not isinstance(policy, CompactionPolicy):
        raise ValueError(f"policy must be a CompactionPolicy or None, got {type(policy).__name__}")
    if prices is None and not isinstance(model, ModelPrice):
        prices = load_prices()
    m = get_model(model, prices)
    comp = None
    if policy is not None:
        comp = m if policy.compactor is None else get_model(policy.compactor, prices)

    blocks: list[int] = [int(b) for b in initial if b]
    cached_prefix = int(system_tokens + sum(blocks)) if caching else 0
    records = []
    for t in range(1, turns + 1):
        history = system_tokens + sum(blocks)
        compacted = summary = 0
        compaction_cost = compaction_s = 0.0
        if (
            policy is not None
            and history + tokens_per_turn > policy.threshold
            and len(blocks) > policy.keep_last
        ):
            split = len(blocks) - policy.keep_last
            old, kept = blocks[:split], blocks[split:]
            compacted = sum(old)
            summary = max(1, round(policy.ratio * compacted))
            blocks = [summary] + kept
            reads_cache = caching and policy.reuse_cache and comp.name == m.name
            read_price = comp.cache_read_input_token_cost if reads_cache else comp.input_cost_per_token
            compaction_cost = compacted * read_price + summary * comp.output_cost_per_token
            compaction_s = (0.0 if reads_cache else prefill.seconds(compacted)) + _decode_seconds(
                comp, summary, diffusion_steps, diffusion_step_seconds)
            cached_prefix = system_tokens if caching else 0
            history = system_tokens + sum(blocks)

        prompt = history + tokens_per_turn
        if caching:
            cached = min(cached_prefix, prompt)
            written, uncached = prompt - cached, 0
        else:
            cached = written = 0
            uncached = prompt
        input_cost = (uncached * m.input_cost_per_token + cached * m.cache_read_input_token_cost
                      + written * m.cache_creation_input_token_cost)
        records.append(TurnRecord(
            turn=t, prompt_tokens=int(prompt), uncached_input=int(uncached), cached_input=int(cached),
            cache_write=int(written), output_tokens=int(output_tokens), compacted=bool(compacted),
            compacted_tokens=int(compacted), summary_tokens=int(summary), input_cost=input_cost,
            output_cost=output_tokens * m.output_cost_per_token, compaction_cost=compaction_cost,
            prefill_s=prefill.seconds(uncached + written, cached),
            decode_s=_decode_seconds(m, output_tokens, diffusion_steps, diffusion_step_seconds),
            compaction_s=compaction_s,
        ))
        blocks.append(int(tokens_per_turn + output_tokens))
        cached_prefix = prompt if caching else 0
    return SessionResult(model=m.name, caching=caching, policy=policy, turns=tuple(records))


def session_cost(turns: int, tokens_per_turn: int, model, **kwargs) -> float:
    """Total dollars of a simulated session (keyword arguments as simulate_session)."""
    return simulate_session(turns, tokens_per_turn, model, **kwargs).total_cost


def compaction_savings(turns: int, tokens_per_turn: int, model, policy: CompactionPolicy, **kwargs) -> float:
    """Fraction of the session's cost that compaction saves (negative when it costs more)."""
    base = session_cost(turns, tokens_per_turn, model, **kwargs)
    with_policy = session_cost(turns, tokens_per_turn, model, policy=policy, **kwargs)
    return 0.0 if base == 0 else 1 - with_policy / base


# --------------------------------------------------------------------------- thresholds


def threshold_sweep(turns, tokens_per_turn, model, thresholds, *, keep_last=2, ratio=0.1, compactor=None,
                    reuse_cache=True, **kwargs) -> list[tuple[int | None, float]]:
    """(threshold, session cost) for each threshold; the no-compaction cost is one row with None."""
    rows = [(None, session_cost(turns, tokens_per_turn, model, **kwargs))]
    for th in thresholds:
        policy = CompactionPolicy(threshold=th, keep_last=keep_last, ratio=ratio, compactor=compactor,
                                  reuse_cache=reuse_cache)
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
    compares `horizon` more turns under a policy with threshold H (so it compacts at once, and
    again only if the history regrows past H) against the same turns without. A compaction costs a summary call and, with caching, the loss of the cached prefix; it saves
    re-sending (1 - ratio) of the old history on every later turn. Returns None if no candidate
    pays back.
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
    common = dict(output_tokens=output_tokens, system_tokens=system_tokens, caching=caching, prices=prices)
    for h in candidates:
        old = h - block * keep_last
        if old <= 0:
            continue
        history = [old] + [block] * keep_last
        without = session_cost(horizon, tokens_per_turn, m, initial_history=history, **common)
        policy = CompactionPolicy(threshold=h, keep_last=keep_last, ratio=ratio, compactor=compactor,
                                  reuse_cache=reuse_cache)
        with_c = session_cost(horizon, tokens_per_turn, m, initial_history=history, policy=policy, **common)
        if with_c < without:
            return int(h)
    return None


# --------------------------------------------------------------------------- figures


def _per_turn_figure(results: Mapping[str, SessionResult], series: str, title: str, yaxis_title: str):
    """One line per labelled session of `series` (a per-turn list on SessionResult) against the turn."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, res in results.items():
        fig.add_scatter(x=[t.turn for t in res.turns], y=getattr(res, series), name=label, mode="lines+markers",
                        marker=dict(size=4))
    fig.update_layout(title=title, xaxis_title="turn", yaxis_title=yaxis_title,
                      template="plotly_white", legend=dict(orientation="h", y=-0.2))
    return fig


def cumulative_cost_figure(results: Mapping[str, SessionResult], title: str | None = None):
    """Cumulative dollars per turn, one line per labelled session."""
    if title is None:  # &#36; is "$": plotly.js would read the text between two "$" as LaTeX and hide the title
        title = "Cumulative session cost: " + ", ".join(f"{k} &#36;{r.total_cost:,.2f}" for k, r in results.items())
    return _per_turn_figure(results, "cumulative_cost", title, "cumulative cost (USD)")


def turn_latency_figure(results: Mapping[str, SessionResult], title: str | None = None):
    """Seconds per turn (prefill + decode + any compaction), one line per labelled session."""
    if title is None:
        title = "Per-turn latency: " + ", ".join(
            f"{k} mean {(r.total_latency_s / max(1, len(r.turns))):.1f} s" for k, r in results.items())
    return _per_turn_figure(results, "latencies", title, "seconds (prefill + decode + compaction)")


def context_figure(results: Mapping[str, SessionResult], title: str = "Prompt size per turn"):
    """Tokens sent per turn: the sawtooth that compaction makes of a growing context."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, res in results.items():
        fig.add_scatter(x=[t.turn for t in res.turns], y=[t.prompt_tokens for t in res.turns], name=label,
                        mode="lines")
    fig.update_layout(title=title, xaxis_title="turn", yaxis_title="prompt tokens", template="plotly_white")
    return fig


def copy_traces(target, source) -> None:
    """Update a FigureWidget in place from a freshly built figure with the same traces.

    Widgets keep their identity (so the browser sees one figure changing), while the numbers
    come from the pure figure functions above.
    """
    if len(target.data) != len(source.data):
        raise ValueError(f"target has {len(target.data)} traces, source {len(source.data)}: build both alike")
    with target.batch_update():
        for old, new in zip(target.data, source.data):
            old.x, old.y, old.name = new.x, new.y, new.name
        target.layout.title.text = source.layout.title.text


# --------------------------------------------------------------------------- claims ledger

VERDICTS = ("holds", "holds with caveat", "does not hold")

# The assumptions under which the ledger recomputes the seed's claims. Where the seed states an
# assumption (150k tokens, $3/M, 10 ms/token, 16 steps x 60 ms, 10:1) it is used as stated; the
# rest (session shape, keep_last, output length) are ours, chosen so the session reaches the
# seed's 150k tokens, and named in every ledger row.
SEED_ASSUMPTIONS = dict(
    model="claude-sonnet-4",  # $3 per million input tokens, the seed's price
    context_tokens=150_000,
    flat_turns=20,  # $9 / $0.45 = 20 turns that each send 150k tokens
    turns=40,
    tokens_per_turn=3_500,
    output_tokens=250,  # 40 turns x 3,750 tokens reach the seed's 150k
    threshold=25_000,  # the middle of the seed's 20-30k
    keep_last=2,
    ratio=0.1,  # 10:1
    ar_tokens=8_000,
    ar_seconds_per_token=_lat.SEED_AR_SECONDS_PER_TOKEN,
    diffusion_steps=_lat.SEED_DIFFUSION_STEPS,
    diffusion_step_seconds=_lat.SEED_DIFFUSION_STEP_SECONDS,
    diffusion_model="mercury-2",
)


def _close(value: float, target: float, tol: float = 0.05) -> bool:
    return abs(value - target) <= tol * abs(target)


def _row(claim, assumptions, computed, verdict, reason):
    assert verdict in VERDICTS, verdict
    return dict(claim=claim, assumptions=assumptions, computed=computed, verdict=verdict, reason=reason)


def claims_ledger(prices: Mapping[str, ModelPrice] | None = None, assumptions: Mapping | None = None) -> list[dict]:
    """Recompute each numeric claim of the seed and judge it: holds / holds with caveat / does not hold.

    Every value in a row is computed here from prices.json and `assumptions` (SEED_ASSUMPTIONS
    by default); each verdict follows from a comparison written out below, never typed in.
    """
    prices = load_prices() if prices is None else prices
    a = dict(SEED_ASSUMPTIONS, **(assumptions or {}))
    m = get_model(a["model"], prices)
    n = a["context_tokens"]
    session = dict(output_tokens=a["output_tokens"], prices=prices)
    policy = CompactionPolicy(threshold=a["threshold"], keep_last=a["keep_last"], ratio=a["ratio"])
    shape = (f"{m.name}; {a['turns']} turns x ({a['tokens_per_turn']:,} in + {a['output_tokens']} out), "
             f"threshold {a['threshold']:,}, keep_last {a['keep_last']}, ratio {a['ratio']}")
    rows = []

    # 1. $0.45 per turn at 150k tokens.
    uncached = token_cost(n, m.input_cost_per_token)
    cached = token_cost(n, m.cache_read_input_token_cost)
    verdict = ("does not hold" if not _close(uncached, 0.45)
               else "holds" if _close(cached, 0.45) else "holds with caveat")
    rows.append(_row(
        "$0.45 per turn at 150k tokens", f"{m.name}, {n:,} input tokens, list price",
        f"${uncached:.3f} uncached; ${cached:.3f} if the history is a cache hit", verdict,
        f"{n:,} x ${m.input_cost_per_token * PER_MILLION:g}/M = ${uncached:.2f}. With prompt caching the re-sent "
        f"history is billed at ${m.cache_read_input_token_cost * PER_MILLION:g}/M, {cached / uncached:.0%} of that."))

    # 2. $9 per session.
    flat = session_cost(a["flat_turns"], 0, m, initial_history=n, output_tokens=0, caching=False, prices=prices)
    grow_u = session_cost(a["turns"], a["tokens_per_turn"], m, caching=False, **session)
    grow_c = session_cost(a["turns"], a["tokens_per_turn"], m, caching=True, **session)
    verdict = ("does not hold" if not _close(flat, 9.0)
               else "holds" if _close(grow_c, 9.0) else "holds with caveat")
    rows.append(_row(
        "$9 per session", f"{a['flat_turns']} turns at {n:,} tokens; and a growing session: {shape}",
        f"${flat:.2f} flat; growing: ${grow_u:.2f} uncached, ${grow_c:.2f} cached", verdict,
        f"$9 is {a['flat_turns']} turns that each send {n:,} tokens uncached. A session that grows to {n:,} "
        f"costs ${grow_u:.2f} without caching but ${grow_c:.2f} with it."))

    # 3. 90% less cost with compaction.
    save_u = compaction_savings(a["turns"], a["tokens_per_turn"], m, policy, caching=False, **session)
    save_c = compaction_savings(a["turns"], a["tokens_per_turn"], m, policy, caching=True, **session)
    verdict = ("holds" if min(save_u, save_c) >= 0.85 else "holds with caveat" if save_u >= 0.85
               else "does not hold")
    rows.append(_row(
        "90% less cost with compaction", shape,
        f"{save_u:.0%} saved uncached; {save_c:.0%} saved with caching", verdict,
        f"10:1 cuts one re-sent history by {1 - a['ratio']:.0%}, but a session also pays for the turns before the "
        f"threshold, the kept turns, the summaries and (with caching) re-writing the cache after each compaction; "
        f"and caching had already made the re-sent history {1 - m.cache_read_input_token_cost / m.input_cost_per_token:.0%} cheaper."))

    # 4. 82% less latency with compaction: one turn at 150k tokens, before and after compacting it.
    kept = a["keep_last"] * (a["tokens_per_turn"] + a["output_tokens"])
    old = n - kept - a["tokens_per_turn"]
    after = round(a["ratio"] * old) + kept
    decode = _lat.ar_decode_seconds(a["output_tokens"], m.tokens_per_second)
    pf = _lat.REFERENCE_PREFILL
    lat_u = (pf.seconds(n) + decode, pf.seconds(after + a["tokens_per_turn"]) + decode)
    lat_c = (pf.seconds(a["tokens_per_turn"], n - a["tokens_per_turn"]) + decode,
             pf.seconds(a["tokens_per_turn"], after) + decode)
    red_u, red_c = 1 - lat_u[1] / lat_u[0], 1 - lat_c[1] / lat_c[0]
    verdict = ("holds" if min(red_u, red_c) >= 0.77 else "holds with caveat" if red_u >= 0.77
               else "does not hold")
    rows.append(_row(
        "82% less latency with compaction",
        f"one turn at {n:,} tokens vs the same turn compacted to {after + a['tokens_per_turn']:,}; reference "
        f"prefill ({pf.label}); {a['output_tokens']} output tokens at {m.tokens_per_second:g} tok/s"
        + ("" if m.speed_is_published else " (assumed)"),
        f"{lat_u[0]:.1f} s -> {lat_u[1]:.1f} s ({red_u:.0%}) uncached; {lat_c[0]:.1f} s -> {lat_c[1]:.1f} s "
        f"({red_c:.0%}) with a warm KV/prompt cache", verdict,
        "Compaction shortens prefill, not decode; once the prefix is cached only the new tokens are prefilled, "
        "so the saving shrinks to what they pay for attending over the long history."))

    # 5. 10:1 compression.
    loose = CompactionPolicy(threshold=a["threshold"], keep_last=a["keep_last"], ratio=min(1.0, 2 * a["ratio"]))
    save_loose = compaction_savings(a["turns"], a["tokens_per_turn"], m, loose, caching=False, **session)
    verdict = "holds with caveat" if save_loose > 0 else "does not hold"
    rows.append(_row(
        "10:1 compression", shape,
        f"an input here, not a result: savings {save_u:.0%} at {a['ratio']:g}, {save_loose:.0%} at "
        f"{loose.ratio:g} (uncached)", verdict,
        "The ratio a compactor reaches must be measured on real sessions, along with what the summary loses; "
        "the cost argument survives a compactor that only reaches half of 10:1."))

    # 6. A 20-30k threshold.
    grid = range(5_000, n + 1, 5_000)
    best_u, _ = best_threshold(a["turns"], a["tokens_per_turn"], m, grid, keep_last=a["keep_last"],
                               ratio=a["ratio"], caching=False, **session)
    best_c, _ = best_threshold(a["turns"], a["tokens_per_turn"], m, grid, keep_last=a["keep_last"],
                               ratio=a["ratio"], caching=True, **session)
    inside = [b is not None and 20_000 <= b <= 30_000 for b in (best_u, best_c)]
    verdict = "holds" if all(inside) else "holds with caveat" if any(inside) else "does not hold"
    fmt = lambda b: "never compact" if b is None else f"{b:,}"  # noqa: E731
    rows.append(_row(
        "a 20-30k threshold", f"{shape}; thresholds {grid.start:,}-{grid.stop - 1:,} step {grid.step:,}",
        f"cheapest threshold: {fmt(best_u)} uncached, {fmt(best_c)} cached", verdict,
        "On cost alone the best threshold depends on caching: without it, compacting early always pays; with it, "
        "each compaction re-writes the cache and must be paid back by cheaper later turns. A 20-30k threshold is "
        "a quality choice (lost in the middle), not a cost optimum."))

    # 7. 1,000+ tok/s.
    d = get_model(a["diffusion_model"], prices)
    speed = d.output_tokens_per_second
    verdict = "does not hold" if speed is None or speed < 1000 else "holds with caveat"
    rows.append(_row(
        "1,000+ tok/s", f"{d.name} ({d.kind}), the published figure in prices.json",
        "no published speed" if speed is None else f"{speed:,g} tok/s", verdict,
        "The vendor's own figure on its own hardware (see the prices.json note); a third party reports a similar "
        "measurement. Per-request speed depends on load, output length and hardware."))

    # 8. 8,000 tokens x 10 ms = 80 s for AR.
    ar = _lat.ar_decode_seconds(a["ar_tokens"], 1 / a["ar_seconds_per_token"])
    verdict = "holds" if _close(ar, 80.0) else "does not hold"
    rows.append(_row(
        "8,000 tokens x 10 ms = 80 s (AR)", f"{a['ar_tokens']:,} output tokens at {a['ar_seconds_per_token'] * 1e3:g} ms each",
        f"{ar:.1f} s", verdict,
        "An AR model needs one forward pass per output token; 10 ms/token is 100 tok/s, a typical single-stream "
        "speed for a large model. Prefill is not included."))

    # 9. 16 steps x 60 ms ~ 1 s for diffusion.
    diff = _lat.diffusion_decode_seconds(a["diffusion_steps"], a["diffusion_step_seconds"])
    published = None if speed is None else a["ar_tokens"] / speed
    if not _close(diff, 1.0):
        verdict = "does not hold"
    elif published is not None and published > 2 * diff:
        verdict = "does not hold"
    else:
        verdict = "holds"
    rows.append(_row(
        "16 steps x 60 ms ~ 1 s (diffusion)",
        f"{a['diffusion_steps']} steps x {a['diffusion_step_seconds'] * 1e3:g} ms for {a['ar_tokens']:,} tokens; "
        f"{d.name} at its published speed",
        f"{diff:.2f} s as stated; " + ("no published speed" if published is None
                                       else f"{published:.1f} s at {speed:,g} tok/s"), verdict,
        f"The arithmetic is right, but 16 steps for {a['ar_tokens']:,} tokens means "
        f"{a['ar_tokens'] / a['diffusion_steps']:,.0f} tokens fixed per step; real dLLMs decode long outputs in "
        "blocks with more steps. At the fastest published dLLM throughput the speed-up over 100 tok/s AR is "
        + ("unknown" if published is None else f"{ar / published:.0f}x, not {ar / diff:.0f}x") + "."))
    return rows


# --------------------------------------------------------------------------- calculator & context figures


def calculator_results(turns: int, tokens_per_turn: int, model: str, caching: bool, threshold: int, ratio: float,
                       compactor: str | None = None, *, keep_last: int = 2, output_tokens: int = 500,
                       prices=None) -> dict[str, SessionResult]:
    """The two sessions the calculator compares: without and with compaction, same settings."""
    prices = load_prices() if prices is None else prices
    policy = CompactionPolicy(threshold=threshold, keep_last=keep_last, ratio=ratio, compactor=compactor)
    common = dict(output_tokens=output_tokens, caching=caching, prices=prices)
    return {
        "no compaction": simulate_session(turns, tokens_per_turn, model, **common),
        "with compaction": simulate_session(turns, tokens_per_turn, model, policy=policy, **common),
    }


def calculator_figures(*args, **kwargs):
    """(cumulative cost figure, per-turn latency figure) for calculator_results(*args, **kwargs)."""
    results = calculator_results(*args, **kwargs)
    return cumulative_cost_figure(results), turn_latency_figure(results)


def threshold_sweep_figure(rows_by_label: Mapping[str, list], title: str = "Session cost against threshold"):
    """Session cost per threshold (from threshold_sweep), with the never-compact cost dashed."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, rows in rows_by_label.items():
        base = next(c for th, c in rows if th is None)
        pts = [(th, c) for th, c in rows if th is not None]
        line = fig.add_scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], name=f"{label}: compact at threshold",
                               mode="lines+markers").data[-1]
        fig.add_scatter(x=[pts[0][0], pts[-1][0]], y=[base, base], name=f"{label}: never compact", mode="lines",
                        line=dict(dash="dash", color=line.line.color))
    fig.update_layout(title=title, xaxis_title="compaction threshold (tokens)", yaxis_title="session cost (USD)",
                      template="plotly_white")
    return fig


# Liu et al., "Lost in the Middle: How Language Models Use Long Contexts", TACL 12 (2024), 157-173
# (arXiv:2307.03172). GPT-3.5-Turbo on multi-document QA with 20 documents (~4K tokens): accuracy
# by the position of the document holding the answer (Figure 5; values as tabulated from the
# paper), and the closed-book and oracle accuracies of Table 1.
LOST_IN_THE_MIDDLE = dict(
    citation="Liu et al. 2024, Lost in the Middle, TACL 12:157-173 (arXiv:2307.03172)",
    model="GPT-3.5-Turbo (0613)",
    documents=20,
    positions=(1, 10, 20),
    accuracy=(75.8, 53.8, 63.2),
    closed_book=56.1,
    oracle=88.3,
)


def position_accuracy_figure(data: Mapping = LOST_IN_THE_MIDDLE):
    """Accuracy by position of the relevant document, against the closed-book and oracle lines."""
    import plotly.graph_objects as go

    xs = list(data["positions"])
    fig = go.Figure()
    fig.add_scatter(x=xs, y=list(data["accuracy"]), name="answer document at this position", mode="lines+markers")
    for key, dash in (("closed_book", "dash"), ("oracle", "dot")):
        fig.add_scatter(x=[xs[0], xs[-1]], y=[data[key]] * 2, mode="lines", line=dict(dash=dash),
                        name=f"{key.replace('_', '-')} ({data[key]}%)")
    fig.update_layout(title=f"{data['model']}, {data['documents']} documents: {data['citation']}",
                      xaxis_title="position of the document with the answer", yaxis_title="accuracy (%)",
                      template="plotly_white")
    return fig
