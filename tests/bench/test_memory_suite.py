"""The memory leaderboard: a tiny grid gives a cell JSON each, a table and a heat map; a rerun trains nothing; an
interrupted run continues from its checkpoint; a cell of another recipe is refused; scores and their aggregation on
built inputs."""

from __future__ import annotations

import json
import math

import pytest

from chronotope.scripts.bench import memory_suite as ms

CORES = ("none", "gru")
TASKS = ("countpress", "minigrid")  # an arm task with measured references, the external env with analytic ones


def _config(tmp_path, **over) -> ms.Config:
    """2 cores x 2 tasks, 2 updates of 4 envs x 32 steps per cell, 4 evaluation episodes, 2 per reference policy."""
    kw = dict(cores=CORES, tasks=TASKS, seeds=(0,), steps=256, num_envs=4, rollout_len=32, epochs=1, minibatches=1,
              eval_episodes=4, eval_num_envs=4, reference_episodes=2, jobs=1, grid_dir=str(tmp_path / "grid"),
              out=str(tmp_path / "docs" / "LEADERBOARD.md"), out_dir=str(tmp_path / "bench"))  # fmt: skip
    return ms.Config(**{**kw, **over})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One tiny grid (~15 s on 2 busy cores)."""
    tmp = tmp_path_factory.mktemp("suite")
    cfg = _config(tmp)
    return cfg, ms.run(cfg)


def test_tiny_grid_writes_a_cell_each_a_table_and_a_heat_map(tiny):
    cfg, rec = tiny
    for task in TASKS:
        refs = rec["tasks"][task]["refs"]
        for core in CORES:
            cell = json.loads(ms.cell_path(cfg, task, core, 0).read_text())
            assert (cell["task"], cell["core"], cell["seed"], cell["steps"]) == (task, core, 0, 256)
            assert cell["recipe"]["num_envs"] == 4 and cell["recipe"]["rollout_len"] == 32
            assert cell["recipe"]["agent"] == core and cell["eval"] == {"episodes": 4, "seed": 10_000, "greedy": False}
            assert 0.0 <= cell["value"] <= 1.0 and cell["steps_per_s"] > 0 and cell["train_cpu_s"] > 0
            assert (cell["bound"], cell["perfect"]) == (refs["bound"], refs["perfect"])
            assert cell["score"] == pytest.approx(ms.normalised_score(cell["value"], refs["bound"], refs["perfect"]))
            agg = rec["table"][task][core]
            assert agg["n"] == 1 and agg["mean"] == pytest.approx(cell["score"]) and math.isnan(agg["ci95"])
    assert rec["tasks"]["minigrid"]["refs"]["bound"] == 0.5  # analytic: the coin flip at the split
    assert set(json.loads((cfg.grid / "references.json").read_text())) == {"countpress"}  # measured once, cached
    assert not rec["errors"] and rec["cells"] == 4 and rec["cpu_hours"] > 0

    page = cfg.page_path().read_text()
    header = next(line for line in page.splitlines() if line.startswith("| core | family |"))
    assert "| countpress † |" in header and "| minigrid |" in header  # untuned tasks are marked
    for core in CORES:
        row = next(line for line in page.splitlines() if line.startswith(f"| {core} |"))
        assert "(1) |" in row and row.count("not run") == len(rec["tasks"]) - len(TASKS)
    lstm = next(line for line in page.splitlines() if line.startswith("| lstm |"))
    assert lstm.count("not run") == len(rec["tasks"])  # cells not run are shown, not left out
    assert "not in --cores" in page and "CPU-hours" in page and "## Reading" in page
    assert "![normalised score heat map](leaderboard/heatmap.png)" in page
    assert (cfg.page_path().parent / "leaderboard" / "heatmap.png").stat().st_size > 0
    suite_json = json.loads((cfg.grid.parent / "bench" / "memory_suite.json").read_text())
    assert suite_json["name"] == "memory_suite" and suite_json["table"]["countpress"]["gru"]["n"] == 1


def test_a_rerun_trains_and_evaluates_nothing(tiny, monkeypatch):
    cfg, _ = tiny
    cells = sorted((cfg.grid / "cells").rglob("*.json"))
    before = {p: p.stat().st_mtime_ns for p in cells}
    ckpts = {p: p.stat().st_mtime_ns for p in (cfg.grid / "runs").rglob("checkpoint.pt")}

    def refuse(*a, **k):
        raise AssertionError("a finished cell was trained or evaluated again")

    monkeypatch.setattr("chronotope.agents.ppo.trainer.PPOTrainer", refuse)
    monkeypatch.setattr("chronotope.agents.evaluate.evaluate", refuse)
    monkeypatch.setattr("chronotope.scripts.experiments.memory_demand.measure", refuse)
    rec = ms.run(cfg)
    assert not rec["errors"] and rec["cells"] == 4
    assert {p: p.stat().st_mtime_ns for p in cells} == before
    assert {p: p.stat().st_mtime_ns for p in (cfg.grid / "runs").rglob("checkpoint.pt")} == ckpts


def test_report_leaves_out_cells_of_an_earlier_recipe_and_keeps_those_missing_a_new_option(tiny, tmp_path):
    """A task whose recipe changed after its cells were made: ``--report`` leaves them out and says so; a cell
    made before an option existed (the key absent, the option at its default now) still counts."""
    import shutil

    cfg, _ = tiny
    grid = tmp_path / "grid"
    shutil.copytree(cfg.grid, grid)
    report = _config(tmp_path, grid_dir=str(grid), report=True)
    stale = ms.cell_path(report, "countpress", "gru", 0)
    cell = json.loads(stale.read_text())
    stale.write_text(json.dumps({**cell, "recipe": {**cell["recipe"], "lr": 1e-3}}))
    old = ms.cell_path(report, "minigrid", "gru", 0)
    cell = json.loads(old.read_text())
    old.write_text(json.dumps({**cell, "recipe": {k: v for k, v in cell["recipe"].items() if k != "obs_norm"}}))
    rec = ms.run(report)
    assert rec["stale"] == {"countpress": 1} and rec["cells"] == 3
    assert rec["table"]["countpress"]["gru"] is None and rec["table"]["minigrid"]["gru"]["n"] == 1
    assert "**Left out** (made with an earlier recipe or evaluation of their task" in report.page_path().read_text()
    with pytest.raises(ValueError, match="another recipe \\(lr: 0.001 there vs 0.0003 now\\)"):
        ms.load_cell(report, ms.discover_tasks()["countpress"], "gru", 0)


def test_an_interrupted_run_continues_from_its_checkpoint(tmp_path):
    from chronotope.agents.ppo.trainer import PPOTrainer

    cfg = _config(tmp_path, cores=("gru",), tasks=("minigrid",)).resolved()
    task = ms.discover_tasks()["minigrid"]
    tr = PPOTrainer(ms.train_config(cfg, task, "gru", 0))
    tr.train(stop_after=1)  # one of its two updates, then a checkpoint (as a stopped run leaves it)
    tr.venv.close()
    cell = ms.run_cell(cfg, task, "gru", 0, ms.cached_reference(cfg, task))
    assert cell["resumed_at"] == 128 and cell["steps"] == 256
    log = [json.loads(line) for line in (cfg.grid / "runs/minigrid/gru-s0/progress.jsonl").read_text().splitlines()]
    assert [r["update"] for r in log] == [1, 2] and [r["step"] for r in log] == [128, 256]  # each update logged once
    assert ms.load_cell(cfg, task, "gru", 0) == cell

    with pytest.raises(ValueError, match="another recipe"):  # the same folder with another budget is refused
        ms.load_cell(ms.Config(**{**cfg.__dict__, "steps": 512}), task, "gru", 0)


def test_normalised_score_and_its_aggregation_over_seeds():
    assert ms.normalised_score(0.6, 0.2, 1.0) == pytest.approx(0.5)
    assert ms.normalised_score(0.2, 0.2, 1.0) == 0.0  # the memoryless bound
    assert ms.normalised_score(1.0, 0.2, 1.0) == 1.0  # perfect memory
    assert ms.normalised_score(0.1, 0.2, 1.0) == pytest.approx(-0.125)  # below the bound
    assert ms.normalised_score(12.1, 3.1, 12.1) == 1.0  # a count (TargetSequence's score) as well
    assert math.isnan(ms.normalised_score(0.5, 1.0, 1.0))  # no demand: no score
    agg = ms.aggregate([0.2, 0.4, 0.6])
    # t(0.975, 2) = 4.303, std 0.2: half-width 4.303 * 0.2 / sqrt(3)
    assert agg["mean"] == pytest.approx(0.4) and agg["ci95"] == pytest.approx(4.3027 * 0.2 / math.sqrt(3), rel=1e-4)
    assert ms.format_score(agg) == "0.40 ± 0.50 (3)"
    assert ms.format_score(ms.aggregate([0.25])) == "0.25 (1)"
    assert ms.format_score(None) == "not run"


def _agg(scores: list[float], sps: float = 100.0) -> dict:
    return {**ms.aggregate(scores), "steps_per_s": sps, "values": scores, "curves": []}


def test_reading_names_the_leader_of_each_memory_type():
    cores = {c: {"family": ms.FAMILIES[c], "status": "run", "state_bytes": 8, "state_bytes_after": 8}
             for c in ("none", "gru", "hcam")}  # fmt: skip
    cores["hcam"]["status"] = "not run: not in --cores"
    record = {
        "quick": False,
        "cores": cores,
        "tasks": {"objectrecall": {"type": "object"}, "countpress": {"type": "counting"}},
        "table": {
            "objectrecall": {"none": _agg([0.0, 0.1, -0.1], 300), "gru": _agg([0.8, 0.9, 0.7], 100), "hcam": None},
            "countpress": {"none": _agg([0.3, 0.3, 0.3], 300), "gru": _agg([0.0, 0.4, 0.2], 100), "hcam": None},
        },
    }
    text = ms.reading(record)
    assert "3 of 4 finished (task, core) pairs are above the memoryless bound" in text
    assert "object (objectrecall): gru (gated RNN) leads at 0.80, then none (memoryless) at 0.00." in text  # CIs apart
    assert (
        "counting (countpress): none (memoryless) leads at 0.30, then gru (gated RNN) at 0.20 (95% CIs overlap)" in text
    )
    assert "none fastest at 300 env steps/s, gru slowest at 100 (3.0x slower)" in text
    assert "Not run: hcam" in text


def test_only_tuned_presets_give_the_leaderboard_its_recipe(monkeypatch):
    """A task without a memory_rl preset (CountPress), or with one marked untuned, is trained with the leaderboard's
    own untuned recipe; a tuned preset (Ballet's, TargetSequence's) is the task's recipe."""
    from chronotope.scripts.bench.memory_suite import UNTUNED_STEPS, Config, discover_tasks, train_config
    from chronotope.scripts.experiments import memory_rl

    tasks = discover_tasks()
    assert not tasks["countpress"].tuned and tasks["ballet"].tuned and tasks["targetsequence"].tuned
    cfg = Config()
    assert train_config(cfg, tasks["countpress"], "gru", 0).steps == UNTUNED_STEPS
    assert train_config(cfg, tasks["ballet"], "gru", 0).readout_query == "instruction"
    assert train_config(cfg, tasks["targetsequence"], "gru", 0).memory_keys == "site_colours"
    monkeypatch.setitem(memory_rl.PRESETS, "ballet", {**memory_rl.PRESETS["ballet"], "tuned": False})
    untuned = discover_tasks()["ballet"]
    assert not untuned.tuned and train_config(cfg, untuned, "gru", 0).steps == UNTUNED_STEPS
