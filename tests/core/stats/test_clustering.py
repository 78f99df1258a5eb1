import functools

import numpy as np
from sklearn.metrics import adjusted_rand_score

from sclatent._core.stats import clustering
from sclatent._core.stats.clustering import (
    AUTO_RESOLUTION,
    FIXED_RESOLUTION,
    LEIDEN_RUNS,
    SPLIT_RESOLUTION,
    best_communities,
    joint_kmeans,
    leiden_runs,
    moments,
    propagate_labels,
    split_moments,
)
from sclatent._knn_graph import joint_connectivities

#: The clustering start on scanpy's kNN graph, as the GMVAE calls it.
initial_components = functools.partial(clustering.initial_components, knn_graph=joint_connectivities)


def graph_communities(views, random_state, resolution=AUTO_RESOLUTION):
    """The kept Leiden communities of the mean kNN graph of several views."""
    return best_communities(joint_connectivities(views, random_state), resolution, random_state)


def blobs(n_per=150, centres=((0, 0), (8, 0), (0, 8), (8, 8)), seed=0):
    rng = np.random.default_rng(seed)
    latent = np.vstack([rng.normal(c, 1.0, size=(n_per, len(c))) for c in centres])
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
    latent, _ = blobs(centres=np.eye(4, 10) * 8)  # 2-d blobs split in two at this resolution
    means, variances, weights, partition = initial_components(latent, n_components=10, auto=True)
    assert (weights > 0).sum() == 4 and partition.max() == 3 and means.shape == variances.shape == (10, 10)
    found = np.round(means[weights > 0] / 8)
    assert sorted(map(tuple, found)) == sorted(map(tuple, np.eye(4, 10)))
    np.testing.assert_allclose(weights.sum(), 1)


def test_fixed_number_keeps_the_communities_and_adds_small_spare_components():
    latent, truth = blobs(centres=np.eye(4, 10) * 8)
    means, variances, weights, partition = initial_components(latent, n_components=6)
    assert adjusted_rand_score(truth, partition) == 1.0 and partition.max() == 3
    for k in range(4):  # the communities take the first components, with their moments
        np.testing.assert_allclose(means[k], latent[partition == k].mean(0))
    # the two spare components start inside communities, with a tenth of their share of the cells
    assert means.shape == variances.shape == (6, 10)
    assert np.all(weights[4:] > 0) and np.all(weights[4:] < 0.1 * weights[:4].min())
    inside = np.linalg.norm(means[4:, None] - means[None, :4], axis=-1).min(1)
    assert np.all(inside < 2.0)
    np.testing.assert_allclose(weights.sum(), 1)


def test_fixed_number_below_the_communities_takes_in_the_smaller_ones():
    latent, truth = blobs(centres=np.eye(4, 10) * 8)
    keep = np.flatnonzero((truth < 3) | (np.arange(len(truth)) % 3 == 0))  # the fourth blob is smallest
    means, _, weights, partition = initial_components(latent[keep], n_components=3)
    assert means.shape == (3, 10) and np.all(weights > 0) and np.all(partition >= 0)
    # the three largest blobs keep a component each; the fourth blob's cells join one of them
    assert adjusted_rand_score(truth[keep][truth[keep] < 3], partition[truth[keep] < 3]) == 1.0
    assert len(np.unique(partition[truth[keep] == 3])) == 1


def test_joint_kmeans_redraws_borders_with_views_weighed_alike():
    latent, truth = blobs(centres=((0, 0), (8, 0)))
    communities = truth.copy()
    communities[np.flatnonzero(truth == 1)[:30]] = 0  # a fifth of blob 1 in the wrong community
    communities[np.flatnonzero(truth == 0)[:5]] = 2  # and a small third community
    found = joint_kmeans([latent], communities, 2)
    assert adjusted_rand_score(truth, found) == 1.0
    assert np.array_equal(found[truth == 0], np.zeros(150))  # numbered as the communities it started from
    # a view's scale does not change its weight
    other = np.random.default_rng(1).normal(size=latent.shape)
    np.testing.assert_array_equal(
        joint_kmeans([latent, other], communities, 2), joint_kmeans([latent, 1000 * other], communities, 2)
    )
    # unless weighed: a heavy second view of other groups outweighs the first
    halves = np.arange(len(truth)) % 2
    other = np.where(halves[:, None] == 1, 8.0, 0.0) + np.random.default_rng(2).normal(size=latent.shape)
    heavy = joint_kmeans([latent, other], halves, 2, weights=[1.0, 10.0])
    assert adjusted_rand_score(halves, heavy) == 1.0
    assert (
        adjusted_rand_score(truth, joint_kmeans([latent, other], communities, 2, weights=[10.0, 1.0])) == 1.0
    )


def test_split_moments_halve_the_most_spread_out_group():
    latent, truth = blobs()
    groups = np.where(truth < 2, 0, 1)  # group 0: two blobs; group 1: two blobs further apart
    groups[truth == 3] = -1  # group 1 is one blob (the other unassigned): group 0 is split
    means, variances, weights = split_moments(latent, groups, 1, 0)
    half = truth == (1 if truth[groups == 0][0] == 0 else 0)
    np.testing.assert_allclose(means[0], latent[half].mean(0))
    np.testing.assert_allclose(variances[0], latent[half].var(0), atol=1e-10)
    np.testing.assert_allclose(weights, 0.1 * half.sum() / (groups >= 0).sum())


def test_labelled_classes_take_the_first_components():
    latent, truth = blobs()
    labels = np.where(np.arange(len(truth)) % 10 == 0, truth, -1)
    labels[labels == 3] = -1  # the fourth type carries no label: a free component finds it
    means, _, weights, partition = initial_components(latent, n_components=4, labels=labels, n_classes=3)
    for k in range(3):
        np.testing.assert_allclose(means[k], latent[labels == k].mean(0))
    assert np.array_equal(partition[labels >= 0], labels[labels >= 0])
    assert np.all(partition[labels < 0] == 3)  # one free component: k-means with one cluster
    assert weights[3] > 0  # the free component starts with a share of the unlabelled cells
    np.testing.assert_allclose(weights.sum(), 1)


def test_joined_views_average_their_graphs():
    """Communities of a view joined with itself are those of the view alone; 10-d blobs are found."""
    latent, truth = blobs(centres=np.eye(4, 10) * 8)
    alone = graph_communities([latent], 0)
    assert np.array_equal(graph_communities([latent, latent], 0), alone)
    assert adjusted_rand_score(truth, alone) == 1.0
    assert np.all(np.diff(np.bincount(alone)) <= 0)  # numbered by decreasing size


def newman_modularity(adjacency: np.ndarray, membership: np.ndarray, resolution: float) -> float:
    """Q = sum_ij [A_ij - resolution k_i k_j / 2m] [c_i = c_j] / 2m, by its definition."""
    degree = adjacency.sum(1)
    two_m = adjacency.sum()
    same = membership[:, None] == membership[None, :]
    return float(((adjacency - resolution * np.outer(degree, degree) / two_m) * same).sum() / two_m)


def test_the_run_of_highest_modularity_is_kept():
    """Each run's modularity is Newman's; the communities kept score at least as high as any run."""
    latent, _ = blobs(centres=np.eye(6, 3) * 3)  # overlapping blobs: runs of different seeds differ
    connectivities = joint_connectivities([latent], 0)
    adjacency = connectivities.toarray()
    seeds = np.random.default_rng(0).integers(2**31 - 1, size=LEIDEN_RUNS)  # graph_communities(..., 0)'s
    runs, modularities = leiden_runs(connectivities, AUTO_RESOLUTION, seeds)
    for membership, modularity in zip(runs, modularities, strict=True):
        np.testing.assert_allclose(
            modularity, newman_modularity(adjacency, membership, AUTO_RESOLUTION), rtol=1e-9
        )
    assert len({round(m, 9) for m in modularities}) > 1
    kept = newman_modularity(adjacency, graph_communities([latent], 0), AUTO_RESOLUTION)
    np.testing.assert_allclose(kept, max(modularities), rtol=1e-9)


def test_auto_starts_coarser_than_a_fixed_number():
    """n_components=None starts from the communities at AUTO_RESOLUTION, a fixed K from finer ones."""
    latent, truth = blobs(centres=np.eye(6, 3) * 3)
    coarse = graph_communities([latent], 0, AUTO_RESOLUTION)
    fine = graph_communities([latent], 0, FIXED_RESOLUTION)
    finer = graph_communities([latent], 0, SPLIT_RESOLUTION)
    assert AUTO_RESOLUTION < FIXED_RESOLUTION < SPLIT_RESOLUTION
    assert coarse.max() < fine.max() < finer.max() < 19
    # n_components=None: k-means from the coarse communities, as many clusters
    *_, auto = initial_components(latent, n_components=20, auto=True)
    assert np.array_equal(auto, joint_kmeans([latent], coarse, int(coarse.max()) + 1))
    assert adjusted_rand_score(truth, auto) > adjusted_rand_score(truth, coarse) + 0.02  # 0.43, 0.39
    # more components than communities at FIXED_RESOLUTION: the spare ones split the finer start
    *_, fixed = initial_components(latent, n_components=20)
    assert np.array_equal(fixed, finer)
    # as many: k-means from the communities at FIXED_RESOLUTION
    *_, fixed = initial_components(latent, n_components=int(fine.max()) + 1)
    assert np.array_equal(fixed, joint_kmeans([latent], fine, int(fine.max()) + 1))


def test_label_propagation_reaches_every_cell_of_a_labelled_blob():
    latent, truth = blobs(centres=np.eye(4, 10) * 8)
    labels = np.where(np.arange(len(truth)) % 20 == 0, truth, -1)  # 5% labelled
    labels[truth == 3] = -1  # a blob without labels: nothing reaches it
    predicted = propagate_labels(joint_connectivities([latent], 0), labels, 3)
    assert np.array_equal(predicted[labels >= 0], labels[labels >= 0])
    assert np.array_equal(predicted[truth < 3], truth[truth < 3])
    assert np.all(predicted[truth == 3] == -1)
    # in label transfer with no free component, unlabelled cells start in their propagated class
    three = truth < 3
    _, _, _, partition = initial_components(
        latent[three], n_components=3, labels=labels[three], n_classes=3, views=[latent[three]]
    )
    assert np.array_equal(partition, truth[three])
