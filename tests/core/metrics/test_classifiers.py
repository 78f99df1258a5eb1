"""Classifier scores of an embedding (sclatent._core.metrics.classifiers)."""

import numpy as np
import pytest

from sclatent._core.metrics.classifiers import CLASSIFIERS, classifier_scores


@pytest.fixture
def blobs():
    rng = np.random.default_rng(0)
    codes = np.repeat(np.arange(3), 100)
    separated = rng.normal(size=(300, 4)) + 6.0 * np.eye(3, 4)[codes]
    order = rng.permutation(300)
    return separated, codes, order[:200], order[200:]


def test_separated_classes_are_predicted_and_noise_is_not(blobs):
    separated, codes, train, test = blobs
    accuracy, macro_f1 = classifier_scores(separated, codes, train, test, CLASSIFIERS, 0)
    assert set(accuracy) == set(macro_f1) == set(CLASSIFIERS)
    assert min(accuracy.values()) > 0.95 and min(macro_f1.values()) > 0.95
    noise = np.random.default_rng(1).normal(size=separated.shape)
    accuracy, _ = classifier_scores(noise, codes, train, test, ("knn", "logreg"), 0)
    assert max(accuracy.values()) < 0.5  # chance is 1/3


def test_knn_uses_every_training_cell_when_fewer_than_fifteen(blobs):
    """k = the 7 training cells: every cell gets the majority class of the training cells."""
    separated, codes, _, test = blobs
    few = np.array([0, 1, 2, 100, 101, 200, 201])
    accuracy, _ = classifier_scores(separated, codes, few, test, ("knn",), 0)
    assert accuracy["knn"] == pytest.approx(np.mean(codes[test] == 0))
