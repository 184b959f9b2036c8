"""The forward process and the 1/t-weighted masked cross-entropy (unmasked.masking)."""

import math

import pytest
import torch
import torch.nn.functional as F

from unmasked.masking import mask_tokens, masked_diffusion_loss, sample_t

MASK = 99


def test_masking_rate_matches_t_statistically():
    ids = torch.zeros(200, 500, dtype=torch.long)
    gen = torch.Generator().manual_seed(0)
    for t in (0.1, 0.5, 0.9):
        _, is_masked = mask_tokens(ids, t, MASK, generator=gen)
        n = ids.numel()
        sd = math.sqrt(n * t * (1 - t))
        assert (
            abs(is_masked.sum().item() - n * t) < 5 * sd
        )  # a 5-sigma band: fails if the rate is off


def test_per_sequence_rates_are_respected():
    t = torch.tensor([0.1, 0.9])
    ids = torch.zeros(2, 20_000, dtype=torch.long)
    _, is_masked = mask_tokens(ids, t, MASK, generator=torch.Generator().manual_seed(1))
    rates = is_masked.float().mean(dim=1)
    assert abs(rates[0] - 0.1) < 0.015 and abs(rates[1] - 0.9) < 0.015


def test_masked_positions_hold_the_mask_and_others_are_untouched():
    ids = torch.arange(1, 41).view(2, 20)
    noisy, is_masked = mask_tokens(ids, 0.5, MASK, generator=torch.Generator().manual_seed(2))
    assert torch.all(noisy[is_masked] == MASK)
    assert torch.equal(noisy[~is_masked], ids[~is_masked])


def test_prompt_is_never_masked_even_at_t_1():
    ids = torch.arange(30).view(3, 10)
    maskable = torch.zeros_like(ids, dtype=torch.bool)
    maskable[:, 6:] = True
    noisy, is_masked = mask_tokens(ids, 1.0, MASK, maskable=maskable)
    assert torch.equal(noisy[:, :6], ids[:, :6])
    assert torch.all(noisy[:, 6:] == MASK) and torch.equal(is_masked, maskable)


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, [0.5, 0.5, 0.5]])
def test_bad_rates_are_rejected(bad):
    with pytest.raises(ValueError):
        mask_tokens(torch.zeros(2, 4, dtype=torch.long), torch.tensor(bad), MASK)


def test_sample_t_stays_between_floor_and_one():
    t = sample_t(10_000, floor=0.2, generator=torch.Generator().manual_seed(3))
    assert t.min() >= 0.2 and t.max() <= 1.0
    assert abs(t.mean().item() - 0.6) < 0.01
    with pytest.raises(ValueError):
        sample_t(4, floor=1.0)


def _setup(seed=0, B=3, L=12, V=7):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, L, V, generator=gen)
    targets = torch.randint(0, V, (B, L), generator=gen)
    is_masked = torch.rand(B, L, generator=gen) < 0.5
    return logits, targets, is_masked


def test_loss_ignores_unmasked_positions():
    logits, targets, is_masked = _setup()
    t = torch.full((3,), 0.5)
    before = masked_diffusion_loss(logits, targets, is_masked, t)
    scrambled = logits.clone()
    scrambled[~is_masked] = torch.randn_like(scrambled[~is_masked]) * 100
    changed_targets = torch.where(is_masked, targets, (targets + 1) % 7)
    after = masked_diffusion_loss(scrambled, changed_targets, is_masked, t)
    assert torch.allclose(before, after)


def test_loss_scales_by_one_over_t():
    logits, targets, is_masked = _setup(1)
    at_half = masked_diffusion_loss(logits, targets, is_masked, 0.5)
    at_quarter = masked_diffusion_loss(logits, targets, is_masked, 0.25)
    assert torch.allclose(at_quarter, 2 * at_half)
    unweighted = masked_diffusion_loss(logits, targets, is_masked, 0.25, weighting="none")
    assert torch.allclose(unweighted, 0.25 * at_quarter)


def test_loss_matches_a_hand_computation():
    logits, targets, is_masked = _setup(2)
    t = torch.tensor([0.2, 0.5, 1.0])
    lengths = torch.tensor([12, 10, 6])
    expected = 0.0
    for b in range(3):
        ce = F.cross_entropy(logits[b], targets[b], reduction="none")
        expected += (ce[is_masked[b]].sum() / t[b] / lengths[b]).item()
    got = masked_diffusion_loss(logits, targets, is_masked, t, lengths=lengths)
    assert got.item() == pytest.approx(expected / 3, rel=1e-5)


def test_loss_is_zero_when_nothing_is_masked_and_rejects_bad_weighting():
    logits, targets, _ = _setup(3)
    none = torch.zeros(3, 12, dtype=torch.bool)
    assert masked_diffusion_loss(logits, targets, none, 0.5).item() == 0.0
    with pytest.raises(ValueError, match="weighting"):
        masked_diffusion_loss(logits, targets, none, 0.5, weighting="sqrt")


def test_under_the_forward_process_the_loss_is_unbiased_for_the_per_token_nelbo():
    """Logits that ignore the input make the ELBO integrand t-free: its integral is the mean CE of
    every token.

    Averaged over t ~ U(floor, 1) and independent masks at rate t, the 1/t-weighted loss must reach
    it.
    """
    gen = torch.Generator().manual_seed(0)
    B, L, V = 20_000, 16, 5
    logits = torch.randn(1, L, V, generator=gen).expand(B, L, V)
    targets = torch.randint(0, V, (1, L), generator=gen).expand(B, L)
    exact = F.cross_entropy(logits[0], targets[0]).item()  # mean over all L tokens
    t = sample_t(B, floor=0.1, generator=gen)
    _, is_masked = mask_tokens(targets, t, MASK, generator=gen)
    estimate = masked_diffusion_loss(logits, targets, is_masked, t).item()
    assert estimate == pytest.approx(exact, rel=0.02)
    unweighted = masked_diffusion_loss(logits, targets, is_masked, t, weighting="none").item()
    assert unweighted == pytest.approx(
        exact * t.mean().item(), rel=0.02
    )  # about 0.55 of it: no estimate


def test_rows_with_t_set_to_their_masked_share_give_a_plain_mean_cross_entropy():
    """What --sampler-frac rows are (unmasked.train.diffusion_step_loss): t = masked / L."""
    logits, targets, _ = _setup(4, B=3, L=12)
    is_masked = torch.zeros(3, 12, dtype=torch.bool)
    is_masked[0, 7:] = True  # a field cut after its 7th token: a suffix, not independent draws
    is_masked[1, 2:5] = True
    is_masked[2, :] = True
    t = is_masked.sum(dim=1) / 12
    ce = F.cross_entropy(logits.reshape(-1, 7), targets.reshape(-1), reduction="none").view(3, 12)
    mean_ce = torch.stack([ce[b][is_masked[b]].mean() for b in range(3)]).mean()
    assert masked_diffusion_loss(logits, targets, is_masked, t).item() == pytest.approx(
        mean_ce.item(), rel=1e-6
    )
