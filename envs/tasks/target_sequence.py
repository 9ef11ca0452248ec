"""TargetSequence: reach coloured targets named one at a time, for a fixed number of steps (after Memory Maze)."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from chronotope.envs import NAV_ENVS
from chronotope.envs.nav.expert import step_cells
from chronotope.envs.tasks.base import Episode, agent_frame, polar, register_task
from chronotope.envs.tasks.measures import DistanceToGoal, Measure, PathLength, Steps
from chronotope.envs.tasks.sensors import CompassSensor, GPSSensor, OneHotSensor, Sensor
from chronotope.envs.tasks.visibility import PALETTE, MemoryTask, paint

NUM_COLOURS = len(PALETTE)
MAX_SITES = 24
SITE_COLUMNS = 7  # present, x, y, distance, dx, dy, here
# max_episode_steps at registration, read from it (the single env does not pass it to the core)
DEFAULT_HORIZON = NAV_ENVS["chronotope/TargetSequence-v0"][1]


@register_task("target_sequence")
class TargetSequenceTask(MemoryTask):
    """Task sheet.

    Description: K pieces of furniture, in different rooms where the apartment has enough rooms and with goal
    regions at least ``min_separation`` (3 m) apart, are painted each in a distinct saturated colour for the whole
    episode (per-episode assignment of objects and colours; as in Memory Maze the colours are the first K of the
    palette unless ``num_colours`` widens the draw). A target's colour can be made out only within
    ``colour_range`` (2 m) of its centre; farther away it looks like any other furniture. The observation names one
    colour at a time; reaching that object (within ``success_radius`` = 1 m geodesic of its navigable
    surroundings, no STOP needed) pays +1 and names a new target drawn uniformly from the other K - 1. Episodes
    never terminate: they last ``max_episode_steps`` (128 at registration) and the score is the number of
    targets reached. Remembering where each colour is turns search into direct navigation.

    Sites and the observe phase (the defaults since issue 17's re-tuning): the K targets are K of ``sites`` (20)
    candidate places, the targets and other objects of the apartment, listed in ``state`` mode as the ``sites``
    rows (order drawn per episode; each row gives the way there, :meth:`sites_obs`). For the first
    ``observe_steps`` (4) observations every target's colour and place show (its row's colour, ``visible_targets``,
    through walls and at any range); later only within ``colour_range`` in view. So a memory formed in the first
    steps turns each later target into direct navigation, and what there is to learn beyond following a row is
    memory. ``sites=0, observe_steps=0`` is the Memory Maze-like search version (targets found by exploring).

    Memory demand (see ``shared/specs/memory-demand.md``; oracles in ``envs.nav.oracles``): without memory a
    policy must search for every named target: the memoryless bound (a tour through the sites, or through every
    object of the scene without site rows, going to the named target once its colour shows in view) scores 0.31 of
    the perfect-memory oracle at the defaults, 128-step episodes in the scene pool's apartments of 3 to 6 rooms with
    20 sites (0.86 vs 2.75 targets per episode, 200 episodes; 8 sites give 0.44). The episodes are short so that a
    learner sees many observe phases, one memory example each: at 1000 steps no RL probe learnt the colours in 400k
    steps (docs/RESULTS.md 1). ``max_episode_steps=1000, num_rooms=(10, 12)`` (the defaults before) keeps the same
    ratio (4.55 vs 14.85 per 1000 steps). Without sites or observe phase (the search version) 128 steps are too few
    to profit from a memory (0.87 vs 1.15); at 1000 steps in 10-12 rooms it gave 3.0 vs 9.3 (docs/RESULTS.md 5).
    Cue-to-query span (:meth:`cue_to_query_span`): a target seen at the first step can be needed at the last, so
    the episode length - 1 (127 at registration). Every step is controllable.
    Observability twin (``observability="full"``): ``visible_targets`` gives every target's distance and angle at
    every step (its ``visible`` flag still says whether its colour shows now), ``goal`` the named target's; pixel
    modes add ``visible_targets`` then (pixels cannot show what is out of view). The twin needs no memory.

    Randomisations: scene, the K objects and their colours, start pose, the sequence of named targets.
    Observations (task sensors, every mode): ``sites`` [``sites``, 7] and ``site_colours`` [``sites``, 8] in
    ``state`` mode (see above),
    ``target_color`` one-hot [8] over the palette (red, green, blue,
    yellow, magenta, cyan, orange, purple), ``gps`` / ``compass`` (start frame). In ``rgb`` the targets' pixels
    (by instance id) are painted their colour while the agent is within ``colour_range`` of them. Modes without
    colour (``depth``, ``state``) add ``visible_targets`` [8, 3]: per palette colour (visible, distance, angle) of
    that colour's target while it is in view (walls occlude) and within ``colour_range``, zeros otherwise. In
    ``state`` mode ``goal`` is the named target's (distance, angle) while its colour shows, zeros otherwise.
    STOP does nothing (it is a no-op action here). ``rgbd`` adds ``visible_targets`` when ``observe_steps`` > 0
    (the observe phase shows targets out of view).
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
            generator; None keeps the pool's config, 3 to 6 rooms).
        explore_reward: reward for entering a cell not yet visited in the episode (0: no such term; a training
            aid for learners that must first learn to search the apartment).
        explore_cell: side (m) of the square cells ``explore_reward`` counts, on a grid anchored at the start.
        sites: candidate places listed as ``sites`` rows in ``state`` mode (``num_targets`` to 24; 0: no rows, the
            memoryless bound then tours every object of the scene). Apartments with fewer reachable objects give
            fewer rows (``present`` 0 on the rest).
        observe_steps: observations at the start of an episode that show every target (0: none).
        num_colours: the targets' colours are drawn from the first ``num_colours`` palette colours (``num_targets``
            to 8; 8: any; None: ``num_targets``, the K colours always the same and only their assignment drawn).
    """

    cache_attrs = (*MemoryTask.cache_attrs, "_separation", "_site_fields")

    def __init__(
        self,
        num_targets: int = 3,
        success_radius: float = 1.0,
        success_reward: float = 1.0,
        min_separation: float = 3.0,
        colour_range: float | None = 2.0,
        observability: str = "partial",
        num_rooms: int | tuple[int, int] | None = None,
        explore_reward: float = 0.0,
        explore_cell: float = 1.0,
        sites: int = 20,
        observe_steps: int = 4,
        num_colours: int | None = None,
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
        if not isinstance(sites, (int, np.integer)) or not (sites == 0 or num_targets <= sites <= MAX_SITES):
            raise ValueError(
                f"sites must be 0 (no site rows) or an integer in num_targets..{MAX_SITES} = "
                f"{num_targets}..{MAX_SITES}, got {sites!r}"
            )
        if not isinstance(observe_steps, (int, np.integer)) or observe_steps < 0:
            raise ValueError(f"observe_steps must be an integer >= 0, got {observe_steps!r}")
        self.num_sites = int(sites)
        num_colours = num_targets if num_colours is None else num_colours
        if not isinstance(num_colours, (int, np.integer)) or not (num_targets <= num_colours <= NUM_COLOURS):
            raise ValueError(
                f"num_colours must be an integer in num_targets..{NUM_COLOURS} = {num_targets}..{NUM_COLOURS}, "
                f"got {num_colours!r}"
            )
        self.num_colours = int(num_colours)
        self.observe_steps = int(observe_steps)
        self.num_targets = int(num_targets)
        self.min_separation = float(min_separation)
        self.horizon = DEFAULT_HORIZON
        self._separation: dict[tuple[int, int, int], float] = {}
        self._site_fields: dict[int, tuple[np.ndarray, dict[int, int]]] = {}

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
        config (read when the env builds its observation space), else 128 (the registered limit; the single env
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

    def observing(self, core) -> np.ndarray:
        """bool [N]: the observe phase (the first ``observe_steps`` observations, the reset's included), when every
        target's colour and place show."""
        return core.elapsed < self.observe_steps

    def observable_targets(self, core) -> np.ndarray:
        """bool [N, K]: targets whose position the agent observes now (in view; every target in the twin and in the
        observe phase)."""
        self.ensure(core)
        if self.observability == "full":
            return np.ones((core.n, self.num_targets), bool)
        return self.sees(core, self.xy) | self.observing(core)[:, None]

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
        m = self.num_sites
        self.site_ids = np.full((n, m), -1, np.int64)  # instance id of each site row (-1: no object)
        self.site_xy = np.zeros((n, m, 2))
        self.target_row = np.zeros((n, k), np.int64)  # the site row of each target
        self.site_slot = np.zeros((n, m), np.int64)  # each site's index in its scene's stack of fields
        self.site_seen = np.zeros((n, m), bool)  # rows whose colour (or lack of one) has shown in the episode

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
            colours = rng.choice(self.num_colours, size=k, replace=False)
            first = int(rng.integers(k))
            field = self.object_field(core, scene, chosen[first].instance_id)
            grid = core.grids[scene]
            h, w = grid.shape
            ok = core.main_component(scene) & (field[:h, :w] > self.success_radius)
            if not ok.any():
                continue
            start = grid.sample_navigable(rng, 1, ok)[0]
            d0 = float(grid.lookup(field[:h, :w], start))
            sites: list[int] = []
            if self.num_sites:  # drawn last, so the rest of the episode does not depend on the knob
                rest = [objs[j].instance_id for j in rng.permutation(len(objs)) if objs[j] not in chosen]
                pool = [o.instance_id for o in chosen] + rest[: self.num_sites - k]
                sites = [pool[j] for j in rng.permutation(len(pool))]
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
                    "sites": sites,
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
            if self.num_sites:
                sites = list(ep.extra["sites"])
                self.site_ids[i] = -1
                self.site_ids[i, : len(sites)] = sites
                self.site_xy[i] = 0.0
                self.site_xy[i, : len(sites)] = [spec.object_by_instance(int(t)).center[:2] for t in sites]
                self.target_row[i] = [sites.index(int(t)) for t in ep.extra["instances"]]
                slot = self._scene_fields(core, ep.scene)[1]
                self.site_slot[i] = 0
                self.site_slot[i, : len(sites)] = [slot[int(t)] for t in sites]
        for a in (self.score, self.since, self.time_sum):
            a[idx] = 0.0
        self.reached[idx] = False
        self.seen[idx] = self.observable_targets(core)[idx]  # the agents stand at their starts already
        if self.num_sites:
            self.site_seen[idx] = self.observable_sites(core)[idx]
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
        self.seen |= self.observable_targets(core)
        if self.num_sites:
            self.site_seen |= self.observable_sites(core)
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
        vis = self.sees(core, self.xy) | self.observing(core)[:, None]  # [N, K]
        shown = np.ones_like(vis) if self.observability == "full" else vis
        pol = polar(
            np.repeat(core.sim.position, k, 0), np.repeat(core.sim.yaw, k, 0), self.xy.reshape(n * k, 2)
        ).reshape(n, k, 2)
        pol[..., 0] = np.minimum(pol[..., 0], core.max_extent)
        rows, cols = np.nonzero(shown)
        out[rows, self.colours[rows, cols], 0] = vis[rows, cols]
        out[rows, self.colours[rows, cols], 1:] = pol[rows, cols]
        return out

    def observable_sites(self, core) -> np.ndarray:
        """bool [N, M]: site rows whose colour (a target's, or none) the agent makes out now: in view within
        ``colour_range``, every row in the observe phase and in the twin (padding rows False)."""
        present = self.site_ids >= 0
        if self.observability == "full":
            return present
        return (self.sees(core, self.site_xy) | self.observing(core)[:, None]) & present

    def site_guides(self, core) -> tuple[np.ndarray, np.ndarray]:
        """Geodesic distance (m) float [N, M] from every agent to each site's goal region, and the agent-frame unit
        direction float [N, M, 2] of the best of the 25 headings (15-degree steps, as the shortest-path expert
        weighs them) one forward step ahead, on a free segment; zero direction within the success radius and for
        padding rows."""
        sim = core.sim
        n, m = core.n, self.num_sites
        k, ok, row, col = step_cells(sim)  # the expert's 25 headings, one forward step each
        r0, c0, in0 = sim.stack.cells(sim.scene, sim.position)
        dist = np.full((n, m), np.inf)
        best = np.zeros((n, m), np.int64)
        tie = 1e-3 * np.abs(k)
        present = self.site_ids >= 0
        for scene in np.unique(sim.scene):
            sel = np.flatnonzero(sim.scene == scene)
            stack = self._scene_fields(core, int(scene))[0]
            obj = self.site_slot[sel]  # [n, M] indices into the scene's stack
            here = stack[obj, r0[sel, None], c0[sel, None]]  # [n, M]
            dist[sel] = np.where(present[sel] & in0[sel, None], here, np.inf)
            ahead = stack[obj[..., None], row[sel, None, :], col[sel, None, :]]  # [n, M, 25]
            best[sel] = np.argmin(np.where(ok[sel, None, :], ahead, np.inf) + tie, axis=-1)
        ang = k[best] * np.deg2rad(sim.config.turn_angle)
        direction = np.stack([np.cos(ang), np.sin(ang)], -1)
        direction[~(dist > self.success_radius)] = 0.0
        return dist, direction

    def _scene_fields(self, core, scene: int) -> tuple[np.ndarray, dict[int, int]]:
        """The geodesic fields of a scene's reachable objects stacked float32 [O, H, W], and instance id -> index;
        built once per scene (one gather per step reads every site of every environment)."""
        if scene not in self._site_fields:
            ids = [o.instance_id for o in core.scenes[scene].objects]
            fields = {t: self.object_field(core, scene, t) for t in ids}
            ids = [t for t in ids if fields[t] is not None]
            self._site_fields[scene] = (np.stack([fields[t] for t in ids]), {t: j for j, t in enumerate(ids)})
        return self._site_fields[scene]

    def sites_space(self, core) -> spaces.Box:
        e, m = core.max_extent, self.num_sites
        lo = np.array([0.0, -e, -e, 0.0, -1.0, -1.0, 0.0], np.float32)
        hi = np.array([1.0, e, e, e, 1.0, 1.0, 1.0], np.float32)
        return spaces.Box(np.tile(lo, (m, 1)), np.tile(hi, (m, 1)), dtype=np.float32)

    def sites_obs(self, core) -> np.ndarray:
        """float32 [N, M, 7]: the ``sites`` rows (``sites`` > 0), one per candidate place, in an order drawn per
        episode: the K targets and ``sites - K`` other objects of the apartment.

        Columns: ``present``; ``x, y``, the object's centre in the agent's frame (x forward, y left, m);
        ``distance``, geodesic (m) to its goal region (where reaching a target counts); ``dx, dy``, the agent-frame
        unit direction of a shortest path there (:meth:`site_guides`); ``here``, 1 within the success radius.
        Walking to a row is thus given; which row holds the named colour (:meth:`site_colours_obs`, the
        ``site_colours`` key) is what a memory adds."""
        self.ensure(core)
        n, m, e = core.n, self.num_sites, core.max_extent
        out = np.zeros((n, m, SITE_COLUMNS), np.float32)
        present = self.site_ids >= 0
        dist, direction = self.site_guides(core)
        out[..., 0] = present
        rel = agent_frame(self.site_xy - core.sim.position[:, None, :], core.sim.yaw[:, None])
        out[..., 1:3] = np.clip(rel, -e, e) * present[..., None]
        out[..., 3] = np.where(present, np.minimum(dist, e), 0.0)
        out[..., 4:6] = direction
        out[..., 6] = present & (dist <= self.success_radius)
        return out

    def site_colours_obs(self, core) -> np.ndarray:
        """float32 [N, M, 8]: ``site_colours``, row k the one-hot palette colour of the target on site row k while
        its colour shows (in view within ``colour_range``; every row in the observe phase and in the twin), zeros
        otherwise and on the other objects' rows. A key apart from ``sites`` so that a memory can be fed what it
        must keep alone (``memory_keys``)."""
        self.ensure(core)
        out = np.zeros((core.n, self.num_sites, NUM_COLOURS), np.float32)
        rows, cols = np.nonzero(self.observable_targets(core))
        out[rows, self.target_row[rows, cols], self.colours[rows, cols]] = 1.0
        return out

    def colour_table(self) -> np.ndarray:
        """float [N, M, 8]: each site row's one-hot target colour (zeros on the other objects' rows)."""
        n = self.site_ids.shape[0]
        out = np.zeros((n, self.num_sites, NUM_COLOURS))
        rows = np.repeat(np.arange(n), self.num_targets)
        out[rows, self.target_row.ravel(), self.colours.ravel()] = 1.0
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
                enabled=lambda c: c.cfg.obs_mode != "rgbd" or self.observability == "full" or self.observe_steps > 0,
            ),
            Sensor(
                "sites",
                self.sites_space,
                self.sites_obs,
                enabled=lambda c: self.num_sites > 0 and c.cfg.obs_mode == "state",
            ),
            Sensor(
                "site_colours",
                lambda c: spaces.Box(0.0, 1.0, (self.num_sites, NUM_COLOURS), np.float32),
                self.site_colours_obs,
                enabled=lambda c: self.num_sites > 0 and c.cfg.obs_mode == "state",
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
        equal in Gymnasium's checks; the flag says the place is unknown, which a memory can know); with site rows
        also ``memory_colours`` [N, sites * 8]: per row the one-hot colour of its target (zeros on the other
        objects' rows) once the row's colour (or lack of one) has shown in the episode, ``inf`` before and in the
        columns of the palette colours no target has (always 0 there: no label, so the loss weighs the columns a
        memory must fill), and ``memory_slot`` [N, sites]: the one-hot row of the named target once its colour has
        shown, ``inf`` before."""
        rows = np.arange(core.n)
        pol = polar(core.sim.position, core.sim.yaw, self.xy[rows, self.current])
        ego = np.stack([pol[:, 0] * np.cos(pol[:, 1]), pol[:, 0] * np.sin(pol[:, 1])], -1) / core.max_extent
        known = self.seen[rows, self.current]
        goal = np.where(known[:, None], ego, 0.0)
        out = {
            "target_index": self.current.astype(float),
            "memory_goal": np.concatenate([known[:, None].astype(float), goal], -1),
        }
        if self.num_sites:
            table = self.colour_table()  # [N, M, 8]
            used = np.zeros((core.n, NUM_COLOURS), bool)
            used[np.repeat(rows, self.num_targets), self.colours.ravel()] = True
            table = np.where(self.site_seen[..., None] & used[:, None, :], table, np.inf)
            out["memory_colours"] = table.reshape(core.n, -1)
            slot = np.zeros((core.n, self.num_sites))
            slot[rows, self.target_row[rows, self.current]] = 1.0
            out["memory_slot"] = np.where(known[:, None], slot, np.inf)
        return out


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
