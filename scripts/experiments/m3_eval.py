"""M3 Gaussian scene memory vs storing raw features, on generated apartments walked by the expert (issues 9, 13).

For each apartment seed the shortest-path expert walks a few PointNav episodes (rgbd 64x64 with poses); every
``keyframe_every``-th frame is added online to a :class:`GaussianSceneMemory` (EfficientNet-Lite0 features by
default), which is then consolidated; a raw-feature baseline stores every back-projected per-pixel feature.
:mod:`chronotope.scripts.experiments.gaussian_eval` measures held-out PSNR and feature cosine, bytes, and the
"where did I see it" localisation of Gaussian memory vs the raw-feature baseline vs chance; this script repeats
that over seeds and reports mean +- 95% CI (Student t over seeds).

    python -m chronotope.scripts.experiments.m3_eval --quick   # 1 apartment, 2 episodes: a few minutes
    python -m chronotope.scripts.experiments.m3_eval           # 3 apartments: ~15 min on 1 CPU thread

Writes ``<out_dir>/m3_eval.json`` (config, per-seed metrics, aggregates), ``m3_eval.md`` and a per-seed plot
(``docs/images/m3_seeds.png``) and held-out views of the first apartment, ground truth above the memory's
render (``docs/images/m3_heldout_views.png``); quick runs put the pictures in ``out_dir``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from chronotope.scripts.experiments.gaussian_eval import ApartmentEvalConfig, evaluate_apartment, mean_ci


@dataclass
class Config(ApartmentEvalConfig):
    """Settings of the M3 experiment (plus every field of :class:`ApartmentEvalConfig`)."""

    quick: bool = False
    """Small run: the first apartment only, 2 episodes, 12 held-out views, 200 consolidation steps."""
    scene_seeds: tuple[int, ...] = (0, 1, 2)
    """Apartment generator seeds (one seed of the experiment each)."""
    threads: int = 1
    """torch threads (the machine is shared)."""
    out_dir: str = "runs/m3_eval"
    """Where the JSON and Markdown results go."""
    plot: str = "docs/images/m3_seeds.png"
    """Per-seed plot (quick runs write it into out_dir instead)."""
    strip: str = "docs/images/m3_heldout_views.png"
    """Held-out views of the first apartment, ground truth above the memory's render (quick: into out_dir)."""


# (row label, key path into one seed's result, format)
METRICS = [
    ("held-out PSNR (dB, target >= 25)", ("heldout", "psnr_db"), "{:.2f}"),
    ("held-out PSNR, covered pixels (dB)", ("heldout", "psnr_covered_db"), "{:.2f}"),
    ("held-out coverage (alpha > 0.5)", ("heldout", "coverage"), "{:.3f}"),
    ("training-view PSNR (dB)", ("training_views", "psnr_db"), "{:.2f}"),
    ("held-out feature cosine, decoded vs encoder", ("heldout", "feature_cosine"), "{:.3f}"),
    ("Gaussians", ("compression", "n_gaussians"), "{:.0f}"),
    ("PSC bank rows", ("compression", "bank_rows"), "{:.0f}"),
    ("bytes / Gaussian (M3 query)", ("compression", "bytes_per_gaussian"), "{:.0f}"),
    ("bytes / Gaussian with raw feature", ("compression", "bytes_per_gaussian_raw_features"), "{:.0f}"),
    ("memory MB, M3 (Gaussians + bank)", ("compression", "bytes_total"), "{:.2f}"),
    ("memory MB, Gaussians with raw features", ("compression", "bytes_total_raw_features"), "{:.2f}"),
    ("memory MB, raw per-pixel feature store", ("compression", "bytes_raw_store"), "{:.2f}"),
    ("raw store / M3 memory (x smaller)", ("compression", "compression_vs_raw_store"), "{:.1f}"),
    ("localisation acc., M3 re-rendered features", ("localisation", "accuracy"), "{:.3f}"),
    ("localisation acc., M3 per-Gaussian query", ("localisation", "accuracy_gaussian"), "{:.3f}"),
    ("localisation acc., raw-feature store", ("localisation", "accuracy_raw"), "{:.3f}"),
    ("localisation chance (random Gaussian)", ("localisation", "chance"), "{:.3f}"),
    ("objects queried", ("localisation", "objects"), "{:.1f}"),
    ("build time, online + consolidation (s)", ("seconds", "build_total"), "{:.0f}"),
]


MEGABYTES = ("bytes_total", "bytes_total_raw_features", "bytes_raw_store")


def _get(res: dict, path: tuple[str, str]) -> float:
    v = float(res[path[0]].get(path[1], float("nan")))
    return v / 1e6 if path[1] in MEGABYTES else v


def plot_seeds(per_seed: list[dict], path: Path, loc_radius: float) -> None:
    """Held-out PSNR and localisation accuracy per apartment seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = [r["scene_seed"] for r in per_seed]
    x = np.arange(len(seeds))
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    a.bar(x - 0.2, [r["heldout"]["psnr_db"] for r in per_seed], 0.4, label="held-out views")
    a.bar(x + 0.2, [r["training_views"]["psnr_db"] for r in per_seed], 0.4, label="training views")
    a.axhline(25, color="k", ls="--", lw=1, label="target 25 dB")
    a.set(xticks=x, xticklabels=[f"apt {s}" for s in seeds], ylabel="PSNR (dB), 64x64", ylim=(15, 32))
    a.legend(fontsize=8, loc="lower right")
    a.set_title("M3 memory: re-rendered RGB")
    keys = [("accuracy", "M3 re-rendered"), ("accuracy_gaussian", "M3 per-Gaussian"),
            ("accuracy_raw", "raw features"), ("chance", "chance")]  # fmt: skip
    for i, (k, label) in enumerate(keys):
        b.bar(x + (i - 1.5) * 0.2, [r["localisation"][k] for r in per_seed], 0.2, label=label)
    b.set(xticks=x, xticklabels=[f"apt {s}" for s in seeds], ylabel=f"accuracy (<= {loc_radius} m)", ylim=(0, 1.3))
    b.set_yticks(np.linspace(0, 1, 6))
    b.legend(fontsize=8, ncol=2, loc="upper center")
    b.set_title('"where did I see it?"')
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(cfg: Config) -> dict:
    from chronotope.scripts.bench.common import print_table, write_results

    if cfg.quick:
        cfg.scene_seeds = cfg.scene_seeds[:1]
        cfg.episodes, cfg.heldout_views = min(cfg.episodes, 2), min(cfg.heldout_views, 12)
        cfg.consolidate_steps = min(cfg.consolidate_steps, 200)
    if not cfg.scene_seeds:
        raise ValueError(f"scene_seeds must not be empty, got {cfg.scene_seeds}")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    strip = Path(cfg.out_dir) / "m3_heldout_views_quick.png" if cfg.quick else Path(cfg.strip)
    per_seed = []
    for s in cfg.scene_seeds:
        per_seed.append(evaluate_apartment(s, cfg, str(strip) if s == cfg.scene_seeds[0] else None))
        r = per_seed[-1]
        print(f"apartment {s}: held-out PSNR {r['heldout']['psnr_db']:.2f} dB, feature cosine "
              f"{r['heldout'].get('feature_cosine', float('nan')):.3f}, localisation M3 "
              f"{r['localisation']['accuracy']:.3f} / raw {r['localisation']['accuracy_raw']:.3f}, "
              f"build {r['seconds']['build_total']:.0f} s", flush=True)  # fmt: skip
    agg = {label: mean_ci([_get(r, path) for r in per_seed]) for label, path, _ in METRICS}
    rows = []
    for label, path, fmt in METRICS:
        a = agg[label]
        ci = "" if not np.isfinite(a["ci95"]) else " ± " + fmt.format(a["ci95"])
        rows.append([label, fmt.format(a["mean"]) + ci, ", ".join(fmt.format(_get(r, path)) for r in per_seed)])
    n = len(per_seed)
    md = print_table(
        f"M3 Gaussian memory vs raw features, {n} apartment(s) (64x64, {cfg.encoder}; mean ± 95% CI over seeds)",
        ["metric", "mean ± 95% CI", f"per seed {list(cfg.scene_seeds)}"],
        rows,
    )
    md += ("\nBuild times are wall seconds on a shared 2-core CPU with 1 torch thread (noisy). "
           "Memory sizes in MB of float32.\n")  # fmt: skip
    name = "m3_eval_quick" if cfg.quick else "m3_eval"
    plot = Path(cfg.out_dir) / "m3_seeds_quick.png" if cfg.quick else Path(cfg.plot)
    plot_seeds(per_seed, plot, cfg.loc_radius)
    results = {"config": asdict(cfg), "aggregate": agg, "per_seed": per_seed, "plot": str(plot), "strip": str(strip)}
    path = write_results(name, results, md, out_dir=cfg.out_dir)
    print(f"wrote {path}, {Path(cfg.out_dir) / (name + '.md')}, {plot} and {strip}")
    return results


if __name__ == "__main__":
    import tyro

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    run(tyro.cli(Config))
