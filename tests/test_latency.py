"""unmasked.latency: the FLOP count against torch's FlopCounterMode, and decode that slows with
context."""

import math

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from unmasked import latency
from unmasked.model import ModelConfig, TransformerLM


def _counted_flops(config: ModelConfig, n_tokens: int) -> int:
    """FlopCounterMode's count of one forward pass.

    The math backend of scaled_dot_product_attention runs QKᵀ and AV as two bmm calls, which
    the counter sees; the fused CPU kernel has no FLOP formula registered and would count 0.
    """
    torch.manual_seed(0)
    model = TransformerLM(config).eval()
    idx = torch.randint(0, config.vocab_size, (1, n_tokens))
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(idx)
    return counter.get_total_flops()


def _matmul_params(config: ModelConfig) -> int:
    """Weights that take part in a matmul: 12·d² per block (QKV, out, MLP) plus the LM head."""
    d = config.n_embd
    return 12 * d * d * config.n_layer + d * config.vocab_size


@pytest.mark.parametrize("n_tokens", [16, 64, 200])
def test_bidirectional_forward_flops_match_flop_counter(n_tokens):
    config = ModelConfig(vocab_size=97, max_len=256, n_layer=3, n_head=4, n_embd=64)
    counted = _counted_flops(config, n_tokens)
    formula = latency.forward_flops(
        n_tokens, _matmul_params(config), config.n_layer, config.n_embd, causal=False
    )
    assert formula == counted


def test_attention_is_twice_what_the_old_formula_said():
    """FlopCounterMode counts QKᵀ and AV for every pair; the old a·n + L·d·n² counted half of it."""
    config = ModelConfig(vocab_size=97, max_len=512, n_layer=2, n_head=4, n_embd=64)
    short, long = _counted_flops(config, 128), _counted_flops(config, 256)
    # the quadratic part, from two lengths: f(n) = 2·N·n + q·n²  =>  q = (f(2n) - 2 f(n)) / (2 n²)
    q = (long - 2 * short) / (2 * 128**2)
    assert q == pytest.approx(4 * config.n_layer * config.n_embd)


def test_causal_attention_is_a_sum_over_each_tokens_prefix():
    """Token i attends to i tokens: 4·d·i FLOPs per layer, summed by brute force.

    (FlopCounterMode cannot check this one: a causal SDPA computes the full n×n product and masks
    half of it, so the counter reports the bidirectional figure for a causal model too.)
    """
    L, d, N = 3, 64, 1_000
    for n in (1, 7, 100):
        brute = sum(2 * N + 4 * L * d * i for i in range(1, n + 1))
        assert latency.forward_flops(n, N, L, d, causal=True) == brute
    # so a causal prefill's attention is about half a bidirectional one's
    n = 10_000
    causal = latency.forward_flops(n, N, L, d) - 2 * N * n
    full = latency.forward_flops(n, N, L, d, causal=False) - 2 * N * n
    assert causal / full == pytest.approx(0.5, rel=1e-3)


def test_prefill_coefficients_follow_palm():
    m = latency.prefill_coefficients(
        n_params=70e9, n_layers=80, d_model=8192, peak_flops=1e15, utilisation=0.5
    )
    assert m.a == pytest.approx(2 * 70e9 / 5e14)
    assert m.b == pytest.approx(2 * 80 * 8192 / 5e14)
    assert m.crossover_tokens == pytest.approx(70e9 / (80 * 8192))
    # the reference 70B: attention overtakes the weights near 107K tokens, not 214K
    assert 100_000 < latency.REFERENCE_PREFILL.crossover_tokens < 110_000


def test_prefill_seconds_agree_with_the_flop_count_over_delivered_flops():
    dep = latency.DEPLOYMENTS["mid"]
    flops = dep.peak_flops_per_gpu * dep.gpus * dep.flop_utilisation
    n = 150_000
    exact = latency.forward_flops(n, dep.n_params, dep.n_layers, dep.d_model) / flops
    assert dep.prefill.seconds(n) == pytest.approx(exact, rel=1e-4)


def test_decode_slows_as_the_context_grows():
    for tier, dep in latency.DEPLOYMENTS.items():
        speeds = [dep.tokens_per_second(c) for c in (0, 10_000, 50_000, 150_000)]
        assert all(a > b for a, b in zip(speeds, speeds[1:])), tier
        # 500 tokens after 150K of context take longer than after 1K
        assert dep.decode_seconds(500, 150_000) > dep.decode_seconds(500, 1_000), tier


def test_decode_is_weights_plus_kv_over_bandwidth_by_hand():
    dep = latency.Deployment(
        "toy",
        n_params=1e9,
        n_layers=2,
        d_model=64,
        n_kv_heads=2,
        head_dim=16,
        gpus=1,
        bytes_per_param=2,
        bytes_per_kv_value=2,
        hbm_bytes_per_s_per_gpu=1e12,
        bandwidth_utilisation=0.5,
    )
    assert dep.kv_bytes_per_token == 2 * 2 * 2 * 16 * 2
    assert dep.decode_token_seconds(0) == pytest.approx(2e9 / 5e11)
    assert dep.decode_token_seconds(1000) == pytest.approx((2e9 + 1000 * 256) / 5e11)
    # three tokens after 10 of context read 10, 11 and 12 cached tokens
    by_hand = sum(dep.decode_token_seconds(c) for c in (10, 11, 12))
    assert dep.decode_seconds(3, 10) == pytest.approx(by_hand)


def test_every_deployment_fits_its_memory_and_cites_sources():
    for tier, dep in latency.DEPLOYMENTS.items():
        assert dep.max_context_in_memory > 150_000, tier
        assert "arXiv" in dep.source and "H100" in dep.source, tier
    with pytest.raises(ValueError, match="accepted: frontier, mid, fast"):
        latency.deployment_for("huge")


def test_latency_bad_input():
    with pytest.raises(ValueError):
        latency.forward_flops(-1, 1, 1, 1)
    with pytest.raises(ValueError, match="utilisation"):
        latency.with_changes(latency.DEPLOYMENTS["fast"], bandwidth_utilisation=1.5)
    with pytest.raises(ValueError):
        latency.DEPLOYMENTS["fast"].decode_seconds(-1)
    assert math.isinf(latency.PrefillModel(1.0, 0.0).crossover_tokens)
