"""Change-of-means differential expression: closed forms and the FDR rule against brute force."""

import numpy as np
import pytest

from sclatent._core.stats.differential import change_of_means, fdr_calls


def test_constant_draws_give_the_exact_fold_change():
    # group a: every draw the same; b the same with genes 0-2 scaled by 4, 1/2 and 1
    a = np.tile([8.0, 2.0, 5.0, 0.0], (30, 1))
    b = np.tile([2.0, 4.0, 5.0, 0.0], (20, 1))
    out = change_of_means(a, b, delta=0.5, pseudocount=1.0, n_pairs=500, rng=np.random.default_rng(0))
    expected = np.log2((a[0] + 1) / (b[0] + 1))
    np.testing.assert_allclose(out["lfc_mean"], expected, atol=1e-12)
    np.testing.assert_allclose(out["lfc_median"], expected, atol=1e-12)
    np.testing.assert_allclose(out["lfc_std"], 0.0, atol=1e-12)
    np.testing.assert_array_equal(out["proba_de"], np.abs(expected) >= 0.5)
    np.testing.assert_allclose(out["proba_de"] + out["proba_not_de"], 1.0)
    assert out["bayes_factor"][0] > 10 and out["bayes_factor"][2] < -10
    np.testing.assert_allclose(out["scale1"], a[0])
    np.testing.assert_allclose(out["scale2"], b[0])


def test_noisy_draws_match_their_closed_form():
    # log2 of the draws ~ normal: lfc = difference of two normals, P(|lfc| >= delta) in closed form
    from scipy.stats import norm

    rng = np.random.default_rng(1)
    mean_a, mean_b, sd = np.array([3.0, 0.0, 1.0]), np.array([1.0, 0.0, 1.2]), 0.5
    a = 2.0 ** rng.normal(mean_a, sd, (4000, 3))
    b = 2.0 ** rng.normal(mean_b, sd, (4000, 3))
    out = change_of_means(a, b, delta=1.0, pseudocount=0.0, n_pairs=200_000, rng=rng)
    shift, spread = mean_a - mean_b, sd * np.sqrt(2)
    closed = norm.sf((1.0 - shift) / spread) + norm.cdf((-1.0 - shift) / spread)
    np.testing.assert_allclose(out["lfc_mean"], shift, atol=0.02)
    np.testing.assert_allclose(out["lfc_std"], spread, atol=0.02)
    np.testing.assert_allclose(out["proba_de"], closed, atol=0.01)


@pytest.mark.parametrize("target", [0.01, 0.05, 0.2])
def test_fdr_calls_are_the_largest_set_within_the_target(target):
    proba = np.random.default_rng(2).beta(0.5, 0.5, 300)
    calls = fdr_calls(proba, target)
    ranked = np.sort(proba)[::-1]
    allowed = [k for k in range(1, len(ranked) + 1) if np.mean(1 - ranked[:k]) <= target]
    n_called = max(allowed, default=0)
    assert calls.sum() == n_called
    if n_called:  # the calls are the most probable genes
        assert proba[calls].min() >= proba[~calls].max()
