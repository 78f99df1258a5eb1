"""SamplingAE: autoencoders that reconstruct a sampled same-class (ICRST) or random (TRST) target."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from anndata import AnnData
from torch import nn

from .. import _anndata as io
from .._core.data import CellData, row_source
from .._core.modules.sampling_autoencoder import LOSSES, MODES, SamplingAutoencoder, draw_targets
from .._docs import shared_parameters
from .._logging import logger
from .._validation import Check, Choice, Real, SeedLike
from ._base import BaseModel, arguments


@shared_parameters
class SamplingAE(BaseModel):
    """An autoencoder trained to reconstruct a sampled target instead of its input (arXiv 2309.01532).

    In every epoch each training cell, with probability ``p``, is paired with a target drawn at
    random from the training cells of its own class (``mode="icrst"``, intra-class reconstruction
    sampling target) or from all training cells (``"trst"``); otherwise its target is itself.
    ``mode="none"`` is the plain autoencoder on the same network. ICRST pulls cells of a class
    together in the code, which helps classifiers trained on it; TRST at p = 1 has the global mean as
    its squared-error optimum, so expect little structure from it.

    ICRST uses the labels: evaluate its embedding on cells it was not trained on (fit on training
    cells, then ``transform`` the held-out ones), as ``benchmarks/bench_ae_sampling.py`` does.

    Parameters
    ----------
    mode
        ``"icrst"``, ``"trst"`` or ``"none"``.
    labels_key
        Column of ``adata.obs`` with the classes (``"icrst"`` only); cells with a missing label keep
        their own target and are never drawn as targets.
    p
        Probability, per cell and epoch, of a drawn target (in [0, 1]).
    {n_latent}
    use_rep
        Key of ``adata.obsm`` holding the input (e.g. ``"X_pca"``).
    {layer}
    {hidden}
    loss
        ``"mse"``, or for raw counts ``"poisson"``, ``"nb"``, ``"zip"``, ``"zinb"``.
    {dropout}
    epochs
        Training epochs.
    {batch_size}
    {lr}
    {stopping}
    """

    tool = "ae_sampling"

    checks: ClassVar[dict[str, Check]] = {
        "mode": Choice(MODES),
        "loss": Choice(LOSSES),
        "p": Real(low=0, high=1),
    }

    def __init__(
        self,
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
    ) -> None:
        super().__init__(arguments(locals()))

    def _check_params(self, params: dict[str, Any]) -> None:
        if params["mode"] == "icrst" and params["labels_key"] is None:
            msg = "mode='icrst' draws targets from the cell's own class: pass labels_key (an obs column)."
            raise ValueError(msg)
        if params["mode"] != "icrst" and params["labels_key"] is not None:
            ignored = params["labels_key"], params["mode"]
            logger.warning("ae_sampling: labels_key=%r is ignored with mode=%r.", *ignored)
            params["labels_key"] = None

    def _cell_data(self, adata: AnnData, device: torch.device, *, fitting: bool) -> CellData:
        p = self.params
        matrix, what = self._input_matrix(adata, fitting=fitting)
        if p["loss"] != "mse":
            io.check_counts(matrix, what, p["loss"])
        source = row_source(matrix, device)
        obs = {}
        if p["loss"] != "mse":
            obs["log_library"] = source.row_sums().clamp_min(1.0).log().float()
        if fitting:
            io.check_n_cells(adata.n_obs, p["batch_size"], p["validation_fraction"])
            if p["mode"] == "icrst":
                obs["label"] = self._codes(adata, "labels_key", fitting=True)
                self._check_classes(obs["label"].numpy())
        return CellData(source, obs)

    def _check_classes(self, codes: np.ndarray) -> None:
        key = self.params["labels_key"]
        if (codes < 0).all():
            msg = f"adata.obs[{key!r}] has no labels at all; ICRST needs labelled cells."
            raise ValueError(msg)
        categories = self.fitted_["labels_key_categories"]
        sizes = np.bincount(codes[codes >= 0], minlength=len(categories))
        lonely = [categories[c] for c in np.flatnonzero(sizes == 1)]
        if lonely:
            msg = (
                f"adata.obs[{key!r}] has classes with a single cell ({lonely[:5]}): ICRST can only "
                "draw that cell itself. Merge or drop them, or set their label to NaN."
            )
            raise ValueError(msg)

    def _hooks(self, module: nn.Module, data: CellData, rng: np.random.Generator) -> dict[str, Any]:
        p = self.params
        pool = np.sort(self.train_indices_)
        labels = data.obs["label"].cpu().numpy() if "label" in data.obs else None

        def draw(epoch: int) -> dict[str, float]:
            targets, drawn = draw_targets(p["mode"], p["p"], pool, labels, len(data), rng)
            data.target_rows = torch.from_numpy(targets)
            return {"swapped_share": float(drawn[pool].mean())}

        return {"on_epoch_start": draw}

    def _build_module(self) -> SamplingAutoencoder:
        p = self.params
        return SamplingAutoencoder(
            self.fitted_["n_input"],
            n_latent=p["n_latent"],
            hidden=p["hidden"],
            loss=p["loss"],
            dropout=p["dropout"],
        )

    def _embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.module_.encode(batch["x"])
