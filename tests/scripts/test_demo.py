import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_quick_runs_every_stage(tmp_path):
    """`chronotope demo --quick` exercises strip, training, evaluation, references and pictures."""
    subprocess.run(
        [sys.executable, "-m", "chronotope.scripts.cli", "demo", "--quick", "--out", str(tmp_path)], check=True
    )
    res = json.loads((tmp_path / "results.json").read_text())
    assert set(res["agents"]) == {"none", "gru", "hcam"}
    assert set(res["agents"]["gru"]) >= {"sampled", "greedy", "train_seconds"}
    assert res["references"]["perfect"]["success"] >= 0.9
    assert res["references"]["twin"]["success"] >= 0.9
    for name in ("strip.png", "results.md", "learning_curves.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert list(tmp_path.glob("trajectory_*.png"))


def test_cli_lists_every_env():
    out = subprocess.run(
        [sys.executable, "-m", "chronotope.scripts.cli", "envs"], check=True, capture_output=True, text=True
    ).stdout
    for env_id in (
        "PointNav-v0",
        "ObjectNav-v0",
        "ObjectRecall-v0",
        "TargetSequence-v0",
        "Ballet-v0",
        "VLN-v0",
        "Reach-v0",
        "PickPlace-v0",
        "CueRecallPick-v0",
        "CountPress-v0",
    ):
        assert f"chronotope/{env_id}" in out
