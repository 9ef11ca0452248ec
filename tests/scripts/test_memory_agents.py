"""The memory-agents experiment: task presets, aggregation over seeds, bad input, and a resumable smoke run."""

import json

import gymnasium as gym
import pytest

from chronotope.scripts.experiments import memory_agents as ma


@pytest.mark.parametrize("task", sorted(ma.TASKS))
def test_task_presets_build_and_extrapolate(task):
    import chronotope.envs  # noqa: F401

    spec = ma.TASKS[task]
    env = gym.make(spec["env"], **spec["env_kwargs"])
    assert env.unwrapped.core.task.name == ma.ORACLE_TASK[task]
    env.close()
    delays, knob = spec["eval_delays"], spec.get("knob", "delay")
    assert delays[0] == spec["env_kwargs"][knob]  # first column = training value
    assert list(delays) == sorted(delays)
    if knob == "delay":
        assert delays[-1] == 4 * delays[0]  # last column = HCAM's 4x extrapolation test


def test_aggregate_is_mean_and_ci_over_seed_means():
    per_seed = {
        0: {"success": {"mean": 0.2, "n": 10}},
        1: {"success": {"mean": 0.4, "n": 10}},
        2: {"success": {"mean": 0.6, "n": 12}},
    }
    s = ma.aggregate(per_seed, "success")
    assert s["mean"] == pytest.approx(0.4)
    assert s["n"] == 3 and s["episodes"] == 32
    assert s["per_seed"] == [0.2, 0.4, 0.6]
    # t(0.975, 2) * sd / sqrt(3) with sd = 0.2
    assert s["ci95"] == pytest.approx(4.302653 * 0.2 / 3**0.5, rel=1e-5)


def test_unknown_task_is_named(tmp_path):
    with pytest.raises(ValueError, match="'maze'"):
        ma.main(ma.Config(tasks=("maze",), out=tmp_path))


@pytest.mark.slow
def test_quick_run_writes_tables_and_resumes(tmp_path, capsys):
    cfg = ma.Config(tasks=("ballet",), agents=("none", "lstm"), seeds=(0,), out=tmp_path, quick=True)
    res = ma.main(cfg)
    table = res["tasks"]["ballet"]["success"]
    assert set(table) == {"none", "lstm"} and set(table["none"]) == set(ma.TASKS["ballet"]["eval_delays"])
    assert res["tasks"]["ballet"]["references"]["perfect"][16]["success"] >= 0.9
    assert (tmp_path / "results.md").read_text().count("|") > 10
    assert (tmp_path / "ballet_delays.png").stat().st_size > 0
    assert (tmp_path / "ballet_curves.png").stat().st_size > 0
    stamp = (tmp_path / "runs" / "ballet-none-s0" / "done.json").stat().st_mtime_ns
    again = ma.main(ma.Config(tasks=("ballet",), agents=("none", "lstm"), seeds=(0,), out=tmp_path, quick=True))
    assert (tmp_path / "runs" / "ballet-none-s0" / "done.json").stat().st_mtime_ns == stamp  # not retrained
    assert json.dumps(again["tasks"]["ballet"]["success"]) == json.dumps(table)
