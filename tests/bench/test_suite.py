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
        "nav": {"results": {"rows": [{"resolution": 64, "num_envs": 64, "native_open3d": 80.0, "raw_cast": 100.0}]}},
    }
    got = {t["id"]: (t["value"], t["met"]) for t in suite.check_targets(modules)}
    assert got["octree_vs_open3d"] == (12.0, True)
    assert got["hcam_vs_full"] == (0.2, False)  # <= target: 0.2 is too slow
    assert got["ppo_vs_sb3"] == (0.97, False)
    assert got["nav_over_raw"] == (pytest.approx(0.8), True)
    assert got["vs_memory_maze"] == (None, None)  # peers not run


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
