"""Smoke test of the training benchmark: its smallest case, tiny budgets, so the script cannot rot."""

import json

import pytest

from chronotope.scripts.bench.train import Config, run


def test_quick_smallest_case_runs_and_writes_results(tmp_path):
    cfg = Config(quick=True, cases=("ours-none", "sb3-ppo"), num_envs=2, n_steps=8, bptt_len=4, epochs=1,
                 minibatches=1, rounds=1, out_dir=str(tmp_path))  # fmt: skip
    res = run(cfg)
    ours, sb3 = res["cases"]["ours-none"], res["cases"]["sb3-ppo"]
    assert res["steps_per_update"] == 16
    # same network: SB3 gets our encoder as its features extractor and no extra layers
    assert ours["params"] == sb3["params"]
    for r in (ours, sb3):
        assert r["sps"] > 0 and r["update_s"] > 0 and 0 < r["env_s"] < r["samples_s"][0]
        # the default env's episodes never end early, so both sides pay the same env work per step
        assert r["episodes"] == 0
    assert ours["vs"] == "sb3-ppo" and ours["ratio"] == pytest.approx(ours["sps"] / sb3["sps"])
    saved = json.loads((tmp_path / "train.json").read_text())
    assert set(saved["cases"]) == {"ours-none", "sb3-ppo"}
    md = (tmp_path / "train.md").read_text()
    assert "ratio steps/s" in md and "episodes" in md and "TargetSequence-v0" in md


def test_bad_settings_name_the_value(tmp_path):
    with pytest.raises(ValueError, match="'sb3-dqn'"):
        run(Config(cases=("sb3-dqn",), rounds=1, out_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="rounds must be positive, got 0"):
        run(Config(rounds=0, out_dir=str(tmp_path)))
