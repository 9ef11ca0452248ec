"""Navigation measures against hand-computed cases (shared/specs/nav-metrics.md)."""

import math

import numpy as np
import pytest

from chronotope.envs.tasks.measures import dtw, ndtw, spl


def test_spl_cases():
    assert spl(1.0, 5.0, 10.0) == pytest.approx(0.5)  # a path twice as long as optimal
    assert spl(1.0, 5.0, 5.0) == pytest.approx(1.0)
    assert spl(0.0, 5.0, 5.0) == 0.0
    assert spl(1.0, 5.0, 4.0) == pytest.approx(1.0)  # max(p, l) guards p < l
    assert np.allclose(spl(np.array([1, 1, 0]), np.array([2.0, 4.0, 3.0]), np.array([4.0, 5.0, 3.0])), [0.5, 0.8, 0.0])


def test_ndtw_exact_path_is_one():
    ref = np.array([[0, 0], [1, 0], [2, 0], [3, 0]], float)
    assert dtw(ref, ref) == 0.0
    assert ndtw(ref, ref) == pytest.approx(1.0)
    # duplicates of reference points (agent turning in place) cost nothing
    q = np.array([[0, 0], [0, 0], [1, 0], [2, 0], [2, 0], [3, 0]], float)
    assert ndtw(q, ref) == pytest.approx(1.0)


def test_ndtw_with_a_detour():
    ref = np.array([[0, 0], [1, 0], [2, 0]], float)
    q = np.array([[0, 0], [1, 1], [2, 0]], float)  # one point 1 m off the path
    assert dtw(q, ref) == pytest.approx(1.0)
    assert ndtw(q, ref) == pytest.approx(math.exp(-1.0 / (3 * 3.0)))


def test_dtw_rejects_empty():
    with pytest.raises(ValueError, match="non-empty"):
        dtw(np.zeros((0, 2)), np.zeros((2, 2)))
