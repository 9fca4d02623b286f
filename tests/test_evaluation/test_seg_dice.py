"""Tests of fxmm.evaluation.functional.seg_dice."""
import math

import numpy as np
import pytest
import torch

from fxmm.evaluation.functional.seg_dice import dice_per_image, summarize_dice


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


def test_summary_means_per_class_and_per_image():
    dice = np.array([[1.0, 0.5],
                     [float('nan'), 0.0]])
    summary = summarize_dice(dice, ['heart', 'lung'])
    assert summary['per_class'] == {'heart': 1.0, 'lung': 0.25}
    # per-image means 0.75 and 0.0 (nan left out) -> 0.375, not the class mean 0.625
    assert summary['mean'] == pytest.approx(0.375)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match='differ in shape'):
        dice_per_image(np.zeros((1, 2, 4, 4)), np.zeros((1, 2, 4, 5)))
    with pytest.raises(ValueError, match=r'\(N, K, H, W\)'):
        dice_per_image(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match=r'\(N, 3\)'):
        summarize_dice(np.zeros((2, 2)), ['a', 'b', 'c'])
