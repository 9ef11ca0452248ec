"""The time-to-threshold benchmark: a quick run on MiniGrid, the threshold and speed-up reading on built inputs, the
stop rules of a turn, the frame stack of the evaluation, and learners trained by turns as if alone."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from chronotope.scripts.bench import learn


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory):
    """One quick run of every learner on MiniGrid-MemoryS7 (2 updates of 4 envs x 16 steps, 4 evaluation episodes
    after each: ~20 s on 2 busy cores)."""
    out = tmp_path_factory.mktemp("bench")
    return learn.run(learn.Config(quick=True, tasks=("minigrid",), out_dir=str(out))), out


def test_quick_run_gives_every_learner_a_consistent_row(quick_result):
    result, out = quick_result
    cfg = result["config"]
    assert (cfg.max_steps, cfg.eval_every, cfg.eval_episodes, cfg.budget_s) == (128, 64, 4, 20.0)
    task = result["tasks"]["minigrid"]
    assert task["env"] == "MiniGrid-MemoryS7-v0" and task["threshold"] == 0.9 and task["rule"] == "sampled"
    assert list(task["learners"]) == list(learn.LEARNERS)
    for name, r in task["learners"].items():
        assert r["error"] is None, (name, r.get("traceback"))
        assert r["recipe"]["num_envs"] == 4 and r["steps_per_update"] == 64, name
        curve = r["curve"]
        assert [p["steps"] for p in curve] == [64, 128], name  # one evaluation per interval, the step budget's last
        assert all(0.0 <= p["success"] <= 1.0 for p in curve)
        assert all(a["train_s"] < b["train_s"] and a["eval_s"] < b["eval_s"] for a, b in zip(curve, curve[1:]))
        assert r["train_s"] == curve[-1]["train_s"] > 0 and r["eval_s"] == curve[-1]["eval_s"] > 0
        assert r["steps"] == 128 and r["train_cpu_s"] > 0
        assert r["best_success"] == max(p["success"] for p in curve)
        assert r["reached"] == (r["best_success"] >= 0.9)
        if r["reached"]:
            assert r["stop"] == "threshold" and r["seconds_to_threshold"] == curve[-1]["train_s"]
        else:
            assert r["stop"] == "max_steps" and r["seconds_to_threshold"] is None and r["steps_to_threshold"] is None
    assert set(task["ratios"]) == {"ours-gru vs recurrent-ppo", "ours-hcam vs recurrent-ppo"}
    gru = task["ratios"]["ours-gru vs recurrent-ppo"]
    assert gru == {**learn.speedup(task["learners"]["ours-gru"], task["learners"]["recurrent-ppo"]), **gru}
    assert gru["goal"] == 10.0 and gru["verdict"] == learn.verdict(gru, 10.0)
    assert result["headline"]["minigrid"] == gru

    on_disk = json.loads((out / "learn.json").read_text())
    assert on_disk["name"] == "learn" and on_disk["tasks"]["minigrid"]["learners"]["ppo-framestack"]["steps"] == 128
    md = (out / "learn.md").read_text()
    assert md.startswith("**Quick run") and "the numbers mean nothing" in md
    assert "### Time to 0.9 success (return > 0), MiniGrid-MemoryS7-v0" in md and "sampled actions" in md
    for name in learn.LEARNERS:
        assert f"| {name} |" in md
    assert "| ours-gru vs recurrent-ppo (time ratio) |" in md
    assert (out / "learn_minigrid.png").stat().st_size > 0


def _row(reached: bool, at_s: float | None, at_steps: int | None, train_s: float, steps: int) -> dict:
    return {"reached": reached, "seconds_to_threshold": at_s, "steps_to_threshold": at_steps, "train_s": train_s,
            "steps": steps}  # fmt: skip


def test_threshold_is_the_first_crossing_and_a_miss_keeps_its_best():
    curve = [
        {"steps": 10, "train_s": 1.0, "eval_s": 0.5, "success": 0.4},
        {"steps": 20, "train_s": 2.5, "eval_s": 1.0, "success": 0.9},  # first at the threshold (>=)
        {"steps": 30, "train_s": 4.0, "eval_s": 1.5, "success": 0.95},
    ]
    assert learn.first_crossing(curve, 0.9) is curve[1]
    hit = learn.summarize_run(curve, 0.9)
    assert hit == {"reached": True, "seconds_to_threshold": 2.5, "steps_to_threshold": 20, "best_success": 0.95,
                   "train_s": 4.0, "eval_s": 1.5, "steps": 30}  # fmt: skip
    miss = learn.summarize_run(curve, 0.96)
    assert not miss["reached"] and miss["seconds_to_threshold"] is None and miss["best_success"] == 0.95
    assert (miss["train_s"], miss["eval_s"], miss["steps"]) == (4.0, 1.5, 30)  # what it ran in all
    assert learn.summarize_run([], 0.5)["best_success"] is None


def test_speedup_is_exact_or_a_bound_and_the_target_reads_it():
    ours = _row(True, 30.0, 40_000, 30.0, 40_000)
    peer_hit = _row(True, 450.0, 20_000, 450.0, 20_000)
    peer_miss = _row(False, None, None, 1200.0, 24_000)
    ours_miss = _row(False, None, None, 1200.0, 300_000)

    sp = learn.speedup(ours, peer_hit)
    assert sp == {"kind": "exact", "value": 15.0, "steps_value": 0.5}
    assert learn.format_speedup(sp) == "15.0x" and learn.verdict(sp, 10) == "met"
    assert learn.verdict(learn.speedup(_row(True, 90.0, 1, 90.0, 1), peer_hit), 10) == "not met"  # 5x

    # the peer ran 1200 s without reaching it: ours is more than 1200 / 30 = 40x sooner
    sp = learn.speedup(ours, peer_miss)
    assert sp == {"kind": "lower_bound", "value": 40.0, "steps_value": 0.6}
    assert learn.format_speedup(sp) == "> 40.0x" and learn.verdict(sp, 10) == "met (lower bound)"
    short = learn.speedup(_row(True, 300.0, 1, 300.0, 1), peer_miss)  # > 4x only: the budget cannot tell
    assert short["kind"] == "lower_bound" and short["value"] == 4.0
    assert learn.verdict(short, 10).startswith("not decided: lower bound 4.0x < 10x")

    sp = learn.speedup(ours_miss, peer_hit)  # only the peer reached it: at most 450 / 1200 as fast
    assert sp["kind"] == "upper_bound" and sp["value"] == pytest.approx(0.375)
    assert learn.format_speedup(sp) == "< 0.4x" and learn.verdict(sp, 10) == "not met (ours did not reach it)"

    sp = learn.speedup(ours_miss, peer_miss)
    assert sp == {"kind": "none", "value": None, "steps_value": None}
    assert learn.format_speedup(sp) == "-" and learn.verdict(sp, 10).startswith("not decided")


class _Counter:
    """A learner stand-in: ``per_update`` env steps per update, each taking ``seconds`` of wall-clock."""

    def __init__(self, per_update: int, seconds: float = 0.0) -> None:
        self.steps, self.per_update, self.seconds, self.updates = 0, per_update, seconds, 0

    def update(self) -> None:
        if self.seconds:
            import time

            time.sleep(self.seconds)
        self.steps += self.per_update
        self.updates += 1


def _turns(monkeypatch, learner, successes, threshold, max_steps, **cfg_kw):
    scores = iter(successes)
    monkeypatch.setattr(learn, "evaluate", lambda *a, **k: next(scores))
    cfg = learn.Config(**{"eval_every": 100, **cfg_kw})
    rec = {"curve": [], "train_s": 0.0, "train_cpu_s": 0.0, "eval_s": 0.0}
    stops = []
    while not stops or stops[-1] is None:
        stops.append(learn._turn(cfg, learner, rec, threshold, max_steps, None, None, "success"))
    return rec, stops


def test_a_turn_trains_to_the_next_evaluation_and_stops_at_the_first_limit(monkeypatch):
    # updates of 64 steps: evaluations at the first update at or past each multiple of 100
    learner = _Counter(64)
    rec, stops = _turns(monkeypatch, learner, [0.1, 0.5, 0.8, 0.2], threshold=0.8, max_steps=10_000)
    assert [p["steps"] for p in rec["curve"]] == [128, 256, 320]
    assert stops == [None, None, "threshold"]

    rec, stops = _turns(monkeypatch, _Counter(64), [0.1] * 9, threshold=0.8, max_steps=200)
    assert [p["steps"] for p in rec["curve"]] == [128, 256] and stops[-1] == "max_steps"

    # a training budget is checked after every update, not only at evaluations
    slow = _Counter(10, seconds=0.02)
    rec, stops = _turns(monkeypatch, slow, [0.1] * 9, threshold=0.8, max_steps=10_000, budget_s=0.05)
    assert stops == ["budget_s"] and slow.updates < 10 and rec["train_s"] >= 0.05
    # a threshold reached at the budget's last evaluation counts as reached
    rec, stops = _turns(monkeypatch, _Counter(10, 0.02), [0.9], threshold=0.8, max_steps=10_000, budget_s=0.05)
    assert stops == ["threshold"]


def test_the_evaluation_stacks_frames_as_training_does():
    from chronotope.agents.envs import make_vector_env
    from chronotope.agents.sb3 import SB3Policy, SB3VecEnv, frame_stacked

    env, kw = "MiniGrid-MemoryS7-v0", {"max_steps": 6}  # episodes of 6 steps: auto-resets inside the window
    train = SB3VecEnv(make_vector_env(env, 3, kw))
    train.seed(0)
    stacked = frame_stacked(train, 3)
    plain = make_vector_env(env, 3, kw)
    policy = SB3Policy(model=None, venv=plain, n_stack=3)
    want = stacked.reset()
    obs, _ = plain.reset(seed=[0, 1, 2])
    starts = np.ones(3, bool)
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(15):
        got = policy.observe(obs, starts)
        assert set(got) == set(want)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])
        act = rng.integers(0, 3, 3)
        want, _, dones, _ = stacked.step(act)
        obs, _, term, trunc, _ = plain.step(act)
        starts = term | trunc
        np.testing.assert_array_equal(dones, starts)
        ends += int(starts.sum())
    assert ends >= 3  # the stacks were cleared at episode starts along the way
    assert want["direction"].shape == (3, 3 * 4)  # one-hot directions, 3 frames


def test_learners_trained_by_turns_train_as_they_would_alone(tmp_path):
    """Each learner's random state is its own: ours-gru interleaved with a peer (and with evaluations, which
    reseed torch's generator) ends with the weights it has when trained alone."""
    from chronotope.agents.envs import make_vector_env

    cfg = learn.Config(quick=True, out_dir=str(tmp_path)).resolved()
    venv = make_vector_env("MiniGrid-MemoryS7-v0", 2, {})

    def build(name):
        slot = learn._RngSlot()
        with slot.active():
            return learn.make_learner(learn.train_config(cfg, "minigrid", name), name, cfg.frame_stack), slot

    def train(pair, other=None):
        learner, slot = pair
        for _ in range(2):
            with slot.active():
                learner.update()
                learn.evaluate(learner, venv, [7, 8], False, "return>0")
            if other is not None:
                with other[1].active():
                    other[0].update()
                    torch.rand(5)  # anything else drawing from the global generators
                    np.random.rand(5)  # noqa: NPY002
        return torch.cat([p.detach().flatten() for p in learner.trainer.model.parameters()])

    alone = train(build("ours-gru"))
    gru = build("ours-gru")
    with_peer = train(gru, other=build("ppo-framestack"))
    assert torch.equal(alone, with_peer)
    assert not math.isclose(float(alone.abs().sum()), 0.0)


def test_reading_names_each_learner_and_the_verdict():
    ratio = {**learn.speedup(_row(True, 30.0, 4, 30.0, 4), _row(False, None, None, 1200.0, 9)), "goal": 10.0}
    ratio["verdict"] = learn.verdict(ratio, 10.0)
    result = {
        "quick": False,
        "tasks": {
            "minigrid": {
                "env": "MiniGrid-MemoryS7-v0", "threshold": 0.9, "rule": "sampled",
                "learners": {
                    "ours-gru": {**_row(True, 30.0, 40_960, 31.0, 40_960), "best_success": 0.93, "error": None},
                    "recurrent-ppo": {**_row(False, None, None, 1200.0, 24_576), "best_success": 0.52,
                                      "error": None},
                    "ppo-framestack": {**_row(False, None, None, 0.0, 0), "best_success": None, "curve": [],
                                       "error": "ImportError: no sb3"},
                },
                "ratios": {"ours-gru vs recurrent-ppo": ratio},
            }
        },
    }  # fmt: skip
    text = learn.reading(result)
    for want in ("MiniGrid-MemoryS7-v0, threshold 0.9 (sampled actions)", "ours-gru in 30.0 s (40,960 env steps)",
                 "recurrent-ppo not reached (best 0.52 in 1,200 s, 24,576 steps)",
                 "ppo-framestack could not run (ImportError: no sb3)", "> 40.0x sooner",
                 "target >= 10x: met (lower bound)"):  # fmt: skip
        assert want in text, (want, text)
