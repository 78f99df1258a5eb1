"""A synthetic atlas of any size, written to disk block by block, for scale tests and benchmarks."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from tqdm.auto import tqdm

from .. import _anndata as io
from .._io import ANNDATA_SUFFIXES, check_output_file, read_backed, write_rows
from .._validation import Integer, Real
from ._batches import capture_probabilities, check_depths, raw_counts, thin
from ._datasets import pbmc_4k


def synthetic_atlas(
    path: str | os.PathLike[str],
    n_cells: int,
    *,
    reference: AnnData | None = None,
    labels_key: str = "cell_type",
    depths: Sequence[float] = (0.9, 0.7, 0.5, 0.35),
    efficiency_sd: float = 0.5,
    cell_depth: tuple[float, float] = (0.5, 1.0),
    labelled_fraction: float = 0.01,
    block_cells: int = 16_384,
    progress: bool = True,
    random_state: int = 0,
) -> AnnData:
    """Write an atlas of ``n_cells`` cells resampled from real counts, and open it with ``.X`` on disk.

    Every cell is a cell of ``reference`` drawn at random (with replacement), put in one of
    ``len(depths)`` batches, and thinned binomially: each count ``x_cg`` of a cell c of batch b keeps
    ``Binomial(x_cg, min(1, t_c * d_b * e_bg))`` with the batch's depth ``d_b`` and gene capture
    efficiencies ``e_bg`` (as :func:`add_batch_effects` draws them) and a depth of the cell's own,
    ``t_c ~ Uniform(cell_depth)``. So the atlas has the reference's cell types and gene-gene
    structure, cells that differ in depth, and batch effects. The matrix is generated and appended to
    the file ``block_cells`` cells at a time and never held whole, so atlases of millions of cells can
    be made on a laptop.

    Parameters
    ----------
    path
        The ``.h5ad`` file or ``.zarr`` store to write (replaced when it exists).
    n_cells
        Cells of the atlas.
    reference
        Raw counts with labels in ``obs[labels_key]`` (default :func:`pbmc_4k`).
    labels_key
        Column of ``reference.obs`` copied to ``obs["cell_type"]`` of the atlas.
    depths
        Share of the counts each batch keeps on average, in (0, 1]; one batch per entry.
    efficiency_sd
        Standard deviation of the batches' log capture efficiencies.
    cell_depth
        Range of the cells' own depth factors.
    labelled_fraction
        Share of cells whose type is also given in ``obs["known_cell_type"]`` (missing for the
        others), to try label transfer.
    block_cells
        Cells generated and written at a time.
    progress
        Show a progress bar.
    random_state
        Seed of everything drawn.

    Returns
    -------
    The atlas, opened with :func:`sclatent.read_backed`: ``obs["cell_type"]``, ``obs["batch"]``,
    ``obs["known_cell_type"]``, ``obs["reference_cell"]`` (the reference cell each cell was drawn
    from) and ``.X`` (CSR, float32 counts) on disk.
    """
    path = check_output_file(path, "path", suffixes=ANNDATA_SUFFIXES)
    n_cells = Integer(minimum=1)("n_cells", n_cells)
    block_cells = Integer(minimum=1)("block_cells", block_cells)
    depths = check_depths(depths)
    efficiency_sd = Real(low=0.0)("efficiency_sd", efficiency_sd)
    labelled_fraction = Real(low=0.0, high=1.0)("labelled_fraction", labelled_fraction)
    low, high = (Real(low=0.0, high=1.0, low_open=True)("cell_depth", float(v)) for v in cell_depth)
    reference = pbmc_4k() if reference is None else reference
    labels, categories = io.get_codes(reference, labels_key, "labels_key")
    counts = raw_counts(reference, "synthetic_atlas")

    rng = np.random.default_rng(random_state)
    keep = capture_probabilities(rng, depths, reference.n_vars, efficiency_sd)
    drawn = rng.integers(reference.n_obs, size=n_cells)
    batch = rng.integers(len(depths), size=n_cells)
    factor = rng.uniform(low, high, size=n_cells)
    known = np.where(rng.random(n_cells) < labelled_fraction, labels[drawn], -1)
    width = len(str(n_cells - 1))
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical.from_codes(labels[drawn], categories),
            "known_cell_type": pd.Categorical.from_codes(known, categories),
            "batch": pd.Categorical.from_codes(batch, [f"batch_{b}" for b in range(len(depths))]),
            "reference_cell": reference.obs_names[drawn],
        },
        index=[f"cell_{i:0{width}d}" for i in range(n_cells)],
    )

    def blocks() -> Iterator[sp.csr_matrix]:
        starts = range(0, n_cells, block_cells)
        for number, start in enumerate(tqdm(starts, desc="atlas", unit="block", disable=not progress)):
            cells = slice(start, min(start + block_cells, n_cells))
            block = counts[drawn[cells]]
            block_rng = np.random.default_rng([random_state, number])
            yield thin(block, keep, batch[cells], block_rng, factor[cells]).astype(np.float32)

    var = reference.var.copy()
    uns = {"source": f"sclatent.datasets.synthetic_atlas(n_cells={n_cells}, random_state={random_state})"}
    write_rows(AnnData(obs=obs, var=var, uns=uns), blocks(), path)
    return read_backed(path)
