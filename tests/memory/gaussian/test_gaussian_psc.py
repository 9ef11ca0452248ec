"""Principal scene components, Gaussian memory attention and the feature loss against the M3 spec's oracles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chronotope.memory.gaussian.attention import GaussianMemoryAttention, feature_loss, sample_maps
from chronotope.memory.gaussian.psc import principal_scene_components, psc_update

torch.set_num_threads(1)


def clustered(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(6, d, generator=g)
    rows = centres[torch.randint(6, (n,), generator=g)] + 0.4 * torch.randn(n, d, generator=g)
    return rows * torch.rand(n, 1, generator=g) * 3  # raw rows have varied norms


def reference_psc(e: np.ndarray, theta: float) -> list[int]:
    """The spec's algorithm written plainly, with a full cosine matrix."""
    u = e / np.linalg.norm(e, axis=1, keepdims=True)
    cos = np.clip(u @ u.T, -1, 1)
    used = np.zeros(len(e), bool)
    kept = []
    for i in range(len(e)):
        if used[i]:
            continue
        s = cos[i] >= theta
        if (s & used).any():
            continue
        kept.append(i)
        used |= s
    return kept


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("theta", [0.3, 0.7, 0.95])
def test_psc_subset_and_separation(seed, theta):
    e = clustered(300, 12, seed)
    psc, idx = principal_scene_components(e, theta, return_indices=True)
    assert idx.tolist() == reference_psc(e.double().numpy(), theta)
    # Every PSC row equals some input row exactly (raw, unnormalised).
    assert all(any(torch.equal(r, x) for x in e) for r in psc)
    assert torch.equal(psc, e[idx])
    u = torch.nn.functional.normalize(psc.double(), dim=-1)
    cos = u @ u.T
    off = cos[~torch.eye(len(psc), dtype=torch.bool)]
    assert (off < theta).all()
    assert 1 < len(psc) < len(e)


def test_psc_theta_extremes():
    e = clustered(50, 8, 3)
    assert torch.equal(principal_scene_components(e, 1.01), e)  # theta > 1 keeps all rows
    assert torch.equal(principal_scene_components(e, -1.0), e[:1])  # theta = -1 keeps only row 0


def test_psc_bad_input():
    with pytest.raises(ValueError, match="shape"):
        principal_scene_components(torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match="NaN"):
        principal_scene_components(torch.tensor([[1.0, float("nan")]]), 0.5)
    with pytest.raises(ValueError, match="theta"):
        principal_scene_components(torch.ones(2, 2), -2.0)


def test_psc_update_online():
    e = clustered(400, 10, 4)
    bank, added = psc_update(torch.zeros(0, 10), e[:200], 0.8)
    assert torch.equal(bank, principal_scene_components(e[:200], 0.8))  # empty bank == batch algorithm
    bank2, added2 = psc_update(bank, e[200:], 0.8)
    assert torch.equal(bank2[: len(bank)], bank) and torch.equal(bank2[len(bank) :], e[200:][added2])
    u = torch.nn.functional.normalize(bank2.double(), dim=-1)
    assert ((u @ u.T)[~torch.eye(len(bank2), dtype=torch.bool)] < 0.8).all()
    capped, _ = psc_update(bank, e[200:], 0.99, capacity=len(bank) + 3)
    assert len(capped) == len(bank) + 3


def test_attention_convex_and_argmax_limit():
    g = torch.Generator().manual_seed(0)
    bank = torch.randn(20, 32, generator=g)
    q = torch.randn(7, 5, 8, generator=g)
    att = GaussianMemoryAttention(8, 32, temperature=0.05, seed=1)
    w = att.weights(q, bank)
    assert w.shape == (7, 5, 20) and (w >= 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(7, 5))
    out = att(q, bank)
    torch.testing.assert_close(out, w @ bank)
    # At T = 1e-4 the output is the bank row of highest cosine to E = q P (computed independently here).
    sharp = GaussianMemoryAttention(8, 32, temperature=1e-4, seed=1)
    e = (q.double() @ sharp.proj.double()).numpy()
    b = bank.double().numpy()
    cos = (e / np.linalg.norm(e, axis=-1, keepdims=True)) @ (b / np.linalg.norm(b, axis=-1, keepdims=True)).T
    best = torch.from_numpy(cos.argmax(-1))
    torch.testing.assert_close(sharp(q, bank), bank[best], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="query_dim"):
        att(torch.zeros(3, 4), bank)
    with pytest.raises(ValueError, match="bank"):
        att(q, torch.zeros(0, 32))


def test_feature_loss_zero_when_equal_and_mask():
    g = torch.Generator().manual_seed(0)
    tgt = torch.randn(10, 16, generator=g)
    tgt[[2, 7]] = 0  # no feature at these points
    assert float(feature_loss(tgt.clone(), tgt)) == pytest.approx(0.0, abs=1e-6)
    pred = tgt + 0.3 * torch.randn(10, 16, generator=g)
    base = feature_loss(pred, tgt)
    assert base > 0.01
    pred2 = pred.clone()
    pred2[[2, 7]] = 100 * torch.randn(2, 16, generator=g)  # masked points do not affect the loss
    assert torch.equal(feature_loss(pred2, tgt), base)
    assert float(feature_loss(pred, torch.zeros(10, 16))) == 0.0


def test_sample_maps_bilinear():
    m = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(2, 4, 6)
    # Pixel centres (u + 0.5) / w are exact samples; the midpoint between two centres averages them.
    uv = torch.tensor([[0.5 / 6, 0.5 / 4], [5.5 / 6, 3.5 / 4], [1.0 / 6, 0.5 / 4]])
    out = sample_maps(m, uv)
    torch.testing.assert_close(out[0], m[:, 0, 0])
    torch.testing.assert_close(out[1], m[:, 3, 5])
    torch.testing.assert_close(out[2], (m[:, 0, 0] + m[:, 0, 1]) / 2)
