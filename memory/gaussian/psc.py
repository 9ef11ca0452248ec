"""Principal scene components (M3, Zou et al. 2025): a greedy cosine-threshold *subset* of raw feature rows.

Not PCA and not k-means: every component is one of the input rows, unchanged, and no two components have a
cosine similarity of ``theta`` or more.
"""

from __future__ import annotations

import torch


def _unit(rows: torch.Tensor) -> torch.Tensor:
    """Rows ``[N, D]`` scaled to unit length, detached, in float64."""
    return torch.nn.functional.normalize(rows.detach().double(), dim=-1)


def _greedy_keep(unit: torch.Tensor, used: torch.Tensor, theta: float, room: int | None = None) -> torch.Tensor:
    """The greedy scan of both forms: in order, row i of ``unit`` [N, D] is kept unless it or a row within
    ``theta`` of it is already ``used`` [N] (updated in place); a kept row marks every row within ``theta`` used.
    Stops after ``room`` kept rows (None: no limit). Returns the kept indices [M] (int64, increasing)."""
    kept: list[int] = []
    for i in range(unit.shape[0]):
        if room is not None and len(kept) >= room:
            break
        if used[i]:
            continue
        # Cosines clamped to [-1, 1] so that theta = -1 really includes every row despite rounding.
        s = (unit @ unit[i]).clamp(-1.0, 1.0) >= theta
        if (s & used).any():
            continue
        kept.append(i)
        used |= s
    return torch.tensor(kept, dtype=torch.long, device=unit.device)


def principal_scene_components(
    features: torch.Tensor, theta: float, return_indices: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Greedy PSC selection over the rows of ``features`` [N, D], in row order.

    For each row i not yet marked used: S = {j : cos(i, j) >= theta}; if no member of S is used, keep row i and
    mark all of S used. Kept rows are returned raw (unnormalised).

    Args:
        features: [N, D] raw feature rows (e.g. all pixels of all views' feature maps, stacked).
        theta: cosine threshold; > 1 keeps every row, -1 keeps only row 0.
        return_indices: also return the kept row indices [M] (int64, increasing).

    Returns:
        PSC [M, D] (and indices [M]).
    """
    if features.dim() != 2:
        raise ValueError(f"features must have shape [N, D], got {tuple(features.shape)}")
    if not torch.isfinite(features).all():
        raise ValueError("features contain NaN or inf")
    if not (-1.0 <= theta) or theta != theta:
        raise ValueError(f"theta must be >= -1, got {theta!r}")
    unit = _unit(features)
    idx = _greedy_keep(unit, torch.zeros(features.shape[0], dtype=torch.bool, device=features.device), theta)
    out = features[idx]
    return (out, idx) if return_indices else out


def psc_update(
    bank: torch.Tensor, features: torch.Tensor, theta: float, capacity: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Online PSC: extends ``bank`` [M, D] with new raw rows ``features`` [N, D].

    The bank's rows count as already kept, so new rows within ``theta`` of a bank row start out used; the greedy
    scan then runs over the new rows exactly as :func:`principal_scene_components`. With an empty bank this is the
    batch algorithm. Invariants kept: every bank row is a raw input row; all pairwise cosines < theta. When
    ``capacity`` is reached later rows are dropped (the bank never forgets: queries already point at its rows).

    Returns:
        (new bank [M', D], indices [K] of the rows of ``features`` that were added).
    """
    if features.dim() != 2 or (bank.numel() and bank.shape[1] != features.shape[1]):
        raise ValueError(f"features {tuple(features.shape)} do not match the bank {tuple(bank.shape)}")
    if not torch.isfinite(features).all():
        raise ValueError("features contain NaN or inf")
    n = features.shape[0]
    unit = _unit(features)
    used = torch.zeros(n, dtype=torch.bool, device=features.device)
    if bank.shape[0] > 0:
        used = ((unit @ _unit(bank).T).clamp(-1.0, 1.0) >= theta).any(-1)
    room = n if capacity is None else max(0, capacity - bank.shape[0])
    idx = _greedy_keep(unit, used, theta, room)
    new_bank = torch.cat([bank.to(features), features[idx]], dim=0) if bank.numel() else features[idx]
    return new_bank, idx
