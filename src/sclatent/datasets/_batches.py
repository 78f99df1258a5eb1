"""Batch effects laid on real counts, to measure integration against known truth."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Number

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .. import _anndata as io
from .._validation import Real


def add_batch_effects(
    adata: AnnData,
    *,
    depths: Sequence[float] = (0.8, 0.5, 0.3),
    efficiency_sd: float = 0.5,
    key_added: str = "batch",
    random_state: int | np.random.Generator | None = 0,
) -> AnnData:
    """Split cells into batches, each with its own gene capture efficiencies and sequencing depth.

    Each cell goes to one of ``len(depths)`` batches at random. Batch b has a capture efficiency per
    gene, ``e_bg = exp(s * eps_bg - s**2 / 2)`` with ``eps_bg ~ N(0, 1)`` and ``s = efficiency_sd``
    (log-normal, mean 1), and a depth ``d_b``; every count ``x_cg`` of a cell c in batch b is thinned
    binomially, ``x'_cg ~ Binomial(x_cg, min(1, d_b * e_bg))``. So batches differ the way
    sequencing runs do, in depth and in gene-specific capture, while the cells' types (and all
    annotations) stay known.

    Parameters
    ----------
    adata
        Raw counts in ``.X``.
    depths
        Share of the counts each batch keeps on average, in (0, 1]; one batch per entry.
    efficiency_sd
        Standard deviation of the log capture efficiencies.
    key_added
        Column of ``obs`` that receives the batch names (``batch_0``, ``batch_1``, ...).
    random_state
        Seed of the batches, efficiencies and thinning.

    Returns
    -------
    A new AnnData with the thinned counts (sparse CSR, float32) and ``obs[key_added]``; ``adata``
    is not modified.
    """
    io.check_anndata(adata)
    depths = check_depths(depths)
    efficiency_sd = Real(low=0.0)("efficiency_sd", efficiency_sd)
    counts = raw_counts(adata, "add_batch_effects")
    rng = np.random.default_rng(random_state)
    batch = rng.integers(len(depths), size=adata.n_obs)
    keep = capture_probabilities(rng, depths, adata.n_vars, efficiency_sd)
    out = AnnData(
        thin(counts, keep, batch, rng).astype(np.float32), obs=adata.obs.copy(), var=adata.var.copy()
    )
    names = [f"batch_{b}" for b in range(len(depths))]
    out.obs[key_added] = pd.Categorical.from_codes(batch, names)
    return out


def check_depths(depths: object) -> list[float]:
    """``depths`` as a list of at least two shares in (0, 1], or a ValueError naming the fix."""
    example = "e.g. depths=(0.8, 0.5, 0.3)."
    if isinstance(depths, str) or not isinstance(depths, Sequence | np.ndarray):
        msg = f"depths={depths!r}: pass one share of counts kept per batch, {example}"
        raise TypeError(msg)
    checked = []
    for depth in depths:
        if isinstance(depth, bool) or not isinstance(depth, Number):
            msg = f"depths={tuple(depths)!r} holds {depth!r}; each must be a number in (0, 1], {example}"
            raise TypeError(msg)
        checked.append(Real(low=0.0, high=1.0, low_open=True)("depths", float(depth)))
    if len(checked) < 2:
        msg = f"depths={tuple(depths)!r} gives {len(checked)} batch; give one depth per batch, at least two."
        raise ValueError(msg)
    return checked


def raw_counts(adata: AnnData, what: str) -> sp.csr_matrix:
    """``adata.X`` in memory as a float64 CSR matrix, checked to hold raw counts."""
    counts = sp.csr_matrix(io.to_memory(io.get_matrix(adata)), dtype=np.float64)
    if (counts.data < 0).any() or (counts.data != np.floor(counts.data)).any():
        msg = (
            f"{what} thins raw counts, but adata.X holds negative or non-integer values (normalised or "
            "log-transformed data?). Pass an AnnData whose .X holds the raw counts, e.g. "
            "AnnData(adata.layers['counts'], obs=adata.obs, var=adata.var)."
        )
        raise ValueError(msg)
    return counts


def capture_probabilities(
    rng: np.random.Generator, depths: Sequence[float], n_genes: int, efficiency_sd: float
) -> np.ndarray:
    """``(n_batches, n_genes)`` probabilities ``min(1, d_b * e_bg)`` that a count is kept."""
    noise = rng.standard_normal((len(depths), n_genes))
    return np.minimum(1.0, np.asarray(depths)[:, None] * np.exp(efficiency_sd * noise - efficiency_sd**2 / 2))


def thin(
    counts: sp.csr_matrix,
    keep: np.ndarray,
    batch: np.ndarray,
    rng: np.random.Generator,
    factor: np.ndarray | None = None,
) -> sp.csr_matrix:
    """Binomial thinning of CSR counts.

    The count of cell c and gene g keeps ``Binomial(x_cg, min(1, f_c * keep[batch[c], g]))``, with
    ``f_c = factor[c]`` (default 1).
    """
    rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
    thinned = counts.copy()
    probability = keep[batch[rows], counts.indices]
    if factor is not None:
        probability = np.minimum(1.0, probability * factor[rows])
    thinned.data = rng.binomial(counts.data.astype(np.int64), probability).astype(np.float64)
    thinned.eliminate_zeros()
    return thinned
