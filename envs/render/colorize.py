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


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1: a scalable font
    except TypeError:  # pragma: no cover - older Pillow: the fixed bitmap font
        return ImageFont.load_default()


def text_width(text: str, size: int = 11) -> int:
    """Width in pixels of ``text`` drawn by :func:`label_image` / :func:`depth_colorbar` at font ``size``."""
    from PIL import Image, ImageDraw

    box = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=_font(size))
    return int(box[2] - box[0])


def label_image(text: str, width: int, height: int, size: int = 11, fill: int = 255) -> np.ndarray:
    """uint8 [height, width, 3]: ``text`` in black, left-aligned and vertically centred, on ``fill``."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (int(width), int(height)), (fill,) * 3)
    ImageDraw.Draw(img).text((3, height / 2), text, fill=(0, 0, 0), font=_font(size), anchor="lm")
    return np.asarray(img)


def depth_colorbar(height: int, max_depth: float, width: int | None = None, size: int = 10) -> np.ndarray:
    """uint8 [height, width, 3]: the colour scale of :func:`colorize_depth` from 0 m (top) to ``max_depth``
    (bottom), with ticks labelled in metres (the last one "<max> m")."""
    from PIL import Image, ImageDraw

    if height < 8:
        raise ValueError(f"colour bar height {height} px is too small (need >= 8)")
    top = f"{max_depth:g} m"
    bar_w = 10
    width = int(width or bar_w + 6 + text_width(top, size) + 3)
    margin = size // 2 + 1  # room for the first and last tick's text
    n = max(height - 2 * margin, 2)
    depth = np.linspace(0.0, max_depth, n)[:, None] * np.ones((1, bar_w))
    img = Image.new("RGB", (width, height), (255, 255, 255))
    img.paste(Image.fromarray(colorize_depth(depth, max_depth)), (0, margin))
    d = ImageDraw.Draw(img)
    ticks = [0.0, max_depth / 2, max_depth] if n >= 3 * size else [0.0, max_depth]
    for v in ticks:
        y = margin + round(v / max_depth * (n - 1))
        # The tick inside the bar (beside the text it reads as a minus).
        d.line([(bar_w - 4, y), (bar_w - 1, y)], fill=(255, 255, 255))
        label = top if v == max_depth else f"{v:g}"
        d.text((bar_w + 5, y), label, fill=(0, 0, 0), font=_font(size), anchor="lm")
    return np.asarray(img)


def grid_image(
    rows: list[list[np.ndarray]],
    pad: int = 2,
    fill: int = 255,
    row_labels: list[str] | tuple[str, ...] | None = None,
    depth_row: int | None = None,
    max_depth: float | None = None,
) -> np.ndarray:
    """Tiles equally sized uint8 [H, W, 3] images into one picture with ``pad`` pixels between them.

    Args:
        row_labels: one name per row, written in a column on the left (e.g. ``("rgb", "depth", "semantic")``).
        depth_row: index of the row coloured by :func:`colorize_depth`; with ``max_depth`` a colour bar in metres
            is drawn at that row's right end.
    """
    h, w = rows[0][0].shape[:2]
    ncol = max(len(r) for r in rows)
    if row_labels is not None and len(row_labels) != len(rows):
        raise ValueError(f"{len(row_labels)} row labels for {len(rows)} rows")
    if (depth_row is None) != (max_depth is None):
        raise ValueError("depth_row and max_depth go together (the colour bar needs both)")
    if depth_row is not None and not 0 <= depth_row < len(rows):
        raise ValueError(f"depth_row {depth_row} out of range for {len(rows)} rows")
    left = max(text_width(str(s)) for s in row_labels) + 8 if row_labels else 0
    bar = depth_colorbar(h, float(max_depth)) if depth_row is not None else None
    right = bar.shape[1] + pad if bar is not None else 0
    out = np.full((len(rows) * (h + pad) - pad, left + ncol * (w + pad) - pad + right, 3), fill, np.uint8)
    for i, r in enumerate(rows):
        y = i * (h + pad)
        if row_labels:
            out[y : y + h, :left] = label_image(str(row_labels[i]), left, h, fill=fill)
        for j, img in enumerate(r):
            out[y : y + h, left + j * (w + pad) : left + j * (w + pad) + w] = img
        if bar is not None and i == depth_row:
            x = left + len(r) * (w + pad)
            out[y : y + h, x : x + bar.shape[1]] = bar
    return out
