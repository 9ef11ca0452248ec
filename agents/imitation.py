"""Imitation learning from an oracle: behaviour cloning, then DAgger (Ross et al. 2011).

The oracle is found from the environment: a batched Chronotope nav env exposes its core, and
:func:`expert_for` returns the task's expert (``Task.expert()``: the shortest-path follower, or the memory tasks'
perfect-memory oracle). Data are whole sequences (``rollout_len`` steps per environment) with episode starts, so
memory cores train on the same sequences they will act on; the memory state at each sequence start is stored
as in sequence PPO. Iteration 0 is behaviour cloning (the expert acts); DAgger iteration i lets the learner act
with probability ``1 - 0.5**i`` while the expert labels every visited state; the dataset aggregates.

With ``--dataset NAME`` behaviour cloning reads its rollouts from a stored Minari dataset instead
(:class:`~chronotope.agents.datasets.DatasetRollouts`, recorded by ``chronotope dataset``): the same layout,
labelled by the recorded actions, at the same budget of transitions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np
import torch

from chronotope.agents.checkpoint import save_checkpoint
from chronotope.agents.config import TrainConfig
from chronotope.agents.envs import make_vector_env, nav_cores
from chronotope.agents.evaluate import ModelPolicy
from chronotope.agents.memory_span import controllable_for
from chronotope.agents.policy import ActorCritic, obs_to_torch
from chronotope.agents.ppo.trainer import _rng_state, _stack_time, seed_everything
from chronotope.agents.state_utils import StateBatcher, split_sequences
from chronotope.envs.rollout import run_episodes
from chronotope.envs.vector_info import final_info_row, finished_rows


def expert_for(venv) -> Callable[[], np.ndarray]:
    """The oracle of a batched Chronotope env (or a ``SyncVectorEnv`` of single ones, e.g. with map wrappers):
    a callable returning expert actions [N] for the current state."""
    cores = nav_cores(venv)
    if not cores:
        raise ValueError(
            f"imitation needs an environment with an oracle; {venv.unwrapped!r} has none (use a chronotope nav id)"
        )
    experts = [_core_expert(core) for core in cores]
    if len(experts) == 1:
        return experts[0]
    return lambda: np.concatenate([e() for e in experts])


def _core_expert(core) -> Callable[[], np.ndarray]:
    expert = core.task.expert()  # shortest-path follower, or the memory tasks' perfect-memory oracle
    return lambda: expert.act(core)


class OracleRollouts:
    """Rollouts collected online from ``venv``: the task's oracle labels every visited state and acts with
    probability ``beta``, the learner (sampled actions) otherwise. Every rollout starts at fresh episodes, so the
    memory states of its sequences can be recomputed by the network being fitted (states saved at collection time
    would be those of the network that collected: stale from the next iteration on)."""

    def __init__(self, venv, cfg: TrainConfig, device) -> None:
        self.venv, self.cfg, self.device = venv, cfg, device
        self.observation_space, self.action_space = venv.single_observation_space, venv.single_action_space
        self.expert = expert_for(venv)
        self.controllable = controllable_for(venv)
        self.rng = np.random.default_rng(cfg.seed)
        self.collected = 0

    @torch.no_grad()
    def collect(self, model, beta: float) -> tuple[dict, list[dict]]:
        """One rollout ``{"obs", "labels", "starts", "mask"}`` ([T, N, ...]) and its finished episodes' infos."""
        venv, device, n, t_len = self.venv, self.device, self.cfg.num_envs, self.cfg.rollout_len
        # Rollout k resets lane i with seed + k * N + i (the vector env seeds lane i with seed + i): every rollout's
        # episodes are new (with seed + k, lane i of rollout k was lane i + 1 of rollout k - 1).
        obs, _ = venv.reset(seed=self.cfg.seed + self.collected * n)
        self.collected += 1
        state = model.initial_state(n, device)
        start = np.ones(n, bool)
        obs_buf, labels, starts, masks, episodes = [], [], [], [], []
        for _t in range(t_len):
            label = self.expert()
            masks.append(self.controllable())
            o1 = obs_to_torch(obs, device, time_dim=True)
            dist, _, state = model(o1, state, torch.as_tensor(start, device=device)[:, None])
            # The learner samples, as in evaluation and in the learner-only curve: one action rule.
            learner = dist.sample()[:, 0].cpu().numpy()
            act = np.where(self.rng.random(n) < beta, label, learner)
            obs_buf.append(obs)
            labels.append(label)
            starts.append(start.copy())
            obs, _, term, trunc, info = venv.step(act)
            start = np.asarray(term) | np.asarray(trunc)
            episodes += [final_info_row(info, i) for i in finished_rows(info)]
        rollout = {
            "obs": _stack_time(obs_buf, "cpu"),
            "labels": torch.as_tensor(np.stack(labels)),
            "starts": torch.as_tensor(np.stack(starts)),
            "mask": torch.as_tensor(np.stack(masks)),
        }
        return rollout, episodes

    def close(self) -> None:
        self.venv.close()


def rollout_source(cfg: TrainConfig, device):
    """Where imitation's rollouts come from: the stored dataset ``cfg.dataset`` (its recorded actions are the
    labels) or the env's oracle online. Both give ``collect(model, beta) -> (rollout, episode infos)``."""
    if cfg.dataset is not None:
        from chronotope.agents.datasets import DatasetRollouts

        return DatasetRollouts(cfg.dataset, cfg.num_envs, cfg.rollout_len)
    venv = make_vector_env(cfg.env, cfg.num_envs, cfg.env_kwargs_dict(), cfg.wrappers, cfg.seed)
    return OracleRollouts(venv, cfg, device)


def train_imitation(cfg: TrainConfig) -> list[dict[str, float]]:
    from chronotope.agents.datasets import resolve_dataset_config

    cfg = resolve_dataset_config(cfg)
    cfg.validate()
    device = torch.device(cfg.resolved_device())
    if device.type == "cpu":
        torch.set_num_threads(max(1, cfg.torch_threads))
    seed_everything(cfg.seed)
    run = cfg.run_dir()
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    source = rollout_source(cfg, device)
    model = ActorCritic.from_config(cfg, source.observation_space, source.action_space).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    batcher = StateBatcher(model.memory)
    n, t_len = cfg.num_envs, cfg.rollout_len
    dataset: list[dict] = []
    history: list[dict[str, float]] = []
    iters = 1 + (cfg.dagger_iters if cfg.algo == "dagger" else 0)
    steps_per_iter = max(t_len * n, cfg.steps // iters)
    step = 0
    for it in range(iters):
        beta = 0.5**it  # probability that the expert acts
        t0 = time.perf_counter()
        episodes: list[dict] = []
        for _ in range(max(1, steps_per_iter // (t_len * n))):
            rollout, finished = source.collect(model, beta)
            dataset.append(rollout)
            episodes += finished
            step += t_len * n
        loss = _fit(model, opt, batcher, dataset, cfg, device)
        rec = {
            "iteration": it,
            "beta": beta,
            "step": step,
            "loss": loss,
            "time": time.perf_counter() - t0,
            "episodes": len(episodes),
        }
        if cfg.dataset is not None:
            rec.update(dataset_episodes_used=source.episodes_used, dataset_passes=source.passes)
        for k in ("success", "spl", "ndtw"):
            vals = [float(e[k]) for e in episodes if k in e]
            if vals:
                rec[k] = float(np.mean(vals))
        if cfg.learner_eval_episodes > 0:
            rec.update({f"learner_{k}": v for k, v in _learner_eval(model, cfg, device, it).items()})
        history.append(rec)
        with open(run / "progress.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(json.dumps(rec))
        save_checkpoint(
            run / "checkpoint.pt",
            {
                "agent": cfg.agent,
                "env": cfg.env,
                "config": cfg.to_dict(),
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "update": it + 1,
                "global_step": step,
                "rng": _rng_state(),
                "env_pickle": None,
                "history": history,
            },
        )
    source.close()
    return history


def _learner_eval(model, cfg: TrainConfig, device, it: int) -> dict[str, float]:
    """The learner alone on ``learner_eval_episodes`` fresh episodes, as ``chronotope eval`` runs a policy (actions
    sampled per episode, every episode of a seeded list run to its end): the imitation learning curve. Iteration
    ``it`` evaluates the episodes ``cfg.seed + 100_000 + it * E + k`` (disjoint per iteration, apart from the
    training rollouts' seeds)."""
    venv = make_vector_env(cfg.env, cfg.num_envs, cfg.env_kwargs_dict(), cfg.wrappers, cfg.seed)
    e = cfg.learner_eval_episodes
    seeds = [cfg.seed + 100_000 + it * e + k for k in range(e)]
    try:
        records = run_episodes(venv, ModelPolicy(model, device), seeds)
    finally:
        venv.close()
    done_eps = [{"return": r.ret, **{k: float(r.info[k]) for k in ("success", "spl") if k in r.info}} for r in records]
    keys = set().union(*done_eps)
    return {k: float(np.mean([e[k] for e in done_eps if k in e])) for k in keys}


@torch.no_grad()
def chunk_states(model, batcher, d: dict, cfg: TrainConfig, device):
    """Memory states at every ``bptt_len`` boundary of a stored rollout [T, N] (which starts at fresh episodes),
    computed by ``model`` as it is now; chunk-major, as :func:`split_sequences` orders the sequences."""
    n = d["labels"].shape[1]
    state = model.initial_state(n, device)
    out = []
    obs = d["obs"]
    for s in range(0, d["labels"].shape[0], cfg.bptt_len):
        out.append(StateBatcher.detach(state))
        if isinstance(obs, dict):
            o = {k: v[s : s + cfg.bptt_len].transpose(0, 1).to(device) for k, v in obs.items()}
        else:
            o = obs[s : s + cfg.bptt_len].transpose(0, 1).to(device)
        _, _, state = model(o, state, d["starts"][s : s + cfg.bptt_len].T.to(device))
    return batcher.cat(out)


def _fit(model, opt, batcher, dataset, cfg: TrainConfig, device) -> float:
    """Cross-entropy of expert labels over whole stored sequences, ``bc_epochs`` passes over the dataset; the
    sequences' memory states are recomputed by the current network for every part of every pass."""
    losses = []
    for _ in range(cfg.bc_epochs):
        for part in torch.randperm(len(dataset)).tolist():
            d = dataset[part]
            states = chunk_states(model, batcher, d, cfg, device)
            obs = (
                {k: split_sequences(v, cfg.bptt_len) for k, v in d["obs"].items()}
                if isinstance(d["obs"], dict)
                else split_sequences(d["obs"], cfg.bptt_len)
            )
            labels = split_sequences(d["labels"], cfg.bptt_len)
            starts = split_sequences(d["starts"], cfg.bptt_len)
            mask = split_sequences(d["mask"], cfg.bptt_len).float()
            n_seq = labels.shape[0]
            mb = max(1, n_seq // cfg.minibatches)
            perm = torch.randperm(n_seq)
            for s in range(0, n_seq, mb):
                idx = perm[s : s + mb]
                o = {k: v[idx].to(device) for k, v in obs.items()} if isinstance(obs, dict) else obs[idx].to(device)
                st = batcher.index(states, idx.to(device))
                dist, _, _ = model(o, st, starts[idx].to(device))
                m = mask[idx].to(device)
                if m.sum() == 0:
                    continue
                loss = -(model.log_prob(dist, labels[idx].to(device)) * m).sum() / m.sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                opt.step()
                losses.append(float(loss.detach()))
    return float(np.mean(losses)) if losses else float("nan")
