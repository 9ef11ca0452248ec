"""The renderer interface: N camera poses in, RGB / z-depth / instance ids out, in one batched call.

A renderer is built once for a fixed pool of scenes (``meshes``); each call names, per camera, which scene
it looks into. Backends: ``open3d`` (Embree ray casting, the CPU default), ``mjwarp`` (MuJoCo Warp batch
ray tracing, CPU or CUDA), ``mujoco`` (MuJoCo's OpenGL renderer, single camera reference).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from chronotope.envs.render.camera import CameraIntrinsics
from chronotope.envs.scene.mesh import SceneMesh

BACKENDS = ("open3d", "mjwarp", "mujoco")


@dataclass
class RenderOutput:
    """Batched images on the renderer's device.

    rgb: uint8 [N, H, W, 3]; depth: float32 [N, H, W] z-depth in metres, ``max_depth`` where nothing is hit
    within range; semantic: int32 [N, H, W] instance ids, 0 where nothing is hit within range.
    """

    rgb: torch.Tensor
    depth: torch.Tensor
    semantic: torch.Tensor

    @staticmethod
    def empty(height: int, width: int, device: torch.device | str) -> RenderOutput:
        """The output of zero cameras."""
        return RenderOutput(
            rgb=torch.zeros((0, height, width, 3), dtype=torch.uint8, device=device),
            depth=torch.zeros((0, height, width), dtype=torch.float32, device=device),
            semantic=torch.zeros((0, height, width), dtype=torch.int32, device=device),
        )


class Renderer:
    """Base class of every backend.

    Args:
        meshes: the scene pool; ``scene_ids`` passed to :meth:`render` index into it.
        intrinsics: resolution and field of view shared by all cameras.
        max_depth: depth clip in metres.
        device: torch device of the returned tensors.
    """

    name: str = "base"

    def __init__(
        self,
        meshes: Sequence[SceneMesh],
        intrinsics: CameraIntrinsics,
        max_depth: float = 10.0,
        device: torch.device | str = "cpu",
    ) -> None:
        if len(meshes) == 0:
            raise ValueError("a renderer needs at least one scene mesh")
        if not (np.isfinite(max_depth) and max_depth > 0):
            raise ValueError(f"max_depth must be a positive finite number, got {max_depth!r}")
        self.meshes = list(meshes)
        self.intrinsics = intrinsics
        self.max_depth = float(max_depth)
        self.device = torch.device(device)

    def check_poses(self, cam_to_world: np.ndarray | torch.Tensor, scene_ids: np.ndarray | torch.Tensor | None):
        """Validates and returns (cam_to_world float64 [N,4,4] numpy, scene_ids int64 [N] numpy)."""
        if isinstance(cam_to_world, torch.Tensor):
            cam_to_world = cam_to_world.detach().cpu().numpy()
        poses = np.asarray(cam_to_world, dtype=np.float64)
        if poses.ndim != 3 or poses.shape[1:] != (4, 4):
            raise ValueError(f"cam_to_world must have shape [N, 4, 4], got {poses.shape}")
        if not np.isfinite(poses).all():
            bad = np.unique(np.nonzero(~np.isfinite(poses))[0]).tolist()
            raise ValueError(f"cam_to_world contains NaN or inf for cameras {bad}")
        n = poses.shape[0]
        if scene_ids is None:
            ids = np.zeros(n, dtype=np.int64)
        else:
            if isinstance(scene_ids, torch.Tensor):
                scene_ids = scene_ids.detach().cpu().numpy()
            ids = np.asarray(scene_ids, dtype=np.int64).reshape(-1)
            if ids.shape[0] != n:
                raise ValueError(f"got {n} poses but {ids.shape[0]} scene ids")
            if n and (ids.min() < 0 or ids.max() >= len(self.meshes)):
                raise ValueError(f"scene ids must be in [0, {len(self.meshes)}), got {ids.min()}..{ids.max()}")
        return poses, ids

    def render(
        self, cam_to_world: np.ndarray | torch.Tensor, scene_ids: np.ndarray | torch.Tensor | None = None
    ) -> RenderOutput:
        raise NotImplementedError

    def close(self) -> None:
        """Releases backend resources (GL contexts, device buffers)."""


def make_renderer(
    backend: str,
    meshes: Sequence[SceneMesh],
    intrinsics: CameraIntrinsics,
    max_depth: float = 10.0,
    device: torch.device | str = "cpu",
    **kwargs,
) -> Renderer:
    """Builds a renderer by backend name; ``"auto"`` picks ``mjwarp`` on CUDA and ``open3d`` otherwise."""
    if backend == "auto":
        backend = "mjwarp" if torch.device(device).type == "cuda" else "open3d"
    if backend == "open3d":
        from chronotope.envs.render.open3d_backend import Open3DRenderer as cls
    elif backend == "mjwarp":
        from chronotope.envs.render.mjwarp_backend import MJWarpRenderer as cls
    elif backend == "mujoco":
        from chronotope.envs.render.mujoco_gl import MujocoGLRenderer as cls
    else:
        raise ValueError(f"unknown renderer backend {backend!r}; valid: 'auto', {', '.join(map(repr, BACKENDS))}")
    return cls(meshes, intrinsics, max_depth=max_depth, device=device, **kwargs)
