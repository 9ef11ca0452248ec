"""Reference policies of the memory tasks, vectorised over the N environments of a :class:`NavCore`.

Each oracle reads the batched core but restricts itself to what it is entitled to know:

- ``perfect`` memory: remembers everything the agent has *seen* (visibility as in the ``state`` observation:
  field of view, depth range, walls) since the episode began, and navigates optimally with the geodesic expert.
- ``memoryless``: the memoryless bound, the Bayes-best policy on the current observation only (pose, layout and
  the task's sampling rules allowed). ObjectRecall: the single best STOP among the room's candidates; TargetSequence:
  a fixed tour through the scene's objects (an estimate on the high side); Ballet: one uniform guess. Each class
  documents its derivation.
- ``random``: uniform random actions.

A new episode of an environment is detected by ``core.elapsed == 0`` (true right after any reset, including the
vector env's auto-reset), which clears that environment's memory.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from chronotope.envs.nav.expert import ShortestPathExpert
from chronotope.envs.sim.kinematic import MOVE_FORWARD, STOP

ORACLE_KINDS = ("random", "memoryless", "perfect")
STOP_RADIUS = 0.08  # ObjectRecall oracles stop (at <= 0.03 m, i.e. inside) the cells where a STOP chooses their object,
AIM = 0.5  # cells within this fraction of the success radius of the object, so a small overshoot still counts


def follow(core, fields: np.ndarray, radius: float, stop: bool) -> np.ndarray:
    """Shortest-path actions int64 [N] towards per-environment geodesic ``fields`` [N, H, W].

    STOP is returned inside ``radius`` when ``stop``; otherwise the expert keeps moving forward there.
    """
    row, col, inside = core.sim.stack.cells(core.sim.scene, core.sim.position)
    d = np.where(inside, fields[np.arange(core.n), row, col], np.inf).astype(np.float64)
    shim = SimpleNamespace(sim=core.sim, fields=fields, distance_to_goal=d, success_radius=radius)
    a = ShortestPathExpert(stop_margin=0.05).act(shim)
    if not stop:
        a = np.where(a == STOP, MOVE_FORWARD, a)
    return a


class RandomPolicy:
    """Uniform random actions."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, core) -> np.ndarray:
        return self.rng.integers(0, 4, core.n).astype(np.int64)


class _Oracle:
    def __init__(self, memory: bool, seed: int = 0) -> None:
        self.memory = bool(memory)
        self.rng = np.random.default_rng(seed)
        self._n = 0

    def _new_episodes(self, core) -> np.ndarray:
        if self._n != core.n:
            self._n = core.n
            self.allocate(core.n)
            return np.arange(core.n)
        return np.flatnonzero(core.elapsed == 0)

    def allocate(self, n: int) -> None:
        raise NotImplementedError

    def _random_object(self, core, i: int, exclude: set[int] | None = None) -> int:
        task = core.task
        scene = int(core.sim.scene[i])
        ids = [
            o.instance_id
            for o in core.scenes[scene].objects
            if task.object_field(core, scene, o.instance_id) is not None and o.instance_id not in (exclude or ())
        ]
        if not ids:
            ids = [
                o.instance_id
                for o in core.scenes[scene].objects
                if task.object_field(core, scene, o.instance_id) is not None
            ]
        return int(ids[int(self.rng.integers(len(ids)))])


class ObjectRecallOracle(_Oracle):
    """Perfect-memory (``memory=True``) or memoryless (Bayes) oracle of ``object_recall``.

    Without memory, at recall it goes to the cells where one STOP succeeds for the most targets the current
    observation cannot rule out (:meth:`ObjectRecallTask.memoryless_stop`) and stops there; the success
    probability of that STOP is appended to ``bound`` once per recall (the analytic memoryless bound). In the
    observability twin (``observability="full"``) the current observation names the target, so both oracles go
    to it.
    """

    def allocate(self, n: int) -> None:
        self.remembered = np.full(n, -1, np.int64)
        self.guess_field = [None] * n
        self.bound: list[float] = []

    def act(self, core) -> np.ndarray:
        from chronotope.envs.tasks.object_recall import DELAY, OBSERVE, RECALL

        task = core.task
        task.ensure(core)
        new = self._new_episodes(core)
        self.remembered[new] = -1
        for i in new:
            self.guess_field[i] = None
        if task.observability == "full":  # the twin shows the target at every step: no memory needed to know it
            self.remembered[:] = task.target
        elif self.memory and (task.phase == OBSERVE).any():
            seen = task.visible(core, task.target_xy[:, None, :])[:, 0] & (task.phase == OBSERVE)
            self.remembered[seen] = task.target[seen]
        actions = np.full(core.n, MOVE_FORWARD, np.int64)  # observe phase: actions are ignored anyway
        delay = task.phase == DELAY
        if delay.any():  # the distractor goal is observed (distractor_goal), so both oracles may follow it
            actions[delay] = follow(core, core.fields, task.success_radius, stop=False)[delay]
        recall = np.flatnonzero(task.phase == RECALL)
        if recall.size:
            fields = np.full_like(core.fields, np.inf)
            for i in recall:
                scene = int(core.sim.scene[i])
                if self.guess_field[i] is None:
                    inner = AIM * task.success_radius
                    if self.remembered[i] >= 0:
                        cells = task.choice_cells(core, i, int(self.remembered[i]), inner)
                    else:
                        self.bound.append(task.memoryless_stop(core, i)[1])
                        cells = task.memoryless_stop(core, i, inner)[0]
                    grid = core.grids[scene]
                    h, w = grid.shape
                    f = np.full(core.sim.stack.shape, np.inf, np.float32)
                    f[:h, :w] = grid.distance_field(goal_mask=cells[:h, :w])
                    self.guess_field[i] = f
                fields[i] = self.guess_field[i]
            # Go to the cells where a STOP chooses the object (the task counts a stop as choosing the nearest one).
            actions[recall] = follow(core, fields, STOP_RADIUS, stop=True)[recall]
        return actions


class TargetSequenceOracle(_Oracle):
    """Perfect-memory or memoryless oracle of ``target_sequence`` (its score: targets reached per episode).

    Both see a target's colour exactly as the observation shows it (:meth:`TargetSequenceTask.observable_targets`:
    in view, walls occlude, within ``colour_range``; every target in the twin) and walk with the geodesic expert.

    ``perfect``: remembers the colour of every target it has seen, and of a target it reached while that colour
    was named (the reward says which object it was). A named colour it knows: straight there. Otherwise it
    explores the nearest (geodesic) object it has not checked yet (seen within ``colour_range``, or stood at),
    objects in rooms without a known target first (the sampler spreads the targets over rooms).

    ``memoryless``, the bound: a reactive policy knows the named colour, its pose, the layout (a scene pool this
    small can be memorised) and the sampling rules, but not where the named target is until it sees it. The colour
    says nothing about the position, so its posterior spreads the target over every reachable object not in view
    now, less in a room where another target is in view (the sampler puts targets in distinct rooms when there
    are enough). Its best policy is a search: walk a fixed tour through the scene and go to the named target once
    it is in view. This oracle walks a cycle through the scene's reachable objects (nearest neighbour + 2-opt on
    the geodesic distances between their goal regions) from the object nearest to where the episode starts, skips
    objects in view now (were one of them the target, it would see it) and those in a room where another target
    is in view now, and once it has seen the named target keeps going to it until it is reached. An estimate on
    the high side, as the spec prefers: it keeps its place on the tour and that last sighting (a reactive policy
    has to re-derive both from its pose), and plans its tour on the exact geodesics. In the twin every target is
    observed, so it goes straight to the named one, as ``perfect`` does.

    Both leave the spots where the geodesic expert can only turn (a full turn without moving) by random steps.
    """

    def allocate(self, n: int) -> None:
        self.known = [dict() for _ in range(n)]  # colour -> instance id (perfect memory)
        self.checked = [set() for _ in range(n)]  # objects seen within colour range or stood at (perfect memory)
        self.explore = np.full(n, -1, np.int64)  # perfect: the object it explores towards
        self.last_score = np.zeros(n)
        self.last_target = np.zeros(n, np.int64)
        self.tour_at = np.full(n, -1, np.int64)  # memoryless: place on the tour
        self.chase = np.full(n, -1, np.int64)  # memoryless: the named target it has seen (index), until reached
        self.chase_score = np.full(n, -1.0)
        self.still = np.zeros(n, np.int64)
        self.last_pos = np.full((n, 2), np.nan)
        self._tours: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def tour(self, core, scene: int, sites=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The scene's reachable objects in tour order: (instance ids [M], centres [M, 2], room ids [M]); with
        ``sites`` (instance ids) a tour of those objects only."""
        key = scene if sites is None else (scene, tuple(sorted(int(t) for t in sites)))
        if key not in self._tours:
            task = core.task
            objs = [o for o in core.scenes[scene].objects if task.object_field(core, scene, o.instance_id) is not None]
            if sites is not None:
                keep = set(key[1])
                objs = [o for o in objs if o.instance_id in keep]
            m = len(objs)
            d = np.zeros((m, m))
            for a in range(m):
                for b in range(a + 1, m):
                    d[a, b] = d[b, a] = task.separation(core, scene, objs[a].instance_id, objs[b].instance_id)
            order, left = [0], set(range(1, m))
            while left:
                nxt = min(left, key=lambda j: d[order[-1], j])
                order.append(nxt)
                left.remove(nxt)
            improved = m > 3
            while improved:
                improved = False
                for x in range(m - 1):
                    for y in range(x + 2, m if x > 0 else m - 1):
                        a, b, c, e = order[x], order[x + 1], order[y], order[(y + 1) % m]
                        if d[a, c] + d[b, e] < d[a, b] + d[c, e] - 1e-9:
                            order[x + 1 : y + 1] = order[x + 1 : y + 1][::-1]
                            improved = True
            self._tours[key] = (
                np.array([objs[j].instance_id for j in order], np.int64),
                np.array([objs[j].center for j in order], float)[:, :2],
                np.array([objs[j].room_id for j in order], np.int64),
            )
        return self._tours[key]

    def env_tour(self, core, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Environment ``i``'s tour: through its episode's site rows where the task observes them (a reactive
        policy knows those places), else through every reachable object of its scene."""
        task = core.task
        sites = task.site_ids[i][task.site_ids[i] >= 0] if task.num_sites else None
        return self.tour(core, int(core.sim.scene[i]), sites)

    def act(self, core) -> np.ndarray:
        task = core.task
        task.ensure(core)
        for i in self._new_episodes(core):
            self.known[i], self.checked[i] = {}, set()
            self.explore[i] = self.tour_at[i] = self.chase[i] = -1
            self.last_score[i], self.last_target[i] = 0.0, int(task.current[i])
        vis = task.observable_targets(core)  # [N, K]
        # The memoryless bound chases a target it has seen in view; one shown only by the observe phase (through
        # walls, at any range) is acted on while shown, then gone from a reactive policy's observation.
        sight = vis if task.observability == "full" else task.sees(core, task.xy)
        observing = task.observing(core)
        seen_objects = self._objects_in_view(core)  # [N, M] in tour order
        fields = np.full_like(core.fields, np.inf)
        for i in range(core.n):
            scene = int(core.sim.scene[i])
            cur = int(task.current[i])
            if self.memory:
                if task.score[i] > self.last_score[i]:  # rewarded: the object it stands at had the named colour
                    j = self.last_target[i]
                    self.known[i][int(task.colours[i, j])] = int(task.instances[i, j])
                self.last_score[i], self.last_target[i] = task.score[i], cur
                for j in np.flatnonzero(vis[i]):
                    self.known[i][int(task.colours[i, j])] = int(task.instances[i, j])
                ids = self.env_tour(core, i)[0]
                self.checked[i].update(int(t) for t in ids[seen_objects[i, : len(ids)]])
                known = int(task.colours[i, cur]) in self.known[i]
                goal = int(task.instances[i, cur]) if known or vis[i, cur] else self._explore(core, i)
            else:
                if sight[i, cur]:
                    self.chase[i], self.chase_score[i] = cur, task.score[i]
                if (self.chase[i] == cur and self.chase_score[i] == task.score[i]) or observing[i]:
                    goal = int(task.instances[i, cur])
                else:
                    goal = self._tour_step(core, i, sight[i], seen_objects[i])
            fields[i] = task.object_field(core, scene, goal)
        return self._unstick(core, follow(core, fields, task.success_radius, stop=False))

    def _objects_in_view(self, core) -> np.ndarray:
        """bool [N, M]: the tour's objects whose colour the agent would make out now (padding False)."""
        tours = [self.env_tour(core, i)[1] for i in range(core.n)]
        m = max(len(t) for t in tours)
        pts = np.stack([t[np.minimum(np.arange(m), len(t) - 1)] for t in tours])  # padded with the last object
        out = core.task.sees(core, pts)
        for i, t in enumerate(tours):
            out[i, len(t) :] = False
        return out

    def _distinct_rooms(self, core, scene: int) -> bool:
        """Whether the sampler can spread the targets over distinct rooms in this scene (its first choice)."""
        return len(set(self.tour(core, scene)[2].tolist())) >= core.task.num_targets

    def _reached(self, core, scene: int, i: int, instance: int) -> bool:
        field = core.task.object_field(core, scene, int(instance))
        return float(core.sim.stack.grids[scene].lookup(field, core.sim.position[i])) <= core.task.success_radius

    def _explore(self, core, i: int) -> int:
        """Perfect memory: the nearest object not yet checked, rooms without a known target first."""
        task = core.task
        scene = int(core.sim.scene[i])
        wp = int(self.explore[i])
        if wp >= 0 and wp not in self.checked[i]:
            if not self._reached(core, scene, i, wp):
                return wp
            self.checked[i].add(wp)  # stood at it: its colour shows within colour_range of its goal region
        ids, _, rooms = self.env_tour(core, i)
        spec = core.scenes[scene]
        excluded = set()
        if self._distinct_rooms(core, scene):
            excluded = {spec.object_by_instance(t).room_id for t in self.known[i].values()}
        grid = core.sim.stack.grids[scene]
        best, best_key = -1, (np.inf, np.inf)
        for t, room in zip(ids, rooms):
            if int(t) in self.checked[i]:
                continue
            d = float(grid.lookup(task.object_field(core, scene, int(t)), core.sim.position[i]))
            key = (float(room in excluded), d)
            if d > task.success_radius and key < best_key:
                best, best_key = int(t), key
        if best < 0:
            best = self._random_object(core, i)
        self.explore[i] = best
        return best

    def _tour_step(self, core, i: int, vis: np.ndarray, in_view: np.ndarray) -> int:
        """Memoryless: the next object of the tour that is not in view now and may hold the named target."""
        task = core.task
        scene = int(core.sim.scene[i])
        ids, _, rooms = self.env_tour(core, i)
        m = len(ids)
        grid = core.sim.stack.grids[scene]
        dist = np.array([float(grid.lookup(task.object_field(core, scene, int(t)), core.sim.position[i])) for t in ids])
        if self.tour_at[i] < 0:
            self.tour_at[i] = int(np.argmin(dist))
        excluded = set()
        if self._distinct_rooms(core, scene):
            spec = core.scenes[scene]
            for j in np.flatnonzero(vis):
                if j != task.current[i]:
                    excluded.add(spec.object_by_instance(int(task.instances[i, j])).room_id)
        p = int(self.tour_at[i])
        for _ in range(m):
            if in_view[p] or dist[p] <= task.success_radius or rooms[p] in excluded:
                p = (p + 1) % m
            else:
                break
        self.tour_at[i] = p
        return int(ids[p])

    def _unstick(self, core, actions: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
        """Random steps (forward twice as likely) after a full turn without moving (the expert's dead spots).

        Only steps where ``active`` (bool [N], default all) count towards the full turn.
        """
        moved = np.linalg.norm(core.sim.position - self.last_pos, axis=-1) > 1e-6
        idle = moved | (core.elapsed == 0) | (False if active is None else ~active)
        self.still = np.where(idle, 0, self.still + 1)
        self.last_pos = core.sim.position.copy()
        stuck = np.flatnonzero(self.still >= 24)
        if stuck.size:
            actions = actions.copy()
            actions[stuck] = self.rng.choice([MOVE_FORWARD, MOVE_FORWARD, 2, 3], stuck.size)  # 2, 3: turns
        return actions


class BalletOracle(_Oracle):
    """Perfect-memory or memoryless oracle of ``ballet``.

    ``perfect``: remembers which dancer it saw performing which pattern (visibility as in the ``state``
    observation; the task turns the agent to face each performer) and walks to the one that performed the
    instructed pattern.

    ``memoryless``, the bound: the instructed dancer is drawn uniformly, independently of the scene, the start
    pose, the patterns and the order, and after the watch phase every dancer rests alike at the same distance; so
    at seek time nothing a reactive policy observes (pose, compass, dancers, instruction) changes the posterior,
    which stays uniform over the ``num_dancers`` dancers. Reaching any dancer ends the episode, so only one guess
    can be tried: the Bayes policy walks to the dancer it can reach most surely (the one nearest to straight ahead)
    and succeeds with probability ``1 / num_dancers`` times its reach rate (~1). This is exact, not an estimate.
    In the twin (``observability="full"``) it walks to the marked (enlarged) dancer once it sees it, and turns in
    place to look for it until then. Both leave the expert's dead spots as ``TargetSequenceOracle`` does.
    """

    _unstick = TargetSequenceOracle._unstick

    def allocate(self, n: int) -> None:
        self.by_pattern = np.full((n, 8), -1, np.int64)  # pattern -> dancer seen performing it
        self.choice = np.full(n, -1, np.int64)
        self.still = np.zeros(n, np.int64)
        self.last_pos = np.full((n, 2), np.nan)
        self._fields: dict[tuple[int, int], np.ndarray] = {}

    def act(self, core) -> np.ndarray:
        from chronotope.envs.sim.kinematic import TURN_LEFT
        from chronotope.envs.tasks.ballet import SEEK, WATCH

        task = core.task
        task.ensure(core)
        new = self._new_episodes(core)
        self.by_pattern[new] = -1
        self.choice[new] = -1
        for i in new:
            self._fields = {key: f for key, f in self._fields.items() if key[0] != i}
        xy, _, _ = task.dancer_state(core)
        vis = task.visible(core, xy)  # [N, 8]
        watch = np.flatnonzero(task.phase == WATCH)
        if self.memory and watch.size:
            j = task.order[watch, task.phase_t[watch] // task.dance_steps]
            seen = vis[watch, j]
            self.by_pattern[watch[seen], task.patterns[watch[seen], j[seen]]] = j[seen]
        # The twin's mark, when in view now (pixels and ``dancers`` show it).
        rows = np.arange(core.n)
        mark_seen = task.marked(core) & vis[rows, task.instructed]
        actions = np.full(core.n, STOP, np.int64)  # ignored before the seek phase
        seek = np.flatnonzero(task.phase == SEEK)
        if seek.size:
            fields = np.full_like(core.fields, np.inf)
            look = np.zeros(core.n, bool)
            for i in seek:
                if self.choice[i] < 0:
                    named = int(task.patterns[i, task.instructed[i]])
                    if mark_seen[i]:
                        self.choice[i] = task.instructed[i]
                    elif self.memory and self.by_pattern[i, named] >= 0:
                        self.choice[i] = self.by_pattern[i, named]
                    elif task.observability != "full":
                        self.choice[i] = self._best_guess(core, i)
                j = int(self.choice[i])
                if j < 0:  # twin, mark not in view yet: look around
                    look[i] = True
                    continue
                key = (int(i), j)
                if key not in self._fields:
                    self._fields[key] = self._field(core, int(i), j)
                fields[i] = self._fields[key]
            actions[seek] = follow(core, fields, 0.0, stop=False)[seek]
            actions[look] = TURN_LEFT
        # Looking around for the twin's mark is turning on purpose, not a dead spot.
        active = task.phase == SEEK
        active[np.flatnonzero(active)] = self.choice[active] >= 0
        return self._unstick(core, actions, active)

    @staticmethod
    def _field(core, i: int, j: int) -> np.ndarray:
        """Geodesic field (padded) to dancer ``j``'s resting point around the others' (reaching one ends it)."""
        import dataclasses

        task = core.task
        scene = int(core.sim.scene[i])
        grid = core.grids[scene]
        h, w = grid.shape
        xs = grid.origin[0] + (np.arange(w) + 0.5) * grid.cell_size
        ys = grid.origin[1] + (np.arange(h) + 0.5) * grid.cell_size
        avoid = np.zeros((h, w), bool)
        for k in range(task.num_dancers):
            if k != j:
                hx, hy = task.homes[i, k]
                avoid |= np.hypot(xs[None, :] - hx, ys[:, None] - hy) <= task.reach_radius + grid.cell_size
        try:
            field = dataclasses.replace(grid, navigable=grid.navigable & ~avoid).distance_field(
                goals_xy=task.homes[i, j][None]
            )
        except ValueError:
            field = None
        if field is None or not np.isfinite(grid.lookup(field, core.sim.position[i])):  # no detour: straight on
            return task.point_field(core, scene, task.homes[i, j])
        out = np.full(core.sim.stack.shape, np.inf, np.float32)
        out[:h, :w] = field
        return out

    @staticmethod
    def _best_guess(core, i: int) -> int:
        """With a uniform posterior every dancer is as likely: the one nearest to straight ahead (quickest)."""
        task = core.task
        rel = task.homes[i, : task.num_dancers] - core.sim.position[i]
        bearing = np.arctan2(rel[:, 1], rel[:, 0]) - core.sim.yaw[i]
        return int(np.argmin(np.abs(np.pi - np.mod(np.pi - bearing, 2 * np.pi))))


def make_oracle(task_name: str, kind: str, seed: int = 0):
    """Oracle ``kind`` ("random", "memoryless", "perfect") of a memory task by task name."""
    if kind not in ORACLE_KINDS:
        raise ValueError(f"unknown oracle kind {kind!r}; valid: {ORACLE_KINDS}")
    if kind == "random":
        return RandomPolicy(seed)
    table = {"object_recall": ObjectRecallOracle, "target_sequence": TargetSequenceOracle, "ballet": BalletOracle}
    if task_name not in table:
        raise ValueError(f"no oracle for task {task_name!r}; valid: {sorted(table)}")
    return table[task_name](memory=kind == "perfect", seed=seed)


def evaluate(
    env_id: str, kind: str, episodes: int, num_envs: int = 16, seed: int = 0, make_policy=None, **env_kwargs
) -> dict[str, float]:
    """Runs policy ``kind`` on the episodes ``seed + k`` (k < ``episodes``) of a vector env, each to its end
    (:func:`chronotope.envs.rollout.run_episodes`: the same episodes whatever ``num_envs``); returns mean final
    measures.

    ``make_policy(task_name, kind, seed)`` builds the policy (default :func:`make_oracle`), e.g. to keep a handle
    on it. Its random choices come from one generator seeded ``seed`` shared by the lanes, so those (unlike the
    episodes) depend on ``num_envs``.

    Every scalar measure of the episodes' last info is averaged (success, spl, score, time_to_target ...), plus
    ``return`` (mean undiscounted episode return) and ``episodes``.
    """
    import gymnasium as gym

    import chronotope.envs  # noqa: F401  (registers the ids)
    from chronotope.envs.rollout import run_episodes

    venv = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **env_kwargs)
    core = venv.unwrapped.core
    policy = (make_policy or make_oracle)(core.task.name, kind, seed)
    try:
        records = run_episodes(venv, lambda obs, starts, seeds: policy.act(core), [seed + k for k in range(episodes)])
    finally:
        venv.close()
    done = [r.info for r in records]
    keys = [k for k, v in done[0].items() if np.ndim(v) == 0 and not k.startswith(("reward_", "scene_id"))]
    out = {k: float(np.mean([d[k] for d in done])) for k in keys}
    out["return"] = float(np.mean([r.ret for r in records]))
    out["episodes"] = float(len(done))
    return out
