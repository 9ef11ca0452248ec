"""Fault injection on run management, evaluation and env contracts (issue 18): every case here was observed to
lose, mix or silently bias data before it was fixed."""

import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from chronotope.agents.checkpoint import load_checkpoint, loads_env, save_checkpoint
from chronotope.agents.config import TrainConfig
from chronotope.agents.ppo.trainer import PPOTrainer
from chronotope.agents.runs import RunError, RunFolder, resolve_resume, truncate_progress
from chronotope.scripts.train import train

ENV_KW = json.dumps({"obs_mode": "state", "num_scenes": 1})


def _cfg(tmp_path, name="r", updates=2, **kw):
    base = dict(
        env="chronotope/PointNav-v0",
        agent="gru",
        steps=4 * 16 * updates,
        num_envs=4,
        rollout_len=16,
        bptt_len=8,
        epochs=1,
        minibatches=2,
        env_kwargs=ENV_KW,
        name=name,
        out_dir=tmp_path,
        progress=False,
        checkpoint_every=1,
        device="cpu",
    )
    base.update(kw)
    return TrainConfig(**base)


def _updates(run: Path) -> list[int]:
    return [json.loads(line)["update"] for line in (run / "progress.jsonl").read_text().splitlines()]


def _params(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _cli(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "chronotope.scripts.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def _train_args(tmp_path, name, steps=128, *extra):
    return (
        "train",
        "--env",
        "chronotope/PointNav-v0",
        "--agent",
        "gru",
        "--steps",
        steps,
        "--num-envs",
        "4",
        "--rollout-len",
        "16",
        "--bptt-len",
        "8",
        "--epochs",
        "1",
        "--checkpoint-every",
        "1",
        "--device",
        "cpu",
        "--name",
        name,
        "--out-dir",
        tmp_path,
        "--env-kwargs",
        ENV_KW,
        "--no-progress",
        *extra,
    )


# ---------------------------------------------------------------------------------------------- run folders
def test_a_locked_run_folder_is_refused(tmp_path):
    cfg = _cfg(tmp_path)
    with RunFolder(cfg):
        with pytest.raises(RunError, match=rf"in use by another training \(pid {os.getpid()}\)"):
            train(_cfg(tmp_path))
    assert not (tmp_path / "r" / "progress.jsonl").exists()  # the refused run wrote nothing


def test_concurrent_same_name_cli_runs_one_is_refused(tmp_path):
    first = subprocess.Popen(
        [sys.executable, "-m", "chronotope.scripts.cli", *map(str, _train_args(tmp_path, "x", 10**7))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        lock = tmp_path / "x" / ".lock"
        deadline = time.time() + 120
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert first.poll() is None and time.time() < deadline, "the first run did not start"
            time.sleep(0.2)
        second = _cli(*_train_args(tmp_path, "x"))
        assert second.returncode == 1
        err = second.stderr.strip().splitlines()
        assert len(err) == 1 and "in use by another training" in err[0] and str(first.pid) in err[0]
        assert first.poll() is None  # the first run was not disturbed
    finally:
        first.kill()
        first.wait()


def test_rerun_without_overwrite_is_refused_and_overwrite_replaces(tmp_path):
    train(_cfg(tmp_path))
    run = tmp_path / "r"
    before = (run / "checkpoint.pt").read_bytes()
    with pytest.raises(RunError, match="already holds a run; pass --overwrite"):
        train(_cfg(tmp_path, lr=1e-3))
    assert (run / "checkpoint.pt").read_bytes() == before and _updates(run) == [1, 2]
    train(_cfg(tmp_path, updates=1, overwrite=True))
    assert _updates(run) == [1]  # the old log is gone, not appended to
    assert load_checkpoint(run / "checkpoint.pt")["update"] == 1


def test_failed_start_leaves_no_run_folder(tmp_path):
    with pytest.raises(ValueError, match="unknown environment id"):
        train(_cfg(tmp_path, env="chronotope/Nope-v0"))
    assert not (tmp_path / "r").exists()


def test_resume_of_a_copy_continues_in_the_copy(tmp_path):
    train(_cfg(tmp_path, "orig", updates=1))
    orig = tmp_path / "orig"
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(orig, copy)
    snapshot = {p.name: p.read_bytes() for p in orig.iterdir() if p.is_file()}
    train(TrainConfig(resume=copy, steps=2 * 64, progress=False))
    assert {p.name: p.read_bytes() for p in orig.iterdir() if p.is_file()} == snapshot  # original untouched
    assert _updates(copy) == [1, 2] and load_checkpoint(copy / "checkpoint.pt")["update"] == 2
    saved = json.loads((copy / "config.json").read_text())
    assert Path(saved["out_dir"]) / saved["name"] == copy


def test_resume_honours_a_new_steps_or_refuses(tmp_path):
    train(_cfg(tmp_path, updates=1))
    run = tmp_path / "r"
    with pytest.raises(RunError, match="already finished"):
        resolve_resume(TrainConfig(resume=run))
    with pytest.raises(RunError, match="--steps 32 does not extend"):
        resolve_resume(TrainConfig(resume=run, steps=32))
    with pytest.raises(RunError, match=r"--lr 0.1 \(the run has 0.0003\)"):
        resolve_resume(TrainConfig(resume=run, steps=256, lr=0.1))
    train(TrainConfig(resume=run, steps=3 * 64, progress=False))
    assert _updates(run) == [1, 2, 3]
    assert json.loads((run / "config.json").read_text())["steps"] == 3 * 64


@pytest.mark.parametrize("algo", ["sb3-ppo", "recurrent-ppo", "bc", "dagger"])
def test_algorithms_without_exact_resume_refuse_it(tmp_path, algo):
    run = tmp_path / algo
    run.mkdir()
    (run / "config.json").write_text(json.dumps(TrainConfig(algo=algo).to_dict()))
    with pytest.raises(RunError, match=f"--algo {algo} runs cannot be resumed"):
        train(TrainConfig(resume=run))
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]


def test_resume_truncates_the_log_to_the_checkpoint_and_is_exact(tmp_path, monkeypatch):
    """A crash after update 3 with the checkpoint at update 2: the resumed log holds every update once, and the
    result equals an uninterrupted run's, episode-statistics window included."""
    ref = PPOTrainer(_cfg(tmp_path, "ref", updates=4, checkpoint_every=2))
    ref.train()
    crashed = PPOTrainer(_cfg(tmp_path, "c", updates=4, checkpoint_every=2))
    log = crashed._log

    def crash_after_logging(stats, sps):
        rec = log(stats, sps)
        if crashed.update == 3:
            raise RuntimeError("injected crash")
        return rec

    monkeypatch.setattr(crashed, "_log", crash_after_logging)
    with pytest.raises(RuntimeError, match="injected"):
        crashed.train()
    assert _updates(tmp_path / "c") == [1, 2, 3]
    resumed = PPOTrainer(_cfg(tmp_path, "c", updates=4, checkpoint_every=2))
    resumed.restore(tmp_path / "c" / "checkpoint.pt")
    assert _updates(tmp_path / "c") == [1, 2]
    resumed.train()
    assert _updates(tmp_path / "c") == [1, 2, 3, 4]
    assert torch.equal(_params(ref.model), _params(resumed.model))
    strip = [{k: v for k, v in r.items() if k != "sps"} for r in ref.history]
    assert strip == [{k: v for k, v in r.items() if k != "sps"} for r in resumed.history]


def test_sigterm_inside_a_rollout_finishes_the_update_saves_it_and_the_resume_is_exact(tmp_path, monkeypatch):
    """SIGTERM in the middle of update 2's rollout: training completes update 2, saves it (2 updates, 2 rollouts of
    steps) and stops; resuming to 4 updates equals an uninterrupted run."""
    ref = PPOTrainer(_cfg(tmp_path, "ref", updates=4, checkpoint_every=100))
    ref.train()
    tr = PPOTrainer(_cfg(tmp_path, "t", updates=4, checkpoint_every=100))
    act = tr.model.act  # patched on the model, which checkpoints hold as a state dict (the env is pickled whole)
    calls = {"n": 0}

    def act_then_signal(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 16 + 5:  # the 5th step of the second rollout
            os.kill(os.getpid(), signal.SIGTERM)
        return act(*args, **kwargs)

    monkeypatch.setattr(tr.model, "act", act_then_signal)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match="training interrupted"):
        tr.train()
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before  # handlers restored
    data = load_checkpoint(tmp_path / "t" / "checkpoint.pt")
    assert (data["update"], data["global_step"]) == (2, 2 * 4 * 16)
    assert _updates(tmp_path / "t") == [1, 2]
    assert calls["n"] == 2 * 16  # the second rollout was finished, no third one begun
    resumed = PPOTrainer(_cfg(tmp_path, "t", updates=4, checkpoint_every=100))
    resumed.restore(tmp_path / "t" / "checkpoint.pt")
    resumed.train()
    assert _updates(tmp_path / "t") == [1, 2, 3, 4]
    assert torch.equal(_params(ref.model), _params(resumed.model))


def test_truncate_progress_drops_a_torn_last_line(tmp_path):
    p = tmp_path / "progress.jsonl"
    p.write_text('{"update": 1}\n{"update": 2}\n{"update": 3}\n{"upd')
    truncate_progress(p, "update", 2)
    assert p.read_text() == '{"update": 1}\n{"update": 2}\n'


def test_first_checkpoint_comes_on_the_wall_clock(tmp_path, monkeypatch):
    tr = PPOTrainer(_cfg(tmp_path, updates=3, checkpoint_every=100, checkpoint_minutes=1e-9))
    saves = []
    save = tr.save
    monkeypatch.setattr(tr, "save", lambda: saves.append(tr.update) or save())
    tr.train()
    assert saves == [1, 2, 3]


def test_pickled_env_does_not_grow_with_the_task_caches():
    from chronotope.agents.envs import make_vector_env

    venv = make_vector_env("chronotope/ObjectNav-v0", 4, {"obs_mode": "state", "max_episode_steps": 5}, "", 0)
    venv.reset(seed=0)
    size0 = len(pickle.dumps(venv))
    rng = np.random.default_rng(0)
    for _ in range(100):  # ~80 episodes: the geodesic cache fills with many (scene, category) fields
        venv.step(rng.integers(1, 4, 4))
    assert len(venv.core.task._cache) > 20
    blob = pickle.dumps(venv)
    assert len(blob) < 1.2 * size0
    clone = pickle.loads(blob)
    acts = rng.integers(0, 4, (30, 4))
    for a in acts:  # the emptied caches refill with the same values: the clone steps exactly as the original
        o1, r1, t1, _, _ = venv.step(a)
        o2, r2, t2, _, _ = clone.step(a)
        assert np.array_equal(r1, r2) and np.array_equal(t1, t2)
        assert all(np.array_equal(o1[k], o2[k]) for k in o1)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_checkpoints_load_safely(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"format": "chronotope-checkpoint-v1", "x": _Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="not plain data"):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="posix.system|os.system"):
        loads_env(pickle.dumps(_Evil()))
    assert not (tmp_path / "pwned").exists()
    # a stale temporary file of a writer killed mid-write is cleaned up by the next save
    (tmp_path / ".ok.pt.tmp999999").write_bytes(b"torn")
    save_checkpoint(tmp_path / "ok.pt", {"a": np.arange(3), "b": {"c": torch.zeros(2)}})
    assert not (tmp_path / ".ok.pt.tmp999999").exists()
    assert load_checkpoint(tmp_path / "ok.pt")["a"].tolist() == [0, 1, 2]


# ---------------------------------------------------------------------------------------------- CLI errors
def test_cli_errors_are_one_line_and_debug_shows_the_traceback(tmp_path):
    res = _cli(*_train_args(tmp_path, "bad"), "--env", "chronotope/Nope-v0")
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown environment id 'chronotope/Nope-v0'" in lines[0]
    assert not (tmp_path / "bad").exists()
    res = _cli(*_train_args(tmp_path, "bad"), "--env", "chronotope/Nope-v0", "--debug")
    assert res.returncode == 1 and "Traceback" in res.stderr


# ---------------------------------------------------------------------------------------------- evaluation
def test_eval_refuses_zero_episodes_and_keeps_earlier_results(tmp_path):
    from chronotope.agents.evaluate import EvalConfig, evaluate

    train(_cfg(tmp_path, updates=1))
    run = tmp_path / "r"
    first = evaluate(EvalConfig(run=run, episodes=2, num_envs=2))
    assert "scene_id" not in first and "success" in first  # ids are not averaged
    assert "scene_id" in json.loads((run / "eval" / "episodes.jsonl").read_text().splitlines()[0])
    summary = (run / "eval" / "summary.json").read_text()
    res = _cli("eval", "--run", run, "--episodes", "0")
    assert res.returncode == 1 and "episodes must be a positive integer" in res.stderr
    assert (run / "eval" / "summary.json").read_text() == summary
    evaluate(EvalConfig(run=run, episodes=3, num_envs=2))
    (kept,) = (run / "eval" / "previous").iterdir()
    assert (kept / "summary.json").read_text() == summary
    assert json.loads((run / "eval" / "summary.json").read_text())["success"]["n"] == 3


def test_eval_shows_progress_and_says_where_it_wrote(tmp_path, capsys):
    from chronotope.agents.evaluate import EvalConfig
    from chronotope.scripts.eval import evaluate as eval_command

    train(_cfg(tmp_path, updates=1))
    run = tmp_path / "r"
    capsys.readouterr()
    eval_command(EvalConfig(run=run, episodes=3, num_envs=2, progress=True))
    res = capsys.readouterr()
    assert "eval" in res.err and "3/3" in res.err  # a tqdm bar over the episodes, on stderr
    assert f"wrote {(run / 'eval').resolve()}" in res.out and "3/3" not in res.out
    eval_command(EvalConfig(run=run, episodes=2, num_envs=2))  # default: no bar when stderr is not a terminal
    assert "2/2" not in capsys.readouterr().err


def test_eval_episodes_do_not_depend_on_the_number_of_envs(tmp_path):
    """Episode k is fixed by the seed: 2 or 3 parallel envs evaluate the same episodes, in the same order (the
    first episodes to finish would have favoured short ones, and the set changed with --num-envs)."""
    from chronotope.agents.evaluate import EvalConfig, evaluate

    train(_cfg(tmp_path, updates=1, env_kwargs=json.dumps({"obs_mode": "state", "num_scenes": 2})))
    run = tmp_path / "r"
    rows = {}
    for n in (2, 3):
        evaluate(EvalConfig(run=run, episodes=5, num_envs=n, out=tmp_path / f"e{n}"))
        rows[n] = [json.loads(line) for line in (tmp_path / f"e{n}" / "episodes.jsonl").read_text().splitlines()]
        traj = np.load(tmp_path / f"e{n}" / "trajectories.npz")
        assert len(traj["pose_index"]) == 6
    assert rows[2] == rows[3]
    assert len({(r["scene_id"], r["return"]) for r in rows[2]}) > 1  # different episodes, not one repeated


def test_eval_evaluates_sb3_runs(tmp_path, capsys):
    pytest.importorskip("stable_baselines3")
    from chronotope.agents.evaluate import EvalConfig, evaluate

    train(_cfg(tmp_path, "sb3", algo="sb3-ppo", agent="none", updates=1))
    capsys.readouterr()
    summary = evaluate(EvalConfig(run=tmp_path / "sb3", episodes=2, num_envs=2, progress=True))
    assert summary["success"]["n"] == 2 and "scene_id" not in summary
    assert "2/2" in capsys.readouterr().err  # the progress bar, as for PPO runs


def test_summary_leaves_out_id_fields():
    from chronotope.agents.evaluate import summarize_episodes

    eps = [{"success": 1.0, "scene_id": 3.0, "target_instance": 7.0, "phase": 2.0, "truncated": False}] * 2
    assert set(summarize_episodes(eps)) == {"success"}


# ---------------------------------------------------------------------------------------------- env contracts
def test_stepping_a_terminated_nav_env_raises():
    import gymnasium as gym

    import chronotope.envs  # noqa: F401

    env = gym.make("chronotope/PointNav-v0", obs_mode="state", num_scenes=1)
    env.reset(seed=0)
    _, _, terminated, _, _ = env.step(0)  # STOP ends the episode
    assert terminated
    with pytest.raises(RuntimeError, match="terminated: call reset"):
        env.step(1)
    env.reset(seed=1)
    env.step(1)  # a reset makes it steppable again
    env.close()


def test_stepping_a_closed_vector_env_raises():
    from chronotope.envs.nav.vector_env import NavVectorEnv

    venv = NavVectorEnv(2, obs_mode="state", num_scenes=1)
    venv.reset(seed=0)
    venv.step(np.array([1, 1]))
    venv.close()
    with pytest.raises(RuntimeError, match="closed"):
        venv.step(np.array([1, 1]))
    with pytest.raises(RuntimeError, match="closed"):
        venv.reset(seed=0)


def test_ppo_trains_an_arm_env(tmp_path):
    pytest.importorskip("mujoco")
    tr = PPOTrainer(_cfg(tmp_path, env="chronotope/Reach-v0", agent="none", env_kwargs="{}", num_envs=2, steps=32))
    assert "device" not in tr.env_kwargs
    tr.train()
    assert tr.update == 1


# ---------------------------------------------------------------------------------------------- map wrappers
@pytest.mark.parametrize("name", ["occupancy", "octree", "topology", "mem4nav"])
def test_map_content_moves_the_policy_features(name):
    """Two observations that differ only in the map key give clearly different features: the space's bounds
    do not scale the map away (the occupancy map declared 2**31 and moved features by 5e-9)."""
    from chronotope.agents.encoders import ObservationEncoder
    from chronotope.agents.envs import make_vector_env

    kw = {"obs_mode": "depth", "resolution": [32, 32]}
    plain = make_vector_env("chronotope/PointNav-v0", 1, kw)
    venv = make_vector_env("chronotope/PointNav-v0", 1, kw, name, 0)
    space = venv.single_observation_space
    (key,) = set(space.spaces) - set(plain.single_observation_space.spaces)
    plain.close()
    sub = space[key]
    if name == "occupancy":
        assert float(sub.high[0].max()) == 1.0 and float(sub.high[1].max()) == 1.0
    torch.manual_seed(0)
    enc = ObservationEncoder(space)
    obs, _ = venv.reset(seed=0)
    venv.close()
    base = {k: torch.as_tensor(v) for k, v in obs.items()}
    empty = dict(base, **{key: torch.zeros_like(base[key])})
    hi = np.where(np.isfinite(sub.high), sub.high, 1.0)
    full = dict(base, **{key: torch.as_tensor(np.broadcast_to(hi, base[key].shape).copy(), dtype=torch.float32)})
    with torch.no_grad():
        fe, ff = enc(empty), enc(full)
    assert float((fe - ff).abs().max()) > 1e-2 * max(1.0, float(fe.abs().max()))


def test_depth_wrapper_sees_the_ballet_dancers():
    """The depth wrapper renders what obs_mode="depth" shows, dancers included (it drew the empty room)."""
    import gymnasium as gym

    from chronotope.maps.wrappers import RenderedDepthWrapper

    kw = {"resolution": [32, 32], "num_scenes": 1}
    wrapped = RenderedDepthWrapper(gym.make("chronotope/Ballet-v0", obs_mode="state", **kw))
    ref = gym.make("chronotope/Ballet-v0", obs_mode="depth", **kw)
    ow, _ = wrapped.reset(seed=0)
    orf, _ = ref.reset(seed=0)
    for t in range(40):
        np.testing.assert_array_equal(ow["depth"], orf["depth"], err_msg=f"step {t}")
        ow, _, term, trunc, _ = wrapped.step(1 + t % 3)
        orf, *_ = ref.step(1 + t % 3)
        if term or trunc:
            break


def test_janus_reencode_methods_fit_its_state():
    """Inherited methods looked up the cached model's state keys (KeyError 'count'/'frames'): reset_rows and
    cache_frames now work on the window, the rest say why they do not apply."""
    from chronotope.memory.base import make_memory

    torch.manual_seed(0)
    m = make_memory("janus_reencode", 8, reencode_frames=3)
    x = torch.randn(2, 4, 8)
    _, state = m(x, m.initial_state(2))
    assert m.cache_frames(state) == [[0, 1, 2], [0, 1, 2]]
    cleared = m.reset_rows(state, torch.tensor([False, True]))
    assert cleared["valid"].tolist() == [[True] * 3, [False] * 3]
    y1, _ = m(x[:, :1], cleared)  # row 1 now reads only its new frame, as after an episode start
    y2, _ = m(x[:, :1], state, torch.tensor([[False], [True]]))
    torch.testing.assert_close(y1, y2)
    for call in (
        lambda: m.set_instruction(state, torch.zeros(2, 1, 4)),
        lambda: m.cache_lengths(state),
        lambda: m.attended_keys(state),
    ):
        with pytest.raises(NotImplementedError, match="janus_reencode"):
            call()


# ---------------------------------------------------------------------------------------------- kill -9
@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_matches_an_uninterrupted_run(tmp_path):
    """>= 20 SIGKILLs at random moments of a CLI training run (startup, rollout, update, checkpoint write),
    each followed by ``--resume``: the final checkpoint equals an uninterrupted run's and the log holds each
    update once."""
    updates = 100  # more than 20 short lives can finish: every kill lands in a live run
    steps = 4 * 16 * updates
    ref = subprocess.Popen(
        [sys.executable, "-m", "chronotope.scripts.cli", *map(str, _train_args(tmp_path, "ref", steps))],
        stdout=subprocess.DEVNULL,
    )
    t0 = time.time()
    while not (tmp_path / "ref" / "checkpoint.pt").exists() and ref.poll() is None:
        time.sleep(0.05)
    first = time.time() - t0  # start-up (imports, trainer) up to the first checkpoint
    assert ref.wait() == 0
    run = tmp_path / "k"
    rng = random.Random(0)
    kills = resumes = 0
    while True:
        if (run / "checkpoint.pt").exists():
            args = ("train", "--resume", run, "--no-progress")
            resumes += 1
        else:  # killed before the first checkpoint (or not started): start again
            args = (*_train_args(tmp_path, "k", steps), "--overwrite")
        proc = subprocess.Popen(
            [sys.executable, "-m", "chronotope.scripts.cli", *map(str, args)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if kills < 20:
            # half the kills during start-up, half in training (rollouts, updates, checkpoint writes)
            time.sleep(rng.uniform(0.2, first) if kills % 2 else rng.uniform(first, first + 3.0))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        err = proc.communicate()[1]
        if proc.returncode == 0 or (proc.returncode == 1 and "already finished" in err):
            break
        assert proc.returncode == -signal.SIGKILL, err
    a = load_checkpoint(tmp_path / "ref" / "checkpoint.pt")
    b = load_checkpoint(run / "checkpoint.pt")
    assert a["update"] == b["update"] == updates
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert _updates(run) == list(range(1, updates + 1))
    assert kills >= 20 and resumes >= 8
