"""Real data shipped with the package, so demos and tutorials need no download."""

from __future__ import annotations

from importlib.resources import as_file, files

import anndata as ad


def mouse_brain_10k() -> ad.AnnData:
    """10,000 mouse brain cells x 1,000 genes, raw UMI counts.

    Source: 10x Genomics mouse brain cells, a subset of 10,000 cells and the first 1,000 genes, as
    kept in the scanpy test suite data (``tests/_data/10x-10k-subset.zarr``); shipped with sclatent
    (1.7 MB). The cells carry no annotation; ``var["gene_ids"]`` holds the Ensembl ids and
    ``uns["source"]`` the provenance. 285 genes have no count and one cell is empty, as in the
    original subset.

    Returns
    -------
    A fresh AnnData (sparse CSR counts in ``.X``) on each call.
    """
    return _read("mouse_brain_10k.h5ad")


def pbmc_4k() -> ad.AnnData:
    """4,271 human PBMCs x 2,000 genes, raw UMI counts, 8 annotated cell types.

    Source: 10x Genomics PBMC 4k, the 2,000 genes and the cell-type labels as distributed with scDCC
    (Tian et al. 2021); shipped with sclatent (2.1 MB). ``obs["cell_type"]`` holds the anonymous
    type names ``type_00`` ... ``type_07`` and the genes are numbered, so the data serve to check
    clusters and label transfer against known types, not for biology. ``uns["source"]`` holds the
    provenance.

    Returns
    -------
    A fresh AnnData (sparse CSR counts in ``.X``) on each call.
    """
    return _read("pbmc_4k.h5ad")


def _read(name: str) -> ad.AnnData:
    with as_file(files(__package__).joinpath("data", name)) as path:
        return ad.read_h5ad(path)
