"""``chronotope train`` / ``python -m chronotope.scripts.train`` (also under torchrun): parse config, train."""

from __future__ import annotations

import sys

from chronotope.agents.config import TrainConfig


def train(cfg: TrainConfig) -> None:
    """Trains an agent and writes config, TensorBoard logs and atomic checkpoints under ``runs/<name>``."""
    import json
    from pathlib import Path

    if cfg.resume is not None:
        run = Path(cfg.resume)
        if not (run / "config.json").is_file():
            raise SystemExit(f"cannot resume: {str(run)!r} has no config.json")
        saved = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
        saved.resume = run
        saved.progress = cfg.progress
        cfg = saved
    if cfg.algo in ("sb3-ppo", "recurrent-ppo"):
        from chronotope.agents.sb3 import train_sb3

        train_sb3(cfg)
        return
    if cfg.algo in ("bc", "dagger"):
        from chronotope.agents.imitation import train_imitation

        train_imitation(cfg)
        return
    from torch.utils.tensorboard import SummaryWriter

    from chronotope.agents.ppo.trainer import PPOTrainer

    writer = SummaryWriter(str(cfg.run_dir() / "tb"))
    trainer = PPOTrainer(cfg, writer=writer)
    if cfg.resume is not None:
        trainer.restore(Path(cfg.resume) / "checkpoint.pt")
    try:
        trainer.train()
    except KeyboardInterrupt as e:
        print(f"\n{e}", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        writer.close()
    print(f"run written to {cfg.run_dir().resolve()}")


if __name__ == "__main__":
    import tyro

    train(tyro.cli(TrainConfig))
