"""The pixel PPO training benchmark: a tiny quick run's structure, its split of an update, and its reading."""

from __future__ import annotations

import json

import pytest

from chronotope.scripts.bench import pixel_train


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory):
    """One quick run of two cases at N=2 (a few seconds: 16-step rollouts, one epoch, one timed round)."""
    out = tmp_path_factory.mktemp("bench")
    cfg = pixel_train.Config(quick=True, cases=("nature", "fused-small"), num_envs=(2,), out_dir=str(out))
    return pixel_train.run(cfg), out


def test_quick_run_times_every_case_and_splits_each_update(tiny_result):
    result, out = tiny_result
    cfg = result["config"]
    assert (cfg.num_envs, cfg.rollout_len, cfg.epochs, cfg.rounds) == ((2,), 16, 1, 1)  # quick, N as given
    res = result["by_num_envs"]["2"]
    assert list(res) == ["nature", "fused-small"]
    for name, r in res.items():
        assert r["sps"] > 0, name
        assert r["sps"] == pytest.approx(2 * 16 / r["total_s"])
        assert min(r["sim_s"], r["inference_s"], r["learn_s"]) > 0, (name, r)
        assert r["sim_s"] + r["inference_s"] + r["learn_s"] == pytest.approx(r["total_s"], rel=0.1), (name, r)
        assert r["params"] > 0 and r["episodes"] >= 0
    assert res["nature"]["ratio"] == 1.0
    assert res["nature"]["inference_ratio"] == res["nature"]["learn_ratio"] == 1.0
    assert res["fused-small"]["ratio"] == pytest.approx(res["fused-small"]["sps"] / res["nature"]["sps"])
    # the small CNN over the fused images has fewer weights than a Nature CNN per image
    assert res["fused-small"]["params"] < res["nature"]["params"]
    # N=16 was not run: the headline says so instead of guessing
    assert result["headline"]["fused_small_over_nature"] is None

    on_disk = json.loads((out / "pixel_train.json").read_text())
    assert on_disk["name"] == "pixel_train"
    assert set(on_disk["by_num_envs"]["2"]) == {"nature", "fused-small"}
    assert (out / "pixel_train.md").read_text().startswith("### Pixel PPO training throughput")


def test_reading_names_the_measured_numbers(tiny_result):
    result, _ = tiny_result
    text = pixel_train.reading(result)
    res = result["by_num_envs"]["2"]
    assert "At N=2" in text
    assert f"{res['nature']['sps']:,.0f} env steps/s" in text
    assert f"fused-small {res['fused-small']['ratio']:.2f}x" in text
    assert f"learn {res['fused-small']['learn_ratio']:.2f}x" in text
    assert "not measured" in text  # the N=16 target


def test_reading_of_the_target_at_n16():
    r = {"sps": 100.0, "sim_s": 0.2, "inference_s": 0.3, "learn_s": 0.5, "ratio": 1.0, "inference_ratio": 1.0,
         "learn_ratio": 1.0}  # fmt: skip
    fast = {**r, "sps": 250.0, "ratio": 2.5, "inference_ratio": 2.0, "learn_ratio": 3.0}
    result = {"by_num_envs": {"16": {"nature": r, "fused-small": fast}}, "headline": {"fused_small_over_nature": 2.5}}
    text = pixel_train.reading(result)
    for w in [
        "At N=16",
        "100 env steps/s",
        "20% sim",
        "30% inference",
        "50% learn",
        "fused-small 2.50x",
        "met (2.50x)",
    ]:
        assert w in text, (w, text)


def test_bad_settings_are_rejected_with_the_value():
    with pytest.raises(ValueError, match="fused-tiny"):
        pixel_train.run(pixel_train.Config(cases=("nature", "fused-tiny")))
    with pytest.raises(ValueError, match="rounds"):
        pixel_train.run(pixel_train.Config(rounds=0))
