"""MuJoCo's own OpenGL renderer (``mujoco.Renderer``, EGL by default): the camera-by-camera reference.

The scene pool is the same MuJoCo model as the mjwarp backend's (:mod:`chronotope.envs.render.mjcf`). For each
camera, the model camera's pose is written into ``MjData.cam_xpos`` / ``cam_xmat`` and the scene is drawn three
times: colour, depth (MuJoCo linearises the depth buffer to planar distance) and segmentation (geom ids, mapped
to instance ids). Multisampling is switched off so that edge pixels are not blends of two surfaces.
"""

from __future__ import annotations

import os

# Must precede the first `import mujoco` anywhere in the process to take effect; an explicit user choice wins.
os.environ.setdefault("MUJOCO_GL", "egl")

from collections.abc import Sequence  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from chronotope.envs.render.base import Renderer, RenderOutput  # noqa: E402
from chronotope.envs.render.camera import CameraIntrinsics  # noqa: E402
from chronotope.envs.render.mjcf import (  # noqa: E402
    CAMERA_NAME,
    cv_to_mujoco_cam,
    geom_instance_table,
    pool_to_mjspec,
)
from chronotope.envs.render.pool import pool_offsets  # noqa: E402
from chronotope.envs.render.shading import Lighting  # noqa: E402
from chronotope.envs.scene.mesh import SceneMesh  # noqa: E402


class MujocoGLRenderer(Renderer):
    """RGB / z-depth / instance ids from ``mujoco.Renderer``, one camera at a time.

    Args:
        meshes: the scene pool; ``scene_ids`` of :meth:`render` index into it.
        intrinsics: resolution and field of view (MuJoCo's ``fovy`` is set to the vertical field of view).
        max_depth: depth clip in metres; beyond it a pixel is background (depth ``max_depth``, id 0).
        device: torch device of the returned tensors.
        lighting: the shading light.
    """

    name = "mujoco"

    def __init__(
        self,
        meshes: Sequence[SceneMesh],
        intrinsics: CameraIntrinsics,
        max_depth: float = 10.0,
        device: torch.device | str = "cpu",
        lighting: Lighting | None = None,
    ) -> None:
        super().__init__(meshes, intrinsics, max_depth=max_depth, device=device)
        import mujoco

        self._mujoco = mujoco
        self.lighting = lighting or Lighting()
        self.offsets = pool_offsets(self.meshes, self.max_depth)  # float64 [K, 3]
        spec, _ = pool_to_mjspec(
            self.meshes, self.offsets, intrinsics, self.lighting, zfar=self.max_depth + 0.05, double_sided=True
        )
        self.model = spec.compile()
        self.model.vis.quality.offsamples = 0
        self.model.vis.global_.offwidth = max(int(self.model.vis.global_.offwidth), intrinsics.width)
        self.model.vis.global_.offheight = max(int(self.model.vis.global_.offheight), intrinsics.height)
        self._data = mujoco.MjData(self.model)
        mujoco.mj_forward(self.model, self._data)
        self._cam = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, CAMERA_NAME)
        try:
            self._renderer = mujoco.Renderer(self.model, height=intrinsics.height, width=intrinsics.width)
        except Exception as e:
            raise RuntimeError(
                f"mujoco.Renderer could not start with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}: {e}"
            ) from e
        self._instance_table = geom_instance_table(self.model)  # int32 [ngeom + 1]
        self._background = np.asarray(self.lighting.background, dtype=np.uint8)

    def render(
        self, cam_to_world: np.ndarray | torch.Tensor, scene_ids: np.ndarray | torch.Tensor | None = None
    ) -> RenderOutput:
        """Renders the N cameras one after another (three GL passes each).

        Args:
            cam_to_world: float [N, 4, 4] camera-to-world poses (OpenCV camera axes).
            scene_ids: int [N] scene of each camera (default: all scene 0).

        Returns:
            RenderOutput with rgb uint8 [N, H, W, 3], depth float32 [N, H, W], semantic int32 [N, H, W].
        """
        poses, ids = self.check_poses(cam_to_world, scene_ids)
        n, h, w = poses.shape[0], self.intrinsics.height, self.intrinsics.width
        rgb = np.empty((n, h, w, 3), dtype=np.uint8)
        depth = np.empty((n, h, w), dtype=np.float32)
        geom = np.empty((n, h, w), dtype=np.int32)
        pos, rot = cv_to_mujoco_cam(poses)
        pos = pos + self.offsets[ids]
        r = self._renderer
        for i in range(n):
            self._data.cam_xpos[self._cam] = pos[i]
            self._data.cam_xmat[self._cam] = rot[i].ravel()
            r.update_scene(self._data, camera=self._cam)
            rgb[i] = r.render()
            r.enable_depth_rendering()
            depth[i] = r.render()
            r.disable_depth_rendering()
            r.enable_segmentation_rendering()
            seg = r.render()  # [H, W, 2] (object id, object type); background -1
            r.disable_segmentation_rendering()
            geom[i] = np.where(seg[..., 1] == int(self._mujoco.mjtObj.mjOBJ_GEOM), seg[..., 0], -1)
        hit = (geom >= 0) & (depth <= self.max_depth)
        depth = np.where(hit, depth, np.float32(self.max_depth))
        semantic = np.where(hit, self._instance_table[geom + 1], 0).astype(np.int32)
        rgb = np.where(hit[..., None], rgb, self._background)
        return RenderOutput(
            rgb=torch.from_numpy(rgb).to(self.device),
            depth=torch.from_numpy(depth).to(self.device),
            semantic=torch.from_numpy(semantic).to(self.device),
        )

    def close(self) -> None:
        """Frees the GL context."""
        if getattr(self, "_renderer", None) is not None:
            self._renderer.close()
            self._renderer = None
