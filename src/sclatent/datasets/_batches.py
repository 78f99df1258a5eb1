"""Batch effects laid on real counts, to measure integration against known truth."""

from __future__ import annotations

from collections.abc import Sequence

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
    depths = [Real(low=0.0, high=1.0, low_open=True)("depths", float(d)) for d in depths]
    if len(depths) < 2:
        msg = f"depths={depths!r} gives {len(depths)} batch; give one depth per batch, at least two."
        raise ValueError(msg)
    efficiency_sd = Real(low=0.0)("efficiency_sd", efficiency_sd)
    counts = sp.csr_matrix(io.to_memory(io.get_matrix(adata)), dtype=np.float64)
    if (counts.data < 0).any() or (counts.data != np.floor(counts.data)).any():
        msg = "add_batch_effects thins raw counts, but adata.X holds negative or non-integer values."
        raise ValueError(msg)
    rng = np.random.default_rng(random_state)
    batch = rng.integers(len(depths), size=adata.n_obs)
    noise = rng.standard_normal((len(depths), adata.n_vars))
    keep = np.minimum(1.0, np.asarray(depths)[:, None] * np.exp(efficiency_sd * noise - efficiency_sd**2 / 2))
    rows = np.repeat(np.arange(adata.n_obs), np.diff(counts.indptr))
    thinned = counts.copy()
    thinned.data = rng.binomial(counts.data.astype(np.int64), keep[batch[rows], counts.indices]).astype(
        np.float64
    )
    thinned.eliminate_zeros()
    out = AnnData(thinned.astype(np.float32), obs=adata.obs.copy(), var=adata.var.copy())
    names = [f"batch_{b}" for b in range(len(depths))]
    out.obs[key_added] = pd.Categorical.from_codes(batch, names)
    return out
