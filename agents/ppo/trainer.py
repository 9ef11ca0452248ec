"""Sequence PPO for memory agents.

Rollouts come from one batched vector env. The update splits the rollout into sequences of ``bptt_len`` steps
per environment, never shuffling single steps, and replays each sequence through the memory from a stored
(detached) state with the rollout's episode starts, so training sees the memory the rollout saw. Each sequence is
preceded by ``bptt_overlap`` replayed steps (taken from the previous rollout where the sequence starts early)
that carry gradient but no loss: a decision's gradient reaches every observation up to ``bptt_len +
bptt_overlap`` steps back, even when a rollout boundary falls between a cue and the decision that needs it
(memory tasks declare that span; by default the overlap covers it). Memory states are stored where the replayed
windows start. Replayed steps further back than the memory's declared ``gradient_horizon`` (HCAM: 0, its stored
past is stop-gradient) pass no gradient on, so they run without autograd: same gradient, no backward pass for
them. Truncated episodes are bootstrapped with the value of their final observation. Checkpoints (model,
optimiser, RNG states, counters, the episode-statistics window, the pickled env and the live memory state) are
written atomically every ``checkpoint_every`` updates and whenever
``checkpoint_minutes`` have passed since the last; ``restore`` continues exactly where the last checkpoint left off
and cuts ``progress.jsonl`` back to it, so no update is logged twice.

Under ``torchrun`` (a :class:`~chronotope.agents.distributed.DistContext` with ``world_size > 1``) every rank
steps its own ``num_envs`` envs seeded ``seed + 1000 * rank``, gradients are averaged over ranks after each
backward pass, advantages are normalised with global statistics, and only rank 0 writes config, logs and
checkpoints. ``steps`` counts the env steps of all ranks together. A resumed multi-process run is exact on rank 0;
the other ranks restart their envs from reseeded resets (their env states are not checkpointed).
"""

from __future__ import annotations

import json
import math
import pickle
import random
import signal
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from chronotope.agents.checkpoint import load_checkpoint, loads_env, save_checkpoint
from chronotope.agents.config import TrainConfig
from chronotope.agents.distributed import DistContext, all_reduce_gradients, broadcast_module, global_mean_std
from chronotope.agents.envs import make_vector_env, scalar_info
from chronotope.agents.memory_span import controllable_for, declared_span, resolve_overlap, warn_if_truncated
from chronotope.agents.policy import ActorCritic, map_obs, obs_to_torch
from chronotope.agents.ppo.loss import gae, masked_mean, policy_loss, value_loss
from chronotope.agents.runs import truncate_progress
from chronotope.agents.state_utils import StateBatcher, split_sequences
from chronotope.envs.vector_info import final_info_row


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the global generator user code may rely on
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002
        "torch": torch.get_rng_state(),
    }


def _set_rng_state(s: dict[str, Any]) -> None:
    random.setstate(s["python"])
    np.random.set_state(s["numpy"])  # noqa: NPY002
    torch.set_rng_state(s["torch"])


def _stack_obs(items: list) -> dict[str, np.ndarray] | np.ndarray:
    if isinstance(items[0], dict):
        return {k: np.stack([o[k] for o in items]) for k in items[0]}
    return np.stack(items)


class PPOTrainer:
    """Trains an :class:`ActorCritic` with sequence PPO; see the module docstring."""

    def __init__(self, cfg: TrainConfig, writer=None, dist: DistContext | None = None) -> None:
        cfg.validate()
        self.cfg = cfg
        self.dist = dist or DistContext()
        self.device = torch.device(cfg.resolved_device())
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        if self.device.type == "cpu" and cfg.torch_threads > 0:
            torch.set_num_threads(cfg.torch_threads)
        self.run_dir = cfg.run_dir()
        self.writer = writer
        env_kwargs = cfg.env_kwargs_dict()
        if "device" in _env_kwarg_names(cfg.env) and "device" not in env_kwargs:
            env_kwargs["device"] = str(self.device)
        self.env_kwargs = env_kwargs
        seed_everything(cfg.seed)
        self.venv = make_vector_env(cfg.env, cfg.num_envs, env_kwargs, cfg.wrappers, cfg.seed)
        self.model = ActorCritic.from_config(cfg, self.venv.single_observation_space, self.venv.single_action_space).to(
            self.device
        )
        if self.dist.enabled:
            broadcast_module(self.model, self.dist)  # identical start on every rank
            seed_everything(self.dist.seed(cfg.seed))  # but each rank samples its own actions
        # The fused kernel (CPU and CUDA): one call per step instead of a Python loop over the parameters, which
        # is torch's CPU default and ~4x slower at these sizes; the same update rule.
        fused = self.device.type in ("cpu", "cuda")
        self.batcher = StateBatcher(self.model.memory)
        self.steps_per_update = cfg.num_envs * cfg.rollout_len * self.dist.world_size
        self.num_updates = max(1, math.ceil(cfg.steps / self.steps_per_update))
        self.update = 0
        self.global_step = 0
        self.obs, info = self.venv.reset(seed=self.dist.seed(cfg.seed))
        # Auxiliary loss: a head on the memory output predicting the info label of each observation; with several
        # keys (``aux_key`` "a,b"), one head per key, the first the readout's when there is one.
        self.aux_head: torch.nn.Module | None = None
        self.aux_extra = torch.nn.ModuleList()  # heads of the keys after the first
        self.aux_slices: list[tuple[int, int]] = []  # each key's columns of the concatenated label
        self.label: np.ndarray | None = None
        self.aux_keys = _aux_keys(cfg.aux_key) if cfg.aux_coef > 0 else []
        if cfg.aux_coef > 0:
            dims = [_aux_label(info, k, cfg.env).shape[1] for k in self.aux_keys]
            ends = np.cumsum(dims).tolist()
            self.aux_slices = [(e - d, e) for d, e in zip(dims, ends, strict=True)]
            self.label = self._aux_labels(info)
            width = self.model.memory.output_size
            if self.model.address is not None:  # the readout's weights are what the auxiliary loss teaches
                if self.model.address.out_features != dims[0]:
                    raise ValueError(
                        f"readout_key {cfg.readout_key!r} addresses {self.model.address.out_features} values "
                        f"({_address_layout(cfg)}) but the auxiliary label "
                        f"{self.aux_keys[0]!r} has {dims[0]}: use an aux_key that labels them (e.g. memory_slot; "
                        "with a readout_query, a per-row table such as memory_patterns)"
                    )
                self.aux_head = self.model.address
            else:
                self.aux_head = torch.nn.Linear(width, dims[0]).to(self.device)
            self.aux_extra.extend(torch.nn.Linear(width, d).to(self.device) for d in dims[1:])
        separate = self.aux_head is not None and self.aux_head is not self.model.address
        params = list(self.model.parameters()) + (list(self.aux_head.parameters()) if separate else [])
        params += list(self.aux_extra.parameters())
        if cfg.aux_lr is None:
            groups = [{"params": params, "lr": cfg.lr, "base_lr": cfg.lr}]
        else:  # memory_grad="aux": what the auxiliary loss alone trains gets its own rate and clip
            own = list(self.model.memory.parameters())
            if self.model.mem_encoder is not None:  # memory_keys: the memory's own encoder, trained with it
                own += list(self.model.mem_encoder.parameters()) + list(self.model.mem_proj.parameters())
            own += list(self.model.address.parameters()) if self.model.address is not None else []
            own += (list(self.aux_head.parameters()) if separate else []) + list(self.aux_extra.parameters())
            ids = {id(q) for q in own}
            groups = [
                {"params": [q for q in params if id(q) not in ids], "lr": cfg.lr, "base_lr": cfg.lr},
                {"params": own, "lr": cfg.aux_lr, "base_lr": cfg.aux_lr},
            ]
        self.opt = torch.optim.Adam(groups, lr=cfg.lr, eps=1e-5, fused=fused or None)
        self.state = self.model.initial_state(cfg.num_envs, self.device)
        self.ep_start = np.ones(cfg.num_envs, bool)
        self.ep_return = np.zeros(cfg.num_envs)
        self.span = declared_span(self.venv)
        self.overlap = resolve_overlap(cfg.bptt_overlap, self.span, cfg.rollout_len, cfg.agent == "none")
        horizon = self.model.memory.gradient_horizon
        if cfg.replay == "gradient" and horizon is not None:  # windows start from the rollout's stored states
            self.overlap = min(self.overlap, horizon)
        if cfg.agent != "none":
            warn_if_truncated(cfg.env, self.span, cfg.bptt_len, self.overlap)
        # The previous rollout's last ``overlap`` steps (observations, episode starts) and the memory states where
        # this update's replayed windows begin inside it. Before the first rollout: copies of the first
        # observation, flagged as episode starts, from the initial state (so they influence nothing).
        self.tail = self._initial_tail()
        self.recent: deque[dict[str, float]] = deque(maxlen=100)
        self.history: list[dict[str, float]] = []

    # ------------------------------------------------------------------------------------------ checkpoints
    def checkpoint_payload(self) -> dict[str, Any]:
        try:
            env_blob = pickle.dumps(self.venv)
        except Exception:  # envs that do not pickle resume from a reseeded reset instead
            env_blob = None
        return {
            "agent": self.cfg.agent,
            "env": self.cfg.env,
            "config": self.cfg.to_dict(),
            "model": self.model.state_dict(),
            "aux_head": None if self.aux_head is None else self.aux_head.state_dict(),
            "aux_extra": self.aux_extra.state_dict() if len(self.aux_extra) else None,
            "label": self.label,
            "optimizer": self.opt.state_dict(),
            "update": self.update,
            "global_step": self.global_step,
            "rng": _rng_state(),
            "env_pickle": env_blob,
            "obs": self.obs,
            "state": StateBatcher.to(self.state, "cpu"),
            "ep_start": self.ep_start.copy(),
            "ep_return": self.ep_return.copy(),
            "history": self.history,
            "recent": list(self.recent),
            "tail": {
                "obs": self.tail["obs"],
                "starts": self.tail["starts"],
                "states": {t: StateBatcher.to(st, "cpu") for t, st in self.tail["states"].items()},
            },
        }

    def save(self) -> Path:
        """Writes ``run_dir/checkpoint.pt`` (rank 0 only; other ranks return the path and write nothing)."""
        self._last_save = time.monotonic()
        if not self.dist.is_main:
            return self.run_dir / "checkpoint.pt"
        return save_checkpoint(self.run_dir / "checkpoint.pt", self.checkpoint_payload())

    def restore(self, path: Path) -> None:
        data = load_checkpoint(path, expect={"agent": self.cfg.agent, "env": self.cfg.env})
        try:
            self.model.load_state_dict(data["model"])
        except RuntimeError as e:
            raise ValueError(f"checkpoint {str(path)!r} does not fit this model: {e}") from e
        if self.aux_head is not None:
            if data.get("aux_head") is None:
                raise ValueError(f"checkpoint {str(path)!r} has no auxiliary head, but aux_coef > 0")
            self.aux_head.load_state_dict(data["aux_head"])
        if len(self.aux_extra):
            if data.get("aux_extra") is None:
                raise ValueError(f"checkpoint {str(path)!r} has no heads for auxiliary keys after the first")
            self.aux_extra.load_state_dict(data["aux_extra"])
        self.opt.load_state_dict(data["optimizer"])
        self.update = int(data["update"])
        self.global_step = int(data["global_step"])
        self.history = list(data.get("history", []))
        self.recent.clear()
        self.recent.extend(data.get("recent", []))
        if self.dist.is_main:  # the log ends where the checkpoint does: no update appears twice
            truncate_progress(self.run_dir / "progress.jsonl", "update", self.update)
        if data.get("env_pickle") is not None and self.dist.is_main:
            venv = loads_env(data["env_pickle"])
            self.venv.close()
            self.venv = venv
            self.obs = data["obs"]
            self.state = StateBatcher.to(data["state"], self.device)
            self.ep_start = data["ep_start"]
            self.ep_return = data["ep_return"]
            if self.aux_head is not None:
                self.label = data["label"]
            tail = data.get("tail")
            if tail is not None and len(tail["starts"]) == self.overlap:
                self.tail = {
                    "obs": tail["obs"],
                    "starts": tail["starts"],
                    "states": {t: StateBatcher.to(st, self.device) for t, st in tail["states"].items()},
                }
        else:
            self.obs, _ = self.venv.reset(seed=self.dist.seed(self.cfg.seed) + 7919 * self.update)
            self.state = self.model.initial_state(self.cfg.num_envs, self.device)
            self.ep_start = np.ones(self.cfg.num_envs, bool)
            self.ep_return = np.zeros(self.cfg.num_envs)
            self.tail = self._initial_tail()
        if self.dist.is_main:
            _set_rng_state(data["rng"])
        else:  # the saved RNG is rank 0's; this rank draws its own stream
            seed_everything(self.dist.seed(self.cfg.seed) + 7919 * self.update)

    # ------------------------------------------------------------------------------------------ rollout
    def _window_starts(self) -> list[int]:
        """Rollout steps where a replayed window begins: t with (t + overlap) % bptt_len == 0."""
        cfg = self.cfg
        return [t for t in range(cfg.rollout_len) if (t + self.overlap) % cfg.bptt_len == 0]

    def _initial_tail(self) -> dict[str, Any]:
        p, n = self.overlap, self.cfg.num_envs
        state = StateBatcher.detach(self.model.initial_state(n, self.device))
        return {
            "obs": [self.obs] * p,
            "starts": [np.ones(n, bool)] * p,
            "states": {t: state for t in self._window_starts() if t + self.overlap > self.cfg.rollout_len - 1},
        }

    def _aux_labels(self, info: dict) -> np.ndarray:
        """float [N, D]: the labels of every auxiliary key, concatenated in ``aux_key`` order."""
        parts = [_aux_label(info, k, self.cfg.env) for k in self.aux_keys]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    @torch.inference_mode()
    def rollout(self) -> dict[str, Any]:
        """Steps the envs ``rollout_len`` times with the current policy; returns the batch of :meth:`train_step`.

        Runs under ``inference_mode`` (no autograd bookkeeping at all; the batch tensors are only ever read by
        :meth:`train_step`, through indexing that copies them into ordinary tensors). Per step only what the
        policy needs crosses from numpy to torch; rewards and done flags stay numpy until GAE, which runs
        once on the whole ``[T, N]`` rollout.
        """
        cfg, n, t_len = self.cfg, self.cfg.num_envs, self.cfg.rollout_len
        dev = self.device
        obs_buf: list = []
        actions, logps, values, starts = [], [], [], []
        rewards = np.zeros((t_len, n), np.float32)
        ctrl = np.ones((t_len, n), bool)
        labels = []
        dones = np.zeros((t_len, n), bool)
        # Steps whose action a scripted task phase replaces get no policy gradient or entropy bonus (the advantage
        # does not depend on the action there). Read from the envs stepped now (a resume replaces them).
        controllable = controllable_for(self.venv)
        saved = {}  # rollout step -> memory state there (where replayed windows begin)
        windows = set(self._window_starts())
        act_space = self.venv.single_action_space
        is_box = isinstance(act_space, spaces.Box)
        for t in range(t_len):
            if t in windows:
                saved[t] = StateBatcher.detach(self.state)
            if controllable is not None:
                ctrl[t] = controllable()
            o1 = obs_to_torch(self.obs, dev, time_dim=True)
            # ep_start is replaced each step, never mutated, so the tensor may share its memory
            start_t = torch.as_tensor(self.ep_start, device=dev)  # [N]
            a, logp, v, self.state = self.model.act(o1, self.state, start_t[:, None])  # [N, 1, ...]
            logp = logp[:, 0]
            a = a[:, 0]
            act = a.cpu().numpy()
            if is_box:
                act = np.clip(act, act_space.low, act_space.high)
            next_obs, r, term, trunc, info = self.venv.step(act)
            if self.label is not None:  # the label of the observation acted on; the step's info is the next one's
                labels.append(self.label)
                self.label = self._aux_labels(info)
            term, trunc = np.asarray(term), np.asarray(trunc)
            r = np.asarray(r, np.float64).copy()
            self.ep_return += r
            done = term | trunc
            if done.any():
                boot = np.flatnonzero(trunc & ~term)
                if boot.size and "final_obs" in info:
                    fo = _stack_obs([info["final_obs"][i] for i in boot])
                    fo1 = obs_to_torch(fo, dev, time_dim=True)
                    st = self.batcher.index(self.state, torch.as_tensor(boot, device=dev))
                    _, v_final, _ = self.model(fo1, st, torch.zeros(len(boot), 1, dtype=torch.bool, device=dev))
                    r[boot] += cfg.gamma * v_final[:, 0].cpu().numpy()
                for i in np.flatnonzero(done):
                    rec = {"return": float(self.ep_return[i])}
                    rec.update(scalar_info(final_info_row(info, i)))
                    self.recent.append(rec)
                    self.ep_return[i] = 0.0
            obs_buf.append(self.obs)
            actions.append(a)
            logps.append(logp)
            values.append(v[:, 0])
            rewards[t] = r  # float64 -> float32, as torch.as_tensor(r, dtype=float32) did
            dones[t] = done
            starts.append(start_t)
            self.ep_start = done
            self.obs = next_obs
            self.global_step += n * self.dist.world_size
        o1 = obs_to_torch(self.obs, dev, time_dim=True)
        _, last_v, _ = self.model(o1, self.state, torch.as_tensor(self.ep_start, device=dev)[:, None])
        rew = torch.as_tensor(rewards, device=dev)
        val = torch.stack(values)
        done_t = torch.as_tensor(dones, device=dev)
        adv, ret = gae(rew, val, done_t, last_v[:, 0], cfg.gamma, cfg.gae_lambda)
        # Windows of this update: chunk c covers steps [cL - P, cL + L); its state was saved at cL - P, in this
        # rollout or (negative) in the previous one.
        p, big_t = self.overlap, t_len
        states = [
            saved[s] if s >= 0 else self.tail["states"][big_t + s]
            for s in (c * cfg.bptt_len - p for c in range(big_t // cfg.bptt_len))
        ]
        fresh_from = len(self.tail["obs"])  # the replayed tail's steps come first
        obs_t = _stack_time(self.tail["obs"] + obs_buf, dev)  # [P + T, N, ...]
        starts_ext = torch.as_tensor(np.stack(self.tail["starts"] + [s.cpu().numpy() for s in starts]), device=dev)
        self.tail = {
            "obs": obs_buf[big_t - p :],
            "starts": [s.cpu().numpy() for s in starts[big_t - p :]],
            "states": {t: st for t, st in saved.items() if t + p > big_t - 1},
        }
        return {
            "obs": obs_t,
            "fresh_from": fresh_from,
            "actions": torch.stack(actions),
            "logp": torch.stack(logps),
            "values": val,
            "adv": adv,
            "returns": ret,
            "starts": starts_ext,
            "states": self.batcher.cat(states),
            "labels": torch.as_tensor(np.stack(labels), dtype=torch.float32, device=dev) if labels else None,
            "controllable": torch.as_tensor(ctrl, device=dev),
        }

    # ------------------------------------------------------------------------------------------ update
    def _sequences(self, x: torch.Tensor) -> torch.Tensor:
        """[T, N, ...] -> [C * N, L, ...] (see :func:`split_sequences`)."""
        return split_sequences(x, self.cfg.bptt_len)

    def _windows(self, x: torch.Tensor) -> torch.Tensor:
        """[P + T, N, ...] -> [C * N, P + L, ...]: chunk c's window, the P steps before it and its L steps."""
        p, big_l = self.overlap, self.cfg.bptt_len
        c = (x.shape[0] - p) // big_l
        return torch.cat([x[k * big_l : k * big_l + p + big_l].transpose(0, 1) for k in range(c)])

    def window_log_prob(self, dist, actions: torch.Tensor, p: int | None = None) -> torch.Tensor:
        """Log-probabilities [B, L] of ``actions`` [B, L, ...] under a window's policy ``dist`` [B, p + L] (``p``:
        the replayed steps it covers, by default the whole overlap)."""
        p = self.overlap if p is None else p
        if p:  # the replayed steps get placeholder actions; their log-probabilities are dropped
            pad = torch.zeros_like(actions[:, :1]).expand(-1, p, *actions.shape[2:])
            actions = torch.cat([pad, actions], 1)
        return self.model.log_prob(dist, actions)[:, p:]

    def _replay_without_grad(self) -> int:
        """Replayed steps at the front of each window that pass no gradient to the trained steps (those further
        back than the memory's declared ``gradient_horizon``): they rebuild the memory state under ``no_grad``,
        which leaves the gradient unchanged and skips their backward pass (HCAM: the whole overlap)."""
        horizon = self.model.memory.gradient_horizon
        return 0 if horizon is None else max(0, self.overlap - horizon)

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        cfg = self.cfg
        pre = self._replay_without_grad()
        p = self.overlap - pre  # replayed steps that run with autograd
        keys = ("actions", "logp", "values", "adv", "returns", "controllable")
        seq = {k: self._sequences(batch[k]) for k in keys}
        seq["starts"] = self._windows(batch["starts"])
        if batch.get("labels") is not None:
            seq["labels"] = self._sequences(batch["labels"])
        obs = batch["obs"]
        if isinstance(obs, dict):  # what the encoder computes without parameters, once per frame, not per epoch
            obs = self.model.encoder.derive(obs)
        seq_obs = {k: self._windows(v) for k, v in obs.items()} if isinstance(obs, dict) else self._windows(obs)
        n_seq = seq["actions"].shape[0]
        mb = max(1, n_seq // cfg.minibatches)
        stats: dict[str, list[torch.Tensor]] = {"pg": [], "vf": [], "ent": [], "kl": [], "clipfrac": []}
        if self.aux_head is not None:
            stats["aux"] = []
        # One group, or the PPO part and what the auxiliary loss alone trains (aux_lr): each clipped on its own.
        clip_groups = [[q for q in g["params"] if q.requires_grad] for g in self.opt.param_groups]
        params = [q for group in clip_groups for q in group]
        for _ in range(cfg.epochs):
            perm = torch.randperm(n_seq, device=self.device)
            # Shuffle every tensor once per epoch; a minibatch is then a slice (a view) of the shuffled copies:
            # the same sequences in the same order as indexing each minibatch with perm[s : s + mb].
            ep = {k: v[perm] for k, v in seq.items()}
            ep_obs = {k: v[perm] for k, v in seq_obs.items()} if isinstance(seq_obs, dict) else seq_obs[perm]
            ep_states = self.batcher.index(batch["states"], perm)
            for s in range(0, n_seq, mb):
                e = min(s + mb, n_seq)
                o = {k: v[s:e] for k, v in ep_obs.items()} if isinstance(ep_obs, dict) else ep_obs[s:e]
                state = self.batcher.narrow(ep_states, s, e - s)
                starts = ep["starts"][s:e]
                if pre:
                    with torch.no_grad():
                        _, _, state = self.model(map_obs(o, lambda x: x[:, :pre]), state, starts[:, :pre])
                    o, starts = map_obs(o, lambda x: x[:, pre:]), starts[:, pre:]
                dist, v, _, feats = self.model(o, state, starts, features=True)
                v = v[:, p:]  # replayed steps: their outputs are dropped, their gradient through the memory is kept
                new_logp = self.window_log_prob(dist, ep["actions"][s:e], p)
                old_logp = ep["logp"][s:e]
                adv = ep["adv"][s:e]
                mask = ep["controllable"][s:e]
                mask = None if mask.all() else mask  # no scripted steps: the plain means
                if self.dist.enabled:  # statistics of the global minibatch, as one process would see it
                    mean, std = global_mean_std(adv, self.dist)
                    adv = (adv - mean) / (std + 1e-8)
                elif mask is None:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                else:  # statistics of the steps that enter the policy loss
                    sel = adv[mask]
                    adv = (adv - sel.mean()) / (sel.std() + 1e-8) if sel.numel() > 1 else adv
                pg = policy_loss(new_logp, old_logp, adv, cfg.clip, mask)
                vf = value_loss(v, ep["values"][s:e], ep["returns"][s:e], cfg.vf_clip)
                ent = masked_mean(self.model.entropy(dist)[:, p:], mask)
                loss = pg + cfg.vf_coef * vf - cfg.ent_coef * ent
                if self.aux_head is not None:
                    labels = ep["labels"][s:e]  # [B, L, D]; non-finite entries carry no label
                    aux = 0.0
                    for head, (a, b) in zip((self.aux_head, *self.aux_extra), self.aux_slices, strict=True):
                        label = labels if len(self.aux_slices) == 1 else labels[..., a:b]
                        ok = torch.isfinite(label)
                        err = (head(feats[:, p:]) - torch.where(ok, label, 0.0)) ** 2
                        aux = aux + (err * ok).sum() / ok.sum().clamp(min=1)  # each key's mean, summed
                    loss = loss + cfg.aux_coef * aux
                    stats["aux"].append(aux.detach())
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                all_reduce_gradients(params, self.dist)
                for group in clip_groups:
                    torch.nn.utils.clip_grad_norm_(group, cfg.max_grad_norm, foreach=True)
                self.opt.step()
                # Statistics stay tensors until the end: one conversion per update, not five per minibatch.
                with torch.no_grad():
                    log_ratio = new_logp - old_logp
                    stats["kl"].append(((log_ratio.exp() - 1) - log_ratio).mean())
                    stats["clipfrac"].append(((log_ratio.exp() - 1).abs() > cfg.clip).float().mean())
                stats["pg"].append(pg.detach())
                stats["vf"].append(vf.detach())
                stats["ent"].append(ent.detach())
        means = torch.stack([torch.stack(v).double().mean() for v in stats.values()]).tolist()
        return dict(zip(stats, means))

    # ------------------------------------------------------------------------------------------ loop
    def train(self, stop_after: int | None = None) -> list[dict[str, float]]:
        """Runs updates until the budget is spent (or ``stop_after`` updates of this call, then checkpoints)."""
        cfg = self.cfg
        done_here = 0
        main = self.dist.is_main
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        bar = None
        if cfg.progress and main:
            from tqdm import tqdm

            bar = tqdm(
                total=self.num_updates * self.steps_per_update,
                initial=self.global_step,
                unit="step",
                dynamic_ncols=True,
            )
        interrupted = False
        stop = {"requested": False}

        def _stop(signum, frame):
            # SIGTERM and a first Ctrl-C finish the update under way, save it and stop: a checkpoint is only ever
            # written between updates (a save inside a rollout or an update would hold a model, step count and
            # envs of different moments). A second Ctrl-C stops at once, keeping the last checkpoint.
            if signum == signal.SIGINT and stop["requested"]:
                raise KeyboardInterrupt
            stop["requested"] = True

        old = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        self._last_save = time.monotonic()
        try:
            while self.update < self.num_updates:
                t0 = time.perf_counter()
                if cfg.anneal_lr:
                    for g in self.opt.param_groups:
                        g["lr"] = g.get("base_lr", cfg.lr) * (1.0 - self.update / self.num_updates)
                batch = self.rollout()
                stats = self.train_step(batch)
                if cfg.obs_norm:  # the next rollout and its update see the same new scaling
                    self._update_obs_norm(batch)
                self.update += 1
                sps = self.steps_per_update / (time.perf_counter() - t0)
                rec = self._log(stats, sps)
                if bar is not None:
                    bar.update(self.steps_per_update)
                    bar.set_postfix(sps=f"{sps:.0f}", ret=f"{rec.get('return', float('nan')):.2f}")
                done_here += 1
                overdue = time.monotonic() - self._last_save >= 60.0 * cfg.checkpoint_minutes
                # a stop (signal or stop_after) saves the update just finished, once, then leaves the loop
                stopping = stop["requested"] or (stop_after is not None and done_here >= stop_after)
                if self.update % cfg.checkpoint_every == 0 or self.update == self.num_updates or overdue or stopping:
                    self.save()
                if stopping:
                    interrupted = stop["requested"]
                    break
        except KeyboardInterrupt:
            interrupted = True
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            if bar is not None:
                bar.close()
            if self.writer is not None:
                self.writer.flush()
        if interrupted:
            raise KeyboardInterrupt(f"training interrupted; its last checkpoint is in {self.run_dir}")
        return self.history

    def _update_obs_norm(self, batch: dict[str, Any]) -> None:
        """Folds this update's own rollout (not the replayed tail) into the encoders' running statistics, summed
        over the ranks so every rank scales alike."""
        fresh = batch["fresh_from"]
        obs = map_obs(batch["obs"], lambda v: v[fresh:])
        moments = self.model.encoder.normalizer_moments(obs)
        if self.dist.enabled:
            import torch.distributed as tdist

            for m in moments:
                tdist.all_reduce(m)
        self.model.encoder.merge_normalizer(moments)

    def _log(self, stats: dict[str, float], sps: float) -> dict[str, float]:
        rec: dict[str, float] = {"update": self.update, "step": self.global_step, "sps": sps, **stats}
        if self.recent:
            keys = set().union(*self.recent)
            for k in keys:
                vals = [r[k] for r in self.recent if k in r]
                rec[k] = float(np.mean(vals))
        self.history.append(rec)
        if not self.dist.is_main:
            return rec
        with open(self.run_dir / "progress.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        if self.writer is not None:
            for k, v in rec.items():
                if k not in ("update", "step"):
                    self.writer.add_scalar(f"train/{k}", v, self.global_step)
        return rec


def _address_layout(cfg: TrainConfig) -> str:
    """What the readout's address head predicts, in words (for the error naming a label of the wrong size)."""
    if cfg.readout_match is not None:
        return f"{'query values x ' if cfg.readout_query else ''}{cfg.readout_match} columns"
    return "rows x query values" if cfg.readout_query else "rows"


def _aux_keys(spec: str) -> list[str]:
    """The info keys of ``aux_key`` ("a" or "a,b,..."); a clear error for an empty one."""
    keys = [k.strip() for k in spec.split(",")]
    if not all(keys):
        raise ValueError(f"aux_key must name info keys separated by commas, got {spec!r}")
    return keys


def _aux_label(info: dict, key: str, env_id: str) -> np.ndarray:
    """The auxiliary label float [N, D] of a vector env's info; a clear error when the env does not provide it."""
    if key not in info:
        raise ValueError(
            f"aux_coef > 0 needs the info key {key!r} (float [N, D]), which {env_id} does not provide; "
            f"its info keys: {sorted(k for k in info if not k.startswith('_'))}"
        )
    x = np.asarray(info[key], np.float32)
    return x.reshape(len(x), -1)


def _stack_time(obs_buf: list, dev) -> dict[str, torch.Tensor] | torch.Tensor:
    if isinstance(obs_buf[0], dict):
        return {k: torch.as_tensor(np.stack([o[k] for o in obs_buf]), device=dev) for k in obs_buf[0]}
    return torch.as_tensor(np.stack(obs_buf), device=dev)


def _env_kwarg_names(env_id: str) -> set[str]:
    import dataclasses

    import gymnasium as gym

    from chronotope.agents.envs import resolve_env_id
    from chronotope.envs import NAV_ENTRY
    from chronotope.envs.nav.core import NavConfig

    # Only the nav envs take NavConfig's kwargs (``device`` among them); the arm envs refuse unknown kwargs.
    if gym.registry[resolve_env_id(env_id)].entry_point != NAV_ENTRY:
        return set()
    return {f.name for f in dataclasses.fields(NavConfig)}
