"""Autoencoders that reconstruct a sampled target: ICRST, TRST and the plain AE (arXiv 2309.01532)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..nn.layers import MLP, LikelihoodDecoder
from ..nn.likelihoods import COUNT_LIKELIHOODS, log_prob_sum

MODES = ("icrst", "trst", "none")
LOSSES = ("mse", *COUNT_LIKELIHOODS)


def draw_targets(
    mode: str,
    p: float,
    pool: np.ndarray,
    codes: np.ndarray | None,
    n_cells: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw every cell's reconstruction target for one epoch, in a few vectorised steps.

    Each cell, with probability ``p``, gets a target drawn uniformly from ``pool``: from the pool cells
    of its own class (``"icrst"``) or from the whole pool (``"trst"``); otherwise (and always for
    ``"none"``, and for ICRST cells without a label or whose class has no pool cell) itself.

    Parameters
    ----------
    mode
        ``"icrst"``, ``"trst"`` or ``"none"``.
    p
        Probability of drawing a target.
    pool
        Cells that may be targets (the training cells).
    codes
        Class of every cell (-1: no label); needed for ``"icrst"``.
    n_cells
        Number of cells.
    rng
        Source of the draws.

    Returns
    -------
    The target row of every cell, and whether it was drawn (rather than the cell itself).
    """
    targets = np.arange(n_cells)
    drawn = np.zeros(n_cells, dtype=bool)
    if mode == "none" or p == 0:
        return targets, drawn
    drawn = rng.random(n_cells) < p
    if mode == "trst":
        targets[drawn] = pool[rng.integers(0, len(pool), int(drawn.sum()))]
        return targets, drawn
    pool_codes = codes[pool]
    labelled = pool[pool_codes >= 0]
    by_class = labelled[np.argsort(codes[labelled], kind="stable")]
    counts = np.bincount(codes[by_class], minlength=max(int(codes.max()) + 1, 1))
    starts = np.cumsum(counts) - counts
    drawn &= codes >= 0
    drawn[drawn] = counts[codes[drawn]] > 0
    classes = codes[drawn]
    offsets = np.floor(rng.random(len(classes)) * counts[classes]).astype(np.int64)
    targets[drawn] = by_class[starts[classes] + offsets]
    return targets, drawn


class SamplingAutoencoder(nn.Module):
    """A deterministic autoencoder scored on a target that may be another cell than its input.

    Parameters
    ----------
    n_input
        Number of features.
    n_latent
        Dimension of the code.
    hidden
        Hidden widths of the encoder; the decoder mirrors them.
    loss
        ``"mse"`` (mean squared error per feature) or a count likelihood (``"poisson"``, ``"nb"``,
        ``"zip"``, ``"zinb"``; the encoder then sees log1p counts and the loss is the negative
        log-likelihood per cell).
    dropout
        Encoder dropout rate.
    """

    def __init__(
        self,
        n_input: int,
        *,
        n_latent: int = 10,
        hidden: Sequence[int] = (128, 64),
        loss: str = "mse",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.loss_name = loss
        self.is_count = loss in COUNT_LIKELIHOODS
        self.encoder = MLP(n_input, hidden, dropout=dropout)
        self.code = nn.Linear(self.encoder.n_output, n_latent)
        likelihood = loss if self.is_count else "gaussian"
        self.decoder = LikelihoodDecoder(n_latent, tuple(reversed(hidden)), n_input, likelihood)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code (embedding) of each cell."""
        return self.code(self.encoder(torch.log1p(x) if self.is_count else x))

    def loss(self, batch: dict[str, torch.Tensor], kl_weight: float = 1.0) -> dict[str, torch.Tensor]:
        """Reconstruction loss of ``batch["target"]`` (the input itself when absent) from the input."""
        key = "target" if "target" in batch else "x"
        target = batch[key]
        z = self.encode(batch["x"])
        if not self.is_count:
            return {"loss": (self.decoder(z)["mean"] - target).square().mean()}
        log_library = batch.get("target_log_library", batch.get("log_library"))
        params = self.decoder(z, log_library)
        return {"loss": -log_prob_sum(self.loss_name, target, params, batch.get(f"{key}_positives")).mean()}
