"""Memory agents learned by RL from scratch, read against the task's memory demand.

For one memory task preset, every memory core (``none``, ``gru``, ``hcam`` by default) is trained with our
sequence PPO (``chronotope train --algo ppo``) with the **same recipe and budget**, for several seeds. Each agent
is then evaluated on the same seeded episodes with sampled and with greedy actions, at the training delay and at
4x (HCAM's extrapolation claim). The same table carries the task's references at each delay
(:mod:`chronotope.scripts.experiments.memory_demand`): random, the memoryless bound, the perfect-memory oracle
and the observability twin. Each agent's **memory score** is (agent - bound) / (perfect - bound): 0 is no use of
memory beyond a reactive policy, 1 is perfect memory.

Runs are resumable: a finished (agent, seed) with its evaluations is skipped, an interrupted one continues from
its checkpoint. Several processes may share one ``out`` folder with disjoint ``--agents`` / ``--seeds``; then
``--report`` writes the table and curves from what is there.

    python -m chronotope.scripts.experiments.memory_rl                          # 3 cores x 3 seeds
    python -m chronotope.scripts.experiments.memory_rl --agents gru --seeds 0   # one run (e.g. one per core)
    python -m chronotope.scripts.experiments.memory_rl --report                 # table + curves only
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chronotope.agents.runs import atomic_write_text

# Task presets: env, env kwargs (state observations, the task's defaults), the knob extrapolated, the recipe.
# Optional fields: "metric" (the evaluation measure scored against the references; default "success"),
# "extrapolate" (False: the knob has no 4x value to evaluate at), "memory_cfgs" (per-core memory config merged over
# Config.memory_cfgs for this task), "tuned" (False: the plain recipe, not tuned for the task; the memory leaderboard
# then runs the task with its own untuned recipe).
# The recipe was tuned once on the GRU and is the same for every core. 8 epochs x 4 minibatches (32 gradient steps per
# rollout; the trainer default is 4 x 4) reached the same training success in ~1/3 of the env steps on ObjectRecall
# (GRU seed 2: 0.71 at 185k steps vs 0.59 at 600k with 4 x 4) for ~1.4x the compute per step; docs/RESULTS.md 1.
# replay "gradient": windows replay only what passes gradient (HCAM: nothing, its stored past is stop-gradient) and
# start from the rollout's stored memory state; the recurrent cores replay their whole overlap as before.
_RECIPE = {
    "num_envs": 32,
    "rollout_len": 128,
    "bptt_len": 128,
    "epochs": 8,
    "minibatches": 4,
    "aux_key": "memory_slot",
    "replay": "gradient",
}
PRESETS: dict[str, dict] = {
    "objectrecall": {
        "env": "chronotope/ObjectRecall-v0",
        "env_kwargs": {"obs_mode": "state"},
        "knob": "delay",
        "train_value": 10,
        # The auxiliary head on the memory output predicts which ``candidates`` row was cued (aux_key), and the
        # policy reads the rows through that prediction (readout_key; see ActorCritic.read_rows). 600k steps: at
        # 300k the three seeds of each core were still spread over 0.37-0.65 (docs/RESULTS.md 1).
        "recipe": {**_RECIPE, "steps": 600_000, "readout_key": "candidates"},
    },
    # The same task from pixels: rgbd 64 x 64 with the candidate rows as navigation aid but without their cue
    # column (``pixel_candidates``), so which object was cued is only in the images (the magenta tint). Each row
    # reads the pixel column where its object projects (row_glimpse "1,2,90": the rows' forward / left columns and
    # the env's 90-degree camera) beside an 8 x 8 pooled image (image_encoder "pool", no convolution), rgb and depth
    # as one input (fuse_images); a second auxiliary head names the row the tint marks while it is in view
    # (``cue_slot``, a perception label). A CNN that had to find the tint and match it to a row (image_encoder
    # "small" with rows attending over its map) left the auxiliary loss at chance for 100k+ steps (docs/RESULTS.md
    # 1). The memory is trained by the auxiliary loss alone at its own rate (memory_grad "aux", aux_lr 1e-3, as
    # Ballet's): with the policy gradient in it at 3e-4 the readout was right (84% of recall steps) only from ~300k
    # steps, after the policy had settled on stopping at a near candidate (0.31 at 600k; 0.7 in training at 950k).
    # 600k steps, as the state preset.
    "objectrecall_rgbd": {
        "env": "chronotope/ObjectRecall-v0",
        "env_kwargs": {"obs_mode": "rgbd", "resolution": [64, 64], "pixel_candidates": True},
        "knob": "delay",
        "train_value": 10,
        "recipe": {
            **_RECIPE,
            "steps": 600_000,
            "readout_key": "candidates",
            "aux_key": "memory_slot,cue_slot",
            "fuse_images": True,
            "image_encoder": "pool",
            "row_vision": True,
            "row_glimpse": "1,2,90",
            "memory_grad": "aux",
            "aux_lr": 1e-3,
        },
    },
    "ballet": {
        "env": "chronotope/Ballet-v0",
        "env_kwargs": {"obs_mode": "state"},
        "knob": "delay",
        "train_value": 16,
        # The auxiliary head names each watched dancer's pattern (memory_patterns, from the end of its dance on): a
        # [rows x patterns] table that the readout dots with the instruction to read the instructed dancer's row of
        # ``dancers`` (readout_query; asked for the row itself, a GRU that knew every pattern stayed at chance on
        # the row after 860k steps). The rows are sparse (one dancer in view, a pattern named only while danced):
        # magnitude scaling keeps their absent entries at 0, and the memory is trained by the auxiliary loss alone
        # (with the policy gradient in it, the auxiliary loss stayed at chance; docs/RESULTS.md 1), at its own rate
        # (aux_lr: at lr 3e-4 the table was right only from ~450k steps, too late for the policy). Episodes are <= 88
        # steps: a 128-step sequence plus the declared span as overlap reaches from any seek step back to the dances.
        "recipe": {
            **_RECIPE,
            "steps": 600_000,
            "readout_key": "dancers",
            "readout_query": "instruction",
            "aux_key": "memory_patterns",
            "obs_scale": "magnitude",
            "memory_grad": "aux",
            "aux_lr": 1e-3,
        },
        # HCAM with its stop-gradient memory (the spec's) left the pattern table at chance (loss 0.109-0.110 to 118k
        # steps): a dancer's embedding is stored by the steps of its dance, which the table's loss there does not
        # shape for a read 16-40 steps later. With the gradient through what a training sequence writes
        # (memory_gradient) the loss fell from ~40k steps, to 0.005 by 220k (docs/RESULTS.md 1).
        "memory_cfgs": {"hcam": {"memory_gradient": True}},
    },
    # TargetSequence (after Memory Maze): K = 3 coloured targets among 20 ``sites`` rows (the targets and 17 other
    # objects, in an order drawn per episode) in apartments of 3-6 rooms, named one after another for 128 steps;
    # every row's colour shows in the first 4 steps (the observe phase), then only within 2 m in view. The rows give
    # the way to each site, so what is left to learn is which row holds the named colour: as Ballet, the auxiliary
    # head names each row's colour (memory_colours, a [rows x colours] table; the named row, memory_slot, as a
    # second head made a memory fed only site_colours memorise episodes) and the readout dots the table with the
    # named colour (readout_query target_color) to read that row; the memory is trained by the auxiliary loss alone
    # at its own rate, and reads only ``site_colours`` (memory_keys): fed every key, a model memorised each episode
    # by where its rows are instead of learning the table, even where the table was observed (docs/RESULTS.md 1).
    # An episode holds one memory example (the observe phase), so RL learns the table at a rate set by episodes:
    # at 250-1000 steps per episode no probe learnt it in 400k steps; at 128 steps a GRU did from ~240k steps
    # (policy near the perfect oracle by ~530k), from ~90k with its update gate biased open (keep_bias 2: the
    # gradient of the table's loss reaches the observe phase through 124 steps). HCAM with its gradient through
    # what a sequence writes (memory_gradient), as for Ballet.
    "targetsequence": {
        "env": "chronotope/TargetSequence-v0",
        "env_kwargs": {"obs_mode": "state"},
        "knob": "num_targets",
        "train_value": 3,
        "metric": "score",
        "extrapolate": False,
        "recipe": {
            **_RECIPE,
            "steps": 500_000,
            "readout_key": "sites",
            "readout_query": "target_color",
            "aux_key": "memory_colours",
            "memory_keys": "site_colours",
            "obs_scale": "magnitude",
            "memory_grad": "aux",
            "aux_lr": 1e-3,
        },
        "memory_cfgs": {"gru": {"keep_bias": 2.0}, "lstm": {"keep_bias": 2.0}, "hcam": {"memory_gradient": True}},
    },
    # The arm's memory tasks whose answer is a touch (cups, pads), one preset per memory type. A random arm never
    # touches anything (random success 0), so the response phase carries the task's neutral approach shaping
    # towards the nearest candidate (``approach_reward``; the minimum over every candidate, it says nothing about
    # the answer). The auxiliary head regresses where to reach (``memory_place``, the answer's place in [-1, 1]^2;
    # with what must be stored where the task labels it apart: PairRecall's pad of each colour, ColourSequence's
    # sequence): the policy then maps a remembered place and the hand's position to a motion. Asked instead for
    # the ``object_pose`` row of the answer (the rows re-ordered when the cue goes off) with the entity readout,
    # the GRU's auxiliary loss stayed at chance for 115k steps on WhereHidden (docs/RESULTS.md 6).
    **{
        name: {
            "env": env,
            "env_kwargs": {"obs_mode": "state", "approach_reward": 2.0},
            "knob": knob,
            "train_value": value,
            "recipe": {**_RECIPE, "steps": 300_000, "aux_key": aux, **extra},
        }
        for name, env, knob, value, aux, extra in (
            ("wherehidden", "chronotope/WhereHidden-v0", "delay_steps", 20, "memory_place", {}),
            (
                "shellgame",
                "chronotope/ShellGame-v0",
                "num_swaps",
                3,
                "memory_place",
                {"entity_keys": "object_pose", "obs_norm": True},
            ),
            # The pads' rows go through the entity encoder (row k's pose and colour together, summed over the rows):
            # with one flat encoder per key the GRU's auxiliary loss stayed at chance for 160-180k steps, with the
            # policy gradient in the memory or without it. The pairs are stored by the auxiliary loss alone at its
            # own rate (as Ballet's table). 600k steps: at 300k the three GRU seeds were still rising (0.48-0.77 in
            # the last updates; 0.50-0.77 evaluated, docs/RESULTS.md 6a).
            (
                "pairrecall",
                "chronotope/PairRecall-v0",
                "delay_steps",
                20,
                "memory_pairs,memory_place",
                {
                    "entity_keys": "object_pose,cue",
                    "memory_grad": "aux",
                    "aux_lr": 1e-3,
                    "obs_norm": True,
                    "steps": 600_000,
                },
            ),
            # The pads move and change rows at the go lamp, so no row or place seen during the cue names an answer:
            # the memory keeps the colours by position (``memory_sequence``, a [positions x colours] table), the
            # readout dots it with the observed position of the next answer (``next_element``) to get the colour to
            # look for, and hands the policy the ``object_pose`` row whose ``pad_colour`` is that colour
            # (``readout_match``). With the next pad's place as the label (``memory_sequence,memory_place`` without
            # a readout) the GRU stayed at chance (0.03 at 180k steps, docs/RESULTS.md 6a).
            (
                "coloursequence",
                "chronotope/ColourSequence-v0",
                "delay_steps",
                0,
                "memory_sequence",
                {
                    "readout_key": "object_pose",
                    "readout_query": "next_element",
                    "readout_match": "pad_colour",
                    "memory_grad": "aux",
                    "aux_lr": 1e-3,
                    "obs_norm": True,
                },
            ),
        )
    },
    # WhereHidden from pixels, NOT LEARNT YET (docs/RESULTS.md 6a): the cups, the ball and the go lamp only in the
    # front camera's colour image (rgbd 64 x 64, ray-cast: ~4x the GL renderer's rate; the wrist camera, depth and
    # segmentation left out, which halves the rendering and the CNN's input), with the arm's proprioception. The
    # auxiliary head regresses where the ball was (memory_place, as the state preset), through the keypoint encoder
    # (a spatial softmax: where the 7-pixel ball is, as two numbers). Probes, one GRU seed each, 165 env steps/s:
    # the auxiliary loss stayed at chance (0.34-0.41 against a label variance of ~0.37) to 127k steps with this
    # preset, to 100k with the small DQN CNN over rgb + depth + segmentation, and to 61-74k with the memory trained
    # by the auxiliary loss alone at 1e-3 (with or without its own encoder, memory_keys "front_rgb,phase").
    "wherehidden_rgbd": {
        "env": "chronotope/WhereHidden-v0",
        "env_kwargs": {
            "obs_mode": "rgbd",
            "approach_reward": 2.0,
            "camera_backend": "raycast",
            "cameras": ["front"],
            "camera_outputs": ["rgb"],
        },
        "knob": "delay_steps",
        "train_value": 20,
        "recipe": {
            **_RECIPE,
            "steps": 300_000,
            "aux_key": "memory_place",
            "fuse_images": True,
            "image_encoder": "keypoints",
        },
    },
    # Sequential memory, "press the buttons in the order they lit": ButtonSequence. The buttons stay where they lit
    # and the object_pose rows are the buttons in colour order. The auxiliary head is a [rows x positions] table of
    # the order (``memory_order``) that the readout dots with the observed position of the next answer
    # (``next_element``) to hand the policy that button's row, as Ballet's table and instruction; the memory is
    # trained by the auxiliary loss alone at its own rate (Ballet's recipe). Asked for the next button's row itself
    # (``memory_slot``, CueRecallPick's recipe) the GRU learnt the first button and pressed it (progress 1.0 of
    # 3 at 300k steps) but never held the rest: after the first press its readout weights were uniform. A press
    # is a touch past the cap top, which the approach shaping's points are.
    "buttonsequence": {
        "env": "chronotope/ButtonSequence-v0",
        "env_kwargs": {"obs_mode": "state", "approach_reward": 2.0},
        "knob": "delay_steps",
        "train_value": 0,
        "recipe": {
            **_RECIPE,
            "steps": 300_000,
            "aux_key": "memory_order",
            "readout_key": "object_pose",
            "readout_query": "next_element",
            "memory_grad": "aux",
            "aux_lr": 1e-3,
            "obs_norm": True,
        },
    },
    # Object memory, "which object was shown": CueRecallPick answered by a touch of the cued block (the blocks are
    # re-placed at the go lamp). Its rows are the blocks in colour order (stable through the episode), so the
    # auxiliary head names the cued row (``memory_slot``) and the entity readout hands the policy that block's
    # row, as on ObjectRecall, standardised by running statistics (``obs_norm``). Without them the row was an
    # unscaled position in metres (spread ~0.25) and the GRU, whose auxiliary loss had fallen to 0.001 by 50k
    # steps, kept touching the nearest block (0.22 at 110k); regressing the place (``memory_place``) without the
    # readout stayed at chance for 210k steps.
    "cuerecalltouch": {
        "env": "chronotope/CueRecallPick-v0",
        "env_kwargs": {"obs_mode": "state", "answer": "touch", "approach_reward": 2.0},
        "knob": "delay_steps",
        "train_value": 20,
        "recipe": {
            **_RECIPE,
            "steps": 300_000,
            "aux_key": "memory_slot",
            "readout_key": "object_pose",
            "obs_norm": True,
        },
    },
}


@dataclass
class Config:
    """Memory agents by RL.

    Attributes:
        task: preset name (key of ``PRESETS``).
        agents: memory cores, all with the same recipe and budget.
        seeds: training seeds.
        steps: environment steps per run (0: the preset's).
        epochs: PPO epochs per update (0: the preset's, else the trainer's default).
        minibatches: minibatches per epoch (0: the preset's, else the trainer's default).
        aux_coef: weight of the auxiliary memory loss for every core (None: the preset's, 1.0 where it names none;
            0: off, though a preset's readout needs it on).
        lr: learning rate for every core, annealed to 0 over the run (0: the preset's, else the trainer's 3e-4).
        memory_cfgs: memory config per core.
        eval_episodes: evaluation episodes per agent, seed, delay and action rule.
        reference_episodes: episodes per reference policy and delay.
        extrapolate: also evaluate at 4x the training value of the knob.
        report: only write the table and curves from the runs found in ``out``.
        out: output folder (runs in ``out/runs``).
        quick: a tiny run exercising every stage (numbers mean nothing).
    """

    task: str = "objectrecall"
    agents: tuple[str, ...] = ("none", "gru", "hcam")
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 0
    epochs: int = 0
    minibatches: int = 0
    aux_coef: float | None = None
    lr: float = 0.0
    memory_cfgs: dict = field(default_factory=lambda: {"hcam": {"hidden_size": 128, "num_heads": 4, "chunk_size": 4}})
    eval_episodes: int = 200
    reference_episodes: int = 200
    extrapolate: bool = True
    report: bool = False
    out: Path = Path("runs/memory_rl")
    quick: bool = False


def _values(cfg: Config) -> list[int]:
    p = PRESETS[cfg.task]
    extrapolate = cfg.extrapolate and p.get("extrapolate", True)
    values = [p["train_value"], 4 * p["train_value"]] if extrapolate else [p["train_value"]]
    return list(dict.fromkeys(values))  # a knob trained at 0 has nothing to extrapolate to


def _atomic_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(obj, indent=1))


def train_config(cfg: Config, agent: str, seed: int):
    from chronotope.agents.config import TrainConfig

    p = PRESETS[cfg.task]
    recipe = {"aux_coef": 1.0, **p["recipe"]}
    if cfg.aux_coef is not None:  # given on the command line: it wins over the preset's
        recipe["aux_coef"] = cfg.aux_coef
    for k in ("steps", "epochs", "minibatches", "lr"):
        if getattr(cfg, k):
            recipe[k] = getattr(cfg, k)
    if cfg.quick:
        recipe.update(steps=2 * 4 * 16, num_envs=4, rollout_len=16, bptt_len=16)
    return TrainConfig(
        env=p["env"],
        agent=agent,
        algo="ppo",
        seed=seed,
        name=f"{cfg.task}-{agent}-s{seed}",
        out_dir=cfg.out / "runs",
        env_kwargs=json.dumps(p["env_kwargs"]),
        memory_cfg=json.dumps({**cfg.memory_cfgs.get(agent, {}), **p.get("memory_cfgs", {}).get(agent, {})}),
        progress=False,
        **recipe,
    )


def training_seconds(run: Path) -> float | None:
    """Training wall-clock of a run from its log: the sum of its updates' durations (env steps of the update / the
    steps per second logged for it), so a resumed run counts every part and a finished one found on disk too."""
    path = run / "progress.jsonl"
    if not path.is_file():
        return None
    total, prev = 0.0, 0
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("sps"):
            total += (rec["step"] - prev) / rec["sps"]
        prev = rec["step"]
    return total


def train_and_evaluate(cfg: Config, agent: str, seed: int) -> dict:
    """Trains one agent (resuming a checkpoint, skipping a finished run) and evaluates it; returns its results."""
    from chronotope.agents.evaluate import EvalConfig, evaluate
    from chronotope.agents.ppo.trainer import PPOTrainer

    tcfg = train_config(cfg, agent, seed)
    run = tcfg.run_dir()
    result_path = run / "results.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    tr = PPOTrainer(tcfg)
    if (run / "checkpoint.pt").is_file():
        tr.restore(run / "checkpoint.pt")
    t0 = time.perf_counter()
    if tr.update < tr.num_updates:
        tr.train()
    train_s = training_seconds(run) or time.perf_counter() - t0
    tr.venv.close()
    p = PRESETS[cfg.task]
    evals: dict[str, dict] = {}
    for value in _values(cfg):
        for rule in ("sampled", "greedy"):
            kw = {**p["env_kwargs"], p["knob"]: value}
            s = evaluate(
                EvalConfig(
                    run=run,
                    episodes=16 if cfg.quick else cfg.eval_episodes,
                    num_envs=16 if not cfg.quick else 4,
                    seed=10_000,
                    deterministic=rule == "greedy",
                    env_kwargs=json.dumps(kw),
                    out=run / f"eval-{p['knob']}{value}-{rule}",
                )
            )
            keys = dict.fromkeys(("success", "return", _metric(cfg)))
            evals[f"{value}/{rule}"] = {k: s[k]["mean"] for k in keys if k in s}
    result = {"agent": agent, "seed": seed, "train_seconds": train_s, "steps": tr.global_step, "evals": evals}
    _atomic_json(result_path, result)
    return result


def _metric(cfg: Config) -> str:
    return PRESETS[cfg.task].get("metric", "success")


def references(cfg: Config) -> dict:
    """random / memoryless bound / perfect / twin at every knob value (cached in ``out/references.json``)."""
    from chronotope.envs.robot.registration import ROBOT_ENV_SPECS
    from chronotope.scripts.experiments.memory_demand import POLICIES, Setting, measure

    path = cfg.out / "references.json"
    cached = json.loads(path.read_text()) if path.is_file() else {}
    p = PRESETS[cfg.task]
    for value in _values(cfg):
        key = str(value)
        if key in cached:
            continue
        kw = {k: v for k, v in p["env_kwargs"].items() if k != "obs_mode"}
        kw[p["knob"]] = value
        family = "arm" if p["env"] in ROBOT_ENV_SPECS else "nav"  # whose reference policies measure it
        setting = Setting(cfg.task, p["env"], f"{p['knob']}={value}", kw, family=family)
        n = 16 if cfg.quick else cfg.reference_episodes
        row = {}
        for policy in POLICIES:
            r = measure(setting, policy, n, 16, seed=10_000)
            row[policy] = r[_metric(cfg)]
            if policy == "memoryless" and r.get("analytic_bound") is not None:
                row["analytic_bound"] = r["analytic_bound"]
        row["bound"] = max(row["memoryless"], row.get("analytic_bound", 0.0))
        cached[key] = row
        _atomic_json(path, cached)
    return cached


def _ci(xs: list[float]) -> tuple[float, float]:
    from chronotope.agents.evaluate import summarize

    s = summarize(xs)
    return s["mean"], s["ci95"]


def report(cfg: Config) -> str:
    """The Markdown table (and learning curves) from every finished run in ``out``."""
    refs = references(cfg)
    p = PRESETS[cfg.task]
    runs_dir = cfg.out / "runs"
    results = []
    for f in sorted(runs_dir.glob(f"{cfg.task}-*-s*/results.json")):
        results.append(json.loads(f.read_text()))
    agents = [a for a in cfg.agents if any(r["agent"] == a for r in results)]
    values = _values(cfg)
    metric = _metric(cfg)
    head = ["policy", "seeds"]
    for v in values:
        head += [f"{metric} {p['knob']}={v} (sampled)", f"greedy {p['knob']}={v}", f"memory score {p['knob']}={v}"]
    head += ["train min"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    summary = {}
    for a in agents:
        rs = [r for r in results if r["agent"] == a]
        row = [f"agent: {a}", str(len(rs))]
        for v in values:
            ref = refs[str(v)]
            samp = [r["evals"][f"{v}/sampled"][metric] for r in rs]
            greedy = [r["evals"][f"{v}/greedy"][metric] for r in rs]
            # The score of the training-time action rule (sampling), fixed in advance, not the better of the two.
            scores = [(x - ref["bound"]) / (ref["perfect"] - ref["bound"]) for x in samp]
            m, c = _ci(samp)
            mg, cg = _ci(greedy)
            ms, cs = _ci(scores)
            summary[(a, v)] = {"sampled": (m, c), "greedy": (mg, cg), "score": (ms, cs)}
            row += [_fmt(m, c), _fmt(mg, cg), _fmt(ms, cs)]
        secs = [training_seconds(runs_dir / f"{cfg.task}-{a}-s{r['seed']}") or r["train_seconds"] for r in rs]
        row.append(f"{np.mean(secs) / 60:.1f}")
        lines.append("| " + " | ".join(row) + " |")
    for name, key in (("random", "random"), ("memoryless bound", "bound"), ("perfect memory", "perfect"),
                      ("twin (memoryless, cue always shown)", "twin")):  # fmt: skip
        row = [f"reference: {name}", "-"]
        for v in values:
            row += [f"{refs[str(v)][key]:.3f}", "", ""]
        row.append("")
        lines.append("| " + " | ".join(row) + " |")
    table = "\n".join(lines)
    (cfg.out / "results.md").write_text(table + "\n")
    if agents:
        from chronotope.scripts.viz.plots import learning_curves

        # finished runs only (the table's): an unfinished one would cut its core's mean curve short
        groups = {a: sorted(p.parent for p in runs_dir.glob(f"{cfg.task}-{a}-s*/results.json")) for a in agents}
        try:
            title = f"{p['env']}: training {metric} (last 100 episodes)"
            learning_curves(groups, metric, cfg.out / f"{cfg.task}_curves.png", title=title)
        except ValueError as e:  # runs too short to have finished an episode (e.g. --quick)
            print(f"no learning curves: {e}")
    print(table)
    return table


def _fmt(m: float, c: float) -> str:
    return f"{m:.3f} ± {c:.3f}" if np.isfinite(c) else f"{m:.3f}"


def run(cfg: Config) -> str:
    if cfg.task not in PRESETS:
        raise ValueError(f"unknown task preset {cfg.task!r}; valid: {sorted(PRESETS)}")
    if not cfg.report:
        for seed in cfg.seeds:
            for agent in cfg.agents:
                r = train_and_evaluate(cfg, agent, seed)
                print(f"{cfg.task} {agent} s{seed}: {r['evals']}", flush=True)
    return report(cfg)


if __name__ == "__main__":
    import tyro

    run(tyro.cli(Config))
