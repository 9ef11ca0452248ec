"""gsplat's CUDA rasteriser behind the interface of :func:`chronotope.memory.gaussian.splat.rasterize`.

gsplat (https://github.com/nerfstudio-project/gsplat) needs its compiled CUDA extension, so it is an optional
dependency used only when a CUDA device is present: ``pip install gsplat``.
"""

from __future__ import annotations

import torch

from chronotope.envs.render.camera import CameraIntrinsics
from chronotope.memory.gaussian.splat import RasterConfig, SplatOutput, check_gaussians, check_pose


def gsplat_available() -> bool:
    """True when CUDA is present and ``gsplat`` imports."""
    if not torch.cuda.is_available():
        return False
    try:
        import gsplat  # noqa: F401
    except ImportError:
        return False
    return True


def rasterize_gsplat(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
    cam_to_world: torch.Tensor,
    intrinsics: CameraIntrinsics,
    background: torch.Tensor | None = None,
    cfg: RasterConfig | None = None,
) -> SplatOutput:
    """Renders with ``gsplat.rasterization``; same shapes and meaning as the torch rasteriser's result.

    Raises:
        ImportError: gsplat is not installed.
        RuntimeError: the tensors are not on a CUDA device (gsplat has no CPU path).
    """
    cfg = cfg or RasterConfig()
    try:
        from gsplat import rasterization
    except ImportError as e:
        raise ImportError(
            "the 'gsplat' splat backend needs the gsplat package and a CUDA device (pip install gsplat); "
            "use backend='torch' on CPU"
        ) from e
    if means.device.type != "cuda":
        raise RuntimeError(f"gsplat needs CUDA tensors, got means on {means.device}; use backend='torch'")
    check_gaussians(means, quats, scales, opacities, colors)
    check_pose(cam_to_world)
    c2w = cam_to_world.to(means)
    viewmat = torch.linalg.inv(c2w)[None]  # [1, 4, 4] world -> camera, OpenCV axes as gsplat expects
    k = torch.tensor(intrinsics.matrix(), dtype=means.dtype, device=means.device)[None]
    render, alphas, meta = rasterization(
        means,
        quats / quats.norm(dim=-1, keepdim=True),
        scales,
        opacities,
        colors,
        viewmat,
        k,
        intrinsics.width,
        intrinsics.height,
        near_plane=cfg.near,
        far_plane=cfg.far,
        eps2d=cfg.eps2d,
        tile_size=cfg.tile_size,
        render_mode="RGB+ED",  # colour channels plus alpha-normalised expected depth
        rasterize_mode="classic",
    )
    color, depth, alpha = render[0, ..., :-1], render[0, ..., -1], alphas[0, ..., 0]
    depth = torch.where(alpha > 1e-10, depth, torch.zeros_like(depth))
    if background is not None:
        color = color + (1.0 - alpha)[..., None] * background
    radii = meta.get("radii")
    n_vis = int((radii > 0).any(-1).sum()) if radii is not None and radii.dim() > 2 else -1
    return SplatOutput(color, depth, alpha, n_vis, -1)
