import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.spatial.distance import cdist

from definitions import brute_force_rnx
from sclatent._core.metrics.rnx_curves import k_grid, rnx_curves


def tied_data(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Small-integer coordinates: many exactly equal distances and duplicate points."""
    rng = np.random.default_rng(seed)
    high = rng.integers(0, 4, (n, dim)).astype(np.float64)
    low = high[:, :2] + rng.integers(0, 2, (n, 2))
    return high, low


@pytest.mark.parametrize(("n", "dim"), [(300, 3), (1500, 20)])
def test_exact_equals_brute_force_with_ties(n, dim):
    high, low = tied_data(n, dim, seed=n)
    expected = brute_force_rnx(high, low)
    result = rnx_curves(high, [low], chunk_bytes=1 << 20)[0]  # many chunks
    np.testing.assert_allclose(result.rnx, expected, rtol=0, atol=1e-9)
    k = np.arange(1, n - 1)
    assert result.local_sp == pytest.approx((expected / k).sum() / (1 / k).sum(), abs=1e-9)
    assert result.global_sp == pytest.approx(expected.mean(), abs=1e-9)
    assert result.n_ref == n
    assert result.local_sp_se == result.global_sp_se == 0


def test_float32_and_sparse_paths_agree_with_float64():
    high, low = tied_data(400, 24, seed=1)  # integer data: float32 distances are exact too
    expected = rnx_curves(high, [low])[0].rnx
    as32 = rnx_curves(high.astype(np.float32), [low.astype(np.float32)])[0].rnx
    sparse = rnx_curves(sp.csr_matrix(high.astype(np.float32)), [low.astype(np.float32)])[0].rnx
    np.testing.assert_array_equal(as32, expected)
    np.testing.assert_array_equal(sparse, expected)


def test_perfect_and_random_embeddings():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 5))
    perfect, shuffled = rnx_curves(x, [2 * x + 1, x[rng.permutation(500)]])
    np.testing.assert_allclose(perfect.rnx, 1.0)
    assert perfect.local_sp == pytest.approx(1.0) and perfect.global_sp == pytest.approx(1.0)
    assert abs(shuffled.global_sp) < 0.02 and abs(shuffled.local_sp) < 0.02


def test_sampled_estimate_within_three_standard_errors():
    rng = np.random.default_rng(1)
    high = rng.normal(size=(3000, 10)).astype(np.float32)
    low = high[:, :2] + 0.5 * rng.normal(size=(3000, 2)).astype(np.float32)
    exact = rnx_curves(high, [low])[0]
    rows = np.sort(rng.choice(3000, 300, replace=False))
    sampled = rnx_curves(high, [low], rows=rows)[0]
    assert sampled.n_ref == 300
    assert 0 < sampled.local_sp_se < 0.05 and 0 < sampled.global_sp_se < 0.05
    assert abs(sampled.local_sp - exact.local_sp) <= 3 * sampled.local_sp_se
    assert abs(sampled.global_sp - exact.global_sp) <= 3 * sampled.global_sp_se


def test_curve_standard_errors_match_the_per_row_shares():
    rng = np.random.default_rng(2)
    n, m = 400, 60
    high = rng.normal(size=(n, 6))
    low = high[:, :2] + 0.3 * rng.normal(size=(n, 2))
    rows = np.sort(rng.choice(n, m, replace=False))
    sampled = rnx_curves(high, [low], rows=rows)[0]

    # brute force: each reference row's share of its K nearest neighbours kept, Q(K) their mean
    def neighbours(x):
        d = cdist(x[rows], x, "sqeuclidean")
        d[np.arange(m), rows] = -np.inf
        return np.argsort(d, axis=1, kind="stable")[:, 1:]

    near_high, near_low = neighbours(high), neighbours(low)
    k = k_grid(n)
    shares = np.array(
        [
            [len(np.intersect1d(h[:kk], lo[:kk])) / kk for kk in k]
            for h, lo in zip(near_high, near_low, strict=True)
        ]
    )
    se_q = shares.std(0, ddof=1) * np.sqrt((n - m) / ((n - 1) * m))
    np.testing.assert_allclose(sampled.rnx_se, (n - 1) / (n - 1 - k) * se_q, rtol=1e-9, atol=1e-12)
    exact = rnx_curves(high, [low])[0]
    assert np.all(exact.rnx_se == 0)
    inside = np.abs(sampled.rnx[k - 1] - exact.rnx[k - 1]) <= 3 * sampled.rnx_se + 1e-12
    assert inside.mean() > 0.9


def test_k_grid():
    np.testing.assert_array_equal(k_grid(10), np.arange(1, 9))
    grid = k_grid(1_000_000)
    assert len(grid) <= 2000 and grid[0] == 1 and grid[-1] == 999_998
    assert np.all(np.diff(grid) > 0)


def test_core_rejects_mismatched_cells():
    with pytest.raises(ValueError, match="same cells"):
        rnx_curves(np.zeros((10, 3)), [np.zeros((9, 2))])
    with pytest.raises(ValueError, match="at least 4 cells"):
        rnx_curves(np.zeros((3, 3)), [np.zeros((3, 2))])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_matches_cpu():
    high, low = tied_data(800, 20, seed=2)
    cpu = rnx_curves(high.astype(np.float32), [low.astype(np.float32)], device="cpu")[0]
    gpu = rnx_curves(high.astype(np.float32), [low.astype(np.float32)], device="cuda")[0]
    np.testing.assert_array_equal(gpu.rnx, cpu.rnx)


def with_duplicates(n: int, dim: int, n_duplicates: int, seed: int) -> np.ndarray:
    """Gaussian float64 points of which ``n_duplicates`` repeat others exactly (as cells of equal counts)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)) * rng.uniform(0.1, 10, dim)
    copies = rng.choice(n, 2 * n_duplicates, replace=False)
    x[copies[:n_duplicates]] = x[copies[n_duplicates:]]
    return x


@pytest.mark.parametrize("low_dim", [2, 30])
def test_exact_on_duplicated_float64_rows_equals_brute_force(low_dim):
    high = with_duplicates(1200, 50, 40, seed=3)  # 50-d: distances from matrix products
    projection = np.random.default_rng(4).normal(size=(50, low_dim))
    low = high @ projection  # duplicates stay duplicates in the embedding
    expected = brute_force_rnx(high, low)
    result = rnx_curves(high, [low], chunk_bytes=1 << 22)[0]
    np.testing.assert_allclose(result.rnx, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))],
)
@pytest.mark.parametrize("sparse", [False, True])
def test_duplicates_get_equal_distances(dtype, device, sparse):
    from sclatent._core.metrics.rnx_curves import _Space

    x = with_duplicates(300, 40, 20, seed=5).astype(dtype)
    x[x < 0] = 0  # sparse-looking
    matrix = sp.csr_matrix(x) if sparse else x
    d = _Space(matrix, torch.device(device)).sq_dists(torch.arange(300, device=device)).cpu().numpy()
    _, first = np.unique(x, axis=0, return_inverse=True)
    same = first.ravel()[:, None] == first.ravel()[None, :]
    assert same.sum() > 300  # there are duplicates
    assert (d[same] == 0).all()
    for a, b in zip(*np.nonzero(same & ~np.eye(300, dtype=bool)), strict=True):
        np.testing.assert_array_equal(d[:, a], d[:, b])
