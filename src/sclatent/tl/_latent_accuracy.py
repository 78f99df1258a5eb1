"""``sl.tl.latent_accuracy``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from anndata import AnnData
from sklearn.base import ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from .. import _anndata as io
from .._core.validation import Choices, Key, Real, SeedLike, check_arguments, flag, resolve_seed, seed
from .._logging import logger
from ._utils import output_target


def _classifier(name: str, random_state: int, n_train: int) -> ClassifierMixin:
    """The classifiers of the ICRST/TRST paper's evaluation, with settings that need no tuning."""
    if name == "knn":
        return KNeighborsClassifier(n_neighbors=min(15, n_train))
    if name == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    if name == "svm":
        return make_pipeline(StandardScaler(), SVC())
    if name == "rf":
        return RandomForestClassifier(n_estimators=200, random_state=random_state, n_jobs=-1)
    if name == "mlp":
        return make_pipeline(StandardScaler(), MLPClassifier(max_iter=1000, random_state=random_state))
    return GaussianNB()


CLASSIFIERS = ("knn", "logreg", "svm", "rf", "mlp", "nb")


_CHECKS = {
    "basis": Key(optional=False),
    "labels_key": Key(optional=False),
    "classifiers": Choices(CLASSIFIERS),
    "test_size": Real(low=0, high=1, low_open=True, high_open=True),
    "split_key": Key(),
    "random_state": seed,
    "key_added": Key(storable=True),
    "copy": flag,
}


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
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    The copy when ``copy=True``, else None. Writes ``adata.uns["latent_accuracy"][basis]``:
    ``"accuracy"`` and ``"macro_f1"`` (dicts by classifier), ``"labels_key"``, ``"n_train"``,
    ``"n_test"`` and ``"split"`` (``split_key`` or ``"random"``).
    """
    io.check_anndata(adata)
    args = check_arguments(locals(), _CHECKS)
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
        if split_key not in adata.obs:
            msg = f"split_key={split_key!r} is not a column of adata.obs (columns: {io._keys(adata.obs)})."
            raise io.MissingKeyError(msg)
        mask = adata.obs[split_key].to_numpy()
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
    accuracy, macro_f1 = {}, {}
    for name in classifiers:
        model = _classifier(name, random_state, len(train)).fit(embedding[train], codes[train])
        predicted = model.predict(embedding[test])
        accuracy[name] = float(accuracy_score(codes[test], predicted))
        macro_f1[name] = float(f1_score(codes[test], predicted, average="macro"))
        logger.info("latent_accuracy %s %s: accuracy %.4f", key, name, accuracy[name])
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
