"""MuJoCo Warp's batch ray tracer: the same code on warp's CPU device and on CUDA.

The scene pool becomes one MuJoCo model (scenes side by side, as in the open3d backend; see
:mod:`chronotope.envs.render.mjcf`) holding one camera. MuJoCo Warp renders every camera of every *world* in
one kernel launch, so N cameras are N worlds whose camera pose is written straight into
``Data.cam_xpos`` / ``Data.cam_xmat`` (the geometry is static, so no kinematics pass is needed). Warp's depth
is already planar (z-depth); its segmentation gives geom ids, mapped to instance ids by a table; its lights
reproduce :mod:`chronotope.envs.render.shading`. The post-processing is torch on the warp device (zero-copy
through ``wp.to_torch``).

Warp's CPU kernels run on one thread, so on CPU this backend is several times slower than open3d; the first
use compiles the kernels (seconds to a minute, cached in ``~/.cache/warp`` afterwards).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np
import torch

from chronotope.envs.render.base import Renderer, RenderOutput
from chronotope.envs.render.camera import CameraIntrinsics
from chronotope.envs.render.mjcf import cv_to_mujoco_cam, geom_instance_table, pool_to_mjspec
from chronotope.envs.render.open3d_backend import single_torch_thread
from chronotope.envs.render.pool import pool_offsets
from chronotope.envs.render.quiet import init_warp_quietly
from chronotope.envs.render.shading import Lighting
from chronotope.envs.scene.mesh import SceneMesh


class MJWarpRenderer(Renderer):
    """Batched RGB / z-depth / instance-id rendering with ``mujoco_warp.render``.

    Args:
        meshes: the scene pool; ``scene_ids`` of :meth:`render` index into it.
        intrinsics: resolution and field of view of every camera.
        max_depth: depth clip in metres; beyond it a pixel is background (depth ``max_depth``, id 0).
        device: torch device of the returned tensors; warp runs on the same device (``cpu`` or ``cuda:k``)
            unless ``warp_device`` says otherwise.
        lighting: the shading light.
        warp_device: warp device name override (for example ``"cpu"`` with CUDA torch outputs).
    """

    name = "mjwarp"

    def __init__(
        self,
        meshes: Sequence[SceneMesh],
        intrinsics: CameraIntrinsics,
        max_depth: float = 10.0,
        device: torch.device | str = "cpu",
        lighting: Lighting | None = None,
        warp_device: str | None = None,
    ) -> None:
        super().__init__(meshes, intrinsics, max_depth=max_depth, device=device)
        try:
            import mujoco
            import mujoco_warp as mjw
            import warp as wp
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ImportError("the mjwarp renderer needs `pip install mujoco-warp warp-lang`") from e
        self._mujoco, self._mjw, self._wp = mujoco, mjw, wp
        self.lighting = lighting or Lighting()
        if warp_device is None:
            warp_device = str(self.device) if self.device.type == "cuda" else "cpu"
            if warp_device == "cuda":
                warp_device = "cuda:0"
        init_warp_quietly(wp, cpu_only=str(warp_device) == "cpu")  # no banner; warnings and errors still print
        self._wp_device = wp.get_device(warp_device)
        self.offsets = pool_offsets(self.meshes, self.max_depth)  # float64 [K, 3]
        # zfar a little past max_depth: warp stops traversing there, and the exact clip is done below.
        spec, _ = pool_to_mjspec(self.meshes, self.offsets, intrinsics, self.lighting, zfar=self.max_depth + 0.05)
        self.model = spec.compile()
        self._mjd = mujoco.MjData(self.model)
        mujoco.mj_forward(self.model, self._mjd)
        with wp.ScopedDevice(self._wp_device):
            self._m = mjw.put_model(self.model)
        self._torch_dev = (
            torch.device("cuda", self._wp_device.ordinal) if self._wp_device.is_cuda else torch.device("cpu")
        )
        self._instance_table = torch.from_numpy(geom_instance_table(self.model)).to(self._torch_dev)
        self._background = torch.tensor(self.lighting.background, dtype=torch.uint8, device=self._torch_dev)
        self._n_cached = -1

    def _context(self, n: int) -> None:
        """Per-world data and render context for ``n`` cameras; rebuilt only when ``n`` changes."""
        if n == self._n_cached:
            return
        mjw, wp = self._mjw, self._wp
        h, w = self.intrinsics.height, self.intrinsics.width
        with wp.ScopedDevice(self._wp_device):
            self._d = mjw.put_data(self.model, self._mjd, nworld=n)
            self._rc = mjw.create_render_context(
                self.model,
                nworld=n,
                cam_res=(w, h),
                render_rgb=True,
                render_depth=True,
                render_seg=True,
                use_textures=False,
                use_shadows=False,
                # Open3D hits triangles from both sides; so must this backend (and shade both sides).
                enable_backface_culling=False,
                enable_vertex_normals=False,  # flat triangles, as in shading.py
                enable_specular=False,
                enable_emission=False,
                background_color=(*(c / 255.0 for c in self.lighting.background), 1.0),
            )
        self._n_cached = n

    def render(
        self, cam_to_world: np.ndarray | torch.Tensor, scene_ids: np.ndarray | torch.Tensor | None = None
    ) -> RenderOutput:
        """Renders N cameras as N MuJoCo Warp worlds in one launch.

        Args:
            cam_to_world: float [N, 4, 4] camera-to-world poses (OpenCV camera axes).
            scene_ids: int [N] scene of each camera (default: all scene 0).

        Returns:
            RenderOutput with rgb uint8 [N, H, W, 3], depth float32 [N, H, W], semantic int32 [N, H, W].
        """
        poses, ids = self.check_poses(cam_to_world, scene_ids)
        n, h, w = poses.shape[0], self.intrinsics.height, self.intrinsics.width
        if n == 0:
            return RenderOutput.empty(h, w, self.device)
        self._context(n)
        wp = self._wp
        pos, rot = cv_to_mujoco_cam(poses)
        pos = pos + self.offsets[ids]
        with wp.ScopedDevice(self._wp_device):
            self._d.cam_xpos.assign(pos[:, None].astype(np.float32))  # [N, ncam=1, 3]
            self._d.cam_xmat.assign(rot[:, None].astype(np.float32))  # [N, 1, 3, 3]
            self._mjw.render(self._m, self._d, self._rc)
            wp.synchronize_device(self._wp_device)
        # On CPU, torch's OpenMP workers only add contention (measured 20-200x slower on a loaded machine).
        with single_torch_thread() if not self._wp_device.is_cuda else nullcontext():
            depth = wp.to_torch(self._rc.depth_data).view(n, h, w)  # z-depth, 0 where nothing was hit
            geom = wp.to_torch(self._rc.seg_data).view(n, h, w, 2)[..., 0]  # geom id, -1 where nothing was hit
            # Packed 0xAARRGGBB words, little-endian: bytes are B, G, R, A.
            bgra = wp.to_torch(self._rc.rgb_data).view(torch.uint8).view(n, h, w, 4)
            hit = (geom >= 0) & (depth <= self.max_depth)  # [N, H, W]
            out_depth = torch.where(hit, depth, torch.full_like(depth, self.max_depth))
            semantic = torch.take(self._instance_table, (geom + 1).long()) * hit  # int32 [N, H, W]
            rgb = torch.empty((n, h, w, 3), dtype=torch.uint8, device=bgra.device)
            for c in range(3):  # channel copies beat a fancy-indexed [2, 1, 0] gather by ~4x
                rgb[..., c] = bgra[..., 2 - c]
            rgb.mul_(hit[..., None])
            if self._background.any():
                rgb += (~hit)[..., None] * self._background
        return RenderOutput(rgb=rgb.to(self.device), depth=out_depth.to(self.device), semantic=semantic.to(self.device))
