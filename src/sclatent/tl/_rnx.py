"""``sl.tl.rnx``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from anndata import AnnData

from .. import _anndata as io
from .._core.metrics.rnx_curves import k_grid, rnx_curves
from .._core.runtime.device import resolve_device
from .._docs import shared_parameters
from .._logging import logger
from .._validation import Integer, Key, SeedLike, check_arguments, device, flag, resolve_seed, seed
from ._utils import output_target, with_checks

CHECKS = {
    "use_rep": Key(),
    "n_ref": Integer(minimum=2, optional=True),
    "key_added": Key(storable=True),
    "random_state": seed,
    "device": device,
    "copy": flag,
}


@shared_parameters
@with_checks(CHECKS)
def rnx(
    adata: AnnData,
    basis: str | Sequence[str] | None = None,
    *,
    use_rep: str | None = None,
    n_ref: int | None = None,
    key_added: str | None = None,
    device: str = "auto",
    random_state: SeedLike = 0,
    copy: bool = False,
) -> AnnData | None:
    """Score how well embeddings preserve neighbourhoods: R_NX(K), Local SP and Global SP.

    R_NX(K) (Lee & Verleysen 2009) is the share of each cell's K nearest neighbours in the reference
    space that are also among its K nearest in the embedding, rescaled so that 0 is a random embedding
    and 1 a perfect one. Local SP averages it with weights 1/K (the area under the curve on a log K
    axis: small neighbourhoods); Global SP averages it over all K (large-scale structure). Neighbours
    are Euclidean, self excluded, ties broken by cell order.

    Parameters
    ----------
    adata
        Annotated data.
    basis
        Key(s) of ``adata.obsm`` to score, with or without the ``X_`` prefix (``"umap"`` or
        ``"X_umap"``); None: every embedding in ``obsm`` with at least two columns except the reference
        and probability matrices (keys ending in ``_proba``, e.g. GMVAE cluster probabilities).
    use_rep
        Reference space: a key of ``adata.obsm`` or ``"X"``; None: ``"X_pca"`` when present, else ``.X``.
    n_ref
        None: the exact curve over all N cells (time O(N^2 log N), memory O(N) per row chunk). An
        integer: an unbiased estimate from that many reference cells drawn at random and ranked against
        all cells, with standard errors of the SP values; for N beyond ~50,000.
    key_added
        Key in ``adata.uns`` (default ``"rnx"``).
    device
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    random_state
        Seed of the reference sample (an int, None or a NumPy generator).
    {copy}

    Returns
    -------
    The copy when ``copy=True``, else None. Writes ``adata.uns["rnx"][basis]`` for each basis, a dict
    with ``"K"`` and ``"rnx"`` (the whole curve up to N = 100,002, else up to 2,000 log-spaced K),
    ``"local_sp"``, ``"global_sp"``, their standard errors ``"local_sp_se"``, ``"global_sp_se"`` (0 when
    exact), ``"rnx_se"`` (standard errors of ``"rnx"``; 0 when exact), ``"reference"``, ``"n_ref"``
    (cells averaged over; N when exact) and ``"exact"``.
    """
    io.check_anndata(adata)
    args = check_arguments(locals(), CHECKS)
    use_rep, n_ref, random_state, copy = (args[k] for k in ("use_rep", "n_ref", "random_state", "copy"))
    results_key = args["key_added"] or "rnx"
    io.check_results_key(adata, results_key)
    if adata.n_obs < 4:
        msg = f"adata has {adata.n_obs} cells; R_NX needs at least 4."
        raise ValueError(msg)
    reference = use_rep or ("X_pca" if "X_pca" in adata.obsm else "X")
    keys = _resolve_bases(adata, basis, reference)
    # every cell's distance to the reference cells is needed: an on-disk .X is read into memory
    # (a sparse matrix stays sparse)
    ref_matrix = io.to_memory(io.get_matrix(adata, use_rep=reference))
    io.check_finite(ref_matrix, io.describe_input(None, reference))
    if reference == "X" and io.looks_like_counts(ref_matrix):
        logger.warning(
            "rnx: the reference space is adata.X, which looks like raw counts; neighbourhoods of raw "
            "counts follow sequencing depth. Run sc.pp.normalize_total, sc.pp.log1p and sc.pp.pca "
            "first (the reference is then X_pca), or pass use_rep."
        )
    embeddings = []
    for key in keys:
        embedding = io.get_matrix(adata, use_rep=key)
        io.check_finite(embedding, f"adata.obsm[{key!r}]")
        embeddings.append(embedding)
    n = adata.n_obs
    rows = None
    if n_ref is not None and n_ref < n:
        rows = np.sort(np.random.default_rng(resolve_seed(random_state)).choice(n, n_ref, replace=False))
    resolved = resolve_device(device)
    results = rnx_curves(ref_matrix, embeddings, rows=rows, device=resolved)
    grid = k_grid(n)
    target = output_target(adata, copy=copy, tool="rnx")
    scores = target.uns.setdefault(results_key, {})
    for key, result in zip(keys, results, strict=True):
        scores[key] = {
            "K": grid,
            "rnx": result.rnx[grid - 1],
            "local_sp": result.local_sp,
            "global_sp": result.global_sp,
            "local_sp_se": result.local_sp_se,
            "global_sp_se": result.global_sp_se,
            "reference": reference,
            "n_ref": result.n_ref,
            "exact": rows is None,
            "rnx_se": result.rnx_se,
        }
        logger.info(
            "R_NX of %s vs %s on %s: Local SP %.4f, Global SP %.4f",
            key,
            reference,
            resolved,
            result.local_sp,
            result.global_sp,
        )
    return target if copy else None


def _resolve_bases(adata: AnnData, basis: str | Sequence[str] | None, reference: str) -> list[str]:
    """The ``adata.obsm`` keys of the embeddings to score."""
    if basis is None:
        keys = [
            k
            for k, v in adata.obsm.items()
            if k != reference and not k.endswith("_proba") and getattr(v, "ndim", 0) == 2 and v.shape[1] >= 2
        ]
        if not keys:
            msg = (
                f"adata.obsm holds no embedding to score besides the reference {reference!r} "
                f"(keys: {io._keys(adata.obsm)}); compute one (e.g. sc.tl.umap) or pass basis."
            )
            raise ValueError(msg)
        return keys
    names = [basis] if isinstance(basis, str) else basis
    if not isinstance(names, Sequence) or not names or not all(isinstance(n, str) for n in names):
        msg = f"basis={basis!r}: expected a key of adata.obsm, a non-empty list of keys, or None (all)."
        raise (ValueError if isinstance(names, Sequence) and not names else TypeError)(msg)
    return [io.resolve_basis(adata, name) for name in names]
