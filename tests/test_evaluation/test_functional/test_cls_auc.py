"""Tests of fxmm.evaluation.functional.cls_auc.mean_auc."""
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fxmm.evaluation.functional.cls_auc import CHEXPERT_COMPETITION_CLASSES, mean_auc

NAN = float('nan')


def crafted():
    """6 samples, 3 classes with hand-known AUCs (see each column's comment)."""
    scores = np.array([[0.9, 0.5, 0.1],
                       [0.8, 0.4, 0.2],
                       [0.3, 0.3, 0.3],
                       [0.2, 0.6, 0.4],
                       [0.95, 0.2, 0.5],
                       [0.1, 0.1, 0.6]])
    labels = np.array([[1, 0, 0],
                       [1, 1, NAN],
                       [0, 0, 0],
                       [0, 1, 0],
                       [-1, 1, -1],  # col 0: uncertain, but the top score: must be ignored
                       [NAN, 0, 0]])
    # col 0: valid rows 0-3 separate perfectly -> 1.0
    # col 1: positives {.4, .6, .2} vs negatives {.5, .3, .1}: 6 of 9 pairs ordered -> 2/3
    # col 2: no positive among the valid labels -> no AUC
    return scores, labels, ['a', 'b', 'c']


def test_crafted_values_with_ignored_labels_and_a_skipped_class():
    scores, labels, names = crafted()
    result = mean_auc(scores, labels, names)
    assert result['per_class']['a'] == 1.0
    assert result['per_class']['b'] == pytest.approx(2 / 3)
    assert math.isnan(result['per_class']['c'])
    assert result['skipped'] == ['c']
    assert result['mean'] == pytest.approx((1 + 2 / 3) / 2)


def test_subset_of_classes_is_averaged_alone():
    scores, labels, names = crafted()
    result = mean_auc(scores, labels, names, classes=['b'])
    assert list(result['per_class']) == ['b']
    assert result['mean'] == pytest.approx(2 / 3)
    assert result['skipped'] == []


def test_matches_sklearn_on_valid_samples_of_random_data():
    rng = np.random.default_rng(0)
    names = list(CHEXPERT_COMPETITION_CLASSES) + ['No Finding', 'Fracture']
    scores = rng.random((200, len(names)))
    labels = rng.integers(0, 2, size=scores.shape).astype(float)
    labels[rng.random(scores.shape) < 0.2] = -1
    labels[rng.random(scores.shape) < 0.2] = NAN
    result = mean_auc(scores, labels, names, classes=CHEXPERT_COMPETITION_CLASSES)
    expected = {}
    for name in CHEXPERT_COMPETITION_CLASSES:
        col = names.index(name)
        valid = (labels[:, col] == 0) | (labels[:, col] == 1)
        expected[name] = roc_auc_score(labels[valid, col], scores[valid, col])
    assert result['per_class'] == pytest.approx(expected)
    assert result['mean'] == pytest.approx(np.mean(list(expected.values())))


def test_all_classes_skipped_gives_nan_mean():
    result = mean_auc(np.array([[0.2], [0.7]]), np.array([[1.], [1.]]), ['a'])
    assert math.isnan(result['mean']) and result['skipped'] == ['a']


@pytest.mark.parametrize('labels, classes, match', [
    (np.array([[1.], [0.6]]), None, 'labels must be 1, 0, -1'),
    (np.array([[1.], [0.]]), ['Edema'], r"classes \['Edema'\] are not among"),
    (np.array([[1., 0.], [0., 1.]]), None, r'shape \(N, C\)'),
])
def test_bad_input_is_named(labels, classes, match):
    with pytest.raises(ValueError, match=match):
        mean_auc(np.array([[0.1], [0.9]]), labels, ['a'], classes)
