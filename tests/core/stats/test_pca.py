import numpy as np
import scanpy as sc
import scipy.sparse as sp
import torch

from sclatent._core.data import RowSource
from sclatent._core.stats.pca import log_normalised_pcs, streamed_pca


def test_streamed_pca_equals_the_exact_decomposition():
    rng = np.random.default_rng(0)
    signal = (rng.normal(size=(700, 12)) * np.linspace(6, 1, 12)) @ rng.normal(size=(12, 300))
    x = torch.as_tensor(signal + 0.3 * rng.normal(size=(700, 300)) + 5.0, dtype=torch.float32)
    scores = streamed_pca(lambda: iter(x.split(128)), 10)
    centred = x.double().numpy() - x.double().numpy().mean(0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    exact = u[:, :10] * s[:10]
    signs = np.sign((scores * exact).sum(0))
    np.testing.assert_allclose(scores * signs, exact, atol=1e-3 * np.abs(exact).max())


def test_log_normalised_pcs_match_scanpy_on_real_counts(bladder_counts):
    """The PCs of normalize_total + log1p, streamed from the CSR rows, span scanpy's PCs."""
    rows = np.arange(0, bladder_counts.n_obs, 2)
    counts = sp.csr_matrix(bladder_counts.X, dtype=np.float32)
    ours = log_normalised_pcs(RowSource(counts, torch.device("cpu")), rows, n_comps=20)
    reference = bladder_counts[rows].copy()
    sc.pp.normalize_total(reference)
    sc.pp.log1p(reference)
    sc.pp.pca(reference, n_comps=20, svd_solver="arpack", random_state=0)
    theirs = reference.obsm["X_pca"]
    assert ours.shape == theirs.shape == (len(rows), 20)
    # each of scanpy's first 10 components is (up to its sign) one of ours
    correlation = np.abs(np.corrcoef(ours.T, theirs.T)[:20, 20:])
    assert np.all(np.diag(correlation)[:10] > 0.99), np.diag(correlation)
