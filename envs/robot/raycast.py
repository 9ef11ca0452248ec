"""Ray-cast cameras for the arm envs: RGB, z-depth and body segmentation from ``mujoco.mj_multiRay``.

The arm envs' reference renderer is MuJoCo's OpenGL one (``camera_backend="gl"``): three GL passes per camera
(colour, depth, segmentation), in software on a machine without a GPU (EGL on llvmpipe), about 11 ms per 64 x 64
camera here. ``camera_backend="raycast"`` casts one ray per pixel through MuJoCo's own collision-free ray query
instead: one call returns, per pixel, the geom hit, its distance and the surface normal, from which depth and
segmentation are exact (the same geoms MuJoCo draws: geom groups 0-2, as ``mjvOption``'s default, transparent geoms
skipped) and colour is the project's one shading model (:mod:`chronotope.envs.render.shading`: double-sided Lambert
under a fixed directional light, the nav renderers' model) applied to each geom's colour. What it leaves out: shadows,
specular highlights and textures (a textured material reads as its texture's mean colour times the material
colour). ``mj_multiRay`` releases the GIL, so the vector env casts its N worlds' cameras on threads.

Camera model: MuJoCo's, a pinhole with vertical field of view ``cam_fovy`` looking along the camera's -z axis with +y
up; pixel (row r, column c) is the ray through the pixel centre, row 0 at the top, as ``mujoco.Renderer`` returns
images. Depth is planar (distance along the optical axis), as MuJoCo's depth rendering gives.
"""

from __future__ import annotations

import mujoco
import numpy as np

from chronotope.envs.render.shading import Lighting, lambert_intensity

VISIBLE_GROUPS = np.array([1, 1, 1, 0, 0, 0], dtype=np.uint8)
"""Geom groups a ray can hit: ``mjvOption``'s default (groups 0-2 drawn), as the GL renderer draws them."""


def texture_tint(model: mujoco.MjModel) -> np.ndarray:
    """Per material, the mean texel of its RGB texture (ones where untextured), float32 [nmat, 3] in [0, 1]. Textures
    are compiled into the model and no task edits them: computed once per camera, not per render."""
    tint = np.ones((model.nmat, 3), np.float32)
    role = int(mujoco.mjtTextureRole.mjTEXROLE_RGB)
    for k in range(model.nmat):
        tex = int(model.mat_texid[k, role])
        if tex >= 0:
            tint[k] = _texture_mean(model, tex)
    return tint


def geom_albedo(model: mujoco.MjModel, tint: np.ndarray | None = None) -> np.ndarray:
    """Colour of every geom as MuJoCo draws it without lighting, float32 [ngeom, 3] in [0, 1]: the material's colour
    where the geom has a material (times its texture's mean texel when textured: ``tint``, :func:`texture_tint` when
    None), the geom's ``rgba`` otherwise. Read at every render: the tasks recolour the cue panel and go lamp during
    an episode."""
    rgb = model.geom_rgba[:, :3].astype(np.float32).copy()
    mat = model.geom_matid
    has = mat >= 0
    if has.any():
        mat_rgb = model.mat_rgba[:, :3].astype(np.float32) * (texture_tint(model) if tint is None else tint)
        rgb[has] = mat_rgb[mat[has]]
    return rgb


def _texture_mean(model: mujoco.MjModel, tex: int) -> np.ndarray:
    """Mean RGB texel of texture ``tex``, float32 [3] in [0, 1]."""
    n = int(model.tex_height[tex] * model.tex_width[tex])
    nc = int(model.tex_nchannel[tex])
    start = int(model.tex_adr[tex])
    texels = model.tex_data[start : start + n * nc].reshape(n, nc)[:, :3]
    return (texels.mean(0) / 255.0).astype(np.float32)


class RaycastCamera:
    """One named camera of an arm scene, rendered by ray casting.

    Args:
        model: a model of the scene (any world of a vector env: the camera and the geom layout are the same).
        camera: the model camera's name.
        size: square resolution in pixels.
        max_depth: depth clip (m); a pixel whose ray hits nothing or hits beyond it reads ``max_depth``, body 0 and
            the background colour.
        lighting: the shading light (the nav renderers' default).

    Each instance owns its output buffers: one instance per world and camera can render on its own thread.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        camera: str,
        size: int,
        max_depth: float,
        lighting: Lighting | None = None,
    ) -> None:
        self.camera_id = int(model.camera(camera).id)
        self.size = int(size)
        self.max_depth = float(max_depth)
        self.lighting = lighting or Lighting()
        self._tint = texture_tint(model)
        self._background = np.asarray(self.lighting.background, dtype=np.uint8)
        h = w = self.size
        f = 0.5 * h / np.tan(np.deg2rad(float(model.cam_fovy[self.camera_id])) / 2.0)
        col, row = np.meshgrid(np.arange(w) + 0.5 - w / 2.0, np.arange(h) + 0.5 - h / 2.0)
        dirs = np.stack([col / f, -row / f, -np.ones_like(col)], axis=-1).reshape(-1, 3)
        norm = np.linalg.norm(dirs, axis=1, keepdims=True)
        self._dirs_cam = dirs / norm  # unit rays in the camera frame [H*W, 3]
        self._cos = (1.0 / norm[:, 0]).astype(np.float64)  # planar depth = distance along the ray x cos
        # rays longer than this land beyond max_depth at every pixel (the corner rays are the longest)
        self._cutoff = self.max_depth / float(self._cos.min()) + 1e-6
        n = h * w
        self._geom = np.empty(n, np.int32)
        self._dist = np.empty(n, np.float64)
        self._normal = np.empty(3 * n, np.float64)

    def render(self, model: mujoco.MjModel, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """RGB uint8 [H, W, 3], depth float32 [H, W, 1] (m, planar) and body ids int32 [H, W, 1] of the camera in the
        current ``data`` (kinematics up to date, as after ``mj_step`` / ``mj_forward``)."""
        cid, n, s = self.camera_id, self._geom.shape[0], self.size
        rot = data.cam_xmat[cid].reshape(3, 3)
        world = np.ascontiguousarray(self._dirs_cam @ rot.T).reshape(-1)
        mujoco.mj_multiRay(
            model, data, data.cam_xpos[cid].copy(), world, VISIBLE_GROUPS, 1, -1,
            self._geom, self._dist, self._normal, n, self._cutoff,
        )  # fmt: skip
        geom = self._geom
        depth = self._dist * self._cos
        hit = (geom >= 0) & (depth <= self.max_depth)
        g = np.where(hit, geom, 0)
        normal = self._normal.reshape(n, 3)
        shade = lambert_intensity(normal, self.lighting)  # [n]
        albedo = geom_albedo(model, self._tint)[g]  # [n, 3]
        rgb = np.where(hit[:, None], np.clip(np.rint(albedo * shade[:, None] * 255.0), 0, 255), self._background)
        seg = np.where(hit, model.geom_bodyid[g], 0)
        return (
            rgb.astype(np.uint8).reshape(s, s, 3),
            np.where(hit, depth, self.max_depth).astype(np.float32).reshape(s, s, 1),
            seg.astype(np.int32).reshape(s, s, 1),
        )
