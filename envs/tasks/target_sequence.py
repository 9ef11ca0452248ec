"""TargetSequence: reach coloured targets named one at a time, for a fixed number of steps (after Memory Maze)."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from chronotope.envs.tasks.base import Episode, polar, register_task
from chronotope.envs.tasks.measures import DistanceToGoal, Measure, PathLength, Steps
from chronotope.envs.tasks.sensors import CompassSensor, GPSSensor, OneHotSensor, Sensor
from chronotope.envs.tasks.visibility import PALETTE, MemoryTask, paint

NUM_COLOURS = len(PALETTE)
DEFAULT_HORIZON = 1000  # max_episode_steps at registration (the single env does not pass it to the core)


@register_task("target_sequence")
class TargetSequenceTask(MemoryTask):
    """Task sheet.

    Description: K pieces of furniture, in different rooms where the apartment has enough rooms and with goal
    regions at least ``min_separation`` (3 m) apart, are painted each in a distinct saturated colour for the whole
    episode (per-episode assignment of objects and colours). A target's colour can be made out only within
    ``colour_range`` (2 m) of its centre; farther away it looks like any other furniture. The observation names one
    colour at a time; reaching that object (within ``success_radius`` = 1 m geodesic of its navigable
    surroundings, no STOP needed) pays +1 and names a new target drawn uniformly from the other K - 1. Episodes
    never terminate: they last ``max_episode_steps`` (1000 at registration) and the score is the number of
    targets reached. Remembering where each colour is turns search into direct navigation.

    Memory demand (see ``shared/specs/memory-demand.md``; oracles in ``envs.nav.oracles``): without memory a
    policy must search for every named target: the memoryless bound (a tour through the scene's objects, going to
    the named target once its colour shows) scores ~0.30 of the perfect-memory oracle at the defaults, apartments
    of 10 to 12 rooms (2.9 vs 9.8 targets per 1000 steps, 64 episodes). In the scene pool's own apartments (3 to
    6 rooms, ``num_rooms=None``) a search is cheap: the bound keeps ~0.44 of perfect (9.4 vs 21.5), ~0.57 with
    ``colour_range=None``; 8 to 10 rooms give ~0.35 (docs/RESULTS.md 5).
    Cue-to-query span (:meth:`cue_to_query_span`): a target seen at the first step can be needed at the last, so
    the episode length - 1 (999 at registration). Every step is controllable.
    Observability twin (``observability="full"``): ``visible_targets`` gives every target's distance and angle at
    every step (its ``visible`` flag still says whether its colour shows now), ``goal`` the named target's; pixel
    modes add ``visible_targets`` then (pixels cannot show what is out of view). The twin needs no memory.

    Randomisations: scene, the K objects and their colours, start pose, the sequence of named targets.
    Observations (task sensors, every mode): ``target_color`` one-hot [8] over the palette (red, green, blue,
    yellow, magenta, cyan, orange, purple), ``gps`` / ``compass`` (start frame). In ``rgb`` the targets' pixels
    (by instance id) are painted their colour while the agent is within ``colour_range`` of them. Modes without
    colour (``depth``, ``state``) add ``visible_targets`` [8, 3]: per palette colour (visible, distance, angle) of
    that colour's target while it is in view (walls occlude) and within ``colour_range``, zeros otherwise. In
    ``state`` mode ``goal`` is the named target's (distance, angle) while its colour shows, zeros otherwise.
    STOP does nothing (it is a no-op action here).
    Reward terms: ``success`` (+1 per target reached), ``progress`` and ``slack`` (0: kept for the uniform
    reward interface; no shaping leaks where an unseen target is); with ``explore_reward`` > 0 also ``explore``:
    that reward on each step that enters a cell of ``explore_cell`` m not yet visited in the episode (a count of
    new places, independent of where any target is: it says nothing a memoryless policy could use to find one,
    and the score, the targets reached, does not include it).
    Measures: ``score`` (targets reached), ``success`` (1 at a step where the named target is reached),
    ``time_to_target`` (mean steps from naming a target to reaching it, over the targets reached),
    ``distance_to_goal`` (geodesic to the named target), ``path_length``, ``steps``.

    Args:
        num_targets: K, 2 to 8.
        success_radius: reach distance (m).
        min_separation: smallest geodesic distance (m) between the goal regions of two targets; more than
            ``2 * success_radius``, so that no point reaches two targets at once (K = 8 needs <= 2.5 in the
            default scene pool).
        colour_range: distance (m) from a target's centre within which its colour shows (None: as far as the
            camera sees, ``max_depth``).
        observability: "partial" (the memory task) or "full" (the observability twin: every target's position
            is observed at every step).
        num_rooms: rooms per generated apartment, an int or an inclusive (min, max) range (passed to the scene
            generator; None keeps the pool's config, 3 to 6 rooms, where the task demands little memory).
        explore_reward: reward for entering a cell not yet visited in the episode (0: no such term; a training
            aid for learners that must first learn to search the apartment).
        explore_cell: side (m) of the square cells ``explore_reward`` counts, on a grid anchored at the start.
    """

    cache_attrs = (*MemoryTask.cache_attrs, "_separation")

    def __init__(
        self,
        num_targets: int = 3,
        success_radius: float = 1.0,
        success_reward: float = 1.0,
        min_separation: float = 3.0,
        colour_range: float | None = 2.0,
        observability: str = "partial",
        num_rooms: int | tuple[int, int] | None = (10, 12),
        explore_reward: float = 0.0,
        explore_cell: float = 1.0,
    ) -> None:
        super().__init__(
            success_radius=success_radius,
            success_reward=success_reward,
            slack_reward=0.0,
            observability=observability,
        )
        if not isinstance(num_targets, (int, np.integer)) or not (2 <= num_targets <= NUM_COLOURS):
            raise ValueError(f"num_targets must be an integer in 2..{NUM_COLOURS}, got {num_targets!r}")
        if not (np.isfinite(min_separation) and min_separation > 2 * self.success_radius):
            raise ValueError(
                f"min_separation must exceed 2 * success_radius = {2 * self.success_radius}, got {min_separation!r}"
            )
        if colour_range is not None and not (np.isfinite(colour_range) and colour_range > 0):
            raise ValueError(f"colour_range must be a positive distance (m) or None, got {colour_range!r}")
        self.colour_range = None if colour_range is None else float(colour_range)
        if num_rooms is not None:
            lo_hi = (num_rooms, num_rooms) if isinstance(num_rooms, (int, np.integer)) else tuple(num_rooms)
            if (
                len(lo_hi) != 2
                or not all(isinstance(v, (int, np.integer)) for v in lo_hi)
                or not 2 <= lo_hi[0] <= lo_hi[1]
            ):
                raise ValueError(f"num_rooms must be an integer >= 2 or a (min, max) range of them, got {num_rooms!r}")
            num_rooms = num_rooms if isinstance(num_rooms, (int, np.integer)) else tuple(int(v) for v in lo_hi)
        self.num_rooms = num_rooms
        if not (np.isfinite(explore_reward) and explore_reward >= 0):
            raise ValueError(f"explore_reward must be a finite reward >= 0, got {explore_reward!r}")
        if not (np.isfinite(explore_cell) and explore_cell > 0):
            raise ValueError(f"explore_cell must be a positive cell size (m), got {explore_cell!r}")
        self.explore_reward = float(explore_reward)
        self.explore_cell = float(explore_cell)
        self.num_targets = int(num_targets)
        self.min_separation = float(min_separation)
        self.horizon = DEFAULT_HORIZON
        self._separation: dict[tuple[int, int, int], float] = {}

    def scene_overrides(self) -> dict | None:
        return None if self.num_rooms is None else {"num_rooms": self.num_rooms}

    def ensure(self, core) -> None:
        super().ensure(core)
        self._read_horizon(core)

    def _read_horizon(self, core) -> None:
        if core.cfg.max_episode_steps is not None:
            self.horizon = int(core.cfg.max_episode_steps)

    # ----------------------------------------------------------------------------------------- memory demand
    def cue_to_query_span(self) -> int:
        """Most steps between the last sight of a target and a decision that needs its position.

        A target seen at the first step can be named (or be on the way to the named one) at the last step and never
        be in view in between, so the span is the episode length - 1: ``max_episode_steps`` of the vector env's
        config (read when the env builds its observation space), else 1000 (the registered limit; the single env
        keeps its limit in gymnasium's TimeLimit). The twin observes every target at every step: 0.
        """
        return 0 if self.observability == "full" else self.horizon - 1

    def separation(self, core, scene: int, a: int, b: int) -> float:
        """Geodesic distance (m) between the goal regions of objects ``a`` and ``b`` (instance ids); cached."""
        key = (scene, min(a, b), max(a, b))
        if key not in self._separation:
            fa, fb = self.object_field(core, scene, a), self.object_field(core, scene, b)
            self._separation[key] = float(fa[fb == 0].min()) if (fb == 0).any() else float("inf")
        return self._separation[key]

    def _apart(self, core, scene: int, obj, chosen: list) -> bool:
        sep = self.min_separation
        return all(self.separation(core, scene, obj.instance_id, c.instance_id) >= sep for c in chosen)

    def observable_targets(self, core) -> np.ndarray:
        """bool [N, K]: targets whose position the agent observes now (in view; every target in the twin)."""
        self.ensure(core)
        if self.observability == "full":
            return np.ones((core.n, self.num_targets), bool)
        return self.sees(core, self.xy)

    def sees(self, core, pts: np.ndarray) -> np.ndarray:
        """bool [N, M]: points ``pts`` [N, M, 2] in view now and within ``colour_range`` (colour recognisable)."""
        vis = self.visible(core, pts)
        if self.colour_range is not None:
            vis &= np.linalg.norm(pts - core.sim.position[:, None, :], axis=-1) <= self.colour_range
        return vis

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
        self.seen = np.zeros((n, k), bool)  # targets whose colour has shown since the episode began
        self.entered_new = np.zeros(n, bool)  # the step entered a cell not visited before in the episode
        self._visited: np.ndarray | None = None  # bool [N, G, G] cells around the start, allocated on first reset
        self._origin = np.zeros((n, 2))

    def _explore_cells(self, core, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of the agents ``idx`` on the explore grid centred on their start (G x G cells)."""
        g = self._visited.shape[1]
        rel = np.floor((core.sim.position[idx] - self._origin[idx]) / self.explore_cell).astype(np.int64) + g // 2
        rel = np.clip(rel, 0, g - 1)
        return rel[:, 0], rel[:, 1]

    def sample_episode(self, core, rng: np.random.Generator) -> Episode:
        k = self.num_targets
        for _ in range(200):
            scene = int(rng.integers(len(core.scenes)))
            spec = core.scenes[scene]
            objs = [o for o in spec.objects if self.object_field(core, scene, o.instance_id) is not None]
            if len(objs) < k:
                continue
            # Spread over rooms: one object per room first (random room order), then fill up; every pair of
            # goal regions at least min_separation apart.
            order = rng.permutation(len(objs))
            chosen, rooms = [], set()
            for j in order:
                if objs[j].room_id not in rooms and self._apart(core, scene, objs[j], chosen):
                    chosen.append(objs[j])
                    rooms.add(objs[j].room_id)
            chosen = chosen[:k]
            for j in order:
                if len(chosen) >= k:
                    break
                if objs[j] not in chosen and self._apart(core, scene, objs[j], chosen):
                    chosen.append(objs[j])
            if len(chosen) < k:
                continue
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
        raise ValueError(
            f"could not sample a TargetSequence episode: no scene has {k} reachable objects with goal regions "
            f">= {self.min_separation} m (min_separation) apart"
        )

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
        self.seen[idx] = self.sees(core, self.xy)[idx]  # the agents stand at their starts already
        self.entered_new[idx] = False
        if self.explore_reward > 0:
            if self._visited is None:  # any position lies within max_extent of the start, in each axis
                g = 2 * int(np.ceil(core.max_extent / self.explore_cell)) + 1
                self._visited = np.zeros((core.n, g, g), bool)
            self._visited[idx] = False
            self._origin[idx] = [core.episodes[i].start_position for i in idx]
            mid = self._visited.shape[1] // 2
            self._visited[idx, mid, mid] = True  # the start's cell

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
        self.seen |= self.sees(core, self.xy)
        if self.explore_reward > 0:
            idx = np.arange(core.n)
            r, c = self._explore_cells(core, idx)
            self.entered_new = ~self._visited[idx, r, c]
            self._visited[idx, r, c] = True

    def terminated(self, core) -> np.ndarray:
        return np.zeros(core.n, bool)

    def reward_terms(self, core, prev_distance: np.ndarray) -> dict[str, np.ndarray]:
        zero = np.zeros(core.n)
        terms = {"progress": zero, "success": self.success_reward * self.reached.astype(float), "slack": zero.copy()}
        if self.explore_reward > 0:
            terms["explore"] = self.explore_reward * self.entered_new.astype(float)
        return terms

    def measure_types(self) -> tuple[type[Measure], ...]:
        return (DistanceToGoal, _Score, _Reached, _MeanTimeToTarget, PathLength, Steps)

    # ----------------------------------------------------------------------------------------- observations
    def visible_targets(self, core) -> np.ndarray:
        """float32 [N, 8, 3]: per palette colour, (visible, distance, angle) of its target if in view.

        In the twin (``observability="full"``) distance and angle are given for every target at every step;
        ``visible`` still says whether it is in view now.
        """
        self.ensure(core)
        n, k = core.n, self.num_targets
        out = np.zeros((n, NUM_COLOURS, 3), np.float32)
        vis = self.sees(core, self.xy)  # [N, K]
        shown = np.ones_like(vis) if self.observability == "full" else vis
        pol = polar(
            np.repeat(core.sim.position, k, 0), np.repeat(core.sim.yaw, k, 0), self.xy.reshape(n * k, 2)
        ).reshape(n, k, 2)
        pol[..., 0] = np.minimum(pol[..., 0], core.max_extent)
        rows, cols = np.nonzero(shown)
        out[rows, self.colours[rows, cols], 0] = vis[rows, cols]
        out[rows, self.colours[rows, cols], 1:] = pol[rows, cols]
        return out

    def declare_sensors(self, core) -> list[Sensor]:
        self.ensure(core)  # the per-env arrays the values read; also reads the horizon when the env is built
        d = core.max_extent

        def visible_space(core) -> spaces.Box:
            lo = np.tile(np.array([0.0, 0.0, -np.pi], np.float32), (NUM_COLOURS, 1))
            hi = np.tile(np.array([1.0, d, np.pi], np.float32), (NUM_COLOURS, 1))
            return spaces.Box(lo, hi, dtype=np.float32)

        return [
            OneHotSensor("target_color", NUM_COLOURS, lambda c: self.named_colour()),
            GPSSensor(clip=True),
            CompassSensor(),
            Sensor(
                "visible_targets",
                visible_space,
                self.visible_targets,
                enabled=lambda c: c.cfg.obs_mode != "rgbd" or self.observability == "full",
            ),
        ]

    def named_colour(self) -> np.ndarray:
        return self.colours[np.arange(self._n), self.current]

    def modify_state(self, core, sel: np.ndarray, obs: dict[str, np.ndarray]) -> None:
        vt = self.visible_targets(core)[sel]  # [n, 8, 3]
        named = vt[np.arange(len(sel)), self.named_colour()[sel]]  # [n, 3]
        # Zero unless the named target is in view (visible_targets is zero then); every step in the twin.
        obs["goal"] = named[:, 1:].astype(np.float32)

    def modify_pixels(self, core, sel: np.ndarray, obs: dict[str, np.ndarray], out) -> None:
        if "rgb" not in obs:
            return
        sem = out.semantic.cpu().numpy()
        for r, i in enumerate(sel):
            near = np.linalg.norm(self.xy[i] - core.sim.position[i], axis=-1)  # [K]
            for inst, c, d in zip(self.instances[i], self.colours[i], near):
                if self.colour_range is None or d <= self.colour_range:
                    paint(obs["rgb"][r], sem[r] == inst, PALETTE[c], strength=0.9)

    def info(self, core) -> dict[str, np.ndarray]:
        """``target_index``, and ``memory_goal`` [N, 3], the label of what memory adds (for ``--aux-key``): 1 and
        the named target's position in the agent's frame (forward, left; divided by the scene extent) once its
        colour has shown at some step of the episode (this one included), else zeros (finite, so infos compare
        equal in Gymnasium's checks; the flag says the place is unknown, which a memory can know)."""
        rows = np.arange(core.n)
        pol = polar(core.sim.position, core.sim.yaw, self.xy[rows, self.current])
        ego = np.stack([pol[:, 0] * np.cos(pol[:, 1]), pol[:, 0] * np.sin(pol[:, 1])], -1) / core.max_extent
        known = self.seen[rows, self.current]
        goal = np.where(known[:, None], ego, 0.0)
        return {
            "target_index": self.current.astype(float),
            "memory_goal": np.concatenate([known[:, None].astype(float), goal], -1),
        }


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
