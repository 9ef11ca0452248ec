"""M3 Gaussian scene memory on a generated apartment walked by the shortest-path expert (issue 9).

The expert runs several PointNav episodes in one generated apartment (rgbd 64x64 frames with camera poses);
every ``keyframe_every``-th frame is added online to a :class:`GaussianSceneMemory` (a few optimisation steps
each), with features from a frozen encoder (EfficientNet-Lite0 by default). The built memory is then evaluated:

* held-out views: poses *not on the walk* (walk poses shifted 0.15-0.35 m sideways on navigable floor and turned
  by 10-30 degrees), rendered by the scene renderer as ground truth: PSNR of the re-rendered RGB over the whole
  image and over the pixels the memory covers (alpha > 0.5), and the cosine of decoded vs encoder features;
* bytes per Gaussian vs storing the raw D-dim encoder feature per Gaussian (M3's compression claim);
* "where is it": for each object seen in at least ``min_pixels`` pixels of some keyframe, the query is the
  encoder's mean feature over the object's pixels in the keyframe that saw it best; success when the located
  point lies within ``loc_radius`` of the object's ground-truth box
  (``SceneSpec.objects`` footprint extruded to its height). The point comes from re-rendering the decoded
  features at the keyframe poses (``locate_in_views``, the headline number) and, for comparison, from ranking
  Gaussians by their own decoded query (``locate``). Chance: the opacity-weighted fraction of Gaussians
  that already lie within ``loc_radius`` of that object (what a random Gaussian would score).

    python -m chronotope.scripts.experiments.m3_eval --quick     # a couple of minutes on 1 CPU thread
    python -m chronotope.scripts.experiments.m3_eval             # the full run

Writes ``runs/experiments/m3/m3_eval.json`` (config, metrics, per-object localisation) and a Markdown table.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class Config:
    """Settings of the M3 apartment evaluation."""

    quick: bool = False
    """Small run (2 episodes, fewer held-out views): a couple of minutes on one CPU thread."""
    scene_seed: int = 0
    """Generator seed of the apartment."""
    episodes: int = 4
    """PointNav episodes the expert walks in that apartment (quick: 2)."""
    max_episode_steps: int = 150
    """Step cap per episode."""
    keyframe_every: int = 4
    """Every k-th walk frame is added to the memory."""
    steps_per_keyframe: int = 10
    """Optimisation steps after each keyframe."""
    capacity: int = 20000
    """Gaussian budget."""
    encoder: str = "efficientnet_lite0"
    """Frozen feature encoder: efficientnet_lite0 | random."""
    heldout_views: int = 24
    """Held-out poses (quick: 12)."""
    loc_radius: float = 0.5
    """Localisation succeeds when the located point is within this distance (m) of the object's box."""
    min_pixels: int = 30
    """An object counts as seen when a keyframe shows at least this many of its pixels."""
    seed: int = 0
    """Seed of the episodes, held-out poses and the memory."""
    threads: int = 1
    """torch threads (the machine is shared)."""
    device: str = "cpu"
    """torch device of the memory."""
    out_dir: str = "runs/experiments/m3"
    """Where the JSON and Markdown results go."""


# ------------------------------------------------------------------------------------------------ data
def walk_apartment(cfg: Config):
    """Expert walk: returns (env, frames) with frames a list of dicts rgb [H,W,3] u8, depth [H,W] f32,
    semantic [H,W] i32, pose [4,4] f64, episode int."""
    import gymnasium as gym

    import chronotope.envs  # noqa: F401  (registers the ids)
    from chronotope.envs.nav.expert import ShortestPathExpert

    env = gym.make(
        "chronotope/PointNav-v0",
        obs_mode="rgbd",
        semantic=True,
        scene_seeds=(cfg.scene_seed,),
        resolution=(64, 64),
        max_episode_steps=cfg.max_episode_steps,
    )
    expert = ShortestPathExpert()
    frames = []
    for ep in range(cfg.episodes):
        obs, info = env.reset(seed=cfg.seed * 1000 + ep)
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
    core = env.unwrapped.core
    grid = core.grids[0]
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
    core = env.unwrapped.core
    out = core.renderer.render(poses, np.zeros(len(poses), np.int64))
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


# ------------------------------------------------------------------------------------------------ metrics
def _encoder_map(mem, rgb: np.ndarray) -> torch.Tensor:
    """Encoder features upsampled to the image, [H, W, D]."""
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().to(mem.device) / 255
    f = mem.encoder(x)
    return F.interpolate(f, size=rgb.shape[:2], mode="bilinear", align_corners=False)[0].permute(1, 2, 0)


@torch.no_grad()
def heldout_metrics(mem, frames: list[dict]) -> dict:
    """PSNR (whole image and covered pixels) and decoded-vs-encoder feature cosine on ground-truth frames."""
    psnr, psnr_cov, cover, cos = [], [], [], []
    for f in frames:
        r = mem.render_view(f["pose"])
        err = (r["rgb"].cpu().numpy() - f["rgb"] / 255.0) ** 2
        psnr.append(-10 * math.log10(max(float(err.mean()), 1e-12)))
        m = r["alpha"].cpu().numpy() > 0.5
        cover.append(float(m.mean()))
        if m.any():
            psnr_cov.append(-10 * math.log10(max(float(err[m].mean()), 1e-12)))
        if "features" in r:
            tgt = _encoder_map(mem, f["rgb"])
            c = F.cosine_similarity(r["features"], tgt, dim=-1)
            cos.append(float(c[torch.from_numpy(m).to(c.device)].mean()) if m.any() else float("nan"))
    out = {
        "psnr_db": float(np.mean(psnr)),
        "psnr_db_min": float(np.min(psnr)),
        "psnr_db_max": float(np.max(psnr)),
        "psnr_covered_db": float(np.mean(psnr_cov)) if psnr_cov else float("nan"),
        "coverage": float(np.mean(cover)),
        "psnr_per_view": psnr,
    }
    if cos:
        out["feature_cosine"] = float(np.nanmean(cos))
    return out


def compression(mem) -> dict:
    """Bytes per Gaussian (query c floats) vs a raw D-dim feature per Gaussian, and whole-memory totals."""
    n, d = mem.n_gaussians, mem.feature_dim
    geo = 4 * 14  # position 3, log-scale 3, quaternion 4, opacity 1, colour 3 (float32)
    bank = 4 * int(mem.bank.numel())
    return {
        "n_gaussians": n,
        "bank_rows": int(mem.bank.shape[0]),
        "feature_dim": d,
        "query_dim": mem.cfg.query_dim,
        "bytes_per_gaussian": mem.bytes_per_gaussian(),
        "bytes_per_gaussian_raw_features": geo + 4 * d,
        "bytes_total": mem.bytes_per_gaussian() * n + bank,
        "bytes_total_raw_features": (geo + 4 * d) * n,
        "compression_ratio": (geo + 4 * d) * n / max(mem.bytes_per_gaussian() * n + bank, 1),
    }


@torch.no_grad()
def localisation(mem, spec, keyframes: list[dict], cfg: Config) -> dict:
    """The "where is it" query for every object seen in a keyframe (see the module docstring), answered two
    ways: ``render`` re-renders the decoded features at the keyframe poses
    (:meth:`GaussianSceneMemory.locate_in_views`); ``gaussian`` ranks Gaussians by their own decoded query
    (:meth:`GaussianSceneMemory.locate`)."""
    objs = {o.instance_id: o for o in spec.objects}
    means = mem.params["means"].cpu().numpy()
    op = torch.sigmoid(mem.params["opacity_logits"]).cpu().numpy()
    rows, queries = [], []
    for iid, obj in objs.items():
        counts = [int((f["semantic"] == iid).sum()) for f in keyframes]
        best = int(np.argmax(counts))
        if counts[best] < cfg.min_pixels:
            continue
        f = keyframes[best]
        mask = torch.from_numpy(f["semantic"] == iid)
        queries.append(_encoder_map(mem, f["rgb"])[mask.to(mem.device)].mean(0))
        near = box_distance(means, obj) <= cfg.loc_radius
        rows.append(
            {
                "instance_id": iid,
                "category": obj.category,
                "pixels": counts[best],
                "chance": float((op * near).sum() / op.sum()),
            }
        )
    if rows:
        poses = np.stack([f["pose"] for f in keyframes])
        by_render = mem.locate_in_views(torch.stack(queries), poses)
        for row, q, rr in zip(rows, queries, by_render):
            obj = objs[row["instance_id"]]
            row["error_m"] = float(box_distance(rr.position.cpu().numpy()[None], obj)[0])
            row["success"] = row["error_m"] <= cfg.loc_radius
            rg = mem.locate(q)
            row["error_m_gaussian"] = float(box_distance(rg.position.cpu().numpy()[None], obj)[0])
            row["success_gaussian"] = row["error_m_gaussian"] <= cfg.loc_radius
    n = len(rows)

    def mean(k: str) -> float:
        return float(np.mean([r[k] for r in rows])) if n else float("nan")

    return {
        "objects": n,
        "accuracy": mean("success"),
        "accuracy_gaussian": mean("success_gaussian"),
        "chance": mean("chance"),
        "median_error_m": float(np.median([r["error_m"] for r in rows])) if n else float("nan"),
        "median_error_m_gaussian": float(np.median([r["error_m_gaussian"] for r in rows])) if n else float("nan"),
        "per_object": rows,
    }


# ------------------------------------------------------------------------------------------------ run
def run(cfg: Config) -> dict:
    from chronotope.memory.gaussian.encoders import make_encoder
    from chronotope.memory.gaussian.scene_memory import GaussianSceneMemory, SceneMemoryConfig
    from chronotope.scripts.bench.common import print_table, write_results

    if cfg.quick:
        cfg.episodes, cfg.heldout_views = min(cfg.episodes, 2), min(cfg.heldout_views, 12)
    if cfg.keyframe_every < 1:
        raise ValueError(f"keyframe_every must be >= 1, got {cfg.keyframe_every}")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    env, frames = walk_apartment(cfg)
    spec = env.unwrapped.scene
    t_walk = time.perf_counter() - t0

    enc = make_encoder(cfg.encoder, device=cfg.device)
    mcfg = SceneMemoryConfig(
        capacity=cfg.capacity,
        steps_per_keyframe=cfg.steps_per_keyframe,
        max_depth=env.unwrapped.max_depth,
        seed=cfg.seed,
    )
    mem = GaussianSceneMemory(env.unwrapped.intrinsics, mcfg, encoder=enc, device=cfg.device)
    keyframes = frames[:: cfg.keyframe_every]
    t1 = time.perf_counter()
    skipped = 0
    for f in keyframes:
        skipped += mem.add_frame(f["rgb"], f["depth"], f["pose"]).skipped
    t_build = time.perf_counter() - t1

    rng = np.random.default_rng(cfg.seed + 1)
    walk_poses = np.stack([f["pose"] for f in frames])
    test = render_frames(env, heldout_poses(env, walk_poses, cfg.heldout_views, rng))
    t2 = time.perf_counter()
    held = heldout_metrics(mem, test)
    train = heldout_metrics(mem, keyframes[:: max(1, len(keyframes) // cfg.heldout_views)])
    comp = compression(mem)
    loc = localisation(mem, spec, keyframes, cfg)
    t_eval = time.perf_counter() - t2
    env.close()

    rows = [
        ["walk frames / keyframes", f"{len(frames)} / {len(keyframes)} ({skipped} skipped)"],
        ["Gaussians / PSC bank rows", f"{comp['n_gaussians']} / {comp['bank_rows']} (D={comp['feature_dim']})"],
        ["held-out PSNR (dB), mean [min, max]", f"{held['psnr_db']:.2f} [{held['psnr_db_min']:.1f}, "
         f"{held['psnr_db_max']:.1f}] (target >= 25)"],
        ["held-out PSNR on covered pixels (dB)", f"{held['psnr_covered_db']:.2f} (coverage {held['coverage']:.3f})"],
        ["training-view PSNR (dB)", f"{train['psnr_db']:.2f}"],
        ["held-out feature cosine (decoded vs encoder)", f"{held.get('feature_cosine', float('nan')):.3f}"],
        ["training-view feature cosine", f"{train.get('feature_cosine', float('nan')):.3f}"],
        ["bytes / Gaussian (M3) vs raw feature", f"{comp['bytes_per_gaussian']} vs "
         f"{comp['bytes_per_gaussian_raw_features']}"],
        ["memory total incl. bank vs raw (ratio)", f"{comp['bytes_total']} vs {comp['bytes_total_raw_features']} "
         f"({comp['compression_ratio']:.2f}x)"],
        [f"localisation acc., render (<= {cfg.loc_radius} m of box)", f"{loc['accuracy']:.3f} over "
         f"{loc['objects']} objects (median error {loc['median_error_m']:.2f} m)"],
        ["localisation acc., per-Gaussian query", f"{loc['accuracy_gaussian']:.3f} (median error "
         f"{loc['median_error_m_gaussian']:.2f} m)"],
        ["localisation chance (random Gaussian)", f"{loc['chance']:.3f}"],
        ["time walk / build / eval (s)", f"{t_walk:.1f} / {t_build:.1f} / {t_eval:.1f} (shared CPU, noisy)"],
    ]  # fmt: skip
    md = print_table(
        f"M3 Gaussian memory, apartment seed {cfg.scene_seed} (64x64, {cfg.encoder})", ["metric", "value"], rows
    )
    results = {
        "config": asdict(cfg),
        "walk_frames": len(frames),
        "keyframes": len(keyframes),
        "keyframes_skipped": skipped,
        "heldout": held,
        "training_views": train,
        "compression": comp,
        "localisation": loc,
        "seconds": {"walk": t_walk, "build": t_build, "eval": t_eval},
    }
    name = "m3_eval_quick" if cfg.quick else "m3_eval"
    path = write_results(name, results, md, out_dir=cfg.out_dir)
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    import tyro

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    run(tyro.cli(Config))
