import numpy as np
import pytest

from chronotope.maps import morton


def _encode_bitloop(x: int, y: int, z: int) -> int:
    """Reference: interleave bit by bit (x -> bit 0, y -> bit 1, z -> bit 2 of each level)."""
    code = 0
    for b in range(morton.MAX_LEVEL):
        code |= ((x >> b) & 1) << (3 * b) | ((y >> b) & 1) << (3 * b + 1) | ((z >> b) & 1) << (3 * b + 2)
    return code


def test_unit_axes():
    assert morton.encode(1, 0, 0) == 1
    assert morton.encode(0, 1, 0) == 2
    assert morton.encode(0, 0, 1) == 4
    assert morton.encode(morton.AXIS_MAX, morton.AXIS_MAX, morton.AXIS_MAX) == (1 << 63) - 1


def test_matches_bit_loop_and_round_trips():
    rng = np.random.default_rng(0)
    p = rng.integers(0, 1 << 21, size=(2000, 3))
    codes = morton.encode_points(p)
    assert codes.dtype == np.int64 and (codes >= 0).all()
    ref = np.array([_encode_bitloop(*map(int, row)) for row in p[:300]], dtype=np.int64)
    np.testing.assert_array_equal(codes[:300], ref)
    np.testing.assert_array_equal(morton.decode(codes), p)
    np.testing.assert_array_equal(morton.encode_unchecked(p), codes)


def test_grid_codes_distinct_and_parent():
    g = np.stack(np.meshgrid(*[np.arange(16)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    codes = morton.encode_points(g)
    assert np.unique(codes).size == 4096
    # a 16^3 block starting at the origin fills codes 0..4095 exactly
    assert codes.min() == 0 and codes.max() == 4095
    np.testing.assert_array_equal(morton.parent(codes), morton.encode_points(g // 2))
    np.testing.assert_array_equal(morton.parent(codes, 3), morton.encode_points(g // 8))
    kids = morton.children(morton.parent(codes[:10]))
    assert all(c in k for c, k in zip(codes[:10], kids))


@pytest.mark.parametrize("bad", [-1, 1 << 21])
def test_out_of_range_coordinates_raise(bad):
    with pytest.raises(ValueError, match=str(bad)):
        morton.encode(np.array([0, bad]), 0, 0)


def test_float_coordinates_raise():
    with pytest.raises(ValueError, match="integers"):
        morton.encode(np.array([0.5]), 0, 0)
