"""Evaluation of a Gaussian scene memory on posed RGB-D frames with instance masks.

Metrics: held-out-view PSNR of the re-rendered RGB, cosine of decoded vs encoder features on held-out views,
bytes per Gaussian vs bytes of a raw feature per Gaussian, and "where is it" localisation accuracy for objects
seen during building (query = the encoder's mean feature over the object's pixels in a training view; success
when the located point lies within ``loc_radius`` of a surface point of that object).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from chronotope.memory.gaussian.scene_memory import GaussianSceneMemory


@dataclass
class Frame:
    """rgb uint8 [H, W, 3], depth float32 [H, W] (z), instance int32 [H, W] (0 = none), pose float64 [4, 4]."""

    rgb: np.ndarray
    depth: np.ndarray
    instance: np.ndarray
    pose: np.ndarray


def _backproject(mem: GaussianSceneMemory, f: Frame, mask: np.ndarray) -> np.ndarray:
    intr = mem.intrinsics
    v, u = np.nonzero(mask)
    z = f.depth[v, u]
    pts = np.stack([(u + 0.5 - intr.cx) / intr.fx * z, (v + 0.5 - intr.cy) / intr.fy * z, z], -1)
    return pts @ f.pose[:3, :3].T + f.pose[:3, 3]


def _encoder_map(mem: GaussianSceneMemory, rgb: np.ndarray) -> torch.Tensor:
    """Encoder features upsampled to the image, [H, W, D]."""
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().to(mem.device) / 255
    f = mem.encoder(x)
    h, w = rgb.shape[:2]
    return F.interpolate(f, size=(h, w), mode="bilinear", align_corners=False)[0].permute(1, 2, 0)


@torch.no_grad()
def evaluate(
    mem: GaussianSceneMemory,
    train: Sequence[Frame],
    test: Sequence[Frame],
    objects: Sequence[int],
    loc_radius: float = 0.3,
    min_pixels: int = 12,
) -> dict:
    """Metrics of a built memory (see module docstring). ``objects``: instance ids to localise."""
    psnrs, coss = [], []
    for f in test:
        r = mem.render_view(f.pose)
        mse = float(((r["rgb"].cpu().numpy() - f.rgb / 255.0) ** 2).mean())
        psnrs.append(-10 * np.log10(max(mse, 1e-12)))
        if "features" in r:
            tgt = _encoder_map(mem, f.rgb)
            m = torch.from_numpy(f.depth < mem.cfg.max_depth).to(mem.device)
            coss.append(float(F.cosine_similarity(r["features"], tgt, dim=-1)[m].mean()))
    out = {
        "psnr_heldout_db": float(np.mean(psnrs)),
        "psnr_heldout_per_view": [float(p) for p in psnrs],
        "n_gaussians": mem.n_gaussians,
        "bank_rows": int(mem.bank.shape[0]),
        "bytes_per_gaussian": mem.bytes_per_gaussian(),
        "bytes_raw_feature_per_gaussian": 4 * mem.feature_dim,
        "bytes_total": mem.bytes_per_gaussian() * mem.n_gaussians + 4 * mem.bank.numel(),
        "bytes_total_raw": (4 * (14 + mem.feature_dim)) * mem.n_gaussians,
    }
    if coss:
        out["feature_cosine_heldout"] = float(np.mean(coss))
    if mem.encoder is None or mem.bank.shape[0] == 0:
        return out
    hits, tried, errors = 0, 0, []
    for obj in objects:
        views = [f for f in train if (f.instance == obj).sum() >= min_pixels]
        if not views:
            continue
        f = max(views, key=lambda v: (v.instance == obj).sum())  # the view that saw it best
        mask = f.instance == obj
        q = _encoder_map(mem, f.rgb)[torch.from_numpy(mask)].mean(0)
        pos = mem.locate(q).position.cpu().numpy()
        pts = np.concatenate([_backproject(mem, v, v.instance == obj) for v in views])
        d = float(np.min(np.linalg.norm(pts - pos, axis=-1)))
        errors.append(d)
        tried += 1
        hits += d <= loc_radius
    out["localisation_accuracy"] = hits / tried if tried else float("nan")
    out["localisation_objects"] = tried
    out["localisation_error_m"] = errors
    return out
