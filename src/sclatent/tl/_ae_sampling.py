"""``sl.tl.ae_sampling``."""

from __future__ import annotations

import os
from collections.abc import Sequence

from anndata import AnnData

from .._core.validation import SeedLike
from ..models import SamplingAE
from ._utils import fit_and_write


def ae_sampling(
    adata: AnnData | str | os.PathLike[str],
    *,
    mode: str = "icrst",
    labels_key: str | None = None,
    p: float = 1.0,
    n_latent: int = 10,
    use_rep: str | None = None,
    layer: str | None = None,
    hidden: Sequence[int] = (128, 64),
    loss: str = "mse",
    dropout: float = 0.0,
    epochs: int = 100,
    batch_size: int = 128,
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
    """Embed cells with an autoencoder that reconstructs a sampled target (ICRST / TRST / plain AE).

    See :class:`sclatent.models.SamplingAE`. ICRST learns from the labels, so an embedding of the
    cells it was trained on flatters classifiers; score it on held-out cells (see
    :func:`sclatent.tl.latent_accuracy`).

    Parameters
    ----------
    adata
        Annotated data; or the path of an ``.h5ad`` file or
        ``.zarr`` store, read with its matrix on disk and returned with the outputs.
    mode, labels_key, p, n_latent, use_rep, layer, hidden, loss, dropout
        The model; see :class:`sclatent.models.SamplingAE`.
    epochs, batch_size, lr, early_stopping, patience, validation_fraction
        Training; see :class:`sclatent.models.SamplingAE`.
    random_state, device, progress
        Seed, device (``"auto"``: CUDA when available) and progress bar.
    key_added
        Key of the outputs (default ``"ae_sampling"``): ``obsm["X_<key>"]`` and ``uns[key]``.
    copy
        Return a modified copy instead of writing into ``adata``.

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
    model = SamplingAE(**{k: v for k, v in locals().items() if k not in ("adata", "key_added", "copy")})
    return fit_and_write(model, adata, key_added=key_added, copy=copy)
