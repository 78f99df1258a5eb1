import mpmath
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy import stats

from sclatent._core.data import RowSource
from sclatent._core.nn import likelihoods as lk

COUNTS = np.array([0, 1, 2, 5, 17, 100, 1_000, 10_000, 100_000], dtype=np.float64)
MEANS = np.array([1e-8, 1e-4, 0.1, 1.0, 7.5, 300.0, 1e4, 1e6])
THETAS = np.array([1e-3, 0.5, 2.0, 50.0, 1e5])
PI = np.array([0.01, 0.3, 0.9])


def grid(*axes):
    mesh = np.meshgrid(*axes, indexing="ij")
    return [torch.tensor(m.ravel(), dtype=torch.float64) for m in mesh]


def zero_inflate(x, log_pmf, pi):
    at_zero = np.logaddexp(np.log(pi), np.log1p(-pi) + log_pmf)
    return np.where(x == 0, at_zero, np.log1p(-pi) + log_pmf)


def logit(p):
    return np.log(p) - np.log1p(-p)


def assert_close(ours, reference):
    np.testing.assert_allclose(ours.numpy(), reference, rtol=1e-6, atol=1e-6)
    assert np.isfinite(ours.numpy()).all()


def test_poisson_matches_scipy():
    x, mu = grid(COUNTS, MEANS)
    assert_close(lk.poisson_log_prob(x, mu.log()), stats.poisson.logpmf(x.numpy(), mu.numpy()))


def nb_reference(x, mu, theta):
    """scipy.stats' NB in its (n, p) form; where p = theta / (theta + mu) rounds to within 1e-9 of 1
    in float64, scipy's result loses digits (p carries the information), so there the closed form is
    evaluated with 50-digit arithmetic instead."""
    p = theta / (theta + mu)
    out = stats.nbinom.logpmf(x, theta, p)
    for i in np.flatnonzero(mu / theta < 1e-9):
        xi, m, t = (mpmath.mpf(float(v)) for v in (x[i], mu[i], theta[i]))
        exact = (
            mpmath.loggamma(xi + t)
            - mpmath.loggamma(t)
            - mpmath.loggamma(xi + 1)
            + t * mpmath.log(t / (t + m))
            + xi * mpmath.log(m / (t + m))
        )
        out[i] = float(exact)
    return out


def test_nb_matches_scipy():
    x, mu, theta = grid(COUNTS, MEANS, THETAS)
    ours = lk.nb_log_prob(x, mu.log(), theta.log())
    assert_close(ours, nb_reference(x.numpy(), mu.numpy(), theta.numpy()))


def test_zip_matches_scipy():
    x, mu, pi = grid(COUNTS, MEANS, PI)
    ours = lk.zip_log_prob(x, mu.log(), torch.from_numpy(logit(pi.numpy())))
    reference = zero_inflate(x.numpy(), stats.poisson.logpmf(x.numpy(), mu.numpy()), pi.numpy())
    assert_close(ours, reference)


def test_zinb_matches_scipy():
    x, mu, theta, pi = grid(COUNTS, MEANS, THETAS, PI)
    ours = lk.zinb_log_prob(x, mu.log(), theta.log(), torch.from_numpy(logit(pi.numpy())))
    nb = nb_reference(x.numpy(), mu.numpy(), theta.numpy())
    assert_close(ours, zero_inflate(x.numpy(), nb, pi.numpy()))


def test_gaussian_matches_scipy():
    x, mean, var = grid(np.linspace(-50, 50, 11), np.linspace(-3, 3, 5), np.array([1e-4, 1.0, 1e3]))
    ours = lk.gaussian_log_prob(x, mean, var.log())
    assert_close(ours, stats.norm.logpdf(x.numpy(), mean.numpy(), np.sqrt(var.numpy())))


@pytest.mark.parametrize("likelihood", list(lk.COUNT_LIKELIHOODS))
def test_finite_where_naive_exp_then_log_underflows(likelihood):
    # mean 1e-87 underflows to 0 in float32, so log(exp(log_mu)) would be -inf
    x = torch.tensor([0.0, 1.0, 1e5], dtype=torch.float32)
    params = {
        "log_mu": torch.tensor([-200.0, -200.0, 30.0]),
        "log_theta": torch.tensor([20.0, -7.0, 2.0]),
        "pi_logits": torch.tensor([-30.0, 30.0, 0.0]),
    }
    out = lk.log_prob(likelihood, x, params)
    assert torch.isfinite(out).all()
    assert out[0] <= 0


def test_unknown_likelihood_is_named():
    with pytest.raises(ValueError, match="expected one of 'poisson', 'nb', 'zip', 'zinb', 'gaussian'"):
        lk.log_prob("binomial", torch.zeros(1), {})


@pytest.mark.parametrize("likelihood", [*lk.COUNT_LIKELIHOODS, "gaussian"])
def test_samples_have_the_model_mean(likelihood):
    torch.manual_seed(0)
    n = 200_000
    mu, theta, pi = 6.0, 2.0, 0.25
    params = {
        "log_mu": torch.full((n,), np.log(mu)),
        "log_theta": torch.full((n,), np.log(theta)),
        "pi_logits": torch.full((n,), logit(pi)),
        "mean": torch.full((n,), mu),
        "log_var": torch.zeros(n),
    }
    has_theta, has_pi = lk.COUNT_LIKELIHOODS.get(likelihood, (False, False))
    params = {k: v for k, v in params.items() if k not in ("log_theta",) or has_theta}
    params = {k: v for k, v in params.items() if k != "pi_logits" or has_pi}
    if likelihood != "gaussian":
        params = {k: v for k, v in params.items() if k not in ("mean", "log_var")}
    draws = lk.sample(likelihood, params).double()
    expected = mu * (1 - pi) if has_pi else mu
    variance = mu + mu**2 / theta if has_theta else 1.0 if likelihood == "gaussian" else mu
    assert abs(draws.mean().item() - expected) < 5 * np.sqrt(variance / n) + 1e-3
    if likelihood != "gaussian":
        assert torch.equal(draws, draws.round()) and (draws >= 0).all()


@pytest.mark.parametrize("likelihood", ["poisson", "nb", "zip", "zinb", "gaussian"])
def test_summed_log_prob_equals_the_element_wise_sum_with_its_gradients(likelihood):
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.negative_binomial(2, 0.6, (64, 300)) * (rng.random((64, 300)) < 0.2)).double()
    x[3] = 0  # an empty cell
    log_mu = torch.from_numpy(rng.normal(0, 1.5, (64, 300))).requires_grad_()
    params = {"log_mu": log_mu} if likelihood != "gaussian" else {"mean": log_mu}
    extra = {
        "log_theta": torch.from_numpy(rng.normal(1, 1, 300)).requires_grad_(),
        "pi_logits": torch.from_numpy(rng.normal(-1, 1, (64, 300))).requires_grad_(),
        "log_var": torch.from_numpy(rng.normal(0, 0.5, 300)).requires_grad_(),
    }
    needs = {"nb": ["log_theta"], "zip": ["pi_logits"], "zinb": ["log_theta", "pi_logits"]}
    params |= {k: extra[k] for k in needs.get(likelihood, [])}
    if likelihood == "gaussian":
        params["log_var"] = extra["log_var"]
    summed = lk.log_prob_sum(likelihood, x, params)
    reference = lk.log_prob(likelihood, x, params).sum(-1)
    np.testing.assert_allclose(summed.detach().numpy(), reference.detach().numpy(), rtol=1e-12, atol=1e-9)
    inputs = list(params.values())
    weights = torch.from_numpy(rng.random(64))
    ours = torch.autograd.grad((summed * weights).sum(), inputs)
    theirs = torch.autograd.grad((reference * weights).sum(), inputs)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("likelihood", ["poisson", "nb", "zip", "zinb"])
def test_positive_entries_from_the_sparse_rows_give_the_same_sum_and_gradients(likelihood):
    """A batch gathered with its positive entries (RowSource.gather_with_positives) sums the same."""
    rng = np.random.default_rng(1)
    counts = rng.negative_binomial(2, 0.6, (64, 300)) * (rng.random((64, 300)) < 0.2)
    matrix = sp.csr_matrix(counts.astype(np.float64))
    matrix.data[:5] = 0  # stored zeros are not positive entries
    x, positives = RowSource(matrix, torch.device("cpu"), torch.float64).gather_with_positives(
        torch.arange(64)
    )
    params = {
        "log_mu": torch.from_numpy(rng.normal(0, 1.5, (64, 300))).requires_grad_(),
        "log_theta": torch.from_numpy(rng.normal(1, 1, 300)).requires_grad_(),
        "pi_logits": torch.from_numpy(rng.normal(-1, 1, (64, 300))).requires_grad_(),
    }
    has_theta, has_pi = lk.COUNT_LIKELIHOODS[likelihood]
    needed = {"log_theta": has_theta, "pi_logits": has_pi}
    params = {key: value for key, value in params.items() if needed.get(key, True)}
    given = lk.log_prob_sum(likelihood, x, params, positives)
    found = lk.log_prob_sum(likelihood, x, params)
    assert torch.equal(given, found)  # the same entries in the same order: the same numbers
    inputs = list(params.values())
    gradients = torch.autograd.grad(given.sum(), inputs), torch.autograd.grad(found.sum(), inputs)
    assert all(torch.equal(a, b) for a, b in zip(*gradients, strict=True))
