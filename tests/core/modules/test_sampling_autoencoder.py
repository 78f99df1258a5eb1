import numpy as np
from scipy.stats import chisquare

from sclatent._core.modules.sampling_autoencoder import draw_targets


def test_icrst_targets_share_the_label_and_are_drawn_with_probability_p():
    rng = np.random.default_rng(0)
    n = 20_000
    codes = rng.integers(0, 7, n)
    codes[:500] = -1  # unlabelled: never targets, always themselves
    pool = np.sort(rng.choice(n, 15_000, replace=False))
    targets, drawn = draw_targets("icrst", 1.0, pool, codes, n, rng)
    assert drawn[500:].all() and not drawn[:500].any()
    np.testing.assert_array_equal(targets[:500], np.arange(500))
    np.testing.assert_array_equal(codes[targets[500:]], codes[500:])
    assert np.isin(targets[500:], pool).all()
    targets, drawn = draw_targets("icrst", 0.3, pool, codes, n, rng)
    share = drawn[500:].mean()
    assert abs(share - 0.3) < 4 * np.sqrt(0.3 * 0.7 / (n - 500))
    np.testing.assert_array_equal(targets[~drawn], np.flatnonzero(~drawn))


def test_trst_targets_are_uniform_over_the_pool():
    rng = np.random.default_rng(1)
    n, pool = 50_000, np.arange(0, 50_000, 50)  # 1,000 pool cells
    targets, drawn = draw_targets("trst", 1.0, pool, None, n, rng)
    assert drawn.all() and np.isin(targets, pool).all()
    counts = np.bincount(targets[targets % 50 == 0] // 50, minlength=len(pool))
    assert chisquare(counts).pvalue > 1e-3
    targets, drawn = draw_targets("none", 1.0, pool, None, n, rng)
    np.testing.assert_array_equal(targets, np.arange(n))
    assert not drawn.any()
