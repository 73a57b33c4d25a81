"""Stage 2 prototype contrastive loss (multi-positive InfoNCE) at temperature τ.

For image i and each *present* concept k, with unit local vector v_ik (D,) and unit
prototypes p_jm (K, M, D):

    s_jm = v_ik · p_jm / τ
    L_ik = -log( Σ_m exp(s_km) / Σ_{j,m} exp(s_jm) )
    L    = mean over present (i, k); 0 when nothing is present

It pulls v_ik toward its own concept's prototypes and away from all others, and the
prototypes toward their concept's vectors. Lower is better. Small τ sharpens the
softmax: gradients concentrate on the hardest negatives and the prototypes of a
concept can collapse onto one point (seed 001's worry, τ = 0.1).

Shapes: ``vectors`` (B, K, D) and ``prototypes`` (K, M, D), both L2-normalised;
``concepts`` (B, K) in {0, 1}.
"""

from __future__ import annotations

import torch


def prototype_contrastive_loss(vectors: torch.Tensor, prototypes: torch.Tensor, concepts: torch.Tensor,
                               temperature: float) -> torch.Tensor:
    """Scalar loss (see module docstring)."""
    k, m, _ = prototypes.shape
    logits = torch.einsum("bkd,jmd->bkjm", vectors, prototypes).flatten(2) / temperature  # (B, K, K*M)
    own = torch.eye(k, device=vectors.device, dtype=torch.bool).repeat_interleave(m, dim=1)  # (K, K*M)
    log_all = torch.logsumexp(logits, dim=-1)
    log_own = torch.logsumexp(logits.masked_fill(~own, float("-inf")), dim=-1)
    present = concepts > 0.5
    if not present.any():
        return logits.sum() * 0.0
    return (log_all - log_own)[present].mean()


def prototype_diversity(prototypes: torch.Tensor) -> float:
    """Mean pairwise cosine similarity of all K·M prototypes (unit vectors); lower = more diverse."""
    flat = prototypes.reshape(-1, prototypes.shape[-1])
    sim = flat @ flat.T
    n = flat.shape[0]
    return float((sim.sum() - sim.diagonal().sum()) / (n * (n - 1)))
