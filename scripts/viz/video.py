"""Episode videos: egocentric RGB | depth | semantic | top-down map side by side, with the instruction or cue."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from chronotope.scripts.viz.open3d_scene import episode_views, time_colors
from chronotope.scripts.viz.plots import topdown_map

PANEL_NAMES_BAND = 14
"""Height (px) of the band above the panels that names them (rgb, depth, semantic, map)."""


def _resize(img: np.ndarray, height: int, nearest: bool = False) -> np.ndarray:
    from PIL import Image

    h, w = img.shape[:2]
    width = max(1, round(w * height / h))
    resample = Image.NEAREST if nearest else Image.BILINEAR
    return np.asarray(Image.fromarray(img).resize((width, height), resample))


def episode_frames(ep, scene, panel: int = 160, max_frames: int | None = None, text: str | None = None) -> list:
    """One uint8 [H, W, 3] picture per pose: RGB | depth (with its colour bar in metres) | semantic | map, each
    panel named in a band above it, the caption band on top. Teleports (steps longer than
    :data:`~.trajectory.JUMP_DISTANCE`) are dashed grey on the map, not drawn as walks.

    Recorded frames are used when the file has them, otherwise the views are rendered again from the poses.

    Args:
        ep: an episode (see :mod:`.trajectory`); must have poses.
        scene: its ``SceneSpec``.
        panel: height of each panel in pixels.
        max_frames: keep at most this many frames, evenly spaced (None: all).
        text: caption (default: the episode's instruction or cue, else "episode K").
    """
    from PIL import Image, ImageDraw

    from chronotope.envs.render.colorize import colorize_depth, colorize_semantic, depth_colorbar, label_image
    from chronotope.envs.trajectory import check_episode
    from chronotope.scripts.viz.open3d_scene import dashes
    from chronotope.scripts.viz.trajectory import jump_steps

    check_episode(ep)
    n = len(ep.poses)
    idx = np.arange(n)
    if max_frames is not None and max_frames < n:
        idx = np.linspace(0, n - 1, max_frames).round().astype(int)
    views = episode_views(ep, scene, every=1)
    n_inst = max(int(views["semantic"].max()) + 1, 2) if "semantic" in views else 2
    base = topdown_map(scene, ep.poses[:1], ep.goal, px_per_m=40.0)
    mp = _resize(base.image, panel)
    scale = panel / base.image.shape[0]
    uv = base.world_to_pixel(ep.poses[:, :2]) * scale
    cols = (time_colors(max(n - 1, 1)) * 255).astype(np.uint8)
    jump = jump_steps(ep.poses)
    bar = depth_colorbar(panel, float(views["max_depth"])) if "depth" in views else None
    caption = text if text is not None else (ep.instruction or f"episode {ep.index}")
    band, names_band, gap = 22, PANEL_NAMES_BAND, 2
    frames = []
    for t in idx:
        panels = [("rgb", _resize(views["rgb"][t], panel, nearest=True))]
        if "depth" in views:
            depth = _resize(colorize_depth(views["depth"][t], float(views["max_depth"])), panel, nearest=True)
            panels.append(("depth", np.concatenate([depth, bar], 1)))
        if "semantic" in views:
            panels.append(("semantic", _resize(colorize_semantic(views["semantic"][t], n_inst), panel, nearest=True)))
        m = Image.fromarray(mp.copy())
        d = ImageDraw.Draw(m)
        for i in range(t):
            if jump[i]:  # a teleport: grey dashes, not a walk through walls
                for a, b in dashes(uv[i], uv[i + 1], dash=5.0, gap=4.0):
                    d.line([tuple(a), tuple(b)], fill=(90, 90, 90), width=1)
            else:
                d.line([tuple(uv[i]), tuple(uv[i + 1])], fill=tuple(int(c) for c in cols[i]), width=3)
        x, y, yaw = ep.poses[t]
        cx, cy = uv[t]
        r = 6
        tip = (cx + r * 1.6 * np.cos(yaw), cy - r * 1.6 * np.sin(yaw))  # image rows grow downwards
        left = (cx + r * np.cos(yaw + 2.4), cy - r * np.sin(yaw + 2.4))
        right = (cx + r * np.cos(yaw - 2.4), cy - r * np.sin(yaw - 2.4))
        d.polygon([tip, left, right], fill=(0, 0, 0))
        panels.append(("map", np.asarray(m)))
        named = [np.concatenate([label_image(name, img.shape[1], names_band), img], 0) for name, img in panels]
        row = np.concatenate([np.pad(p, ((0, 0), (0, gap), (0, 0)), constant_values=255) for p in named], 1)
        img = Image.fromarray(np.pad(row, ((band, 0), (0, 0), (0, 0)), constant_values=255))
        d = ImageDraw.Draw(img)
        steps = f"t={t}/{n - 1}"
        d.text((4, 5), f"{caption}   {steps}", fill=(0, 0, 0))
        frames.append(np.asarray(img))
    return frames


def write_video(frames: list[np.ndarray], path: str | Path, fps: float = 8.0) -> Path:
    """Writes a ``.gif`` (default) or ``.mp4`` (needs imageio's ffmpeg or pyav plugin)."""
    import imageio.v3 as iio

    if not frames:
        raise ValueError("no frames to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.stack(frames)
    if path.suffix.lower() == ".gif":
        iio.imwrite(path, arr, duration=1000.0 / fps, loop=0)
    elif path.suffix.lower() == ".mp4":
        try:
            iio.imwrite(path, arr, fps=fps, extension=".mp4")
        except Exception as e:  # imageio names the missing plugin in its own words
            raise ValueError(f"cannot write {str(path)!r}: {e}. Install imageio-ffmpeg or av, or write a .gif") from e
    else:
        raise ValueError(f"unknown video extension {path.suffix!r} in {str(path)!r}; use .gif or .mp4")
    return path


def frame_strip(frames: list[np.ndarray], k: int = 4) -> np.ndarray:
    """``k`` evenly spaced frames stacked vertically, uint8 [k * H, W, 3]."""
    if not frames:
        raise ValueError("no frames")
    idx = np.linspace(0, len(frames) - 1, min(k, len(frames))).round().astype(int)
    return np.concatenate([frames[i] for i in idx], 0)
