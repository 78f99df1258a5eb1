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
    resource = files(__package__).joinpath("data", "mouse_brain_10k.h5ad")
    with as_file(resource) as path:
        return ad.read_h5ad(path)
