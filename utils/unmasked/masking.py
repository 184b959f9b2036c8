"""The forward process of a masked diffusion LM, and the loss that trains its reverse.

Forward process: pick a noise level t in (0, 1] and replace each token by [MASK]
independently with probability t. At t = 1 everything is masked; at t -> 0 nothing is.
Training draws t ~ U(floor, 1) per sequence (the floor keeps 1/t bounded, at the price of
leaving out the ELBO's t < floor part).

Loss: cross-entropy on the masked positions only, weighted by 1/t. This is the negative
ELBO of MDLM (Sahoo et al. 2024, arXiv:2406.07524, eq. 10-11) and LLaDA's objective (Nie et al.
2025, arXiv:2502.09992, eq. 3-5): a sequence at noise t has about t*L masked tokens, so without
the 1/t factor low-noise sequences would count for almost nothing, and the sum would no longer
bound the log-likelihood.

Conditional training (LLaDA's SFT rule): the prompt is never masked and never scored; only the
answer region is. `maskable` says which positions may be masked.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_T_FLOOR = 0.05
WEIGHTINGS = ("inverse_t", "none")


def sample_t(
    batch_size: int,
    floor: float = DEFAULT_T_FLOOR,
    generator: torch.Generator | None = None,
    device="cpu",
) -> torch.Tensor:
    """One noise level per sequence, t ~ U(floor, 1)."""
    if not 0.0 <= floor < 1.0:
        raise ValueError(f"floor must be in [0, 1), got {floor}")
    u = torch.rand(batch_size, generator=generator, device=device)
    return floor + (1.0 - floor) * u


def _as_rates(t, batch_size: int, device) -> torch.Tensor:
    t = torch.as_tensor(t, dtype=torch.float32, device=device)
    if t.dim() == 0:
        t = t.expand(batch_size)
    if t.shape != (batch_size,):
        raise ValueError(
            f"t must be a number or one value per sequence ({batch_size}), got shape "
            f"{tuple(t.shape)}"
        )
    if bool(((t <= 0) | (t > 1)).any()):
        raise ValueError(
            f"every t must be in (0, 1], got min {t.min().item():.3g}, max {t.max().item():.3g}"
        )
    return t


def mask_tokens(
    ids: torch.Tensor,
    t,
    mask_id: int,
    maskable: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask each maskable token of ids (B, L) with probability t (a number, or one per sequence).

    Returns (noisy ids, is_masked). Positions where `maskable` is False (the prompt, padding)
    are never masked.
    """
    if ids.dim() != 2:
        raise ValueError(f"ids must be (batch, length), got shape {tuple(ids.shape)}")
    rates = _as_rates(t, ids.shape[0], ids.device)
    draws = torch.rand(ids.shape, generator=generator, device=ids.device)
    is_masked = draws < rates[:, None]
    if maskable is not None:
        if maskable.shape != ids.shape:
            raise ValueError(f"maskable has shape {tuple(maskable.shape)}, ids {tuple(ids.shape)}")
        is_masked &= maskable.bool()
    noisy = torch.where(is_masked, torch.full_like(ids, mask_id), ids)
    return noisy, is_masked


def masked_diffusion_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    is_masked: torch.Tensor,
    t,
    lengths: torch.Tensor | None = None,
    weighting: str = "inverse_t",
) -> torch.Tensor:
    """Cross-entropy on masked positions, times 1/t, summed per sequence and divided by its length.

    logits (B, L, V), targets (B, L), is_masked (B, L), t per sequence. `lengths` is the number
    of scored (maskable) positions per sequence, LLaDA's answer length; default L. The result is
    the batch mean.

    It is an unbiased estimate of the per-token negative ELBO (MDLM eq. 10-11, LLaDA eq. 3-5;
    of the answer given the prompt) when the masks come from this module's forward process:
    every maskable token masked independently with probability t (`mask_tokens`), t drawn
    uniformly per sequence, weighting="inverse_t", and `lengths` the maskable counts. With
    t ~ U(floor, 1) (`sample_t`'s floor) it estimates that integral over t in [floor, 1] only,
    divided by 1 - floor. Rows masked any other way are something else: the rows of
    unmasked.train's `--sampler-frac` (sampler_order_mask) cut each field after a random step
    and never mask the JSON around the values, and pass t = masked / L, so their term is
    (sum of CE) / (masked count): a plain mean cross-entropy over the masked tokens.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    B, L, V = logits.shape
    if targets.shape != (B, L) or is_masked.shape != (B, L):
        raise ValueError(
            f"targets {tuple(targets.shape)} and is_masked {tuple(is_masked.shape)} must be "
            f"{(B, L)}"
        )
    rates = _as_rates(t, B, logits.device)
    ce = F.cross_entropy(
        logits.reshape(B * L, V).float(), targets.reshape(B * L), reduction="none"
    ).view(B, L)
    per_seq = torch.where(is_masked.bool(), ce, torch.zeros_like(ce)).sum(dim=1)
    if weighting == "inverse_t":
        per_seq = per_seq / rates
    if lengths is None:
        lengths = torch.full((B,), L, device=logits.device)
    return (per_seq / lengths.clamp(min=1)).mean()


# ---------------------------------------------------------------------------- pictures


def masking_rate_table(length: int, ts, trials: int = 200, seed: int = 0) -> list[dict]:
    """Measured fraction of masked tokens at each t (mean and std over `trials` sequences)."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for t in ts:
        _, is_masked = mask_tokens(
            torch.zeros(trials, length, dtype=torch.long), float(t), 0, generator=gen
        )
        frac = is_masked.float().mean(dim=1)
        rows.append(
            {"t": float(t), "masked_fraction": frac.mean().item(), "std": frac.std().item()}
        )
    return rows


def mask_grid_figure(pieces: list[str], ts, seed: int = 0, width: int = 40):
    """One row per noise level t: the answer's tokens, masked ones drawn dark.

    `pieces` are the printable tokens of one sequence. Hover shows each token; the title of each
    row gives the fraction actually masked (it scatters around t).
    """
    import plotly.graph_objects as go

    gen = torch.Generator().manual_seed(seed)
    n = len(pieces)
    ids = torch.zeros(1, n, dtype=torch.long)
    z, text, labels = [], [], []
    for t in ts:
        _, m = mask_tokens(ids, float(t), 0, generator=gen)
        m = m[0].tolist()
        z.append([1 if x else 0 for x in m])
        text.append(["[MASK]" if x else p for x, p in zip(m, pieces)])
        labels.append(f"t={float(t):.1f} ({sum(m) / n:.0%} masked)")
    # Cells are narrow: [MASK] and [EOS] show as M and E (the title says so), other pieces as 4
    # chars.
    short = {"[MASK]": "M", "[EOS]": "E"}
    shown = [[short.get(s, s if len(s) <= 4 else s[:3] + "…") for s in row[:width]] for row in text]
    fig = go.Figure(
        go.Heatmap(
            z=[row[:width] for row in z],
            text=shown,
            texttemplate="%{text}",
            textfont={"size": 9},
            hovertext=[row[:width] for row in text],
            hoverinfo="text",
            y=labels,
            colorscale=[[0, "#e8f1fb"], [1, "#404040"]],
            showscale=False,
            xgap=1,
            ygap=1,
        )
    )
    fig.update_layout(
        title=f"The same {min(n, width)} answer tokens masked at increasing t "
        "(dark M = [MASK], E = [EOS] filler)",
        xaxis_title="token position",
        height=60 + 34 * len(ts),
        margin=dict(l=140, r=10, t=50, b=40),
    )
    fig.update_yaxes(autorange="reversed")
    return fig


def weighting_table(
    per_token_ce: float, length: int, ts, trials: int = 2000, seed: int = 0
) -> list[dict]:
    """What the 1/t weight does: per-sequence loss of a model with a fixed per-token CE, by t.

    Unweighted, a sequence at noise t contributes about t * CE (few masked tokens, little loss);
    weighted by 1/t every t contributes CE on average, but small t is noisier (fewer tokens).
    """
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for t in ts:
        _, is_masked = mask_tokens(
            torch.zeros(trials, length, dtype=torch.long), float(t), 0, generator=gen
        )
        unweighted = is_masked.float().sum(dim=1) * per_token_ce / length
        weighted = unweighted / float(t)
        rows.append(
            {
                "t": float(t),
                "unweighted_mean": unweighted.mean().item(),
                "weighted_mean": weighted.mean().item(),
                "weighted_std": weighted.std().item(),
            }
        )
    return rows


def gaussian_corrupt(
    x: torch.Tensor, t: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Variance-preserving Gaussian noise as in DDPM with alpha_bar = 1 - t: every value is
    blurred a bit."""
    noise = torch.randn(x.shape, generator=generator)
    return (1 - t) ** 0.5 * x + t**0.5 * noise


def noise_comparison_figure(ts=(0.1, 0.5, 0.9), size: int = 16, seed: int = 0):
    """An image under Gaussian noise next to the same image under masking, at the same t.

    Gaussian noise touches every pixel a little; masking leaves each pixel exact or removes it.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    image = (((xx // 4) + (yy // 4)) % 2).float() * 2 - 1  # a checkerboard in [-1, 1]
    fig = make_subplots(
        rows=2,
        cols=len(ts),
        horizontal_spacing=0.03,
        vertical_spacing=0.12,
        subplot_titles=[f"Gaussian, t={t}" for t in ts] + [f"masked, t={t}" for t in ts],
    )
    for j, t in enumerate(ts):
        noisy = gaussian_corrupt(image, t, gen)
        keep = torch.rand(image.shape, generator=gen) >= t
        masked = torch.where(keep, image, torch.full_like(image, float("nan")))
        for i, z in enumerate((noisy, masked)):
            fig.add_trace(
                go.Heatmap(
                    z=z.tolist(),
                    colorscale="Greys",
                    zmin=-2,
                    zmax=2,
                    showscale=False,
                    hoverinfo="skip",
                ),
                row=i + 1,
                col=j + 1,
            )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    for k in range(
        1, 2 * len(ts) + 1
    ):  # every panel square: each y axis anchored to its own x axis
        fig.layout[f"yaxis{k if k > 1 else ''}"].scaleanchor = f"x{k if k > 1 else ''}"
    fig.update_layout(
        title="Continuous noise blurs every pixel; masking keeps or erases each one (blank = "
        "[MASK])",
        height=420,
        margin=dict(l=10, r=10, t=70, b=10),
    )
    return fig
