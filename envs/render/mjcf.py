"""A :class:`SceneMesh` (or a pool of them) as a MuJoCo model, for the two MuJoCo renderer backends.

Triangles are grouped by (instance id, colour); each group becomes one visual-only mesh geom (no collisions)
named ``s<scene>/i<instance>/g<k>``, so that MuJoCo's segmentation (geom ids) maps back to instance ids
through :func:`geom_instance_table`. Mesh geoms render MuJoCo's stored triangles (``mesh_face``), not the
convex hull MuJoCo builds for collisions, so non-convex groups (an L-shaped sofa, a wall with a door) render
as authored. Lighting reproduces :mod:`chronotope.envs.render.shading`: no headlight, two directional lights
``+l`` and ``-l`` (their diffuse terms sum to ``diffuse * |n . l|``) each with half the ambient term, no
specular, no shadows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from chronotope.envs.render.camera import CameraIntrinsics
from chronotope.envs.render.shading import Lighting
from chronotope.envs.scene.mesh import SceneMesh

if TYPE_CHECKING:
    import mujoco

CAMERA_NAME = "render_cam"
_GEOM_NAME = re.compile(r"^s(\d+)/i(\d+)/g\d+$")


def mesh_to_mjspec(
    mesh: SceneMesh,
    intrinsics: CameraIntrinsics | None = None,
    lighting: Lighting | None = None,
    zfar: float = 50.0,
    double_sided: bool = False,
) -> tuple[mujoco.MjSpec, np.ndarray]:
    """One scene as an ``MjSpec``; see :func:`pool_to_mjspec`."""
    return pool_to_mjspec([mesh], np.zeros((1, 3)), intrinsics, lighting, zfar, double_sided)


def pool_to_mjspec(
    meshes: Sequence[SceneMesh],
    offsets: np.ndarray,
    intrinsics: CameraIntrinsics | None = None,
    lighting: Lighting | None = None,
    zfar: float = 50.0,
    double_sided: bool = False,
) -> tuple[mujoco.MjSpec, np.ndarray]:
    """A pool of scenes, each translated by its offset, as one ``MjSpec``.

    Args:
        meshes: the K scenes.
        offsets: float [K, 3] world translation of each scene (see :func:`pool.pool_offsets`).
        intrinsics: when given, a world camera named ``render_cam`` with this resolution and vertical field of
            view is added (the MuJoCo backends move it per render).
        lighting: the light to reproduce (default :class:`Lighting`).
        zfar: far clipping distance in metres (MuJoCo stores it relative to the model extent; set here).
        double_sided: add every triangle a second time with the opposite winding. MuJoCo's OpenGL renderer
            culls back faces, so a triangle wound away from the camera would vanish; scene meshes carry no
            winding guarantee. MuJoCo Warp needs no copy (its culling can be switched off).

    Returns:
        (spec, geom_instance int32 [G]): the instance id of each scene geom, in the order added; all are
        children of the world body, so after compiling, geom ``g`` of this list is model geom ``g`` unless
        the caller adds geoms before them. :func:`geom_instance_table` recovers the mapping from names.
    """
    import mujoco

    lighting = lighting or Lighting()
    offsets = np.asarray(offsets, dtype=np.float64).reshape(len(meshes), 3)
    spec = mujoco.MjSpec()
    spec.modelname = "chronotope_scene"
    # Static visual geometry only: no contacts, and no inertia needed from the meshes.
    spec.compiler.inertiafromgeom = mujoco.mjtInertiaFromGeom.mjINERTIAFROMGEOM_FALSE
    geom_instance: list[int] = []
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for s, (mesh, off) in enumerate(zip(meshes, offsets, strict=True)):
        if mesh.num_faces == 0:
            continue
        verts = mesh.vertices.astype(np.float64) + off
        lo, hi = np.minimum(lo, verts.min(0)), np.maximum(hi, verts.max(0))
        # Group triangles by (instance, colour): one geom per group, one colour per geom.
        keys = np.concatenate([mesh.face_instance[:, None].astype(np.int64), mesh.face_color.astype(np.int64)], 1)
        uniq, group = np.unique(keys, axis=0, return_inverse=True)
        group = group.reshape(-1)
        # Zero-area triangles are never hit by a ray but can make MuJoCo's mesh processing fail.
        area2 = _double_areas(verts, mesh.faces)  # [F]
        for k, key in enumerate(uniq):
            faces = mesh.faces[(group == k) & (area2 > 1e-12)]
            if faces.shape[0] == 0:
                continue
            if double_sided:
                faces = np.concatenate([faces, faces[:, ::-1]])
            used, local = np.unique(faces, return_inverse=True)
            vert = verts[used]
            if vert.shape[0] < 4:  # MuJoCo wants >= 4 vertices; an unreferenced copy changes nothing drawn
                vert = np.concatenate([vert, np.repeat(vert[:1], 4 - vert.shape[0], axis=0)])
            name = f"s{s}/i{int(key[0])}/g{k}"
            m = spec.add_mesh()
            m.name = name
            m.uservert = vert.ravel().tolist()
            m.userface = local.reshape(-1).astype(np.int32).tolist()
            # Shell inertia: thin or open groups (a single wall face) have no volume, which MuJoCo rejects.
            m.inertia = mujoco.mjtMeshInertia.mjMESH_INERTIA_SHELL
            g = spec.worldbody.add_geom()
            g.name = name
            g.type = mujoco.mjtGeom.mjGEOM_MESH
            g.meshname = name
            g.contype = 0
            g.conaffinity = 0
            g.group = 0
            g.rgba = [*(key[1:4] / 255.0), 1.0]
            geom_instance.append(int(key[0]))
    if not np.isfinite(lo).all():
        lo, hi = np.zeros(3), np.ones(3)
    extent = float(max(np.max(hi - lo), 1.0))
    spec.stat.extent = extent
    spec.stat.center = ((lo + hi) / 2).tolist()
    # MuJoCo scales znear/zfar by the extent; a small znear keeps GL depth exact near the camera.
    spec.visual.map.znear = 0.01 / extent
    spec.visual.map.zfar = zfar / extent
    spec.visual.headlight.active = 0
    spec.visual.headlight.ambient = [0.0, 0.0, 0.0]
    spec.visual.headlight.diffuse = [0.0, 0.0, 0.0]
    spec.visual.headlight.specular = [0.0, 0.0, 0.0]
    d = lighting.unit_direction()
    for sign in (1.0, -1.0):
        light = spec.worldbody.add_light()
        light.type = mujoco.mjtLightType.mjLIGHT_DIRECTIONAL
        light.dir = (-sign * d).tolist()  # MuJoCo's dir is where the light travels: away from the light
        light.pos = ((lo + hi) / 2 + sign * d * extent).tolist()  # irrelevant for a directional light
        light.diffuse = [lighting.diffuse] * 3
        light.ambient = [lighting.ambient / 2.0] * 3
        light.specular = [0.0, 0.0, 0.0]
        light.castshadow = False
    if intrinsics is not None:
        cam = spec.worldbody.add_camera()
        cam.name = CAMERA_NAME
        cam.fovy = intrinsics.vfov_deg
        cam.resolution = [intrinsics.width, intrinsics.height]
    return spec, np.asarray(geom_instance, dtype=np.int32)


def _double_areas(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Twice the area of each triangle, float64 [F]."""
    tri = verts[faces]  # [F, 3, 3]
    return np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)


def geom_instance_table(model: mujoco.MjModel) -> np.ndarray:
    """Instance id per geom from the names written by :func:`pool_to_mjspec`, shifted by one.

    Returns:
        int32 [ngeom + 1]: entry ``g + 1`` is geom ``g``'s instance id (0 for geoms not from a scene mesh),
        entry 0 is 0, so indexing with a segmentation geom id + 1 (MuJoCo's background is -1) gives ids.
    """
    import mujoco

    table = np.zeros(model.ngeom + 1, dtype=np.int32)
    for g in range(model.ngeom):
        match = _GEOM_NAME.match(mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g) or "")
        if match:
            table[g + 1] = int(match.group(2))
    return table


def cv_to_mujoco_cam(cam_to_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position [N, 3] and orientation matrix [N, 3, 3] of MuJoCo cameras for OpenCV cam-to-world poses.

    MuJoCo cameras look along their -z axis with +y up; OpenCV cameras look along +z with +y down, so the
    MuJoCo frame is the OpenCV frame with y and z flipped.
    """
    rot = cam_to_world[:, :3, :3] * np.array([1.0, -1.0, -1.0])  # flips columns 1 and 2
    return cam_to_world[:, :3, 3].copy(), rot
