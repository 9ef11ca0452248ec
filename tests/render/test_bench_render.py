"""Smoke run of the renderer benchmark with a tiny budget."""

from __future__ import annotations

import json

from chronotope.scripts.bench.render import Config, run


def test_bench_quick_open3d(tmp_path):
    res = run(Config(quick=True, backends=("open3d",), out_dir=str(tmp_path)))
    assert [(r["size"], r["n"]) for r in res["records"]] == [(64, 1), (64, 4)]
    for r in res["records"]:
        assert r["raw_fps"] > 0 and r["open3d_fps"] > 0
        assert 0 < r["open3d_over_raw"] < 10  # a ratio of two timings of the same rays, not a constant
    saved = json.loads((tmp_path / "render.json").read_text())
    assert saved["name"] == "render" and len(saved["records"]) == 2
    assert (tmp_path / "render.md").read_text().startswith("### Renderer")
