"""``chronotope eval``: evaluates a run's last checkpoint (summary.json / .md, episodes, trajectories)."""

from __future__ import annotations

from chronotope.agents.evaluate import EvalConfig


def evaluate(cfg: EvalConfig) -> None:
    """Evaluates a run and prints the summary table (mean ± 95% CI)."""
    from pathlib import Path

    from chronotope.agents.evaluate import evaluate as run_eval

    summary = run_eval(cfg)
    for k, v in summary.items():
        print(f"{k:>22s}  {v['mean']:10.4f} ± {v['ci95']:.4f}  (n={v['n']})")
    print(f"wrote {Path(cfg.out or Path(cfg.run) / 'eval').resolve()}")


if __name__ == "__main__":
    import tyro

    from chronotope.scripts.cli import run_cli

    run_cli(lambda argv: evaluate(tyro.cli(EvalConfig, args=argv)))
