"""Open3D views of an episode: scene mesh, path, poses, markers, octree voxels, topology graph, splat memory.

Every layer is a list of legacy Open3D geometries. :func:`render_png` draws them headless with
``o3d.visualization.Visualizer(visible=False)`` (Open3D falls back to EGL offscreen rendering through Mesa when
there is no X server, so no system package beyond Mesa's libEGL is needed); :func:`show` opens a window.

Colours are flat (lighting off): the scene's shading is baked into its vertex colours, so every other layer keeps
its exact colour in the picture — which is what lets the tests find the path and the goal by colour.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chronotope.envs.render.quiet import OPEN3D_HEADLESS_NOISE, drop_native_lines

LAYERS = ("scene", "path", "poses", "goal", "octree", "graph", "splats")
DEFAULT_LAYERS = ("scene", "path", "poses", "goal")
PATH_CMAP = "plasma"
GOAL_COLOR = (0.9, 0.0, 0.1)
START_COLOR = (0.0, 0.75, 0.25)
POSE_COLOR = (0.12, 0.12, 0.12)
GRAPH_NODE_COLOR = (1.0, 0.55, 0.0)
LIGHT_DIR = np.array([0.35, 0.55, 1.0]) / np.linalg.norm([0.35, 0.55, 1.0])
CAMERA_HEIGHT = 1.25  # the agents' head camera (AgentConfig.camera_height)


@dataclass(frozen=True)
class ViewCamera:
    """A pinhole camera in Open3D's legacy convention (OpenCV axes; pixel centres at integer coordinates).

    Attributes:
        width: image width (px).
        height: image height (px).
        focal: focal length (px), square pixels.
        cam_to_world: float64 [4, 4], OpenCV axes (x right, y down, z forward).
    """

    width: int
    height: int
    focal: float
    cam_to_world: np.ndarray

    def intrinsic_matrix(self) -> np.ndarray:
        # Open3D's legacy renderer forces the principal point to (W - 1) / 2, (H - 1) / 2.
        return np.array(
            [[self.focal, 0, (self.width - 1) / 2], [0, self.focal, (self.height - 1) / 2], [0, 0, 1]], np.float64
        )

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (column u, row v) float64 [N, 2] and depths [N] of world points [N, 3]."""
        p = np.asarray(points, np.float64).reshape(-1, 3)
        w2c = np.linalg.inv(self.cam_to_world)
        pc = p @ w2c[:3, :3].T + w2c[:3, 3]
        uv = pc @ self.intrinsic_matrix().T
        return uv[:, :2] / uv[:, 2:3], pc[:, 2]


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray | None = None) -> np.ndarray:
    """Cam-to-world [4, 4] (OpenCV axes) of a camera at ``eye`` looking at ``target`` (``up`` default +z)."""
    up = np.array([0.0, 0.0, 1.0]) if up is None else np.asarray(up, np.float64)
    eye, target = np.asarray(eye, np.float64), np.asarray(target, np.float64)
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-8:  # looking straight along ``up``: image up is world +y
        x = np.array([1.0, 0.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    out = np.eye(4)
    out[:3, 0], out[:3, 1], out[:3, 2], out[:3, 3] = x, y, z, eye
    return out


def camera_preset(
    name: str, lo: np.ndarray, hi: np.ndarray, width: int = 960, height: int = 720, hfov_deg: float = 45.0
) -> ViewCamera:
    """``top`` (straight down, image up = +y) or ``three-quarter`` (from the south-west, 50 deg up) framing the box.

    Args:
        lo: [3] lower corner of what must be in view.
        hi: [3] upper corner.
    """
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    focal = (width / 2) / math.tan(math.radians(hfov_deg) / 2)
    centre = (lo + hi) / 2
    if name == "top":
        half = (hi - lo) / 2 * 1.06
        dist = max(half[0] * focal / (width / 2), half[1] * focal / (height / 2))
        eye = np.array([centre[0], centre[1], hi[2] + dist])
        c2w = look_at(eye, np.array([centre[0], centre[1], lo[2]]), up=np.array([0.0, 1.0, 0.0]))
        # look_at with up = +y gives image up = +y: x right = +x, y down = -y.
        return ViewCamera(width, height, focal, c2w)
    if name in ("three-quarter", "three_quarter", "3/4"):
        radius = float(np.linalg.norm(hi - lo) / 2)
        half_fov = math.atan(min(width, height) / 2 / focal)
        dist = radius / math.sin(half_fov) * 0.95
        az, el = math.radians(-120.0), math.radians(50.0)
        direction = np.array([math.cos(az) * math.cos(el), math.sin(az) * math.cos(el), math.sin(el)])
        return ViewCamera(width, height, focal, look_at(centre + dist * direction, centre))
    raise ValueError(f"unknown camera preset {name!r}; valid: 'top', 'three-quarter'")


# ----------------------------------------------------------------------------------------------- layers
def _o3d():
    try:
        import open3d as o3d
    except ImportError as e:  # pragma: no cover - open3d-cpu is a core dependency
        raise ImportError("the 3D viewer needs open3d (pip install open3d-cpu)") from e
    return o3d


def scene_geometry(spec, coloring: str = "rgb", cut_height: float | None = None) -> list:
    """The scene mesh without ceiling, flat-shaded into vertex colours (``rgb`` albedo or ``semantic`` ids).

    ``cut_height`` squashes everything above it down to it (a dollhouse cut, so walls do not hide the path in
    oblique views); exact for the scene's axis-aligned boxes.
    """
    o3d = _o3d()
    if coloring not in ("rgb", "semantic"):
        raise ValueError(f"unknown scene colouring {coloring!r}; valid: 'rgb', 'semantic'")
    mesh = spec.to_mesh(ceiling=False)
    if coloring == "rgb":
        base = mesh.face_color.astype(np.float64) / 255.0
    else:
        from chronotope.envs.render.colorize import instance_palette

        base = instance_palette(int(mesh.face_instance.max()) + 1)[mesh.face_instance].astype(np.float64) / 255.0
    shade = 0.55 + 0.45 * np.abs(mesh.face_normals() @ LIGHT_DIR)  # [F]
    colors = np.repeat(base * shade[:, None], 3, axis=0)  # one vertex per corner: flat shading
    verts = mesh.vertices[mesh.faces].reshape(-1, 3).astype(np.float64)
    if cut_height is not None:
        verts[:, 2] = np.minimum(verts[:, 2], cut_height)
    tri = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(verts), o3d.utility.Vector3iVector(np.arange(len(verts)).reshape(-1, 3))
    )
    tri.vertex_colors = o3d.utility.Vector3dVector(np.clip(colors, 0, 1))
    return [tri]


def time_colors(n: int, cmap: str = PATH_CMAP) -> np.ndarray:
    """float64 [n, 3] colours from the start (t = 0) to the end (t = 1) of a sequence."""
    import matplotlib

    t = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(n)
    return np.asarray(matplotlib.colormaps[cmap](t))[:, :3]


JUMP_COLOR = (0.35, 0.35, 0.35)
"""Colour of the dashes that mark a teleport."""


def dashes(a: np.ndarray, b: np.ndarray, dash: float = 0.15, gap: float = 0.12) -> np.ndarray:
    """float64 [K, 2, D]: the dashes of a dashed line from point ``a`` to ``b`` (lengths in the points' units)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    length = float(np.linalg.norm(b - a))
    if length == 0.0:
        return np.zeros((0, 2, a.shape[0]))
    starts = np.arange(0.0, length, dash + gap)
    ends = np.minimum(starts + dash, length)
    d = (b - a) / length
    return np.stack([a + starts[:, None] * d, a + ends[:, None] * d], 1)


def path_geometry(poses: np.ndarray, z: float = 0.1, cmap: str = PATH_CMAP, max_step: float | None = None) -> list:
    """A LineSet through the poses [T, 3] at height ``z``, segment i coloured ``cmap(i / (T - 2))``.

    Steps longer than ``max_step`` (default :data:`~.trajectory.JUMP_DISTANCE`) are teleports: left out of the
    walked line and drawn as grey dashes (a second LineSet), so a jump never reads as a walk through walls.
    """
    from chronotope.scripts.viz.trajectory import JUMP_DISTANCE, jump_steps

    o3d = _o3d()
    poses = np.asarray(poses, np.float64)
    if len(poses) < 2:
        return []
    pts = np.column_stack([poses[:, 0], poses[:, 1], np.full(len(poses), z)])
    lines = np.column_stack([np.arange(len(pts) - 1), np.arange(1, len(pts))])
    jump = jump_steps(poses, JUMP_DISTANCE if max_step is None else max_step)
    out = []
    if (~jump).any():
        ls = o3d.geometry.LineSet(o3d.utility.Vector3dVector(pts), o3d.utility.Vector2iVector(lines[~jump]))
        ls.colors = o3d.utility.Vector3dVector(time_colors(len(lines), cmap)[~jump])
        out.append(ls)
    if jump.any():
        d = np.concatenate([dashes(pts[i], pts[i + 1]) for i in np.flatnonzero(jump)])
        js = o3d.geometry.LineSet(
            o3d.utility.Vector3dVector(d.reshape(-1, 3)),
            o3d.utility.Vector2iVector(np.arange(2 * len(d)).reshape(-1, 2)),
        )
        js.paint_uniform_color(JUMP_COLOR)
        out.append(js)
    return out


def pose_geometry(poses: np.ndarray, every: int = 10, z: float = 0.12, size: float = 0.35) -> list:
    """Small arrows showing the heading at every ``every``-th pose."""
    o3d = _o3d()
    out = []
    for x, y, yaw in np.asarray(poses, np.float64)[::every]:
        arrow = o3d.geometry.TriangleMesh.create_arrow(
            cylinder_radius=0.03 * size / 0.35,
            cone_radius=0.07 * size / 0.35,
            cylinder_height=0.6 * size,
            cone_height=0.4 * size,
        )
        # the arrow points along +z; turn it to +x, then to the heading
        ry = np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]], np.float64)
        c, s = math.cos(yaw), math.sin(yaw)
        rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        arrow.rotate(rz @ ry, center=(0, 0, 0))
        arrow.translate((x, y, z))
        arrow.paint_uniform_color(POSE_COLOR)
        out.append(arrow)
    return out


def marker_geometry(start: np.ndarray | None, goal: np.ndarray | None, targets: np.ndarray | None = None) -> list:
    """Start (green sphere), goal (red post with a disc on top) and extra targets (red spheres)."""
    o3d = _o3d()
    out = []
    if start is not None:
        s = o3d.geometry.TriangleMesh.create_sphere(radius=0.18, resolution=12)
        s.translate((float(start[0]), float(start[1]), 0.2))
        s.paint_uniform_color(START_COLOR)
        out.append(s)
    if goal is not None:
        post = o3d.geometry.TriangleMesh.create_cylinder(radius=0.22, height=0.6, resolution=24)
        post.translate((float(goal[0]), float(goal[1]), 0.3))
        post.paint_uniform_color(GOAL_COLOR)
        out.append(post)
    for t in [] if targets is None else np.asarray(targets, np.float64).reshape(-1, 2):
        s = o3d.geometry.TriangleMesh.create_sphere(radius=0.15, resolution=10)
        s.translate((float(t[0]), float(t[1]), 0.5))
        s.paint_uniform_color(GOAL_COLOR)
        out.append(s)
    return out


def octree_geometry(octree, levels_up: int = 0, cmap: str = "viridis") -> list:
    """The octree's occupied leaves (coarsened ``levels_up`` levels) as a VoxelGrid coloured by height."""
    o3d = _o3d()
    import matplotlib

    if len(octree) == 0:
        return []
    keys, _ = octree.level_keys(levels_up) if levels_up else (octree.keys, None)
    centres = octree.level_centers(keys, levels_up) if levels_up else octree.centers(keys)
    size = octree.voxel_size * (1 << levels_up)
    z = centres[:, 2]
    t = (z - z.min()) / max(float(np.ptp(z)), 1e-9)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(centres))
    pcd.colors = o3d.utility.Vector3dVector(np.asarray(matplotlib.colormaps[cmap](t))[:, :3])
    lo = centres.min(0) - size
    hi = centres.max(0) + size
    return [o3d.geometry.VoxelGrid.create_from_point_cloud_within_bounds(pcd, size * 0.999, lo, hi)]


def graph_geometry(graph, z: float = 0.3, cmap: str = "cool") -> list:
    """A ``TopologyGraph``: nodes as orange spheres at its positions, edges coloured by weight (cheap -> dear)."""
    o3d = _o3d()
    import matplotlib

    pos = np.asarray(graph.positions, np.float64).copy()
    if len(pos) == 0:
        return []
    pos[:, 2] = z
    out = []
    for p in pos:
        s = o3d.geometry.TriangleMesh.create_sphere(radius=0.1, resolution=8)
        s.translate(p)
        s.paint_uniform_color(GRAPH_NODE_COLOR)
        out.append(s)
    edges = [(u, v, d["weight"]) for u, v, d in graph.graph.edges(data=True)]
    if edges:
        e = np.asarray([(u, v) for u, v, _ in edges], np.int32)
        w = np.asarray([x for _, _, x in edges], np.float64)
        t = (w - w.min()) / max(float(np.ptp(w)), 1e-9)
        ls = o3d.geometry.LineSet(o3d.utility.Vector3dVector(pos), o3d.utility.Vector2iVector(e))
        ls.colors = o3d.utility.Vector3dVector(np.asarray(matplotlib.colormaps[cmap](t))[:, :3])
        out.append(ls)
    return out


def splat_geometry(means: np.ndarray, colors: np.ndarray) -> list:
    """Gaussian means [N, 3] as points with their colours [N, 3] in [0, 1]."""
    o3d = _o3d()
    means = np.asarray(means, np.float64).reshape(-1, 3)
    if len(means) == 0:
        return []
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(means))
    pcd.colors = o3d.utility.Vector3dVector(np.clip(np.asarray(colors, np.float64).reshape(-1, 3), 0, 1))
    return [pcd]


# ------------------------------------------------------------------------------- maps built from an episode
def episode_views(ep, scene, every: int = 1, size: int = 64, hfov: float = 90.0, max_depth: float = 10.0) -> dict:
    """RGB uint8 [K, H, W, 3], depth float32 [K, H, W], semantic int32 [K, H, W], camera poses [K, 4, 4] along the
    path: the recorded frames when the file has them, otherwise rendered again from the poses (Open3D backend)."""
    idx = np.arange(0, len(ep.poses), max(1, every))
    if "depth" in ep.frames and "camera_pose" in ep.frames:
        out = {k: np.asarray(v)[idx] for k, v in ep.frames.items()}
        out["depth"] = out["depth"].astype(np.float32)
        return {**out, "hfov": ep.hfov or hfov, "max_depth": ep.max_depth or max_depth}
    from chronotope.envs.render.base import make_renderer
    from chronotope.envs.render.camera import CameraIntrinsics, camera_poses

    intr = CameraIntrinsics(size, size, hfov)
    poses = ep.poses[idx]
    cams = camera_poses(np.column_stack([poses[:, :2], np.full(len(poses), CAMERA_HEIGHT)]), poses[:, 2])
    r = make_renderer("open3d", [scene.to_mesh()], intr, max_depth=max_depth)
    try:
        o = r.render(cams, np.zeros(len(cams), np.int64))
        return {
            "rgb": o.rgb.cpu().numpy(),
            "depth": o.depth.cpu().numpy(),
            "semantic": o.semantic.cpu().numpy(),
            "camera_pose": cams,
            "hfov": hfov,
            "max_depth": max_depth,
        }
    finally:
        r.close()


def octree_from_episode(ep, scene, every: int = 2, voxel: float = 0.1, floor_clearance: float = 0.05):
    """A ``SparseOctree`` of the surfaces seen along the episode (recorded or re-rendered depth, back-projected).

    Points on the ceiling and within ``floor_clearance`` of the floor are left out (as in the viewer's mesh).
    """
    from chronotope.envs.render.camera import CameraIntrinsics
    from chronotope.maps.geometry import backproject_depth
    from chronotope.maps.octree import OctreeConfig, SparseOctree

    views = episode_views(ep, scene, every=every)
    lo, hi = scene.bounds
    size = float(max(hi - lo) + 2.0)
    depth = max(1, math.ceil(math.log2(size / voxel)))
    tree = SparseOctree(OctreeConfig(origin=(lo[0] - 1.0, lo[1] - 1.0, -0.5), size=size, depth=depth))
    d = views["depth"]
    intr = CameraIntrinsics(d.shape[1], d.shape[2], float(views["hfov"]))
    for k in range(len(d)):
        pts, _ = backproject_depth(d[k], intr, views["camera_pose"][k], float(views["max_depth"]))
        # the viewer removes the ceiling, and the floor would hide everything else seen from above
        keep = (pts[:, 2] > floor_clearance) & (pts[:, 2] < scene.wall_height - 0.05)
        tree.insert(pts[keep])
    return tree


def topology_from_episode(ep, delta: float = 0.75):
    """A ``TopologyGraph`` grown along the path with the position as the place embedding (one node per ~delta m)."""
    from chronotope.maps.topology import TopologyConfig, TopologyGraph

    g = TopologyGraph(2, TopologyConfig(delta=delta))
    for x, y, _ in ep.poses:
        g.update(np.array([x, y]), np.array([x, y, 0.0]))
    return g


def splats_from_episode(
    ep, scene, max_frames: int = 8, size: int = 32, steps_per_keyframe: int = 0, device: str = "cpu"
):
    """A ``GaussianSceneMemory`` built from up to ``max_frames`` RGB-D frames along the episode.

    ``steps_per_keyframe=0`` keeps only the memory's densification (Gaussians seeded on the observed surfaces with
    the observed colours): optimising them costs minutes on a CPU and changes little in a picture.
    """
    import torch

    from chronotope.envs.render.camera import CameraIntrinsics
    from chronotope.memory.gaussian.scene_memory import GaussianSceneMemory, SceneMemoryConfig

    every = max(1, math.ceil(len(ep.poses) / max_frames))
    views = episode_views(ep, scene, every=every, size=size)
    d = views["depth"]
    intr = CameraIntrinsics(d.shape[1], d.shape[2], float(views["hfov"]))
    mcfg = SceneMemoryConfig(steps_per_keyframe=steps_per_keyframe, max_depth=float(views["max_depth"]))
    mem = GaussianSceneMemory(intr, mcfg, device=device)
    with torch.enable_grad():  # add_frame optimises the Gaussians; a caller's no_grad must not stop it
        for k in range(len(d)):
            mem.add_frame(views["rgb"][k], d[k], views["camera_pose"][k])
    return mem


# ------------------------------------------------------------------------------------------------ assembly
def episode_layers(
    ep,
    scene,
    layers: tuple[str, ...] = DEFAULT_LAYERS,
    coloring: str = "rgb",
    pose_every: int = 10,
    graph=None,
    octree=None,
    splats: tuple[np.ndarray, np.ndarray] | None = None,
    cut_height: float | None = None,
) -> dict[str, list]:
    """Geometries per layer for one episode.

    Args:
        ep: an :class:`~chronotope.envs.trajectory.EpisodeTrajectory` (must have poses).
        scene: its ``SceneSpec`` (needed by ``scene``, ``octree`` and ``splats``).
        layers: names from :data:`LAYERS`.
        coloring: scene colouring, ``rgb`` or ``semantic``.
        pose_every: arrow spacing in steps.
        graph / octree: prebuilt maps (default: built from the episode).
        splats: prebuilt (means [N, 3], colours [N, 3]) (default: a Gaussian memory built from the episode).
        cut_height: scene geometry above this height is cut away (None: full height).
    """
    from chronotope.envs.trajectory import check_episode

    check_episode(ep)
    bad = [x for x in layers if x not in LAYERS]
    if bad:
        raise ValueError(f"unknown layer(s) {bad}; valid: {list(LAYERS)}")
    out: dict[str, list] = {}
    for name in layers:
        if name == "scene":
            out[name] = scene_geometry(scene, coloring, cut_height)
        elif name == "path":
            out[name] = path_geometry(ep.poses)
        elif name == "poses":
            out[name] = pose_geometry(ep.poses, every=pose_every)
        elif name == "goal":
            out[name] = marker_geometry(ep.start, ep.goal)
        elif name == "octree":
            out[name] = octree_geometry(octree if octree is not None else octree_from_episode(ep, scene))
        elif name == "graph":
            out[name] = graph_geometry(graph if graph is not None else topology_from_episode(ep))
        elif name == "splats":
            if splats is None:
                g = splats_from_episode(ep, scene).gaussians()
                splats = (g["means"].detach().cpu().numpy(), g["rgb"].detach().cpu().numpy())
            out[name] = splat_geometry(*splats)
    return out


def view_bounds(scene, ep=None) -> tuple[np.ndarray, np.ndarray]:
    """(lo [3], hi [3]) of the floor plan (and path) from the floor to the top of the walls."""
    if scene is not None:
        lo2, hi2 = scene.bounds
        top = float(scene.wall_height)
    else:
        lo2, hi2 = ep.poses[:, :2].min(0) - 1.0, ep.poses[:, :2].max(0) + 1.0
        top = 1.0
    if ep is not None:
        lo2 = np.minimum(lo2, ep.poses[:, :2].min(0) - 0.3)
        hi2 = np.maximum(hi2, ep.poses[:, :2].max(0) + 0.3)
    return np.array([lo2[0], lo2[1], 0.0]), np.array([hi2[0], hi2[1], top])


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _configure(vis, camera: ViewCamera, line_width: float, point_size: float, background) -> None:
    o3d = _o3d()
    opt = vis.get_render_option()
    opt.light_on = False  # colours are baked; lighting would change the path's colour
    opt.line_width = float(line_width)
    opt.point_size = float(point_size)
    opt.background_color = np.asarray(background, np.float64)
    opt.mesh_show_back_face = True
    ctr = vis.get_view_control()
    # fixed clip planes: Open3D otherwise derives them from the bounding box (NaN for flat geometry)
    ctr.set_constant_z_near(0.05)
    ctr.set_constant_z_far(1000.0)
    params = o3d.camera.PinholeCameraParameters()
    params.intrinsic = o3d.camera.PinholeCameraIntrinsic(camera.width, camera.height, camera.intrinsic_matrix())
    params.extrinsic = np.linalg.inv(camera.cam_to_world)
    if not ctr.convert_from_pinhole_camera_parameters(params, allow_arbitrary=True):
        raise RuntimeError("Open3D refused the camera parameters")


def render_png(
    geometries: list,
    camera: ViewCamera,
    path: str | Path | None = None,
    line_width: float = 6.0,
    point_size: float = 5.0,
    background=(1.0, 1.0, 1.0),
) -> np.ndarray:
    """Renders headless; returns uint8 [H, W, 3] and writes it to ``path`` (PNG) when given."""
    o3d = _o3d()
    if not geometries:
        raise ValueError("nothing to render: every requested layer is empty")
    vis = o3d.visualization.Visualizer()
    # Headless, GLFW finds no display and Open3D falls back to EGL, printing that path as GLFW / XDG "errors".
    noise = () if has_display() else OPEN3D_HEADLESS_NOISE
    with drop_native_lines(noise):
        created = vis.create_window(visible=False, width=camera.width, height=camera.height)
    if not created:
        raise RuntimeError("Open3D could not create an offscreen window (no EGL / OpenGL available)")
    try:
        for g in geometries:
            vis.add_geometry(g)
        _configure(vis, camera, line_width, point_size, background)
        vis.poll_events()
        vis.update_renderer()
        img = np.asarray(vis.capture_screen_float_buffer(do_render=True))
    finally:
        vis.destroy_window()
    img = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    if path is not None:
        import imageio.v3 as iio

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(Path(path), img)
    return img


def show(geometries: list, camera: ViewCamera, title: str = "chronotope", **kw: Any) -> None:
    """An interactive window (mouse to orbit) starting from ``camera``; needs a display."""
    o3d = _o3d()
    if not has_display():
        raise RuntimeError("no display (DISPLAY / WAYLAND_DISPLAY unset): use render_png or --save")
    vis = o3d.visualization.Visualizer()
    vis.create_window(window_name=title, width=camera.width, height=camera.height, visible=True)
    for g in geometries:
        vis.add_geometry(g)
    _configure(vis, camera, kw.get("line_width", 6.0), kw.get("point_size", 5.0), kw.get("background", (1, 1, 1)))
    vis.run()
    vis.destroy_window()
