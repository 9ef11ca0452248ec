"""Evaluation of a Gaussian scene memory on a generated apartment walked by the shortest-path expert (issue 9).

Experiment code (it lived in ``memory/gaussian/evaluate.py``; the library does not import it). The pieces of
:mod:`chronotope.scripts.experiments.m3_eval`, reusable on their own:

* :func:`walk_apartment` / :func:`heldout_poses` / :func:`render_frames`: posed RGB-D + instance frames of an
  expert walk, and ground-truth frames at poses *off* the walk;
* :func:`heldout_metrics`: PSNR of the re-rendered RGB (whole image and covered pixels) and the cosine of decoded
  vs encoder features;
* :func:`compression`: bytes per Gaussian and whole-memory bytes vs storing raw features;
* :class:`RawFeatureMemory`: the baseline that stores every back-projected per-pixel encoder feature with its
  3D point and answers "where did I see it?" by the nearest cosine match;
* :func:`localisation`: the "where is it" query for every object seen during building, answered by the Gaussian
  memory (re-rendered decoded features, and per-Gaussian decoded queries), by the raw-feature baseline, and the
  chance level;
* :func:`mean_ci`: mean and 95% confidence half-width over seeds.

Frames are dicts: ``rgb`` [H, W, 3] uint8, ``depth`` [H, W] float32 z-depth, ``semantic`` [H, W] int32 instance
ids, ``pose`` [4, 4] float64 cam-to-world (OpenCV camera frame).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from chronotope.agents.stats import summarize
from chronotope.envs.render.camera import CameraIntrinsics
from chronotope.memory.gaussian.encoders import FeatureEncoder
from chronotope.memory.gaussian.scene_memory import GaussianSceneMemory

GEOMETRY_BYTES = 4 * 14
"""float32 position 3, log-scale 3, quaternion 4, opacity 1, colour 3 of one Gaussian."""


# ------------------------------------------------------------------------------------------------ data
def walk_apartment(
    scene_seed: int, episodes: int, max_episode_steps: int = 150, seed: int = 0, resolution: int = 64
) -> tuple[Any, list[dict]]:
    """The shortest-path expert walks ``episodes`` PointNav episodes in apartment ``scene_seed``.

    Returns:
        (env, frames): the open env (its renderer gives ground truth at any pose; close it when done) and one
        frame dict per step (keys above, plus ``episode``).
    """
    import gymnasium as gym

    import chronotope.envs  # noqa: F401  (registers the ids)
    from chronotope.envs.nav.expert import ShortestPathExpert

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    env = gym.make(
        "chronotope/PointNav-v0",
        obs_mode="rgbd",
        semantic=True,
        scene_seeds=(scene_seed,),
        resolution=(resolution, resolution),
        max_episode_steps=max_episode_steps,
    )
    expert = ShortestPathExpert()
    frames = []
    for ep in range(episodes):
        obs, info = env.reset(seed=seed * 1000 + ep)
        while True:
            frames.append(
                {
                    "rgb": obs["rgb"],
                    "depth": obs["depth"][..., 0],
                    "semantic": obs["semantic"][..., 0],
                    "pose": np.asarray(info["camera_pose"], np.float64),
                    "episode": ep,
                }
            )
            obs, _, term, trunc, info = env.step(int(expert.act(env.unwrapped.core)[0]))
            if term or trunc:
                break
    return env, frames


def heldout_poses(env, walk_poses: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n poses off the walk [n, 4, 4]: a walk pose shifted 0.15-0.35 m sideways (on navigable floor, at least
    0.1 m from every walk position) and turned by +-(10-30) degrees about the vertical."""
    grid = env.unwrapped.core.grids[0]
    walk_xy = walk_poses[:, :2, 3]
    out = []
    for _ in range(200 * n):
        if len(out) == n:
            break
        p = walk_poses[rng.integers(len(walk_poses))].copy()
        ang = rng.uniform(0, 2 * math.pi)
        xy = p[:2, 3] + rng.uniform(0.15, 0.35) * np.array([math.cos(ang), math.sin(ang)])
        if not grid.is_navigable(xy[None])[0] or np.min(np.linalg.norm(walk_xy - xy, axis=1)) < 0.1:
            continue
        d = math.radians(rng.uniform(10, 30)) * rng.choice([-1.0, 1.0])
        rz = np.array([[math.cos(d), -math.sin(d), 0], [math.sin(d), math.cos(d), 0], [0, 0, 1.0]])
        q = p.copy()
        q[:3, :3] = rz @ p[:3, :3]
        q[:2, 3] = xy
        out.append(q)
    if len(out) < n:
        raise ValueError(f"found only {len(out)} of {n} held-out poses near the walk")
    return np.stack(out)


def render_frames(env, poses: np.ndarray) -> list[dict]:
    """Ground-truth frames of the scene at ``poses`` [N, 4, 4] from the env's own renderer."""
    out = env.unwrapped.core.renderer.render(poses, np.zeros(len(poses), np.int64))
    rgb, depth, sem = out.rgb.cpu().numpy(), out.depth.cpu().numpy(), out.semantic.cpu().numpy()
    return [{"rgb": rgb[i], "depth": depth[i], "semantic": sem[i], "pose": poses[i]} for i in range(len(poses))]


def box_distance(points: np.ndarray, obj) -> np.ndarray:
    """Distance (m) of world points [N, 3] to an object's box (footprint x [0, height]), 0 inside: [N]."""
    c, s = math.cos(obj.yaw), math.sin(obj.yaw)
    d = np.asarray(points, np.float64)[:, :2] - np.asarray(obj.center)
    local = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], -1)  # object frame
    half = np.array([obj.size[0] / 2, obj.size[1] / 2])
    exy = np.maximum(np.abs(local) - half, 0.0)
    z = np.asarray(points, np.float64)[:, 2]
    ez = np.maximum(np.maximum(-z, z - obj.size[2]), 0.0)
    return np.sqrt((exy**2).sum(-1) + ez**2)


def backproject(depth: np.ndarray, pose: np.ndarray, intr: CameraIntrinsics, mask: np.ndarray) -> np.ndarray:
    """World points [n, 3] of the pixels where ``mask`` [H, W] is true (pixel centres, z-depth)."""
    v, u = np.nonzero(mask)
    z = depth[v, u].astype(np.float64)
    pts = np.stack([(u + 0.5 - intr.cx) / intr.fx * z, (v + 0.5 - intr.cy) / intr.fy * z, z], -1)
    return pts @ pose[:3, :3].T + pose[:3, 3]


# ------------------------------------------------------------------------------------------------ metrics
def encoder_map(encoder: FeatureEncoder, rgb: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """Encoder features bilinearly upsampled to the image: rgb [H, W, 3] uint8 -> [H, W, D]."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float().to(device) / 255
    f = encoder(x)
    return F.interpolate(f, size=rgb.shape[:2], mode="bilinear", align_corners=False)[0].permute(1, 2, 0)


def psnr(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR (dB) of images in [0, 1] (optionally over ``mask`` [H, W] only)."""
    err = (np.asarray(pred, np.float64) - np.asarray(target, np.float64)) ** 2
    if mask is not None:
        err = err[mask]
    return -10 * math.log10(max(float(err.mean()), 1e-12))


@torch.no_grad()
def heldout_metrics(mem: GaussianSceneMemory, frames: Sequence[dict]) -> dict:
    """PSNR (whole image and covered pixels, alpha > 0.5) and decoded-vs-encoder feature cosine (covered pixels)
    of the memory re-rendered at the frames' poses."""
    if not frames:
        raise ValueError("heldout_metrics needs at least one frame")
    ps, ps_cov, cover, cos = [], [], [], []
    for f in frames:
        r = mem.render_view(f["pose"])
        pred, tgt = r["rgb"].cpu().numpy(), f["rgb"] / 255.0
        ps.append(psnr(pred, tgt))
        m = r["alpha"].cpu().numpy() > 0.5
        cover.append(float(m.mean()))
        if m.any():
            ps_cov.append(psnr(pred, tgt, m))
        if "features" in r:
            c = F.cosine_similarity(r["features"], encoder_map(mem.encoder, f["rgb"], mem.device), dim=-1)
            cos.append(float(c[torch.from_numpy(m).to(c.device)].mean()) if m.any() else float("nan"))
    out = {
        "psnr_db": float(np.mean(ps)),
        "psnr_db_min": float(np.min(ps)),
        "psnr_db_max": float(np.max(ps)),
        "psnr_covered_db": float(np.mean(ps_cov)) if ps_cov else float("nan"),
        "coverage": float(np.mean(cover)),
        "psnr_per_view": ps,
    }
    if cos:
        out["feature_cosine"] = float(np.nanmean(cos))
    return out


@torch.no_grad()
def heldout_strip(mem: GaussianSceneMemory, frames: Sequence[dict], path: str, n: int = 6, zoom: int = 3) -> None:
    """A PNG of ``n`` frames: ground truth (top row) above the memory's re-render (bottom row), each with its
    PSNR in the file's ordering, upscaled ``zoom`` x (nearest) for viewing."""
    from pathlib import Path

    import imageio.v3 as iio

    if not frames:
        raise ValueError("heldout_strip needs at least one frame")
    top, bottom = [], []
    for f in frames[:n]:
        r = (mem.render_view(f["pose"])["rgb"].cpu().numpy() * 255).round().clip(0, 255).astype(np.uint8)
        top.append(f["rgb"])
        bottom.append(r)
    img = np.concatenate([np.concatenate(top, 1), np.concatenate(bottom, 1)], 0)
    img = np.kron(img, np.ones((zoom, zoom, 1), np.uint8))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, img)


@dataclass
class RawFeatureMemory:
    """Baseline "store everything": every ``stride``-th pixel of every frame keeps its back-projected world point
    and its raw D-dim encoder feature (float32); "where did I see it?" is the point of the best cosine match.

    points: [N, 3] world positions; features: [N, D].
    """

    points: torch.Tensor
    features: torch.Tensor

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        frames: Sequence[dict],
        encoder: FeatureEncoder,
        intrinsics: CameraIntrinsics,
        max_depth: float,
        stride: int = 2,
        device: torch.device | str = "cpu",
    ) -> RawFeatureMemory:
        """Stores the frames' per-pixel features on a ``stride`` grid (pixels with valid depth only)."""
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        pts, feats = [], []
        for f in frames:
            depth = np.asarray(f["depth"])
            grid = np.zeros(depth.shape, bool)
            grid[::stride, ::stride] = True
            mask = grid & np.isfinite(depth) & (depth > 0) & (depth < max_depth)
            if not mask.any():
                continue
            pts.append(torch.from_numpy(backproject(depth, f["pose"], intrinsics, mask)).float())
            feats.append(encoder_map(encoder, f["rgb"], device)[torch.from_numpy(mask).to(device)].cpu())
        if not pts:
            raise ValueError("RawFeatureMemory.build: no frame has a valid depth pixel")
        return cls(torch.cat(pts).to(device), torch.cat(feats).to(device))

    def nbytes(self) -> int:
        """float32 storage: (3 + D) floats per stored pixel."""
        return 4 * (self.points.numel() + self.features.numel())

    @torch.no_grad()
    def locate(self, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Best cosine match of queries [Q, D]: (world points [Q, 3], cosines [Q])."""
        if queries.dim() != 2 or queries.shape[1] != self.features.shape[1]:
            raise ValueError(f"queries must be [Q, {self.features.shape[1]}], got {tuple(queries.shape)}")
        cos = F.normalize(queries.to(self.features), dim=-1) @ F.normalize(self.features, dim=-1).T  # [Q, N]
        score, idx = cos.max(dim=1)
        return self.points[idx], score


def compression(mem: GaussianSceneMemory, raw: RawFeatureMemory | None = None) -> dict:
    """Bytes per Gaussian (c-float query) vs a raw D-dim feature per Gaussian, whole-memory totals (PSC bank
    included) and, when given, the bytes of the raw-feature baseline store."""
    n, d = mem.n_gaussians, mem.feature_dim
    bank = 4 * int(mem.bank.numel())
    total = mem.bytes_per_gaussian() * n + bank
    out = {
        "n_gaussians": n,
        "bank_rows": int(mem.bank.shape[0]),
        "feature_dim": d,
        "query_dim": mem.cfg.query_dim,
        "bytes_per_gaussian": mem.bytes_per_gaussian(),
        "bytes_per_gaussian_raw_features": GEOMETRY_BYTES + 4 * d,
        "bytes_total": total,
        "bytes_total_raw_features": (GEOMETRY_BYTES + 4 * d) * n,
        "compression_ratio": (GEOMETRY_BYTES + 4 * d) * n / max(total, 1),
    }
    if raw is not None:
        out["raw_store_points"] = int(raw.points.shape[0])
        out["bytes_raw_store"] = raw.nbytes()
        out["compression_vs_raw_store"] = raw.nbytes() / max(total, 1)
    return out


@torch.no_grad()
def localisation(
    mem: GaussianSceneMemory,
    spec,
    keyframes: Sequence[dict],
    raw: RawFeatureMemory | None = None,
    loc_radius: float = 0.5,
    min_pixels: int = 30,
) -> dict:
    """The "where did I see it?" query for every object of ``spec`` (a SceneSpec) seen in at least ``min_pixels``
    pixels of some keyframe. The query is the encoder's mean feature over the object's pixels in the keyframe that
    saw it best; an answer succeeds when it lies within ``loc_radius`` (m) of the object's box.

    Answers: ``render`` (headline) re-renders the decoded features at the keyframe poses
    (:meth:`GaussianSceneMemory.locate_in_views`); ``gaussian`` ranks Gaussians by their own decoded query
    (:meth:`GaussianSceneMemory.locate`); ``raw`` is the raw-feature baseline's best cosine match; ``chance`` is
    the opacity-weighted fraction of Gaussians within ``loc_radius`` of the object (a random Gaussian's score).
    """
    if mem.encoder is None:
        raise ValueError("localisation needs a memory built with an encoder")
    objs = {o.instance_id: o for o in spec.objects}
    means = mem.params["means"].cpu().numpy()
    op = torch.sigmoid(mem.params["opacity_logits"]).cpu().numpy()
    rows, queries = [], []
    for iid, obj in objs.items():
        counts = [int((f["semantic"] == iid).sum()) for f in keyframes]
        best = int(np.argmax(counts)) if counts else 0
        if not counts or counts[best] < min_pixels:
            continue
        f = keyframes[best]
        mask = torch.from_numpy(f["semantic"] == iid).to(mem.device)
        queries.append(encoder_map(mem.encoder, f["rgb"], mem.device)[mask].mean(0))
        near = box_distance(means, obj) <= loc_radius
        rows.append(
            {
                "instance_id": int(iid),
                "category": obj.category,
                "pixels": counts[best],
                "chance": float((op * near).sum() / op.sum()),
            }
        )
    if rows:
        q = torch.stack(queries)
        by_render = mem.locate_in_views(q, np.stack([f["pose"] for f in keyframes]))
        raw_pts = raw.locate(q)[0].cpu().numpy() if raw is not None else None
        for j, (row, rr) in enumerate(zip(rows, by_render)):
            obj = objs[row["instance_id"]]
            row["error_m"] = float(box_distance(rr.position.cpu().numpy()[None], obj)[0])
            row["success"] = row["error_m"] <= loc_radius
            rg = mem.locate(q[j])
            row["error_m_gaussian"] = float(box_distance(rg.position.cpu().numpy()[None], obj)[0])
            row["success_gaussian"] = row["error_m_gaussian"] <= loc_radius
            if raw_pts is not None:
                row["error_m_raw"] = float(box_distance(raw_pts[j : j + 1], obj)[0])
                row["success_raw"] = row["error_m_raw"] <= loc_radius
    n = len(rows)

    def mean(k: str) -> float:
        return float(np.mean([r[k] for r in rows])) if n and k in rows[0] else float("nan")

    def median(k: str) -> float:
        return float(np.median([r[k] for r in rows])) if n and k in rows[0] else float("nan")

    return {
        "objects": n,
        "accuracy": mean("success"),
        "accuracy_gaussian": mean("success_gaussian"),
        "accuracy_raw": mean("success_raw"),
        "chance": mean("chance"),
        "median_error_m": median("error_m"),
        "median_error_m_gaussian": median("error_m_gaussian"),
        "median_error_m_raw": median("error_m_raw"),
        "per_object": rows,
    }


def mean_ci(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample std, 95% confidence half-width (Student t, n - 1 dof; nan for n < 2) and n of the finite
    values (:func:`chronotope.agents.stats.summarize` with ``finite_only``)."""
    return summarize(values, finite_only=True)


# ------------------------------------------------------------------------------------------------ one apartment
@dataclass
class ApartmentEvalConfig:
    """Settings of one apartment evaluation (:func:`evaluate_apartment`)."""

    episodes: int = 4
    """PointNav episodes the expert walks in the apartment."""
    max_episode_steps: int = 150
    """Step cap per episode."""
    keyframe_every: int = 4
    """Every k-th walk frame is added to the memory."""
    steps_per_keyframe: int = 10
    """Online optimisation steps after each keyframe."""
    consolidate_steps: int = 400
    """Steps on uniformly replayed keyframes at the end of the walk (:meth:`GaussianSceneMemory.consolidate`)."""
    capacity: int = 20000
    """Gaussian budget."""
    encoder: str = "efficientnet_lite0"
    """Frozen feature encoder: efficientnet_lite0 | random."""
    heldout_views: int = 24
    """Held-out poses per apartment."""
    loc_radius: float = 0.5
    """Localisation succeeds when the located point is within this distance (m) of the object's box."""
    min_pixels: int = 30
    """An object counts as seen when a keyframe shows at least this many of its pixels."""
    raw_stride: int = 2
    """Pixel stride of the raw-feature baseline store (2: the grid the Gaussians are seeded on)."""
    seed: int = 0
    """Seed of the episodes, held-out poses and the memory."""
    device: str = "cpu"
    """torch device of the memory."""


def evaluate_apartment(scene_seed: int, cfg: ApartmentEvalConfig, strip_path: str | None = None) -> dict:
    """Walks apartment ``scene_seed``, builds the Gaussian memory and the raw-feature baseline from the
    keyframes, and measures them (held-out views, training views, bytes, localisation, wall times).
    ``strip_path``: also write a PNG of held-out views, ground truth above the memory's render
    (:func:`heldout_strip`)."""
    import time

    from chronotope.memory.gaussian.encoders import make_encoder
    from chronotope.memory.gaussian.scene_memory import SceneMemoryConfig

    if cfg.keyframe_every < 1:
        raise ValueError(f"keyframe_every must be >= 1, got {cfg.keyframe_every}")
    t0 = time.perf_counter()
    env, frames = walk_apartment(scene_seed, cfg.episodes, cfg.max_episode_steps, cfg.seed)
    try:
        t_walk = time.perf_counter() - t0
        enc = make_encoder(cfg.encoder, device=cfg.device)
        max_depth = env.unwrapped.max_depth
        mcfg = SceneMemoryConfig(
            capacity=cfg.capacity, steps_per_keyframe=cfg.steps_per_keyframe, max_depth=max_depth, seed=cfg.seed
        )
        intr = env.unwrapped.intrinsics
        mem = GaussianSceneMemory(intr, mcfg, encoder=enc, device=cfg.device)
        keyframes = frames[:: cfg.keyframe_every]
        t1 = time.perf_counter()
        skipped = sum(mem.add_frame(f["rgb"], f["depth"], f["pose"]).skipped for f in keyframes)
        t_online = time.perf_counter() - t1
        mem.consolidate(cfg.consolidate_steps)
        t_build = time.perf_counter() - t1
        t2 = time.perf_counter()
        raw = RawFeatureMemory.build(keyframes, enc, intr, max_depth, cfg.raw_stride, cfg.device)
        t_raw = time.perf_counter() - t2
        rng = np.random.default_rng(cfg.seed + 1)
        test = render_frames(env, heldout_poses(env, np.stack([f["pose"] for f in frames]), cfg.heldout_views, rng))
    finally:
        env.close()
    t3 = time.perf_counter()
    held = heldout_metrics(mem, test)
    train = heldout_metrics(mem, keyframes[:: max(1, len(keyframes) // cfg.heldout_views)])
    comp = compression(mem, raw)
    loc = localisation(mem, env.unwrapped.scene, keyframes, raw, cfg.loc_radius, cfg.min_pixels)
    if strip_path is not None:
        heldout_strip(mem, test, strip_path)
    return {
        "scene_seed": scene_seed,
        "walk_frames": len(frames),
        "keyframes": len(keyframes),
        "keyframes_skipped": int(skipped),
        "heldout": held,
        "training_views": train,
        "compression": comp,
        "localisation": loc,
        "seconds": {
            "walk": t_walk,
            "build_online": t_online,
            "build_total": t_build,
            "raw_store": t_raw,
            "eval": time.perf_counter() - t3,
        },
    }
