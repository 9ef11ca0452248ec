"""Training benchmark: env steps per second of our sequence PPO against stable-baselines3 on the same env.

Cases, all on the same batched vector env (``TargetSequence-v0`` in ``state`` mode by default), with the same
``num_envs``, rollout length (SB3 ``n_steps``), epochs and minibatch size (in samples):

* ``ours-none`` (our PPO, memory core ``none``) vs ``sb3-ppo`` (PPO, ``MultiInputPolicy``): the baseline of
  the ``none`` row and of the ``ratio`` column.
* ``ours-lstm`` and ``ours-hcam`` vs ``sb3-recurrent-ppo`` (sb3-contrib ``RecurrentPPO``,
  ``MultiInputLstmPolicy``).

Network sizes are matched by giving SB3 our own observation encoder as its features extractor
(:class:`OursExtractor`: per-key MLPs -> ``Linear(., hidden)`` + ReLU, then for PPO our shared
``Linear(hidden, hidden)`` + ReLU layer before the heads), no extra MLP layers (``net_arch=[]``) and one shared
trunk, so PPO and ``ours-none`` have exactly the same parameters; RecurrentPPO gets one shared LSTM of ``hidden``
units (``shared_lstm=True, enable_critic_lstm=False``), the same as our ``lstm`` core, and a ``hidden`` layer per
head after it (``net_arch=dict(pi=[hidden], vf=[hidden])``: the weights of our shared layer over the LSTM output
and the features, 2 x hidden x hidden, though SB3 cannot feed the features around the LSTM). What
still differs is the algorithms' own work: SB3 PPO shuffles single steps into minibatches, ours whole
``bptt_len`` sequences; RecurrentPPO cuts and pads sequences at episode starts, ours replays stored chunk
states; SB3's ``learn`` also runs its callbacks and logger.

Why ``TargetSequence-v0``: its episodes never end early (they last ``max_episode_steps``), so every case pays
the same env work per step whatever its policy does. In ``PointNav-v0`` a STOP action ends the episode and
the reset solves a geodesic distance field (fast marching, ~8 ms: some 20 agent-steps' worth), so the env cost of
an update follows how often each learner's current policy happens to stop -- it measures policy behaviour,
not trainer speed (the ``episodes`` column shows it; pass ``--env chronotope/PointNav-v0`` to see).

The ``env s`` column is the time spent inside the vector env (auto-resets included); ``learner s`` is the
rest of an update, the part the trainers control, and ``update s`` the gradient phase alone.

Every case is built and warmed up once, then the cases are timed round-robin, one update each per round, so
drifting load on the shared cores hits them alike. Absolute rates are context only (2 shared, noisy cores).

    python -m chronotope.scripts.bench.train --quick
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch

from chronotope.scripts.bench.common import machine_info, print_table, quick_settings, write_results

BASELINES = {"ours-none": "sb3-ppo", "ours-lstm": "sb3-recurrent-ppo", "ours-hcam": "sb3-recurrent-ppo"}
"""Which SB3 case each of our cases is compared with."""


@dataclass
class Config:
    quick: bool = False
    """Fewer envs, shorter rollouts and fewer rounds (a smoke run; ratios are noisier)."""
    cases: tuple[str, ...] = ("ours-none", "sb3-ppo", "ours-lstm", "ours-hcam", "sb3-recurrent-ppo")
    """Cases to time (see the module docstring); an ``ours-*`` case is compared with its SB3 case when present."""
    env: str = "chronotope/TargetSequence-v0"
    """Environment id (the default's per-step cost does not depend on the policy; see the module docstring)."""
    env_kwargs: str = '{"obs_mode": "state", "num_scenes": 1}'
    """JSON object of env keyword arguments."""
    num_envs: int = 16
    """Environments stepped in one batch (quick: 4)."""
    n_steps: int = 64
    """Rollout length per env and update (quick: 16)."""
    epochs: int = 4
    """PPO epochs per update (quick: 2)."""
    minibatches: int = 4
    """Minibatches per epoch; SB3's ``batch_size`` is ``num_envs * n_steps / minibatches``."""
    bptt_len: int = 16
    """Our sequence length (quick: 8)."""
    hidden: int = 128
    """Encoder output width = LSTM size = SB3 features_dim / lstm_hidden_size."""
    rounds: int = 5
    """Timed updates per case, round-robin (quick: 3)."""
    threads: int = 1
    """torch threads (1: the trainers' CPU default)."""
    seed: int = 0
    """Seed of every case."""
    device: str = "cpu"
    """torch device of the policies."""
    out_dir: str = "runs/bench"
    """Where ``train.json`` / ``train.md`` are written."""

    def resolved(self) -> Config:
        """The effective settings (``quick`` shrinks the defaults it names)."""
        if not self.quick:
            return self
        pick = {
            "num_envs": 4, "n_steps": 16, "epochs": 2, "bptt_len": 8, "rounds": 3,
        }  # fmt: skip
        return quick_settings(self, pick)


def _sb3_extractor_class():
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    from chronotope.agents.encoders import SQRT2, ObservationEncoder, init_linear

    class OursExtractor(BaseFeaturesExtractor):
        """Our ``ObservationEncoder`` + ``proj`` (the trunk of ``ActorCritic``) as an SB3 features extractor."""

        def __init__(self, observation_space, hidden: int = 128, trunk: bool = True) -> None:
            super().__init__(observation_space, features_dim=hidden)
            self.encoder = ObservationEncoder(observation_space)
            layers = [init_linear(torch.nn.Linear(self.encoder.out_dim, hidden), SQRT2), torch.nn.ReLU()]
            if trunk:  # ActorCritic's layer before the heads (the ``none`` core: over the features alone)
                layers += [init_linear(torch.nn.Linear(hidden, hidden), SQRT2), torch.nn.ReLU()]
            self.proj = torch.nn.Sequential(*layers)

        def forward(self, obs):  # obs leaves [B, ...] -> [B, hidden]
            return self.proj(self.encoder(obs))

    return OursExtractor


class _EnvTimer:
    """Accumulates the seconds spent in a vector env's ``step`` (auto-resets included) and the episodes ended."""

    def __init__(self, venv) -> None:
        self.seconds = 0.0
        self.episodes = 0
        inner = venv.step

        def timed_step(actions):
            t0 = time.perf_counter()
            out = inner(actions)
            self.seconds += time.perf_counter() - t0
            self.episodes += int((out[2] | out[3]).sum())
            return out

        venv.step = timed_step


class _OursCase:
    def __init__(self, cfg: Config, core: str) -> None:
        from chronotope.agents.config import TrainConfig
        from chronotope.agents.ppo.trainer import PPOTrainer

        tc = TrainConfig(
            env=cfg.env, agent=core, steps=10**9, seed=cfg.seed, num_envs=cfg.num_envs, rollout_len=cfg.n_steps,
            bptt_len=cfg.bptt_len, epochs=cfg.epochs, minibatches=cfg.minibatches, hidden=cfg.hidden,
            env_kwargs=cfg.env_kwargs, device=cfg.device, torch_threads=cfg.threads, progress=False,
            memory_cfg=json.dumps({"hidden_size": cfg.hidden}) if core == "lstm" else "{}",
        )  # fmt: skip
        self.trainer = PPOTrainer(tc)
        self.model = self.trainer.model
        self.env_timer = _EnvTimer(self.trainer.venv)
        self.update_s = 0.0

    def update(self) -> None:
        tr = self.trainer
        self.env_timer.seconds = 0.0
        self.env_timer.episodes = 0
        batch = tr.rollout()
        t0 = time.perf_counter()
        tr.train_step(batch)
        self.update_s = time.perf_counter() - t0
        tr.update += 1


class _SB3Case:
    def __init__(self, cfg: Config, recurrent: bool) -> None:
        from chronotope.agents.envs import make_vector_env
        from chronotope.agents.sb3 import SB3VecEnv, sb3_logger

        venv = SB3VecEnv(make_vector_env(cfg.env, cfg.num_envs, json.loads(cfg.env_kwargs)))
        venv.seed(cfg.seed)
        self.env_timer = _EnvTimer(venv.venv)
        kw: dict[str, Any] = dict(
            features_extractor_class=_sb3_extractor_class(), features_extractor_kwargs={"hidden": cfg.hidden},
            net_arch=[], share_features_extractor=True, activation_fn=torch.nn.ReLU,
        )  # fmt: skip
        common = dict(
            n_steps=cfg.n_steps, batch_size=max(1, cfg.num_envs * cfg.n_steps // cfg.minibatches),
            n_epochs=cfg.epochs, learning_rate=3e-4, ent_coef=0.01, clip_range=0.2, seed=cfg.seed,
            device=cfg.device, verbose=0,
        )  # fmt: skip
        if recurrent:
            from sb3_contrib import RecurrentPPO

            kw.update(lstm_hidden_size=cfg.hidden, n_lstm_layers=1, shared_lstm=True, enable_critic_lstm=False)
            kw.update(features_extractor_kwargs={"hidden": cfg.hidden, "trunk": False})
            kw.update(net_arch=dict(pi=[cfg.hidden], vf=[cfg.hidden]))
            self.model_obj = RecurrentPPO("MultiInputLstmPolicy", venv, policy_kwargs=kw, **common)
        else:
            from stable_baselines3 import PPO

            self.model_obj = PPO("MultiInputPolicy", venv, policy_kwargs=kw, **common)
        # log nothing: SB3's default logger would leave an empty $TMPDIR/SB3-<date> folder per learn() call
        self.model_obj.set_logger(sb3_logger(None))
        self.model = self.model_obj.policy
        self.steps = cfg.num_envs * cfg.n_steps
        self.update_s = 0.0
        inner = self.model_obj.train

        def timed_train() -> None:  # instrumentation only: splits an update into rollout and gradient phase
            t0 = time.perf_counter()
            inner()
            self.update_s = time.perf_counter() - t0

        self.model_obj.train = timed_train
        self._first = True

    def update(self) -> None:
        self.env_timer.seconds = 0.0
        self.env_timer.episodes = 0
        self.model_obj.learn(self.steps, reset_num_timesteps=self._first)
        self._first = False


def _make(cfg: Config, name: str):
    if name.startswith("ours-"):
        return _OursCase(cfg, name.removeprefix("ours-"))
    if name == "sb3-ppo":
        return _SB3Case(cfg, recurrent=False)
    if name == "sb3-recurrent-ppo":
        return _SB3Case(cfg, recurrent=True)
    valid = ["ours-<core>", "sb3-ppo", "sb3-recurrent-ppo"]
    raise ValueError(f"unknown benchmark case {name!r}; valid: {valid}")


def run(cfg: Config) -> dict:
    """Times every case and prints steps/s with ratios against the matching SB3 case."""
    cfg = cfg.resolved()
    for k in ("num_envs", "n_steps", "epochs", "minibatches", "bptt_len", "hidden", "rounds", "threads"):
        if getattr(cfg, k) <= 0:
            raise ValueError(f"{k} must be positive, got {getattr(cfg, k)!r}")
    if not cfg.cases:
        raise ValueError("cases is empty")
    torch.set_num_threads(cfg.threads)
    steps = cfg.num_envs * cfg.n_steps
    built = {}
    for name in cfg.cases:
        built[name] = case = _make(cfg, name)
        case.update()  # warm-up (first rollout, optimiser state, lazy inits)
        torch.set_num_threads(cfg.threads)  # a trainer may have changed it
    wall: dict[str, list[float]] = {n: [] for n in cfg.cases}
    upd: dict[str, list[float]] = {n: [] for n in cfg.cases}
    env: dict[str, list[float]] = {n: [] for n in cfg.cases}
    episodes: dict[str, list[int]] = {n: [] for n in cfg.cases}
    for _ in range(cfg.rounds):
        for name, case in built.items():
            t0 = time.perf_counter()
            case.update()
            wall[name].append(time.perf_counter() - t0)
            upd[name].append(case.update_s)
            env[name].append(case.env_timer.seconds)
            episodes[name].append(case.env_timer.episodes)
    results: dict[str, Any] = {"config": cfg, "steps_per_update": steps, "cases": {}}
    for name in cfg.cases:
        w, u = statistics.median(wall[name]), statistics.median(upd[name])
        # the learner's own time: everything but env stepping, per update (median of the per-update values)
        own = statistics.median(a - e for a, e in zip(wall[name], env[name]))
        n_params = sum(p.numel() for p in built[name].model.parameters())
        results["cases"][name] = {
            "sps": steps / w, "update_s": u, "rollout_s": w - u, "env_s": statistics.median(env[name]),
            "learner_s": own, "params": n_params, "samples_s": wall[name],
            "episodes": statistics.median(episodes[name]),
        }  # fmt: skip
    rows = []
    for name in cfg.cases:
        r = results["cases"][name]
        base = BASELINES.get(name)
        if base in results["cases"]:
            b = results["cases"][base]
            r["vs"] = base
            r["ratio"] = r["sps"] / b["sps"]
            r["update_ratio"] = b["update_s"] / r["update_s"]
            r["learner_ratio"] = b["learner_s"] / r["learner_s"]
        rows.append([name, r["params"], r["sps"], r["episodes"], r["env_s"], r["learner_s"], r["update_s"],
                     r.get("vs", "-"), r.get("ratio", "-"), r.get("learner_ratio", "-"),
                     r.get("update_ratio", "-")])  # fmt: skip
    info = machine_info()
    title = (
        f"Training throughput, {cfg.env} {cfg.env_kwargs}, {cfg.num_envs} envs x {cfg.n_steps} steps, "
        f"{cfg.epochs} epochs x {cfg.minibatches} minibatches ({info['cpu']}, {cfg.threads} torch thread(s))"
    )
    cols = ["case", "params", "env steps/s", "episodes", "env s", "learner s", "update s", "vs", "ratio steps/s",
            "ratio learner", "ratio update"]  # fmt: skip
    md = print_table(title, cols, rows)
    md += (
        f"\nMedians of {cfg.rounds} round-robin updates, seconds per update. episodes: episodes ended per update "
        "(each one costs a reset); env s: time inside the vector env's step (auto-resets included); learner s: the "
        "rest of an update (policy in the rollout, buffers, GAE, gradient phase); update s: the gradient phase "
        "alone. Ratios are ours over SB3 as speed (>1: ours faster): steps/s, SB3 learner s / ours, SB3 update s / "
        "ours. "
        "Shared, noisy CPU: absolute numbers are context only.\n"
    )
    print(md.splitlines()[-1])
    results["markdown"] = md
    write_results("train", results, md, cfg.out_dir)
    return results


def reading(result: dict) -> str:
    """The page's reading of ``run``'s results: each of our trainers against its SB3 baseline, and the env's
    share of an update.

    Generated from the numbers, so a re-run keeps the text and the tables consistent; the suite puts it on
    ``docs/BENCHMARKS.md`` next to this module's tables.
    """
    cases = result["cases"]
    s = ""
    for ours, c in cases.items():
        if "ratio" in c:
            s += f"{ours} runs at {c['ratio']:.2f}x {c['vs']}'s env steps/s (learner part {c['learner_ratio']:.2f}x). "
    env_share = statistics.median(c["env_s"] / (c["env_s"] + c["learner_s"]) for c in cases.values())
    s += (
        f"Both sides step the same vector env, which takes {100 * env_share:.0f}% of an update here (median over "
        "cases), so steps/s ratios are pulled towards 1; the learner columns isolate what the trainers control. "
        "The default env is TargetSequence because its episodes never end early: where a STOP ends the episode "
        "(PointNav), every reset costs a geodesic solve and the ratio measures how often each policy stops. "
    )
    c = cases.get("ours-none", {})
    if "ratio" in c:
        s += (
            f"Target our PPO >= 1.0x SB3 PPO: {'met' if c['ratio'] >= 1 else 'not met'} ({c['ratio']:.2f}x; "
            "differences of a few percent are within this machine's noise)."
        )
    return s


if __name__ == "__main__":
    import tyro

    run(tyro.cli(Config))
