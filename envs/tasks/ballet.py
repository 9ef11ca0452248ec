"""Ballet: watch dancers perform distinct movement patterns one after another, then go to a named one (after HCAM)."""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces
from scipy import ndimage

from chronotope.envs.sim.kinematic import STOP
from chronotope.envs.tasks.base import Episode, register_task
from chronotope.envs.tasks.measures import DistanceToGoal, Measure, PathLength, Steps, spl
from chronotope.envs.tasks.sensors import CompassSensor, GPSSensor, OneHotSensor, Sensor
from chronotope.envs.tasks.visibility import PALETTE, MemoryTask

WATCH, DELAY, SEEK = 0, 1, 2
PATTERNS = ("circle", "side_to_side", "back_and_forth", "zigzag", "jump", "square", "figure_eight", "pulse")
NUM_PATTERNS = len(PATTERNS)
DANCER_Z = 0.9  # centre height of a resting dancer (m)
DANCER_RADIUS = 0.2  # sphere radius (m)
AMPLITUDE = 0.3  # horizontal reach of a movement pattern (m)
MARK_SCALE = 1.75  # observability twin: radius scale of the instructed dancer after the watch phase


def pattern_offset(pattern: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Displacement of dancers performing ``pattern`` [M] at progress ``s`` [M] in [0, 1).

    Returns (lateral [M], radial [M], vertical [M], radius scale [M]); lateral is along the circle of dancers,
    radial away from its centre. Every pattern starts and ends at rest (offset 0, scale 1).
    """
    a, tau = AMPLITUDE, 2 * np.pi * s
    lat, rad, up, scale = (np.zeros_like(s) for _ in range(4))
    tri = 2 * np.abs(np.mod(4 * s + 1, 2) - 1) - 1  # triangle wave, 2 periods

    def put(k: int, la=None, ra=None, u=None, sc=None) -> None:
        m = pattern == k
        for arr, v in ((lat, la), (rad, ra), (up, u), (scale, sc)):
            if v is not None:
                arr[m] = v[m]

    put(0, la=a * np.sin(tau), ra=a * (np.cos(tau) - 1))
    put(1, la=a * np.sin(2 * tau))
    put(2, ra=a * np.sin(2 * tau))
    put(3, la=a * tri * np.sin(np.pi * s), ra=a * np.sin(np.pi * s))
    put(4, u=0.4 * np.abs(np.sin(2 * tau)))
    side = np.floor(4 * s).astype(int)
    f = 4 * s - side
    sq_lat = np.choose(side % 4, [f, np.ones_like(f), 1 - f, np.zeros_like(f)]) * a
    sq_rad = np.choose(side % 4, [np.zeros_like(f), f, np.ones_like(f), 1 - f]) * a
    put(5, la=sq_lat, ra=sq_rad)
    put(6, la=a * np.sin(tau), ra=0.5 * a * np.sin(2 * tau))
    put(7, sc=1.0 + 0.6 * np.sin(2 * tau) ** 2)
    scale[~np.isin(pattern, [7])] = 1.0
    return lat, rad, up, scale


@register_task("ballet")
class BalletTask(MemoryTask):
    """Task sheet.

    Description: ``num_dancers`` (2, 4 or 8) coloured spheres ("dancers") stand on a circle of radius 1.2 m
    around the agent. Three phases, signalled by the ``phase`` one-hot observation:

    1. **watch** (``num_dancers * dance_steps`` steps): the dancers perform one after another, ``dance_steps``
       (8) steps each, each a distinct movement pattern among circle, side_to_side, back_and_forth, zigzag, jump,
       square, figure_eight, pulse (random assignment and order). The task turns the agent to face the dancer
       that performs (its actions are ignored).
    2. **delay** (``delay`` steps, 16 or 48 in the HCAM levels): all dancers rest; actions are ignored.
    3. **seek** (at most ``seek_steps``, 40; the perfect oracle needs ~13): ``instruction`` (one-hot over the 8
       patterns) names a pattern. The episode ends when the agent comes within ``reach_radius`` (0.4 m) of a
       dancer's resting point: success if it is the dancer that performed the named pattern, failure otherwise;
       also failure when the seek budget runs out. STOP is a no-op.

    Levels: ``num_dancers`` in {2, 4, 8} x ``delay`` in {16, 48} (other values are accepted).

    Memory demand (see ``shared/specs/memory-demand.md``; oracles in ``envs.nav.oracles``): the instructed
    dancer is drawn uniformly and independently of the scene, the start pose, the patterns and the order, and after
    the watch phase every dancer rests alike at the same distance (slot colours say nothing about patterns). A
    policy without memory therefore sees nothing at seek time that tells the dancers apart, and it can try only
    one (reaching any dancer ends the episode): its best success is ``1 / num_dancers`` (0.25 at the defaults,
    measured 0.24), the perfect-memory oracle's 1.0.
    Cue-to-query span (:meth:`cue_to_query_span`): the first performer's last dance frame is observation
    ``dance_steps - 1`` and the instruction first shows at observation ``watch_steps + delay``, so
    ``(num_dancers - 1) * dance_steps + delay + 1`` steps: 41 at the defaults, 73 with ``delay=48``; 2 dancers 25
    and 57, 8 dancers 73 and 105. The seek phase then needs the remembered dancer for up to ``seek_steps`` more.
    Controllable steps (:meth:`controllable`): the seek phase only; watch and delay are scripted.
    Observability twin (``observability="full"``): after the watch phase (delay and seek) the instructed dancer
    is marked, drawn ``MARK_SCALE`` (1.75) times larger, in the pixels and in the ``radius`` column of
    ``dancers``, so a policy without memory sees which dancer to reach; its span is 0.
    Randomisations: scene, agent position (dancers' resting points must be free, in view, and each reachable from
    the start without coming within ``reach_radius`` of another), heading,
    pattern assignment and order, the instructed pattern.
    Observations (task sensors, every mode): ``phase`` [3], ``instruction`` [8] (zeros before seek), ``gps`` /
    ``compass``. Pixel modes: dancers are composited over the static render by ray-sphere intersection (z-depth
    test against the scene), in their own palette colour, with instance ids ``max scene id + 1 + dancer``.
    Modes without colour (``depth``, ``state``) add ``dancers`` [8, 15]: per dancer slot (visible, x forward,
    y left, height, radius, lateral, radial, pattern one-hot [8]) while the dancer is in view (walls occlude), zeros
    otherwise; lateral and radial are its displacement from its resting point along and across the circle (zero at
    rest), and the pattern columns name the pattern it is performing, while it performs (``pattern_rows``; zero
    at rest): these modes report what a perception of the dance would, so that what remains is the memory (which
    row did which pattern, after the dances). ``pattern_rows=False`` leaves [8, 7], the motion alone: recognising
    the pattern from 8 frames of it is then part of the task (a GRU trained by PPO with the pattern labels as
    auxiliary loss did not, in 290k steps; docs/RESULTS.md 1). ``state``'s ``goal`` is 0.
    Success: reaching the instructed dancer. Reward terms: ``success`` (+1), ``progress`` and ``slack`` (0).
    Measures: ``success``, ``spl`` (seek phase; l = geodesic to the instructed resting point minus the reach
    radius), ``time_to_target`` (seek steps until the episode ended), ``distance_to_goal``, ``path_length``,
    ``steps``.

    Args:
        num_dancers: 2 to 8 dancers (levels 2, 4, 8).
        delay: steps between the last dance and the instruction.
        dance_steps: steps of each dance.
        seek_steps: seek-phase step budget.
        reach_radius: distance (m) to a resting point that counts as reaching that dancer.
        circle_radius: distance (m) of the resting points from the agent's start.
        observability: "partial" (the memory task) or "full" (the observability twin: the instructed dancer is
            marked after the watch phase).
        pattern_rows: the ``dancers`` rows of the modes without colour also name the pattern a dancer performs
            while it performs (see Observations).
    """

    def __init__(
        self,
        num_dancers: int = 4,
        delay: int = 16,
        dance_steps: int = 8,
        seek_steps: int = 40,
        reach_radius: float = 0.4,
        circle_radius: float = 1.2,
        success_reward: float = 1.0,
        observability: str = "partial",
        pattern_rows: bool = True,
    ) -> None:
        super().__init__(
            success_radius=reach_radius,
            success_reward=success_reward,
            slack_reward=0.0,
            observability=observability,
        )
        if not isinstance(num_dancers, (int, np.integer)) or not (2 <= num_dancers <= NUM_PATTERNS):
            raise ValueError(
                f"num_dancers must be an integer in 2..{NUM_PATTERNS} (levels 2, 4, 8), got {num_dancers!r}"
            )
        for name, v, lo in (("delay", delay, 0), ("dance_steps", dance_steps, 2), ("seek_steps", seek_steps, 1)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        spacing = 2 * circle_radius * math.sin(math.pi / num_dancers)
        if not (0 < reach_radius < spacing / 2):
            raise ValueError(
                f"reach_radius {reach_radius!r} must be in (0, {spacing / 2:.2f}) for {num_dancers} dancers"
            )
        self.num_dancers = int(num_dancers)
        self.delay = int(delay)
        self.dance_steps = int(dance_steps)
        self.seek_steps = int(seek_steps)
        self.reach_radius = float(reach_radius)
        self.circle_radius = float(circle_radius)
        if not isinstance(pattern_rows, (bool, np.bool_)):
            raise ValueError(f"pattern_rows must be a bool, got {pattern_rows!r}")
        self.pattern_rows = bool(pattern_rows)

    @property
    def dancer_columns(self) -> int:
        """Columns of a ``dancers`` row: 7, plus the 8 pattern columns with ``pattern_rows``."""
        return 7 + NUM_PATTERNS * self.pattern_rows

    @property
    def watch_steps(self) -> int:
        return self.num_dancers * self.dance_steps

    # ----------------------------------------------------------------------------------------- memory demand
    def cue_to_query_span(self) -> int:
        """Steps from the first performer's last dance frame to the instruction (0 in the twin; see the sheet)."""
        if self.observability == "full":
            return 0
        return (self.num_dancers - 1) * self.dance_steps + self.delay + 1

    def controllable(self, core) -> np.ndarray:
        """bool [N]: the seek phase; watch and delay replace the agent's actions (``override_actions``)."""
        self.ensure(core)
        return self.phase == SEEK

    def marked(self, core) -> np.ndarray:
        """bool [N]: the twin marks the instructed dancer now (``observability="full"``, after the watch)."""
        self.ensure(core)
        return (self.phase != WATCH) & (self.observability == "full")

    def allocate(self, n: int) -> None:
        k = NUM_PATTERNS
        self.phase = np.zeros(n, np.int64)
        self.phase_t = np.zeros(n, np.int64)
        self.homes = np.zeros((n, k, 2))  # resting points (slots beyond num_dancers unused)
        self.bearing = np.zeros((n, k))  # direction centre -> dancer
        self.patterns = np.zeros((n, k), np.int64)
        self.order = np.zeros((n, k), np.int64)  # dancer index performing in turn t
        self.instructed = np.zeros(n, np.int64)  # dancer index
        self.seek_l = np.zeros(n)
        self.seek_path = np.zeros(n)
        self.seek_used = np.zeros(n)
        self.succeeded = np.zeros(n, bool)
        self.success_now = np.zeros(n, bool)
        self.done = np.zeros(n, bool)
        self.in_seek = np.zeros(n, bool)

    # ----------------------------------------------------------------------------------------- episodes
    def sample_episode(self, core, rng: np.random.Generator) -> Episode:
        k = self.num_dancers
        for _ in range(3000):  # cheap rejection sampling: no geodesic solve until accepted
            scene = int(rng.integers(len(core.scenes)))
            grid = core.grids[scene]
            main = core.main_component(scene)
            centre = grid.sample_navigable(rng, 1, main)[0]
            yaw = float(rng.uniform(-np.pi, np.pi))
            ang = yaw + 2 * np.pi * np.arange(k) / k
            homes = centre + self.circle_radius * np.stack([np.cos(ang), np.sin(ang)], -1)
            rc = grid.world_to_cell(homes)
            h, w = grid.shape
            if not ((rc[:, 0] >= 0) & (rc[:, 0] < h) & (rc[:, 1] >= 0) & (rc[:, 1] < w)).all():
                continue
            # Resting points must be free and connected to the centre, and in view from it.
            if not main[rc[:, 0], rc[:, 1]].all():
                continue
            los = self.walls(core).line_of_sight(np.array([scene]), centre[None], homes[None])[0]
            if not los.all():
                continue
            patterns = rng.choice(NUM_PATTERNS, size=k, replace=False)
            order = rng.permutation(k)
            target = int(rng.integers(k))
            if not self.reachable_apart(core, scene, centre, homes):
                continue
            field = self.point_field(core, scene, homes[target])
            d0 = float(grid.lookup(field[:h, :w], centre))
            if not np.isfinite(d0):
                continue
            return Episode(
                scene,
                centre,
                float(ang[order[0]]),  # facing the first performer
                homes[target],
                field,
                d0,
                max(d0 - self.reach_radius, 0.0),
                extra={"homes": homes, "bearing": ang, "patterns": patterns, "order": order, "target": target},
            )
        raise ValueError(f"could not place {k} dancers in 3000 tries (circle radius {self.circle_radius} m)")

    def reachable_apart(self, core, scene: int, centre: np.ndarray, homes: np.ndarray) -> bool:
        """Whether every dancer can be reached from ``centre`` without coming within reach of another one.

        Reaching any dancer ends the episode, so a dancer only reachable past another would make the episode
        unwinnable when instructed, and (were only the instructed one checked) tell a memoryless policy which
        dancers are likelier: every dancer is checked, before and independently of the instruction.
        """
        grid = core.grids[scene]
        h, w = grid.shape
        xs = grid.origin[0] + (np.arange(w) + 0.5) * grid.cell_size
        ys = grid.origin[1] + (np.arange(h) + 0.5) * grid.cell_size
        discs = [np.hypot(xs[None, :] - hx, ys[:, None] - hy) <= self.reach_radius + grid.cell_size for hx, hy in homes]
        main = core.main_component(scene)
        c = tuple(grid.world_to_cell(centre))
        cells = grid.world_to_cell(homes)
        for j in range(len(homes)):
            others = np.any([d for m, d in enumerate(discs) if m != j], axis=0)
            labels, _ = ndimage.label(main & ~others)  # 4-connected, as the geodesic fields propagate
            if labels[c] == 0 or labels[c] != labels[tuple(cells[j])]:
                return False
        return True

    def on_reset(self, core, idx: np.ndarray, rngs) -> None:
        self.ensure(core)
        self.remember_rngs(idx, rngs)
        k = self.num_dancers
        for i in idx:
            ex = core.episodes[i].extra
            self.homes[i, :k] = ex["homes"]
            self.bearing[i, :k] = ex["bearing"]
            self.patterns[i, :k] = ex["patterns"]
            self.order[i, :k] = ex["order"]
            self.instructed[i] = ex["target"]
        for a in (self.phase, self.phase_t, self.seek_l, self.seek_path, self.seek_used):
            a[idx] = 0
        for a in (self.succeeded, self.success_now, self.done, self.in_seek):
            a[idx] = False

    def override_actions(self, core, actions: np.ndarray) -> np.ndarray:
        self.ensure(core)
        a = actions.copy()
        a[self.phase != SEEK] = STOP  # watching: stand still (STOP is a no-op here)
        return a

    def on_step(self, core, actions: np.ndarray) -> None:
        self.in_seek = self.phase == SEEK
        self.success_now[:] = False
        self.done[:] = False
        self.phase_t += 1
        self.seek_path += np.where(self.in_seek, core.moved, 0.0)
        for i in range(core.n):
            if self.phase[i] == WATCH:
                if self.phase_t[i] >= self.watch_steps:
                    self.phase[i], self.phase_t[i] = DELAY, 0
                else:  # face the dancer now performing
                    j = self.order[i, self.phase_t[i] // self.dance_steps]
                    self.teleport(core, i, core.sim.position[i], self.bearing[i, j])
            if self.phase[i] == DELAY and self.phase_t[i] >= self.delay:
                self.phase[i], self.phase_t[i] = SEEK, 0
                self.seek_l[i] = max(core.distance_to_goal[i] - self.reach_radius, 0.0)
                self.seek_path[i] = 0.0
            elif self.in_seek[i]:
                d = np.linalg.norm(self.homes[i, : self.num_dancers] - core.sim.position[i], axis=-1)
                if d.min() <= self.reach_radius:
                    self.done[i] = True
                    self.success_now[i] = self.succeeded[i] = int(np.argmin(d)) == self.instructed[i]
                elif self.phase_t[i] >= self.seek_steps:
                    self.done[i] = True
                if self.done[i]:
                    self.seek_used[i] = self.phase_t[i]

    def terminated(self, core) -> np.ndarray:
        return self.done.copy()

    def reward_terms(self, core, prev_distance: np.ndarray) -> dict[str, np.ndarray]:
        zero = np.zeros(core.n)
        return {"progress": zero, "success": self.success_reward * self.success_now.astype(float), "slack": zero.copy()}

    def measure_types(self) -> tuple[type[Measure], ...]:
        return (DistanceToGoal, _Success, PathLength, Steps, _SPL, _TimeToTarget)

    # ----------------------------------------------------------------------------------------- dancers
    def dancer_state(self, core) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Current dancers: (xy [N, 8, 2], height [N, 8], radius [N, 8]); slots >= num_dancers are unused."""
        xy, z, r, _ = self._dancers(core)
        return xy, z, r

    def _dancers(self, core) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`dancer_state` plus each dancer's displacement from its resting point in its dance frame,
        (lateral, radial) [N, 8, 2] (m; zero at rest)."""
        self.ensure(core)
        n, k = core.n, NUM_PATTERNS
        xy = self.homes.copy()
        z = np.full((n, k), DANCER_Z)
        r = np.full((n, k), DANCER_RADIUS)
        offset = np.zeros((n, k, 2))
        act = np.flatnonzero(self.phase == WATCH)
        if act.size:
            turn = self.phase_t[act] // self.dance_steps
            j = self.order[act, turn]
            s = (self.phase_t[act] % self.dance_steps) / self.dance_steps
            lat, rad, up, scale = pattern_offset(self.patterns[act, j], s)
            b = self.bearing[act, j]
            radial = np.stack([np.cos(b), np.sin(b)], -1)
            tangent = np.stack([-np.sin(b), np.cos(b)], -1)
            xy[act, j] += lat[:, None] * tangent + rad[:, None] * radial
            z[act, j] += up
            r[act, j] *= scale
            offset[act, j] = np.stack([lat, rad], -1)
        mark = np.flatnonzero(self.marked(core))
        r[mark, self.instructed[mark]] *= MARK_SCALE
        return xy, z, r, offset

    def dancer_obs(self, core) -> np.ndarray:
        """float32 [N, 8, 7]: (visible, x forward, y left, height, radius, lateral, radial) of dancers in view,
        zeros otherwise; lateral / radial are the displacement (m) from the dancer's resting point along and across
        the circle (what an observer of the dance sees move; zero at rest)."""
        xy, z, r, offset = self._dancers(core)
        n = core.n
        vis = self.visible(core, xy)
        vis[:, self.num_dancers :] = False
        rel = xy - core.sim.position[:, None, :]
        c, s = np.cos(core.sim.yaw)[:, None], np.sin(core.sim.yaw)[:, None]
        out = np.zeros((n, NUM_PATTERNS, self.dancer_columns), np.float32)
        out[..., 0] = vis
        out[..., 1] = np.where(vis, c * rel[..., 0] + s * rel[..., 1], 0.0)
        out[..., 2] = np.where(vis, -s * rel[..., 0] + c * rel[..., 1], 0.0)
        out[..., 3] = np.where(vis, z, 0.0)
        out[..., 4] = np.where(vis, r, 0.0)
        out[..., 5:7] = np.where(vis[..., None], offset, 0.0)
        if self.pattern_rows:  # the performer's row names its pattern while it dances and is in view
            act = np.flatnonzero(self.phase == WATCH)
            j = self.order[act, self.phase_t[act] // self.dance_steps]
            seen = vis[act, j]
            out[act[seen], j[seen], 7 + self.patterns[act[seen], j[seen]]] = 1.0
        return out

    # ----------------------------------------------------------------------------------------- observations
    def declare_sensors(self, core) -> list[Sensor]:
        self.ensure(core)  # the per-env arrays the values read
        d = core.max_extent

        def dancers_space(core) -> spaces.Box:
            # The offsets' bounds are the patterns' reach (circle: radial down to -2 * AMPLITUDE), so an encoder
            # that scales by the bounds sees the dance as large as it is; x / y are scaled by the scene's extent,
            # where a 0.3 m move is 2% of the range (a GRU trained on x / y alone took ~4x the updates to name it).
            a2 = 2 * AMPLITUDE
            lo = np.array([0.0, -d, -d, 0.0, 0.0, -a2, -a2] + [0.0] * (self.dancer_columns - 7), np.float32)
            hi = np.array([1.0, d, d, 3.0, 1.0, a2, a2] + [1.0] * (self.dancer_columns - 7), np.float32)
            return spaces.Box(np.tile(lo, (NUM_PATTERNS, 1)), np.tile(hi, (NUM_PATTERNS, 1)), dtype=np.float32)

        def semantic_space(core) -> spaces.Box:
            h, w = core.intrinsics.height, core.intrinsics.width
            return spaces.Box(0, core.max_instance + NUM_PATTERNS, (h, w, 1), np.int32)

        return [
            OneHotSensor("phase", 3, lambda c: self.phase),
            Sensor("instruction", lambda c: spaces.Box(0.0, 1.0, (NUM_PATTERNS,), np.float32), self.instruction),
            GPSSensor(clip=True),
            CompassSensor(),
            Sensor("dancers", dancers_space, self.dancer_obs, enabled=lambda c: c.cfg.obs_mode != "rgbd"),
            # modify_pixels draws the dancers into the rendered ``semantic`` image as ids above the scene's
            Sensor(
                "semantic",
                semantic_space,
                rendered=True,
                enabled=lambda c: c.cfg.obs_mode != "state" and c.cfg.semantic,
            ),
        ]

    def instruction(self, core) -> np.ndarray:
        """float32 [N, 8]: one-hot of the instructed dancer's pattern during the seek phase, zeros before."""
        instr = np.eye(NUM_PATTERNS, dtype=np.float32)[self.patterns[np.arange(core.n), self.instructed]]
        instr[self.phase != SEEK] = 0.0
        return instr

    def modify_state(self, core, sel: np.ndarray, obs: dict[str, np.ndarray]) -> None:
        obs["goal"] = np.zeros((len(sel), 2), np.float32)

    def modify_pixels(self, core, sel: np.ndarray, obs: dict[str, np.ndarray], out) -> None:
        """Composites the dancers (spheres) over the static render with a z-depth test."""
        xy, z, rad = self.dancer_state(core)
        rays = core.intrinsics.camera_rays().astype(np.float64)  # [H, W, 3], z = 1 so t is z-depth
        poses = core.camera_poses()[sel]  # [n, 4, 4]
        depth = obs["depth"][..., 0]  # [n, H, W] (views)
        sem = obs.get("semantic")
        light = np.array([0.3, 0.5, 0.8])
        light /= np.linalg.norm(light)
        for r, i in enumerate(sel):
            d = rays @ poses[r, :3, :3].T  # [H, W, 3] world directions
            o = poses[r, :3, 3]
            a = (d * d).sum(-1)
            best = np.full(d.shape[:2], np.inf)
            who = np.full(d.shape[:2], -1)
            for j in range(self.num_dancers):
                c = np.array([xy[i, j, 0], xy[i, j, 1], z[i, j]])
                oc = o - c
                b = 2 * (d @ oc)
                cc = oc @ oc - rad[i, j] ** 2
                disc = b * b - 4 * a * cc
                hit = disc >= 0
                t = np.where(hit, (-b - np.sqrt(np.where(hit, disc, 0.0))) / (2 * a), np.inf)
                t = np.where(t > 0, t, np.inf)
                closer = t < best
                best = np.where(closer, t, best)
                who = np.where(closer, j, who)
            # Nothing hit within range renders max_depth, so dancers in front of empty space are kept.
            m = (who >= 0) & (best <= core.max_depth) & ((best < depth[r]) | (depth[r] >= core.max_depth))
            if not m.any():
                continue
            depth[r][m] = best[m].astype(np.float32)
            if "rgb" in obs:
                p = o + best[m][:, None] * d[m]
                cen = np.stack([xy[i, who[m], 0], xy[i, who[m], 1], z[i, who[m]]], -1)
                nrm = (p - cen) / rad[i, who[m]][:, None]
                shade = 0.45 + 0.55 * np.clip(nrm @ light, 0.0, 1.0)
                obs["rgb"][r][m] = np.clip(PALETTE[who[m]] * shade[:, None], 0, 255).astype(np.uint8)
            if sem is not None:
                sem[r, ..., 0][m] = core.max_instance + 1 + who[m]

    def info(self, core) -> dict[str, np.ndarray]:
        """``phase``, ``instructed_dancer`` (slot index); in modes with ``dancers`` also ``memory_slot`` float
        [N, 8]: the one-hot row of ``dancers`` that is the instructed dancer during the seek phase (what a memory
        must name once the instruction shows), ``inf`` before it (non-finite: no label; nothing yet says which dancer
        it is; inf rather than NaN so that equal steps give equal infos), and ``memory_patterns`` float [N, 64]:
        row j of ``dancers`` as 8 values, the one-hot of the pattern dancer j performed, from the observation that
        shows the last frame of its dance on (``inf`` before, and for slots without a dancer): what a memory must
        have kept by the seek phase, labelled as soon as it has been seen. Labels for auxiliary losses, never
        observed."""
        self.ensure(core)
        out = {"phase": self.phase.astype(float), "instructed_dancer": self.instructed.astype(float)}
        if core.cfg.obs_mode != "rgbd":
            slot = np.eye(NUM_PATTERNS)[self.instructed]
            slot[self.phase != SEEK] = np.inf
            out["memory_slot"] = slot
            out["memory_patterns"] = self.seen_patterns().reshape(core.n, -1)
        return out

    def seen_patterns(self) -> np.ndarray:
        """float [N, 8, 8]: per dancer slot the one-hot of its pattern once its whole dance has been observed (the
        current observation shows its last frame or a later one), ``inf`` before and for unused slots."""
        n, k = self.phase.shape[0], self.num_dancers
        turns = np.where(self.phase == WATCH, (self.phase_t + 1) // self.dance_steps, k)  # [N] dances seen whole
        seen = np.zeros((n, NUM_PATTERNS), bool)
        for t in range(k):
            rows = np.flatnonzero(turns > t)
            seen[rows, self.order[rows, t]] = True
        out = np.full((n, NUM_PATTERNS, NUM_PATTERNS), np.inf)
        out[seen] = np.eye(NUM_PATTERNS)[self.patterns[seen]]
        return out


class _Success(Measure):
    """1 iff the instructed dancer was reached in the seek phase."""

    uuid = "success"

    def update_metric(self, ctx) -> None:
        self.value[:] = ctx.task.succeeded


class _SPL(Measure):
    uuid = "spl"

    def update_metric(self, ctx) -> None:
        t = ctx.task
        self.value[:] = spl(t.succeeded, t.seek_l, t.seek_path)


class _TimeToTarget(Measure):
    """Seek steps until the episode ended (reaching a dancer or running out of steps)."""

    uuid = "time_to_target"

    def update_metric(self, ctx) -> None:
        self.value[:] = ctx.task.seek_used
