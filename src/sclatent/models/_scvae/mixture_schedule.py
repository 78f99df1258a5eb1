"""The GMVAE's training schedule: a VAE warm start, the mixture's start, anchored epochs, pruning.

:class:`MixtureSchedule` holds the whole schedule of one fit; :func:`~sclatent._core.train.train`
calls :meth:`MixtureSchedule.on_epoch_start` before every epoch. The array work of the start (the
clustering) is :func:`~sclatent._core.stats.clustering.initial_components`, on the kNN graph that
:func:`~sclatent._knn_graph.joint_connectivities` builds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..._core.data import CellData
from ..._core.modules import CountVAE
from ..._core.stats.clustering import initial_components
from ..._core.stats.pca import log_normalised_pcs
from ..._core.train import predict, progress_bar
from ..._knn_graph import joint_connectivities

#: Component slots when the mixture finds the number of clusters itself.
MAX_COMPONENTS = 64
#: Default epochs of the mixture prior (a third of them the VAE warm start).
MIXTURE_EPOCHS = 150
#: Training cells whose graph gives the number of clusters and whose posteriors measure the
#: components' usage (a random subset above it, drawn once per fit; read into memory once when the
#: matrix is on disk).
MAX_CLUSTERED_CELLS = 50_000
#: Components used by fewer than this share of those cells are switched off after each epoch.
MIN_COMPONENT_USAGE = 0.002


def mixture_stages(epochs: int, *, fixed_k: bool) -> tuple[int, int]:
    """Epochs of VAE warm start, then of the mixture anchored to its starting partition.

    The warm start takes a third of the epochs. Then each clustered cell's q(y|x) is held at
    the component its starting cluster became, as a labelled cell's is: the encoder gathers
    each cluster into its Gaussian. Without it the Gaussians fitted to graph communities cut
    them (ARI of the initial communities 0.66 on human kidney, of argmax q(y|x) one epoch
    later 0.60). With ``n_components=None`` or ``labels_key`` the anchor holds for a third of
    the remaining epochs, after which the free GMVAE refines its start (PBMC 4k, seeds 0-2,
    ARI 0.775 +- 0.003; from the communities before k-means redrew them, 0.762 +- 0.006, and
    0.753 +- 0.002 anchored to the end). A given ``n_components`` (``fixed_k``, without
    ``labels_key``) starts from k-means into that many clusters, from which the free GMVAE only
    drifts (PBMC, K = 8, seed 0: ARI 0.780 when the anchor ended, 0.771 at the end), so its
    anchor holds for all the remaining epochs but the last. ARI at K = types (seeds 0-2) with a
    third / two thirds / all but one anchored: mouse bladder 0.689 +- 0.025 / 0.692 +- 0.021 /
    0.702 +- 0.015, PBMC 0.770 +- 0.002 / 0.774 +- 0.002 / 0.774 +- 0.003, human kidney 0.701 +-
    0.041 / 0.714 +- 0.033 / 0.721 +- 0.018. With ``labels_key`` (and no free component) the
    unlabelled cells are anchored at the class that label propagation gives them.
    """
    warm = max(1, epochs // 3) if epochs > 1 else 0
    all_but_last = max(epochs - warm - 1, 0)  # the mixture keeps at least one free epoch
    if fixed_k:
        return warm, all_but_last
    return warm, min(max(1, (epochs - warm) // 3), all_but_last)


@dataclass
class MixtureSchedule:
    """One GMVAE fit's stages: warm start, start of the mixture, anchored epochs, free epochs.

    Parameters
    ----------
    module
        The model, whose mixture the schedule starts and prunes.
    data
        All cells of the fit; the anchors are set in (and removed from) its per-cell tensors, and
        ``data.obs["label"]`` holds the classes of label transfer (-1: unlabelled).
    cells
        The training cells: the ones clustered, and whose usage prunes components (at most
        :data:`MAX_CLUSTERED_CELLS` of them, :meth:`clustered_subset`).
    epochs
        Epochs of the fit.
    fixed_k
        A given number of components without labels (anchored until the last epoch).
    n_classes
        Classes of label transfer (0 without).
    log_normalise
        Log-normalise the input before its principal components (count likelihoods).
    random_state
        Seed of the subset of clustered cells, the PCs and the clustering.
    progress
        Show the stages of the start in a bar.
    """

    module: CountVAE
    data: CellData
    cells: np.ndarray
    epochs: int
    fixed_k: bool
    n_classes: int
    log_normalise: bool
    random_state: int
    progress: bool = False

    def __post_init__(self) -> None:
        self.warm, self.anchored = mixture_stages(self.epochs, fixed_k=self.fixed_k)
        #: Find the number of clusters: components beyond it start empty and unused ones switch off.
        self.auto = not self.fixed_k and "label" not in self.data.obs
        self._sample: tuple[np.ndarray, CellData, np.ndarray] | None = None

    @property
    def sample(self) -> tuple[np.ndarray, CellData, np.ndarray]:
        """The clustered training cells, the data to read them from, and their rows there."""
        if self._sample is None:
            rows = self.clustered_subset(self.cells, None)[0]
            self._sample = (rows, *self.data.cached(rows))
        return self._sample

    def on_epoch_start(self, epoch: int) -> None:
        """Start the mixture after the warm start, drop the anchors after theirs, prune (``auto``)."""
        if epoch == self.warm:
            self.start()
        elif epoch == self.warm + self.anchored and "anchor" in self.data.obs:
            del self.data.obs["anchor"]
        if epoch > self.warm and self.auto:
            _, data, rows = self.sample
            usage = torch.as_tensor(self.posterior("y_log_probs", rows, data)).exp().mean(0)
            self.module.mixture.prune(usage, MIN_COMPONENT_USAGE)
            if "anchor" in self.data.obs:  # cells anchored to a component switched off go free
                anchor = self.data.obs["anchor"]
                active = self.module.mixture.active.to(anchor.device)
                off = (anchor >= 0) & ~active[anchor.clamp_min(0)]
                self.data.obs["anchor"] = torch.where(off, -1, anchor)

    def posterior(self, key: str, rows: np.ndarray, data: CellData | None = None) -> np.ndarray:
        """An output of the encoder (``"z_mean"``, ``"y_log_probs"``) for some cells, in eval mode."""
        self.module.eval()
        return predict(
            lambda b: self.module.encode(b["x"], b.get("covariates"))[key], data or self.data, indices=rows
        )

    def start(self) -> None:
        """Set the components from the warm start's latent means, and anchor the cells they came from."""
        data, module = self.data, self.module
        # classes start from all their labelled cells, validation cells included
        rows = np.arange(len(data)) if "label" in data.obs else self.cells
        labels = data.obs["label"].cpu().numpy() if "label" in data.obs else None
        views, source, source_rows = [], data, rows
        clustered = labels is None or module.n_components == self.n_classes
        with progress_bar(total=3 + clustered, desc="mixture start", show=self.progress) as bar:
            if clustered:  # the clusters (or the unlabelled cells' classes) come from the latent and the PCs
                bar.set_postfix_str("reading the cells")
                if labels is None:
                    rows, source, source_rows = self.sample
                else:
                    rows, labels = self.clustered_subset(rows, labels)
                    source, source_rows = data.cached(rows)
                bar.update()
                bar.set_postfix_str(f"PCs of {len(rows):,} cells")
                pcs = log_normalised_pcs(
                    source.x, source_rows, log_normalise=self.log_normalise, random_state=self.random_state
                )
                views = [pcs]
            bar.update()
            bar.set_postfix_str("latent means")
            latent = self.posterior("z_mean", source_rows, source)
            bar.update()
            bar.set_postfix_str("kNN graph, communities" if labels is None else "classes")
            means, variances, weights, partition = initial_components(
                latent,
                n_components=module.n_components,
                labels=labels,
                n_classes=self.n_classes,
                auto=self.auto,
                views=views,
                knn_graph=joint_connectivities,
                random_state=self.random_state,
            )
            bar.update()
        module.mixture.initialise(means, variances, weights)
        module.mixture.active.copy_(torch.as_tensor(weights > 0))
        if self.anchored:
            anchor = torch.full((len(data),), -1, dtype=torch.int64)
            anchor[torch.as_tensor(rows)] = torch.as_tensor(partition, dtype=torch.int64)
            data.obs["anchor"] = anchor.to(data.x.device)

    def clustered_subset(
        self, rows: np.ndarray, labels: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """At most :data:`MAX_CLUSTERED_CELLS` of ``rows`` and their labels: all labelled, the rest drawn."""
        if len(rows) <= MAX_CLUSTERED_CELLS:
            return rows, labels
        keep = np.zeros(len(rows), dtype=bool) if labels is None else labels >= 0
        others = np.flatnonzero(~keep)
        n_more = min(max(MAX_CLUSTERED_CELLS - int(keep.sum()), 0), len(others))
        more = np.random.default_rng(self.random_state).choice(others, n_more, replace=False)
        picked = np.sort(np.concatenate([np.flatnonzero(keep), more]))
        return rows[picked], None if labels is None else labels[picked]
