"""Turning depth and instance-id images into pictures people can read."""

from __future__ import annotations

import numpy as np


def colorize_depth(depth: np.ndarray, max_depth: float) -> np.ndarray:
    """uint8 [..., H, W, 3] from depth [..., H, W] (or [..., H, W, 1]): near bright, far dark (matplotlib turbo)."""
    import matplotlib

    d = np.asarray(depth, np.float32)
    if d.ndim >= 3 and d.shape[-1] == 1:
        d = d[..., 0]
    x = 1.0 - np.clip(d / max_depth, 0.0, 1.0)
    rgba = matplotlib.colormaps["turbo"](x)
    return (rgba[..., :3] * 255).astype(np.uint8)


def instance_palette(n: int, seed: int = 7) -> np.ndarray:
    """A fixed palette uint8 [n, 3]: id 0 black, others distinct saturated colours."""
    rng = np.random.default_rng(seed)
    hue = (np.arange(n) * 0.618033988749895 + rng.uniform()) % 1.0
    import matplotlib.colors as mcolors

    hsv = np.stack([hue, np.full(n, 0.75), np.full(n, 0.95)], -1)
    pal = (mcolors.hsv_to_rgb(hsv) * 255).astype(np.uint8)
    pal[0] = 0
    return pal


def colorize_semantic(ids: np.ndarray, n: int | None = None) -> np.ndarray:
    """uint8 [..., H, W, 3] from instance ids [..., H, W] (or [..., H, W, 1])."""
    s = np.asarray(ids)
    if s.ndim >= 3 and s.shape[-1] == 1:
        s = s[..., 0]
    n = int(s.max()) + 1 if n is None else n
    return instance_palette(max(n, 1))[s]


def grid_image(rows: list[list[np.ndarray]], pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tiles equally sized uint8 [H, W, 3] images into one picture with ``pad`` pixels between them."""
    h, w = rows[0][0].shape[:2]
    ncol = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + pad) - pad, ncol * (w + pad) - pad, 3), fill, np.uint8)
    for i, r in enumerate(rows):
        for j, img in enumerate(r):
            out[i * (h + pad) : i * (h + pad) + h, j * (w + pad) : j * (w + pad) + w] = img
    return out
