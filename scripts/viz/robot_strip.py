"""Render strips of the arm memory tasks: one seeded episode of the perfect-memory oracle per task, a few front
camera frames at the moments that tell its story (the cue comes on, the cue's last frame, the middle of the
delay or shuffle, the go lamp, the response, the end), one row per task in one PNG.

``python -m chronotope.scripts.viz.robot_strip --out docs/images/robot_memory_strips.png``
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chronotope.envs.robot.registration import ROBOT_ENV_SPECS

NOT_MEMORY_TASKS: tuple[str, ...] = ("chronotope/Reach-v0", "chronotope/PickPlace-v0")
"""Arm tasks that need no memory (no cue, no go lamp): left out of the strips."""
ARM_MEMORY_TASKS: tuple[str, ...] = tuple(i for i in ROBOT_ENV_SPECS if i not in NOT_MEMORY_TASKS)
"""Every arm memory task id, in registration order (the default rows)."""
CUE, RESPONSE = "cue", "response"
"""First and last phase of every arm memory task (the middle one is ``delay`` or ``shuffle``)."""
GAP = 2
"""Pixels of white between frames and between rows."""


@dataclass(frozen=True)
class EpisodeStrip:
    """One task's row: the picture and what it shows."""

    task: str
    """Gymnasium id."""
    image: np.ndarray
    """uint8 [H, W, 3]: the label column, then the frames side by side, each captioned below."""
    steps: tuple[int, ...]
    """Step (observations since reset, 0 = the reset one) of each frame, increasing."""
    phases: tuple[str, ...]
    """The phase at every step of the episode, reset included (length ``length + 1``)."""
    success: bool
    """The episode's final ``info["success"]``."""
    length: int
    """Env steps in the episode."""
    label_width: int
    """Width (px) of the label column at the left of ``image``."""

    @property
    def go_step(self) -> int:
        """First step of the response phase (the go lamp's first frame)."""
        return self.phases.index(RESPONSE)


def key_frames(phases: Sequence[str], k: int) -> list[int]:
    """``k`` distinct steps of an episode whose phase at each step (reset included) is ``phases``, increasing.

    Taken in this order until there are ``k``: the go lamp's first frame, the first cue frame, the last frame, the
    middle of the delay / shuffle (of the cue where the task has no middle phase), the cue's last frame, the middle
    of the response; beyond those, the step farthest from every chosen one (the earliest of a tie), again and again.
    """
    n = len(phases)
    if not 1 <= k <= n:
        raise ValueError(f"frames={k!r}; expected 1 to {n} (the episode has {n} frames, reset included)")
    if RESPONSE not in phases:
        raise ValueError(f"no {RESPONSE!r} phase in the episode (phases: {sorted(set(phases))})")
    go, last = phases.index(RESPONSE), n - 1
    cue = [t for t, p in enumerate(phases) if p == CUE]
    middle = [t for t, p in enumerate(phases) if p not in (CUE, RESPONSE)] or cue or [go]
    first_cue = cue[0] if cue else 0
    cue_end = cue[-1] if cue else max(go - 1, 0)
    chosen: list[int] = []
    for t in (go, first_cue, last, middle[len(middle) // 2], cue_end, (go + last) // 2):
        if len(chosen) < k and t not in chosen:
            chosen.append(t)
    while len(chosen) < k:
        rest = [t for t in range(n) if t not in chosen]
        chosen.append(max(rest, key=lambda t: min(abs(t - c) for c in chosen)))
    return sorted(chosen)


def short_name(task: str) -> str:
    """``chronotope/ShellGame-v0`` -> ``ShellGame``."""
    return task.split("/")[-1].rsplit("-v", 1)[0]


def _check_task(task: str) -> None:
    if task not in ROBOT_ENV_SPECS:
        raise ValueError(f"unknown arm task {task!r}; valid: {ARM_MEMORY_TASKS}")
    if task in NOT_MEMORY_TASKS:
        raise ValueError(f"{task!r} is not a memory task (no cue, no go lamp); valid: {ARM_MEMORY_TASKS}")


def _label_column(lines: Sequence[str], height: int, size: int) -> np.ndarray:
    from chronotope.envs.render.colorize import label_image, text_width

    width = max(text_width(s, size) for s in lines) + 8
    line_h = size + 5
    col = np.concatenate([label_image(s, width, line_h, size) for s in lines], 0)
    top = max((height - col.shape[0]) // 2, 0)
    out = np.full((max(height, col.shape[0]), width, 3), 255, np.uint8)
    out[top : top + col.shape[0]] = col
    return out


def episode_strip(task: str, frames: int = 6, size: int = 160, seed: int = 0) -> EpisodeStrip:
    """Runs the perfect-memory oracle on one seeded episode of ``task`` and draws ``frames`` front camera frames
    of it (chosen by :func:`key_frames`), each ``size`` px square and captioned with its step and phase (the go
    lamp's frame says so), after a label column with the task, its outcome and length.

    The episode is the one :func:`chronotope.envs.robot.oracles.evaluate` runs first with this ``seed`` (env seed
    ``seed``, policy seed ``policy_seed(seed)``). Raises ValueError for a task that is not an arm memory task and
    for a frame count outside 1 to the episode's frames.
    """
    _check_task(task)
    if frames < 1:
        raise ValueError(f"frames={frames!r}; expected >= 1")
    if size < 16:
        raise ValueError(f"size={size!r}; expected >= 16 px")
    import gymnasium as gym
    import mujoco  # after this module's import of chronotope.envs.robot, which sets MUJOCO_GL

    from chronotope.envs.robot import arm_constants as C
    from chronotope.envs.robot.oracles import make_policy, policy_seed
    from chronotope.envs.robot.registration import register_robot_envs

    register_robot_envs()
    env = gym.make(task)
    model = env.unwrapped.model
    # This env's own model: the offscreen buffer may grow to the asked size without touching anyone else's.
    model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), size)
    model.vis.global_.offheight = max(int(model.vis.global_.offheight), size)
    renderer = mujoco.Renderer(model, size, size)
    try:
        oracle = make_policy(env, "perfect", seed=seed)
        obs, info = env.reset(seed=seed)
        oracle.reset(obs, seed=policy_seed(seed))
        data = env.unwrapped.data

        def shot() -> np.ndarray:
            renderer.update_scene(data, camera=C.FRONT_CAMERA)
            return renderer.render().copy()

        pictures, phases = [shot()], [str(info["phase"])]
        done = False
        while not done:
            obs, _, term, trunc, info = env.step(oracle.act(obs))
            pictures.append(shot())
            phases.append(str(info["phase"]))
            done = term or trunc
    finally:
        renderer.close()
        env.close()
    if frames > len(phases):
        raise ValueError(f"frames={frames!r}; {task} seed {seed} has only {len(phases)} frames (reset included)")
    steps = key_frames(phases, frames)
    go = phases.index(RESPONSE)
    success = bool(info["success"])
    image, label_width = _draw(task, pictures, phases, steps, go, success, seed, size)
    return EpisodeStrip(
        task=task,
        image=image,
        label_width=label_width,
        steps=tuple(steps),
        phases=tuple(phases),
        success=success,
        length=len(phases) - 1,
    )


def _draw(
    task: str,
    pictures: list[np.ndarray],
    phases: list[str],
    steps: list[int],
    go: int,
    success: bool,
    seed: int,
    size: int,
) -> tuple[np.ndarray, int]:
    """The strip's picture and the width of its label column."""
    from chronotope.envs.render.colorize import label_image

    font = max(9, min(13, size // 13))
    caption_h = font + 6
    tiles = []
    for t in steps:
        caption = f"t={t} {phases[t]}" + (" (go)" if t == go else "")
        tiles.append(np.concatenate([pictures[t], label_image(caption, size, caption_h, font)], 0))
    tiles = [np.pad(p, ((0, 0), (0, GAP), (0, 0)), constant_values=255) for p in tiles]
    row = np.concatenate(tiles, 1)[:, :-GAP]
    lines = [short_name(task), "success" if success else "failure", f"{len(phases) - 1} steps", f"seed {seed}"]
    label = _label_column(lines, row.shape[0], font + 1)
    if label.shape[0] > row.shape[0]:
        row = np.pad(row, ((0, label.shape[0] - row.shape[0]), (0, 0), (0, 0)), constant_values=255)
    return np.concatenate([label, row], 1), label.shape[1]


def stack_strips(strips: Sequence[EpisodeStrip]) -> np.ndarray:
    """One picture, uint8 [H, W, 3]: the strips one under another (rows = tasks), ``GAP`` px of white between
    rows; a narrower label column is widened on its right so that every row's frames start at one x."""
    if not strips:
        raise ValueError("no strips to stack")
    label_w = max(s.label_width for s in strips)
    width = label_w + max(s.image.shape[1] - s.label_width for s in strips)
    out = np.full((sum(s.image.shape[0] for s in strips) + GAP * (len(strips) - 1), width, 3), 255, np.uint8)
    y = 0
    for s in strips:
        h = s.image.shape[0]
        out[y : y + h, : s.label_width] = s.image[:, : s.label_width]
        out[y : y + h, label_w : label_w + s.image.shape[1] - s.label_width] = s.image[:, s.label_width :]
        y += h + GAP
    return out


def write_png(image: np.ndarray, path: str | Path) -> Path:
    """Writes ``image`` as a PNG through a temporary file in the same folder and a rename, so a reader sees the
    old picture or the new one, never a torn one; makes the folder."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        Image.fromarray(image).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def robot_strips(
    tasks: Sequence[str] = ARM_MEMORY_TASKS, frames: int = 6, size: int = 160, seed: int = 0
) -> list[EpisodeStrip]:
    """:func:`episode_strip` of every task (every id checked before any episode runs)."""
    if not tasks:
        raise ValueError("no tasks")
    for task in tasks:
        _check_task(task)
    return [episode_strip(task, frames, size, seed) for task in tasks]


@dataclass
class RobotStripConfig:
    """Options of ``python -m chronotope.scripts.viz.robot_strip``."""

    out: Path = Path("docs/images/robot_memory_strips.png")
    """PNG to write (rows = tasks)."""
    tasks: tuple[str, ...] = ARM_MEMORY_TASKS
    """Arm memory task ids, one row each (default: every one)."""
    frames: int = 6
    """Frames per row."""
    size: int = 160
    """Side (px) of each front camera frame."""
    seed: int = 0
    """Episode seed (the same episode in every run)."""


def main(cfg: RobotStripConfig) -> Path:
    """Draws the strips, writes the PNG, says where."""
    strips = robot_strips(cfg.tasks, cfg.frames, cfg.size, cfg.seed)
    out = write_png(stack_strips(strips), cfg.out)
    for s in strips:
        print(f"{short_name(s.task)}: {'success' if s.success else 'failure'} in {s.length} steps, frames {s.steps}")
    print(f"wrote {out.resolve()}")
    return out


if __name__ == "__main__":
    import tyro

    main(tyro.cli(RobotStripConfig))
