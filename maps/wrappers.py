"""Gymnasium wrappers that keep one map per episode and add fixed-size map features to a Dict observation.

Env contract (``envs/nav``): observation Dict with ``"depth"`` float32 ``[H, W, 1]`` metres (``max_depth``
where nothing was hit) and optionally ``"semantic"`` int32 ``[H, W, 1]`` instance ids; ``info["camera_pose"]``
is the cam-to-world float64 ``[4, 4]`` of the frame just observed, from both ``reset`` and ``step``;
``env.unwrapped.intrinsics`` is a ``CameraIntrinsics``; ``env.unwrapped.max_depth`` a float.

Each wrapper adds one key, so they stack (``Mem4NavWrapper(OctreeWrapper(OccupancyMapWrapper(env)))``) and
any stable-baselines3 ``MultiInputPolicy`` uses the result unchanged. The map itself stays reachable as
``wrapper.map`` for inspection and tests.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from chronotope.maps.geometry import backproject_depth, camera_yaw, world_to_agent_xy
from chronotope.maps.mem4nav import Mem4NavConfig, Mem4NavMemory
from chronotope.maps.occupancy import OccupancyConfig, OccupancyMap
from chronotope.maps.octree import OctreeConfig, SparseOctree
from chronotope.maps.topology import TopologyConfig, TopologyGraph


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


class MapWrapper(gym.Wrapper):
    """Base class: calls :meth:`new_map` on reset, :meth:`integrate` on every frame, adds ``self.key``.

    Subclasses set ``self.key`` and ``space`` and implement ``new_map``, ``integrate`` and ``features``.
    """

    def __init__(self, env: gym.Env, key: str, space: gym.spaces.Space) -> None:
        super().__init__(env)
        if not isinstance(env.observation_space, gym.spaces.Dict) or "depth" not in env.observation_space.spaces:
            raise ValueError(f"map wrappers need a Dict observation with a 'depth' key, got {env.observation_space}")
        if key in env.observation_space.spaces:
            raise ValueError(f"observation key {key!r} already exists")
        self.key = key
        self.intrinsics = env.unwrapped.intrinsics
        self.max_depth = float(env.unwrapped.max_depth)
        self.observation_space = gym.spaces.Dict({**env.observation_space.spaces, key: space})
        self.map: Any = None

    # hooks ---------------------------------------------------------------
    def new_map(self) -> Any:
        raise NotImplementedError

    def integrate(self, obs: dict, pose: np.ndarray) -> None:
        raise NotImplementedError

    def features(self, obs: dict, pose: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # gymnasium -----------------------------------------------------------
    @staticmethod
    def _pose(info: dict) -> np.ndarray:
        if "camera_pose" not in info:
            raise ValueError(f"map wrappers need info['camera_pose'] (cam-to-world 4x4); info keys: {list(info)}")
        pose = np.asarray(info["camera_pose"], np.float64)
        if pose.shape != (4, 4):
            raise ValueError(f"info['camera_pose'] must be [4, 4], got {pose.shape}")
        return pose

    def _observe(self, obs: dict, info: dict) -> dict:
        pose = self._pose(info)
        feat = self.features_before(obs, pose)
        self.integrate(obs, pose)
        if feat is None:
            feat = self.features(obs, pose)
        return {**obs, self.key: feat}

    def features_before(self, obs: dict, pose: np.ndarray) -> np.ndarray | None:
        """Features computed before the frame is integrated (None: compute after). Retrieval uses this."""
        return None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.map = self.new_map()
        return self._observe(obs, info), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._observe(obs, info), reward, terminated, truncated, info


class OccupancyMapWrapper(MapWrapper):
    """Adds ``"occupancy"``: float32 ``[3, crop, crop]`` agent-centred crop (occupied, free, semantic id).

    The space declares the true bounds per channel: occupied and free in [0, 1], the semantic id in
    [0, the env's largest instance id] (0 without a ``"semantic"`` observation), so an encoder that scales by the
    bounds sees the map's content at unit scale.
    """

    def __init__(
        self,
        env: gym.Env,
        cfg: OccupancyConfig | None = None,
        crop_size: int = 64,
        rotate: bool = True,
        key: str = "occupancy",
    ) -> None:
        self.cfg = cfg or OccupancyConfig()
        self.crop_size, self.rotate = int(crop_size), rotate
        spaces = env.observation_space.spaces if isinstance(env.observation_space, gym.spaces.Dict) else {}
        sem = spaces.get("semantic")
        max_id = float(np.max(sem.high)) if sem is not None else 0.0
        high = np.empty((3, self.crop_size, self.crop_size), np.float32)
        high[0], high[1], high[2] = 1.0, 1.0, max_id
        super().__init__(env, key, gym.spaces.Box(np.zeros_like(high), high, dtype=np.float32))

    def new_map(self) -> OccupancyMap:
        return OccupancyMap(self.cfg)

    def integrate(self, obs: dict, pose: np.ndarray) -> None:
        self.map.integrate_depth(obs["depth"], self.intrinsics, pose, self.max_depth, obs.get("semantic"))

    def features(self, obs: dict, pose: np.ndarray) -> np.ndarray:
        return self.map.crop(pose[:3, 3], camera_yaw(pose), self.crop_size, self.rotate)


class OctreeWrapper(MapWrapper):
    """Adds ``"octree_knn"``: float32 ``[k, 6]`` for the k leaves nearest the camera, nearest first.

    Columns: leaf centre offset in the agent frame (forward, left, up; metres), log(1 + point count),
    dominant semantic label (-1 without labels), valid flag (rows beyond the leaf count are zeros).
    Semantic ids ``>= num_labels - 1`` share the last histogram bin.
    """

    def __init__(self, env: gym.Env, cfg: OctreeConfig | None = None, k: int = 16, key: str = "octree_knn") -> None:
        self.cfg = cfg or OctreeConfig(num_labels=64)
        self.k = int(k)
        super().__init__(env, key, gym.spaces.Box(-np.inf, np.inf, (self.k, 6), np.float32))

    def new_map(self) -> SparseOctree:
        return SparseOctree(self.cfg)

    def integrate(self, obs: dict, pose: np.ndarray) -> None:
        sem = obs.get("semantic") if self.cfg.num_labels else None
        if sem is not None:
            sem = np.clip(np.asarray(sem), 0, self.cfg.num_labels - 1)
        self.map.insert_depth(obs["depth"], self.intrinsics, pose, self.max_depth, semantic=sem)

    def features(self, obs: dict, pose: np.ndarray) -> np.ndarray:
        out = np.zeros((self.k, 6), np.float32)
        cam = pose[:3, 3]
        slots, _ = self.map.query_knn(cam, self.k)
        n = slots.shape[0]
        if n == 0:
            return out
        off = self.map.centers(self.map.slot_keys(slots)) - cam
        out[:n, :2] = world_to_agent_xy(off[:, :2], camera_yaw(pose))
        out[:n, 2] = off[:, 2]
        out[:n, 3] = np.log1p(self.map.counts(slots))
        out[:n, 4] = self.map.label_histograms(slots).argmax(axis=1) if self.cfg.num_labels else -1
        out[:n, 5] = 1.0
        return out


class TopologyWrapper(MapWrapper):
    """Adds ``"topology"``: float32 ``[1 + k, 6]`` for the current place node and its k cheapest successors.

    Nodes come from :func:`depth_descriptor` embeddings of each frame at the camera position. Columns: node
    offset in the agent frame (forward, left, up), log(1 + observations), edge weight (0 for the current
    node), valid flag.
    """

    def __init__(
        self, env: gym.Env, cfg: TopologyConfig | None = None, k: int = 8, grid: int = 8, key: str = "topology"
    ) -> None:
        self.cfg = cfg or TopologyConfig(delta=0.6)
        self.k, self.grid = int(k), int(grid)
        super().__init__(env, key, gym.spaces.Box(-np.inf, np.inf, (1 + self.k, 6), np.float32))

    def new_map(self) -> TopologyGraph:
        return TopologyGraph(self.grid * self.grid, self.cfg)

    def integrate(self, obs: dict, pose: np.ndarray) -> None:
        self.map.update(depth_descriptor(obs["depth"], self.max_depth, self.grid), pose[:3, 3])

    def features(self, obs: dict, pose: np.ndarray) -> np.ndarray:
        out = np.zeros((1 + self.k, 6), np.float32)
        cur = self.map.current
        nbrs, w = self.map.neighbourhood(cur, self.k)
        nodes = np.concatenate([[cur], nbrs]).astype(np.int64)
        off = self.map.positions[nodes] - pose[:3, 3]
        n = nodes.shape[0]
        out[:n, :2] = world_to_agent_xy(off[:, :2], camera_yaw(pose))
        out[:n, 2] = off[:, 2]
        out[:n, 3] = np.log1p(self.map.counts[nodes])
        out[1:n, 4] = w
        out[:n, 5] = 1.0
        return out


class Mem4NavWrapper(MapWrapper):
    """Adds ``"mem4nav"``: float32 ``[d + 2]``, the STM-first retrieval for the current frame.

    Retrieval runs *before* the frame is written, so it returns what earlier frames left. The embedding is
    :func:`depth_descriptor` (d = grid^2) unless ``embed_fn(obs) -> [d]`` is given; the object id of an STM
    entry is the semantic id at the image centre (0 without semantics). The default LTM reads with
    ``query_mode="encode"`` (training-free); pass a trained ``Mem4NavMemory`` config to use the learned query.
    """

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
        import torch

        self.grid = int(grid)
        self.mcfg = cfg or Mem4NavConfig(dim=self.grid**2, blocks=2, heads=4, chunks=2, query_mode="encode")
        self.embed_fn = embed_fn
        # the LTM weights are built once (seeded) and shared by every episode's memory
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._memory = Mem4NavMemory(self.mcfg, octree_cfg, topo_cfg, device=device)
        self._memory.ltm.eval()
        super().__init__(env, key, gym.spaces.Box(-np.inf, np.inf, (self.mcfg.dim + 2,), np.float32))

    def _embed(self, obs: dict) -> np.ndarray:
        if self.embed_fn is not None:
            return np.asarray(self.embed_fn(obs), np.float32).reshape(-1)
        return depth_descriptor(obs["depth"], self.max_depth, self.grid)

    def new_map(self) -> Mem4NavMemory:
        self._memory.reset()
        return self._memory

    def features_before(self, obs: dict, pose: np.ndarray) -> np.ndarray:
        return self.map.feature(self._embed(obs), pose[:3, 3])

    def integrate(self, obs: dict, pose: np.ndarray) -> None:
        obj = 0
        if "semantic" in obs:
            sem = np.asarray(obs["semantic"])
            obj = int(sem[sem.shape[0] // 2, sem.shape[1] // 2].reshape(-1)[0])
        self.map.observe(self._embed(obs), pose[:3, 3], object_id=obj)


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
        task_pixels = getattr(core.task, "modify_pixels", None)
        if task_pixels is not None:
            task_pixels(core, np.arange(core.n), frame, out)
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
    if (
        names
        and names[0] != "depth"
        and not (isinstance(env.observation_space, gym.spaces.Dict) and "depth" in env.observation_space.spaces)
    ):
        raise ValueError(
            f"map wrappers {names} need a 'depth' observation: use obs_mode 'depth'/'rgbd' or add the 'depth' wrapper"
        )
    bounds = _scene_bounds(env)
    for n in names:
        if n == "depth":
            env = RenderedDepthWrapper(env)
        elif n == "occupancy":
            cfg = None
            if bounds is not None:
                cell = OccupancyConfig().cell_size
                lo, hi = bounds
                nx, ny = (int(np.ceil((hi[i] - lo[i]) / cell)) + 1 for i in range(2))
                shape = (ny, nx)  # rows along y, columns along x
                cfg = OccupancyConfig(cell_size=cell, shape=shape, origin=(float(lo[0]), float(lo[1])))
            env = OccupancyMapWrapper(env, cfg)
        elif n == "octree":
            cfg = None
            if bounds is not None:
                lo, hi = bounds
                base = OctreeConfig(num_labels=64)
                size = max(float(np.max(hi - lo)), base.size)  # the default 5 cm voxels unless scenes are larger
                cfg = OctreeConfig(origin=(float(lo[0]), float(lo[1]), -0.5), size=size, num_labels=64)
            env = OctreeWrapper(env, cfg)
        elif n == "topology":
            env = TopologyWrapper(env)
        else:
            env = Mem4NavWrapper(env, seed=seed)
    return env


def _scene_bounds(env: gym.Env) -> tuple[np.ndarray, np.ndarray] | None:
    """World xy bounds ``(lo[2], hi[2])`` of every scene of a Chronotope nav env (a 1 m margin), else None."""
    core = getattr(env.unwrapped, "core", None)
    scenes = getattr(core, "scenes", None)
    if not scenes:
        return None
    lo = np.min([np.asarray(s.bounds[0], float)[:2] for s in scenes], axis=0) - 1.0
    hi = np.max([np.asarray(s.bounds[1], float)[:2] for s in scenes], axis=0) + 1.0
    return lo, hi


def backprojected_points(obs: dict, pose: np.ndarray, env: gym.Env) -> np.ndarray:
    """World points ``[N, 3]`` of one observation's depth (a convenience for tests and visualisation)."""
    return backproject_depth(obs["depth"], env.unwrapped.intrinsics, pose, env.unwrapped.max_depth)[0]
