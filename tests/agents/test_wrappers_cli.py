"""Map wrappers from the training / evaluation CLI: TrainConfig.wrappers, make_vector_env, imitation, eval."""

import json
import subprocess
import sys

import numpy as np
import pytest

from chronotope.agents.config import TrainConfig
from chronotope.agents.envs import make_vector_env, nav_cores
from chronotope.agents.imitation import controllable_for, expert_for
from chronotope.envs.vector_info import final_info_row

KW = {
    "obs_mode": "state",
    "resolution": [16, 16],
    "num_scenes": 2,
    "max_episode_steps": 30,
    "task_kwargs": {"max_distance": 7.0, "max_instruction_length": 24},
}
ALL = "depth,occupancy,octree,topology,mem4nav"


def test_unknown_wrapper_name_lists_the_valid_ones():
    cfg = TrainConfig(env="chronotope/VLN-v0", algo="dagger", wrappers="depth,octre")
    with pytest.raises(ValueError, match=r"'octre'.*depth, occupancy, octree, topology, mem4nav"):
        cfg.validate()
    with pytest.raises(ValueError, match="'bogus'"):
        make_vector_env("chronotope/VLN-v0", 1, KW, ["bogus"])


def test_every_trainer_builds_its_envs_with_the_wrappers(tmp_path):
    TrainConfig(env="chronotope/VLN-v0", algo="bc", wrappers=" depth , octree ").validate()
    from chronotope.agents.checkpoint import load_checkpoint
    from chronotope.scripts.train import train

    cfg = TrainConfig(
        env="chronotope/PointNav-v0",
        algo="ppo",
        agent="gru",
        wrappers="depth,octree",
        steps=64,
        num_envs=2,
        rollout_len=32,
        bptt_len=16,
        out_dir=tmp_path,
        name="ppo-wrapped",
        progress=False,
        env_kwargs='{"obs_mode": "state"}',
    )
    train(cfg)
    saved = json.loads((tmp_path / "ppo-wrapped" / "config.json").read_text())
    assert saved["wrappers"] == "depth,octree"
    ckpt = load_checkpoint(tmp_path / "ppo-wrapped" / "checkpoint.pt")
    assert any("octree" in k for k in ckpt["model"])  # the policy has an encoder for the map key


def test_maps_without_depth_are_refused():
    with pytest.raises(ValueError, match="depth"):
        make_vector_env("chronotope/VLN-v0", 1, KW, "octree")


def test_wrapped_vector_env_observations_and_final_info():
    venv = make_vector_env("chronotope/VLN-v0", 2, KW, ALL)
    obs, _ = venv.reset(seed=3)
    keys = {"depth", "occupancy", "octree_knn", "topology", "mem4nav", "pose", "objects", "range", "instruction"}
    assert keys <= set(obs)
    assert obs["depth"].shape == (2, 16, 16, 1) and obs["octree_knn"].shape == (2, 16, 6)
    assert venv.single_observation_space.contains({k: v[0] for k, v in obs.items()})
    assert (obs["octree_knn"][:, :, 5] > 0).any()  # the first frame already filled the octree
    # STOP ends both episodes: final_info is one dict per env (as NavVectorEnv gives it)
    _, _, term, _, info = venv.step(np.zeros(2, np.int64))
    assert term.all() and info["_final_info"].all()
    for i in range(2):
        assert "success" in final_info_row(info, i)
    venv.close()


def test_seeded_wrapped_envs_match():
    a = make_vector_env("chronotope/VLN-v0", 2, KW, "depth,topology")
    b = make_vector_env("chronotope/VLN-v0", 2, KW, "depth,topology")
    oa, _ = a.reset(seed=5)
    ob, _ = b.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(6):
        for k in oa:
            np.testing.assert_array_equal(oa[k], ob[k])
        act = rng.integers(1, 4, 2)
        oa, *_ = a.step(act)
        ob, *_ = b.step(act)


def test_expert_on_wrapped_envs_equals_the_batched_expert():
    """SyncVectorEnv sub-env i seeded seed + i is NavVectorEnv's sub-env i: the per-core experts must act
    exactly as the batched expert, step after step, so imitation sees the same labels with or without maps."""
    wrapped = make_vector_env("chronotope/VLN-v0", 3, KW, "depth,topology")
    native = make_vector_env("chronotope/VLN-v0", 3, KW)
    assert len(nav_cores(wrapped)) == 3 and len(nav_cores(native)) == 1
    wrapped.reset(seed=11)
    native.reset(seed=11)
    ew, en = expert_for(wrapped), expert_for(native)
    assert controllable_for(wrapped)().shape == (3,)
    for _ in range(25):
        aw, an = ew(), en()
        np.testing.assert_array_equal(aw, an)
        _, _, _, _, iw = wrapped.step(aw)
        _, _, _, _, i_n = native.step(an)
        np.testing.assert_allclose(iw["agent_pose"], i_n["agent_pose"])


def test_imitation_records_wrappers_and_eval_rebuilds_them(tmp_path):
    """In-process twin of the CLI test below: the run's config keeps the wrappers and evaluate() rebuilds them
    (the checkpoint's encoders expect the map key, so an env without the wrapper would not load)."""
    from chronotope.agents.evaluate import EvalConfig, evaluate
    from chronotope.agents.imitation import train_imitation

    cfg = TrainConfig(
        env="chronotope/VLN-v0",
        agent="gru",
        algo="bc",
        steps=32,
        num_envs=2,
        rollout_len=16,
        bptt_len=16,
        bc_epochs=1,
        wrappers="depth,topology",
        device="cpu",
        progress=False,
        out_dir=tmp_path,
        name="w",
        env_kwargs=json.dumps(KW),
    )
    train_imitation(cfg)
    run = tmp_path / "w"
    assert json.loads((run / "config.json").read_text())["wrappers"] == "depth,topology"
    summary = evaluate(EvalConfig(run=run, episodes=2, num_envs=2, env_kwargs=json.dumps({"max_episode_steps": 5})))
    assert summary["success"]["n"] == 2 and summary["steps"]["mean"] <= 5
    import torch

    data = torch.load(run / "checkpoint.pt", weights_only=False)
    assert any(k.startswith("encoder.encoders.topology") for k in data["model"])


@pytest.mark.slow
def test_train_records_wrappers_and_eval_rebuilds_them(tmp_path):
    """`chronotope train --wrappers` writes them into config.json; `chronotope eval --run` rebuilds the same
    env (the checkpoint's encoders expect the map keys, so a missing wrapper fails to load)."""
    args = [
        sys.executable,
        "-m",
        "chronotope.scripts.train",
        "--env",
        "chronotope/VLN-v0",
        "--agent",
        "gru",
        "--algo",
        "bc",
        "--steps",
        "64",
        "--num-envs",
        "2",
        "--rollout-len",
        "32",
        "--bptt-len",
        "16",
        "--bc-epochs",
        "1",
        "--wrappers",
        "depth,topology",
        "--device",
        "cpu",
        "--no-progress",
        "--out-dir",
        str(tmp_path),
        "--name",
        "w",
        "--env-kwargs",
        json.dumps(KW),
    ]
    subprocess.run(args, check=True, capture_output=True)
    run = tmp_path / "w"
    assert json.loads((run / "config.json").read_text())["wrappers"] == "depth,topology"
    subprocess.run(
        [sys.executable, "-m", "chronotope.scripts.eval", "--run", str(run), "--episodes", "2", "--num-envs", "2"],
        check=True,
        capture_output=True,
    )
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["success"]["n"] == 2 and "ndtw" in summary
    from chronotope.agents.evaluate import load_policy

    cfg, data, _ = load_policy(run)
    assert any(k.startswith("encoder.encoders.topology") for k in data["model"])
    assert cfg.wrappers == "depth,topology"
