"""The peer comparison's bookkeeping for MiniWorld (and Memory Maze beside it) from constructed worker records.

No peer venv is created and nothing is installed: the workers' output is faked, ``_ours`` is replaced by fixed rows.
"""

from __future__ import annotations

import json
import stat

import pytest

from chronotope.scripts.bench import peers

MW_RECORD = {
    "env_id": "MiniWorld-Hallway-v0",
    "env_ids": ["MiniWorld-Hallway-v0", "MiniWorld-ThreeRooms-v0", "MiniWorld-Sign-v0"],
    "errors": {},
    "rows": [
        {"env_id": "MiniWorld-Hallway-v0", "mode": "single env (gym.make)", "n": 1, "steps_per_s": 1250.0},
        {"env_id": "MiniWorld-ThreeRooms-v0", "mode": "single env (gym.make)", "n": 1, "steps_per_s": 780.0},
        {"env_id": "MiniWorld-Sign-v0", "mode": "single env (gym.make)", "n": 1, "steps_per_s": 660.0},
        {"env_id": "MiniWorld-Hallway-v0", "mode": "gymnasium SyncVectorEnv", "n": 8, "steps_per_s": 1100.0},
    ],
    "versions": {"miniworld": "2.1.0", "pyglet": "1.5.31", "gymnasium": "1.4.0", "numpy": "2.4.6"},
    "gl_renderer": "llvmpipe (LLVM 15.0.6, 256 bits)",
}
MM_RECORD = {
    "env_id": "MemoryMaze-9x9-v0",
    "errors": {},
    "rows": [{"mode": "single env (gym.make)", "n": 1, "steps_per_s": 20.0}],
}


def _fake_ours(cfg, semantic=False):
    scale = 0.8 if semantic else 1.0
    rows = [{"mode": "single env (gym.make)", "n": 1, "steps_per_s": 400.0 * scale}]
    rows += [{"mode": "native vector env (make_vec)", "n": n, "steps_per_s": 100.0 * n * scale} for n in cfg.num_envs]
    mode = "rgbd+semantic" if semantic else "rgbd"
    return {"env_id": "chronotope/TargetSequence-v0", "obs_mode": mode, "note": "", "rows": rows}


@pytest.fixture
def fake_peers(monkeypatch):
    """Peers 'installed' and answering with the constructed records above; returns the worker calls made."""
    calls = []
    monkeypatch.setattr(peers, "_ours", _fake_ours)
    monkeypatch.setattr(peers, "ensure_venv", lambda spec, root, install, timeout_s: f"/fake/{spec.name}/python")

    def worker(spec, py, args, timeout_s):
        calls.append((spec.name, args))
        return json.loads(json.dumps({"miniworld": MW_RECORD, "memory-maze": MM_RECORD}[spec.name]))

    monkeypatch.setattr(peers, "run_worker", worker)
    return calls


def test_both_peers_are_measured_by_default():
    assert peers.Config().peers == ("memory-maze", "miniworld")
    assert set(peers.PEERS) >= {"memory-maze", "miniworld"}
    assert peers.PEERS["miniworld"].requirements[0].startswith("miniworld==")
    assert all("==" in r for r in peers.PEERS["miniworld"].requirements)  # exact pins: the venv marker relies on it
    assert "miniworld" in peers.WORKERS


def test_miniworld_worker_gets_our_resolution_and_quick_mode_shrinks_it():
    cfg = peers.Config(resolution=48, miniworld_env_ids=("MiniWorld-Hallway-v0", "MiniWorld-Sign-v0"))
    args = peers._peer_args("miniworld", cfg)
    assert args[args.index("--resolution") + 1] == "48"
    assert args[args.index("--env-ids") + 1] == "MiniWorld-Hallway-v0,MiniWorld-Sign-v0"
    assert args[args.index("--steps") + 1] == str(cfg.miniworld_steps)


def test_miniworld_table_headline_and_reading(fake_peers, tmp_path):
    cfg = peers.Config(out_dir=str(tmp_path), quick=True)
    res = peers.run(cfg)

    args = dict(fake_peers)["miniworld"]
    assert int(args[args.index("--steps") + 1]) <= 100 and int(args[args.index("--vector-n") + 1]) <= 4  # quick
    h = res["headline"]
    assert h["ours_n"] == 64
    assert h["miniworld_env_id"] == "MiniWorld-Hallway-v0"  # the fastest single env is the baseline
    assert h["ours_over_miniworld_single"] == pytest.approx(6400 / 1250)
    assert h["ours_semantic_over_miniworld_single"] == pytest.approx(0.8 * 6400 / 1250)
    assert h["miniworld_met"] is True and h["miniworld_target"] == 4.0
    assert h["ours_over_memory_maze_single"] == pytest.approx(6400 / 20)

    md = (tmp_path / "peers.md").read_text()
    assert "x MiniWorld single (MiniWorld-Hallway-v0)" in md and "x Memory Maze single" in md
    assert "miniworld MiniWorld-ThreeRooms-v0 (rgb)" in md and "gymnasium SyncVectorEnv" in md
    assert "ours chronotope/TargetSequence-v0 (rgbd+semantic)" in md
    assert "5.1x; with semantics 4.1x (target >= 4x: met)" in md
    assert "MiniWorld venv: miniworld==2.1.0" in md and "llvmpipe" in md
    saved = json.loads((tmp_path / "peers.json").read_text())
    assert saved["headline"]["miniworld_env_id"] == "MiniWorld-Hallway-v0"

    text = peers.reading(res)
    wanted = ["1,250 steps/s", "MiniWorld-Hallway-v0", "5.1x", "target >= 4x: met", "4.1x with the semantic"]
    wanted += ["MiniWorld-ThreeRooms-v0 780", "N=8: 1,100 steps/s (0.88x its single env)", "Memory Maze single env"]
    for w in wanted:
        assert w in text, (w, text)


def test_miniworld_target_not_met_is_said(fake_peers, tmp_path, monkeypatch):
    fast = json.loads(json.dumps(MW_RECORD))
    fast["rows"][0]["steps_per_s"] = 2000.0  # 6400 / 2000 = 3.2x < 4x
    monkeypatch.setattr(peers, "run_worker", lambda spec, py, args, timeout_s: fast)
    res = peers.run(peers.Config(out_dir=str(tmp_path), peers=("miniworld",)))
    assert res["headline"]["miniworld_met"] is False
    assert "3.2x" in (tmp_path / "peers.md").read_text() and "(target >= 4x: not met)" in peers.reading(res)
    assert "Memory Maze" not in peers.reading(res)  # only the peers that were run are read


def test_an_unavailable_miniworld_gives_an_error_row_and_the_run_completes(monkeypatch, tmp_path):
    monkeypatch.setattr(peers, "_ours", _fake_ours)
    cfg = peers.Config(out_dir=str(tmp_path), venv_root=str(tmp_path / "venvs"), install=False)
    res = peers.run(cfg)
    for name in ("memory-maze", "miniworld"):
        assert "no peer venv" in res["peers"][name]["error"]
    md = (tmp_path / "peers.md").read_text()
    ids = ",".join(cfg.miniworld_env_ids)
    assert f"| miniworld {ids} (rgb) | ERROR: no peer venv" in md
    assert "MiniWorld: not available (no peer venv" in md
    assert "ours_over_miniworld_single" not in res["headline"]
    assert all(r["steps_per_s"] > 0 for r in res["ours"]["rows"] + res["ours_semantic"]["rows"])
    text = peers.reading(res)
    assert "MiniWorld was not measured: no peer venv" in text and "Memory Maze was not measured" in text


def test_worker_json_is_parsed_and_partial_rows_kept_when_the_worker_dies(tmp_path):
    # A stand-in for the peer venv's python: prints two cumulative JSON lines, then fails.
    first = {**MW_RECORD, "rows": MW_RECORD["rows"][:1]}
    fake = tmp_path / "python"
    fake.write_text(
        "#!/bin/sh\n"
        f"echo '{peers.PEER_JSON_TAG}{json.dumps(first)}'\n"
        "echo 'pyglet noise'\n"
        f"echo '{peers.PEER_JSON_TAG}{json.dumps(MW_RECORD)}'\n"
        "echo 'Traceback (most recent call last):' >&2\n"
        "echo 'pyglet.gl.ContextException: Could not create GL context' >&2\n"
        "exit 1\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    out = peers.run_worker(peers.PEERS["miniworld"], fake, [], timeout_s=30)
    assert [r["env_id"] for r in out["rows"]] == [r["env_id"] for r in MW_RECORD["rows"]]  # the last line wins
    assert "exit 1" in out["errors"]["worker"] and "Could not create GL context" in out["errors"]["worker"]

    silent = tmp_path / "silent"
    silent.write_text("#!/bin/sh\necho 'ImportError: libEGL.so.1: cannot open shared object file' >&2\nexit 1\n")
    silent.chmod(silent.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(peers.PeerUnavailable, match="miniworld worker failed .exit 1.: ImportError: libEGL"):
        peers.run_worker(peers.PEERS["miniworld"], silent, [], timeout_s=30)


def test_workers_load_common_without_chronotope_or_site_packages():
    """The peer venvs have neither Chronotope nor our dependencies: ``common.py`` must load by path with the
    standard library alone (``python -S``: no site-packages) and time a call (a module-level import of Chronotope
    once made every peer row 'not available')."""
    import subprocess
    import sys
    from pathlib import Path

    path = Path(peers.__file__).with_name("common.py")
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('_bench_common', {str(path)!r})\n"
        "mod = importlib.util.module_from_spec(spec); sys.modules[spec.name] = mod; spec.loader.exec_module(mod)\n"
        "assert 'chronotope' not in sys.modules\n"
        "print(mod.timeit(lambda: None, repeat=2).median >= 0)\n"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
