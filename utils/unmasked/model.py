"""A small transformer, nanoGPT style, that is bidirectional by default.

A masked diffusion LM is an ordinary transformer encoder: every position attends to every
other one, and there is no timestep input (LLaDA and MDLM show that the fraction of [MASK]
tokens tells the model how noisy its input is). Setting `causal=True` in the config gives the
autoregressive twin from the same code: the only difference is the attention mask.

Positions come in two kinds, because the job needs both:
- rotary embeddings (RoPE, Su et al. 2021, as in LLaMA and LLaDA) in every attention head:
  copying a span needs "the token after the one I just copied", a relative offset that RoPE
  gives every head for free;
- nanoGPT's learned position table, counted from an anchor token (the [SEP] between prompt and
  answer) when `anchor_id` is set. A fully masked answer is a row of identical [MASK] inputs;
  only this table tells slot 37 that it is the third character of the "database" value, however
  long the prompt before it was.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ModelConfig:
    vocab_size: int
    max_len: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0
    causal: bool = False
    pad_id: int | None = None  # keys holding this id are ignored by attention (batch padding)
    anchor_id: int | None = None  # learned positions count from this token's first occurrence
    anchor_pos: int = 0  # the learned position given to the anchor token itself

    def __post_init__(self):
        for name in ("vocab_size", "max_len", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head or (self.n_embd // self.n_head) % 2:
            raise ValueError(
                f"n_embd ({self.n_embd}) must split into n_head ({self.n_head}) heads of even width"
            )
        if not 0 <= self.anchor_pos < self.max_len:
            raise ValueError(f"anchor_pos must be in [0, max_len), got {self.anchor_pos}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)


def rope_tables(
    head_dim: int, max_len: int, base: float = 10_000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotation angle for every (position, frequency pair)."""
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2).float() / head_dim)
    angles = torch.outer(torch.arange(max_len).float(), inv_freq)  # (max_len, head_dim/2)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each (even, odd) pair of channels of x (B, H, T, D) by its position's angle."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2)


class SelfAttention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_head, self.causal, self.dropout = config.n_head, config.causal, config.dropout
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=False)

    def forward(self, x, cos, sin, key_mask=None, kv=None):
        """key_mask (B, S): True = may be attended to. kv: this layer's _LayerKV when decoding with
        a cache.

        With a cache, x holds only the T newest tokens, and the S keys are the cached ones then
        these.
        """
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (z.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for z in (q, k, v))
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if kv is not None:
            if kv.k is not None:
                k, v = torch.cat([kv.k, k], dim=2), torch.cat([kv.v, v], dim=2)
            kv.k, kv.v = k, v
        S = k.shape[2]
        attn_mask = None
        if key_mask is not None:
            attn_mask = key_mask[:, None, None, :]
        if self.causal and (attn_mask is not None or T != S):
            # query i is token S - T + i: it sees keys up to itself. SDPA's is_causal would align
            # the corner top-left, which is wrong when T < S (a cache).
            upto = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=S - T)
            if attn_mask is None:
                attn_mask = upto
            else:  # each query also sees itself, so that a left-padding query has a key (no NaN)
                attn_mask = (attn_mask & upto) | (upto & ~upto.tril(diagonal=S - T - 1))
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            is_causal=self.causal and attn_mask is None,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(config.n_embd), nn.LayerNorm(config.n_embd)
        self.attn, self.mlp = SelfAttention(config), MLP(config)

    def forward(self, x, cos, sin, key_mask=None, kv=None):
        x = x + self.attn(self.ln1(x), cos, sin, key_mask, kv)
        return x + self.mlp(self.ln2(x))


class _LayerKV:
    """One layer's cached keys and values (B, H, S, D), RoPE already applied."""

    def __init__(self):
        self.k = self.v = None


class KVCache:
    """Keys and values of every layer for the tokens a causal model has read so far.

    Autoregressive decoding reads the prompt once (the prefill), then one new token per step: each
    step computes keys and values for that token only and attends to the cached ones, instead of
    recomputing the whole sequence. Learned positions keep the offset found in the prefill, so the
    anchor ([SEP]) must be in the prefill, as it is when the prompt ends with it.
    """

    def __init__(self, n_layer: int):
        self.layers = [_LayerKV() for _ in range(n_layer)]
        self.length = 0  # tokens read so far
        self.key_mask: torch.Tensor | None = None  # (B, length), True where not [PAD]
        self.shift: torch.Tensor | None = None  # (B,), learned position = index + shift


class TransformerLM(nn.Module):
    """Token ids (B, T) -> logits (B, T, vocab). Bidirectional unless config.causal."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.max_len, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying, as in GPT-2 and nanoGPT
        cos, sin = rope_tables(config.n_embd // config.n_head, config.max_len)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled init of the residual projections
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def optimizer_groups(self, weight_decay: float) -> list[dict]:
        """AdamW parameter groups: decay the matrices, not the 1-D LayerNorm weights and biases.

        Decay pulls a weight towards 0; for a LayerNorm gain that means towards switching its
        channel off, which is not the regularisation we want (nanoGPT's configure_optimizers
        splits the same way). Embeddings are matrices and are decayed.
        """
        params = [p for p in self.parameters() if p.requires_grad]  # a tied weight comes once
        return [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]

    def positions(self, idx: torch.Tensor) -> torch.Tensor:
        """Learned-position ids (B, T): 0, 1, 2, ..., or counted from the anchor when there is one.

        With an anchor at index a of a row, position i gets anchor_pos + (i - a), clipped to the
        table; a row without the anchor counts from 0.
        """
        B, T = idx.shape
        pos = torch.arange(T, device=idx.device).expand(B, T)
        if self.config.anchor_id is None:
            return pos
        return (pos + self._position_shift(idx)[:, None]).clamp(0, self.config.max_len - 1)

    def _position_shift(self, idx: torch.Tensor) -> torch.Tensor:
        """(B,) what to add to a token's index to get its learned position, before clipping."""
        if self.config.anchor_id is None:
            return torch.zeros(idx.shape[0], dtype=torch.long, device=idx.device)
        is_anchor = idx == self.config.anchor_id
        first = is_anchor.long().argmax(dim=1)  # index of the first anchor (0 if none)
        return torch.where(
            is_anchor.any(dim=1), self.config.anchor_pos - first, torch.zeros_like(first)
        )

    def forward(
        self, idx: torch.Tensor, at: torch.Tensor | None = None, cache: KVCache | None = None
    ) -> torch.Tensor:
        """Logits (B, T, vocab); with `at`, a BoolTensor (B, T), only at its True positions: (N,
        vocab).

        A sampler can commit only masked positions, often a handful of a row's hundreds, and the
        output layer is a sizeable share of the cost: `at` skips it (and the final norm) elsewhere.
        The N rows come in row-major order, as `x[at]` gives them.
        cache: a causal model's KVCache (new_cache()): idx holds only the tokens after those it has
        read, and is added to it.
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must be (batch, length) token ids, got shape {tuple(idx.shape)}")
        B, T = idx.shape
        start = 0 if cache is None else cache.length
        if cache is not None and not self.config.causal:
            raise ValueError(
                "a KV cache needs a causal model: a bidirectional one's old keys change"
            )
        if start + T > self.config.max_len:
            raise ValueError(
                f"sequence of {start + T} tokens exceeds max_len={self.config.max_len}"
            )
        key_mask = None
        if self.config.pad_id is not None:
            is_token = idx != self.config.pad_id
            if cache is not None:
                is_token = (
                    is_token
                    if cache.key_mask is None
                    else torch.cat([cache.key_mask, is_token], dim=1)
                )
                cache.key_mask = is_token
            if not bool(is_token.all()):
                key_mask = is_token
        cos, sin = self.rope_cos[start : start + T], self.rope_sin[start : start + T]
        if cache is None:
            pos = self.positions(idx)
        else:
            if cache.shift is None:
                cache.shift = self._position_shift(idx)
            pos = (
                torch.arange(start, start + T, device=idx.device)[None, :] + cache.shift[:, None]
            ).clamp(0, self.config.max_len - 1)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, key_mask, None if cache is None else cache.layers[i])
        if cache is not None:
            cache.length += T
        if at is not None:
            if at.shape != idx.shape:
                raise ValueError(
                    f"at must be a bool mask of idx's shape {tuple(idx.shape)}, got "
                    f"{tuple(at.shape)}"
                )
            x = x[at]
        return self.lm_head(self.ln_f(x))

    def new_cache(self) -> KVCache:
        """An empty KVCache for this (causal) model."""
        if not self.config.causal:
            raise ValueError("a KV cache needs a causal model (ModelConfig(causal=True))")
        return KVCache(self.config.n_layer)
