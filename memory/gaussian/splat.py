"""Differentiable 3D Gaussian splatting in pure PyTorch (CPU or any torch device).

Pipeline (Kerbl et al. 2023, "3D Gaussian Splatting"; EWA splatting, Zwicker et al. 2001):

1. *Projection*: each Gaussian (mean, scale, unit quaternion) has covariance ``Sigma = R S S^T R^T``; in the camera
   frame it becomes ``W Sigma W^T`` and the local affine approximation of the pinhole projection (its Jacobian ``J``)
   maps it to the 2D covariance ``J W Sigma W^T J^T + eps2d * I`` (the small dilation keeps sub-pixel Gaussians
   visible and the matrix invertible).
2. *Support*: a Gaussian contributes only inside its ``sigma_cutoff`` (3-sigma) ellipse and where its alpha is at
   least ``min_alpha``. Because the support is this ellipse (not "whatever tiles it touches"), the tiled and the
   dense rasteriser compute exactly the same image.
3. *Compositing*: Gaussians are sorted by camera z (front to back); per pixel ``w_i = alpha_i prod_{j<i}(1-alpha_j)``
   blends every channel (colour, any number of feature/query channels, z-depth) with the *same* weights.
4. *Tiles*: the image is cut into ``tile_size``-square tiles; a Gaussian is listed only in the tiles its support's
   bounding box overlaps, so each tile blends only its own Gaussians and the cost follows the covered area.

Backward is torch autograd. Conventions are those of :mod:`chronotope.envs.render.camera`: OpenCV camera frame,
cam-to-world 4x4 poses, pixel (row v, column u) sampled at its centre ``(u + 0.5, v + 0.5)``, z-depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from chronotope.envs.render.camera import CameraIntrinsics


@dataclass(frozen=True)
class RasterConfig:
    """Settings shared by every rasteriser backend."""

    tile_size: int = 16
    """Square tile edge in pixels (tiled mode)."""
    near: float = 0.01
    """Gaussians whose centre has camera z <= near are culled (metres)."""
    far: float = 100.0
    """Gaussians whose centre has camera z >= far are culled (metres)."""
    eps2d: float = 0.3
    """Dilation added to the diagonal of every 2D covariance (pixels^2), as in 3DGS / gsplat."""
    sigma_cutoff: float = 3.0
    """Support radius in standard deviations (Mahalanobis distance) of each projected Gaussian."""
    min_alpha: float = 1.0 / 255.0
    """Per-pixel alphas below this are dropped (3DGS convention)."""
    max_alpha: float = 0.99
    """Per-pixel alphas are clamped to this so that transmittance never reaches exactly zero."""
    fov_clamp: float = 1.3
    """The Jacobian is evaluated with x/z, y/z clamped to fov_clamp * tan(half fov) (3DGS, avoids blow-ups)."""
    dense_chunk: int = 4096
    """Pixels per chunk in dense mode (bounds memory to N * dense_chunk per intermediate)."""

    def __post_init__(self) -> None:
        if not (isinstance(self.tile_size, int) and self.tile_size > 0):
            raise ValueError(f"tile_size must be a positive int, got {self.tile_size!r}")
        if not (0.0 < self.near < self.far):
            raise ValueError(f"need 0 < near < far, got near={self.near!r}, far={self.far!r}")
        if not (self.eps2d >= 0.0 and self.sigma_cutoff > 0.0):
            raise ValueError(f"need eps2d >= 0 and sigma_cutoff > 0, got {self.eps2d!r}, {self.sigma_cutoff!r}")
        if not (0.0 <= self.min_alpha < self.max_alpha < 1.0):
            raise ValueError(f"need 0 <= min_alpha < max_alpha < 1, got {self.min_alpha!r}, {self.max_alpha!r}")


@dataclass
class SplatOutput:
    """One rendered view.

    color: [H, W, C] blended channels (plus ``(1 - alpha) * background``).
    depth: [H, W] expected z-depth normalised by alpha (``sum w z / sum w``), 0 where alpha is 0.
    alpha: [H, W] accumulated opacity ``sum w`` in [0, 1).
    n_visible: Gaussians that survived culling.
    n_pairs: (tile, Gaussian) pairs blended (tiled) or visible Gaussians x pixels (dense); a cost measure.
    """

    color: torch.Tensor
    depth: torch.Tensor
    alpha: torch.Tensor
    n_visible: int
    n_pairs: int


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [N, 3, 3] from quaternions [N, 4] in (w, x, y, z) order (normalised here)."""
    q = quats / quats.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*quats.shape[:-1], 3, 3)


def covariance_3d(scales: torch.Tensor, quats: torch.Tensor) -> torch.Tensor:
    """World covariances [N, 3, 3] = R S S^T R^T from scales [N, 3] (std devs, metres) and quaternions [N, 4]."""
    m = quat_to_rotmat(quats) * scales[..., None, :]  # R S
    return m @ m.transpose(-1, -2)


def check_gaussians(
    means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, opacities: torch.Tensor, colors: torch.Tensor
) -> None:
    """Raises ValueError naming the bad value for malformed or degenerate Gaussians."""
    n = means.shape[0] if means.dim() == 2 else -1
    tensors = {"means": means, "quats": quats, "scales": scales, "opacities": opacities, "colors": colors}
    expect = {"means": (n, 3), "quats": (n, 4), "scales": (n, 3), "opacities": (n,)}
    for name, shape in expect.items():
        t = tensors[name]
        if n < 0 or tuple(t.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} with N from means [N, 3], got {tuple(t.shape)}")
    if colors.dim() != 2 or colors.shape[0] != n:
        raise ValueError(f"colors must have shape [N={n}, C], got {tuple(colors.shape)}")
    for name, t in tensors.items():
        if not torch.isfinite(t).all():
            bad = (~torch.isfinite(t)).nonzero()[0].tolist()
            raise ValueError(f"{name} contains NaN/inf (first at index {bad})")
    if n == 0:
        return
    if (scales <= 0).any():
        i = int((scales <= 0).any(-1).nonzero()[0])
        raise ValueError(f"degenerate covariance: scales must be > 0, Gaussian {i} has {scales[i].tolist()}")
    qn = quats.norm(dim=-1)
    if (qn < 1e-8).any():
        i = int((qn < 1e-8).nonzero()[0])
        raise ValueError(f"degenerate rotation: quaternion {i} is {quats[i].tolist()} (norm ~ 0)")
    if ((opacities < 0) | (opacities > 1)).any():
        i = int(((opacities < 0) | (opacities > 1)).nonzero()[0])
        raise ValueError(f"opacities must be in [0, 1], Gaussian {i} has {float(opacities[i])}")


def check_pose(cam_to_world: torch.Tensor) -> None:
    """Raises ValueError for a cam-to-world pose that is not a finite [4, 4] rigid transform."""
    if tuple(cam_to_world.shape) != (4, 4):
        raise ValueError(f"cam_to_world must have shape (4, 4), got {tuple(cam_to_world.shape)}")
    if not torch.isfinite(cam_to_world).all():
        raise ValueError(f"cam_to_world contains NaN or inf: {cam_to_world.tolist()}")
    r = cam_to_world[:3, :3].double()
    err = (r.T @ r - torch.eye(3, dtype=r.dtype, device=r.device)).abs().max()
    if err > 1e-3:
        raise ValueError(f"cam_to_world rotation is not orthonormal (max |R^T R - I| = {float(err):.3g})")


@dataclass
class Projected:
    """Screen-space Gaussians. mean2d [N, 2] (u, v) pixels; conic [N, 3] (a, b, c) of the inverse 2D covariance;
    depth [N] camera z; extent [N, 2] support half-widths in pixels; valid [N] bool (z in (near, far))."""

    mean2d: torch.Tensor
    conic: torch.Tensor
    cov2d: torch.Tensor
    depth: torch.Tensor
    extent: torch.Tensor
    valid: torch.Tensor


def project_gaussians(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    cam_to_world: torch.Tensor,
    intrinsics: CameraIntrinsics,
    cfg: RasterConfig,
) -> Projected:
    """EWA projection of Gaussians [N] into the camera ``cam_to_world`` [4, 4]."""
    c2w = cam_to_world.to(means)
    r_wc = c2w[:3, :3].T  # world -> camera rotation
    p = (means - c2w[:3, 3]) @ r_wc.T  # [N, 3] camera frame
    x, y, z = p.unbind(-1)
    valid = (z > cfg.near) & (z < cfg.far)
    zs = torch.where(valid, z, torch.ones_like(z))  # keeps culled rows finite so that gradients stay clean
    fx, fy, cx, cy = intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy
    lim_x = cfg.fov_clamp * cx / fx
    lim_y = cfg.fov_clamp * cy / fy
    tx = zs * (x / zs).clamp(-lim_x, lim_x)
    ty = zs * (y / zs).clamp(-lim_y, lim_y)
    zero = torch.zeros_like(zs)
    jac = torch.stack(
        [fx / zs, zero, -fx * tx / zs**2, zero, fy / zs, -fy * ty / zs**2],
        dim=-1,
    ).reshape(-1, 2, 3)
    t = jac @ r_wc  # [N, 2, 3]
    cov2d = t @ covariance_3d(scales, quats) @ t.transpose(-1, -2)
    cov2d = cov2d + cfg.eps2d * torch.eye(2, dtype=means.dtype, device=means.device)
    a, b, c = cov2d[:, 0, 0], cov2d[:, 0, 1], cov2d[:, 1, 1]
    det = a * c - b * b
    # A numerically singular 2D covariance (eps2d = 0 and a flat Gaussian seen edge-on) cannot be splatted.
    valid = valid & (det > 1e-12)
    det = torch.where(valid, det, torch.ones_like(det))
    conic = torch.stack([c / det, -b / det, a / det], dim=-1)
    mean2d = torch.stack([fx * x / zs + cx, fy * y / zs + cy], dim=-1)
    extent = cfg.sigma_cutoff * torch.stack([a.clamp_min(0).sqrt(), c.clamp_min(0).sqrt()], dim=-1)
    # Off-screen: the support's bounding box misses the image rectangle [0, W] x [0, H].
    lo, hi = mean2d - extent, mean2d + extent
    onscreen = (hi[:, 0] > 0) & (lo[:, 0] < intrinsics.width) & (hi[:, 1] > 0) & (lo[:, 1] < intrinsics.height)
    valid = valid & onscreen.detach() & torch.isfinite(mean2d).all(-1)
    return Projected(mean2d, conic, cov2d, z, extent.detach(), valid)


def _blend(
    pix: torch.Tensor,
    mean2d: torch.Tensor,
    conic: torch.Tensor,
    opac: torch.Tensor,
    feats: torch.Tensor,
    cfg: RasterConfig,
    stop: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Front-to-back blend of K depth-sorted Gaussians at P pixels.

    Args:
        pix: [P, 2] pixel-centre coordinates (u, v).
        mean2d, conic, opac, feats: [K, 2], [K, 3], [K], [K, C] in front-to-back order.
        stop: channels [a, b) blended with stop-gradient weights (same values, no gradient to the geometry).

    Returns:
        (blended [P, C], accumulated alpha [P]).
    """
    dx = pix[None, :, 0] - mean2d[:, None, 0]  # [K, P]
    dy = pix[None, :, 1] - mean2d[:, None, 1]
    power = conic[:, None, 0] * dx * dx + 2 * conic[:, None, 1] * dx * dy + conic[:, None, 2] * dy * dy
    alpha = opac[:, None] * torch.exp(-0.5 * power)
    keep = (power <= cfg.sigma_cutoff**2) & (alpha >= cfg.min_alpha)
    alpha = torch.where(keep, alpha.clamp(max=cfg.max_alpha), torch.zeros_like(alpha))
    trans = torch.cumprod(1.0 - alpha, dim=0)
    trans = torch.cat([torch.ones_like(trans[:1]), trans[:-1]], dim=0)  # exclusive: light reaching Gaussian i
    w = alpha * trans  # [K, P]
    if stop is None:
        return w.T @ feats, w.sum(0)
    a, b = stop
    wd = w.detach()
    return torch.cat([w.T @ feats[:, :a], wd.T @ feats[:, a:b], w.T @ feats[:, b:]], dim=-1), w.sum(0)


def _finish(
    acc: torch.Tensor, alpha: torch.Tensor, background: torch.Tensor | None, n_vis: int, n_pairs: int
) -> SplatOutput:
    color, zacc = acc[..., :-1], acc[..., -1]
    safe = torch.where(alpha > 1e-10, alpha, torch.ones_like(alpha))
    depth = torch.where(alpha > 1e-10, zacc / safe, torch.zeros_like(zacc))
    if background is not None:
        color = color + (1.0 - alpha)[..., None] * background
    return SplatOutput(color, depth, alpha, n_vis, n_pairs)


def _pixel_grid(h: int, w: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    v, u = torch.meshgrid(
        torch.arange(h, dtype=dtype, device=device) + 0.5,
        torch.arange(w, dtype=dtype, device=device) + 0.5,
        indexing="ij",
    )
    return torch.stack([u, v], dim=-1)  # [h, w, 2]


def rasterize(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
    cam_to_world: torch.Tensor,
    intrinsics: CameraIntrinsics,
    background: torch.Tensor | None = None,
    cfg: RasterConfig | None = None,
    mode: str = "tiled",
    stop_grad_channels: tuple[int, int] | None = None,
) -> SplatOutput:
    """Renders N Gaussians into one camera.

    Args:
        means: [N, 3] world positions (metres).
        quats: [N, 4] rotations (w, x, y, z), any non-zero norm.
        scales: [N, 3] standard deviations along the rotated axes (metres, > 0).
        opacities: [N] in [0, 1].
        colors: [N, C] any channels (RGB, query vectors, features...), all blended with the same weights.
        cam_to_world: [4, 4] camera pose (OpenCV camera frame).
        intrinsics: resolution and field of view.
        background: optional [C] added with weight ``1 - alpha``.
        cfg: rasteriser settings.
        mode: "tiled" (cost ~ covered pixels) or "dense" (every visible Gaussian x every pixel; the reference).
        stop_grad_channels: optional colour channels [a, b) that are blended with the same weights but pass no
            gradient to the geometry (means, scales, rotations, opacities); their own values still get gradients.
            The scene memory uses it so that the feature loss trains the queries without pulling the geometry
            that the photometric loss fits.

    Returns:
        :class:`SplatOutput` with color [H, W, C], depth [H, W], alpha [H, W].
    """
    cfg = cfg or RasterConfig()
    if mode not in ("tiled", "dense"):
        raise ValueError(f"mode must be 'tiled' or 'dense', got {mode!r}")
    check_gaussians(means, quats, scales, opacities, colors)
    check_pose(cam_to_world)
    if background is not None and tuple(background.shape) != (colors.shape[1],):
        raise ValueError(f"background must have shape ({colors.shape[1]},), got {tuple(background.shape)}")
    if stop_grad_channels is not None:
        a, b = stop_grad_channels
        if not 0 <= a <= b <= colors.shape[1]:
            raise ValueError(
                f"stop_grad_channels must satisfy 0 <= a <= b <= C={colors.shape[1]}, got {stop_grad_channels}"
            )
    h, w = intrinsics.height, intrinsics.width
    dtype, device = means.dtype, means.device
    proj = project_gaussians(means, quats, scales, cam_to_world, intrinsics, cfg)
    vis = proj.valid.nonzero().squeeze(-1)
    # Front to back by camera z of the centre; the sort is stable so ties keep input order (deterministic).
    vis = vis[torch.sort(proj.depth[vis].detach(), stable=True).indices]
    feats = torch.cat([colors, proj.depth[:, None]], dim=-1)[vis]  # depth blended as one more channel
    mean2d, conic, opac = proj.mean2d[vis], proj.conic[vis], opacities[vis]
    n_vis = int(vis.numel())
    nc = feats.shape[1]

    if mode == "dense":
        pix = _pixel_grid(h, w, dtype, device).reshape(-1, 2)
        accs, alphas = [], []
        for s in range(0, pix.shape[0], cfg.dense_chunk):
            a, al = _blend(pix[s : s + cfg.dense_chunk], mean2d, conic, opac, feats, cfg, stop_grad_channels)
            accs.append(a)
            alphas.append(al)
        acc = torch.cat(accs).reshape(h, w, nc)
        alpha = torch.cat(alphas).reshape(h, w)
        return _finish(acc, alpha, background, n_vis, n_vis * h * w)

    ts = cfg.tile_size
    ntx, nty = math.ceil(w / ts), math.ceil(h / ts)
    ext = proj.extent[vis]
    m2 = mean2d.detach()
    tx0 = torch.floor((m2[:, 0] - ext[:, 0]) / ts).clamp(0, ntx - 1).long()
    tx1 = torch.floor((m2[:, 0] + ext[:, 0]) / ts).clamp(0, ntx - 1).long()
    ty0 = torch.floor((m2[:, 1] - ext[:, 1]) / ts).clamp(0, nty - 1).long()
    ty1 = torch.floor((m2[:, 1] + ext[:, 1]) / ts).clamp(0, nty - 1).long()
    nx, ny = tx1 - tx0 + 1, ty1 - ty0 + 1
    counts = nx * ny
    n_pairs = int(counts.sum())
    # Expand every Gaussian into its (tile, Gaussian) pairs, then group by tile; a stable sort on the tile id
    # keeps each tile's list in front-to-back order.
    gid = torch.repeat_interleave(torch.arange(n_vis, device=device), counts)
    starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    off = torch.arange(n_pairs, device=device) - starts
    tile = (ty0[gid] + off // nx[gid]) * ntx + tx0[gid] + off % nx[gid]
    tile, perm = torch.sort(tile, stable=True)
    gid = gid[perm]
    per_tile = torch.bincount(tile, minlength=ntx * nty).tolist()
    groups = gid.split(per_tile)
    grid = _pixel_grid(nty * ts, ntx * ts, dtype, device)  # padded to whole tiles, cropped below
    zero_acc = torch.zeros(ts * ts, nc, dtype=dtype, device=device)
    zero_alpha = torch.zeros(ts * ts, dtype=dtype, device=device)
    accs, alphas = [], []
    for t, idx in enumerate(groups):
        if idx.numel() == 0:
            accs.append(zero_acc)
            alphas.append(zero_alpha)
            continue
        r, c = divmod(t, ntx)
        pix = grid[r * ts : (r + 1) * ts, c * ts : (c + 1) * ts].reshape(-1, 2)
        a, al = _blend(pix, mean2d[idx], conic[idx], opac[idx], feats[idx], cfg, stop_grad_channels)
        accs.append(a)
        alphas.append(al)
    acc = torch.stack(accs).reshape(nty, ntx, ts, ts, nc).permute(0, 2, 1, 3, 4).reshape(nty * ts, ntx * ts, nc)
    alpha = torch.stack(alphas).reshape(nty, ntx, ts, ts).permute(0, 2, 1, 3).reshape(nty * ts, ntx * ts)
    return _finish(acc[:h, :w], alpha[:h, :w], background, n_vis, n_pairs)


BACKENDS = ("torch", "gsplat")


class SplatRenderer:
    """One interface over the rasteriser backends: ``"torch"`` (this module) and ``"gsplat"`` (CUDA).

    ``backend="auto"`` picks gsplat when CUDA and gsplat are importable, else torch.
    """

    def __init__(self, backend: str = "torch", cfg: RasterConfig | None = None, mode: str = "tiled") -> None:
        if backend == "auto":
            from chronotope.memory.gaussian.gsplat_backend import gsplat_available

            backend = "gsplat" if gsplat_available() else "torch"
        if backend not in BACKENDS:
            raise ValueError(f"unknown splat backend {backend!r}; valid: {', '.join(BACKENDS)}, auto")
        self.backend = backend
        self.cfg = cfg or RasterConfig()
        self.mode = mode

    def __call__(
        self,
        means: torch.Tensor,
        quats: torch.Tensor,
        scales: torch.Tensor,
        opacities: torch.Tensor,
        colors: torch.Tensor,
        cam_to_world: torch.Tensor,
        intrinsics: CameraIntrinsics,
        background: torch.Tensor | None = None,
        stop_grad_channels: tuple[int, int] | None = None,
    ) -> SplatOutput:
        """Same arguments and result as :func:`rasterize`."""
        if self.backend == "gsplat":
            from chronotope.memory.gaussian.gsplat_backend import rasterize_gsplat

            if stop_grad_channels is None or stop_grad_channels[0] == stop_grad_channels[1]:
                return rasterize_gsplat(
                    means, quats, scales, opacities, colors, cam_to_world, intrinsics, background, self.cfg
                )
            # gsplat blends all channels with one set of weights: render the stopped channels a second time
            # from detached geometry (same weights, no gradient to the geometry).
            a, b = stop_grad_channels
            keep = torch.cat([colors[:, :a], colors[:, b:]], dim=-1)
            bg_keep = None if background is None else torch.cat([background[:a], background[b:]])
            bg_stop = None if background is None else background[a:b]
            full = rasterize_gsplat(means, quats, scales, opacities, keep, cam_to_world, intrinsics, bg_keep, self.cfg)
            det = rasterize_gsplat(
                means.detach(), quats.detach(), scales.detach(), opacities.detach(), colors[:, a:b],
                cam_to_world, intrinsics, bg_stop, self.cfg,
            )  # fmt: skip
            color = torch.cat([full.color[..., :a], det.color, full.color[..., a:]], dim=-1)
            return SplatOutput(color, full.depth, full.alpha, full.n_visible, full.n_pairs)
        return rasterize(
            means, quats, scales, opacities, colors, cam_to_world, intrinsics, background, self.cfg, self.mode,
            stop_grad_channels,
        )  # fmt: skip
