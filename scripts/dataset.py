"""``chronotope dataset``: record a task's reference policy into a Minari dataset (see
:mod:`chronotope.agents.datasets`).

    chronotope dataset --env chronotope/ObjectRecall-v0 --policy expert --episodes 200 \
        --name chronotope/objectrecall-expert-v0 --env-kwargs '{"obs_mode": "state"}'
"""

from __future__ import annotations

from chronotope.agents.datasets import DatasetConfig


def main(cfg: DatasetConfig) -> None:
    """Records (or continues) the dataset and prints where it is and what it holds."""
    from chronotope.agents.datasets import dataset_dir, record_dataset

    dataset = record_dataset(cfg)
    print(
        f"dataset {cfg.name}: {dataset.total_episodes} episodes, {dataset.total_steps} steps, "
        f"{dataset.storage.get_size():.1f} MB at {dataset_dir(cfg.name)}"
    )


if __name__ == "__main__":
    import tyro

    from chronotope.scripts.cli import run_cli

    run_cli(lambda argv: main(tyro.cli(DatasetConfig, args=argv)))
