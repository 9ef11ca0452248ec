"""TargetSequence: reach coloured targets named one at a time, for a fixed number of steps (after Memory Maze)."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from chronotope.envs.tasks.base import Episode, polar, start_frame
from chronotope.envs.tasks.measures import DistanceToGoal, Measure, PathLength, Steps
from chronotope.envs.tasks.visibility import PALETTE, MemoryTask, paint

NUM_COLOURS = len(PALETTE)


class TargetSequenceTask(MemoryTask):
    """Task sheet.

    Description: K pieces of furniture, in different rooms where the apartment has enough rooms, are painted
    each in a distinct saturated colour for the whole episode (per-episode assignment of objects and colours).
    The observation names one colour at a time; reaching that object (within ``success_radius`` = 1 m geodesic
    of its navigable surroundings, no STOP needed) pays +1 and names a new target drawn uniformly from the other
    K - 1. Episodes never terminate: they last ``max_episode_steps`` (1000 at registration) and the score is the
    number of targets reached. Remembering where each colour is turns search into direct navigation.

    Randomisations: scene, the K objects and their colours, start pose, the sequence of named targets.
    Observations (task sensors, every mode): ``target_color`` one-hot [8] over the palette (red, green, blue,
    yellow, magenta, cyan, orange, purple), ``gps`` / ``compass`` (start frame). In ``rgb`` the targets' pixels
    (by instance id) are painted their colour. Modes without colour (``depth``, ``state``) add
    ``visible_targets`` [8, 3]: per palette colour (visible, distance, angle) of that colour's target when it is
    in view now (walls occlude), zeros otherwise. In ``state`` mode ``goal`` is the named target's (distance,
    angle) only while it is visible, zeros otherwise.
    STOP does nothing (it is a no-op action here).
    Reward terms: ``success`` (+1 per target reached), ``progress`` and ``slack`` (0: kept for the uniform
    reward interface; no shaping leaks where an unseen target is).
    Measures: ``score`` (targets reached), ``success`` (1 at a step where the named target is reached),
    ``time_to_target`` (mean steps from naming a target to reaching it, over the targets reached),
    ``distance_to_goal`` (geodesic to the named target), ``path_length``, ``steps``.

    Args:
        num_targets: K, 2 to 8.
        success_radius: reach distance (m).
    """

    name = "target_sequence"

    def __init__(self, num_targets: int = 3, success_radius: float = 1.0, success_reward: float = 1.0) -> None:
        super().__init__(success_radius=success_radius, success_reward=success_reward, slack_reward=0.0)
        if not isinstance(num_targets, (int, np.integer)) or not (2 <= num_targets <= NUM_COLOURS):
            raise ValueError(f"num_targets must be an integer in 2..{NUM_COLOURS}, got {num_targets!r}")
        self.num_targets = int(num_targets)

    def allocate(self, n: int) -> None:
        k = self.num_targets
        self.instances = np.zeros((n, k), np.int64)  # target instance ids
        self.colours = np.zeros((n, k), np.int64)  # palette index of each target
        self.xy = np.zeros((n, k, 2))
        self.current = np.zeros(n, np.int64)  # index into the K targets
        self.score = np.zeros(n)
        self.since = np.zeros(n)  # steps since the current target was named
        self.time_sum = np.zeros(n)
        self.reached = np.zeros(n, bool)

    def sample_episode(self, core, rng: np.random.Generator) -> Episode:
        k = self.num_targets
        for _ in range(200):
            scene = int(rng.integers(len(core.scenes)))
            spec = core.scenes[scene]
            objs = [o for o in spec.objects if self.object_field(core, scene, o.instance_id) is not None]
            if len(objs) < k:
                continue
            # Spread over rooms: one object per room first (random room order), then fill up.
            order = rng.permutation(len(objs))
            chosen, rooms = [], set()
            for j in order:
                if objs[j].room_id not in rooms:
                    chosen.append(objs[j])
                    rooms.add(objs[j].room_id)
            chosen = chosen[:k]
            for j in order:
                if len(chosen) >= k:
                    break
                if objs[j] not in chosen:
                    chosen.append(objs[j])
            colours = rng.choice(NUM_COLOURS, size=k, replace=False)
            first = int(rng.integers(k))
            field = self.object_field(core, scene, chosen[first].instance_id)
            grid = core.grids[scene]
            h, w = grid.shape
            ok = core.main_component(scene) & (field[:h, :w] > self.success_radius)
            if not ok.any():
                continue
            start = grid.sample_navigable(rng, 1, ok)[0]
            d0 = float(grid.lookup(field[:h, :w], start))
            return Episode(
                scene,
                start,
                float(rng.uniform(-np.pi, np.pi)),
                np.asarray(chosen[first].center, float),
                field,
                d0,
                max(d0 - self.success_radius, 0.0),
                extra={
                    "instances": [o.instance_id for o in chosen],
                    "colours": [int(c) for c in colours],
                    "first": first,
                },
            )
        raise ValueError(f"could not sample a TargetSequence episode: no scene has {k} reachable objects")

    def on_reset(self, core, idx: np.ndarray, rngs) -> None:
        self.ensure(core)
        self.remember_rngs(idx, rngs)
        for i in idx:
            ep = core.episodes[i]
            spec = core.scenes[ep.scene]
            self.instances[i] = ep.extra["instances"]
            self.colours[i] = ep.extra["colours"]
            self.xy[i] = [spec.object_by_instance(int(t)).center for t in ep.extra["instances"]]
            self.current[i] = ep.extra["first"]
        for a in (self.score, self.since, self.time_sum):
            a[idx] = 0.0
        self.reached[idx] = False

    def on_step(self, core, actions: np.ndarray) -> None:
        self.since += 1
        self.reached = core.distance_to_goal <= self.success_radius
        for i in np.flatnonzero(self.reached):
            rng = self._rngs[i]
            self.score[i] += 1
            self.time_sum[i] += self.since[i]
            self.since[i] = 0
            nxt = int(rng.integers(self.num_targets - 1))
            self.current[i] = nxt + (nxt >= self.current[i])
            scene = int(core.sim.scene[i])
            field = self.object_field(core, scene, int(self.instances[i, self.current[i]]))
            self.set_goal_field(core, i, field, self.xy[i, self.current[i]])
        if self.reached.any():
            core._update_distance()

    def terminated(self, core) -> np.ndarray:
        return np.zeros(core.n, bool)

    def reward_terms(self, core, prev_distance: np.ndarray) -> dict[str, np.ndarray]:
        zero = np.zeros(core.n)
        return {"progress": zero, "success": self.success_reward * self.reached.astype(float), "slack": zero.copy()}

    def measure_types(self) -> tuple[type[Measure], ...]:
        return (DistanceToGoal, _Score, _Reached, _MeanTimeToTarget, PathLength, Steps)

    # ----------------------------------------------------------------------------------------- observations
    def visible_targets(self, core) -> np.ndarray:
        """float32 [N, 8, 3]: per palette colour, (visible, distance, angle) of its target if in view."""
        self.ensure(core)
        n, k = core.n, self.num_targets
        out = np.zeros((n, NUM_COLOURS, 3), np.float32)
        vis = self.visible(core, self.xy)  # [N, K]
        pol = polar(
            np.repeat(core.sim.position, k, 0), np.repeat(core.sim.yaw, k, 0), self.xy.reshape(n * k, 2)
        ).reshape(n, k, 2)
        pol[..., 0] = np.minimum(pol[..., 0], core.max_extent)
        rows, cols = np.nonzero(vis)
        out[rows, self.colours[rows, cols], 0] = 1.0
        out[rows, self.colours[rows, cols], 1:] = pol[rows, cols]
        return out

    def sensor_spaces(self, core) -> dict[str, spaces.Space]:
        d = core.max_extent
        out: dict[str, spaces.Space] = {
            "target_color": spaces.Box(0.0, 1.0, (NUM_COLOURS,), np.float32),
            "gps": spaces.Box(-d, d, (2,), np.float32),
            "compass": spaces.Box(-np.pi, np.pi, (1,), np.float32),
        }
        if core.cfg.obs_mode != "rgbd":
            lo = np.tile(np.array([0.0, 0.0, -np.pi], np.float32), (NUM_COLOURS, 1))
            hi = np.tile(np.array([1.0, d, np.pi], np.float32), (NUM_COLOURS, 1))
            out["visible_targets"] = spaces.Box(lo, hi, dtype=np.float32)
        return out

    def named_colour(self) -> np.ndarray:
        return self.colours[np.arange(self._n), self.current]

    def sensors(self, core) -> dict[str, np.ndarray]:
        self.ensure(core)
        gps, compass = start_frame(core.sim.position, core.sim.yaw, core.start_position, core.start_yaw)
        out = {
            "target_color": np.eye(NUM_COLOURS, dtype=np.float32)[self.named_colour()],
            "gps": np.clip(gps, -core.max_extent, core.max_extent).astype(np.float32),
            "compass": compass[:, None].astype(np.float32),
        }
        if core.cfg.obs_mode != "rgbd":
            out["visible_targets"] = self.visible_targets(core)
        return out

    def modify_state(self, core, sel: np.ndarray, obs: dict[str, np.ndarray]) -> None:
        vt = self.visible_targets(core)[sel]  # [n, 8, 3]
        named = vt[np.arange(len(sel)), self.named_colour()[sel]]  # [n, 3]
        obs["goal"] = (named[:, 1:] * named[:, :1]).astype(np.float32)

    def modify_pixels(self, core, sel: np.ndarray, obs: dict[str, np.ndarray], out) -> None:
        if "rgb" not in obs:
            return
        sem = out.semantic.cpu().numpy()
        for r, i in enumerate(sel):
            for inst, c in zip(self.instances[i], self.colours[i]):
                paint(obs["rgb"][r], sem[r] == inst, PALETTE[c], strength=0.9)

    def info(self, core) -> dict[str, np.ndarray]:
        return {"target_index": self.current.astype(float)}


class _Score(Measure):
    """Targets reached so far in the episode."""

    uuid = "score"

    def update_metric(self, ctx) -> None:
        self.value[:] = ctx.task.score


class _Reached(Measure):
    """1 at a step where the named target was reached."""

    uuid = "success"

    def update_metric(self, ctx) -> None:
        self.value[:] = ctx.task.reached


class _MeanTimeToTarget(Measure):
    """Mean steps from naming a target to reaching it (0 before the first)."""

    uuid = "time_to_target"

    def update_metric(self, ctx) -> None:
        t = ctx.task
        self.value[:] = np.where(t.score > 0, t.time_sum / np.maximum(t.score, 1), 0.0)
