import numpy as np

from sclatent._core.clustering import initial_components, moments


def blobs(n_per=150, centres=((0, 0), (8, 0), (0, 8), (8, 8)), seed=0):
    rng = np.random.default_rng(seed)
    latent = np.vstack([rng.normal(c, 1.0, size=(n_per, 2)) for c in centres])
    return latent, np.repeat(np.arange(len(centres)), n_per)


def test_moments_match_numpy():
    latent, truth = blobs()
    assignment = truth.copy()
    assignment[::7] = -1
    means, variances, weights = moments(latent, assignment, 4)
    for k in range(4):
        rows = latent[assignment == k]
        np.testing.assert_allclose(means[k], rows.mean(0))
        np.testing.assert_allclose(variances[k], rows.var(0), atol=1e-10)
    np.testing.assert_allclose(weights, np.bincount(assignment[assignment >= 0]) / (assignment >= 0).sum())


def test_auto_finds_the_number_of_blobs_and_pads_the_rest():
    latent, _ = blobs()
    means, variances, weights = initial_components(latent, n_components=10, auto=True)
    assert (weights > 0).sum() == 4 and means.shape == (10, 2) and variances.shape == (10, 2)
    found = sorted(map(tuple, np.round(means[weights > 0] / 8)))
    assert found == [(0, 0), (0, 1), (1, 0), (1, 1)]
    np.testing.assert_allclose(weights.sum(), 1)


def test_fixed_number_takes_the_k_means_clusters():
    latent, _ = blobs()
    means, _, weights = initial_components(latent, n_components=4)
    assert sorted(map(tuple, np.round(means / 8))) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    np.testing.assert_allclose(weights, 0.25, atol=0.01)


def test_labelled_classes_take_the_first_components():
    latent, truth = blobs()
    labels = np.where(np.arange(len(truth)) % 10 == 0, truth, -1)
    labels[labels == 3] = -1  # the fourth type carries no label: a free component finds it
    means, _, weights = initial_components(latent, n_components=4, labels=labels, n_classes=3)
    for k in range(3):
        np.testing.assert_allclose(means[k], latent[labels == k].mean(0))
    assert weights[3] > 0  # the free component starts with a share of the unlabelled cells
    np.testing.assert_allclose(weights.sum(), 1)
