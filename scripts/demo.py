"""``chronotope demo``: the project's main job (for now: a first-person RGB / depth / semantic strip)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class DemoConfig:
    """Options of ``chronotope demo``."""

    out: Path = Path("runs/demo")
    """Output folder."""
    scene_seed: int = 3
    """Seed of the generated apartment."""
    views: int = 4
    """Number of first-person views in the strip."""
    resolution: int = 160
    """Image side in pixels."""
    backend: str = "open3d"
    """Renderer backend."""


def render_strip(cfg: DemoConfig) -> Path:
    """Renders ``views`` first-person views (RGB / depth / semantic rows) of a generated apartment to a PNG."""
    from PIL import Image

    from chronotope.envs.render.base import make_renderer
    from chronotope.envs.render.camera import CameraIntrinsics, camera_poses
    from chronotope.envs.render.colorize import colorize_depth, colorize_semantic, grid_image
    from chronotope.envs.scene.generator import generate_apartment

    spec = generate_apartment(cfg.scene_seed)
    grid = spec.navgrid()
    rng = np.random.default_rng(cfg.scene_seed)
    main = grid.largest_component()
    # Views from well-clear spots, looking towards the farthest free space, so furniture and doors show.
    clear = main & (grid.clearance > 0.6)
    xy = grid.sample_navigable(rng, cfg.views, clear if clear.any() else main)
    yaw = np.array([_open_heading(grid, p) for p in xy])
    poses = camera_poses(np.concatenate([xy, np.full((cfg.views, 1), 1.25)], 1), yaw)
    intr = CameraIntrinsics(cfg.resolution, cfg.resolution, 90.0)
    renderer = make_renderer(cfg.backend, [spec.to_mesh()], intr, max_depth=10.0)
    out = renderer.render(poses, np.zeros(cfg.views, np.int64))
    rgb, depth, sem = out.rgb.numpy(), out.depth.numpy(), out.semantic.numpy()
    n_ids = max(spec.instance_categories()) + 1
    rows = [list(rgb), list(colorize_depth(depth, 10.0)), list(colorize_semantic(sem, n_ids))]
    cfg.out.mkdir(parents=True, exist_ok=True)
    path = cfg.out / "strip.png"
    Image.fromarray(grid_image(rows)).save(path)
    return path


def _open_heading(grid, p: np.ndarray) -> float:
    """Heading (rad) from ``p`` with the longest free straight line of sight on the nav grid."""
    best, best_len = 0.0, -1.0
    for a in np.linspace(-np.pi, np.pi, 24, endpoint=False):
        d = np.array([np.cos(a), np.sin(a)])
        steps = np.arange(1, 200) * grid.cell_size
        free = grid.is_navigable(p[None] + steps[:, None] * d[None])
        length = steps[np.argmin(free)] if not free.all() else steps[-1]
        if length > best_len:
            best, best_len = float(a), float(length)
    return best


def main(cfg: DemoConfig) -> None:
    path = render_strip(cfg)
    print(f"first-person strip (rows: RGB, depth, instance ids): {path.resolve()}")
