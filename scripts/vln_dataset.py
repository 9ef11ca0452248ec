"""``chronotope vln-dataset``: generates a VLN episode split (R2R-VLN-CE schema) as ``.json.gz``.

Example::

    chronotope vln-dataset --split val_unseen --episodes 200 --out data/vln/val_unseen.json.gz

train and val_seen draw scenes from seeds 0..num_scenes-1 (different episodes); val_unseen from a disjoint seed
range, so its scenes never appear in train. Replay a file with
``gym.make("chronotope/VLN-v0", task_kwargs={"episodes_file": FILE})``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass
class VLNDatasetConfig:
    """Options of ``chronotope vln-dataset``."""

    split: Literal["train", "val_seen", "val_unseen"] = "train"
    """Which split to generate."""
    episodes: int = 100
    """Number of episodes."""
    out: Path = Path("vln_train.json.gz")
    """Output file (.json.gz compresses, .json does not)."""
    num_scenes: int = 20
    """Scenes of the split."""
    seed: int = 0
    """Base seed of episode sampling."""
    min_distance: float = 5.0
    """Smallest start-goal geodesic distance (m)."""
    max_distance: float = 20.0
    """Largest start-goal geodesic distance (m)."""
    waypoint_spacing: float = 0.5
    """Reference path resolution (m)."""


def main(cfg: VLNDatasetConfig) -> Path:
    """Generates the split and writes it; returns the written path."""
    from chronotope.envs.tasks.vln_dataset import DatasetConfig, generate_dataset, save_dataset

    data = generate_dataset(
        DatasetConfig(
            split=cfg.split,
            episodes=cfg.episodes,
            num_scenes=cfg.num_scenes,
            seed=cfg.seed,
            min_distance=cfg.min_distance,
            max_distance=cfg.max_distance,
            waypoint_spacing=cfg.waypoint_spacing,
        )
    )
    path = save_dataset(data, cfg.out)
    eps = data["episodes"]
    scenes = len({e["scene_id"] for e in eps})
    mean_d = sum(e["info"]["geodesic_distance"] for e in eps) / len(eps)
    print(f"wrote {len(eps)} {cfg.split} episodes in {scenes} scenes (mean geodesic {mean_d:.2f} m) to {path}")
    return path


if __name__ == "__main__":
    import tyro

    main(tyro.cli(VLNDatasetConfig))
