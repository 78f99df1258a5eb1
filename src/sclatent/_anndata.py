"""AnnData handling: choosing the input matrix, validating it, and reading per-cell annotations.

Everything here only reads the AnnData; nothing writes to it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ._core.data import row_blocks

Matrix = np.ndarray | sp.csr_matrix | sp.csc_matrix

#: Entries checked at a time, so that validation never copies a whole large matrix.
_CHUNK = 1 << 24


class MissingKeyError(KeyError, ValueError):
    """A key the user named is absent from the AnnData (a KeyError, and a ValueError as bad input)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def is_on_disk(matrix: object) -> bool:
    """Whether ``matrix`` is an on-disk array of a backed AnnData (sparse dataset or HDF5 dataset)."""
    from anndata.abc import CSCDataset, CSRDataset

    if isinstance(matrix, CSRDataset | CSCDataset):
        return True
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py comes with anndata
        return False
    return isinstance(matrix, h5py.Dataset)


def check_anndata(adata: object, *, path_allowed: bool = False) -> None:
    """Raise a TypeError unless ``adata`` is an AnnData (or, with ``path_allowed``, a file path)."""
    if isinstance(adata, AnnData) or (path_allowed and isinstance(adata, str | os.PathLike)):
        return
    expected = "an AnnData" + (" or the path of an .h5ad file / .zarr store" if path_allowed else "")
    msg = f"adata: expected {expected}, got {type(adata).__name__}."
    raise TypeError(msg)


def check_results_key(adata: AnnData, key: str) -> None:
    """Raise unless ``adata.uns[key]`` is absent or a dict that results can be added to."""
    if key in adata.uns and not isinstance(adata.uns[key], Mapping):
        msg = (
            f"adata.uns[{key!r}] holds a {type(adata.uns[key]).__name__}, not a dict of results; "
            "pass another key_added or delete that entry."
        )
        raise ValueError(msg)


def get_matrix(adata: AnnData, *, layer: str | None = None, use_rep: str | None = None) -> Matrix:
    """The cell-by-feature input chosen by ``layer`` or ``use_rep`` (default ``.X``), not copied.

    Parameters
    ----------
    adata
        The data.
    layer
        Key of ``adata.layers``.
    use_rep
        Key of ``adata.obsm`` (or ``"X"`` for ``.X``).

    Returns
    -------
    A dense array or a SciPy sparse matrix with one row per cell.
    """
    if layer is not None and use_rep is not None:
        msg = f"Pass layer={layer!r} or use_rep={use_rep!r}, not both."
        raise ValueError(msg)
    if use_rep is not None and use_rep != "X":
        if use_rep not in adata.obsm:
            msg = (
                f"use_rep={use_rep!r} is not in adata.obsm (keys: {_keys(adata.obsm)}); "
                "compute it first (e.g. sc.pp.pca for 'X_pca') or pass another key."
            )
            raise MissingKeyError(msg)
        matrix = adata.obsm[use_rep]
        if isinstance(matrix, pd.DataFrame):
            matrix = matrix.to_numpy()
    elif layer is not None:
        if layer not in adata.layers:
            msg = (
                f"layer={layer!r} is not in adata.layers (keys: {_keys(adata.layers)}); "
                "pass one of those, or layer=None for adata.X."
            )
            raise MissingKeyError(msg)
        matrix = adata.layers[layer]
    else:
        matrix = adata.X
    what = describe_input(layer, use_rep)
    if matrix is None:
        msg = f"{what} is empty; store the data there or choose another layer / use_rep."
        raise ValueError(msg)
    if is_on_disk(matrix):
        pass  # backed AnnData: streamed block by block, never loaded whole
    elif sp.issparse(matrix):
        if not isinstance(matrix, sp.csr_matrix | sp.csr_array | sp.csc_matrix | sp.csc_array):
            matrix = sp.csr_matrix(matrix)
    elif not isinstance(matrix, np.ndarray):
        matrix = np.asarray(matrix)
    if len(matrix.shape) != 2 or matrix.shape[0] != adata.n_obs:
        msg = f"{what} has shape {matrix.shape}; expected {adata.n_obs} rows, one per cell."
        raise ValueError(msg)
    if 0 in matrix.shape:
        msg = (
            f"{what} has shape {matrix.shape}: no {'cells' if matrix.shape[0] == 0 else 'features'}. "
            "Pass an AnnData with cells and genes (check earlier filtering)."
        )
        raise ValueError(msg)
    real = np.issubdtype(matrix.dtype, np.number) and not np.issubdtype(matrix.dtype, np.complexfloating)
    if not (real or matrix.dtype == bool):  # booleans are 0 / 1 values
        msg = f"{what} has dtype {matrix.dtype}; a real-valued numeric matrix is needed."
        raise TypeError(msg)
    return matrix


def to_memory(matrix: Matrix) -> np.ndarray | sp.spmatrix:
    """The matrix itself, or an on-disk one read into memory (sparse stays sparse)."""
    if not is_on_disk(matrix):
        return matrix
    return matrix.to_memory() if hasattr(matrix, "to_memory") else matrix[()]


def stored_neighbors(adata: AnnData, use_rep: str, n_neighbors: int, key: str = "neighbors") -> str | None:
    """The ``obsp`` key of a kNN distance graph of ``use_rep`` with ``n_neighbors`` or more, or None.

    Only a Euclidean graph that ``sc.pp.neighbors`` built on the same representation qualifies.
    """
    record = adata.uns.get(key)
    if not isinstance(record, Mapping) or not isinstance(record.get("params"), Mapping):
        return None
    params, graph = record["params"], record.get("distances_key", "distances")
    if graph not in adata.obsp or params.get("metric", "euclidean") != "euclidean":
        return None
    built_on = params.get("use_rep")
    if built_on is None and use_rep == "X_pca" and adata.n_vars > 50:  # scanpy's default choice
        built_on = "X_pca"
    n_pcs = params.get("n_pcs")
    if built_on != use_rep or use_rep not in adata.obsm:
        return None
    if n_pcs is not None and int(n_pcs) != adata.obsm[use_rep].shape[1]:
        return None
    return graph if int(np.ravel(params.get("n_neighbors", 0))[0]) >= n_neighbors else None


def resolve_basis(adata: AnnData, basis: str) -> str:
    """The ``adata.obsm`` key of an embedding named with or without its ``X_`` prefix."""
    key = basis if basis in adata.obsm else f"X_{basis}"
    if key not in adata.obsm:
        msg = (
            f"basis={basis!r} is not in adata.obsm (keys: {_keys(adata.obsm)}); compute the "
            "embedding first (e.g. sc.tl.umap, sl.tl.groupenc) or pass one of those keys."
        )
        raise MissingKeyError(msg)
    return key


def describe_input(layer: str | None, use_rep: str | None) -> str:
    """Human-readable name of the chosen input, for error messages."""
    if use_rep is not None and use_rep != "X":
        return f"adata.obsm[{use_rep!r}]"
    return f"adata.layers[{layer!r}]" if layer is not None else "adata.X"


def _value_chunks(matrix: Matrix):
    """The stored values a chunk at a time; on-disk matrices are read block by block."""
    if is_on_disk(matrix):
        for block in row_blocks(matrix):
            yield block.data if sp.issparse(block) else np.asarray(block).reshape(-1)
        return
    values = matrix.data if sp.issparse(matrix) else matrix.reshape(-1)
    for start in range(0, max(values.size, 1), _CHUNK):
        yield values[start : start + _CHUNK]


def check_finite(matrix: Matrix, what: str) -> None:
    """Raise a ValueError naming ``what`` when the matrix holds NaN or infinite values."""
    if not np.issubdtype(matrix.dtype, np.floating):
        return
    bad = sum(int(np.count_nonzero(~np.isfinite(chunk))) for chunk in _value_chunks(matrix))
    if bad:
        msg = (
            f"{what} holds {bad} NaN or infinite value(s); remove or impute them first "
            "(e.g. adata = adata[:, np.isfinite(adata.X.sum(0)).A1].copy())."
        )
        raise ValueError(msg)


def check_counts(matrix: Matrix, what: str, likelihood: str) -> None:
    """Raise a ValueError unless the matrix holds non-negative integer counts, with at least one count."""
    any_count = False
    for chunk in _value_chunks(matrix):
        any_count = any_count or bool(chunk.any())
        negative = chunk < 0
        if negative.any():
            msg = (
                f"{what} holds negative values (e.g. {chunk[negative][0]:g}), but likelihood="
                f"{likelihood!r} models raw counts. Pass the raw counts (e.g. layer='counts'), or "
                "use likelihood='gaussian' for normalised or scaled data."
            )
            raise ValueError(msg)
        if np.issubdtype(chunk.dtype, np.floating):
            fractional = chunk != np.floor(chunk)
            if fractional.any():
                msg = (
                    f"{what} holds non-integer values (e.g. {chunk[fractional][0]:g}), but "
                    f"likelihood={likelihood!r} models raw counts. Pass the raw counts (e.g. "
                    "layer='counts' or adata.raw), or use likelihood='gaussian' for normalised data."
                )
                raise ValueError(msg)
    if not any_count:
        msg = f"{what} has no counts at all (every gene is zero in every cell); there is nothing to learn."
        raise ValueError(msg)


def column_positions(names: Sequence[str], target: Sequence[str]) -> np.ndarray:
    """For each name of ``target``, its position in ``names`` (-1 where absent), checked.

    ``names`` must be unique and share at least one name with ``target``.
    """
    if len(set(names)) != len(names):
        msg = "adata.var_names are not unique; make them so first (adata.var_names_make_unique())."
        raise ValueError(msg)
    position = {name: i for i, name in enumerate(names)}
    source = np.array([position.get(name, -1) for name in target], dtype=np.int64)
    if not (source >= 0).any():
        msg = f"adata.var_names share no gene with the {len(target)} reference genes; check the gene ids."
        raise ValueError(msg)
    return source


def align_columns(matrix: Matrix, names: Sequence[str], target: Sequence[str]) -> Matrix:
    """``matrix``'s columns (named ``names``) put in the order of ``target``, zeros where it has none.

    Columns whose name is not in ``target`` are dropped; sparse stays sparse.
    """
    if is_on_disk(matrix):
        msg = (
            "genes are matched to the reference's by name in memory only; read the file into memory "
            "(anndata.read_h5ad) or subset and order its genes as the reference's first."
        )
        raise ValueError(msg)
    source = column_positions(names, target)
    present = source >= 0
    if sp.issparse(matrix):
        selection = sp.csr_matrix(
            (np.ones(int(present.sum()), dtype=matrix.dtype), (source[present], np.flatnonzero(present))),
            shape=(len(names), len(target)),
        )
        return sp.csr_matrix(sp.csr_matrix(matrix) @ selection)
    aligned = np.zeros((matrix.shape[0], len(target)), dtype=matrix.dtype)
    aligned[:, present] = matrix[:, source[present]]
    return aligned


def column_means(matrix: Matrix, rows: np.ndarray, *, nonzero: bool = False) -> np.ndarray:
    """Per column, the mean over the rows marked in the boolean ``rows``.

    With ``nonzero``, the share of those rows that are not zero.
    """
    chosen = matrix[np.flatnonzero(rows)]
    if nonzero:
        chosen = chosen != 0
    return np.asarray(chosen.mean(0), dtype=np.float64).ravel()


def obs_column(adata: AnnData, key: str, argument: str) -> pd.Series:
    """The ``adata.obs`` column ``key``, or a :class:`MissingKeyError` naming ``argument``."""
    if key not in adata.obs:
        msg = f"{argument}={key!r} is not a column of adata.obs (columns: {_keys(adata.obs)})."
        raise MissingKeyError(msg)
    return adata.obs[key]


def get_numbers(adata: AnnData, key: str, argument: str) -> np.ndarray:
    """The ``adata.obs`` column ``key`` as finite float64 numbers, checked."""
    column = obs_column(adata, key, argument)
    if not pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
        msg = f"{argument}: adata.obs[{key!r}] holds {column.dtype} values, not numbers; pass numbers."
        raise ValueError(msg)
    values = column.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        msg = f"{argument}: adata.obs[{key!r}] holds NaN or infinite values; fill or drop those cells."
        raise ValueError(msg)
    return values


def get_codes(adata: AnnData, key: str, argument: str) -> tuple[np.ndarray, list[str]]:
    """Integer codes and category names of the ``adata.obs`` column ``key``.

    Missing values get code -1.

    Parameters
    ----------
    adata
        The data.
    key
        Column of ``adata.obs``.
    argument
        Name of the user's argument, for error messages.

    Returns
    -------
    The codes (int64, one per cell) and the categories as strings.
    """
    column = obs_column(adata, key, argument)
    if pd.api.types.is_float_dtype(column.dtype):
        values = column.to_numpy()
        values = values[np.isfinite(values)]
        if (values != np.round(values)).any():
            msg = (
                f"{argument}={key!r}: adata.obs[{key!r}] holds continuous numbers (e.g. "
                f"{values[values != np.round(values)][0]:g}), not categories; pass a column of cell "
                f"types or batches (convert codes with adata.obs[{key!r}].astype('category'))."
            )
            raise TypeError(msg)
    categorical = column.astype("category") if not isinstance(column.dtype, pd.CategoricalDtype) else column
    return categorical.cat.codes.to_numpy().astype(np.int64), [str(c) for c in categorical.cat.categories]


def check_n_cells(n_obs: int, batch_size: int, validation_fraction: float) -> None:
    """Require at least two minibatches of training cells."""
    n_train = n_obs - round(n_obs * validation_fraction)
    if n_train < 2 * batch_size:
        msg = (
            f"Only {n_train} training cells ({n_obs} cells, validation_fraction="
            f"{validation_fraction}) for batch_size={batch_size}: training needs at least two "
            f"minibatches. Pass batch_size={max(2, n_train // 4)} or fewer."
        )
        raise ValueError(msg)


def _keys(mapping: Sequence[str] | object) -> str:
    # anndata >= 0.13 lists .X in layers under the key None
    keys = [k for k in (mapping.keys() if hasattr(mapping, "keys") else mapping) if k is not None]
    return ", ".join(map(repr, keys)) if keys else "none"


def looks_like_counts(matrix: Matrix, n_values: int = 1_000_000) -> bool:
    """Whether the first ``n_values`` stored values are all non-negative integers, some above 1."""
    values = next(_value_chunks(matrix))[:n_values]
    if values.size == 0:
        return False
    return bool((values >= 0).all() and (values == np.round(values)).all() and values.max() > 1)
