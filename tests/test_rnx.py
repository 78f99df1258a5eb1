import logging

import anndata as ad
import numpy as np
import pytest
import scanpy as sc
import scipy.sparse as sp
import torch
from scipy.spatial.distance import cdist

import sclatent as sl
from sclatent._core.rnx import k_grid, rnx_curves


def brute_force_rnx(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """R_NX(K), K = 1..N-2, from the full co-ranking matrix (float64, ties broken by index)."""
    n = len(high)

    def ranks(x):
        d = cdist(x, x, "sqeuclidean")
        np.fill_diagonal(d, -np.inf)  # self first, so neighbours get ranks 1..N-1
        order = np.argsort(d, axis=1, kind="stable")
        r = np.empty_like(order)
        np.put_along_axis(r, order, np.tile(np.arange(n), (n, 1)), axis=1)
        return r

    off_diagonal = ~np.eye(n, dtype=bool)
    co_ranking = np.zeros((n - 1, n - 1))
    np.add.at(co_ranking, (ranks(high)[off_diagonal] - 1, ranks(low)[off_diagonal] - 1), 1)
    k = np.arange(1, n - 1)
    q = co_ranking.cumsum(0).cumsum(1)[k - 1, k - 1] / (k * n)
    return ((n - 1) * q - k) / (n - 1 - k)


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


@pytest.fixture
def pbmc() -> ad.AnnData:
    return sc.datasets.pbmc68k_reduced()


def test_tl_rnx_scores_every_embedding_and_survives_h5ad(pbmc, tmp_path):
    sl.tl.rnx(pbmc)  # reference X_pca; scores X_umap
    score = pbmc.uns["rnx"]["X_umap"]
    n = pbmc.n_obs
    assert score["reference"] == "X_pca" and score["exact"] and score["n_ref"] == n
    np.testing.assert_array_equal(score["K"], np.arange(1, n - 1))
    expected = brute_force_rnx(pbmc.obsm["X_pca"].astype(np.float64), pbmc.obsm["X_umap"].astype(np.float64))
    np.testing.assert_allclose(score["rnx"], expected, atol=0.01)  # float32 vs float64 ranks
    assert 0.1 < score["local_sp"] < 1 and 0 < score["global_sp"] < 1
    pbmc.write_h5ad(tmp_path / "scored.h5ad")
    back = ad.read_h5ad(tmp_path / "scored.h5ad").uns["rnx"]["X_umap"]
    np.testing.assert_array_equal(back["rnx"], score["rnx"])
    assert back["local_sp"] == score["local_sp"]


def test_tl_rnx_sampled_is_seeded(pbmc):
    first = sl.tl.rnx(pbmc, "umap", n_ref=100, random_state=3, copy=True).uns["rnx"]["X_umap"]
    again = sl.tl.rnx(pbmc, "X_umap", n_ref=100, random_state=3, copy=True).uns["rnx"]["X_umap"]
    other = sl.tl.rnx(pbmc, "X_umap", n_ref=100, random_state=4, copy=True).uns["rnx"]["X_umap"]
    assert "rnx" not in pbmc.uns  # copy=True leaves the input alone
    assert not first["exact"] and first["n_ref"] == 100 and first["local_sp_se"] > 0
    assert first["local_sp"] == again["local_sp"] and first["local_sp"] != other["local_sp"]


def test_tl_rnx_reference_choice(pbmc):
    sl.tl.rnx(pbmc, "umap", use_rep="X", key_added="rnx_x")
    assert pbmc.uns["rnx_x"]["X_umap"]["reference"] == "X"


def test_tl_rnx_skips_probabilities_and_warns_on_raw_counts(pbmc, caplog):
    pbmc.obsm["X_scvae_cluster_proba"] = np.full((pbmc.n_obs, 3), 1 / 3)
    sl.tl.rnx(pbmc)
    assert set(pbmc.uns["rnx"]) == {"X_umap"}
    counts = ad.AnnData(np.expm1(pbmc.raw.X.toarray()).round(), obsm={"X_umap": pbmc.obsm["X_umap"]})
    with caplog.at_level(logging.WARNING, logger="sclatent"):
        sl.tl.rnx(counts, "umap")
    assert "looks like raw counts" in caplog.text


def test_tl_rnx_errors_leave_adata_untouched(pbmc):
    before = set(pbmc.uns)
    with pytest.raises(KeyError, match=r"basis='tsne' is not in adata\.obsm"):
        sl.tl.rnx(pbmc, "tsne")
    with pytest.raises(KeyError, match="use_rep='X_scvi'"):
        sl.tl.rnx(pbmc, "umap", use_rep="X_scvi")
    with pytest.raises(ValueError, match="n_ref=1"):
        sl.tl.rnx(pbmc, "umap", n_ref=1)
    pbmc.obsm["X_bad"] = pbmc.obsm["X_umap"].copy()
    pbmc.obsm["X_bad"][3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sl.tl.rnx(pbmc, "bad")
    del pbmc.obsm["X_umap"], pbmc.obsm["X_bad"]
    with pytest.raises(ValueError, match="no embedding to score"):
        sl.tl.rnx(pbmc)
    assert set(pbmc.uns) == before


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
    from sclatent._core.rnx import _Space

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
