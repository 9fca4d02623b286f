"""Tests of fxmm.evaluation.functional.seg_dice."""
import math

import numpy as np
import pytest
import torch

from fxmm.evaluation.functional.seg_dice import dice_counts, dice_per_image, summarize_dice


def masks():
    """One 4x4 image, 4 classes: overlap, both empty, empty GT, empty prediction."""
    pred = np.zeros((1, 4, 4, 4), bool)
    gt = np.zeros((1, 4, 4, 4), bool)
    pred[0, 0, 0, :4] = True           # 4 predicted pixels
    gt[0, 0, 0, 2:4] = True            # 2 GT pixels, both predicted: 2*2 / (4+2)
    pred[0, 2, 1, 1] = True            # class 2: GT empty, prediction not -> 0
    gt[0, 3, 3, :] = True              # class 3: prediction empty, GT not -> 0
    return pred, gt


def test_hand_computed_values_and_empty_convention():
    pred, gt = masks()
    np.testing.assert_allclose(dice_per_image(pred, gt), [[2 / 3, 1.0, 0.0, 0.0]])
    np.testing.assert_allclose(dice_per_image(pred, gt, empty_score=0.0),
                               [[2 / 3, 0.0, 0.0, 0.0]])
    nan_empty = dice_per_image(pred, gt, empty_score=float('nan'))
    assert math.isnan(nan_empty[0, 1]) and nan_empty[0, 0] == pytest.approx(2 / 3)


def test_torch_input_and_batches_match_numpy():
    pred, gt = masks()
    pred2 = np.concatenate([pred, gt])  # image 2: a perfect prediction -> all 1
    gt2 = np.concatenate([gt, gt])
    dice = dice_per_image(torch.from_numpy(pred2).to(torch.uint8), torch.from_numpy(gt2))
    assert dice.shape == (2, 4)
    np.testing.assert_allclose(dice, [[2 / 3, 1., 0., 0.], [1., 1., 1., 1.]])


def test_summary_pools_the_classes_of_an_image():
    """Image 0 of masks(): |P & G| = 2 of |P| + |G| = 4 + 2 (class 0) + 1 (class 2) + 4
    (class 3) pooled: 4 / 11, where the mean of its per-class Dice would be 5 / 12 with the
    empty class 1 counted 1. Image 1, predicted exactly: 1."""
    pred, gt = masks()
    inter, total = dice_counts(np.concatenate([pred, gt]), np.concatenate([gt, gt]))
    np.testing.assert_array_equal(inter, [[2, 0, 0, 0], [2, 0, 0, 4]])
    np.testing.assert_array_equal(total, [[6, 0, 1, 4], [4, 0, 0, 8]])
    summary = summarize_dice(inter, total, ['a', 'b', 'c', 'd'])
    np.testing.assert_allclose(summary['per_image'], [4 / 11, 1.0])
    assert summary['mean'] == pytest.approx((4 / 11 + 1) / 2)
    assert summary['per_class'] == pytest.approx(dict(a=(2 / 3 + 1) / 2, b=1., c=.5, d=.5))
    # with empty_score nan an image with nothing anywhere is left out of the mean
    empty = summarize_dice(np.zeros((2, 2)), np.array([[0, 0], [3, 1]]), ['a', 'b'],
                           empty_score=float('nan'))
    assert math.isnan(empty['per_image'][0]) and empty['mean'] == 0.0
    assert empty['per_class'] == dict(a=0.0, b=0.0)


def test_a_model_predicting_nothing_scores_nothing_on_sparse_classes():
    """13 classes, one present per image, nothing predicted: the pooled Dice is 0 (the
    per-class mean would be 12/13)."""
    gt = np.zeros((3, 13, 8, 8), bool)
    for i in range(3):
        gt[i, i, 2:5, 2:5] = True
    inter, total = dice_counts(np.zeros_like(gt), gt)
    summary = summarize_dice(inter, total, [str(k) for k in range(13)])
    assert summary['mean'] == 0.0
    assert dice_per_image(np.zeros_like(gt), gt).mean(axis=1) == pytest.approx([12 / 13] * 3)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match='differ in shape'):
        dice_per_image(np.zeros((1, 2, 4, 4)), np.zeros((1, 2, 4, 5)))
    with pytest.raises(ValueError, match=r'\(N, K, H, W\)'):
        dice_per_image(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match=r'\(N, 3\)'):
        summarize_dice(np.zeros((2, 2)), np.zeros((2, 2)), ['a', 'b', 'c'])
