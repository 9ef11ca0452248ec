"""Matplotlib figures: top-down episode maps, learning curves with CI bands, metric bar charts."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chronotope.scripts.viz.open3d_scene import GOAL_COLOR, PATH_CMAP, START_COLOR


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


@dataclass
class TopDownMap:
    """A rendered top-down map and its world -> pixel mapping.

    Attributes:
        image: uint8 [H, W, 3].
        lo: (x, y) world coordinates of the image's lower-left corner.
        px_per_m: pixels per metre (both axes).
    """

    image: np.ndarray
    lo: np.ndarray
    px_per_m: float

    def world_to_pixel(self, xy: np.ndarray) -> np.ndarray:
        """(column, row) float64 [N, 2] (pixel centres at integers) of world points [N, 2]."""
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        h = self.image.shape[0]
        col = (xy[:, 0] - self.lo[0]) * self.px_per_m - 0.5
        row = h - (xy[:, 1] - self.lo[1]) * self.px_per_m - 0.5
        return np.column_stack([col, row])


def draw_floor_plan(ax, scene, navgrid: bool = True) -> None:
    """Navigable area (white) / blocked (light grey), walls (dark grey) and object footprints in their colours."""
    from matplotlib.patches import Polygon, Rectangle

    if navgrid:
        g = scene.navgrid()
        h, w = g.shape
        img = np.where(g.navigable[..., None], 1.0, 0.86) * np.ones(3)
        ax.imshow(
            img,
            origin="lower",
            extent=(g.origin[0], g.origin[0] + w * g.cell_size, g.origin[1], g.origin[1] + h * g.cell_size),
            interpolation="nearest",
            zorder=0,
        )
    for o in scene.objects:
        ax.add_patch(Polygon(o.footprint(), closed=True, fc=np.asarray(o.rgb) / 255, ec="k", lw=0.4, zorder=2))
    for blo, bhi in scene.wall_boxes():
        if blo[2] > 0:  # lintels above doors are not obstacles on the floor
            continue
        ax.add_patch(Rectangle(blo[:2], *(bhi[:2] - blo[:2]), fc="0.25", ec="none", zorder=3))


def draw_path(
    ax,
    poses: np.ndarray,
    goal=None,
    collided=None,
    cmap: str = PATH_CMAP,
    lw: float = 3.0,
    max_step: float | None = None,
) -> None:
    """Path coloured by time (segment i -> ``cmap(i / (T - 2))``), start dot, goal star, collisions as black x.

    A step longer than ``max_step`` (default :data:`~.trajectory.JUMP_DISTANCE`) is a teleport: it is drawn as a
    thin dashed grey line (legend "teleport"), not as a walked segment.
    """
    from matplotlib.collections import LineCollection

    from chronotope.scripts.viz.trajectory import JUMP_DISTANCE, jump_steps

    poses = np.asarray(poses, np.float64)
    if len(poses) >= 2:
        segs = np.stack([poses[:-1, :2], poses[1:, :2]], 1)
        t = np.linspace(0, 1, len(segs)) if len(segs) > 1 else np.zeros(1)
        jump = jump_steps(poses, JUMP_DISTANCE if max_step is None else max_step)
        import matplotlib

        colors = matplotlib.colormaps[cmap](t)
        lc = LineCollection(segs[~jump], colors=colors[~jump], linewidths=lw, capstyle="round", zorder=5)
        ax.add_collection(lc)
        if jump.any():
            jc = LineCollection(segs[jump], colors="0.35", linewidths=1.2, linestyles=(0, (3, 3)), zorder=5)
            jc.set_label("teleport")
            ax.add_collection(jc)
    ax.plot(*poses[0, :2], "o", ms=9, mfc=START_COLOR, mec="k", zorder=6, label="start")
    if goal is not None:
        ax.plot(*np.asarray(goal)[:2], "*", ms=16, mfc=GOAL_COLOR, mec="k", zorder=6, label="goal")
    if collided is not None and np.any(collided):
        c = np.asarray(collided, bool)
        pts = poses[1:][c[: len(poses) - 1]]
        ax.plot(pts[:, 0], pts[:, 1], "x", ms=7, mew=2, color="k", zorder=7, label="collision")


def topdown_map(
    scene,
    poses: np.ndarray,
    goal: np.ndarray | None = None,
    collided: np.ndarray | None = None,
    px_per_m: float = 40.0,
    navgrid: bool = True,
    title: str | None = None,
    path: str | Path | None = None,
) -> TopDownMap:
    """Draws the floor plan with the path into an image whose pixels map linearly to world (x, y).

    Args:
        scene: ``SceneSpec`` (None: path only, framed around it).
        poses: float [T, 3] (x, y, yaw).
        goal: [2] or None.
        collided: bool [T - 1] per step, or None.
        px_per_m: resolution.
        title: text drawn in the top-left corner.
        path: PNG written when given.
    """
    poses = np.asarray(poses, np.float64).reshape(-1, 3)
    if len(poses) == 0:
        raise ValueError("empty trajectory (0 poses): nothing to draw on the map")
    plt = _plt()
    if scene is not None:
        lo, hi = scene.bounds
        lo, hi = np.minimum(lo, poses[:, :2].min(0)) - 0.3, np.maximum(hi, poses[:, :2].max(0)) + 0.3
    else:
        lo, hi = poses[:, :2].min(0) - 1.0, poses[:, :2].max(0) + 1.0
    w_px = int(math.ceil((hi[0] - lo[0]) * px_per_m))
    h_px = int(math.ceil((hi[1] - lo[1]) * px_per_m))
    hi = lo + np.array([w_px, h_px]) / px_per_m  # whole pixels: the mapping stays exact
    dpi = 100
    fig = plt.figure(figsize=(w_px / dpi, h_px / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_axis_off()
    if scene is not None:
        draw_floor_plan(ax, scene, navgrid)
    draw_path(ax, poses, goal, collided)
    if title:
        ax.text(
            0.01,
            0.99,
            title,
            transform=ax.transAxes,
            va="top",
            ha="left",
            fontsize=9,
            zorder=8,
            bbox={"fc": "white", "ec": "none", "alpha": 0.8},
        )
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    out = TopDownMap(img, lo, px_per_m)
    if path is not None:
        import imageio.v3 as iio

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(Path(path), img)
    return out


# ------------------------------------------------------------------------------------------- learning curves
def read_progress(run: str | Path) -> list[dict]:
    """The records of ``<run>/progress.jsonl`` (one per update)."""
    p = Path(run) / "progress.jsonl" if Path(run).is_dir() else Path(run)
    if not p.is_file():
        raise ValueError(f"no training log at {str(p)!r} (expected <run>/progress.jsonl)")
    rows = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"training log {str(p)!r} is empty")
    return rows


def group_runs(runs: list[str | Path]) -> dict[str, list[Path]]:
    """Groups run folders by name without a trailing seed (``name-s0``, ``name-s1`` -> ``name``)."""
    out: dict[str, list[Path]] = {}
    for r in runs:
        label = re.sub(r"[-_]s(eed)?\d+$", "", Path(r).name)
        out.setdefault(label, []).append(Path(r))
    return out


def mean_ci(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [N] and 95% CI half-width [N] (Student t, :func:`chronotope.agents.stats.ci95_halfwidth`) across seeds
    of curves [S, N]; NaN half-width for S = 1."""
    from chronotope.agents.stats import ci95_halfwidth

    s = curves.shape[0]
    mean = np.nanmean(curves, 0)
    if s < 2:
        return mean, np.full_like(mean, np.nan)
    return mean, ci95_halfwidth(np.nanstd(curves, 0, ddof=1), s)


def learning_curves(
    runs: list[str | Path] | dict[str, list[str | Path]],
    metric: str = "return",
    path: str | Path | None = None,
    points: int = 100,
    title: str | None = None,
):
    """One line per group of runs (mean over seeds) with a 95% CI band, against environment steps.

    Args:
        runs: run folders (grouped by name minus ``-s<seed>``) or ``{label: [run, ...]}``.
        metric: key of the progress records.
        points: step grid size; each seed is interpolated on the steps all seeds of a group reached.
    Returns:
        the matplotlib figure (written to ``path`` when given).
    """
    plt = _plt()
    if isinstance(runs, dict):
        groups = {k: [Path(x) for x in v] for k, v in runs.items()}
    else:
        groups = group_runs(list(runs))
    if not groups:
        raise ValueError("no runs given")
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for label, members in groups.items():
        series = []
        for r in members:
            rows = [x for x in read_progress(r) if metric in x and "step" in x]
            if not rows:
                raise ValueError(f"run {str(r)!r} logs no {metric!r}; keys: {sorted(read_progress(r)[0])}")
            series.append((np.array([x["step"] for x in rows], float), np.array([x[metric] for x in rows], float)))
        lo = max(s[0].min() for s in series)
        hi = min(s[0].max() for s in series)
        grid = np.linspace(lo, hi, points) if hi > lo else np.array([lo])
        curves = np.stack([np.interp(grid, s, v) for s, v in series])
        mean, ci = mean_ci(curves)
        (line,) = ax.plot(grid, mean, label=f"{label} (n={len(members)})")
        if len(members) > 1:
            ax.fill_between(grid, mean - ci, mean + ci, color=line.get_color(), alpha=0.25, lw=0)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric}: mean ± 95% CI over seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    return fig


DEFAULT_BAR_METRICS = ("success", "spl", "soft_spl")
"""Measures ``metrics_bar`` draws by default, where the summaries have them."""


def metrics_bar(
    summaries: dict[str, str | Path],
    metrics: tuple[str, ...] | None = None,
    path: str | Path | None = None,
):
    """Grouped bars (mean ± 95% CI) of ``metrics`` from ``chronotope eval``'s ``summary.json`` files.

    Args:
        summaries: ``{label: summary.json or run folder}``.
        metrics: measures to draw; None: those of ``DEFAULT_BAR_METRICS`` that any summary has (tasks report
            different measures: ObjectRecall has no ``soft_spl``). A measure one summary lacks is left as a gap
            marked "n/a"; one that no summary has is an error.
    """
    plt = _plt()
    data = {}
    for label, p in summaries.items():
        p = Path(p)
        if p.is_dir():
            p = p / "eval" / "summary.json" if (p / "eval" / "summary.json").is_file() else p / "summary.json"
        if not p.is_file():
            raise ValueError(f"no eval summary at {str(p)!r} (run `chronotope eval` first)")
        data[label] = json.loads(p.read_text())
    if metrics is None:
        metrics = tuple(m for m in DEFAULT_BAR_METRICS if any(m in d for d in data.values()))
        if not metrics:
            raise ValueError(f"summary lacks every default metric {list(DEFAULT_BAR_METRICS)}")
    absent = [m for m in metrics if not any(m in d for d in data.values())]
    if absent:
        raise ValueError(f"summary lacks metric(s) {absent} (in every summary given)")
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(metrics) * max(1, len(data)) / 2, 3.6), dpi=110)
    width = 0.8 / len(data)
    x = np.arange(len(metrics))
    for k, (label, d) in enumerate(data.items()):
        mean = np.array([d[m]["mean"] if m in d else np.nan for m in metrics], dtype=float)
        ci = np.array([d[m].get("ci95", 0.0) if m in d else 0.0 for m in metrics], dtype=float)
        ci[~np.isfinite(ci)] = 0.0
        pos = x + (k - (len(data) - 1) / 2) * width
        ax.bar(pos, np.nan_to_num(mean), width, yerr=ci, capsize=3, label=label)
        for xi in pos[np.isnan(mean)]:
            ax.text(xi, 0.0, "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
    ax.set_xticks(x, metrics)
    ax.set_ylabel("mean ± 95% CI")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    return fig
