"""Reference policies of the memory tasks, vectorised over the N environments of a :class:`NavCore`.

Each oracle reads the batched core but restricts itself to what it is entitled to know:

- ``perfect`` memory: remembers everything the agent has *seen* (visibility as in the ``state`` observation:
  field of view, depth range, walls) since the episode began, and navigates optimally with the geodesic expert.
- ``memoryless``: acts optimally on the current observation only. When the goal is out of view it explores
  toward a random object; it keeps only that current exploration waypoint (a commitment, not a memory of the
  task), so it is an upper bound on truly reactive policies and the measured memory gap is conservative.
  In ObjectRecall's recall phase it cannot tell which object was cued, so it picks one at random.
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
    """Perfect-memory or memoryless oracle of ``target_sequence``."""

    def allocate(self, n: int) -> None:
        self.known = [dict() for _ in range(n)]  # colour -> instance id (perfect memory)
        self.seen = [set() for _ in range(n)]  # instance ids ever in view (perfect memory)
        self.waypoint = np.full(n, -1, np.int64)

    def act(self, core) -> np.ndarray:
        task = core.task
        task.ensure(core)
        for i in self._new_episodes(core):
            self.known[i], self.seen[i] = {}, set()
            self.waypoint[i] = -1
        vis = task.visible(core, task.xy)  # [N, K]
        named = task.named_colour()
        fields = np.full_like(core.fields, np.inf)
        for i in range(core.n):
            scene = int(core.sim.scene[i])
            cur = int(task.current[i])
            if self.memory:
                for j in np.flatnonzero(vis[i]):
                    self.known[i][int(task.colours[i, j])] = int(task.instances[i, j])
                    self.seen[i].add(int(task.instances[i, j]))
                self._see_furniture(core, i)
            if vis[i, cur] or (self.memory and int(named[i]) in self.known[i]):
                goal = int(task.instances[i, cur])
            else:
                wp = self.waypoint[i]
                if (
                    wp >= 0
                    and core.sim.stack.grids[scene].lookup(
                        task.object_field(core, scene, int(wp)), core.sim.position[i]
                    )
                    <= task.success_radius
                ):
                    wp = -1
                if wp < 0:
                    wp = self._explore_target(core, i)
                self.waypoint[i] = wp
                goal = int(wp)
            fields[i] = task.object_field(core, scene, goal)
        return follow(core, fields, task.success_radius, stop=False)

    def _see_furniture(self, core, i: int) -> None:
        scene = int(core.sim.scene[i])
        objs = core.scenes[scene].objects
        pts = np.array([o.center for o in objs], float)[None]
        sub = SimpleNamespace(
            sim=SimpleNamespace(
                scene=core.sim.scene[i : i + 1], position=core.sim.position[i : i + 1], yaw=core.sim.yaw[i : i + 1]
            ),
            cfg=core.cfg,
            max_depth=core.max_depth,
        )
        vis = core.task.visible(sub, pts)[0]
        self.seen[i].update(o.instance_id for o, v in zip(objs, vis) if v)

    def _explore_target(self, core, i: int) -> int:
        if not self.memory:
            return self._random_object(core, i)
        # Perfect memory: the nearest (geodesic) object never seen, so each look covers new ground.
        task = core.task
        scene = int(core.sim.scene[i])
        grid = core.sim.stack.grids[scene]
        best, best_d = -1, np.inf
        for o in core.scenes[scene].objects:
            f = task.object_field(core, scene, o.instance_id)
            if f is None or o.instance_id in self.seen[i]:
                continue
            d = float(grid.lookup(f, core.sim.position[i]))
            if task.success_radius < d < best_d:
                best, best_d = o.instance_id, d
        return best if best >= 0 else self._random_object(core, i)


class BalletOracle(_Oracle):
    """Perfect-memory or memoryless oracle of ``ballet``: remembers which dancer performed which pattern."""

    def allocate(self, n: int) -> None:
        self.by_pattern = np.full((n, 8), -1, np.int64)  # pattern -> dancer seen performing it
        self.choice = np.full(n, -1, np.int64)
        self._fields: dict[tuple[int, int], np.ndarray] = {}

    def act(self, core) -> np.ndarray:
        from chronotope.envs.tasks.ballet import SEEK, WATCH

        task = core.task
        task.ensure(core)
        new = self._new_episodes(core)
        self.by_pattern[new] = -1
        self.choice[new] = -1
        for i in new:
            self._fields = {key: f for key, f in self._fields.items() if key[0] != i}
        watch = np.flatnonzero(task.phase == WATCH)
        if self.memory and watch.size:
            xy, _, _ = task.dancer_state(core)
            vis = task.visible(core, xy)
            j = task.order[watch, task.phase_t[watch] // task.dance_steps]
            seen = vis[watch, j]
            self.by_pattern[watch[seen], task.patterns[watch[seen], j[seen]]] = j[seen]
        actions = np.full(core.n, STOP, np.int64)  # ignored before the seek phase
        seek = np.flatnonzero(task.phase == SEEK)
        if seek.size:
            fields = np.full_like(core.fields, np.inf)
            for i in seek:
                named = int(task.patterns[i, task.instructed[i]])
                j = self.by_pattern[i, named]
                if j < 0:
                    if self.choice[i] < 0:
                        self.choice[i] = int(self.rng.integers(task.num_dancers))
                    j = self.choice[i]
                key = (int(i), int(j))
                if key not in self._fields:
                    self._fields[key] = task.point_field(core, int(core.sim.scene[i]), task.homes[i, j])
                fields[i] = self._fields[key]
            actions[seek] = follow(core, fields, 0.0, stop=False)[seek]
        return actions


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
    """Runs policy ``kind`` on ``episodes`` finished episodes of a vector env; returns mean final measures.

    ``make_policy(task_name, kind, seed)`` builds the policy (default :func:`make_oracle`), e.g. to keep a handle
    on it.

    Every measure of ``final_info`` is averaged (success, spl, score, time_to_target ...), plus ``return``
    (mean undiscounted episode return) and ``episodes``.
    """
    import gymnasium as gym

    import chronotope.envs  # noqa: F401  (registers the ids)

    venv = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **env_kwargs)
    core = venv.unwrapped.core
    policy = (make_policy or make_oracle)(core.task.name, kind, seed)
    venv.reset(seed=seed)
    ret = np.zeros(num_envs)
    # A quota per environment fixed in advance: the first episodes to *finish* would favour short ones.
    quota = [episodes // num_envs + (i < episodes % num_envs) for i in range(num_envs)]
    per_env: list[list[tuple[dict, float]]] = [[] for _ in range(num_envs)]
    while any(len(per_env[i]) < quota[i] for i in range(num_envs)):
        _, r, _, _, info = venv.step(policy.act(core))
        ret += r
        if "_final_info" in info:
            for i in np.flatnonzero(info["_final_info"]):
                if len(per_env[i]) < quota[i]:
                    per_env[i].append((info["final_info"][i], float(ret[i])))
                ret[i] = 0.0
    venv.close()
    done = [d for rows in per_env for d, _ in rows]
    returns = [g for rows in per_env for _, g in rows]
    keys = [k for k, v in done[0].items() if np.ndim(v) == 0 and not k.startswith(("reward_", "scene_id"))]
    out = {k: float(np.mean([d[k] for d in done])) for k in keys}
    out["return"] = float(np.mean(returns))
    out["episodes"] = float(len(done))
    return out
