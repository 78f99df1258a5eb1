import math

import numpy as np
import pytest
import torch

from sclatent._core.nn.losses import kl_normal
from sclatent._core.nn.mixture import GaussianMixturePrior, gaussian_entropy


@pytest.fixture
def prior():
    torch.manual_seed(0)
    prior = GaussianMixturePrior(4, 3, variance_floor=0.05).double()
    with torch.no_grad():
        prior.means.normal_()
        prior.raw_log_var.normal_(0, 0.5)
        prior.logits.normal_()
    return prior.requires_grad_(False)


@pytest.fixture
def posterior():
    g = torch.Generator().manual_seed(1)
    return torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(
        6, 3, generator=g, dtype=torch.float64
    )


def test_kl_equals_the_closed_form_with_the_optimal_categorical(prior, posterior):
    mean, log_var = posterior
    kl, log_q_y = prior.kl(mean, log_var)
    q_y = log_q_y.exp()
    log_pi = prior.log_weights()
    # sum_y q(y) [KL(q(z|x) || p(z|y)) + log q(y) - log p(y)], y summed out explicitly
    kl_z = kl_normal(mean[:, None], log_var[:, None], prior.means, prior.log_var)
    expected = (q_y * (kl_z + log_q_y - log_pi)).sum(1)
    np.testing.assert_allclose(kl.numpy(), expected.detach().numpy(), rtol=1e-6, atol=1e-9)
    # and no other categorical gives a smaller KL (the ELBO-optimal q(y|x))
    other = torch.softmax(torch.randn(6, 4, dtype=torch.float64), 1)
    worse = (other * (kl_z + other.log() - log_pi)).sum(1)
    assert (worse >= kl - 1e-9).all()


def test_known_labels_fix_the_categorical(prior, posterior):
    mean, log_var = posterior
    labels = torch.tensor([2, -1, 0, 3, -1, 1])
    kl, _ = prior.kl(mean, log_var, labels)
    free, _ = prior.kl(mean, log_var)
    kl_z = kl_normal(mean[:, None], log_var[:, None], prior.means, prior.log_var)
    log_pi = prior.log_weights()
    for i, label in enumerate(labels.tolist()):
        expected = free[i] if label < 0 else kl_z[i, label] - log_pi[label]
        assert float(kl[i]) == pytest.approx(float(expected), rel=1e-9, abs=1e-9)


def test_posterior_of_a_point_is_bayes_rule(prior):
    z = torch.tensor([[0.3, -1.2, 2.0]], dtype=torch.float64)
    log_q = prior.log_posterior(z, torch.full_like(z, -60.0))
    var = prior.log_var.exp()
    log_density = -0.5 * (np.log(2 * np.pi) + prior.log_var + (z - prior.means) ** 2 / var).sum(1)
    expected = torch.softmax(prior.log_weights() + log_density, 0)
    np.testing.assert_allclose(log_q.exp()[0].detach().numpy(), expected.detach().numpy(), rtol=1e-6)


def test_entropy_is_the_gaussian_closed_form():
    log_var = torch.tensor([[0.0, math.log(4.0)]], dtype=torch.float64)
    expected = 0.5 * math.log(2 * math.pi * math.e) * 2 + 0.5 * math.log(4.0)
    assert float(gaussian_entropy(log_var)[0]) == pytest.approx(expected, rel=1e-12)


def test_variances_never_fall_below_the_floor(prior):
    with torch.no_grad():
        prior.raw_log_var.fill_(-50.0)
    np.testing.assert_allclose(prior.log_var.exp().detach().numpy(), 0.05, rtol=1e-9)


def test_initialise_and_prune(prior):
    means = np.arange(12, dtype=float).reshape(4, 3)
    variances = np.full((4, 3), 0.5)
    weights = np.array([0.4, 0.3, 0.2, 0.1])
    prior.initialise(means, variances, weights)
    np.testing.assert_allclose(prior.means.detach().numpy(), means)
    np.testing.assert_allclose(prior.log_var.exp().detach().numpy(), 0.5, rtol=1e-5)
    np.testing.assert_allclose(prior.log_weights().exp().detach().numpy(), weights, rtol=1e-5)
    assert prior.prune(torch.tensor([0.5, 0.001, 0.3, 0.199]), 0.01) == 3
    log_w = prior.log_weights()
    assert log_w[1] == -math.inf and torch.isclose(log_w.exp().sum(), torch.tensor(1.0, dtype=log_w.dtype))
    # a pruned component takes no cell, and the KL stays finite
    mean, log_var = torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64)
    kl, log_q = prior.kl(mean, log_var)
    assert torch.isfinite(kl).all() and (log_q.exp()[:, 1] == 0).all()


def test_log_density_is_the_mixture_density(prior):
    from scipy.stats import multivariate_normal

    z = torch.randn(3, 7, prior.means.shape[1], dtype=torch.float64)
    weights = prior.log_weights().exp().detach().numpy()
    variances = prior.log_var.exp().detach().numpy()
    means = prior.means.detach().numpy()
    expected = np.log(
        sum(
            w * multivariate_normal(m, np.diag(v)).pdf(z.numpy())
            for w, m, v in zip(weights, means, variances, strict=True)
        )
    )
    np.testing.assert_allclose(prior.log_density(z).detach().numpy(), expected, rtol=1e-9)


def test_an_anchor_fixes_the_categorical_without_the_classification_term():
    """batch["anchor"] holds q(y|x) at a component as a label does, but adds no supervised term."""
    from sclatent._core.modules.count_vae import CLASSIFICATION_WEIGHT, CountVAE

    torch.manual_seed(0)
    module = CountVAE(20, n_latent=3, likelihood="nb", prior="mixture", n_components=4).double().eval()
    x = torch.poisson(torch.full((8, 20), 2.0, dtype=torch.float64))
    base = {"x": x, "log_library": x.sum(1).log()}
    assignment = torch.tensor([0, 1, 2, 3, -1, 0, 1, -1])

    def terms(**extra):
        torch.manual_seed(1)  # the same z draw for every call
        return module.loss_terms({**base, **extra})

    free, anchored, labelled = terms(), terms(anchor=assignment), terms(label=assignment)
    mean, log_var = module.posterior(x)
    _, log_q_y = module.mixture.kl(mean, log_var)
    fixed = assignment >= 0
    # anchored cells pay exactly -log q(anchor|x) more KL than the optimal categorical; the rest none
    extra = -log_q_y[fixed.nonzero()[:, 0], assignment[fixed]]
    np.testing.assert_allclose((anchored["kl"] - free["kl"])[fixed].detach(), extra.detach(), rtol=1e-9)
    np.testing.assert_allclose(anchored["kl"][~fixed].detach(), free["kl"][~fixed].detach(), rtol=1e-12)
    np.testing.assert_allclose(
        anchored["loss"].detach(), (anchored["kl"] - anchored["reconstruction"]).detach()
    )
    # a label adds the classification term on top of the same KL
    np.testing.assert_allclose(labelled["kl"].detach(), anchored["kl"].detach(), rtol=1e-12)
    np.testing.assert_allclose(
        (labelled["loss"] - anchored["loss"])[fixed].detach(),
        CLASSIFICATION_WEIGHT * extra.detach(),
        rtol=1e-9,
    )
