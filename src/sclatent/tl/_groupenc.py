"""``sl.tl.groupenc``."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import scanpy as sc
from anndata import AnnData

from .. import _anndata as io
from .._core.validation import SeedLike
from ..models import GroupEnc
from ._utils import fit_and_write

logger = logging.getLogger("sclatent")

N_PCS = 50


def groupenc(
    adata: AnnData | str | os.PathLike[str],
    *,
    gamma: int = 4,
    n_latent: int = 2,
    use_rep: str | None = None,
    hidden: Sequence[int] = (32, 64, 128, 32),
    kl_weight: float = 1e-4,
    epochs: int = 500,
    batch_size: int = 512,
    lr: float = 1e-3,
    early_stopping: bool = False,
    patience: int = 20,
    validation_fraction: float = 0.1,
    random_state: SeedLike = 0,
    device: str = "auto",
    progress: bool = True,
    key_added: str | None = None,
    copy: bool = False,
) -> AnnData | None:
    """Embed cells with GroupEnc, a variational encoder that preserves global structure.

    GroupEnc (Novak et al. 2023) trains an encoder so that, within random groups of ``gamma`` cells,
    the relative distances in the embedding match those of the input. See
    :class:`sclatent.models.GroupEnc`.

    Parameters
    ----------
    adata
        Annotated data: normalised, log-transformed, scaled, with ``obsm["X_pca"]``; or the path
        of an ``.h5ad`` file or ``.zarr`` store, read with its matrix on disk and returned with the
        outputs.
    gamma, n_latent, use_rep, hidden, kl_weight
        The model; see :class:`sclatent.models.GroupEnc`. With ``use_rep=None`` and no
        ``obsm["X_pca"]``, 50 principal components of ``.X`` are computed the scanpy way (a warning is
        logged) and stored in ``obsm["X_pca"]`` along with the embedding.
    epochs, batch_size, lr, early_stopping, patience, validation_fraction
        Training; see :class:`sclatent.models.GroupEnc`.
    random_state, device, progress
        Seed, device (``"auto"``: CUDA when available) and progress bar.
    key_added
        Key of the outputs (default ``"groupenc"``): ``obsm["X_<key>"]`` and ``uns[key]``.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    The copy when ``copy=True``, else None. Writes

    ``adata.obsm["X_groupenc"]``
        The posterior mean, ``n_latent`` columns.
    ``adata.uns["groupenc"]``
        ``"params"`` (every argument as used, device, versions) and ``"history"`` (per-epoch
        ``train_loss``, ``val_loss``, ``val_group``, ``val_kl``).
    """
    model = GroupEnc(**{k: v for k, v in locals().items() if k not in ("adata", "key_added", "copy")})
    inputs, extra = None, None
    if use_rep is None and isinstance(adata, AnnData) and "X_pca" not in adata.obsm:
        pcs = _pca(adata, model.params["random_state"])
        inputs = AnnData(obs=adata.obs[[]].copy(), obsm={"X_pca": pcs})

        def extra(target: AnnData, key: str) -> None:
            target.obsm["X_pca"] = pcs

    return fit_and_write(model, adata, key_added=key_added, copy=copy, extra=extra, inputs=inputs)


def _pca(adata: AnnData, random_state: int | None) -> np.ndarray:
    """50 principal components of ``.X``, as ``sc.pp.pca`` computes them, with the warnings due."""
    matrix = io.get_matrix(adata)
    io.check_finite(matrix, "adata.X")
    n_comps = min(N_PCS, adata.n_obs - 1, adata.n_vars - 1)
    logger.warning(
        "groupenc: adata.obsm['X_pca'] is missing; computing %d principal components of adata.X "
        "(sc.pp.pca). Run sc.pp.pca first to choose them yourself.",
        n_comps,
    )
    if io.looks_like_counts(matrix):
        logger.warning(
            "groupenc: adata.X looks like raw counts, but GroupEnc expects normalised, log-transformed, "
            "scaled data. Run sc.pp.normalize_total, sc.pp.log1p and sc.pp.scale first."
        )
    pcs = sc.pp.pca(matrix, n_comps=n_comps, random_state=random_state)
    return np.ascontiguousarray(pcs, dtype=np.float32)
