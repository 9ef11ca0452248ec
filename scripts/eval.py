"""``chronotope eval``: evaluates a run's last checkpoint (summary.json / .md, episodes, trajectories)."""

from __future__ import annotations

from chronotope.agents.evaluate import EvalConfig


def evaluate(cfg: EvalConfig) -> None:
    """Evaluates a run and prints the summary table (mean ± 95% CI)."""
    from chronotope.agents.evaluate import evaluate as run_eval

    summary = run_eval(cfg)
    for k, v in summary.items():
        print(f"{k:>22s}  {v['mean']:10.4f} ± {v['ci95']:.4f}  (n={v['n']})")


if __name__ == "__main__":
    import tyro

    evaluate(tyro.cli(EvalConfig))
