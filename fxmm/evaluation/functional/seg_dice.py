"""Segmentation: Dice per image and class, and its means (the paper's Seg Dice)."""
from typing import Dict, Sequence, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]


def _as_bool(masks: ArrayLike, name: str) -> np.ndarray:
    if isinstance(masks, torch.Tensor):
        masks = masks.detach().cpu().numpy()
    masks = np.asarray(masks)
    if masks.ndim != 4:
        raise ValueError(f'{name} must have shape (N, K, H, W); got {masks.shape}')
    return masks.astype(bool, copy=False)


def dice_per_image(pred: ArrayLike, gt: ArrayLike, empty_score: float = 1.0) -> np.ndarray:
    """Dice ``2|P & G| / (|P| + |G|)`` of every image and class, vectorised.

    Convention: where both the prediction and the ground truth are empty (a class absent
    from an image and correctly not predicted) the Dice is undefined; it is set to
    ``empty_score`` - 1.0 by default (a correct "nothing here"); pass ``float('nan')`` to
    leave such cases out of every mean. An empty GT with a non-empty prediction (or the
    reverse) scores 0.

    Args:
        pred (np.ndarray | Tensor): predicted masks, bool (or 0/1), shape (N, K, H, W).
        gt (np.ndarray | Tensor): ground-truth masks, bool (or 0/1), shape (N, K, H, W).
        empty_score (float): the Dice of an empty prediction for an empty GT.

    Returns:
        np.ndarray: float64 Dice, shape (N, K).
    """
    pred, gt = _as_bool(pred, 'pred'), _as_bool(gt, 'gt')
    if pred.shape != gt.shape:
        raise ValueError(f'pred and gt masks differ in shape: {pred.shape} vs {gt.shape}')
    inter = np.count_nonzero(pred & gt, axis=(2, 3))  # (N, K)
    total = np.count_nonzero(pred, axis=(2, 3)) + np.count_nonzero(gt, axis=(2, 3))
    dice = np.full(inter.shape, empty_score, dtype=np.float64)
    np.divide(2. * inter, total, out=dice, where=total > 0)
    return dice


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean along ``axis`` ignoring nan; nan where a slice holds only nan (no warning)."""
    count = np.sum(~np.isnan(values), axis=axis)
    total = np.nansum(values, axis=axis)
    return np.divide(total, count, out=np.full(count.shape, np.nan), where=count > 0)


def summarize_dice(dice: np.ndarray, class_names: Sequence[str]) -> Dict:
    """Means of a Dice table: per class over images, and overall over images.

    The overall Dice is the mean over images of each image's mean over classes (the
    paper's "Dice per image, mean over images"). nan entries (``empty_score=nan``) are
    left out of every mean.

    Args:
        dice (np.ndarray): Dice per image and class, shape (N, K), e.g. from
            :func:`dice_per_image`.
        class_names (Sequence[str]): the K class names.

    Returns:
        dict: ``per_class`` (dict name -> mean Dice over images) and ``mean`` (float).
    """
    dice = np.asarray(dice, dtype=np.float64)
    if dice.ndim != 2 or dice.shape[1] != len(class_names):
        raise ValueError(f'dice must have shape (N, {len(class_names)}) for class_names '
                         f'{list(class_names)}; got {dice.shape}')
    per_class = _nanmean(dice, axis=0)
    per_image = _nanmean(dice, axis=1)
    return dict(per_class={name: float(v) for name, v in zip(class_names, per_class)},
                mean=float(_nanmean(per_image, axis=0)))
