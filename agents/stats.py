"""The one place a 95% confidence interval is computed (evaluation summaries, experiments, plots, benchmarks).

* :func:`ci95_halfwidth`: Student-t half-width ``t(0.975, n - 1) * std / sqrt(n)`` of a mean over ``n`` values
  with sample std ``std`` (ddof = 1); scalars or arrays; nan for ``n < 2``.
* :func:`summarize`: ``{mean, std, ci95, n}`` of a list of values, the layout of ``summary.json`` and of every
  experiment's per-seed aggregate.
* :func:`wilson_interval`: the 95% Wilson score interval of a success rate ``k / n`` (a proportion, not a mean).

Imports only numpy (scipy on first use), so the library and ``scripts/`` can both use it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

CONFIDENCE = 0.95
"""Two-sided confidence level of every interval here."""
Z95 = 1.96
"""Normal quantile of the Wilson interval (the rounded 0.975 quantile, as the arm-oracle tables have used)."""


def t_critical(n: int) -> float:
    """``t(0.975, n - 1)``, the two-sided 95% Student-t quantile for a mean of ``n`` values; nan for ``n < 2``."""
    if n < 2:
        return float("nan")
    from scipy import stats

    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1))


def ci95_halfwidth(std: float | np.ndarray, n: int) -> float | np.ndarray:
    """95% CI half-width of a mean of ``n`` values whose sample std (ddof = 1) is ``std`` (a scalar or an array of
    them, e.g. one per curve point); nan (of ``std``'s shape) for ``n < 2``."""
    if n < 2:
        return np.full_like(std, np.nan, dtype=float) if isinstance(std, np.ndarray) else float("nan")
    return t_critical(n) * std / math.sqrt(n)


def summarize(values: Sequence[float], finite_only: bool = False) -> dict[str, float]:
    """mean, sample std, 95% CI half-width (Student t, n - 1 dof) and n of ``values``.

    ``n = 0``: everything nan; ``n = 1``: std 0 and ci95 nan. With ``finite_only`` nan / inf values are dropped
    first (seeds where a measure was undefined); without it they propagate into the mean and std.
    """
    x = np.asarray(values, float)
    if finite_only:
        x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return {"mean": float("nan"), "std": float("nan"), "ci95": float("nan"), "n": 0}
    std = float(x.std(ddof=1)) if n > 1 else 0.0
    return {"mean": float(x.mean()), "std": std, "ci95": ci95_halfwidth(std, n), "n": n}


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval ``(lo, hi)`` of a success rate of ``k`` successes in ``n`` trials."""
    if n < 1:
        raise ValueError(f"wilson_interval: n must be >= 1, got {n}")
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return centre - half, centre + half
