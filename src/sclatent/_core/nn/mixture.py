"""The Gaussian-mixture prior of the GMVAE, with y summed out exactly.

The prior is p(y) p(z|y): learnt mixture weights and diagonal Gaussian components with learnt means
and variances (each variance kept above a floor, so no component can shrink onto a few cells). The
approximate posterior is q(z|x) q(y|x) with q(z|x) shared by the components and q(y|x) the categorical
that maximises the ELBO for that q(z|x) (VaDE's choice, Jiang et al. 2017):

    log q(y|x) = l_y - logsumexp_y' l_y',    l_y = log p(y) + E_q(z|x)[log p(z|y)],

in closed form. The KL term of the ELBO, KL(q(z, y|x) || p(z, y)), is then

    E_q[log q(z|x)] - logsumexp_y l_y,

exact, with the sum over y taken analytically. A cell whose class is known (label transfer) fixes
q(y|x) to that class; its KL term becomes E_q[log q(z|x)] - l_label.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LOG_2PI = math.log(2 * math.pi)


def gaussian_entropy(log_var: torch.Tensor) -> torch.Tensor:
    """Entropy of diagonal Gaussians given their log-variances, summed over the last axis."""
    return 0.5 * (LOG_2PI + 1.0 + log_var).sum(-1)


def label_log_prob(log_q_y: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``log q(label|x)`` of each cell with a known label (``labels >= 0``), 0 for the others."""
    picked = log_q_y.gather(1, labels.clamp_min(0)[:, None])[:, 0]
    return torch.where(labels >= 0, picked, torch.zeros_like(picked))


class GaussianMixturePrior(nn.Module):
    """p(y) p(z|y) with learnt weights, means and floored variances, and its exact KL terms.

    Parameters
    ----------
    n_components
        Number of components K.
    n_latent
        Dimension of z.
    variance_floor
        Smallest variance of a component along any axis.
    """

    def __init__(self, n_components: int, n_latent: int, *, variance_floor: float = 0.05) -> None:
        super().__init__()
        self.variance_floor = variance_floor
        self.means = nn.Parameter(torch.randn(n_components, n_latent))
        # variance = floor + exp(raw): smooth, and never below the floor
        self.raw_log_var = nn.Parameter(torch.zeros(n_components, n_latent))
        self.logits = nn.Parameter(torch.zeros(n_components))
        self.register_buffer("active", torch.ones(n_components, dtype=torch.bool))

    @property
    def n_components(self) -> int:
        """Number of components, pruned ones included."""
        return self.means.shape[0]

    @property
    def log_var(self) -> torch.Tensor:
        """``(K, n_latent)`` log-variances of the components."""
        # filled on the device: a tensor made from a Python number is a blocking host copy
        floor = self.raw_log_var.new_full((), math.log(self.variance_floor))
        return torch.logaddexp(self.raw_log_var, floor)

    def log_weights(self) -> torch.Tensor:
        """``(K,)`` log p(y); pruned components get -inf."""
        return F.log_softmax(self.logits.masked_fill(~self.active, -math.inf), dim=-1)

    def component_scores(self, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
        """``l_y = log p(y) + E_q[log p(z|y)]`` for q(z|x) = N(mean, exp(log_var)), shape ``(n, K)``."""
        prior_log_var = self.log_var
        squared = (mean[:, None] - self.means) ** 2 + log_var.exp()[:, None]
        expected = -0.5 * (LOG_2PI + prior_log_var + squared / prior_log_var.exp()).sum(-1)
        return self.log_weights() + expected

    def log_density(self, z: torch.Tensor) -> torch.Tensor:
        """The prior density log p(z) = logsumexp_y [log p(y) + log N(z; mean_y, var_y)].

        ``z`` has shape ``(..., n_latent)``; the result drops the last axis.
        """
        log_var = self.log_var
        squared = (z[..., None, :] - self.means) ** 2 / log_var.exp()
        log_normal = -0.5 * (LOG_2PI + log_var + squared).sum(-1)
        return torch.logsumexp(self.log_weights() + log_normal, dim=-1)

    def log_posterior(self, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
        """``(n, K)`` log q(y|x), the ELBO-optimal categorical for q(z|x)."""
        return F.log_softmax(self.component_scores(mean, log_var), dim=-1)

    def kl(
        self, mean: torch.Tensor, log_var: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-cell KL(q(z, y|x) || p(z, y)) and log q(y|x).

        Parameters
        ----------
        mean, log_var
            ``(n, n_latent)`` parameters of q(z|x).
        labels
            ``(n,)`` known components (-1: unknown, q(y|x) is then the optimal one), or None.

        Returns
        -------
        The KL term, shape ``(n,)``, and log q(y|x) of the optimal categorical, shape ``(n, K)``.
        """
        scores = self.component_scores(mean, log_var)
        log_q_y = F.log_softmax(scores, dim=-1)
        kl = -gaussian_entropy(log_var) - torch.logsumexp(scores, dim=-1)
        if labels is not None:
            # fixing q(y|x) to the label costs exactly -log q(label|x) more than the optimum
            kl = kl - label_log_prob(log_q_y, labels)
        return kl, log_q_y

    @torch.no_grad()
    def initialise(self, means: np.ndarray, variances: np.ndarray, weights: np.ndarray) -> None:
        """Set the components, e.g. from a Gaussian mixture fitted to the latent means."""
        device = self.means.device
        self.means.copy_(torch.as_tensor(means, dtype=torch.float32, device=device))
        excess = np.maximum(np.asarray(variances, dtype=np.float64) - self.variance_floor, 1e-6)
        self.raw_log_var.copy_(torch.as_tensor(np.log(excess), dtype=torch.float32, device=device))
        log_w = np.log(np.maximum(np.asarray(weights, dtype=np.float64), 1e-8))
        self.logits.copy_(torch.as_tensor(log_w, dtype=torch.float32, device=device))

    @torch.no_grad()
    def prune(self, usage: torch.Tensor, min_usage: float) -> int:
        """Switch off components whose share of cells (mean q(y|x)) is below ``min_usage``.

        Returns the number of components still active.
        """
        self.active &= usage.to(self.active.device) >= min_usage
        return int(self.active.sum())
