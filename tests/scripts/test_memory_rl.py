"""memory_rl's bookkeeping: training time read from a run's log, whole even when the run was resumed."""

import json

import pytest

from chronotope.scripts.experiments.memory_rl import PRESETS, Config, train_config, training_seconds


def test_training_seconds_sums_every_logged_update(tmp_path):
    # 3 updates of 4,096 steps at 512, 256 and 1,024 steps/s: 8 + 16 + 4 s, whether or not a resume split them.
    recs = [{"update": i + 1, "step": 4096 * (i + 1), "sps": sps} for i, sps in enumerate((512.0, 256.0, 1024.0))]
    (tmp_path / "progress.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    assert training_seconds(tmp_path) == pytest.approx(28.0)
    assert training_seconds(tmp_path / "missing") is None


@pytest.mark.parametrize("task", sorted(PRESETS))
def test_presets_build_train_configs(task, tmp_path):
    tcfg = train_config(Config(task=task, out=tmp_path), "gru", 0)
    assert tcfg.env == PRESETS[task]["env"] and json.loads(tcfg.env_kwargs) == PRESETS[task]["env_kwargs"]
    assert tcfg.steps == PRESETS[task]["recipe"]["steps"] and tcfg.name == f"{task}-gru-s0"


def test_arm_preset_references_come_from_the_arm_oracles(tmp_path):
    from chronotope.scripts.experiments.memory_rl import references

    row = references(Config(task="wherehidden", out=tmp_path, quick=True, extrapolate=False))["20"]
    assert row["perfect"] >= 15 / 16 and row["twin"] >= 15 / 16 and row["random"] == 0.0
    assert row["memoryless"] <= 8 / 16  # one cup of 5 guessed


def test_preset_memory_config_merges_over_the_cores_defaults(tmp_path):
    cfg = Config(task="ballet", out=tmp_path)
    hcam = json.loads(train_config(cfg, "hcam", 0).memory_cfg)
    assert hcam == {**cfg.memory_cfgs["hcam"], "memory_gradient": True}
    assert json.loads(train_config(cfg, "gru", 0).memory_cfg) == {}
    assert (
        json.loads(train_config(Config(task="objectrecall", out=tmp_path), "hcam", 0).memory_cfg)
        == (cfg.memory_cfgs["hcam"])
    )


def test_targetsequence_reads_the_named_colours_row_and_the_command_line_wins(tmp_path):
    from chronotope.scripts.experiments.memory_rl import _metric, _values

    cfg = Config(task="targetsequence", out=tmp_path)
    tcfg = train_config(cfg, "gru", 0)
    assert (tcfg.readout_key, tcfg.readout_query) == ("sites", "target_color")
    assert tcfg.aux_key == "memory_colours" and tcfg.memory_keys == "site_colours"
    assert tcfg.aux_coef == 1.0
    assert _metric(cfg) == "score" and _values(cfg) == [3]  # no 4x of num_targets (at most 8)
    # --aux-coef on the command line wins over the preset's (it used to be dropped silently)
    given = train_config(Config(task="targetsequence", aux_coef=0.5, out=tmp_path), "gru", 0)
    assert given.aux_coef == 0.5 and given.aux_key == "memory_colours"
    assert train_config(Config(task="ballet", aux_coef=0.0, out=tmp_path), "gru", 0).aux_coef == 0.0
    # --lr likewise: every core of the run gets it, 0 leaves the preset's (or the trainer's) rate
    assert train_config(Config(task="objectrecall", lr=1e-3, out=tmp_path), "hcam", 0).lr == 1e-3
    assert train_config(Config(task="objectrecall", out=tmp_path), "hcam", 0).lr == 3e-4
