"""Vision-and-language navigation (VLN-CE conventions): follow a generated English instruction, STOP at the goal.

Measures follow VLN-CE (Krantz et al. 2020) and ``shared/specs/nav-metrics.md``: navigation error, success and
oracle success within 3.0 m, SPL, nDTW / SDTW (Ilharco et al. 2019) with exact DTW, trajectory length, steps, and
the Touchdown / Mem4Nav task completion and shortest-path distance (SPD).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from gymnasium import spaces

from chronotope.envs.tasks.base import Episode, Task, register_task
from chronotope.envs.tasks.instructions import default_tokenizer
from chronotope.envs.tasks.measures import NAV_MEASURES, Measure
from chronotope.envs.tasks.sensors import Sensor
from chronotope.envs.tasks.vln_dataset import (
    approach_masks,
    densify,
    load_dataset,
    parse_scene_id,
    quaternion_to_yaw,
    sample_vln_episode,
)

EPISODE_ORDERS = ("sequential", "sample", "seed")


# ------------------------------------------------------------------------------------------------ measures
class NDTW(Measure):
    """nDTW = exp(-DTW(Q, R) / (|R| * r)), r = the success radius (3.0 m in VLN).

    Q is the agent's position after reset and after every step (one per step, duplicates kept); R is the
    episode's ``extra["ndtw_reference"]`` [M, 2]. DTW is exact: the dynamic-programming table grows by one row
    per step, and the new row is computed in one vectorised pass per step for all environments using
    ``row[j] = S[j] + min_{k <= j}(a[k] - S[k])`` with ``a[k] = c[k] + min(prev[k], prev[k - 1])`` and ``S`` the
    running sum of the row's point costs ``c`` (the left-neighbour recursion unrolled as a prefix minimum).
    Reads ``ctx.sim.position`` [N, 2] and ``ctx.episodes``.
    """

    uuid = "ndtw"

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self._ref = np.zeros((n, 1, 2))  # [N, Mmax, 2] reference points, padded
        self._len = np.ones(n, np.int64)  # [N] |R|
        self._row = np.zeros((n, 1))  # [N, Mmax] last DP row: acc[t][j] = DTW(Q[:t], R[:j+1])
        self.dtw = np.zeros(n)  # [N] current DTW distance

    def _grow(self, m: int) -> None:
        n, cur = self._row.shape
        if m > cur:
            self._ref = np.concatenate([self._ref, np.zeros((n, m - cur, 2))], 1)
            self._row = np.concatenate([self._row, np.full((n, m - cur), np.inf)], 1)

    def _valid(self) -> np.ndarray:
        return np.arange(self._row.shape[1])[None, :] < self._len[:, None]  # [N, Mmax]

    def reset_metric(self, idx, ctx) -> None:
        idx = np.asarray(idx, np.int64)
        refs = [np.asarray(ctx.episodes[i].extra["ndtw_reference"], float).reshape(-1, 2) for i in idx]
        for i, r in zip(idx, refs):
            if len(r) == 0:
                raise ValueError(f"environment {i}: empty nDTW reference path")
        self._grow(max(len(r) for r in refs))
        for i, r in zip(idx, refs):
            self._ref[i] = r[-1]
            self._ref[i, : len(r)] = r
            self._len[i] = len(r)
        valid = self._valid()[idx]
        c = np.linalg.norm(ctx.sim.position[idx, None, :] - self._ref[idx], axis=-1)
        # first row: the start point is matched to R[0..j] in order
        self._row[idx] = np.where(valid, np.cumsum(np.where(valid, c, 0.0), axis=1), np.inf)
        self._set_value(idx, ctx.success_radius)

    def update_metric(self, ctx) -> None:
        valid = self._valid()
        c = np.where(valid, np.linalg.norm(ctx.sim.position[:, None, :] - self._ref, axis=-1), 0.0)  # [N, M]
        prev = self._row
        diag = np.concatenate([np.full((len(prev), 1), np.inf), prev[:, :-1]], 1)
        a = c + np.minimum(prev, diag)
        s = np.cumsum(c, axis=1)
        row = s + np.minimum.accumulate(a - s, axis=1)
        self._row = np.where(valid, row, np.inf)
        self._set_value(np.arange(len(prev)), ctx.success_radius)

    def _set_value(self, idx: np.ndarray, radius: float) -> None:
        m = self._len[idx]
        self.dtw[idx] = self._row[idx, m - 1]
        self.value[idx] = np.exp(-self.dtw[idx] / (m * radius))


class SDTW(Measure):
    """SDTW = S * nDTW."""

    uuid = "sdtw"

    def update_metric(self, ctx) -> None:
        self.value[:] = ctx.measures["success"].value * ctx.measures["ndtw"].value


class TaskCompletion(Measure):
    """Touchdown / Mem4Nav task completion: 1 iff the agent is within the success radius (geodesic) of the goal
    where it is now, so at the episode's end where it stopped, whether by STOP or by the time limit."""

    uuid = "task_completion"

    def reset_metric(self, idx, ctx) -> None:
        self.value[idx] = (ctx.distance_to_goal[idx] <= ctx.success_radius).astype(float)

    def update_metric(self, ctx) -> None:
        self.value[:] = (ctx.distance_to_goal <= ctx.success_radius).astype(float)


class SPD(Measure):
    """Mem4Nav shortest-path distance: geodesic distance from the agent (its stop position at the end) to the goal."""

    uuid = "spd"

    def reset_metric(self, idx, ctx) -> None:
        self.value[idx] = ctx.distance_to_goal[idx]

    def update_metric(self, ctx) -> None:
        self.value[:] = ctx.distance_to_goal


VLN_MEASURES: tuple[type[Measure], ...] = (*NAV_MEASURES, NDTW, SDTW, TaskCompletion, SPD)


# ------------------------------------------------------------------------------------------------ task
@register_task("vln")
class VLNTask(Task):
    """Task sheet.

    Description: follow an English route instruction through the apartment ("Leave the bedroom and turn left.
    Walk past the red sofa. Enter the kitchen. Stop next to the white fridge.") and call STOP at its end.
    Randomisations (generated episodes): scene (from the pool), a goal landmark object and a navigable goal next to
    it, a start at geodesic distance in ``[min_distance, max_distance]``, start heading, instruction phrasing.
    With ``episodes_file`` (a dataset from ``chronotope vln-dataset``) episodes are replayed from the file instead,
    in file order (``episode_order="sequential"``, one cursor shared by all environments of the core), drawn
    with each environment's generator (``"sample"``), or by seed (``"seed"``: a reset seeded with ``s`` replays the
    file's episode ``s`` mod its length, whichever environment runs it, so the rollout loop's episode list
    ``range(n)`` is the file's first ``n`` episodes; episodes of a generator after its first, the auto-resets, are
    drawn as in ``"sample"``); the file's scenes replace the configured scene pool.
    Reference path: the geodesic shortest path from start to goal (descent of the goal's distance field, pulled
    taut by line of sight), waypoints every ``waypoint_spacing`` m, in ``episode.extra["reference_path"]``.
    Observations (task sensor): ``instruction`` int64 [max_instruction_length], token ids of the fixed vocabulary
    (``assets/vln/vocab.txt``; 0 = padding, 1 = unknown word). The text is ``info["instruction"]`` and
    ``core.episodes[i].extra["instruction"]``.
    Success: STOP called within ``success_radius`` = 3.0 m (geodesic) of the goal.
    Measures: distance_to_goal (NE), success, oracle_success, spl, soft_spl, path_length (TL), collisions, steps,
    ndtw, sdtw, task_completion, spd. nDTW compares the agent's per-step positions with the reference path
    densified to ``ndtw_spacing`` (default: the forward step, as VLN-CE's per-step ground-truth locations).
    Reward terms: ``progress`` (decrease of geodesic distance), ``success`` (+2.5), ``slack`` (-0.01 / step).

    Args:
        min_distance: smallest start-goal geodesic distance of generated episodes (m).
        max_distance: largest start-goal geodesic distance of generated episodes (m).
        success_radius: success / task-completion radius (m).
        episodes_file: a VLN dataset file to replay instead of generating episodes.
        episode_order: "sequential", "sample" or "seed" (replay only).
        max_instruction_length: length of the ``instruction`` observation (tokens; longer texts are cut).
        waypoint_spacing: reference path resolution of generated episodes (m).
        ndtw_spacing: densify the reference path to this spacing for nDTW (m); None uses the waypoints as they are.
        landmark_reach: the goal lies within this distance (m) of its landmark's footprint, beyond the agent radius.
    """

    success_radius = 3.0
    cache_attrs = ("_approach",)

    def __init__(
        self,
        min_distance: float = 5.0,
        max_distance: float = 20.0,
        success_radius: float = 3.0,
        episodes_file: str | None = None,
        episode_order: str = "sequential",
        max_instruction_length: int = 80,
        waypoint_spacing: float = 0.5,
        ndtw_spacing: float | None = 0.25,
        landmark_reach: float = 0.4,
        **kw,
    ) -> None:
        super().__init__(**kw)
        if not (0 <= min_distance < max_distance):
            raise ValueError(f"need 0 <= min_distance < max_distance, got {min_distance!r}, {max_distance!r}")
        if not success_radius > 0:
            raise ValueError(f"success_radius must be > 0, got {success_radius!r}")
        if episode_order not in EPISODE_ORDERS:
            raise ValueError(f"unknown episode_order {episode_order!r}; valid: {EPISODE_ORDERS}")
        if not (isinstance(max_instruction_length, (int, np.integer)) and max_instruction_length > 0):
            raise ValueError(f"max_instruction_length must be a positive integer, got {max_instruction_length!r}")
        if not waypoint_spacing > 0:
            raise ValueError(f"waypoint_spacing must be > 0, got {waypoint_spacing!r}")
        if ndtw_spacing is not None and not ndtw_spacing > 0:
            raise ValueError(f"ndtw_spacing must be > 0 or None, got {ndtw_spacing!r}")
        if not landmark_reach > 0:
            raise ValueError(f"landmark_reach must be > 0, got {landmark_reach!r}")
        self.min_distance = float(min_distance)
        self.max_distance = float(max_distance)
        self.success_radius = float(success_radius)
        self.episode_order = episode_order
        self.max_instruction_length = int(max_instruction_length)
        self.waypoint_spacing = float(waypoint_spacing)
        self.ndtw_spacing = None if ndtw_spacing is None else float(ndtw_spacing)
        self.landmark_reach = float(landmark_reach)
        self.tokenizer = default_tokenizer()
        self.episodes_file = None if episodes_file is None else str(episodes_file)
        self.dataset = load_dataset(self.episodes_file) if self.episodes_file is not None else None
        self.cursor = 0  # next episode of a sequential replay
        self._scene_index: dict[int, int] = {}
        self._approach: dict[int, dict[int, np.ndarray]] = {}

    def measure_types(self) -> tuple[type[Measure], ...]:
        return VLN_MEASURES

    # --------------------------------------------------------------------------------- core hooks
    def scene_pool(self, cfg) -> list | None:
        """The dataset's scenes (replaces the configured pool) when replaying a file; None otherwise."""
        if self.dataset is None:
            return None
        from chronotope.envs.nav.core import load_scene_pool

        if cfg.scene_files:
            raise ValueError(
                f"episodes_file {self.episodes_file!r} names its own scenes; "
                f"do not pass scene_files {cfg.scene_files!r}"
            )
        seeds = sorted({parse_scene_id(e["scene_id"]) for e in self.dataset["episodes"]})
        self._scene_index = {s: k for k, s in enumerate(seeds)}
        sc = self.dataset.get("scene_config") or None
        return load_scene_pool(dataclasses.replace(cfg, scene_seeds=tuple(seeds), scene_config=sc))

    def sample_episode(self, core, rng: np.random.Generator) -> Episode:
        if self.dataset is not None:
            return self._replay(core, rng)
        for _ in range(100):
            scene = int(rng.integers(len(core.scenes)))
            grid, main = core.grids[scene], core.main_component(scene)
            if scene not in self._approach:
                self._approach[scene] = approach_masks(
                    core.scenes[scene], grid, main, core.agent.radius + self.landmark_reach
                )
            ep = sample_vln_episode(
                core.scenes[scene],
                grid,
                main,
                rng,
                self._approach[scene],
                self.min_distance,
                self.max_distance,
                self.waypoint_spacing,
                self.max_instruction_length,
                tries=5,
            )
            if ep is not None:
                return self._episode(
                    scene,
                    grid,
                    ep.start_position,
                    ep.start_yaw,
                    ep.goal_position,
                    ep.field,
                    ep.reference_path,
                    ep.instruction,
                    -1,
                    ep.goal_instance_id,
                )
        raise RuntimeError(f"could not sample a VLN episode in 100 tries: scenes too small for {self.min_distance} m")

    def _replay(self, core, rng: np.random.Generator) -> Episode:
        eps = self.dataset["episodes"]
        if self.episode_order == "sequential":
            rec = eps[self.cursor % len(eps)]
            self.cursor += 1
        else:
            seed = core.reset_seed  # the seed this reset was asked for (None for an auto-reset)
            j = int(rng.integers(len(eps)))
            rec = eps[seed % len(eps) if self.episode_order == "seed" and seed is not None else j]
        scene = self._scene_index[parse_scene_id(rec["scene_id"])]
        grid = core.grids[scene]
        start = np.asarray(rec["start_position"], float)[:2]
        goal = np.asarray(rec["goals"][0]["position"], float)[:2]
        for name, p in (("start_position", start), ("goal", goal)):
            if not grid.is_navigable(p):
                raise ValueError(
                    f"episode {rec['episode_id']!r} of {self.episodes_file!r}: {name} {p.tolist()} is not navigable "
                    f"in {rec['scene_id']} (different scene_config or agent radius?)"
                )
        field = grid.distance_field(goals_xy=goal[None])
        path = np.asarray(rec["reference_path"], float).reshape(-1, 3)[:, :2]
        text = rec["instruction"]["instruction_text"]
        yaw = quaternion_to_yaw(rec["start_rotation"])
        goal_id = int(rec.get("info", {}).get("goal_instance_id", -1))
        return self._episode(scene, grid, start, yaw, goal, field, path, text, int(rec["episode_id"]), goal_id)

    def _episode(self, scene, grid, start, yaw, goal, field, path, text, episode_id, goal_id) -> Episode:
        d0 = float(grid.lookup(field, np.asarray(start, float)))
        if not np.isfinite(d0):
            raise ValueError(f"episode {episode_id!r}: start {np.asarray(start).tolist()} cannot reach the goal")
        return Episode(
            scene,
            np.asarray(start, float),
            float(yaw),
            np.asarray(goal, float),
            field,
            d0,
            d0,  # VLN-CE's SPL uses the start-goal geodesic distance
            extra={
                "instruction": text,
                "instruction_tokens": self.tokenizer.encode(text, self.max_instruction_length),
                "reference_path": np.asarray(path, float),
                "ndtw_reference": path if self.ndtw_spacing is None else densify(path, self.ndtw_spacing),
                "episode_id": episode_id,
                "goal_instance_id": goal_id,
            },
        )

    # --------------------------------------------------------------------------------- sensors
    def declare_sensors(self, core) -> list[Sensor]:
        return [
            Sensor(
                "instruction",
                lambda core: spaces.Box(0, len(self.tokenizer) - 1, (self.max_instruction_length,), np.int64),
                self.instruction_tokens,
            )
        ]

    def instruction_tokens(self, core) -> np.ndarray:
        """int64 [N, max_instruction_length]: each episode's tokenised instruction (zeros before the first)."""
        out = np.zeros((core.n, self.max_instruction_length), np.int64)
        for i, ep in enumerate(core.episodes):
            if ep is not None:
                out[i] = ep.extra["instruction_tokens"]
        return out

    def modify_state(self, core, sel: np.ndarray, obs: dict[str, np.ndarray]) -> None:
        """In ``state`` mode the generic ``goal`` vector would give the goal away: the instruction must."""
        obs["goal"] = np.zeros_like(obs["goal"])

    def info(self, core) -> dict[str, np.ndarray]:
        eps = core.episodes
        return {
            "instruction": np.array([ep.extra["instruction"] if ep is not None else "" for ep in eps], dtype=str),
            "episode_id": np.array([ep.extra["episode_id"] if ep is not None else -1 for ep in eps], np.int64),
        }


# ------------------------------------------------------------------------------------------------ expert
class VLNExpert:
    """The shortest-path expert on the goal's geodesic field (whose descent is the reference path), for VLN.

    It walks to within ``stop_distance`` of the goal rather than stopping at the 3 m success radius, so that its
    trajectory covers the whole reference path (nDTW). Where the field-following expert is boxed in by the
    discrete headings (no forward step lowers the distance for ``patience`` steps) it STOPs if inside the success
    radius and otherwise tries one forward step, whose slide along the obstacle usually frees it.
    ``act(core)`` returns int64 actions [N].
    """

    def __init__(self, stop_distance: float = 0.25, patience: int = 24) -> None:
        self.stop_distance = float(stop_distance)
        self.patience = int(patience)
        self._episodes: list = []
        self._best = np.zeros(0)
        self._idle = np.zeros(0, np.int64)

    def act(self, core) -> np.ndarray:
        from chronotope.envs.nav.expert import ShortestPathExpert
        from chronotope.envs.sim.kinematic import MOVE_FORWARD, STOP

        if len(self._episodes) != core.n:
            self._episodes = [None] * core.n
            self._best = np.full(core.n, np.inf)
            self._idle = np.zeros(core.n, np.int64)
        for i, ep in enumerate(core.episodes):
            if ep is not self._episodes[i]:
                self._episodes[i], self._best[i], self._idle[i] = ep, np.inf, 0
        d = core.distance_to_goal
        better = d < self._best - 1e-6
        self._best = np.where(better, d, self._best)
        self._idle = np.where(better, 0, self._idle + 1)
        actions = ShortestPathExpert(stop_margin=core.success_radius - self.stop_distance).act(core)
        stuck = self._idle >= self.patience
        actions = np.where(stuck, np.where(d <= core.success_radius, STOP, MOVE_FORWARD), actions)
        self._idle = np.where(stuck, self.patience // 2, self._idle)  # next forward try half a turn later
        return actions.astype(np.int64)
