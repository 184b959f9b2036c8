"""How long a turn takes: prefill that grows as a·n + b·n², and decode for AR or diffusion models.

Prefill (reading the prompt) does two kinds of work per layer. The weight matmuls cost about
2·N FLOPs per token for a model of N parameters: linear in the prompt length n. Attention
compares every token with every earlier token: token i costs about 2·d·i FLOPs per layer
(QKᵀ and AV), so a causal prefill of n tokens costs about L·d·n² FLOPs over L layers. This is
Kaplan et al. 2020 ("Scaling Laws for Neural Language Models", arXiv:2001.08361, Table 1:
C_forward ≈ 2N + 2·n_layer·n_ctx·d_attn per token) summed over the prompt. Divided by the
FLOP/s the hardware delivers:

    prefill_seconds(n) = a·n + b·n²,   a = 2N / F,   b = L·d / F,   F = peak FLOP/s × utilisation

The quadratic term overtakes the linear one at n* = a / b = 2N / (L·d) tokens.

Vendors do not publish their models' shapes or serving hardware, so the default coefficients
describe a *reference* deployment, stated here so that a learner can change every part of it:
a dense 70B model shaped like Llama 2 70B (80 layers, d_model 8192; Touvron et al. 2023,
arXiv:2307.09288), served on 8 NVIDIA H100 SXM GPUs (989 TFLOP/s dense BF16 each, NVIDIA's
H100 datasheet) at 40% model FLOP utilisation (an assumption; MFU in practice is often 30-50%).

Decode: an autoregressive model writes one token per forward pass, so decode takes
tokens / (tokens per second). A masked diffusion model refines a whole block in a fixed number
of denoising steps, so decode takes steps × step time, whatever the length (within a block).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Reference deployment (see the module docstring for where each number comes from).
REFERENCE_PARAMS = 70e9
REFERENCE_LAYERS = 80
REFERENCE_D_MODEL = 8192
H100_DENSE_BF16_FLOPS = 989e12
REFERENCE_GPUS = 8
REFERENCE_UTILISATION = 0.40

# The seed's decode assumptions, used by the claims ledger and as the fallback where a vendor
# publishes no speed: 10 ms per AR token (100 tokens/s); 16 diffusion steps of 60 ms each.
SEED_AR_SECONDS_PER_TOKEN = 0.010
ASSUMED_AR_TOKENS_PER_SECOND = 1.0 / SEED_AR_SECONDS_PER_TOKEN
SEED_DIFFUSION_STEPS = 16
SEED_DIFFUSION_STEP_SECONDS = 0.060


def _check_nonneg(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")


def _check_pos(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class PrefillModel:
    """Prefill time a·n + b·n² (seconds), with a in s/token and b in s/token²."""

    a: float
    b: float
    label: str = "custom"

    def __post_init__(self):
        _check_nonneg("a", self.a)
        _check_nonneg("b", self.b)

    @property
    def crossover_tokens(self) -> float:
        """Prompt length where the quadratic term equals the linear one (a / b)."""
        return math.inf if self.b == 0 else self.a / self.b

    def seconds(self, new_tokens: float, cached_tokens: float = 0) -> float:
        """Time to prefill `new_tokens` that follow `cached_tokens` already in the KV cache.

        The new tokens still attend to the cached ones, so the attention term is
        b·((k+m)² − k²) for m new tokens after k cached ones; with k = 0 this is a·n + b·n².
        """
        _check_nonneg("new_tokens", new_tokens)
        _check_nonneg("cached_tokens", cached_tokens)
        k, m = float(cached_tokens), float(new_tokens)
        return self.a * m + self.b * ((k + m) ** 2 - k**2)

    def linear_seconds(self, n: float) -> float:
        _check_nonneg("n", n)
        return self.a * n

    def quadratic_seconds(self, n: float) -> float:
        _check_nonneg("n", n)
        return self.b * n * n


def prefill_coefficients(
    n_params: float = REFERENCE_PARAMS,
    n_layers: int = REFERENCE_LAYERS,
    d_model: int = REFERENCE_D_MODEL,
    peak_flops: float = H100_DENSE_BF16_FLOPS * REFERENCE_GPUS,
    utilisation: float = REFERENCE_UTILISATION,
) -> PrefillModel:
    """a = 2N/F and b = L·d/F from a model's shape and the FLOP/s it gets (Kaplan et al. 2020)."""
    _check_pos("n_params", n_params)
    _check_pos("n_layers", n_layers)
    _check_pos("d_model", d_model)
    _check_pos("peak_flops", peak_flops)
    if not 0 < utilisation <= 1:
        raise ValueError(f"utilisation must be in (0, 1], got {utilisation!r}")
    flops = peak_flops * utilisation
    label = f"{n_params / 1e9:g}B, {n_layers} layers, d={d_model}, {flops / 1e15:.2f} PFLOP/s delivered"
    return PrefillModel(a=2 * n_params / flops, b=n_layers * d_model / flops, label=label)


REFERENCE_PREFILL = prefill_coefficients()


def prefill_seconds(n_tokens: float, model: PrefillModel = REFERENCE_PREFILL) -> float:
    """a·n + b·n² for a prompt of n tokens with nothing cached."""
    return model.seconds(n_tokens)


def ar_decode_seconds(tokens: float, tokens_per_second: float) -> float:
    """An AR model writes one token per step: tokens / (tokens per second)."""
    _check_nonneg("tokens", tokens)
    _check_pos("tokens_per_second", tokens_per_second)
    return tokens / tokens_per_second


def diffusion_decode_seconds(steps: int, step_seconds: float) -> float:
    """A diffusion model refines all positions together: steps × step time."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    _check_nonneg("step_seconds", step_seconds)
    return steps * step_seconds


def prefill_figure(n_max: int = 200_000, model: PrefillModel = REFERENCE_PREFILL, points: int = 101):
    """Prefill time against prompt length, split into its linear and quadratic parts."""
    import plotly.graph_objects as go

    _check_pos("n_max", n_max)
    xs = [n_max * i / (points - 1) for i in range(points)]
    fig = go.Figure()
    fig.add_scatter(x=xs, y=[model.linear_seconds(x) for x in xs], name="a·n (weights)", mode="lines")
    fig.add_scatter(x=xs, y=[model.quadratic_seconds(x) for x in xs], name="b·n² (attention)", mode="lines")
    fig.add_scatter(x=xs, y=[model.seconds(x) for x in xs], name="total prefill", mode="lines",
                    line=dict(width=3))
    if model.crossover_tokens <= n_max:
        fig.add_vline(x=model.crossover_tokens, line_dash="dot",
                      annotation_text=f"b·n² = a·n at {model.crossover_tokens:,.0f} tokens")
    fig.update_layout(title=f"Prefill time (reference: {model.label})", xaxis_title="prompt tokens n",
                      yaxis_title="seconds", template="plotly_white")
    return fig
