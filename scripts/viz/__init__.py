"""Visualisation: Open3D episode scenes (window or headless PNG), top-down maps, learning curves, metric bars and
episode videos. ``viz(VizConfig)`` is the ``chronotope viz`` command; the modules are usable on their own:

- :mod:`.trajectory`: teleports on a path, and rebuilding an episode's scene (the trajectory file itself, its
  format, writing and reading, is :mod:`chronotope.envs.trajectory`).
- :mod:`.open3d_scene`: layers (scene, path, poses, goal, octree, graph, splats), camera presets, rendering.
- :mod:`.plots`: top-down 2D map, learning curves with CI bands, metric bar chart.
- :mod:`.video`: RGB | depth | semantic | map episode videos.
- :mod:`.robot_strip`: strips of key frames of one perfect-oracle episode per arm memory task
  (``python -m chronotope.scripts.viz.robot_strip``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro


@dataclass
class VizConfig:
    """Options of ``chronotope viz``."""

    target: tyro.conf.Positional[Path]
    """Trajectory npz or run folder (``<run>/eval/trajectories.npz``); a run folder for curves / metrics."""
    what: Literal["scene", "map", "video", "curves", "metrics"] = "scene"
    """scene: Open3D 3D view; map: top-down 2D map; video: RGB|depth|semantic|map gif; curves: learning curves;
    metrics: bar chart of eval summaries."""
    episode: int = 0
    """Episode index in the trajectory file."""
    save: Path | None = None
    """Output file (PNG, or .gif/.mp4 for video). Without it: a window when a display exists, else a file under
    <target folder>/viz/."""
    layers: str = "scene,path,poses,goal"
    """Comma-separated 3D layers: scene, path, poses, goal, octree, graph, splats."""
    camera: Literal["top", "three-quarter"] = "three-quarter"
    """Camera preset of the 3D view."""
    coloring: Literal["rgb", "semantic"] = "rgb"
    """Scene mesh colouring."""
    cut_height: float | None = 1.0
    """Scene geometry above this height (m) is cut away so walls do not hide the path; None: full height."""
    width: int = 960
    """Image width (px) of the 3D view."""
    height: int = 720
    """Image height (px) of the 3D view."""
    runs: tuple[Path, ...] = ()
    """More run folders for curves / metrics (seeds named <name>-s<k> are grouped into one line with a CI band)."""
    metric: str = "return"
    """Progress key plotted by ``--what curves``."""
    fps: float = 8.0
    """Frames per second of videos."""


def _default_out(cfg: VizConfig, suffix: str) -> Path:
    base = cfg.target if cfg.target.is_dir() else cfg.target.parent
    return base / "viz" / f"{cfg.what}_ep{cfg.episode}{suffix}"


def _wrote(out: Path) -> None:
    print(f"wrote {Path(out).resolve()}")


def viz(cfg: VizConfig) -> Path | None:
    """Draws what ``cfg.what`` asks for, says where it wrote (once); returns the file written (None after an
    interactive window)."""
    from chronotope.envs.trajectory import load_episode
    from chronotope.scripts.viz import open3d_scene as o3s
    from chronotope.scripts.viz.trajectory import scene_for_episode

    if cfg.what == "curves":
        from chronotope.scripts.viz.plots import learning_curves

        out = cfg.save or _default_out(cfg, ".png")
        learning_curves([cfg.target, *cfg.runs], metric=cfg.metric, path=out)
        _wrote(out)
        return out
    if cfg.what == "metrics":
        from chronotope.scripts.viz.plots import metrics_bar

        out = cfg.save or _default_out(cfg, ".png")
        metrics_bar({p.name: p for p in (cfg.target, *cfg.runs)}, path=out)
        _wrote(out)
        return out

    ep = load_episode(cfg.target, cfg.episode)
    scene = scene_for_episode(ep)
    if cfg.what == "map":
        from chronotope.scripts.viz.plots import topdown_map

        out = cfg.save or _default_out(cfg, ".png")
        topdown_map(scene, ep.poses, ep.goal, ep.collided, title=f"episode {ep.index}", path=out)
        _wrote(out)
        return out
    if cfg.what == "video":
        from chronotope.scripts.viz.video import episode_frames, write_video

        out = cfg.save or _default_out(cfg, ".gif")
        write_video(episode_frames(ep, scene), out, cfg.fps)
        _wrote(out)
        return out

    layers = tuple(x.strip() for x in cfg.layers.split(",") if x.strip())
    geoms = o3s.episode_layers(ep, scene, layers, coloring=cfg.coloring, cut_height=cfg.cut_height)
    flat = [g for gs in geoms.values() for g in gs]
    camera = o3s.camera_preset(cfg.camera, *o3s.view_bounds(scene, ep), width=cfg.width, height=cfg.height)
    if cfg.save is None and o3s.has_display():
        o3s.show(flat, camera, title=f"chronotope: {cfg.target} episode {cfg.episode}")
        return None
    out = cfg.save or _default_out(cfg, f"_{cfg.camera}.png")
    o3s.render_png(flat, camera, out)
    _wrote(out)
    return out
