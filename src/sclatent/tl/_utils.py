"""What every ``tl`` function does after choosing its model: fit, then write outputs."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from anndata import AnnData

from .._anndata import check_anndata
from .._core.validation import Key, flag
from .._io import read_anndata
from ..models import BaseModel

logger = logging.getLogger("sclatent")


def fit_and_write(
    model: BaseModel,
    adata: AnnData | str | os.PathLike[str],
    *,
    key_added: str | None,
    copy: bool,
    extra: Callable[[AnnData, str], None] | None = None,
    inputs: AnnData | None = None,
) -> AnnData | None:
    """Fit ``model`` on ``adata``, then write ``obsm["X_<key>"]`` and ``uns[key]``.

    Nothing is written unless training and every prediction succeed.

    Parameters
    ----------
    model
        The unfitted model.
    adata
        The data, or the path of an ``.h5ad`` file / ``.zarr`` store, opened with its matrix on disk
        (:func:`sclatent.read_backed`); the opened AnnData is then returned with the outputs.
    key_added
        Key of the outputs; default the model's tool name.
    copy
        Write into a copy and return it.
    extra
        Writes further outputs into the target AnnData, given the key.
    inputs
        What the model reads, when that is not ``adata`` itself (e.g. PCs computed on the fly).

    Returns
    -------
    The copy when ``copy=True``, the opened AnnData when given a path, else None.
    """
    check_anndata(adata, path_allowed=True)
    key = Key(storable=True)("key_added", key_added) or model.tool
    copy = flag("copy", copy)
    from_path = not isinstance(adata, AnnData)
    if from_path:
        adata = read_anndata(adata, backed=True)
    inputs = adata if inputs is None else inputs
    model.fit(inputs)
    embedding = model.transform(inputs)
    staged = AnnData(obs=adata.obs[[]].copy())
    if extra is not None:
        extra(staged, key)
    target = adata.copy() if copy and not from_path else adata
    target.obsm[f"X_{key}"] = embedding
    for name, value in staged.obsm.items():
        target.obsm[name] = value
    for name in staged.obs.columns:
        target.obs[name] = staged.obs[name].values
    target.uns[key] = model.uns_record()
    history = model.history_
    logger.info(
        "%s: %d epochs on %s; added obsm['X_%s'] and uns[%r]%s",
        model.tool,
        len(history["train_loss"]),
        model.fitted_["device"],
        key,
        key,
        f", final val_loss {history['val_loss'][-1]:.4g}" if history.get("val_loss") else "",
    )
    return target if copy or from_path else None
