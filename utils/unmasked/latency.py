"""How long a turn takes: prefill that grows as a·n + b·n², and decode that slows as the context
grows.

Prefill (reading the prompt) is bound by arithmetic. Per token, the weight matmuls of a model
with N matmul parameters cost 2·N FLOPs over all its layers together: linear in the prompt
length n. Attention is extra: in each of L layers, token i multiplies its query with i keys
(QKᵀ, 2·d·i FLOPs) and its attention weights with i values (AV, another 2·d·i FLOPs). Summed
over a causal prompt that is 4·L·d·(1 + 2 + ... + n) ≈ 2·L·d·n² FLOPs. This is PaLM's count
(Chowdhery et al. 2022, "PaLM: Scaling Language Modeling with Pathways", arXiv:2204.02311,
appendix B: 2N + 4·L·H·Q·T FLOPs per token on the forward pass, with H·Q = d and T the length
attended over). A bidirectional model (the course's masked diffusion model) lets every token
attend to all n, so its attention costs 4·L·d·n². Divided by the FLOP/s the hardware delivers:

    prefill_seconds(n) = a·n + b·n²,   a = 2N / F,   b = 2·L·d / F,   F = peak FLOP/s × utilisation

The quadratic term overtakes the linear one at n* = a / b = N / (L·d) tokens.

Decode (writing) at batch 1 is bound by memory bandwidth, not arithmetic: to write one token an
autoregressive model reads all its weights and the whole KV cache from HBM. Per token:

    decode_token_seconds(c) = (weight bytes + c × KV bytes per token) / (HBM bytes/s × utilisation)

where c is the context already in the cache and KV bytes per token = 2 (K and V) × L × KV heads
× head width × bytes per value. So decode slows down as the context grows.

Vendors publish neither their models' shapes nor their serving hardware, so each tier of model
gets a stated *reference deployment* (DEPLOYMENTS) built from open models of known shape:
- frontier: Llama 3.1 405B (126 layers, d_model 16384, 8 KV heads of width 128) in FP8 on
  8 H100 SXM, as Meta serves it (Llama Team 2024, "The Llama 3 Herd of Models",
  arXiv:2407.21783, Table 3 and section 6.2);
- mid: Llama 2 70B (80 layers, d_model 8192, 8 KV heads of width 128) in BF16 on 8 H100 SXM
  (Touvron et al. 2023, arXiv:2307.09288, Table 1 and section 2.2);
- fast: Llama 3.1 8B (32 layers, d_model 4096, 8 KV heads of width 128) in BF16 on one H100
  SXM (arXiv:2407.21783, Table 3). Mercury's size is not published; it gets this class too.
H100 SXM: 989 TFLOP/s dense BF16, 1,979 TFLOP/s dense FP8, 3.35 TB/s HBM3, 80 GB (NVIDIA's H100
Tensor Core GPU datasheet). Utilisation is an assumption, stated: 40% of peak FLOP/s in prefill
(model FLOP utilisation in practice is often 30-50%) and 70% of peak HBM bandwidth in decode.

A masked diffusion model refines a whole block in a fixed number of denoising steps, so its
decode takes steps × step time, whatever the length (within a block).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

# NVIDIA H100 SXM datasheet figures (dense, without sparsity).
H100_DENSE_BF16_FLOPS = 989e12
H100_DENSE_FP8_FLOPS = 1979e12
H100_HBM_BYTES_PER_S = 3.35e12
H100_HBM_BYTES = 80e9

# Assumptions, stated: how much of the peak a serving stack delivers.
PREFILL_FLOP_UTILISATION = 0.40
DECODE_BANDWIDTH_UTILISATION = 0.70

# The first reference deployment (the mid tier), kept under its old names.
REFERENCE_PARAMS = 70e9
REFERENCE_LAYERS = 80
REFERENCE_D_MODEL = 8192
REFERENCE_GPUS = 8
REFERENCE_UTILISATION = PREFILL_FLOP_UTILISATION

# The seed's decode assumptions, used by the claims ledger: 10 ms per AR token (100 tokens/s);
# 16 diffusion steps of 60 ms each.
SEED_AR_SECONDS_PER_TOKEN = 0.010
ASSUMED_AR_TOKENS_PER_SECOND = 1.0 / SEED_AR_SECONDS_PER_TOKEN
SEED_DIFFUSION_STEPS = 16
SEED_DIFFUSION_STEP_SECONDS = 0.060


def _check_nonneg(name: str, value) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or math.isnan(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")


def _check_pos(name: str, value) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or math.isnan(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a positive number, got {value!r}")


# --------------------------------------------------------------------------- FLOPs


def forward_flops(
    n_tokens: int, n_params: float, n_layers: int, d_model: int, causal: bool = True
) -> float:
    """FLOPs of one forward pass over n tokens: 2·N·n for the weights plus attention.

    Causal: token i attends to i tokens (itself and those before), 4·d·i FLOPs per layer, so
    attention is 2·L·d·n·(n + 1). Bidirectional: every token attends to all n, 4·L·d·n².
    """
    _check_nonneg("n_tokens", n_tokens)
    for name, value in (("n_params", n_params), ("n_layers", n_layers), ("d_model", d_model)):
        _check_pos(name, value)
    n = n_tokens
    attention = 2 * n_layers * d_model * n * (n + 1) if causal else 4 * n_layers * d_model * n * n
    return 2 * n_params * n + attention


# --------------------------------------------------------------------------- prefill


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
    """a = 2N/F and b = 2·L·d/F from a model's shape and the FLOP/s it gets (PaLM, appendix B)."""
    _check_pos("n_params", n_params)
    _check_pos("n_layers", n_layers)
    _check_pos("d_model", d_model)
    _check_pos("peak_flops", peak_flops)
    if not 0 < utilisation <= 1:
        raise ValueError(f"utilisation must be in (0, 1], got {utilisation!r}")
    flops = peak_flops * utilisation
    label = (
        f"{n_params / 1e9:g}B, {n_layers} layers, d={d_model}, {flops / 1e15:.2f} PFLOP/s delivered"
    )
    return PrefillModel(a=2 * n_params / flops, b=2 * n_layers * d_model / flops, label=label)


REFERENCE_PREFILL = prefill_coefficients()


def prefill_seconds(n_tokens: float, model: PrefillModel = REFERENCE_PREFILL) -> float:
    """a·n + b·n² for a prompt of n tokens with nothing cached."""
    return model.seconds(n_tokens)


# --------------------------------------------------------------------------- deployments


@dataclass(frozen=True)
class Deployment:
    """A model of stated shape on stated hardware: its prefill and its bandwidth-bound decode."""

    label: str
    n_params: float
    n_layers: int
    d_model: int
    n_kv_heads: int
    head_dim: int
    gpus: int
    bytes_per_param: float = 2.0  # BF16; FP8 is 1
    bytes_per_kv_value: float = 2.0  # a BF16 KV cache
    peak_flops_per_gpu: float = H100_DENSE_BF16_FLOPS
    hbm_bytes_per_s_per_gpu: float = H100_HBM_BYTES_PER_S
    hbm_bytes_per_gpu: float = H100_HBM_BYTES
    flop_utilisation: float = PREFILL_FLOP_UTILISATION
    bandwidth_utilisation: float = DECODE_BANDWIDTH_UTILISATION
    source: str = ""

    def __post_init__(self):
        for name in (
            "n_params",
            "n_layers",
            "d_model",
            "n_kv_heads",
            "head_dim",
            "gpus",
            "bytes_per_param",
            "bytes_per_kv_value",
            "peak_flops_per_gpu",
            "hbm_bytes_per_s_per_gpu",
            "hbm_bytes_per_gpu",
        ):
            _check_pos(name, getattr(self, name))
        for name in ("flop_utilisation", "bandwidth_utilisation"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {value!r}")

    @property
    def prefill(self) -> PrefillModel:
        return prefill_coefficients(
            self.n_params,
            self.n_layers,
            self.d_model,
            self.peak_flops_per_gpu * self.gpus,
            self.flop_utilisation,
        )

    @property
    def weight_bytes(self) -> float:
        return self.n_params * self.bytes_per_param

    @property
    def kv_bytes_per_token(self) -> float:
        """K and V for one token in every layer."""
        return 2 * self.n_layers * self.n_kv_heads * self.head_dim * self.bytes_per_kv_value

    @property
    def bandwidth(self) -> float:
        """HBM bytes per second the deployment delivers, all GPUs together."""
        return self.gpus * self.hbm_bytes_per_s_per_gpu * self.bandwidth_utilisation

    @property
    def max_context_in_memory(self) -> float:
        """Tokens of KV cache that fit in HBM beside the weights (one request)."""
        return (
            max(0.0, self.gpus * self.hbm_bytes_per_gpu - self.weight_bytes)
            / self.kv_bytes_per_token
        )

    def decode_token_seconds(self, context: float) -> float:
        """One token at batch 1: read every weight and `context` tokens of KV cache."""
        _check_nonneg("context", context)
        return (self.weight_bytes + context * self.kv_bytes_per_token) / self.bandwidth

    def tokens_per_second(self, context: float) -> float:
        return 1.0 / self.decode_token_seconds(context)

    def decode_seconds(self, tokens: float, context: float = 0) -> float:
        """Write `tokens` after a prompt of `context` tokens; each new token joins the cache."""
        _check_nonneg("tokens", tokens)
        _check_nonneg("context", context)
        t = float(tokens)
        kv_reads = t * context + t * (t - 1) / 2  # token k reads context + k cached tokens
        return (t * self.weight_bytes + kv_reads * self.kv_bytes_per_token) / self.bandwidth


_LLAMA3 = "Llama Team 2024, The Llama 3 Herd of Models, arXiv:2407.21783, Table 3"
_H100 = (
    "NVIDIA H100 Tensor Core GPU datasheet (SXM: 989 TFLOP/s BF16, 1,979 FP8 dense, 3.35 "
    "TB/s, "
    "80 GB)"
)
DEPLOYMENTS = {
    "frontier": Deployment(
        "405B FP8 (Llama 3.1 405B shape) on 8 H100",
        405e9,
        126,
        16384,
        8,
        128,
        gpus=8,
        bytes_per_param=1.0,
        peak_flops_per_gpu=H100_DENSE_FP8_FLOPS,
        source=f"{_LLAMA3}; FP8 serving on one 8-GPU node, section 6.2; {_H100}",
    ),
    "mid": Deployment(
        "70B BF16 (Llama 2 70B shape) on 8 H100",
        REFERENCE_PARAMS,
        REFERENCE_LAYERS,
        REFERENCE_D_MODEL,
        8,
        128,
        gpus=REFERENCE_GPUS,
        source="Touvron et al. 2023, Llama 2, arXiv:2307.09288 (80 layers, d 8192, GQA with 8 KV "
        f"heads); {_H100}",
    ),
    "fast": Deployment(
        "8B BF16 (Llama 3.1 8B shape) on 1 H100",
        8e9,
        32,
        4096,
        8,
        128,
        gpus=1,
        source=f"{_LLAMA3}; {_H100}",
    ),
}


def deployment_for(tier: str) -> Deployment:
    """The reference deployment of a price tier (frontier, mid, fast); unknown tiers are an
    error."""
    if tier not in DEPLOYMENTS:
        raise ValueError(
            f"no reference deployment for tier {tier!r}; accepted: {', '.join(DEPLOYMENTS)}"
        )
    return DEPLOYMENTS[tier]


def with_changes(deployment: Deployment, **changes) -> Deployment:
    """A copy of a deployment with some constants changed (checked like the original)."""
    return replace(deployment, **changes)


# --------------------------------------------------------------------------- decode


def ar_decode_seconds(tokens: float, tokens_per_second: float) -> float:
    """An AR model at a fixed speed: tokens / (tokens per second). See Deployment for one that
    slows."""
    _check_nonneg("tokens", tokens)
    _check_pos("tokens_per_second", tokens_per_second)
    return tokens / tokens_per_second


def diffusion_decode_seconds(steps: int, step_seconds: float) -> float:
    """A diffusion model refines all positions together: steps × step time."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    _check_nonneg("step_seconds", step_seconds)
    return steps * step_seconds


def prefill_figure(
    n_max: int = 200_000, model: PrefillModel = REFERENCE_PREFILL, points: int = 101
):
    """Prefill time against prompt length, split into its linear and quadratic parts."""
    import plotly.graph_objects as go

    _check_pos("n_max", n_max)
    xs = [n_max * i / (points - 1) for i in range(points)]
    fig = go.Figure()
    fig.add_scatter(
        x=xs, y=[model.linear_seconds(x) for x in xs], name="a·n (weights)", mode="lines"
    )
    fig.add_scatter(
        x=xs, y=[model.quadratic_seconds(x) for x in xs], name="b·n² (attention)", mode="lines"
    )
    fig.add_scatter(
        x=xs,
        y=[model.seconds(x) for x in xs],
        name="total prefill",
        mode="lines",
        line=dict(width=3),
    )
    if model.crossover_tokens <= n_max:
        fig.add_vline(
            x=model.crossover_tokens,
            line_dash="dot",
            annotation_text=f"b·n² = a·n at {model.crossover_tokens:,.0f} tokens",
        )
    fig.update_layout(
        title=f"Prefill time (reference: {model.label})",
        xaxis_title="prompt tokens n",
        yaxis_title="seconds",
        template="plotly_white",
    )
    return fig


def decode_figure(context_max: int = 200_000, deployments=None, points: int = 51):
    """Batch-1 decode speed (tokens/s) against the context already cached, one line per
    deployment."""
    import plotly.graph_objects as go

    _check_pos("context_max", context_max)
    deployments = DEPLOYMENTS if deployments is None else deployments
    xs = [context_max * i / (points - 1) for i in range(points)]
    fig = go.Figure()
    for tier, dep in deployments.items():
        fig.add_scatter(
            x=xs,
            y=[dep.tokens_per_second(x) for x in xs],
            name=f"{tier}: {dep.label}",
            mode="lines",
        )
    fig.update_layout(
        title="Decode at batch 1 is bound by memory bandwidth: weights + KV cache per token",
        xaxis_title="context tokens in the KV cache",
        yaxis_title="tokens per second",
        template="plotly_white",
    )
    return fig
