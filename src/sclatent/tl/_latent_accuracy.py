"""``sl.tl.latent_accuracy``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from anndata import AnnData
from sklearn.model_selection import train_test_split

from .. import _anndata as io
from .._core.metrics.classifiers import CLASSIFIERS, classifier_scores
from .._docs import shared_parameters
from .._logging import logger
from .._validation import Choices, Key, Real, SeedLike, check_arguments, flag, resolve_seed, seed
from ._utils import output_target, with_checks

CHECKS = {
    "basis": Key(optional=False),
    "labels_key": Key(optional=False),
    "classifiers": Choices(CLASSIFIERS),
    "test_size": Real(low=0, high=1, low_open=True, high_open=True),
    "split_key": Key(),
    "random_state": seed,
    "key_added": Key(storable=True),
    "copy": flag,
}


@shared_parameters
@with_checks(CHECKS)
def latent_accuracy(
    adata: AnnData,
    basis: str,
    labels_key: str,
    *,
    classifiers: Sequence[str] = CLASSIFIERS,
    test_size: float = 0.3,
    split_key: str | None = None,
    random_state: SeedLike = 0,
    key_added: str | None = None,
    copy: bool = False,
) -> AnnData | None:
    """Held-out accuracy and macro-F1 of classifiers trained on an embedding.

    The evaluation of the ICRST/TRST paper: how well do k-nearest neighbours (k = 15, or the number
    of training cells when fewer), logistic regression, an RBF SVM, a random forest, an MLP and
    Gaussian naive Bayes predict the labels from the latent features? Cells without a label are left
    out.

    An embedding learnt with the labels (``sl.tl.ae_sampling(mode="icrst")``) has seen the test
    cells' labels when it was computed on all cells, so its score is optimistic. Fit the model on the
    training cells only, embed every cell with ``model.transform``, and pass ``split_key`` marking
    those training cells, as ``benchmarks/bench_ae_sampling.py`` does.

    Parameters
    ----------
    adata
        Annotated data.
    basis
        Key of ``adata.obsm`` holding the embedding (with or without the ``X_`` prefix).
    labels_key
        Column of ``adata.obs`` with the classes.
    classifiers
        Any of ``"knn"``, ``"logreg"``, ``"svm"``, ``"rf"``, ``"mlp"``, ``"nb"``.
    test_size
        Share of labelled cells held out (stratified), when ``split_key`` is None.
    split_key
        Boolean column of ``adata.obs``: True for the cells to train the classifiers on, False for
        the cells to test them on.
    random_state
        Seed of the split and of the randomised classifiers (an int, None or a NumPy generator).
    key_added
        Key in ``adata.uns`` (default ``"latent_accuracy"``).
    {copy}

    Returns
    -------
    The copy when ``copy=True``, else None. Writes ``adata.uns["latent_accuracy"][basis]``:
    ``"accuracy"`` and ``"macro_f1"`` (dicts by classifier), ``"labels_key"``, ``"n_train"``,
    ``"n_test"`` and ``"split"`` (``split_key`` or ``"random"``).
    """
    io.check_anndata(adata)
    args = check_arguments(locals(), CHECKS)
    classifiers, random_state = args["classifiers"], resolve_seed(args["random_state"])
    results_key = args["key_added"] or "latent_accuracy"
    io.check_results_key(adata, results_key)
    key = io.resolve_basis(adata, basis)
    embedding = np.asarray(io.get_matrix(adata, use_rep=key))
    io.check_finite(embedding, f"adata.obsm[{key!r}]")
    codes, _ = io.get_codes(adata, labels_key, "labels_key")
    labelled = codes >= 0
    if len(np.unique(codes[labelled])) < 2:
        msg = (
            f"labels_key={labels_key!r}: adata.obs[{labels_key!r}] has {labelled.sum()} labelled cells of "
            f"{len(np.unique(codes[labelled]))} class(es); at least two classes are needed."
        )
        raise ValueError(msg)
    if split_key is None:
        cells = np.flatnonzero(labelled)
        stratify = codes[cells] if np.bincount(codes[cells]).min() >= 2 else None
        train, test = train_test_split(
            cells, test_size=test_size, random_state=random_state, stratify=stratify
        )
    else:
        mask = io.obs_column(adata, split_key, "split_key").to_numpy()
        if mask.dtype != bool:
            msg = f"adata.obs[{split_key!r}] must be boolean (True: train, False: test); got {mask.dtype}."
            raise TypeError(msg)
        train, test = np.flatnonzero(mask & labelled), np.flatnonzero(~mask & labelled)
    if len(train) == 0 or len(test) == 0 or len(np.unique(codes[train])) < 2:
        msg = (
            f"Cannot evaluate: {len(train)} training and {len(test)} test cells with labels, "
            f"{len(np.unique(codes[train]))} class(es) among the training cells; at least two of each needed."
        )
        raise ValueError(msg)
    accuracy, macro_f1 = classifier_scores(embedding, codes, train, test, classifiers, random_state)
    for name, value in accuracy.items():
        logger.info("latent_accuracy %s %s: accuracy %.4f", key, name, value)
    target = output_target(adata, copy=args["copy"], tool="latent_accuracy")
    target.uns.setdefault(results_key, {})[key] = {
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "labels_key": labels_key,
        "n_train": len(train),
        "n_test": len(test),
        "split": split_key or "random",
    }
    return target if args["copy"] else None
