"""Log-likelihoods of observations, computed in log space.

Count likelihoods take the log of the mean (``log_mu``) rather than the mean, so no exp-then-log
round trip can underflow: a Poisson log-probability at mean 1e-30 is as accurate as at mean 1.
Each function returns element-wise log-probabilities with the broadcast shape of its inputs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..._validation import check_choice

if TYPE_CHECKING:
    from ..data import Positives

#: The count likelihoods and whether each has an inverse dispersion and a zero-inflation part.
COUNT_LIKELIHOODS = {
    "poisson": (False, False),
    "nb": (True, False),
    "zip": (False, True),
    "zinb": (True, True),
}
LIKELIHOODS = (*COUNT_LIKELIHOODS, "gaussian")


def poisson_log_prob(x: torch.Tensor, log_mu: torch.Tensor) -> torch.Tensor:
    """Poisson log-probability ``x log(mu) - mu - log(x!)``."""
    return x * log_mu - log_mu.exp() - torch.lgamma(x + 1)


def _softplus(d: torch.Tensor) -> torch.Tensor:
    """log(1 + e^d); exact to float64 precision (torch's default switches to d itself above 20)."""
    return F.softplus(d, threshold=40.0)


def nb_log_prob(x: torch.Tensor, log_mu: torch.Tensor, log_theta: torch.Tensor) -> torch.Tensor:
    """Negative binomial log-probability with mean ``mu`` and inverse dispersion ``theta``.

    Variance is ``mu + mu**2 / theta``; ``theta -> inf`` recovers the Poisson distribution. With
    ``d = log(mu / theta)`` the mean-dependent part is ``x d - (theta + x) softplus(d)``, two
    fused passes over the data, while the log-gamma terms depend on ``x`` and ``theta`` only.
    """
    theta = log_theta.exp()
    d = log_mu - log_theta
    return (
        torch.lgamma(x + theta)
        - torch.lgamma(theta)
        - torch.lgamma(x + 1)
        + x * d
        - (theta + x) * _softplus(d)
    )


def _zero_inflated(
    x: torch.Tensor, log_prob: torch.Tensor, log_prob_zero: torch.Tensor, pi_logits: torch.Tensor
) -> torch.Tensor:
    """Mix a point mass at zero (probability ``sigmoid(pi_logits)``) into a count distribution."""
    log_pi = -F.softplus(-pi_logits)
    log_not_pi = -F.softplus(pi_logits)
    at_zero = torch.logaddexp(log_pi, log_not_pi + log_prob_zero)
    return torch.where(x == 0, at_zero, log_not_pi + log_prob)


def zip_log_prob(x: torch.Tensor, log_mu: torch.Tensor, pi_logits: torch.Tensor) -> torch.Tensor:
    """Zero-inflated Poisson log-probability; ``pi_logits`` are the logits of the extra zeros."""
    return _zero_inflated(x, poisson_log_prob(x, log_mu), -log_mu.exp(), pi_logits)


def zinb_log_prob(
    x: torch.Tensor, log_mu: torch.Tensor, log_theta: torch.Tensor, pi_logits: torch.Tensor
) -> torch.Tensor:
    """Zero-inflated negative binomial log-probability."""
    log_prob_zero = -log_theta.exp() * _softplus(log_mu - log_theta)
    return _zero_inflated(x, nb_log_prob(x, log_mu, log_theta), log_prob_zero, pi_logits)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """Normal log-density with the given mean and log-variance."""
    return -0.5 * (math.log(2 * math.pi) + log_var + (x - mean) ** 2 / log_var.exp())


def log_prob(likelihood: str, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Dispatch to the log-probability of ``likelihood`` with decoder outputs ``params``.

    Parameters
    ----------
    likelihood
        One of :data:`LIKELIHOODS`.
    x
        Observations.
    params
        ``log_mu`` (counts) or ``mean`` (gaussian), plus ``log_theta``, ``pi_logits`` and ``log_var``
        where the likelihood has them.

    Returns
    -------
    Element-wise log-probabilities.
    """
    check_choice("likelihood", likelihood, LIKELIHOODS)
    if likelihood == "gaussian":
        return gaussian_log_prob(x, params["mean"], params["log_var"])
    if likelihood == "poisson":
        return poisson_log_prob(x, params["log_mu"])
    if likelihood == "nb":
        return nb_log_prob(x, params["log_mu"], params["log_theta"])
    if likelihood == "zip":
        return zip_log_prob(x, params["log_mu"], params["pi_logits"])
    return zinb_log_prob(x, params["log_mu"], params["log_theta"], params["pi_logits"])


def log_prob_sum(
    likelihood: str,
    x: torch.Tensor,
    params: dict[str, torch.Tensor],
    positives: Positives | None = None,
) -> torch.Tensor:
    """``log_prob(likelihood, x, params).sum(-1)``, faster for a ``(n_cells, n_genes)`` batch on CPU.

    A count's log-probability at zero needs no log-gamma: ``lgamma(x + theta) - lgamma(theta)`` and
    ``lgamma(x + 1)`` vanish there. Those terms, and for zero inflation the count part of non-zero
    entries, are evaluated only at the non-zero counts (a tenth of a typical batch) and added per
    cell; the rest is one pass over the batch. Values and gradients equal the element-wise form. On
    a GPU, where finding the non-zero entries would wait for the device, the element-wise form is
    summed instead.

    Parameters
    ----------
    likelihood
        One of :data:`LIKELIHOODS`.
    x
        Observations, ``(n_cells, n_genes)``.
    params
        Decoder outputs, as for :func:`log_prob`; ``log_theta`` per gene.
    positives
        The positive entries of ``x`` in row-major order, where the caller has them (a minibatch
        gathered from a sparse matrix: :meth:`~sclatent._core.data.RowSource.gather_with_positives`);
        else they are found in ``x``.

    Returns
    -------
    The log-likelihood of each cell: the broadcast shape without its last axis.
    """
    check_choice("likelihood", likelihood, LIKELIHOODS)
    log_theta = params.get("log_theta")
    # a GPU does the element-wise form at memory speed, unsynchronised; torch.compile fuses it
    one_pass = x.device.type != "cpu" or torch.compiler.is_compiling()
    if (
        one_pass
        or likelihood == "gaussian"
        or x.dim() != 2
        or params["log_mu"].shape != x.shape  # e.g. several samples of z decoded at once
        or (log_theta is not None and log_theta.dim() != 1)
    ):
        return log_prob(likelihood, x, params).sum(-1)
    if positives is None:
        rows, cols = (x > 0).nonzero(as_tuple=True)
        counts = x[rows, cols]
    else:
        rows, cols, counts = positives
    zeros = torch.zeros(x.shape[0], dtype=params["log_mu"].dtype, device=x.device)

    def at_nonzero(values: torch.Tensor) -> torch.Tensor:
        # summed per row (CPU only, where index_add adds in index order: deterministic)
        return zeros.index_add(0, rows, values)

    log_mu = params["log_mu"]
    if likelihood == "poisson":
        return (x * log_mu - log_mu.exp()).sum(-1) - at_nonzero(torch.lgamma(counts + 1))
    if likelihood == "nb":
        theta = log_theta.exp()
        d = log_mu - log_theta
        softplus_d = _softplus(d)
        dense = (x * (d - softplus_d) - theta * softplus_d).sum(-1)
        theta_at = theta[cols]
        return dense + at_nonzero(
            torch.lgamma(counts + theta_at) - torch.lgamma(theta_at) - torch.lgamma(counts + 1)
        )
    # zero inflation, with log(pi) = pi_logits + log(1 - pi): an entry at zero has log-probability
    # log(1 - pi) + logaddexp(pi_logits, log p(0)), a non-zero count log(1 - pi) + log p(count); so
    # the sum is log(1 - pi) everywhere, plus logaddexp(...) at zeros, plus log p(count) at counts
    pi_logits = params["pi_logits"]
    if likelihood == "zip":
        log_prob_zero = -log_mu.exp()
        nonzero = poisson_log_prob(counts, log_mu[rows, cols])
    else:
        log_prob_zero = -log_theta.exp() * _softplus(log_mu - log_theta)
        nonzero = nb_log_prob(counts, log_mu[rows, cols], log_theta[cols])
    zero_part = torch.logaddexp(pi_logits, log_prob_zero)
    dense = (zero_part - F.softplus(pi_logits)).sum(-1)
    return dense + at_nonzero(nonzero - zero_part[rows, cols])


def sample(likelihood: str, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Draw observations from the likelihood with decoder outputs ``params`` (global RNG)."""
    if likelihood == "gaussian":
        return params["mean"] + torch.randn_like(params["mean"]) * (0.5 * params["log_var"]).exp()
    rate = params["log_mu"].exp()
    if "log_theta" in params:  # negative binomial as a gamma-Poisson mixture
        theta = params["log_theta"].exp().expand_as(rate)
        rate = torch.distributions.Gamma(theta, theta / rate.clamp_min(1e-30)).sample()
    counts = torch.poisson(rate)
    if "pi_logits" in params:
        extra_zero = torch.rand_like(counts) < torch.sigmoid(params["pi_logits"])
        counts = counts.masked_fill(extra_zero, 0.0)
    return counts
