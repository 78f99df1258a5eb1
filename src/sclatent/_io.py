"""Opening an AnnData whose matrix stays on disk."""

from __future__ import annotations

import os
from pathlib import Path

import anndata as ad


def read_backed(path: str | os.PathLike[str]) -> ad.AnnData:
    """Open an ``.h5ad`` file or a ``.zarr`` store with ``.X`` left on disk, for streamed training.

    ``obs``, ``var``, ``obsm`` and ``uns`` are read into memory; ``.X`` stays a sparse (or dense)
    dataset on disk that sclatent's models read in contiguous blocks of rows (see
    ``sl.settings.disk_block_rows`` and ``sl.settings.disk_buffer_blocks``). ``.h5ad`` files are opened
    with ``anndata.read_h5ad(path, backed="r")``.

    Parameters
    ----------
    path
        The ``.h5ad`` file or ``.zarr`` store.

    Returns
    -------
    The AnnData, its ``.X`` on disk.
    """
    path = Path(path)
    if not path.exists():
        msg = f"{os.fspath(path)!r} does not exist."
        raise FileNotFoundError(msg)
    if path.suffix != ".zarr":
        return ad.read_h5ad(path, backed="r")
    import zarr

    store = zarr.open(path, mode="r")
    elements = {key: ad.io.read_elem(store[key]) for key in ("obs", "var", "obsm", "uns") if key in store}
    x = store["X"]
    matrix = ad.io.sparse_dataset(x) if isinstance(x, zarr.Group) else x
    return ad.AnnData(X=matrix, **elements)
