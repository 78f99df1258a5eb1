"""Neural-network building blocks: fully connected layers, Gaussian heads, likelihood decoders."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from ..._validation import check_choice
from ..runtime.precision import full_precision
from .likelihoods import COUNT_LIKELIHOODS, LIKELIHOODS


class MLP(nn.Module):
    """Fully connected layers, each linear -> batch norm -> ReLU -> dropout.

    Parameters
    ----------
    n_input
        Input features.
    hidden
        Width of each hidden layer (empty: the identity).
    n_cat
        Number of categories of a covariate (e.g. batch) whose one-hot code is appended to the input of
        every layer; 0 for none.
    dropout
        Dropout rate after each layer.
    batch_norm
        Batch normalisation after each linear layer.
    """

    def __init__(
        self,
        n_input: int,
        hidden: Sequence[int],
        *,
        n_cat: int = 0,
        dropout: float = 0.1,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        self.n_cat = n_cat
        widths = [n_input, *hidden]
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.Linear(n_in + n_cat, n_out),
                nn.BatchNorm1d(n_out, momentum=0.01, eps=1e-3) if batch_norm else nn.Identity(),
                nn.ReLU(),
                nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            )
            for n_in, n_out in pairwise(widths)
        )
        self.n_output = widths[-1]

    def forward(self, x: torch.Tensor, cat: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the layers to ``x`` of shape ``(..., n_input)``; ``cat`` holds integer categories."""
        lead = x.shape[:-1]
        one_hot = one_hot_or_none(cat, self.n_cat, x)
        x = x.reshape(-1, x.shape[-1])
        if one_hot is not None:
            one_hot = one_hot.reshape(-1, self.n_cat)
        for layer in self.layers:
            x = layer(x if one_hot is None else torch.cat([x, one_hot], dim=-1))
        return x.reshape(*lead, x.shape[-1])


def one_hot_or_none(cat: torch.Tensor | None, n_cat: int, like: torch.Tensor) -> torch.Tensor | None:
    """One-hot code of ``cat`` shaped to broadcast with ``like``'s leading dimensions, or None.

    ``cat`` holds integer categories, or is already a ``(n, n_cat)`` float design (covariates).
    """
    if n_cat == 0 or cat is None:
        return None
    one_hot = cat.to(like.dtype) if cat.is_floating_point() else F.one_hot(cat.long(), n_cat).to(like.dtype)
    return one_hot.expand(*like.shape[:-1], n_cat)


class GaussianHead(nn.Module):
    """Mean and log-variance of a diagonal Gaussian from hidden features.

    Parameters
    ----------
    n_input
        Hidden features.
    n_output
        Dimension of the Gaussian.
    """

    def __init__(self, n_input: int, n_output: int) -> None:
        super().__init__()
        self.mean = nn.Linear(n_input, n_output)
        self.log_var = nn.Linear(n_input, n_output)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(mean, log_var)``, float32 also under bf16 autocast; the log-variance in [-12, 12]."""
        return full_precision(self.mean(h)), full_precision(self.log_var(h)).clamp(-12.0, 12.0)


def reparameterize(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """Draw ``mean + std * eps`` with ``eps ~ N(0, I)``."""
    return mean + torch.randn_like(mean) * (0.5 * log_var).exp()


class LikelihoodDecoder(nn.Module):
    """An MLP from latent codes to the parameters of a likelihood over every feature.

    Count likelihoods get ``log_mu`` = log library size + log-softmax of the output (so the decoder
    spreads the observed library over genes), a per-gene ``log_theta`` (NB, ZINB) and ``pi_logits``
    (ZIP, ZINB); ``"gaussian"`` gets ``mean`` and a per-feature ``log_var``.

    Parameters
    ----------
    n_latent
        Dimension of the codes.
    hidden
        Hidden layer widths.
    n_output
        Number of features.
    likelihood
        ``"poisson"``, ``"nb"``, ``"zip"``, ``"zinb"`` or ``"gaussian"``.
    n_cat
        Categories of a covariate appended (one-hot) to every layer's input; 0 for none.
    """

    def __init__(
        self,
        n_latent: int,
        hidden: Sequence[int],
        n_output: int,
        likelihood: str,
        *,
        n_cat: int = 0,
    ) -> None:
        super().__init__()
        check_choice("likelihood", likelihood, LIKELIHOODS)
        self.is_count = likelihood in COUNT_LIKELIHOODS
        self.mlp = MLP(n_latent, hidden, n_cat=n_cat, dropout=0.0)
        n_hidden = self.mlp.n_output
        if self.is_count:
            has_theta, has_pi = COUNT_LIKELIHOODS[likelihood]
            self.scale = nn.Linear(n_hidden, n_output)
            # inverse dispersion starts at e^2 ~ 7, typical of UMI data, so that a short run already
            # beats the Poisson model it nests; it is learnt per gene
            self.log_theta = nn.Parameter(torch.full((n_output,), 2.0)) if has_theta else None
            self.pi_logits = nn.Linear(n_hidden, n_output) if has_pi else None
        else:
            self.mean = nn.Linear(n_hidden, n_output)
            self.log_var = nn.Parameter(torch.zeros(n_output))

    def forward(
        self,
        z: torch.Tensor,
        log_library: torch.Tensor | None = None,
        cat: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Likelihood parameters for codes of shape ``(..., n_cells, n_latent)``.

        Count likelihoods need ``log_library``, the log library size of each cell. The parameters are
        float32 also when the layers run in bfloat16
        (:func:`~sclatent._core.runtime.precision.network_autocast`), so the likelihood math is done
        in float32.
        """
        h = self.mlp(z, cat)
        if not self.is_count:
            return {"mean": full_precision(self.mean(h)), "log_var": self.log_var}
        params = {"log_mu": F.log_softmax(full_precision(self.scale(h)), dim=-1) + log_library[:, None]}
        if self.log_theta is not None:
            params["log_theta"] = self.log_theta
        if self.pi_logits is not None:
            params["pi_logits"] = full_precision(self.pi_logits(h))
        return params
