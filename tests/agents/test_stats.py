"""The one 95% CI helper (chronotope.agents.stats) against hand-computed intervals, and its callers use it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chronotope.agents import stats

T_0975_DOF4 = 2.7764451051977987  # Student t table, two-sided 95%, 4 degrees of freedom
T_0975_DOF2 = 4.302652729911275  # (to 1e-10: the value earlier tests used)


def test_summarize_is_the_student_t_interval_of_a_hand_computed_example():
    # 1..5: mean 3, sample variance ((-2)^2 + 1 + 0 + 1 + 4) / 4 = 2.5, std / sqrt(5) = sqrt(0.5)
    s = stats.summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    assert s["n"] == 5 and s["mean"] == 3.0
    assert s["std"] == pytest.approx(math.sqrt(2.5), rel=1e-15)
    assert s["ci95"] == pytest.approx(T_0975_DOF4 * math.sqrt(0.5), rel=1e-12)  # 1.9632...
    assert stats.t_critical(5) == pytest.approx(T_0975_DOF4, rel=1e-12)


def test_summarize_edge_cases():
    empty = stats.summarize([])
    assert empty["n"] == 0 and all(math.isnan(empty[k]) for k in ("mean", "std", "ci95"))
    one = stats.summarize([7.0])
    assert one["n"] == 1 and one["mean"] == 7.0 and one["std"] == 0.0 and math.isnan(one["ci95"])
    # non-finite values propagate unless dropped
    assert math.isnan(stats.summarize([1.0, float("nan"), 3.0])["mean"])
    kept = stats.summarize([1.0, float("nan"), 3.0, float("inf")], finite_only=True)
    assert kept["n"] == 2 and kept["mean"] == 2.0
    assert kept["ci95"] == pytest.approx(stats.t_critical(2) * math.sqrt(2.0) / math.sqrt(2))


def test_halfwidth_of_arrays_matches_scalars():
    std = np.array([0.5, 2.0, 0.0])
    got = stats.ci95_halfwidth(std, 3)
    np.testing.assert_allclose(got, T_0975_DOF2 * std / math.sqrt(3), rtol=1e-9)
    assert np.isnan(stats.ci95_halfwidth(std, 1)).all() and math.isnan(stats.ci95_halfwidth(1.0, 1))


def test_wilson_interval_hand_computed():
    # k = 8 of n = 10, z = 1.96: centre (0.8 + 0.19208) / 1.38416, half 1.96 sqrt(0.016 + 0.0009604) / 1.38416
    lo, hi = stats.wilson_interval(8, 10)
    centre, half = (0.8 + 1.96**2 / 20) / (1 + 1.96**2 / 10), 1.96 * math.sqrt(0.016 + 1.96**2 / 400) / 1.38416
    assert lo == pytest.approx(centre - half, rel=1e-4) and hi == pytest.approx(centre + half, rel=1e-4)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert stats.wilson_interval(0, 5)[0] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        stats.wilson_interval(0, 0)


def test_every_caller_goes_through_the_helper():
    from chronotope.agents.evaluate import summarize
    from chronotope.scripts.experiments.gaussian_eval import mean_ci as gaussian_mean_ci
    from chronotope.scripts.viz.plots import mean_ci as curves_mean_ci

    assert summarize is stats.summarize
    values = [0.2, 0.4, 0.9, float("nan")]
    assert gaussian_mean_ci(values) == stats.summarize(values, finite_only=True)
    curves = np.array([[1.0, 2.0], [3.0, 5.0], [5.0, 6.0]])
    mean, ci = curves_mean_ci(curves)
    np.testing.assert_array_equal(ci, [stats.summarize(curves[:, j])["ci95"] for j in range(2)])
