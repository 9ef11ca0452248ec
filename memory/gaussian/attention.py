"""Gaussian memory attention and the M3 feature loss.

A rendered low-dimensional query map ``Q_hat`` [.., c] is lifted by a fixed random projection ``P`` [c, D] to
``E = Q_hat P``; attention over the principal scene components ``PSC`` [M, D] uses cosine similarity over a
temperature (no 1/sqrt(d)): ``A = softmax(cos(E, PSC) / T)``; the decoded feature ``R_hat = A PSC`` is a convex
combination of bank rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GaussianMemoryAttention(nn.Module):
    """Decodes c-dimensional queries into D-dimensional features through a PSC bank.

    Args:
        query_dim: c, the per-Gaussian query size.
        feature_dim: D, the feature size of the bank.
        temperature: T of the cosine softmax (paper: 0.05).
        seed: seed of the fixed random projection P (a buffer, not trained, as in the reference code).
        device: torch device.
    """

    def __init__(
        self,
        query_dim: int,
        feature_dim: int,
        temperature: float = 0.05,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        if query_dim <= 0 or feature_dim <= 0:
            raise ValueError(f"query_dim and feature_dim must be positive, got {query_dim}, {feature_dim}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.query_dim, self.feature_dim, self.temperature = query_dim, feature_dim, float(temperature)
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("proj", torch.randn(query_dim, feature_dim, generator=g).to(device))

    def weights(self, queries: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
        """Attention weights [..., M] of queries [..., c] over bank [M, D]; rows are >= 0 and sum to 1."""
        if queries.shape[-1] != self.query_dim:
            raise ValueError(f"queries have size {queries.shape[-1]}, expected query_dim={self.query_dim}")
        if bank.dim() != 2 or bank.shape[0] == 0 or bank.shape[1] != self.feature_dim:
            raise ValueError(f"bank must be [M >= 1, D={self.feature_dim}], got {tuple(bank.shape)}")
        e = queries @ self.proj.to(queries)  # [..., D]
        cos = F.normalize(e, dim=-1) @ F.normalize(bank.to(queries), dim=-1).T  # [..., M]
        return torch.softmax(cos / self.temperature, dim=-1)

    def forward(self, queries: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
        """Decoded features [..., D] = weights(queries, bank) @ bank."""
        return self.weights(queries, bank) @ bank.to(queries)


def feature_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """M3 feature loss on sampled points: ``mean(1 - cos) + masked L2`` over points whose target is not all zero.

    The L2 term is the mean squared error per element (averaged over D as well as points) so that its scale
    does not grow with the feature size.

    Args:
        pred: [P, D] decoded features.
        target: [P, D] encoder features at the same points; all-zero rows (no feature) are masked out.

    Returns:
        Scalar loss; 0 when pred equals target on every unmasked point (and when every point is masked).
    """
    if pred.shape != target.shape or pred.dim() != 2:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must both be [P, D]")
    mask = target.abs().sum(-1) > 0
    if not mask.any():
        return pred.sum() * 0.0
    p, t = pred[mask], target[mask]
    cos = F.cosine_similarity(p, t, dim=-1, eps=1e-8)
    return (1.0 - cos).mean() + ((p - t) ** 2).mean()


def sample_maps(maps: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of a map [C, h, w] at normalised points uv [P, 2] in [0, 1]^2 (x right, y down) -> [P, C].

    Both a full-resolution rendered map and a low-resolution encoder map are sampled at the same image points
    (``align_corners=False``: uv = 0 and 1 are the image edges, whatever the map's resolution).
    """
    grid = (uv * 2.0 - 1.0).to(maps)[None, None]  # [1, 1, P, 2]
    return F.grid_sample(maps[None], grid, mode="bilinear", align_corners=False)[0, :, 0].T
