"""The benchmark suite's smoke run (every module at its smallest size) and its bookkeeping."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from chronotope.scripts.bench import peers, suite


def test_tiny_suite_runs_every_module_and_writes_the_page(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nav writes runs/bench relative to the working directory
    page = tmp_path / "docs" / "BENCHMARKS.md"
    modules = suite.available_modules()
    rec = suite.run(suite.Config(modules=modules, tiny=True, peers=True, install_peers=False, out=str(page)))

    assert list(rec["modules"]) == [*modules, "peers"]
    failed = {n: e["error"] for n, e in rec["modules"].items() if not e["ok"]}
    assert not failed, failed
    for name, entry in rec["modules"].items():
        assert entry["results"]["name"] == name  # read back from the module's own fresh JSON
        assert entry["markdown"].startswith("### "), name
        assert entry["seconds"] > 0
    on_disk = json.loads((tmp_path / "runs/bench/suite.json").read_text())
    assert set(on_disk["modules"]) == set(rec["modules"])
    assert on_disk["machine"]["cores"] == os.cpu_count()

    # The peer venv does not exist under tmp_path and may not be installed: the exact reason is in the table and
    # our side is still measured.
    p = rec["modules"]["peers"]["results"]
    assert "no peer venv" in p["peers"]["memory-maze"]["error"]
    assert p["ours"]["env_id"] == "chronotope/TargetSequence-v0" or p["ours"]["note"]
    assert all(r["steps_per_s"] > 0 for r in p["ours"]["rows"])
    assert "ERROR: no peer venv" in rec["modules"]["peers"]["markdown"]

    # The tiny sizes measure none of the headline configurations: every target says so instead of guessing.
    assert [t["id"] for t in rec["targets"]] == [t["id"] for t in suite.TARGETS]
    assert all(t["value"] is None and t["met"] is None for t in rec["targets"] if t["id"] != "ppo_vs_sb3")

    text = page.read_text()
    for name in rec["modules"]:
        assert f"## {name}\n" in text
        assert f"Command: `chronotope bench {name}`" in text
    assert "not measured here" in text and "Habitat-Sim" in text and "ManiSkill3" in text
    assert "FAILED" not in text

    # The page can be re-rendered from suite.json alone, identically.
    again = tmp_path / "again.md"
    suite.run(suite.Config(page_only=True, out=str(again)))
    assert again.read_text() == text


def test_a_failing_module_is_recorded_and_the_rest_still_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(suite.TINY_OVERRIDES, "splat", {"counts": (-5,), "resolutions": (8,), "repeat": 1})
    rec = suite.run(suite.Config(modules=("splat", "memory"), tiny=True, out=str(tmp_path / "B.md")))
    assert not rec["modules"]["splat"]["ok"] and rec["modules"]["splat"]["error"]
    assert "markdown" not in rec["modules"]["splat"]  # no stale or partial table shown for it
    assert rec["modules"]["memory"]["ok"]
    assert "FAILED: " in (tmp_path / "B.md").read_text()


def test_targets_are_checked_in_their_direction():
    modules = {
        "maps": {"results": {"speedup_vs_open3d_1e6": 12.0}},
        "memory": {"results": {"headline": {"hcam_over_full": 0.2, "hcam_over_full_at_T": 10_000}}},
        "train": {"results": {"cases": {"ours-none": {"ratio": 0.97}}}},
        "pixel_train": {"results": {"by_num_envs": {"16": {"fused-small": {"ratio": 2.4}}, "64": {}}}},
        "nav": {"results": {"rows": [{"resolution": 64, "num_envs": 64, "native_open3d": 80.0, "raw_cast": 100.0}]}},
    }
    got = {t["id"]: (t["value"], t["met"]) for t in suite.check_targets(modules)}
    assert got["octree_vs_open3d"] == (12.0, True)
    assert got["hcam_vs_full"] == (0.2, False)  # <= target: 0.2 is too slow
    assert got["ppo_vs_sb3"] == (0.97, False)
    assert got["pixel_ppo_speedup"] == (2.4, True)
    assert got["nav_over_raw"] == (pytest.approx(0.8), True)
    assert got["vs_memory_maze"] == (None, None)  # peers not run
    assert got["vs_miniworld"] == (None, None)
    peers = {"peers": {"results": {"headline": {"ours_over_miniworld_single": 1.8}, "peers": {"miniworld": {}}}}}
    assert {t["id"]: t["met"] for t in suite.check_targets(peers)}["vs_miniworld"] is False  # below 4x


# For each module: a small result in the shape its ``run`` writes, and how some of its numbers must read on the page.
READING_CASES = {
    "render": (
        {
            "records": [
                {"size": 32, "n": 4, "open3d_over_raw": 0.61, "open3d_over_raw_iqr": [0.52, 0.73]},
                {"size": 16, "n": 1, "open3d_over_raw": 0.9, "open3d_over_raw_iqr": [0.8, 0.95]},
            ]
        },
        ["32x32, N=4", "0.61x", "0.52-0.73"],
    ),
    "nav": (
        {"rows": [{"resolution": 48, "num_envs": 8, "native_open3d": 777.0, "raw_cast": 1000.0}]},
        ["48x48", "777", "0.78x"],
    ),
    "memory": (
        {
            "results": {"full_attention": {"100": {"step_ms": 1.25}, "1000": {"step_ms": 9.75}}},
            "headline": {"hcam_over_full": 0.042, "hcam_over_full_at_T": 1000},
        },
        ["0.042x", "T=1,000", "1.25 ms", "9.75 ms"],
    ),
    "maps": (
        {
            "results": [{"points": 5000, "qps": {"point": 8000.0, "point_open3d": 100.0}}],
            "speedup_vs_open3d_1e6": 12.5,
            "ppo": {"ratio": 0.83, "env_ratio": 0.91},
        },
        ["12.5x", "80x", "5,000 points", "0.83", "0.91"],
    ),
    "splat": (
        {"results": [{"gaussians": 2000, "resolution": 24, "render_dense_s": 0.9, "render_tiled_s": 0.1}]},
        ["2,000 Gaussians", "24x24", "9.0x"],
    ),
    "robot": (
        {
            "single_env_steps_per_s": {"a|state": 432.0, "b|state": 654.0, "a|rgbd32": 21.0},
            "batched": {"4": {"env_loop_env_steps_per_s": 300.0, "mujoco_env_steps_per_s": 1200.0}},
            "vector_vs_sync": {
                "a|1": {"ratio": 0.5},
                "a|16": {"ratio": 1.12},
                "b|16": {"ratio": 1.31},
            },
        },
        ["432-654", "21 steps/s", "rgbd32", "N=4", "0.25x", "1.12-1.31x", "SyncVectorEnv of N=16", "2 task(s)"],
    ),
    "train": (
        {
            "cases": {
                "ours-none": {"vs": "sb3-ppo", "ratio": 1.17, "learner_ratio": 1.33, "env_s": 0.3, "learner_s": 0.7},
                "sb3-ppo": {"env_s": 0.3, "learner_s": 0.7},
            }
        },
        ["1.17x sb3-ppo", "1.33x", "30%"],
    ),
    "pixel_train": (
        {
            "by_num_envs": {
                "16": {
                    "nature": {
                        "sps": 52.0,
                        "sim_s": 0.1,
                        "inference_s": 0.3,
                        "learn_s": 0.6,
                        "ratio": 1.0,
                        "inference_ratio": 1.0,
                        "learn_ratio": 1.0,
                    },
                    "fused-small": {
                        "sps": 125.0,
                        "sim_s": 0.1,
                        "inference_s": 0.1,
                        "learn_s": 0.2,
                        "ratio": 2.4,
                        "inference_ratio": 3.0,
                        "learn_ratio": 3.1,
                    },
                }
            },
            "headline": {"fused_small_over_nature": 2.4},
        },
        ["N=16", "52 env steps/s", "10% sim", "fused-small 2.40x", "learn 3.10x", "met (2.40x)"],
    ),
    "peers": (
        {
            "headline": {"ours_n": 32, "ours_over_memory_maze_single": 61.5},
            "peers": {"memory-maze": {"rows": [{"n": 1, "steps_per_s": 18.3}]}},
        },
        ["N=32", "61.5x", "18.3 steps/s"],
    ),
    "dataset": (
        {
            "results": {
                "x|state": {
                    "env_id": "chronotope/ObjectRecall-v0",
                    "mode": "state",
                    "record_steps_per_s": 1234.0,
                    "record_over_collect_time": 1.37,
                    "mb_per_1e5_steps": 56.0,
                }
            }
        },
        ["ObjectRecall-v0 state", "1,234 transitions/s", "1.37x", "56 MB"],
    ),
}


def _known_modules() -> list[str]:
    return [*suite.available_modules(), "peers"]


def test_every_module_gives_a_reading_that_names_the_numbers_it_is_given():
    assert set(_known_modules()) <= set(READING_CASES), "a new benchmark module needs a case in READING_CASES"
    for name in _known_modules():
        reading = suite.module_reading(name)
        assert callable(reading), f"scripts/bench/{name}.py has no reading(result)"
        result, wanted = READING_CASES[name]
        text = reading(result)
        for w in wanted:
            assert w in text, (name, w, text)


def test_the_page_shows_each_module_reading_under_its_heading():
    modules = {
        name: {"ok": True, "error": None, "seconds": 1.0, "command": f"chronotope bench {name}", "markdown": "",
               "results": READING_CASES[name][0]}
        for name in _known_modules()
    }  # fmt: skip
    record = {
        "command": "chronotope bench all", "mode": "quick", "started": "2026-01-01T00:00:00", "total_s": 60.0,
        "machine": {"cpu": "test", "cores": 2}, "load_start": [0.1], "load_end": [0.2], "missing": [],
        "modules": modules, "targets": suite.check_targets(modules),
    }  # fmt: skip
    page = suite.render_page(record)
    sections = page.split("\n## ")
    for name in modules:
        section = next(s for s in sections if s.startswith(f"{name}\n"))
        assert "**Reading.** " in section, name
        assert all(w in section for w in READING_CASES[name][1]), (name, section)
    # A result the reading cannot read is said so, not crashed on.
    modules["splat"]["results"] = {"name": "splat"}
    assert "(no reading: results lack KeyError('results'))" in suite.render_page(record)


def test_bad_names_are_rejected_with_the_value():
    with pytest.raises(ValueError, match="nope"):
        suite.Config(modules=("render", "nope"))
    with pytest.raises(ValueError, match="mazes"):
        peers.Config(peers=("mazes",))


def test_peer_venv_is_reused_when_its_pins_match_and_refused_when_missing(tmp_path):
    spec = peers.PeerSpec(name="fake", requirements=("a==1",))
    with pytest.raises(peers.PeerUnavailable, match="no peer venv"):
        peers.ensure_venv(spec, tmp_path, install=False)
    (tmp_path / "fake/bin").mkdir(parents=True)
    (tmp_path / "fake/bin/python").symlink_to(sys.executable)
    (tmp_path / "fake/chronotope-peer.json").write_text(json.dumps({"requirements": ["a==1"]}))
    assert peers.ensure_venv(spec, tmp_path, install=False) == tmp_path / "fake/bin/python"
    stale = peers.PeerSpec(name="fake", requirements=("a==2",))  # different pins: must not be reused
    with pytest.raises(peers.PeerUnavailable):
        peers.ensure_venv(stale, tmp_path, install=False)


def test_a_worker_that_fails_reports_its_own_error():
    spec = peers.PeerSpec(name="no-such-worker", requirements=())
    with pytest.raises(peers.PeerUnavailable, match="KeyError: 'no-such-worker'"):
        peers.run_worker(spec, Path(sys.executable), [], timeout_s=60)
