"""Gymnasium wrappers that keep one map per episode and add fixed-size map features to a Dict observation.

Env contract (``envs/nav``): observation Dict with ``"depth"`` float32 ``[H, W, 1]`` metres (``max_depth``
where nothing was hit) and optionally ``"semantic"`` int32 ``[H, W, 1]`` instance ids; ``info["camera_pose"]``
is the cam-to-world float64 ``[4, 4]`` of the frame just observed, from both ``reset`` and ``step``;
``env.unwrapped.intrinsics`` is a ``CameraIntrinsics``; ``env.unwrapped.max_depth`` a float.

Each wrapper adds one key, so they stack (``Mem4NavWrapper(OctreeWrapper(OccupancyMapWrapper(env)))``) and
any stable-baselines3 ``MultiInputPolicy`` uses the result unchanged. The map itself stays reachable as
``wrapper.map`` for inspection and tests.

A map kind (:class:`MapKind`: occupancy, octree, topology, Mem4Nav) owns its update; :class:`MapWrapper` applies
it to one env, :class:`VectorMapWrapper` to the N sub-environments of a batched vector env (``NavVectorEnv``: one
core, one renderer) in one call per step, reading the batched observations and ``info["camera_pose"]`` it
already produced. :func:`apply_wrappers` / :func:`apply_vector_wrappers` build either from wrapper names.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from chronotope.maps.geometry import backproject_depth, backproject_depth_columns, camera_yaw, world_to_agent_xy
from chronotope.maps.mem4nav import Mem4NavConfig, Mem4NavMemory
from chronotope.maps.occupancy import OccupancyConfig, OccupancyMap, crop_batch, integrate_points_batch
from chronotope.maps.octree import OctreeConfig, SparseOctree, insert_batch, query_knn_batch
from chronotope.maps.spaces import EgocentricMapBox
from chronotope.maps.topology import TopologyConfig, TopologyGraph

_POOL: ThreadPoolExecutor | None = None


def _map_pool() -> ThreadPoolExecutor:
    """The worker threads of :meth:`VectorMapWrapper._observe` (made on first use, shared by every wrapper)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="chronotope-maps")
    return _POOL


def depth_descriptor(depth: np.ndarray, max_depth: float, grid: int = 8) -> np.ndarray:
    """Training-free place descriptor: ``grid x grid`` mean-pooled depth, centred, unit L2 norm.

    Args:
        depth: ``[H, W]`` or ``[H, W, 1]`` metres; H and W divisible by ``grid``.
        max_depth: normaliser.
        grid: pooled cells per side.

    Returns:
        float32 ``[grid * grid]`` (all zeros for a constant image).
    """
    d = np.asarray(depth, np.float64)
    d = d[..., 0] if d.ndim == 3 else d
    h, w = d.shape
    if h % grid or w % grid:
        raise ValueError(f"depth {h}x{w} is not divisible into a {grid}x{grid} grid")
    d = np.nan_to_num(d, nan=max_depth, posinf=max_depth, neginf=0.0) / max_depth
    pooled = d.reshape(grid, h // grid, grid, w // grid).mean(axis=(1, 3)).reshape(-1)
    pooled -= pooled.mean()
    n = np.linalg.norm(pooled)
    return (pooled / n if n > 1e-9 else pooled).astype(np.float32)


class Frames:
    """A batch of B observed frames, what every map update reads: one row per map being updated.

    Args:
        obs: batched observation dict (``"depth"`` ``[B, H, W, 1]``, optional ``"semantic"`` ``[B, H, W, 1]``).
        poses: cam-to-world float ``[B, 4, 4]`` of those frames.
        intrinsics: the camera.
        max_depth: the renderer's depth clip.
    """

    def __init__(self, obs: dict, poses: np.ndarray, intrinsics, max_depth: float) -> None:
        self.obs = obs
        self.depth = np.asarray(obs["depth"])
        self.semantic = None if obs.get("semantic") is None else np.asarray(obs["semantic"])
        self.poses = np.asarray(poses, np.float64)
        if self.poses.shape != (self.depth.shape[0], 4, 4):
            raise ValueError(f"expected {self.depth.shape[0]} camera poses [4, 4], got shape {self.poses.shape}")
        self.intrinsics, self.max_depth = intrinsics, float(max_depth)
        self._points: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._bounds: np.ndarray | None = None
        self._columns: np.ndarray | None = None

    def __len__(self) -> int:
        return self.depth.shape[0]

    def all_points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The points of every frame (back-projected once for the whole batch, on first use): world points
        float64 ``[M, 3]`` grouped by frame (frame 0's first), their frame int64 ``[M]`` and flat pixel index
        int64 ``[M]``."""
        if self._points is None:
            cols, frame, idx = backproject_depth_columns(self.depth, self.intrinsics, self.poses, self.max_depth)
            self._columns = cols
            self._points = (cols.T, frame, idx)  # [M, 3], a view of the coordinate rows
            self._bounds = np.searchsorted(self._points[1], np.arange(len(self) + 1))
        return self._points

    def columns(self) -> np.ndarray:
        """:meth:`all_points` by coordinate, float64 ``[3, M]`` contiguous (x, y, z rows; made once): the batched
        map updates read coordinates one at a time, several times faster from contiguous rows than from the
        strided columns of ``[M, 3]``."""
        self.all_points()  # made with the points
        return self._columns

    def labels(self) -> np.ndarray | None:
        """The semantic id of every point of :meth:`all_points` (int ``[M]``), or None without semantics."""
        if self.semantic is None:
            return None
        _, frame, idx = self.all_points()
        return self.semantic.reshape(len(self), -1)[frame, idx]

    def points(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """World points float64 ``[M, 3]`` of frame ``b``'s pixels that hit something, and their flat pixel
        indices ``[M]`` (a slice of :meth:`all_points`)."""
        pts, _, idx = self.all_points()
        s = slice(self._bounds[b], self._bounds[b + 1])
        return pts[s], idx[s]

    def row(self, b: int) -> dict:
        """Frame ``b``'s observation (every key)."""
        return {k: v[b] for k, v in self.obs.items()}


class MapKind:
    """One kind of map: its observation key and space, and how N maps of it are made and updated.

    The single-env wrapper (:class:`MapWrapper`) and the vector wrapper (:class:`VectorMapWrapper`) both call
    :meth:`observe`, so a map sees the same update whether its env is stepped alone or in a batch.
    """

    key: str
    space: gym.spaces.Box
    threadsafe: bool = False
    """:meth:`observe` may run in a worker thread beside another kind's (its maps are its own, its compiled loops
    release the GIL): :class:`VectorMapWrapper` then updates such kinds concurrently."""

    def new_map(self, previous: Any = None) -> Any:
        """An empty map for a new episode (``previous``: the map it replaces, which it may reuse)."""
        raise NotImplementedError

    def observe(self, maps: list, frames: Frames) -> np.ndarray:
        """Integrates frame b into ``maps[b]``; returns the features ``[B, *space.shape]`` float32."""
        raise NotImplementedError


class OccupancyKind(MapKind):
    """``"occupancy"``: ``[3, crop, crop]`` agent-centred crop (occupied, free, semantic id), uint8 (uint16 when the
    env's ids exceed 255, float32 beyond 65535).

    The space (an :class:`~chronotope.maps.spaces.EgocentricMapBox`, which the policies' encoders give a map CNN)
    declares the true bounds per channel: occupied and free in [0, 1], the semantic id in [0, the env's largest
    instance id] (0 without a ``"semantic"`` observation).
    """

    threadsafe = True

    def __init__(
        self,
        obs_space: gym.spaces.Dict,
        cfg: OccupancyConfig | None = None,
        crop_size: int = 64,
        rotate: bool = True,
        key: str = "occupancy",
    ) -> None:
        self.cfg = cfg or OccupancyConfig()
        self.crop_size, self.rotate, self.key = int(crop_size), rotate, key
        sem = obs_space.spaces.get("semantic")
        max_id = float(np.max(sem.high)) if sem is not None else 0.0
        # the smallest type that holds every value (0 / 1 flags and the ids): a quarter of float32's bytes to
        # copy through rollouts and minibatches when the ids fit a byte
        self.dtype = next((t for t in (np.uint8, np.uint16) if max_id <= np.iinfo(t).max), np.float32)
        high = np.empty((3, self.crop_size, self.crop_size), self.dtype)
        high[0], high[1], high[2] = 1, 1, max_id
        self.space = EgocentricMapBox(np.zeros_like(high), high, dtype=self.dtype)

    def new_map(self, previous: Any = None) -> OccupancyMap:
        return OccupancyMap(self.cfg)

    def observe(self, maps: list, frames: Frames) -> np.ndarray:
        # every frame in one pass: the same maps and crops as m.integrate_points + m.crop per map
        pts, frame, _ = frames.all_points()
        integrate_points_batch(maps, pts, frame, frames.labels(), frames.poses[:, :3, 3], frames.columns())
        yaws = np.array([camera_yaw(p) for p in frames.poses])
        return crop_batch(maps, frames.poses[:, :3, 3], yaws, self.crop_size, self.rotate, self.dtype)


class OctreeKind(MapKind):
    """``"octree_knn"``: float32 ``[k, 6]`` for the k leaves nearest the camera, nearest first.

    Columns: leaf centre offset in the agent frame (forward, left, up; metres), log(1 + point count),
    dominant semantic label (-1 without labels), valid flag (rows beyond the leaf count are zeros).
    Semantic ids ``>= num_labels - 1`` share the last histogram bin.
    """

    threadsafe = True

    def __init__(self, cfg: OctreeConfig | None = None, k: int = 16, key: str = "octree_knn") -> None:
        self.cfg = cfg or OctreeConfig(num_labels=64)
        self.k, self.key = int(k), key
        self.space = gym.spaces.Box(-np.inf, np.inf, (self.k, 6), np.float32)

    def new_map(self, previous: Any = None) -> SparseOctree:
        return SparseOctree(self.cfg)

    def observe(self, maps: list, frames: Frames) -> np.ndarray:
        out = np.zeros((len(frames), self.k, 6), np.float32)
        pts, frame, _ = frames.all_points()
        labels = frames.labels() if self.cfg.num_labels else None
        if labels is not None:
            labels = np.clip(labels, 0, self.cfg.num_labels - 1)
        # every frame in one pass: the same trees as m.insert per map
        insert_batch(maps, pts, frame, labels, frames.columns())
        cams = frames.poses[:, :3, 3]
        found = query_knn_batch(maps, cams, self.k)
        n = np.array([s.shape[0] for s in found])
        if not n.any():
            return out
        # the features of all rows at once (element by element as per row)
        row = np.repeat(np.arange(len(maps)), n)
        col = np.arange(row.shape[0]) - np.repeat(np.cumsum(n) - n, n)
        keys = np.concatenate([m.slot_keys(s) for m, s in zip(maps, found)])
        counts = np.concatenate([m.counts(s) for m, s in zip(maps, found)])
        if all(m.cfg == self.cfg for m in maps):
            centres = maps[0].centers(keys)
        else:
            centres = np.concatenate([m.centers(m.slot_keys(s)) for m, s in zip(maps, found)])
        off = centres - cams[row]
        yaws = np.array([camera_yaw(p) for p in frames.poses])
        cos = np.array([math.cos(v) for v in yaws])[row]  # math.cos per row, as world_to_agent_xy computes it
        sin = np.array([math.sin(v) for v in yaws])[row]
        out[row, col, 0] = cos * off[:, 0] + sin * off[:, 1]
        out[row, col, 1] = -sin * off[:, 0] + cos * off[:, 1]
        out[row, col, 2] = off[:, 2]
        out[row, col, 3] = np.log1p(counts)
        if self.cfg.num_labels:
            hists = np.concatenate([m.label_histograms(s) for m, s in zip(maps, found)])
            out[row, col, 4] = hists.argmax(axis=1)
        else:
            out[row, col, 4] = -1
        out[row, col, 5] = 1.0
        return out


class TopologyKind(MapKind):
    """``"topology"``: float32 ``[1 + k, 6]`` for the current place node and its k cheapest successors.

    Nodes come from :func:`depth_descriptor` embeddings of each frame at the camera position. Columns: node
    offset in the agent frame (forward, left, up), log(1 + observations), edge weight (0 for the current
    node), valid flag.
    """

    def __init__(
        self, max_depth: float, cfg: TopologyConfig | None = None, k: int = 8, grid: int = 8, key: str = "topology"
    ) -> None:
        self.cfg = cfg or TopologyConfig(delta=0.6)
        self.max_depth, self.k, self.grid, self.key = float(max_depth), int(k), int(grid), key
        self.space = gym.spaces.Box(-np.inf, np.inf, (1 + self.k, 6), np.float32)

    def new_map(self, previous: Any = None) -> TopologyGraph:
        return TopologyGraph(self.grid * self.grid, self.cfg)

    def observe(self, maps: list, frames: Frames) -> np.ndarray:
        out = np.zeros((len(frames), 1 + self.k, 6), np.float32)
        for b, m in enumerate(maps):
            pose = frames.poses[b]
            m.update(depth_descriptor(frames.depth[b], self.max_depth, self.grid), pose[:3, 3])
            cur = m.current
            nbrs, w = m.neighbourhood(cur, self.k)
            nodes = np.concatenate([[cur], nbrs]).astype(np.int64)
            off = m.positions[nodes] - pose[:3, 3]
            n = nodes.shape[0]
            out[b, :n, :2] = world_to_agent_xy(off[:, :2], camera_yaw(pose))
            out[b, :n, 2] = off[:, 2]
            out[b, :n, 3] = np.log1p(m.counts[nodes])
            out[b, 1:n, 4] = w
            out[b, :n, 5] = 1.0
        return out


class Mem4NavKind(MapKind):
    """``"mem4nav"``: float32 ``[d + 2]``, the STM-first retrieval for the current frame.

    Retrieval runs *before* the frame is written, so it returns what earlier frames left. The embedding is
    :func:`depth_descriptor` (d = grid^2) unless ``embed_fn(obs) -> [d]`` is given; the object id of an STM
    entry is the semantic id at the image centre (0 without semantics). The default LTM reads with
    ``query_mode="encode"`` (training-free); pass a trained ``Mem4NavMemory`` config to use the learned query.
    Every map's LTM has the same weights (built from ``seed``); a map is reset, not rebuilt, per episode.
    """

    def __init__(
        self,
        max_depth: float,
        cfg: Mem4NavConfig | None = None,
        octree_cfg: OctreeConfig | None = None,
        topo_cfg: TopologyConfig | None = None,
        grid: int = 8,
        embed_fn=None,
        seed: int = 0,
        device: str = "cpu",
        key: str = "mem4nav",
    ) -> None:
        self.max_depth, self.grid, self.key = float(max_depth), int(grid), key
        self.mcfg = cfg or Mem4NavConfig(dim=self.grid**2, blocks=2, heads=4, chunks=2, query_mode="encode")
        self.octree_cfg, self.topo_cfg, self.embed_fn = octree_cfg, topo_cfg, embed_fn
        self.seed, self.device = int(seed), device
        self.space = gym.spaces.Box(-np.inf, np.inf, (self.mcfg.dim + 2,), np.float32)

    def new_map(self, previous: Any = None) -> Mem4NavMemory:
        if previous is not None:
            previous.reset()
            return previous
        import torch

        # the LTM weights are seeded: the same in every map
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            memory = Mem4NavMemory(self.mcfg, self.octree_cfg, self.topo_cfg, device=self.device)
        memory.ltm.eval()
        return memory

    def _embed(self, frames: Frames, b: int) -> np.ndarray:
        if self.embed_fn is not None:
            return np.asarray(self.embed_fn(frames.row(b)), np.float32).reshape(-1)
        return depth_descriptor(frames.depth[b], self.max_depth, self.grid)

    def observe(self, maps: list, frames: Frames) -> np.ndarray:
        out = np.empty((len(frames), *self.space.shape), np.float32)
        for b, m in enumerate(maps):
            pos = frames.poses[b, :3, 3]
            v = self._embed(frames, b)
            out[b] = m.feature(v, pos)
            obj = 0
            if frames.semantic is not None:
                sem = frames.semantic[b]
                obj = int(sem[sem.shape[0] // 2, sem.shape[1] // 2].reshape(-1)[0])
            m.observe(v, pos, object_id=obj)
        return out


def _check_map_obs(space: gym.Space, key: str) -> None:
    if not isinstance(space, gym.spaces.Dict) or "depth" not in space.spaces:
        raise ValueError(f"map wrappers need a Dict observation with a 'depth' key, got {space}")
    if key in space.spaces:
        raise ValueError(f"observation key {key!r} already exists")


def _pose(info: dict, key: str) -> np.ndarray:
    if key not in info:
        raise ValueError(f"map wrappers need info[{key!r}] (cam-to-world 4x4); info keys: {list(info)}")
    return np.asarray(info[key], np.float64)


class MapWrapper(gym.Wrapper):
    """Keeps one map of a :class:`MapKind` per episode of a single env and adds its key to the observation.

    The map reads ``info[pose_key]`` (cam-to-world ``[4, 4]`` of the observed frame); it is reachable as
    ``wrapper.map``.
    """

    def __init__(self, env: gym.Env, kind: MapKind, pose_key: str = "camera_pose") -> None:
        super().__init__(env)
        _check_map_obs(env.observation_space, kind.key)
        self.kind, self.key, self.pose_key = kind, kind.key, pose_key
        self.intrinsics = env.unwrapped.intrinsics
        self.max_depth = float(env.unwrapped.max_depth)
        self.observation_space = gym.spaces.Dict({**env.observation_space.spaces, kind.key: kind.space})
        self.map: Any = None

    def integrate(self, obs: dict, pose: np.ndarray) -> np.ndarray:
        """Integrates one frame (observation, cam-to-world ``[4, 4]``) into ``self.map``; returns its features."""
        pose = np.asarray(pose, np.float64)
        if pose.shape != (4, 4):
            raise ValueError(f"the camera pose (info[{self.pose_key!r}]) must be [4, 4], got {pose.shape}")
        frames = Frames({k: np.asarray(v)[None] for k, v in obs.items()}, pose[None], self.intrinsics, self.max_depth)
        return self.kind.observe([self.map], frames)[0]

    def _observe(self, obs: dict, info: dict) -> dict:
        return {**obs, self.key: self.integrate(obs, _pose(info, self.pose_key))}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.map = self.kind.new_map(self.map)
        return self._observe(obs, info), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._observe(obs, info), reward, terminated, truncated, info


class OccupancyMapWrapper(MapWrapper):
    """Adds ``"occupancy"`` (see :class:`OccupancyKind`) to a single env."""

    def __init__(
        self,
        env: gym.Env,
        cfg: OccupancyConfig | None = None,
        crop_size: int = 64,
        rotate: bool = True,
        key: str = "occupancy",
    ) -> None:
        space = env.observation_space if isinstance(env.observation_space, gym.spaces.Dict) else gym.spaces.Dict()
        super().__init__(env, OccupancyKind(space, cfg, crop_size, rotate, key))


class OctreeWrapper(MapWrapper):
    """Adds ``"octree_knn"`` (see :class:`OctreeKind`) to a single env."""

    def __init__(self, env: gym.Env, cfg: OctreeConfig | None = None, k: int = 16, key: str = "octree_knn") -> None:
        super().__init__(env, OctreeKind(cfg, k, key))


class TopologyWrapper(MapWrapper):
    """Adds ``"topology"`` (see :class:`TopologyKind`) to a single env."""

    def __init__(
        self, env: gym.Env, cfg: TopologyConfig | None = None, k: int = 8, grid: int = 8, key: str = "topology"
    ) -> None:
        super().__init__(env, TopologyKind(float(env.unwrapped.max_depth), cfg, k, grid, key))


class Mem4NavWrapper(MapWrapper):
    """Adds ``"mem4nav"`` (see :class:`Mem4NavKind`) to a single env."""

    def __init__(
        self,
        env: gym.Env,
        cfg: Mem4NavConfig | None = None,
        octree_cfg: OctreeConfig | None = None,
        topo_cfg: TopologyConfig | None = None,
        grid: int = 8,
        embed_fn=None,
        seed: int = 0,
        device: str = "cpu",
        key: str = "mem4nav",
    ) -> None:
        max_depth = float(env.unwrapped.max_depth)
        super().__init__(env, Mem4NavKind(max_depth, cfg, octree_cfg, topo_cfg, grid, embed_fn, seed, device, key))


class VectorMapWrapper(gym.vector.VectorWrapper):
    """Keeps N maps of each given :class:`MapKind`, one per sub-environment of a batched env, all updated in one
    call per step from one back-projection of the batch.

    Reads only what the env produced: the batched observation (``"depth"``, optional ``"semantic"``) and
    ``info[pose_key]`` (cam-to-world ``[N, 4, 4]`` of the observed frames); for a finished episode, its last
    frame from ``info["final_obs"]`` and its pose from ``info["final_info"]`` (gymnasium's batched layout,
    see :mod:`chronotope.envs.vector_info`). Follows the env's ``metadata["autoreset_mode"]``:

    * SAME_STEP (``NavVectorEnv``): a finished episode's last frame goes into its maps, whose features are added
      to ``info["final_obs"][i]`` (the trainers bootstrap from them); then the row gets new maps for the first
      frame of the next episode, returned in the same step.
    * NEXT_STEP: the row gets new maps on the step after the episode ended (the reset step).
    * DISABLED / a masked ``reset(options={"reset_mask": m})``: rows get new maps when reset.

    Row i therefore sees exactly what :class:`MapWrapper` s of the same kinds over sub-environment i would.
    The maps are ``wrapper.maps[key]`` (a list with one map per sub-environment).
    """

    def __init__(
        self, env: gym.vector.VectorEnv, kinds: MapKind | list[MapKind], pose_key: str = "camera_pose"
    ) -> None:
        super().__init__(env)
        self.kinds = [kinds] if isinstance(kinds, MapKind) else list(kinds)
        spaces = dict(env.single_observation_space.spaces) if hasattr(env.single_observation_space, "spaces") else {}
        for kind in self.kinds:
            _check_map_obs(gym.spaces.Dict(spaces) if spaces else env.single_observation_space, kind.key)
            spaces[kind.key] = kind.space
        self.pose_key = pose_key
        self.intrinsics = env.unwrapped.intrinsics
        self.max_depth = float(env.unwrapped.max_depth)
        self.single_observation_space = gym.spaces.Dict(spaces)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.autoreset_mode = AutoresetMode(env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP))
        self.maps: dict[str, list[Any]] = {k.key: [None] * self.num_envs for k in self.kinds}
        self._features = {k.key: np.zeros((self.num_envs, *k.space.shape), k.space.dtype) for k in self.kinds}
        self._reset_next = np.zeros(self.num_envs, bool)  # NEXT_STEP: rows whose next step is a reset

    def _observe(self, frames: Frames, rows: np.ndarray) -> dict[str, np.ndarray]:
        maps = {k.key: [self.maps[k.key][i] for i in rows] for k in self.kinds}
        parallel = [k for k in self.kinds if k.threadsafe]
        if len(parallel) < 2:
            return {k.key: k.observe(maps[k.key], frames) for k in self.kinds}
        # The thread-safe kinds (occupancy, octree) update their maps in worker threads at once: their compiled
        # loops release the GIL, so on a multi-core CPU the two updates overlap. Each kind's maps are its own,
        # so the features are those of one kind after the other. The shared back-projection is made first.
        frames.all_points()
        frames.labels()
        futures = {k.key: _map_pool().submit(k.observe, maps[k.key], frames) for k in parallel}
        out = {k.key: k.observe(maps[k.key], frames) for k in self.kinds if not k.threadsafe}
        out.update({key: f.result() for key, f in futures.items()})
        return {k.key: out[k.key] for k in self.kinds}

    def _update(self, obs: dict, info: dict, rows: np.ndarray) -> None:
        poses = _pose(info, self.pose_key)
        if poses.shape != (self.num_envs, 4, 4):
            raise ValueError(f"info[{self.pose_key!r}] must be [{self.num_envs}, 4, 4], got {poses.shape}")
        if rows.size == self.num_envs:
            frames = Frames(obs, poses, self.intrinsics, self.max_depth)
        else:
            frames = Frames({k: v[rows] for k, v in obs.items()}, poses[rows], self.intrinsics, self.max_depth)
        for key, feats in self._observe(frames, rows).items():
            self._features[key][rows] = feats

    def _new_maps(self, rows: np.ndarray) -> None:
        for kind in self.kinds:
            maps = self.maps[kind.key]
            for i in rows:
                maps[i] = kind.new_map(maps[i])

    def _with_features(self, obs: dict) -> dict:
        return {**obs, **{k: v.copy() for k, v in self._features.items()}}

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        mask = None if options is None else options.get("reset_mask")
        rows = np.arange(self.num_envs) if mask is None else np.flatnonzero(mask)
        self._new_maps(rows)
        self._reset_next[rows] = False
        self._update(obs, info, rows)
        return self._with_features(obs), info

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        done = np.asarray(terminated) | np.asarray(truncated)
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            self._new_maps(np.flatnonzero(self._reset_next))
            self._reset_next = done.copy()
        elif self.autoreset_mode == AutoresetMode.SAME_STEP and done.any():
            info = self._finish_episodes(np.flatnonzero(done), info)
        self._update(obs, info, np.arange(self.num_envs))
        return self._with_features(obs), reward, terminated, truncated, info

    def _finish_episodes(self, ended: np.ndarray, info: dict) -> dict:
        """SAME_STEP: integrates the last frames of the ``ended`` rows, adds their features to ``final_obs``,
        and gives those rows new maps."""
        final_obs = info["final_obs"]
        last = [final_obs[i] for i in ended]
        frames = Frames(
            {k: np.stack([o[k] for o in last]) for k in last[0]},
            info["final_info"][self.pose_key][ended],
            self.intrinsics,
            self.max_depth,
        )
        feats = self._observe(frames, ended)
        fo = final_obs.copy()
        for j, i in enumerate(ended):
            fo[i] = {**final_obs[i], **{k: v[j] for k, v in feats.items()}}
        self._new_maps(ended)
        return {**info, "final_obs": fo}


class RenderedDepthWrapper(gym.ObservationWrapper):
    """Adds ``"depth"`` float32 ``[H, W, 1]`` (metres) to a Chronotope nav env whose ``obs_mode`` renders none.

    ``state`` mode hands the policy privileged vectors and renders nothing; the map wrappers need a depth frame.
    This renders one with the env's own renderer (``core.renderer``, the backend ``obs_mode="depth"`` uses, at
    the env's ``resolution``) from the camera pose of the observation, so ``state`` observations and maps
    combine. It goes innermost, before any map wrapper.
    """

    def __init__(self, env: gym.Env, key: str = "depth") -> None:
        super().__init__(env)
        core = getattr(env.unwrapped, "core", None)
        if core is None or not hasattr(core, "renderer"):
            raise ValueError(f"RenderedDepthWrapper needs a Chronotope nav env (with .core), got {env.unwrapped!r}")
        if not isinstance(env.observation_space, gym.spaces.Dict):
            raise ValueError(f"RenderedDepthWrapper needs a Dict observation, got {env.observation_space}")
        if key in env.observation_space.spaces:
            raise ValueError(f"observation key {key!r} already exists (obs_mode already renders depth)")
        self.key = key
        h, w = core.intrinsics.height, core.intrinsics.width
        space = gym.spaces.Box(0.0, float(core.max_depth), (h, w, 1), np.float32)
        self.observation_space = gym.spaces.Dict({**env.observation_space.spaces, key: space})

    def observation(self, observation: dict) -> dict:
        core = self.env.unwrapped.core
        out = core.renderer.render(core.camera_poses(), core.sim.scene)
        frame = {"depth": out.depth.cpu().numpy()[..., None]}  # [1, H, W, 1]
        # What the agent would see: the task's pixels (e.g. Ballet's moving dancers) drawn over the static scene,
        # as NavCore.observe does for pixel modes.
        core.task.modify_pixels(core, np.arange(core.n), frame, out)  # declared on Task (a no-op by default)
        return {**observation, self.key: frame["depth"][0].astype(np.float32)}  # [H, W, 1]


# name -> wrapper class, in the order they are applied (depth first: the maps read it)
WRAPPERS: dict[str, type[gym.Wrapper]] = {
    "depth": RenderedDepthWrapper,
    "occupancy": OccupancyMapWrapper,
    "octree": OctreeWrapper,
    "topology": TopologyWrapper,
    "mem4nav": Mem4NavWrapper,
}


def parse_wrappers(spec: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``"octree,topology"`` (or a list) -> validated wrapper names in application order (duplicates dropped).

    Raises:
        ValueError: naming the unknown name and listing the valid ones.
    """
    if spec is None:
        return []
    names = [n.strip() for n in spec.split(",")] if isinstance(spec, str) else [str(n).strip() for n in spec]
    names = [n for n in names if n]
    for n in names:
        if n not in WRAPPERS:
            raise ValueError(f"unknown map wrapper {n!r} in {spec!r}; valid names: {', '.join(WRAPPERS)}")
    return [n for n in WRAPPERS if n in names]


def apply_wrappers(env: gym.Env, spec: str | list[str] | tuple[str, ...] | None, seed: int = 0) -> gym.Env:
    """Wraps one env with the named wrappers (see :func:`parse_wrappers`), default configs.

    The octree and occupancy maps are sized from the env's scenes when it has them (a Chronotope nav env), so
    every apartment fits; ``seed`` seeds the (untrained) Mem4Nav LTM weights.
    """
    names = parse_wrappers(spec)
    _check_depth(names, env.observation_space)
    bounds = _scene_bounds(env)
    for n in names:
        if n == "depth":
            env = RenderedDepthWrapper(env)
        else:
            space = env.observation_space
            env = MapWrapper(env, _kind(n, space, float(env.unwrapped.max_depth), bounds, seed))
    return env


def apply_vector_wrappers(
    env: gym.vector.VectorEnv, spec: str | list[str] | tuple[str, ...] | None, seed: int = 0
) -> gym.vector.VectorEnv:
    """Wraps a batched vector env with one :class:`VectorMapWrapper` holding the named maps: the same maps,
    configs and features as :func:`apply_wrappers` gives each sub-environment.

    Raises:
        ValueError: for ``"depth"`` (rendering depth for a ``state`` observation is a single-env wrapper; use
            ``obs_mode`` ``"depth"``/``"rgbd"`` for batched maps) or when the observation has no depth.
    """
    names = parse_wrappers(spec)
    if "depth" in names:
        raise ValueError("the 'depth' wrapper is single-env only; batched maps read the env's own depth")
    _check_depth(names, env.single_observation_space)
    if not names:
        return env
    bounds = _scene_bounds(env)
    space, max_depth = env.single_observation_space, float(env.unwrapped.max_depth)
    return VectorMapWrapper(env, [_kind(n, space, max_depth, bounds, seed) for n in names])


def _check_depth(names: list[str], space: gym.Space) -> None:
    if names and names[0] != "depth" and not (isinstance(space, gym.spaces.Dict) and "depth" in space.spaces):
        raise ValueError(
            f"map wrappers {names} need a 'depth' observation: use obs_mode 'depth'/'rgbd' or add the 'depth' wrapper"
        )


def _kind(
    name: str, obs_space: gym.spaces.Dict, max_depth: float, bounds: tuple[np.ndarray, np.ndarray] | None, seed: int
) -> MapKind:
    """The map kind of a wrapper name, default configs (maps sized to ``bounds`` when given)."""
    if name == "occupancy":
        cfg = None
        if bounds is not None:
            cell = OccupancyConfig().cell_size
            lo, hi = bounds
            nx, ny = (int(np.ceil((hi[i] - lo[i]) / cell)) + 1 for i in range(2))
            shape = (ny, nx)  # rows along y, columns along x
            cfg = OccupancyConfig(cell_size=cell, shape=shape, origin=(float(lo[0]), float(lo[1])))
        return OccupancyKind(obs_space, cfg)
    if name == "octree":
        cfg = None
        if bounds is not None:
            lo, hi = bounds
            base = OctreeConfig(num_labels=64)
            size = max(float(np.max(hi - lo)), base.size)  # the default 5 cm voxels unless scenes are larger
            cfg = OctreeConfig(origin=(float(lo[0]), float(lo[1]), -0.5), size=size, num_labels=64)
        return OctreeKind(cfg)
    if name == "topology":
        return TopologyKind(max_depth)
    if name == "mem4nav":
        return Mem4NavKind(max_depth, seed=seed)
    raise ValueError(f"no map kind named {name!r}")


def _scene_bounds(env: gym.Env | gym.vector.VectorEnv) -> tuple[np.ndarray, np.ndarray] | None:
    """World xy bounds ``(lo[2], hi[2])`` of every scene of a Chronotope nav env (a 1 m margin), else None."""
    base = env.unwrapped
    bounds = getattr(base, "scene_bounds", None)  # NavVectorEnv
    if bounds is None:
        scenes = getattr(getattr(base, "core", None), "scenes", None)  # NavEnv
        if not scenes:
            return None
        bounds = (
            np.min([np.asarray(s.bounds[0], float)[:2] for s in scenes], axis=0),
            np.max([np.asarray(s.bounds[1], float)[:2] for s in scenes], axis=0),
        )
    lo, hi = (np.asarray(b, float)[:2] for b in bounds)
    return lo - 1.0, hi + 1.0


def backprojected_points(obs: dict, pose: np.ndarray, env: gym.Env) -> np.ndarray:
    """World points ``[N, 3]`` of one observation's depth (a convenience for tests and visualisation)."""
    return backproject_depth(obs["depth"], env.unwrapped.intrinsics, pose, env.unwrapped.max_depth)[0]
