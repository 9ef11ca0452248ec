"""Minari demonstration datasets: record, load with Minari, replay exactly; resume; refusals; BC from a dataset."""

import json
import subprocess
import sys

import numpy as np
import pytest

from chronotope.agents import datasets as ds
from chronotope.agents.config import TrainConfig
from chronotope.agents.datasets import DatasetConfig, DatasetRollouts, record_dataset

minari = pytest.importorskip("minari")


@pytest.fixture(autouse=True)
def minari_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def _cfg(env, policy, kwargs, name="chronotope/test-v0", **kw):
    base = {"episodes": 3, "num_envs": 2, "demand_episodes": 0, "progress": False}
    return DatasetConfig(env=env, policy=policy, name=name, env_kwargs=json.dumps(kwargs), **{**base, **kw})


def _assert_replays(name: str) -> None:
    """Every stored episode, replayed from its seed in the env Minari recovers, gives the stored data exactly."""
    dataset = minari.load_dataset(name)
    env = dataset.recover_environment()
    seeds = [int(m["seed"]) for m in dataset.storage.get_episode_metadata(range(dataset.total_episodes))]
    for ep, seed in zip(dataset.iterate_episodes(), seeds):
        obs, _ = env.reset(seed=seed)
        for k in obs:
            np.testing.assert_array_equal(obs[k], ep.observations[k][0], err_msg=f"{name} episode {ep.id} {k}")
        for t, action in enumerate(ep.actions):
            obs, reward, term, trunc, _ = env.step(action)
            for k in obs:
                np.testing.assert_array_equal(obs[k], ep.observations[k][t + 1], err_msg=f"episode {ep.id} {k} t={t}")
            assert (reward, term, trunc) == (ep.rewards[t], ep.terminations[t], ep.truncations[t])
        assert ep.terminations[-1] or ep.truncations[-1]
    env.close()


ROUND_TRIPS = {
    "nav-rgbd": ("chronotope/PointNav-v0", "expert", {"obs_mode": "rgbd", "resolution": [16, 16], "num_scenes": 1}),
    "memory": ("chronotope/ObjectRecall-v0", "perfect", {"obs_mode": "state", "num_scenes": 1, "delay": 2}),
    "vln": ("chronotope/VLN-v0", "expert", {"obs_mode": "state", "num_scenes": 1}),
    "arm": ("chronotope/CueRecallPick-v0", "memoryless", {}),
}


@pytest.mark.parametrize("family", sorted(ROUND_TRIPS))
def test_round_trip_replays_exactly(family):
    env, policy, kwargs = ROUND_TRIPS[family]
    dataset = record_dataset(_cfg(env, policy, kwargs))
    assert dataset.total_episodes == 3
    assert sorted(int(m["seed"]) for m in dataset.storage.get_episode_metadata(range(3))) == [0, 1, 2]
    ep = dataset[0]
    assert set(ep.observations) == set(dataset.observation_space.spaces)
    assert len(ep.infos["controllable"]) == len(ep) + 1 and not ep.infos["controllable"][-1]
    assert "success" in ep.infos and len(ep.infos["success"]) == len(ep) + 1
    if family == "nav-rgbd":
        assert ep.observations["rgb"].dtype == np.uint8 and ep.observations["rgb"].shape[1:] == (16, 16, 3)
    _assert_replays("chronotope/test-v0")


def test_metadata_holds_policy_seeds_versions_and_memory_demand():
    env, policy, kwargs = ROUND_TRIPS["memory"]
    record_dataset(_cfg(env, policy, kwargs, demand_episodes=2, seed=5))
    info = ds.dataset_info("chronotope/test-v0")
    assert info["complete"] and info["settings"]["policy"] == "perfect" and info["seeds"] == [5, 7]
    assert {"chronotope", "minari", "gymnasium"} <= set(info["versions"])
    demand = info["memory_demand"]
    assert {"memoryless_bound", "perfect", "cue_to_query_span"} <= set(demand) and demand["metric"] == "success"
    assert info["recorded"]["episodes"] == 3 and 0.0 <= info["recorded"]["success"] <= 1.0
    meta = minari.load_dataset("chronotope/test-v0").storage.metadata
    assert meta["algorithm_name"] == "chronotope/perfect"


def test_an_existing_dataset_is_never_overwritten():
    env, policy, kwargs = ROUND_TRIPS["memory"]
    record_dataset(_cfg(env, policy, kwargs))
    with pytest.raises(ValueError, match="already exists.*never overwritten"):
        record_dataset(_cfg(env, "memoryless", kwargs))
    assert ds.dataset_info("chronotope/test-v0")["settings"]["policy"] == "perfect"


def test_an_interrupted_recording_continues(monkeypatch):
    env, policy, kwargs = ROUND_TRIPS["memory"]
    real = ds._nav_episodes

    def interrupted(*args):
        for i, ep in enumerate(real(*args)):
            if i == 2:
                raise KeyboardInterrupt
            yield ep

    monkeypatch.setattr(ds, "_nav_episodes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        record_dataset(_cfg(env, policy, kwargs, episodes=5))
    partial = minari.load_dataset("chronotope/test-v0")
    assert partial.total_episodes == 2 and not ds.dataset_info("chronotope/test-v0")["complete"]
    monkeypatch.setattr(ds, "_nav_episodes", real)
    with pytest.raises(ValueError, match="unfinished recording with other settings.*policy"):
        record_dataset(_cfg(env, "memoryless", kwargs, episodes=5))
    dataset = record_dataset(_cfg(env, policy, kwargs, episodes=5))
    seeds = sorted(int(m["seed"]) for m in dataset.storage.get_episode_metadata(range(dataset.total_episodes)))
    assert seeds == [0, 1, 2, 3, 4] and ds.dataset_info("chronotope/test-v0")["complete"]
    _assert_replays("chronotope/test-v0")


def test_ctrl_c_during_a_write_keeps_each_episode_once(monkeypatch):
    """A Ctrl-C held back during a write is raised after it: the written batch must not be written again."""
    env, policy, kwargs = ROUND_TRIPS["memory"]
    real = ds._flush

    def write_then_interrupt(dataset, episodes):
        real(dataset, episodes)
        raise KeyboardInterrupt

    monkeypatch.setattr(ds, "_flush", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        record_dataset(_cfg(env, policy, kwargs, episodes=4))
    monkeypatch.setattr(ds, "_flush", real)
    dataset = record_dataset(_cfg(env, policy, kwargs, episodes=4))
    seeds = [int(m["seed"]) for m in dataset.storage.get_episode_metadata(range(dataset.total_episodes))]
    assert sorted(seeds) == [0, 1, 2, 3]


def test_bad_values_are_named():
    with pytest.raises(ValueError, match="'oracle'"):
        _cfg("chronotope/PointNav-v0", "oracle", {}).validate()
    with pytest.raises(ValueError, match="'objectrecall'.*-v<version>"):
        _cfg("chronotope/PointNav-v0", "expert", {}, name="objectrecall").validate()
    with pytest.raises(ValueError, match="'perfect' needs a memory task"):
        record_dataset(_cfg("chronotope/PointNav-v0", "perfect", {"obs_mode": "state", "num_scenes": 1}))
    with pytest.raises(ValueError, match="--algo bc only"):
        TrainConfig(algo="dagger", dataset="chronotope/test-v0").validate()


def test_cli_names_a_bad_policy(minari_dir):
    out = subprocess.run(
        [sys.executable, "-m", "chronotope.scripts.cli", "dataset", "--env", "chronotope/PointNav-v0",
         "--policy", "oracle", "--episodes", "1", "--name", "chronotope/x-v0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode != 0 and "'oracle'" in out.stderr and "expert" in out.stderr


def test_stored_rollouts_have_the_online_layout():
    env, policy, kwargs = ROUND_TRIPS["memory"]
    dataset = record_dataset(_cfg(env, policy, kwargs, episodes=4))
    source = DatasetRollouts("chronotope/test-v0", num_envs=2, rollout_len=16)
    rollout, _ = source.collect()
    assert rollout["labels"].shape == (16, 2) and rollout["obs"]["pose"].shape == (16, 2, 3)
    assert rollout["starts"][0].all()  # every lane starts at a fresh episode
    episodes = iter(dataset.iterate_episodes())
    for lane in range(2):  # lanes run through the stored episodes in order, the last one cut at the lane's end
        labels, cues, masks, starts = [], [], [], []
        while len(labels) < 16:
            ep = next(episodes)
            k = min(len(ep), 16 - len(labels))
            labels += list(ep.actions[:k])
            cues += list(ep.observations["cue"][:k])
            masks += list(ep.infos["controllable"][:k])
            starts += [True] + [False] * (k - 1)
        np.testing.assert_array_equal(rollout["labels"][:, lane].numpy(), labels)
        np.testing.assert_array_equal(rollout["obs"]["cue"][:, lane].numpy(), np.stack(cues))
        np.testing.assert_array_equal(rollout["mask"][:, lane].numpy(), masks)
        np.testing.assert_array_equal(rollout["starts"][:, lane].numpy(), starts)


def test_bc_trains_from_a_stored_dataset(tmp_path):
    env, policy, kwargs = ROUND_TRIPS["memory"]
    record_dataset(_cfg(env, "expert", kwargs, episodes=4))
    from chronotope.agents.imitation import train_imitation

    cfg = TrainConfig(
        algo="bc", agent="gru", dataset="chronotope/test-v0", steps=2 * 2 * 64, num_envs=2, rollout_len=64,
        bptt_len=16, bc_epochs=2, out_dir=tmp_path, name="bc", progress=False,
    )  # fmt: skip
    hist = train_imitation(cfg)
    assert len(hist) == 1 and hist[0]["step"] == 256 and hist[0]["dataset_episodes_used"] >= 4
    assert np.isfinite(hist[0]["loss"])  # the recall steps (the controllable ones) are in the 64-step lanes
    saved = json.loads((tmp_path / "bc" / "config.json").read_text())
    assert (saved["env"], json.loads(saved["env_kwargs"]), saved["dataset"]) == (env, kwargs, "chronotope/test-v0")
    with pytest.raises(ValueError, match="differs from the env of dataset"):
        train_imitation(TrainConfig(algo="bc", env="chronotope/Ballet-v0", dataset="chronotope/test-v0"))
