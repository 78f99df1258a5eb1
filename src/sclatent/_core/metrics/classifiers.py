"""Held-out accuracy and macro-F1 of classifiers trained on an embedding (the ICRST/TRST paper's test)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

#: k-nearest neighbours, logistic regression, RBF SVM, random forest, MLP, Gaussian naive Bayes.
CLASSIFIERS = ("knn", "logreg", "svm", "rf", "mlp", "nb")


def classifier(name: str, random_state: int, n_train: int) -> ClassifierMixin:
    """One of :data:`CLASSIFIERS`, with settings that need no tuning (k = 15, or ``n_train`` when fewer)."""
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


def classifier_scores(
    embedding: np.ndarray,
    codes: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    classifiers: Sequence[str],
    random_state: int,
) -> tuple[dict[str, float], dict[str, float]]:
    """Accuracy and macro-F1 on the ``test`` rows of each classifier fitted on the ``train`` rows.

    Parameters
    ----------
    embedding
        ``(n, d)`` features.
    codes
        ``(n,)`` integer classes.
    train, test
        Row numbers to fit and to score on.
    classifiers
        Names among :data:`CLASSIFIERS`.
    random_state
        Seed of the randomised classifiers.

    Returns
    -------
    Accuracy and macro-F1, each a dict by classifier name.
    """
    accuracy, macro_f1 = {}, {}
    for name in classifiers:
        model = classifier(name, random_state, len(train)).fit(embedding[train], codes[train])
        predicted = model.predict(embedding[test])
        accuracy[name] = float(accuracy_score(codes[test], predicted))
        macro_f1[name] = float(f1_score(codes[test], predicted, average="macro"))
    return accuracy, macro_f1
