"""GroupEnc: a variational encoder trained with the group loss (Novak et al. 2023)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..nn.layers import MLP, GaussianHead, reparameterize
from ..nn.losses import group_loss, kl_normal, neighbour_loss

#: Scale of the neighbour loss against the group loss, so that ``local_weight=1`` balances them.
LOCAL_SCALE = 0.005


class GroupEncoder(nn.Module):
    """Variational encoder q(z|x) whose samples keep the relative distances within random groups.

    There is no decoder: the objective is the group loss between inputs and latent samples plus a
    small KL term towards N(0, I), which fixes the scale the group loss leaves free.

    Parameters
    ----------
    n_input
        Input dimension (e.g. 50 principal components).
    n_latent
        Embedding dimension.
    hidden
        Hidden layer widths.
    gamma
        Cells per group.
    kl_weight
        Weight of the KL term.
    local_weight
        Weight of the neighbour loss (:func:`~sclatent._core.nn.losses.neighbour_loss`) between each cell
        and the input-space neighbour given as ``batch["target"]``; 0 trains on the group loss alone.
    """

    def __init__(
        self,
        n_input: int,
        *,
        n_latent: int = 2,
        hidden: Sequence[int] = (32, 64, 128, 32),
        gamma: int = 4,
        kl_weight: float = 1e-4,
        local_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.gamma = gamma
        self.kl_weight = kl_weight
        self.local_weight = local_weight
        self.encoder = MLP(n_input, hidden, dropout=0.0)
        self.head = GaussianHead(self.encoder.n_output, n_latent)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z|x); the mean is the embedding."""
        return self.head(self.encoder(x))

    def loss(self, batch: dict[str, torch.Tensor], kl_weight: float = 1.0) -> dict[str, torch.Tensor]:
        """Group loss + ``kl_weight * self.kl_weight *`` KL (+ the weighted neighbour loss), with terms."""
        x = batch["x"]
        local = self.local_weight > 0 and "target" in batch  # no target: the local term has not started
        # a cell and its neighbour go through the encoder together (one batch-norm batch)
        mean, log_var = self.encode(torch.cat([x, batch["target"]]) if local else x)
        z = reparameterize(mean, log_var)
        n = x.shape[0]
        group = group_loss(x, z[:n], self.gamma)
        kl = kl_normal(mean[:n], log_var[:n]).mean()
        terms = {"group": group, "kl": kl}
        loss = group + kl_weight * self.kl_weight * kl
        if local:
            terms["local"] = neighbour_loss(z[:n], z[n:])
            loss = loss + self.local_weight * LOCAL_SCALE * terms["local"]
        elif self.local_weight > 0:
            terms["local"] = torch.full_like(group, torch.nan)  # keeps the history's epochs aligned
        return {"loss": loss, **terms}
