"""``sl.tl.ae_sampling``."""

from __future__ import annotations

import os
from typing import Any

from anndata import AnnData

from ..models import SamplingAE
from ._utils import fit_and_write, model_tool


@model_tool(SamplingAE)
def ae_sampling(
    adata: AnnData | str | os.PathLike[str],
    *,
    key_added: str | None = None,
    copy: bool = False,
    **params: Any,
) -> AnnData | None:
    """Embed cells with an autoencoder that reconstructs a sampled target (ICRST / TRST / plain AE).

    The model is :class:`sclatent.models.SamplingAE`; its arguments are this function's. ICRST
    learns from the labels, so an embedding of the cells it was trained on flatters classifiers;
    score it on held-out cells (see :func:`sclatent.tl.latent_accuracy`).

    Parameters
    ----------
    {adata_or_path}
    {model}
    key_added
        Key of the outputs (default ``"ae_sampling"``): ``obsm["X_<key>"]`` and ``uns[key]``.
    {copy}

    Returns
    -------
    The copy when ``copy=True``, else None. Writes

    ``adata.obsm["X_ae_sampling"]``
        The code of each cell, ``n_latent`` columns.
    ``adata.uns["ae_sampling"]``
        ``"params"`` (every argument as used, device, versions) and ``"history"`` (per-epoch
        ``train_loss``, ``val_loss`` and ``swapped_share``, the share of training cells whose target
        was drawn rather than themselves).
    """
    model = SamplingAE(**params)
    return fit_and_write(model, adata, key_added=key_added, copy=copy)
