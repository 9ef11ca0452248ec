"""SB3 training leaves nothing in the temp folder: stable-baselines3's default logger creates an empty
``$TMPDIR/SB3-<date-time>`` per ``learn`` call unless the model is given a logger (issue 18)."""

from __future__ import annotations

import json
import tempfile

import pytest

from chronotope.agents.config import TrainConfig
from chronotope.scripts.train import train


@pytest.fixture
def tmpdir_here(tmp_path, monkeypatch):
    """TMPDIR (and tempfile's cached answer) pointed at a fresh folder of our own."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    return tmp


@pytest.mark.parametrize("algo", ["sb3-ppo", "recurrent-ppo"])
def test_sb3_training_logs_inside_its_run_folder(tmp_path, tmpdir_here, algo):
    cfg = TrainConfig(
        env="chronotope/PointNav-v0",
        agent="none",
        algo=algo,
        steps=2 * 16,
        num_envs=2,
        rollout_len=16,
        bptt_len=8,
        epochs=1,
        minibatches=1,
        env_kwargs=json.dumps({"obs_mode": "state", "num_scenes": 1}),
        name="sb3",
        out_dir=tmp_path / "runs",
        progress=False,
        device="cpu",
    )
    train(cfg)
    run = tmp_path / "runs" / "sb3"
    assert (run / "sb3_model.zip").is_file()
    assert list((run / "tb").rglob("events.out.tfevents.*")), "TensorBoard events belong in the run folder"
    assert sorted(p.name for p in tmpdir_here.iterdir() if p.name.startswith("SB3-")) == []


def test_sb3_benchmark_case_leaves_no_temp_folders(tmp_path, tmpdir_here):
    from chronotope.scripts.bench.train import Config, _make

    case = _make(Config(num_envs=2, n_steps=8, epochs=1, minibatches=1, hidden=16), "sb3-ppo")
    case.update()
    case.update()  # every learn() call would have made its own folder
    assert sorted(p.name for p in tmpdir_here.iterdir() if p.name.startswith("SB3-")) == []


def test_without_a_logger_sb3_would_write_there(tmpdir_here):
    """The check above can see the folder: SB3's default logger does create it under our TMPDIR."""
    from stable_baselines3.common.utils import configure_logger

    configure_logger(verbose=0)
    assert [p.name[:4] for p in tmpdir_here.iterdir()] == ["SB3-"]
