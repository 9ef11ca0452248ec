import gymnasium as gym
import numpy as np
import pytest

from chronotope.envs.scene import catalogue as cat
from chronotope.envs.scene.mesh_io import category_from_name, load_mesh_scene
from chronotope.envs.scene.spec import SceneSpec

trimesh = pytest.importorskip("trimesh")


def _user_scene(path):
    """Floor 6 x 4 m, a wall across x = 3 with a 1 m gap, a red chair: exported with node names."""
    sc = trimesh.Scene()
    parts = {
        "floor": ((6, 4, 0.02), (3, 2, -0.01), None),
        "wall_a": ((0.1, 1.5, 2.5), (3, 0.75, 1.25), None),
        "wall_b": ((0.1, 1.5, 2.5), (3, 3.25, 1.25), None),
        "chair.001": ((0.5, 0.5, 0.9), (1, 1, 0.45), [200, 40, 40, 255]),
    }
    for name, (ext, pos, color) in parts.items():
        box = trimesh.creation.box(ext)
        box.apply_translation(pos)
        if color is not None:
            box.visual.face_colors = color
        sc.add_geometry(box, node_name=name, geom_name=name)
    sc.export(path)


def test_user_mesh_becomes_a_scene(tmp_path):
    _user_scene(tmp_path / "flat.glb")
    spec = load_mesh_scene(tmp_path / "flat.glb", up_axis="z")
    by_name = {p.name: p for p in spec.parts}
    assert by_name["chair.001"].category_id == cat.CATEGORY_BY_NAME["chair"].id
    assert by_name["chair.001"].color == (200, 40, 40)
    assert by_name["floor"].category_id == cat.FLOOR and not by_name["floor"].obstacle
    assert by_name["wall_a"].category_id == cat.WALL
    grid = spec.navgrid()
    ok = grid.is_navigable(np.array([[1.0, 1.0], [3.0, 2.0], [3.0, 0.5], [5.0, 2.0], [1.0, 3.0]]))
    assert ok.tolist() == [False, True, False, True, True]  # chair and wall block, the gap does not
    assert SceneSpec.from_json(spec.to_json()) == spec
    # the mesh's semantics survive rendering
    mesh = spec.to_mesh()
    assert set(np.unique(mesh.face_instance)) == {p.instance_id for p in spec.parts}


def test_user_scene_in_the_nav_env(tmp_path):
    _user_scene(tmp_path / "flat.glb")
    path = tmp_path / "flat.json"
    load_mesh_scene(tmp_path / "flat.glb", up_axis="z").to_json(path)
    env = gym.make("chronotope/PointNav-v0", scene_files=[str(path)], semantic=True, resolution=(32, 32))
    obs, info = env.reset(seed=0)
    assert np.isfinite(info["distance_to_goal"])
    assert set(np.unique(obs["semantic"])) <= {0, 4, 5, 6, 7}


def test_names_and_bad_files(tmp_path):
    assert category_from_name("Sofa_big", 0) == cat.CATEGORY_BY_NAME["sofa"].id
    assert category_from_name("armchair.002", 0) == cat.CATEGORY_BY_NAME["armchair"].id
    assert category_from_name("mystery", 99) == 99
    bad = tmp_path / "broken.glb"
    bad.write_bytes(b"not a mesh at all")
    with pytest.raises(ValueError, match="broken.glb"):
        load_mesh_scene(bad)
    with pytest.raises(ValueError, match="up_axis"):
        load_mesh_scene(bad, up_axis="x")
