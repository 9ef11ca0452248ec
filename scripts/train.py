"""``chronotope train`` / ``python -m chronotope.scripts.train``: parse config, train.

Multi-process: ``torchrun --nproc_per_node=P -m chronotope.scripts.train --algo ppo ...`` (gloo on CPU, nccl on
CUDA); each rank runs ``num_envs`` envs of its own and ``steps`` counts all ranks together.
"""

from __future__ import annotations

import sys

from chronotope.agents.config import TrainConfig


def train(cfg: TrainConfig) -> None:
    """Trains an agent and writes config, TensorBoard logs and atomic checkpoints under ``runs/<name>``.

    The run folder is locked for the run and an existing run is refused unless ``--overwrite``; ``--resume DIR``
    continues in ``DIR`` (see :mod:`chronotope.agents.runs`).
    """
    import os
    from pathlib import Path

    from chronotope.agents.datasets import resolve_dataset_config
    from chronotope.agents.runs import RunFolder, resolve_resume

    if cfg.resume is not None:
        cfg = resolve_resume(cfg)
    cfg = resolve_dataset_config(cfg)  # --dataset: the dataset's env id and kwargs (and so the default run name)
    cfg.validate()  # bad values (e.g. an unknown --wrappers name) fail before any env or run folder is made
    world = os.environ.get("WORLD_SIZE", "1")
    if world not in ("", "1") and cfg.algo != "ppo":
        raise ValueError(f"multi-process training (WORLD_SIZE={world}) supports --algo ppo only, got {cfg.algo!r}")
    with RunFolder(cfg):
        if cfg.algo in ("sb3-ppo", "recurrent-ppo"):
            from chronotope.agents.sb3 import train_sb3

            train_sb3(cfg)
            return
        if cfg.algo in ("bc", "dagger"):
            from chronotope.agents.imitation import train_imitation

            train_imitation(cfg)
            return
        from torch.utils.tensorboard import SummaryWriter

        from chronotope.agents.distributed import destroy_distributed, init_distributed
        from chronotope.agents.ppo.trainer import PPOTrainer

        dist = init_distributed(cfg.resolved_device())
        writer = None
        try:
            trainer = PPOTrainer(cfg, dist=dist)
            if cfg.resume is not None:
                trainer.restore(Path(cfg.resume) / "checkpoint.pt")
            if dist.is_main:  # on resume, TensorBoard hides what was logged after the checkpoint
                purge = trainer.global_step + 1 if cfg.resume is not None else None
                writer = trainer.writer = SummaryWriter(str(cfg.run_dir() / "tb"), purge_step=purge)
            trainer.train()
        except KeyboardInterrupt as e:
            print(f"\n{e}", file=sys.stderr)
            raise SystemExit(130) from None
        finally:
            if writer is not None:
                writer.close()
            destroy_distributed(dist)
        if dist.is_main:
            print(f"run written to {cfg.run_dir().resolve()}")


if __name__ == "__main__":
    import tyro

    from chronotope.scripts.cli import run_cli

    run_cli(lambda argv: train(tyro.cli(TrainConfig, args=argv)))
