"""Starting points of the GMVAE's mixture, found on the latent means of a warm-started VAE.

Three cases, all array in / array out:

- an unknown number of components: the communities (Leiden, modularity at a fixed resolution) of
  a kNN graph that joins two views of the cells, the latent means and the principal components of
  the log-normalised input, their borders redrawn by k-means on both views
  (:func:`joint_kmeans`) into as many clusters, one component per cluster;
- a fixed number: when the same communities (at a finer resolution) are at least as many, k-means
  on both views started from the means of the largest ones (:func:`joint_kmeans`); when fewer,
  the communities at a finer resolution still, plus small spare components that split the most
  spread-out ones. Final ARI at K = types (seeds 0-2): 0.70 / 0.78 / 0.73 on mouse bladder / PBMC
  / human kidney; k-means on the standardised latent means, the first start, gave 0.50 / 0.74 /
  0.57;
- label transfer: one component per class from its labelled cells, plus free components fitted to
  the unlabelled cells.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp

#: A weighted kNN graph of the cells, a sparse ``(n, n)`` matrix of connectivities.
Graph = sp.spmatrix | sp.sparray
#: Builds the kNN graph of several views of the same cells (the mean of their graphs) for a seed.
KnnGraph = Callable[[Sequence[np.ndarray], int], Graph]

#: Leiden resolution on the joint kNN graph when the number of clusters is left to the model. The
#: better one depends on the data: on the twelve sets of ``bench_gmvae.py --variants`` (seeds 0-2)
#: 0.35 raises the mean final ARI from 0.670 to 0.688 (mouse bladder 0.605 -> 0.660, PBMC half
#: 0.745 -> 0.796) but drops human kidney from 0.701 to 0.634, Leiden's best there being 0.633; of
#: the two starts, neither silhouette, Calinski-Harabasz, Davies-Bouldin nor modularity picks the
#: better on every set.
AUTO_RESOLUTION = 0.25
#: Leiden resolution on the joint kNN graph for a given number of components.
FIXED_RESOLUTION = 0.35
#: The finer resolution for a given number of components beyond the communities at FIXED_RESOLUTION.
SPLIT_RESOLUTION = 0.5
#: Steps of label propagation on the joint graph (label transfer).
PROPAGATION_STEPS = 30
#: Leiden runs (seeds) among which the partition of highest modularity is kept.
LEIDEN_RUNS = 30
#: Weight of the principal components against the latent means in :func:`joint_kmeans`.
PCS_WEIGHT = 1.5


def moments(latent: np.ndarray, assignment: np.ndarray, n_groups: int) -> tuple[np.ndarray, ...]:
    """Means, variances and weights of the groups of a hard assignment (-1: in no group).

    Parameters
    ----------
    latent
        ``(n, d)`` latent means.
    assignment
        ``(n,)`` group of each row, in ``0..n_groups-1``, or -1.
    n_groups
        Number of groups; an empty one gets the moments of all rows and weight 0.

    Returns
    -------
    ``(n_groups, d)`` means, ``(n_groups, d)`` variances and ``(n_groups,)`` weights (summing to 1).
    """
    counts = np.bincount(assignment[assignment >= 0], minlength=n_groups).astype(np.float64)
    means = np.zeros((n_groups, latent.shape[1]))
    squares = np.zeros_like(means)
    inside = assignment >= 0
    np.add.at(means, assignment[inside], latent[inside])
    np.add.at(squares, assignment[inside], latent[inside] ** 2)
    empty = counts == 0
    means[empty], squares[empty] = latent.sum(0), (latent**2).sum(0)
    sizes = np.where(empty, len(latent), counts)[:, None]
    means /= sizes
    variances = np.maximum(squares / sizes - means**2, 0.0)
    return means, variances, counts / counts.sum()


def kmeans_partition(latent: np.ndarray, n_components: int, random_state: int) -> np.ndarray:
    """The k-means clusters (``0..n_components-1``) of the standardised ``latent``.

    The free components of label transfer start from them. k-means (best of 10 starts) rather than
    EM for a Gaussian mixture, which splits large cell types into several components.
    """
    from sklearn.cluster import KMeans

    scaled = latent / np.maximum(latent.std(0), 1e-8)
    return KMeans(n_components, n_init=10, random_state=random_state).fit_predict(scaled)


def propagate_labels(connectivities: Graph, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Classes of the unlabelled rows by label propagation on a kNN graph (Zhou et al. 2004).

    The labelled rows (``labels >= 0``) hold their class; :data:`PROPAGATION_STEPS` times, every
    other row takes the connectivity-weighted mean of its neighbours' class scores. A row no label
    reaches gets -1. Returns the class of every row.
    """
    graph = sp.csr_matrix(connectivities)
    degree = np.asarray(graph.sum(1)).ravel()
    transition = sp.diags(1.0 / np.maximum(degree, 1e-12)) @ graph
    known = labels >= 0
    seeds = np.zeros((len(labels), n_classes))
    seeds[known, labels[known]] = 1.0
    scores = seeds.copy()
    for _ in range(PROPAGATION_STEPS):
        scores = transition @ scores
        scores[known] = seeds[known]
    return np.where(scores.max(1) > 0, scores.argmax(1), -1)


def best_communities(connectivities: Graph, resolution: float, random_state: int) -> np.ndarray:
    """Of :data:`LEIDEN_RUNS` Leiden runs on a graph, the communities of highest modularity, by size.

    On the mean kNN graph of several views (rows: the same cells), each view with its own graph.

    On the three labelled data sets (mouse bladder / PBMC / human kidney, the warm-start latents of three
    seeds) a single Leiden run at resolution 0.25 on the latent graph gives ARI 0.66 / 0.59 / 0.64,
    on the graph of the 50 PCs 0.54 / 0.73 / 0.62: each view misses where the other succeeds.
    Leiden's partition also varies with its seed, so it runs :data:`LEIDEN_RUNS` times and keeps
    the run of highest modularity, the objective all runs climb. Joined, on the warm-start latents
    of five seeds, at resolution 0.25: ARI 0.61 +- 0.01 / 0.75 +- 0.01 / 0.68 +- 0.01 (7 / 9 / 15
    communities); at 0.35: 0.67 +- 0.07 / 0.75 +- 0.01 / 0.64 +- 0.02 (8 / 9 / 17), bladder's two
    largest types being cut two ways of near-equal modularity (ARI 0.54 or 0.65 on one latent);
    at 0.5: 0.68 +- 0.02 / 0.75 +- 0.01 / 0.62 +- 0.01 (9 / 9 / 19). A consensus of the runs
    (Leiden again on the graph weighted by how often each edge's cells share a community) did not
    remove bladder's two cuts.
    """
    seeds = np.random.default_rng(random_state).integers(2**31 - 1, size=LEIDEN_RUNS)
    runs, modularities = leiden_runs(connectivities, resolution, seeds)
    codes = runs[int(np.argmax(modularities))]
    order = np.argsort(-np.bincount(codes), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[codes]


class _IgraphRandom:
    """Random numbers for igraph from a seeded NumPy generator, as ``sc.tl.leiden`` seeds igraph.

    igraph draws through an object with the interface of Python's :mod:`random` module.
    """

    def __init__(self, seed: int) -> None:
        self._rng = np.random.RandomState(seed)

    def getrandbits(self, k: int) -> int:
        return self._rng.tomaxint() & ((1 << k) - 1)

    def randint(self, a: int, b: int) -> int:
        return self._rng.randint(a, b + 1)

    def random(self) -> float:
        return self._rng.random_sample()

    def gauss(self, mu: float, sigma: float) -> float:
        return self._rng.normal(mu, sigma)


def leiden_runs(
    connectivities: Graph, resolution: float, seeds: Sequence[int]
) -> tuple[list[np.ndarray], list[float]]:
    """Leiden communities (igraph, modularity, 2 iterations) of a weighted graph, one run per seed.

    The partitions of ``sc.tl.leiden(flavor="igraph", n_iterations=2, directed=False)`` with these
    seeds, on a graph built once instead of once per run, and the modularity (at ``resolution``)
    of each.
    """
    import random

    import igraph

    sources, targets = connectivities.nonzero()
    graph = igraph.Graph(n=connectivities.shape[0], edges=list(zip(sources, targets, strict=True)))
    graph.es["weight"] = np.asarray(connectivities[sources, targets]).ravel()
    runs, modularities = [], []
    for seed in seeds:
        igraph.set_random_number_generator(_IgraphRandom(int(seed)))
        try:
            partition = graph.community_leiden(
                objective_function="modularity", weights="weight", resolution=resolution, n_iterations=2
            )
        finally:
            igraph.set_random_number_generator(random)
        runs.append(np.asarray(partition.membership))
        modularities.append(graph.modularity(partition.membership, weights="weight", resolution=resolution))
    return runs, modularities


def initial_components(
    latent: np.ndarray,
    *,
    n_components: int,
    labels: np.ndarray | None = None,
    n_classes: int = 0,
    auto: bool = False,
    views: Sequence[np.ndarray] = (),
    knn_graph: KnnGraph,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The ``n_components`` mixture components to start from, and the partition they come from.

    Parameters
    ----------
    latent
        ``(n, d)`` latent means of the training cells.
    n_components
        Components of the prior (with ``auto``: the most there is room for). Without ``labels``,
        the communities of the joined kNN graph are redrawn by :func:`joint_kmeans`, started from
        the largest ones: with ``auto`` into as many groups as there are communities (at most
        ``n_components``); without, at least as many communities into ``n_components``, and
        components beyond fewer communities start small inside the most spread-out ones
        (:func:`split_moments`).
    labels
        ``(n,)`` class codes (-1: unlabelled); classes take components ``0..n_classes-1``.
    n_classes
        Number of label classes.
    auto
        Find the number of clusters from the kNN graph of ``latent`` joined with those of
        ``views``; components beyond it start with zero weight (the caller switches them off).
    views
        Other representations of the same cells (e.g. principal components), joined with
        ``latent`` into one kNN graph: without ``labels`` its communities; with ``labels`` and no
        free component, the unlabelled rows' classes by label propagation on it. In
        :func:`joint_kmeans` each weighs :data:`PCS_WEIGHT` times the latent.
    knn_graph
        Builds the kNN graph of several views of the same cells: given the views and the seed, the
        mean of their connectivities, a sparse ``(n, n)`` matrix (in sclatent scanpy's UMAP
        connectivities, from the layer above, which may call scanpy).
    random_state
        Seed of the clustering.

    Returns
    -------
    ``(n_components, d)`` means, ``(n_components, d)`` variances, ``(n_components,)`` weights, and
    the ``(n,)`` component each row starts in (-1: none; the labels themselves for labelled rows).
    """
    if labels is not None:
        means, variances, weights = moments(latent, labels, n_classes)
        weights = weights * np.mean(labels >= 0)
        n_free = n_components - n_classes
        unlabelled = latent[labels < 0]
        assignment = labels.copy()
        if views and n_free == 0:  # the unlabelled rows start in the class that reaches them
            assignment = propagate_labels(knn_graph([latent, *views], random_state), labels, n_classes)
        if n_free > 0 and len(unlabelled) > n_free:
            free_assignment = kmeans_partition(unlabelled, n_free, random_state)
            free = moments(unlabelled, free_assignment, n_free)
            assignment[labels < 0] = n_classes + free_assignment
            # free components start small: they take the cells that no class explains
            means = np.vstack([means, free[0]])
            variances = np.vstack([variances, free[1]])
            weights = np.concatenate([weights, 0.1 * free[2] * np.mean(labels < 0)])
        return means, variances, weights / weights.sum(), assignment
    connectivities = knn_graph([latent, *views], random_state)
    # without splits to come (auto), the coarser, stabler start, as training only switches
    # components off; a fixed K starts finer, and finer still where its spare components would
    # split the communities (K = 16 on mouse bladder, seeds 0-2: final ARI 0.69 +- 0.03 from
    # resolution 0.5, 0.65 +- 0.07 from 0.35, its two largest types cut two ways of near-equal
    # modularity; 0.54 / 0.56 from 0.25)
    if auto:
        communities = best_communities(connectivities, AUTO_RESOLUTION, random_state)
        n_groups = min(int(communities.max()) + 1, n_components)
    else:
        communities = best_communities(connectivities, FIXED_RESOLUTION, random_state)
        if communities.max() + 1 < n_components:
            communities = best_communities(connectivities, SPLIT_RESOLUTION, random_state)
        n_groups = n_components
    # k-means from the largest communities redraws their borders and takes in the cells of any
    # further ones (n_components=None, seeds 0-2, final ARI on PBMC 4k 0.762 -> 0.775 with 9
    # clusters, human kidney 0.679 (an earlier environment) -> 0.687, mouse bladder 0.605 -> 0.606)
    if communities.max() + 1 >= n_groups:
        view_weights = [1.0] + [PCS_WEIGHT] * len(views)
        communities = joint_kmeans([latent, *views], communities, n_groups, view_weights)
    n_found = int(communities.max()) + 1
    means, variances, weights = moments(latent, communities, n_found)
    n_spare = n_components - n_found
    if auto:  # spare slots start empty (the caller switches them off)
        spare = np.zeros((n_spare, latent.shape[1])), np.ones((n_spare, latent.shape[1])), np.zeros(n_spare)
    else:  # spare components start small, inside the communities they may split
        spare = split_moments(latent, communities, n_spare, random_state)
    means, variances = np.vstack([means, spare[0]]), np.vstack([variances, spare[1]])
    weights = np.concatenate([weights, spare[2]])
    return means, variances, weights / weights.sum(), communities


def joint_kmeans(
    views: Sequence[np.ndarray],
    communities: np.ndarray,
    n_groups: int,
    weights: Sequence[float] | None = None,
) -> np.ndarray:
    """k-means clusters of several views side by side, started from the means of ``n_groups`` communities.

    Each view is centred and scaled to a mean squared row norm of 1, then multiplied by its
    weight (default 1 for all). Started from the means of communities ``0..n_groups-1``, Lloyd's
    iterations redraw their borders and take in the cells of any further communities. On the
    warm-start latents of five seeds, with the communities at :data:`FIXED_RESOLUTION` and as many
    groups as cell types, the start's ARI rises from 0.752 +- 0.006 to 0.774 +- 0.005 on PBMC (8
    groups from 9 communities) and from 0.654 +- 0.020 to 0.724 +- 0.013 on human kidney (11 from
    15-17), with both views weighed alike. With the PCs weighing 1.5 / 2 / 3 times the latent it
    is 0.777 / 0.777 / 0.776 on PBMC and 0.721 / 0.694 / 0.686 on kidney; the final ARI of the fits
    (seeds 0-2) is 0.776 +- 0.003 and 0.727 +- 0.021 at 1.5, 0.774 +- 0.003 and 0.721 +- 0.018 at 1.
    k-means++ (best of 10) on the same joint views gives 0.775 and 0.641.
    """
    from sklearn.cluster import KMeans

    weights = [1.0] * len(views) if weights is None else weights
    centred = [view - view.mean(0) for view in views]
    joint = np.hstack(
        [
            weight * view / np.sqrt(max((view**2).sum(1).mean(), 1e-12))
            for view, weight in zip(centred, weights, strict=True)
        ]
    )
    starts = np.stack([joint[communities == group].mean(0) for group in range(n_groups)])
    return KMeans(n_groups, init=starts, n_init=1).fit_predict(joint)


def split_moments(
    latent: np.ndarray, assignment: np.ndarray, n_splits: int, random_state: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moments of ``n_splits`` new groups, each half of the then most spread-out group.

    ``n_splits`` times, the group (of ``assignment``, or a half split off before) with the largest
    within-group sum of squares in the standardised ``latent`` is cut in two by 2-means, and the
    half without the group's first row becomes a new group. Returns their means, variances and
    weights, the weights a tenth of their share of the rows: a new group starts small and keeps
    cells only where the data support it.
    """
    from sklearn.cluster import KMeans

    scaled = latent / np.maximum(latent.std(0), 1e-8)
    groups = assignment.copy()
    n_groups = int(groups.max()) + 1
    for new in range(n_groups, n_groups + n_splits):
        spread = np.zeros(new)
        for group in range(new):
            rows = scaled[groups == group]
            spread[group] = ((rows - rows.mean(0)) ** 2).sum() if len(rows) > 1 else 0.0
        rows = np.flatnonzero(groups == int(np.argmax(spread)))
        if len(rows) < 2:
            break
        halves = KMeans(2, n_init=3, random_state=random_state).fit_predict(scaled[rows])
        groups[rows[halves != halves[0]]] = new
    means, variances, weights = moments(latent, groups, n_groups + n_splits)
    return means[n_groups:], variances[n_groups:], 0.1 * weights[n_groups:]
