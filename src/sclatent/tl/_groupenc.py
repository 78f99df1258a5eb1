"""``sl.tl.groupenc``."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import scanpy as sc
from anndata import AnnData

from .. import _anndata as io
from .._logging import logger
from ..models import GroupEnc
from ._utils import fit_and_write, model_tool

N_PCS = 50


@model_tool(GroupEnc)
def groupenc(
    adata: AnnData | str | os.PathLike[str],
    *,
    key_added: str | None = None,
    copy: bool = False,
    **params: Any,
) -> AnnData | None:
    """Embed cells with GroupEnc, a variational encoder that preserves global structure.

    GroupEnc (Novak et al. 2023) trains an encoder so that, within random groups of ``gamma`` cells,
    the relative distances in the embedding match those of the input. The model is
    :class:`sclatent.models.GroupEnc`; its arguments are this function's, ``local_weight=1``
    keeping neighbourhoods as well as the global layout.

    Parameters
    ----------
    adata
        Annotated data: normalised, log-transformed, scaled, with ``obsm["X_pca"]``; or the path
        of an ``.h5ad`` file or ``.zarr`` store, read with its matrix on disk and returned with the
        outputs. With ``use_rep=None`` and no ``obsm["X_pca"]``, 50 principal components of ``.X``
        are computed by ``sc.pp.pca`` (a warning is logged; a matrix on disk is read into memory
        for it) and stored as it stores them, ``obsm["X_pca"]``, ``varm["PCs"]``, ``uns["pca"]``,
        along with the embedding.
    {model}
    key_added
        Key of the outputs (default ``"groupenc"``): ``obsm["X_<key>"]`` and ``uns[key]``.
    {copy}

    Returns
    -------
    The copy when ``copy=True``, else None. Writes

    ``adata.obsm["X_groupenc"]``
        The posterior mean, ``n_latent`` columns.
    ``adata.uns["groupenc"]``
        ``"params"`` (every argument as used, device, versions) and ``"history"`` (per-epoch
        ``train_loss``, ``val_loss``, ``val_group``, ``val_kl``).
    """
    model = GroupEnc(**params)
    pca: list[AnnData] = []

    def inputs(opened: AnnData) -> AnnData:
        if params.get("use_rep") is not None or "X_pca" in opened.obsm:
            return opened
        pca.append(_pca(opened, model.params["random_state"]))
        return pca[0]

    def extra(target: AnnData, key: str) -> None:
        if pca:
            target.obsm["X_pca"], target.varm["PCs"] = pca[0].obsm["X_pca"], pca[0].varm["PCs"]
            target.uns["pca"] = pca[0].uns["pca"]

    return fit_and_write(model, adata, key_added=key_added, copy=copy, extra=extra, inputs=inputs)


def _pca(adata: AnnData, random_state: int | None) -> AnnData:
    """``sc.pp.pca`` of ``.X`` (50 components) in a new AnnData, with the warnings due.

    A matrix on disk is read into memory for it (sparse stays sparse).
    """
    matrix = io.to_memory(io.get_matrix(adata))
    io.check_finite(matrix, "adata.X")
    n_comps = min(N_PCS, adata.n_obs - 1, adata.n_vars - 1)
    logger.warning(
        "groupenc: adata.obsm['X_pca'] is missing; computing %d principal components of adata.X "
        "(sc.pp.pca), stored in obsm['X_pca'], varm['PCs'] and uns['pca']. Run sc.pp.pca first to "
        "choose them yourself.",
        n_comps,
    )
    if io.looks_like_counts(matrix):
        logger.warning(
            "groupenc: adata.X looks like raw counts, but GroupEnc expects normalised, log-transformed, "
            "scaled data. Run sc.pp.normalize_total, sc.pp.log1p and sc.pp.scale first."
        )
    pcs = AnnData(X=matrix, obs=adata.obs[[]].copy(), var=adata.var[[]].copy())
    sc.pp.pca(pcs, n_comps=n_comps, random_state=random_state)
    pcs.obsm["X_pca"] = np.ascontiguousarray(pcs.obsm["X_pca"], dtype=np.float32)
    return pcs
