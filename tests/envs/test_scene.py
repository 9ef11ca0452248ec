import json

import numpy as np
import pytest
from scipy import ndimage

from chronotope.envs.scene import catalogue as cat
from chronotope.envs.scene.generator import ApartmentConfig, generate_apartment
from chronotope.envs.scene.navgrid import _fill_polygon
from chronotope.envs.scene.spec import SceneSpec

SEEDS = range(200)


def _sat_overlap(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> bool:
    """Separating-axis test for two convex polygons [K, 2]: True if their interiors overlap."""
    for poly in (a, b):
        for k in range(len(poly)):
            e = poly[(k + 1) % len(poly)] - poly[k]
            axis = np.array([-e[1], e[0]])
            pa, pb = a @ axis, b @ axis
            if pa.max() <= pb.min() + eps * np.linalg.norm(axis) or pb.max() <= pa.min() + eps * np.linalg.norm(axis):
                return False
    return True


def _rect(lo, hi):
    return np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])


@pytest.fixture(scope="module")
def apartments():
    return [generate_apartment(s) for s in SEEDS]


def test_generator_is_deterministic():
    for s in (0, 7, 123):
        assert generate_apartment(s).to_json() == generate_apartment(s).to_json()
    assert generate_apartment(1).to_json() != generate_apartment(2).to_json()


def test_room_counts_span_2_to_12():
    for n in (2, 5, 12):
        spec = generate_apartment(11, ApartmentConfig(num_rooms=n))
        assert len(spec.rooms) == n


def test_invariants_over_200_seeds(apartments):
    n_objects = 0
    for spec in apartments:
        grid = spec.navgrid()
        labels, _ = ndimage.label(grid.navigable, structure=np.ones((3, 3)))
        main = grid.largest_component()
        # connectivity: every room has free cells, all in the one main component
        for r in spec.rooms:
            lo = grid.world_to_cell(np.array(r.lo))
            hi = grid.world_to_cell(np.array(r.hi))
            sub = main[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1]
            assert sub.any(), f"{spec.name}: room {r.id} ({r.type}) has no cell in the main free component"
        # no overlaps between objects, nor between objects and walls
        fps = [o.footprint() for o in spec.objects]
        walls = [_rect(lo[:2], hi[:2]) for lo, hi in spec.wall_boxes() if lo[2] < 1.5]
        for i in range(len(fps)):
            for j in range(i + 1, len(fps)):
                assert not _sat_overlap(fps[i], fps[j]), f"{spec.name}: objects {i} and {j} overlap"
            for w in walls:
                assert not _sat_overlap(fps[i], w), f"{spec.name}: object {spec.objects[i].instance_id} in a wall"
        # every object reachable within 1 m of its footprint from the main component
        h, w = grid.shape
        gy, gx = np.meshgrid(
            grid.origin[1] + (np.arange(h) + 0.5) * grid.cell_size,
            grid.origin[0] + (np.arange(w) + 0.5) * grid.cell_size,
            indexing="ij",
        )
        for o in spec.objects:
            fp = np.zeros(grid.shape, bool)
            _fill_polygon(fp, gx, gy, o.footprint())
            dist = ndimage.distance_transform_edt(~fp) * grid.cell_size
            assert (main & (dist <= 1.0)).any(), f"{spec.name}: object {o.instance_id} unreachable"
        # ids: unique, categories known
        ids = [o.instance_id for o in spec.objects]
        assert len(set(ids)) == len(ids) and min(ids, default=4) >= 4
        assert all(o.category_id in cat.CATEGORY_BY_ID for o in spec.objects)
        n_objects += len(spec.objects)
    assert n_objects > 200 * 5  # the apartments are furnished


def test_catalogue_has_15_plus_categories():
    assert len(cat.CATEGORIES) >= 15
    assert len({c.name for c in cat.CATEGORIES}) == len(cat.CATEGORIES)


def test_json_round_trip(tmp_path):
    spec = generate_apartment(5)
    again = SceneSpec.from_json(spec.to_json())
    assert again == spec
    path = tmp_path / "scene.json.gz"
    spec.to_json(path)
    assert SceneSpec.from_json(path) == spec
    assert np.array_equal(again.to_mesh().vertices, spec.to_mesh().vertices)


def test_corrupt_scene_files_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read scene"):
        SceneSpec.from_json(bad)
    d = json.loads(generate_apartment(0).to_json())
    del d["rooms"]
    with pytest.raises(ValueError, match="corrupt scene"):
        SceneSpec.from_dict(d)
    d = json.loads(generate_apartment(0).to_json())
    d["objects"][0]["category_id"] = 999
    with pytest.raises(ValueError, match="unknown category id 999"):
        SceneSpec.from_dict(d)
    with pytest.raises(ValueError, match="not a chronotope scene"):
        SceneSpec.from_dict({"rooms": []})


def test_impossible_configs_are_named():
    with pytest.raises(ValueError, match=r"\(4.0, 4.0\)"):
        generate_apartment(0, ApartmentConfig(num_rooms=6, size=(4.0, 4.0)))
    with pytest.raises(ValueError, match="num_rooms"):
        generate_apartment(0, ApartmentConfig(num_rooms=0))
    with pytest.raises(ValueError, match="seed"):
        generate_apartment(-1)


def test_mesh_export_has_semantics():
    spec = generate_apartment(2)
    mesh = spec.to_mesh()
    ids = set(np.unique(mesh.face_instance).tolist())
    assert {1, 2, 3} <= ids
    assert {o.instance_id for o in spec.objects} <= ids
    lo, hi = mesh.bounds
    slo, shi = spec.bounds
    assert np.allclose(lo[:2], slo, atol=1e-5) and np.allclose(hi[:2], shi, atol=1e-5)
    assert hi[2] == pytest.approx(spec.wall_height)
    table = spec.instance_category_table()
    assert table[1] == cat.FLOOR and table[3] == cat.WALL
    assert all(table[o.instance_id] == o.category_id for o in spec.objects)


def test_mjspec_export_compiles():
    mujoco = pytest.importorskip("mujoco")
    spec = generate_apartment(2)
    out = spec.to_mjspec()
    mjspec = out[0] if isinstance(out, tuple) else out
    model = mjspec.compile()
    assert isinstance(model, mujoco.MjModel) and model.ngeom >= len(spec.objects)
