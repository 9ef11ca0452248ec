"""Embree ray casting through Open3D's ``RaycastingScene``: the CPU default backend.

The whole scene pool sits in one acceleration structure (scenes side by side, see
:mod:`chronotope.envs.render.pool`), so the rays of all N cameras go to Embree in one ``cast_rays`` call.
Everything around that call is kept to a few vectorised passes over preallocated buffers:

* rays: the camera-frame grid has ``z == 1`` and its ``x`` depends only on the column and its ``y`` only on
  the row, so the world ray of pixel (v, u) is ``A[n, u] + B[n, v]`` with ``A = (origin, R[:, 0] x_u + R[:, 2])``
  and ``B = (0, R[:, 1] y_v)``; one broadcast add writes the [N, H, W, 6] buffer that Embree reads in place;
* depth: the hit distance along a ``z == 1`` ray is the z-depth, so ``t_hit`` clipped at ``max_depth``;
* semantic and rgb: one table look-up each by hit triangle id; the shade of a triangle is view-independent
  (:mod:`chronotope.envs.render.shading`) and the tables carry the "no hit" value in their last row, which
  Embree's invalid id (``0xFFFFFFFF`` = ``-1`` as int32) indexes directly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch

from chronotope.envs.render import kernels
from chronotope.envs.render.base import Renderer, RenderOutput
from chronotope.envs.render.camera import CameraIntrinsics
from chronotope.envs.render.pool import merge_pool, pool_offsets
from chronotope.envs.render.shading import Lighting, shaded_color_table
from chronotope.envs.scene.mesh import SceneMesh


class Open3DRenderer(Renderer):
    """Batched RGB / z-depth / instance-id rendering by Embree ray casting.

    Args:
        meshes: the scene pool; ``scene_ids`` of :meth:`render` index into it.
        intrinsics: resolution and field of view of every camera.
        max_depth: depth clip in metres; beyond it a pixel is background (depth ``max_depth``, id 0).
        device: torch device of the returned tensors (the casting itself runs on the CPU).
        lighting: the shading light.
        nthreads: Embree threads for ``cast_rays``; 0 lets Open3D use all cores.

    The ray buffers are reused between calls (the returned tensors are not), so one renderer must not be
    called from two threads at once.
    """

    name = "open3d"

    def __init__(
        self,
        meshes: Sequence[SceneMesh],
        intrinsics: CameraIntrinsics,
        max_depth: float = 10.0,
        device: torch.device | str = "cpu",
        lighting: Lighting | None = None,
        nthreads: int = 0,
    ) -> None:
        super().__init__(meshes, intrinsics, max_depth=max_depth, device=device)
        try:
            import open3d as o3d
        except ImportError as e:  # pragma: no cover - depends on the platform
            raise ImportError(
                "the open3d renderer needs Open3D (pip install open3d-cpu; on Debian also "
                "`apt-get install libusb-1.0-0`)"
            ) from e
        if nthreads < 0:
            raise ValueError(f"nthreads must be >= 0, got {nthreads!r}")
        self._o3d = o3d
        self.lighting = lighting or Lighting()
        self.nthreads = int(nthreads)
        self.offsets = pool_offsets(self.meshes, self.max_depth)  # float64 [K, 3]
        merged, self.face_start = merge_pool(self.meshes, self.offsets)
        self._scene = o3d.t.geometry.RaycastingScene()
        if merged.num_faces:
            self._scene.add_triangles(
                o3d.core.Tensor.from_numpy(merged.vertices),
                o3d.core.Tensor.from_numpy(merged.faces.astype(np.uint32)),
            )
        # Look-up tables indexed by hit triangle id; the last row (index -1) is "no hit".
        self._instance_table = np.zeros(merged.num_faces + 1, dtype=np.int32)
        self._instance_table[:-1] = merged.face_instance
        self._color_table = shaded_color_table(merged.face_color, merged.face_normals(), self.lighting)
        grid = intrinsics.camera_rays()  # [H, W, 3], z == 1
        self._x = np.ascontiguousarray(grid[0, :, 0])  # [W] camera-frame x of each column
        self._y = np.ascontiguousarray(grid[:, 0, 1])  # [H] camera-frame y of each row
        self._n_cached = -1

    def _buffers(self, n: int) -> None:
        """(Re)allocates the ray buffers for ``n`` cameras; kept while ``n`` does not change."""
        if n == self._n_cached:
            return
        h, w = self.intrinsics.height, self.intrinsics.width
        self._rays = np.empty((n, h, w, 6), dtype=np.float32)
        self._rays_o3d = self._o3d.core.Tensor.from_numpy(self._rays)  # same memory, read by Embree
        self._n_cached = n

    def world_rays(self, cam_to_world: np.ndarray, scene_ids: np.ndarray) -> np.ndarray:
        """Fills and returns the ray buffer float32 [N, H, W, 6] (origin, direction) in pool coordinates.

        Args:
            cam_to_world: float64 [N, 4, 4] validated poses.
            scene_ids: int64 [N] scene of each camera.
        """
        n = cam_to_world.shape[0]
        self._buffers(n)
        origin = (cam_to_world[:, :3, 3] + self.offsets[scene_ids]).astype(np.float32)  # [N, 3]
        rot = np.ascontiguousarray(cam_to_world[:, :3, :3], np.float32)  # [N, 3, 3]
        kernels.fill_rays(origin, rot, self._x, self._y, self._rays)
        return self._rays

    def cast(self) -> dict:
        """Casts the current ray buffer (nothing else): the raw engine cost measured by the benchmark."""
        return self._scene.cast_rays(self._rays_o3d, nthreads=self.nthreads)

    def render(
        self, cam_to_world: np.ndarray | torch.Tensor, scene_ids: np.ndarray | torch.Tensor | None = None
    ) -> RenderOutput:
        """Renders N cameras in one ray cast.

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
        self.world_rays(poses, ids)
        ans = self.cast()
        t_hit = ans["t_hit"].numpy().reshape(-1)  # zero-copy view of Open3D's result
        # Embree's invalid id 0xFFFFFFFF reads as -1: the tables' "no hit" row.
        face = ans["primitive_ids"].numpy().view(np.int32).reshape(-1)
        depth = np.empty((n, h, w), np.float32)
        semantic = np.empty((n, h, w), np.int32)
        rgb = np.empty((n, h, w, 3), np.uint8)
        kernels.shade(
            t_hit, face, np.float32(self.max_depth), self._instance_table, self._color_table,
            depth.reshape(-1), semantic.reshape(-1), rgb.reshape(-1, 3),
        )  # fmt: skip
        return RenderOutput(
            rgb=torch.from_numpy(rgb).to(self.device),
            depth=torch.from_numpy(depth).to(self.device),
            semantic=torch.from_numpy(semantic).to(self.device),
        )


@contextmanager
def single_torch_thread() -> Iterator[None]:
    """Runs the enclosed torch ops on one intra-op thread, restoring the previous setting."""
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
