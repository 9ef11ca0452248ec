"""Subprocess smoke runs of the recall experiment and the memory benchmark, plus the task generator."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from chronotope.scripts.experiments.memory_recall import Config, input_size, make_batch


def test_recall_batches_encode_the_task():
    cfg = Config(n_pairs=3, n_keys=5, n_values=4, n_distractors=2)
    x, target = make_batch(cfg, delay=6, batch=50, gen=torch.Generator().manual_seed(0))
    assert x.shape == (50, 3 + 6 + 1, input_size(cfg)) and target.shape == (50,)
    nk, nv = cfg.n_keys, cfg.n_values
    for b in range(50):
        keys = x[b, :3, :nk].argmax(-1)
        assert len(set(keys.tolist())) == 3  # distinct keys per sequence
        q = x[b, -1, :nk].argmax()
        i = (keys == q).nonzero().item()
        assert x[b, i, nk : nk + nv].argmax() == target[b]  # target is the value paired with the queried key
        assert not x[b, 3:-1, : nk + nv].any()  # distractors show neither keys nor values
    assert (x.sum(-1)[:, :3] == 3).all() and (x.sum(-1)[:, 3:] == 2).all()


def test_recall_experiment_smoke(tmp_path):
    out = tmp_path / "recall.json"
    cmd = [
        sys.executable,
        "-m",
        "chronotope.scripts.experiments.memory_recall",
        "--memories",
        "lstm",
        "hcam",
        "--delays",
        "2",
        "--iters",
        "3",
        "--batch-size",
        "4",
        "--eval-size",
        "16",
        "--out",
        str(out),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    data = json.loads(out.read_text())
    assert "Recall accuracy vs delay L" in data["markdown"]  # stdout is rich-wrapped
    for name in ("lstm", "hcam"):
        acc = data["results"][name]["2"]["accuracy"]
        assert 0.0 <= acc <= 1.0


def test_memory_bench_smoke(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "chronotope.scripts.bench.memory",
        "--quick",
        "--lengths",
        "50",
        "200",
        "--memories",
        "hcam",
        "lstm",
        "full_attention",
        "nosuch",
        "--width",
        "16",
        "--input-size",
        "8",
        "--out-dir",
        str(tmp_path),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "HCAM per-step time / full attention at T=200" in (tmp_path / "memory.md").read_text()
    data = json.loads((tmp_path / "memory.json").read_text())
    full = data["results"]["full_attention"]
    assert full["200"]["state_bytes"] == 4 * full["50"]["state_bytes"]  # grows with T
    assert data["results"]["hcam"]["200"]["state_bytes"] == data["results"]["hcam"]["50"]["state_bytes"]
    assert data["skipped"] == ["nosuch"]
