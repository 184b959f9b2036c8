"""The bidirectional transformer and its causal twin (unmasked.model)."""

import pytest
import torch

from unmasked.env import seed_everything
from unmasked.masking import mask_tokens, masked_diffusion_loss
from unmasked.model import ModelConfig, TransformerLM, apply_rope, rope_tables


def tiny(causal=False, pad_id=None, V=50):
    seed_everything(0)
    return TransformerLM(
        ModelConfig(
            vocab_size=V, max_len=64, n_layer=2, n_head=2, n_embd=32, causal=causal, pad_id=pad_id
        )
    ).eval()


def expected_params(V, L, n_layer, C):
    """The count from the architecture, written out: token and position tables (the head is tied to
    the token table), per block two LayerNorms (gain and bias), qkv (3 C x C), the attention's
    output (C x C) and the MLP (C x 4C and 4C x C), all without biases; then the final LayerNorm."""
    block = 2 * (2 * C) + 3 * C * C + C * C + 4 * C * C + 4 * C * C
    return V * C + L * C + n_layer * block + 2 * C


def test_shapes_and_parameter_count():
    model = tiny()
    logits = model(torch.randint(0, 50, (3, 17)))
    assert logits.shape == (3, 17, 50)
    assert expected_params(V=50, L=64, n_layer=2, C=32) == 28_544  # the formula, worked by hand
    assert model.num_params() == 28_544
    big = TransformerLM(ModelConfig(vocab_size=1000, max_len=100, n_layer=3, n_head=4, n_embd=64))
    assert big.num_params() == expected_params(V=1000, L=100, n_layer=3, C=64)
    assert model.lm_head.weight is model.wte.weight  # tied: counted once


def test_weight_decay_groups_leave_layernorm_and_biases_alone():
    """As nanoGPT's configure_optimizers: decay matrices (embeddings too), not 1-D parameters."""
    model = tiny()
    decay, none = model.optimizer_groups(0.1)
    assert (decay["weight_decay"], none["weight_decay"]) == (0.1, 0.0)
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in none["params"]) == sorted(
        n for n, _ in model.named_parameters() if ".ln" in n or n.startswith("ln_f")
    )
    assert {"wte.weight", "wpe.weight", "blocks.0.attn.qkv.weight", "blocks.1.mlp.proj.weight"} <= {
        names[id(p)] for p in decay["params"]
    }
    # every parameter once, the tied head/embedding once
    assert len(decay["params"]) + len(none["params"]) == len(list(model.parameters()))
    # One AdamW step with zero gradients moves only what is decayed: matrices shrink, gains stay 1.
    opt = torch.optim.AdamW(model.optimizer_groups(0.5), lr=0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    after = dict(model.named_parameters())
    assert torch.equal(after["blocks.0.ln1.weight"], before["blocks.0.ln1.weight"])
    assert torch.equal(after["ln_f.bias"], before["ln_f.bias"])
    assert torch.allclose(after["wte.weight"], before["wte.weight"] * (1 - 0.1 * 0.5))


def _future_changes_past(model):
    ids = torch.randint(1, 50, (1, 12), generator=torch.Generator().manual_seed(0))
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] + 7) % 50
    with torch.no_grad():
        return not torch.allclose(model(ids)[0, 0], model(changed)[0, 0], atol=1e-6)


def test_bidirectional_attention_sees_the_future():
    assert _future_changes_past(tiny(causal=False))


def test_causal_twin_does_not_see_the_future():
    assert not _future_changes_past(tiny(causal=True))


def test_padding_keys_are_ignored():
    model = tiny(pad_id=0)
    ids = torch.randint(1, 50, (1, 10), generator=torch.Generator().manual_seed(1))
    padded = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], dim=1)
    with torch.no_grad():
        assert torch.allclose(model(ids), model(padded)[:, :10], atol=1e-5)


def test_positions_count_from_the_anchor_whatever_comes_before():
    """With [SEP] as anchor, the answer after it gets the same position ids for any prompt length
    or padding."""
    SEP, PAD = 2, 0
    seed_everything(0)
    model = TransformerLM(
        ModelConfig(
            vocab_size=50,
            max_len=64,
            n_layer=2,
            n_head=2,
            n_embd=32,
            pad_id=PAD,
            anchor_id=SEP,
            anchor_pos=20,
        )
    ).eval()
    answer = torch.tensor([[1, 1, 1, 1]])
    short = torch.cat([torch.tensor([[7, 8, SEP]]), answer], dim=1)
    long = torch.cat([torch.tensor([[PAD, PAD, 9, 9, 9, 7, 8, SEP]]), answer], dim=1)
    assert model.positions(short)[0, -5:].tolist() == [20, 21, 22, 23, 24]
    assert model.positions(long)[0, -5:].tolist() == [20, 21, 22, 23, 24]
    assert model.positions(long)[0, 0].item() == 20 - 7  # left padding counts back from the anchor
    assert model.positions(torch.tensor([[5, 6, 7]])).tolist() == [
        [0, 1, 2]
    ]  # no anchor: plain 0, 1, 2
    left_padded = torch.cat([torch.full((1, 4), PAD), short], dim=1)
    with (
        torch.no_grad()
    ):  # padding in front changes nothing: its keys are ignored, positions are anchored
        assert torch.allclose(model(short), model(left_padded)[:, 4:], atol=1e-5)
    with pytest.raises(ValueError, match="anchor_pos"):
        ModelConfig(
            vocab_size=50, max_len=8, n_layer=1, n_head=2, n_embd=16, anchor_id=SEP, anchor_pos=8
        )


def test_rope_preserves_norms_and_depends_on_position():
    cos, sin = rope_tables(8, 16)
    x = torch.randn(1, 1, 16, 8)
    y = apply_rope(x, cos, sin)
    assert torch.allclose(x.norm(dim=-1), y.norm(dim=-1), atol=1e-5)
    same = x[:, :, :1].expand(1, 1, 16, 8)
    assert not torch.allclose(
        apply_rope(same, cos, sin)[0, 0, 0], apply_rope(same, cos, sin)[0, 0, 5]
    )


@pytest.mark.parametrize(
    "kwargs", [dict(n_embd=30, n_head=4), dict(n_layer=0), dict(dropout=1.0), dict(vocab_size=-1)]
)
def test_bad_configs_are_rejected(kwargs):
    base = dict(vocab_size=10, max_len=8, n_layer=1, n_head=2, n_embd=16)
    with pytest.raises(ValueError):
        ModelConfig(**{**base, **kwargs})


def test_too_long_or_wrong_rank_input_is_rejected():
    model = tiny()
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(ValueError, match="batch, length"):
        model(torch.zeros(5, dtype=torch.long))


def test_tiny_model_overfits_one_batch():
    """A prompt-conditioned answer, learnt from one batch: loss falls and one-shot filling copies
    it."""
    MASK, V = 1, 40
    seed_everything(0)
    model = TransformerLM(ModelConfig(vocab_size=V, max_len=32, n_layer=2, n_head=2, n_embd=64))
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(2, V, (4, 8), generator=gen)
    answer = prompt.flip(1)[:, :6]  # the answer is a function of the prompt
    ids = torch.cat([prompt, answer], dim=1)
    maskable = torch.zeros_like(ids, dtype=torch.bool)
    maskable[:, 8:] = True
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(250):
        t = torch.rand(4, generator=gen) * 0.9 + 0.1
        noisy, is_masked = mask_tokens(ids, t, MASK, maskable=maskable, generator=gen)
        loss = masked_diffusion_loss(model(noisy), ids, is_masked, t, lengths=maskable.sum(1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.05 * sum(losses[:10]) / 10
    model.eval()
    fully_masked = torch.where(maskable, torch.full_like(ids, MASK), ids)
    with torch.no_grad():
        filled = model(fully_masked).argmax(-1)[:, 8:]
    assert torch.equal(filled, answer)
