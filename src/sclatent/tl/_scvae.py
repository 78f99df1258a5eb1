"""``sl.tl.scvae``."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from ..models import SCVAE
from ._utils import fit_and_write, model_tool


@model_tool(SCVAE)
def scvae(
    adata: AnnData | str | os.PathLike[str],
    *,
    key_added: str | None = None,
    copy: bool = False,
    **params: Any,
) -> AnnData | None:
    """Embed cells with a VAE or Gaussian-mixture VAE on raw counts (scVAE, Grønbech et al. 2020).

    The model is :class:`sclatent.models.SCVAE`; its arguments are this function's.

    Parameters
    ----------
    adata
        Annotated data, raw counts in ``.X`` or ``layer`` for the count likelihoods; or the path of
        an ``.h5ad`` file or ``.zarr`` store, read with its matrix on disk and returned with the
        outputs.
    {model}
    key_added
        Key of the outputs (default ``"scvae"``): ``obsm["X_<key>"]``, ``uns[key]``, and for the
        mixture prior ``obs["<key>_cluster"]``, ``obsm["X_<key>_cluster_proba"]`` and with
        ``labels_key`` ``obs["<key>_label"]``, ``obs["<key>_label_confidence"]``.
    {copy}

    Returns
    -------
    The copy when ``copy=True``, else None. Writes

    ``adata.obsm["X_scvae"]``
        The posterior mean of z.
    ``adata.uns["scvae"]``
        ``"params"`` (every argument as used, device, versions) and ``"history"`` (per-epoch
        ``train_loss``, ``val_loss``, ``val_elbo``, ``val_reconstruction``, ``val_kl``).
    ``adata.obs["scvae_cluster"]``, ``adata.obsm["X_scvae_cluster_proba"]``
        Mixture prior only: argmax q(y|x) (categorical ``0..C-1`` over the ``C`` components in use,
        recorded as ``uns["scvae"]["n_clusters"]``) and q(y|x).
    ``adata.obs["scvae_label"]``, ``adata.obs["scvae_label_confidence"]``
        With ``labels_key``: a label for every cell (the given one's class or the predicted one)
        and max q(y|x) over the classes.
    """
    model = SCVAE(**params)

    def extra_outputs(target: AnnData, key: str) -> None:
        if model.params["prior"] != "mixture":
            return
        proba = model.cluster_probabilities(adata)
        clusters = np.argmax(proba, axis=1)
        # categories: the clusters that hold cells, named by their column of the probabilities
        categories = [str(k) for k in np.unique(clusters)]
        target.obs[f"{key}_cluster"] = pd.Categorical(clusters.astype(str), categories=categories)
        target.obsm[f"X_{key}_cluster_proba"] = proba
        if model.params["labels_key"] is not None:
            labels, confidence = model.predict_labels(adata)
            classes = model.fitted_["labels_key_categories"]
            target.obs[f"{key}_label"] = pd.Categorical(labels, categories=classes)
            target.obs[f"{key}_label_confidence"] = confidence

    return fit_and_write(model, adata, key_added=key_added, copy=copy, extra=extra_outputs)
