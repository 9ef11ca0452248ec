"""Online Gaussian-splat scene memory with principal scene components (M3, Zou et al. 2025).

The memory is built from posed RGB-D frames:

* **init / densify**: pixels (subsampled on a grid) that the current model does not explain — low rendered
  alpha, or observed depth well in front of the rendered depth — are back-projected into new Gaussians: flat
  discs in the surface plane estimated from the depth map, as wide as the seeding pixels' footprint on that plane
  (colour from the pixel, query vector ~ N(0, 1) as in M3);
* **optimise**: a few Adam steps per keyframe (a quarter on the new frame, the rest on replayed older keyframes)
  on ``0.8 L1 + 0.2 (1 - SSIM)`` (RGB) ``+ w_depth L1`` (depth) ``+ w_feature * (mean(1 - cos) + masked L2)`` of
  features decoded by Gaussian memory attention from the splatted query map, sampled at random points of the
  rendered and the encoder's feature map. The queries are blended with the colour's weights, but the feature loss
  passes no gradient to the shared geometry (separate colour and feature heads);
* **prune**: Gaussians whose opacity falls below a threshold are removed; the number of Gaussians never exceeds
  ``capacity`` (the least opaque are dropped to make room);
* **consolidate** (on request, e.g. at the end of a walk): more steps on uniformly replayed keyframes.

Unseen parts of a view show the running mean colour of everything observed (``background="mean"``).

Per Gaussian the memory stores position (3), log-scale (3), rotation (4), opacity (1), colour (3) and a query of
``query_dim`` floats; the high-dimensional features live once in the PSC bank.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from chronotope.envs.render.camera import CameraIntrinsics
from chronotope.memory.gaussian.attention import GaussianMemoryAttention, feature_loss, sample_maps
from chronotope.memory.gaussian.encoders import FeatureEncoder
from chronotope.memory.gaussian.psc import psc_update
from chronotope.memory.gaussian.splat import RasterConfig, SplatRenderer, check_pose

PARAMS = ("means", "log_scales", "quats", "opacity_logits", "rgb_logits", "queries")


@dataclass
class SceneMemoryConfig:
    """Settings of :class:`GaussianSceneMemory`."""

    capacity: int = 20000
    """Maximum number of Gaussians."""
    init_stride: int = 2
    """New Gaussians are seeded at every init_stride-th pixel (in both directions) of the unexplained area."""
    init_scale: float = 0.6
    """Initial in-plane std as a fraction of the seeding pixel spacing on the surface (init_stride pixels)."""
    init_shape: str = "disc"
    """disc: flat Gaussians lying in the surface plane estimated from the depth map (in-plane std from the
    pixel footprint on that plane, which grows on oblique surfaces); iso: isotropic blobs of the frontal footprint."""
    init_thickness: float = 0.1
    """disc: std along the surface normal as a fraction of the smaller in-plane std."""
    max_slant: float = 4.0
    """disc: in-plane std is at most this multiple of the frontal footprint (grazing angles, depth edges)."""
    init_opacity: float = 0.8
    """Initial opacity of new Gaussians."""
    steps_per_keyframe: int = 10
    """Adam steps after each added frame."""
    new_frame_prob: float = 0.25
    """Probability that an optimisation step uses the newest frame; otherwise a uniformly drawn older keyframe is
    replayed (without replay the memory forgets what it saw earlier)."""
    max_keyframes: int = 64
    """Frames kept for replay during optimisation (oldest dropped first, except the first frame)."""
    lr_means: float = 1e-3
    lr_log_scales: float = 5e-3
    lr_quats: float = 1e-2
    lr_opacity_logits: float = 5e-2
    lr_rgb_logits: float = 2e-2
    lr_queries: float = 5e-2
    """Adam learning rates per parameter group (3DGS-like ratios, larger because there are few steps; on the
    apartment walk halving the position / scale / colour rates of an earlier setting gained ~1 dB on training
    views)."""
    w_ssim: float = 0.2
    """Weight of (1 - SSIM) in the RGB loss (L1 gets 1 - w_ssim), as in 3DGS / M3."""
    w_depth: float = 0.2
    """Weight of the depth L1 (metres) on pixels with valid depth."""
    w_feature: float = 0.5
    """Weight of the feature loss (M3: 0.5)."""
    background: str = "mean"
    """Colour behind the Gaussians: "mean" (running mean colour of the observed pixels: the best constant guess
    for a part of the scene that was never seen) or "black"."""
    feature_stop_grad: bool = True
    """The feature loss trains the queries only, not the shared geometry (positions, scales, rotations,
    opacities), so that it cannot pull the photometric fit (M3 trains both jointly)."""
    feature_points: int = 256
    """Random points per step at which rendered and target feature maps are compared."""
    prune_opacity: float = 0.01
    """Gaussians less opaque than this are removed after each keyframe's optimisation."""
    spawn_alpha: float = 0.5
    """Pixels whose rendered alpha is below this get new Gaussians."""
    spawn_depth_rel: float = 0.1
    """...and so do pixels whose observed depth is in front of the rendered depth by this fraction."""
    max_depth: float = 10.0
    """Depths >= max_depth (renderer 'no hit') or <= near are invalid."""
    query_dim: int = 16
    """c: per-Gaussian query size (M3: 16-32 per feature source)."""
    psc_theta: float = 0.9
    """Cosine threshold of the principal scene components (M3: 0.6-1.0 per source)."""
    psc_capacity: int = 4096
    """Maximum PSC bank rows."""
    temperature: float = 0.05
    """Temperature of the Gaussian memory attention."""
    seed: int = 0
    """Seed of query initialisation, pixel sampling, keyframe choice and the attention projection."""
    raster: RasterConfig = field(default_factory=RasterConfig)
    """Rasteriser settings."""
    backend: str = "torch"
    """Rasteriser backend: torch | gsplat | auto."""


@dataclass
class FrameStats:
    """What one :meth:`GaussianSceneMemory.add_frame` call did."""

    skipped: bool
    reason: str = ""
    added: int = 0
    pruned: int = 0
    n_gaussians: int = 0
    bank_size: int = 0
    loss: float = float("nan")


@dataclass
class LocateResult:
    """Answer of "where did I see something like this?": ``position`` [3] (world), best cosine ``score``,
    ``indices`` of the Gaussians that matched best, and their world ``points`` [k, 3]."""

    position: torch.Tensor
    score: float
    indices: torch.Tensor
    points: torch.Tensor


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM of images x, y [C, H, W] in [0, 1] (Gaussian window, as 3DGS's loss)."""
    g = torch.exp(-((torch.arange(window, dtype=x.dtype, device=x.device) - window // 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    k = (g[:, None] * g[None, :]).expand(x.shape[0], 1, window, window)
    pad = window // 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t[None], k, padding=pad, groups=x.shape[0])[0]

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean()


def rotmat_to_quat(rot: torch.Tensor) -> torch.Tensor:
    """Unit quaternions [N, 4] (w, x, y, z) of rotation matrices [N, 3, 3] (inverse of ``quat_to_rotmat``)."""
    m = rot
    tr = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    # Shepperd's method: divide by the largest of the four candidates for numerical safety.
    cand = torch.stack([tr, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], -1)
    k = cand.argmax(-1)
    q = torch.zeros(m.shape[0], 4, dtype=m.dtype, device=m.device)
    r = (1 + 2 * cand.gather(1, k[:, None])[:, 0] - tr).clamp_min(1e-12).sqrt()  # 2 * |largest component|
    c0, c1, c2, c3 = k == 0, k == 1, k == 2, k == 3
    q[c0] = torch.stack(
        [r[c0] / 2, (m[c0, 2, 1] - m[c0, 1, 2]) / (2 * r[c0]), (m[c0, 0, 2] - m[c0, 2, 0]) / (2 * r[c0]),
         (m[c0, 1, 0] - m[c0, 0, 1]) / (2 * r[c0])], -1)  # fmt: skip
    q[c1] = torch.stack(
        [(m[c1, 2, 1] - m[c1, 1, 2]) / (2 * r[c1]), r[c1] / 2, (m[c1, 0, 1] + m[c1, 1, 0]) / (2 * r[c1]),
         (m[c1, 0, 2] + m[c1, 2, 0]) / (2 * r[c1])], -1)  # fmt: skip
    q[c2] = torch.stack(
        [(m[c2, 0, 2] - m[c2, 2, 0]) / (2 * r[c2]), (m[c2, 0, 1] + m[c2, 1, 0]) / (2 * r[c2]), r[c2] / 2,
         (m[c2, 1, 2] + m[c2, 2, 1]) / (2 * r[c2])], -1)  # fmt: skip
    q[c3] = torch.stack(
        [(m[c3, 1, 0] - m[c3, 0, 1]) / (2 * r[c3]), (m[c3, 0, 2] + m[c3, 2, 0]) / (2 * r[c3]),
         (m[c3, 1, 2] + m[c3, 2, 1]) / (2 * r[c3]), r[c3] / 2], -1)  # fmt: skip
    return F.normalize(q, dim=-1)


def _as_tensor(a: np.ndarray | torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if isinstance(a, np.ndarray):
        a = torch.from_numpy(np.ascontiguousarray(a))
    return a.to(device=device)


class GaussianSceneMemory:
    """A scene memory of 3D Gaussians built online from posed RGB-D frames.

    Args:
        intrinsics: camera of the incoming frames.
        cfg: settings.
        encoder: frozen 2D feature encoder (None: no features, RGB-D only).
        device: torch device.
    """

    def __init__(
        self,
        intrinsics: CameraIntrinsics,
        cfg: SceneMemoryConfig | None = None,
        encoder: FeatureEncoder | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.cfg = cfg or SceneMemoryConfig()
        self.intrinsics = intrinsics
        self.encoder = encoder
        self.device = torch.device(device)
        if self.cfg.background not in ("mean", "black"):
            raise ValueError(f"background must be 'mean' or 'black', got {self.cfg.background!r}")
        self.renderer = SplatRenderer(self.cfg.backend, self.cfg.raster)
        self.feature_dim = encoder.feature_dim if encoder is not None else 0
        self.attention = (
            GaussianMemoryAttention(
                self.cfg.query_dim, self.feature_dim, self.cfg.temperature, self.cfg.seed, self.device
            )
            if encoder is not None
            else None
        )
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forgets everything (Gaussians, optimiser state, PSC bank, keyframes)."""
        dev = self.device
        self.params: dict[str, torch.Tensor] = {
            "means": torch.zeros(0, 3, device=dev),
            "log_scales": torch.zeros(0, 3, device=dev),
            "quats": torch.zeros(0, 4, device=dev),
            "opacity_logits": torch.zeros(0, device=dev),
            "rgb_logits": torch.zeros(0, 3, device=dev),
            "queries": torch.zeros(0, self.cfg.query_dim, device=dev),
        }
        self.adam_m = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.adam_v = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.adam_t = torch.zeros(0, device=dev)  # per-Gaussian step count (bias correction of new rows)
        self.bank = torch.zeros(0, self.feature_dim, device=dev)
        self.keyframes: list[dict[str, torch.Tensor]] = []
        self.gen = torch.Generator().manual_seed(self.cfg.seed)
        self.frames_seen = 0
        self.rgb_sum = torch.zeros(3, dtype=torch.float64, device=dev)  # running mean colour (background)
        self.rgb_count = 0

    @property
    def n_gaussians(self) -> int:
        return int(self.params["means"].shape[0])

    def _keep(self, mask: torch.Tensor) -> None:
        for k in PARAMS:
            self.params[k] = self.params[k][mask]
            self.adam_m[k] = self.adam_m[k][mask]
            self.adam_v[k] = self.adam_v[k][mask]
        self.adam_t = self.adam_t[mask]

    def _append(self, new: dict[str, torch.Tensor]) -> None:
        for k in PARAMS:
            self.params[k] = torch.cat([self.params[k], new[k]])
            self.adam_m[k] = torch.cat([self.adam_m[k], torch.zeros_like(new[k])])
            self.adam_v[k] = torch.cat([self.adam_v[k], torch.zeros_like(new[k])])
        self.adam_t = torch.cat([self.adam_t, torch.zeros(new["means"].shape[0], device=self.device)])

    def bytes_per_gaussian(self) -> int:
        """Storage of one Gaussian in bytes (float32): 14 geometry/colour floats + query_dim, independent of D."""
        return 4 * sum(int(np.prod(self.params[k].shape[1:])) for k in PARAMS)

    def gaussians(self) -> dict[str, torch.Tensor]:
        """Activated parameters: means [N,3], quats [N,4], scales [N,3], opacities [N], rgb [N,3], queries [N,c]."""
        p = self.params
        return {
            "means": p["means"],
            "quats": p["quats"],
            "scales": p["log_scales"].exp(),
            "opacities": torch.sigmoid(p["opacity_logits"]),
            "rgb": torch.sigmoid(p["rgb_logits"]),
            "queries": p["queries"],
        }

    # ------------------------------------------------------------------ rendering / queries
    def _render(self, cam_to_world: torch.Tensor, intrinsics: CameraIntrinsics, with_queries: bool):
        g = self.gaussians()
        colors = torch.cat([g["rgb"], g["queries"]], dim=-1) if with_queries else g["rgb"]
        # Separate heads: the queries are blended with the very weights of the colour, but the feature loss does
        # not move the geometry (it cost ~2 dB of PSNR when it did).
        stop = (3, 3 + self.cfg.query_dim) if with_queries and self.cfg.feature_stop_grad else None
        bg = None
        if self.cfg.background == "mean" and self.rgb_count > 0:
            bg = torch.zeros(colors.shape[1], device=self.device)  # queries: zero background
            bg[:3] = self.rgb_sum / self.rgb_count
        return self.renderer(
            g["means"], g["quats"], g["scales"], g["opacities"], colors, cam_to_world, intrinsics, bg, stop
        )

    @torch.no_grad()
    def render_view(
        self, cam_to_world: np.ndarray | torch.Tensor, intrinsics: CameraIntrinsics | None = None
    ) -> dict[str, torch.Tensor]:
        """Renders the memory at any pose.

        Returns:
            rgb [H, W, 3] in [0, 1] (over ``cfg.background``), depth [H, W], alpha [H, W], queries [H, W, c] and,
            when an encoder is set and the bank is not empty, features [H, W, D] decoded by Gaussian memory
            attention.
        """
        intr = intrinsics or self.intrinsics
        pose = self._pose(cam_to_world)
        if self.n_gaussians == 0:
            raise ValueError("the scene memory is empty: add frames before rendering")
        out = self._render(pose, intr, with_queries=True)
        res = {"rgb": out.color[..., :3], "depth": out.depth, "alpha": out.alpha, "queries": out.color[..., 3:]}
        if self.attention is not None and self.bank.shape[0] > 0:
            res["features"] = self.attention(res["queries"], self.bank)
        return res

    @torch.no_grad()
    def decoded_gaussian_features(self) -> torch.Tensor:
        """High-dimensional feature [N, D] of every Gaussian, decoded from its query through the PSC bank."""
        if self.attention is None or self.bank.shape[0] == 0:
            raise ValueError("no feature bank: build the memory with an encoder and add frames first")
        return self.attention(self.params["queries"], self.bank)

    @torch.no_grad()
    def locate(self, query_feature: torch.Tensor, top_k: int = 16) -> LocateResult:
        """Where did I see something like ``query_feature`` [D]? The 3D region whose decoded feature matches best.

        Every Gaussian's query is decoded through the bank; the ``top_k`` Gaussians by cosine to the query (ties
        broken by opacity) give the answer as their opacity-weighted mean position.
        """
        if query_feature.shape != (self.feature_dim,):
            raise ValueError(f"query_feature must have shape ({self.feature_dim},), got {tuple(query_feature.shape)}")
        if not torch.isfinite(query_feature).all():
            raise ValueError("query_feature contains NaN or inf")
        feats = self.decoded_gaussian_features()
        op = torch.sigmoid(self.params["opacity_logits"])
        cos = F.cosine_similarity(feats, query_feature.to(feats)[None], dim=-1)
        k = min(top_k, feats.shape[0])
        idx = torch.topk(cos + 1e-4 * op, k).indices  # opacity breaks ties between Gaussians decoding the same row
        pts = self.params["means"][idx]
        w = op[idx] / op[idx].sum()
        return LocateResult((w[:, None] * pts).sum(0), float(cos[idx[0]]), idx, pts)

    @torch.no_grad()
    def locate_in_views(
        self, query_features: torch.Tensor, cam_to_world: np.ndarray | torch.Tensor, min_alpha: float = 0.5
    ) -> list[LocateResult]:
        """ "Where did I see this?" answered by re-rendering, for queries [Q, D] (or one [D]) at once.

        The decoded feature maps at ``cam_to_world`` [V, 4, 4] (e.g. the keyframe poses,
        :meth:`keyframe_poses`) are compared with each query; the best-matching pixel with alpha >= ``min_alpha``
        over all views is back-projected with its rendered depth. Decoded features are trained on alpha-blended
        renders, not per Gaussian, so the blend at a pixel is more faithful than one Gaussian's own decoded query
        (on the apartment walk of ``scripts/experiments/m3_eval.py`` this finds objects :meth:`locate` misses).

        Returns:
            one :class:`LocateResult` per query: ``position`` [3], cosine ``score``, ``indices`` = [view index],
            ``points`` = the position [1, 3].
        """
        q = query_features[None] if query_features.dim() == 1 else query_features
        if q.dim() != 2 or q.shape[1] != self.feature_dim or q.shape[0] == 0:
            raise ValueError(f"query_features must be [Q, {self.feature_dim}] or [{self.feature_dim}], got "
                             f"{tuple(query_features.shape)}")  # fmt: skip
        if not torch.isfinite(q).all():
            raise ValueError("query_features contain NaN or inf")
        poses = _as_tensor(cam_to_world, torch.float32, self.device).float().reshape(-1, 4, 4)
        if poses.shape[0] == 0:
            raise ValueError("locate_in_views needs at least one pose")
        intr = self.intrinsics
        nq = q.shape[0]
        best = torch.full((nq,), -2.0, device=self.device)
        points = torch.zeros(nq, 3, device=self.device)
        views = torch.full((nq,), -1, dtype=torch.long)
        qn = F.normalize(q.float().to(self.device), dim=-1)  # [Q, D]
        for i, pose in enumerate(poses):
            r = self.render_view(pose)
            if "features" not in r:
                raise ValueError("no feature bank: build the memory with an encoder and add frames first")
            fn = F.normalize(r["features"].reshape(-1, self.feature_dim), dim=-1)  # [HW, D]
            cos = qn @ fn.T  # [Q, HW]
            cos[:, (r["alpha"] < min_alpha).reshape(-1)] = -2.0
            score, flat = cos.max(dim=1)  # [Q]
            better = score > best
            if not better.any():
                continue
            v, u = flat // intr.width, flat % intr.width
            z = r["depth"].reshape(-1)[flat]
            p_cam = torch.stack([(u + 0.5 - intr.cx) / intr.fx * z, (v + 0.5 - intr.cy) / intr.fy * z, z], -1)
            p_world = p_cam @ pose[:3, :3].T + pose[:3, 3]  # [Q, 3]
            best = torch.where(better, score, best)
            points[better] = p_world[better]
            views[better] = i
        if (views < 0).any():
            raise ValueError(f"no pixel with alpha >= {min_alpha} in any of the {poses.shape[0]} views")
        return [LocateResult(points[j], float(best[j]), views[j : j + 1], points[j : j + 1]) for j in range(nq)]

    def keyframe_poses(self) -> torch.Tensor:
        """Poses [K, 4, 4] of the keyframes kept for replay (the places the memory was built from)."""
        if not self.keyframes:
            return torch.zeros(0, 4, 4, device=self.device)
        return torch.stack([k["pose"] for k in self.keyframes])

    def summary_size(self, grid: int = 8) -> int:
        """Length of :meth:`summary`'s vector."""
        return 8 + self.feature_dim + 2 * grid * grid

    @torch.no_grad()
    def summary(self, cam_to_world: np.ndarray | torch.Tensor, grid: int = 8) -> torch.Tensor:
        """A fixed-size vector for a policy, float32 [8 + D + 2 * grid^2]:

        fill (N / capacity), bank fill, centroid (3) and spread (3) of the Gaussians (world), the opacity-weighted
        mean decoded feature (D; zeros without features), and a grid x grid render of depth and alpha at the pose.
        """
        pose = self._pose(cam_to_world)
        out = torch.zeros(self.summary_size(grid), device=self.device)
        if self.n_gaussians == 0:
            return out
        g = self.gaussians()
        w = g["opacities"] / g["opacities"].sum().clamp_min(1e-8)
        centroid = (w[:, None] * g["means"]).sum(0)
        spread = ((w[:, None] * (g["means"] - centroid) ** 2).sum(0)).sqrt()
        out[0] = self.n_gaussians / self.cfg.capacity
        out[1] = self.bank.shape[0] / self.cfg.psc_capacity
        out[2:5], out[5:8] = centroid, spread
        d = self.feature_dim
        if self.attention is not None and self.bank.shape[0] > 0:
            out[8 : 8 + d] = (w[:, None] * self.decoded_gaussian_features()).sum(0)
        small = CameraIntrinsics(grid, grid, self.intrinsics.hfov_deg)
        r = self._render(pose, small, with_queries=False)
        out[8 + d : 8 + d + grid * grid] = (r.depth / self.cfg.max_depth).reshape(-1)
        out[8 + d + grid * grid :] = r.alpha.reshape(-1)
        return out

    # ------------------------------------------------------------------ building
    def _pose(self, cam_to_world: np.ndarray | torch.Tensor) -> torch.Tensor:
        pose = _as_tensor(cam_to_world, torch.float32, self.device).float()
        check_pose(pose)
        return pose

    def _check_frame(self, rgb, depth) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = self.intrinsics.height, self.intrinsics.width
        rgb = _as_tensor(rgb, torch.float32, self.device)
        depth = _as_tensor(depth, torch.float32, self.device).float()
        if tuple(rgb.shape) != (h, w, 3):
            raise ValueError(f"rgb must have shape ({h}, {w}, 3) for these intrinsics, got {tuple(rgb.shape)}")
        if tuple(depth.shape) != (h, w):
            raise ValueError(f"depth must have shape ({h}, {w}) for these intrinsics, got {tuple(depth.shape)}")
        rgb = rgb.float() / 255.0 if rgb.dtype == torch.uint8 else rgb.float()
        if not torch.isfinite(rgb).all() or rgb.min() < 0 or rgb.max() > 1:
            raise ValueError(
                f"rgb must be uint8 or finite floats in [0, 1], got range [{float(rgb.min())}, {float(rgb.max())}]"
            )
        if torch.isnan(depth).any():
            raise ValueError("depth contains NaN (use inf or max_depth for 'no hit')")
        return rgb, depth

    def add_frame(
        self,
        rgb: np.ndarray | torch.Tensor,
        depth: np.ndarray | torch.Tensor,
        cam_to_world: np.ndarray | torch.Tensor,
        features: torch.Tensor | None = None,
    ) -> FrameStats:
        """Adds one posed RGB-D frame: densify, optimise ``steps_per_keyframe`` steps, prune.

        Args:
            rgb: [H, W, 3] uint8 or float in [0, 1].
            depth: [H, W] z-depth in metres; inf, <= near or >= max_depth means no measurement.
            cam_to_world: [4, 4] pose.
            features: optional [D, h, w] feature map; computed by the encoder when None and an encoder is set.

        Returns:
            :class:`FrameStats`. A frame without a single valid depth pixel is skipped (``skipped=True``,
            documented, not an error): nothing can be placed in 3D from it.
        """
        pose = self._pose(cam_to_world)
        rgb, depth = self._check_frame(rgb, depth)
        cfg = self.cfg
        valid = torch.isfinite(depth) & (depth > cfg.raster.near) & (depth < cfg.max_depth)
        if not valid.any():
            return FrameStats(True, "no valid depth pixel", n_gaussians=self.n_gaussians, bank_size=len(self.bank))
        depth = torch.where(valid, depth, torch.zeros_like(depth))
        self.rgb_sum += rgb[valid].sum(0).double()
        self.rgb_count += int(valid.sum())
        if self.encoder is not None and features is None:
            features = self.encoder(rgb.permute(2, 0, 1)[None])[0]
        if features is not None:
            if self.attention is None or features.dim() != 3 or features.shape[0] != self.feature_dim:
                raise ValueError(
                    f"features must be [D={self.feature_dim}, h, w] (an encoder must be set), "
                    f"got {tuple(features.shape)}"
                )
            rows = features.reshape(self.feature_dim, -1).T
            rows = rows[rows.abs().sum(-1) > 0]
            self.bank, _ = psc_update(self.bank, rows, cfg.psc_theta, cfg.psc_capacity)
        kf = {"rgb": rgb, "depth": depth, "valid": valid, "pose": pose}
        if features is not None:
            kf["features"] = features
        if len(self.keyframes) >= cfg.max_keyframes:
            self.keyframes.pop(1)  # keep the first frame: it anchors the start of the walk
        self.keyframes.append(kf)
        self.frames_seen += 1
        added = self._densify(kf)
        loss = float("nan")
        for _ in range(cfg.steps_per_keyframe):
            if torch.rand((), generator=self.gen) < cfg.new_frame_prob or len(self.keyframes) == 1:
                k = kf
            else:
                k = self.keyframes[int(torch.randint(len(self.keyframes) - 1, (), generator=self.gen))]
            loss = self._step(k)
        pruned = self._prune()
        return FrameStats(False, "", added, pruned, self.n_gaussians, int(self.bank.shape[0]), loss)

    def consolidate(self, steps: int) -> float:
        """Optimises ``steps`` more steps on keyframes drawn uniformly (all of them equally, the newest included),
        then prunes; e.g. at the end of a walk or an episode, when the online steps have favoured recent frames.

        Returns:
            the loss of the last step (nan when ``steps`` is 0).
        """
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        if steps and not self.keyframes:
            raise ValueError("consolidate needs at least one keyframe: add frames first")
        loss = float("nan")
        for _ in range(steps):
            loss = self._step(self.keyframes[int(torch.randint(len(self.keyframes), (), generator=self.gen))])
        self._prune()
        return loss

    @torch.no_grad()
    def _densify(self, kf: dict[str, torch.Tensor]) -> int:
        cfg, intr = self.cfg, self.intrinsics
        h, w = intr.height, intr.width
        need = kf["valid"].clone()
        if self.n_gaussians > 0:
            out = self._render(kf["pose"], intr, with_queries=False)
            front = (out.depth - kf["depth"]) > cfg.spawn_depth_rel * kf["depth"]
            need &= (out.alpha < cfg.spawn_alpha) | front
        s = cfg.init_stride
        ov, ou = (int(x) for x in torch.randint(s, (2,), generator=self.gen))  # a random grid phase per frame
        grid = torch.zeros(h, w, dtype=torch.bool, device=self.device)
        grid[ov::s, ou::s] = True
        vv, uu = (need & grid).nonzero(as_tuple=True)
        room = cfg.capacity - self.n_gaussians
        if vv.numel() > room:
            # Make room from the least opaque Gaussians, but never more than half of the memory per frame.
            drop = min(vv.numel() - room, self.n_gaussians // 2)
            if drop > 0:
                keep = torch.ones(self.n_gaussians, dtype=torch.bool, device=self.device)
                keep[torch.topk(self.params["opacity_logits"], drop, largest=False).indices] = False
                self._keep(keep)
            room = cfg.capacity - self.n_gaussians
            if vv.numel() > room:
                pick = torch.randperm(vv.numel(), generator=self.gen)[:room].to(self.device)
                vv, uu = vv[pick], uu[pick]
        n = vv.numel()
        if n == 0:
            return 0
        pose = kf["pose"]
        means, log_scales, quats = self._seed_geometry(kf["depth"], kf["valid"], pose, vv, uu)
        rgb = kf["rgb"][vv, uu].clamp(0.02, 0.98)
        op = torch.full((n,), cfg.init_opacity, device=self.device)
        self._append(
            {
                "means": means,
                "log_scales": log_scales,
                "quats": quats,
                "opacity_logits": torch.logit(op),
                "rgb_logits": torch.logit(rgb),
                "queries": torch.randn(n, cfg.query_dim, generator=self.gen).to(self.device),
            }
        )
        return n

    def _seed_geometry(
        self, depth: torch.Tensor, valid: torch.Tensor, pose: torch.Tensor, vv: torch.Tensor, uu: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """World means [n, 3], log-scales [n, 3] and quaternions [n, 4] of new Gaussians at pixels (vv, uu).

        ``disc``: the surface tangents at a pixel are the differences of back-projected neighbours (per axis the
        shorter of the forward and backward difference, so that a depth edge on one side does not tilt the
        disc); the disc spans the footprint of ``init_stride`` pixels along each tangent.
        """
        cfg, intr = self.cfg, self.intrinsics
        h, w = depth.shape
        s = cfg.init_stride
        z = depth[vv, uu]
        frontal = s * z / intr.fx  # seeding spacing on a surface facing the camera (m)
        u_grid = torch.arange(w, dtype=torch.float32, device=self.device) + 0.5
        v_grid = torch.arange(h, dtype=torch.float32, device=self.device) + 0.5
        pts = torch.stack(
            [
                (u_grid[None, :] - intr.cx) / intr.fx * depth,
                (v_grid[:, None] - intr.cy) / intr.fy * depth,
                depth,
            ],
            -1,
        )  # [H, W, 3] camera frame (invalid pixels at the camera centre)
        means = pts[vv, uu] @ pose[:3, :3].T + pose[:3, 3]
        if cfg.init_shape == "iso":
            scale = (cfg.init_scale * frontal).clamp_min(1e-4)
            quats = torch.zeros(len(vv), 4, device=self.device)
            quats[:, 0] = 1.0
            return means, scale.log()[:, None].expand(-1, 3).clone(), quats
        if cfg.init_shape != "disc":
            raise ValueError(f"init_shape must be 'disc' or 'iso', got {cfg.init_shape!r}")
        p0 = pts[vv, uu]
        limit = (cfg.max_slant * z / intr.fx)[:, None]  # one pixel's step can be at most this long

        def tangent(dv: int, du: int) -> torch.Tensor:
            fwd_v, fwd_u = (vv + dv).clamp(0, h - 1), (uu + du).clamp(0, w - 1)
            bwd_v, bwd_u = (vv - dv).clamp(0, h - 1), (uu - du).clamp(0, w - 1)
            fwd = pts[fwd_v, fwd_u] - p0
            bwd = p0 - pts[bwd_v, bwd_u]
            big = torch.full_like(z, float("inf"))
            nf = torch.where(valid[fwd_v, fwd_u] & ((fwd_v != vv) | (fwd_u != uu)), fwd.norm(dim=-1), big)
            nb = torch.where(valid[bwd_v, bwd_u] & ((bwd_v != vv) | (bwd_u != uu)), bwd.norm(dim=-1), big)
            t = torch.where((nf <= nb)[:, None], fwd, bwd)
            ok = torch.isfinite(torch.minimum(nf, nb))
            # No usable neighbour: the frontal direction of this image axis.
            axis = torch.tensor([du, dv, 0.0], device=self.device) * (z / intr.fx)[:, None]
            t = torch.where(ok[:, None], t, axis)
            n = t.norm(dim=-1, keepdim=True)
            return t * (n.clamp(max=limit) / n.clamp_min(1e-12))

        tu, tv = tangent(0, 1), tangent(1, 0)  # [n, 3] per-pixel steps along u and v
        normal = torch.linalg.cross(tu, tv)
        flat = normal.norm(dim=-1) < 1e-12
        normal = torch.where(flat[:, None], torch.tensor([0.0, 0.0, -1.0], device=self.device), normal)
        e3 = F.normalize(normal, dim=-1)
        e1 = F.normalize(tu - (tu * e3).sum(-1, keepdim=True) * e3, dim=-1)
        e2 = torch.linalg.cross(e3, e1)
        s1 = (tu * e1).sum(-1).abs()
        s2 = (tv * e2).sum(-1).abs()
        lo = 0.25 * z / intr.fx  # keep discs at least a quarter pixel wide
        s1 = cfg.init_scale * s * torch.maximum(s1, lo)
        s2 = cfg.init_scale * s * torch.maximum(s2, lo)
        s3 = cfg.init_thickness * torch.minimum(s1, s2)
        rot = pose[:3, :3] @ torch.stack([e1, e2, e3], -1)  # [n, 3, 3] columns = world axes of the disc
        scales = torch.stack([s1, s2, s3], -1).clamp_min(1e-5)
        return means, scales.log(), rotmat_to_quat(rot)

    def loss(self, kf: dict[str, torch.Tensor], params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The M3 training loss of the current Gaussians against one keyframe (differentiable in ``params``)."""
        cfg = self.cfg
        saved = self.params
        if params is not None:
            self.params = params
        try:
            out = self._render(kf["pose"], self.intrinsics, with_queries=self.attention is not None)
        finally:
            self.params = saved
        pred = out.color[..., :3].permute(2, 0, 1)
        target = kf["rgb"].permute(2, 0, 1)
        loss = (1 - cfg.w_ssim) * (pred - target).abs().mean() + cfg.w_ssim * (1 - ssim(pred, target))
        v = kf["valid"]
        # Un-normalised depth (alpha * z) so that holes (alpha < 1) are penalised as well as wrong depths.
        loss = loss + cfg.w_depth * (out.alpha * out.depth - kf["depth"])[v].abs().mean()
        if "features" in kf and self.bank.shape[0] > 0:
            uv = torch.rand(cfg.feature_points, 2, generator=self.gen).to(self.device)
            q = sample_maps(out.color[..., 3:].permute(2, 0, 1), uv)  # [P, c]
            tgt = sample_maps(kf["features"], uv)  # [P, D]
            loss = loss + cfg.w_feature * feature_loss(self.attention(q, self.bank), tgt)
        return loss

    def _step(self, kf: dict[str, torch.Tensor]) -> float:
        params = {k: v.detach().requires_grad_(True) for k, v in self.params.items()}
        loss = self.loss(kf, params)
        grads = torch.autograd.grad(loss, [params[k] for k in PARAMS], allow_unused=True)
        b1, b2, eps = 0.9, 0.999, 1e-15
        with torch.no_grad():
            self.adam_t += 1
            for k, g in zip(PARAMS, grads):
                if g is None:
                    continue
                self.adam_m[k].mul_(b1).add_(g, alpha=1 - b1)
                self.adam_v[k].mul_(b2).addcmul_(g, g, value=1 - b2)
                shape = (-1,) + (1,) * (g.dim() - 1)
                mhat = self.adam_m[k] / (1 - b1**self.adam_t).reshape(shape)
                vhat = self.adam_v[k] / (1 - b2**self.adam_t).reshape(shape)
                lr = getattr(self.cfg, f"lr_{k}")
                self.params[k] = self.params[k] - lr * mhat / (vhat.sqrt() + eps)
        return float(loss.detach())

    @torch.no_grad()
    def _prune(self) -> int:
        keep = torch.sigmoid(self.params["opacity_logits"]) >= self.cfg.prune_opacity
        n = int((~keep).sum())
        if n:
            self._keep(keep)
        return n
