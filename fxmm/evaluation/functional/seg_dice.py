"""Segmentation: Dice per image and class, and the paper's Seg Dice (classes pooled per
image, mean over images)."""
from typing import Dict, Sequence, Tuple, Union

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


def dice_counts(pred: ArrayLike, gt: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    """The pixel counts of the Dice of every image and class, vectorised.

    Args:
        pred (np.ndarray | Tensor): predicted masks, bool (or 0/1), shape (N, K, H, W).
        gt (np.ndarray | Tensor): ground-truth masks, bool (or 0/1), shape (N, K, H, W).

    Returns:
        tuple[np.ndarray, np.ndarray]: int64 ``|P & G|`` and ``|P| + |G|``, each (N, K).
    """
    pred, gt = _as_bool(pred, 'pred'), _as_bool(gt, 'gt')
    if pred.shape != gt.shape:
        raise ValueError(f'pred and gt masks differ in shape: {pred.shape} vs {gt.shape}')
    inter = np.count_nonzero(pred & gt, axis=(2, 3)).astype(np.int64)
    total = (np.count_nonzero(pred, axis=(2, 3)) + np.count_nonzero(gt, axis=(2, 3))).astype(
        np.int64)
    return inter, total


def dice_from_counts(inter: np.ndarray, total: np.ndarray,
                     empty_score: float = 1.0) -> np.ndarray:
    """Dice ``2|P & G| / (|P| + |G|)`` from :func:`dice_counts` (any matching shapes).

    Convention: where both the prediction and the ground truth are empty (``total`` 0: a
    class absent from an image and correctly not predicted) the Dice is undefined; it is
    set to ``empty_score`` - 1.0 by default (a correct "nothing here"); pass
    ``float('nan')`` to leave such cases out of every mean. An empty GT with a non-empty
    prediction (or the reverse) scores 0.
    """
    inter, total = np.asarray(inter), np.asarray(total)
    dice = np.full(inter.shape, empty_score, dtype=np.float64)
    np.divide(2. * inter, total, out=dice, where=total > 0)
    return dice


def dice_per_image(pred: ArrayLike, gt: ArrayLike, empty_score: float = 1.0) -> np.ndarray:
    """Dice of every image and class (see :func:`dice_from_counts` for empty masks).

    Args:
        pred (np.ndarray | Tensor): predicted masks, bool (or 0/1), shape (N, K, H, W).
        gt (np.ndarray | Tensor): ground-truth masks, bool (or 0/1), shape (N, K, H, W).
        empty_score (float): the Dice of an empty prediction for an empty GT.

    Returns:
        np.ndarray: float64 Dice, shape (N, K).
    """
    return dice_from_counts(*dice_counts(pred, gt), empty_score)


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean along ``axis`` ignoring nan; nan where a slice holds only nan (no warning)."""
    count = np.sum(~np.isnan(values), axis=axis)
    total = np.nansum(values, axis=axis)
    return np.divide(total, count, out=np.full(count.shape, np.nan), where=count > 0)


def summarize_dice(inter: np.ndarray, total: np.ndarray, class_names: Sequence[str],
                   empty_score: float = 1.0) -> Dict:
    """The paper's Seg Dice and the Dice per class, from the counts of N images.

    - ``mean``: the Dice of each image with its K classes pooled (``2 sum_k |P_k & G_k| /
      sum_k (|P_k| + |G_k|)``, as the authors' ``mean_dice_coef``), mean over images (the
      paper's "Dice per image, mean over images"). Pooling keeps the classes absent from an
      image from scoring: averaging per-class Dice instead would give a model that predicts
      nothing 12/13 on an image of ChestX-Det holding one of its 13 classes. An image with
      nothing in GT or prediction scores ``empty_score``. With one class this is the Dice of
      that class.
    - ``per_class``: class name -> the mean over images of that class's Dice (an image where
      the class is absent from both scores ``empty_score``).

    nan entries (``empty_score=nan``) are left out of every mean.

    Args:
        inter (np.ndarray): ``|P & G|`` per image and class, shape (N, K), from
            :func:`dice_counts`.
        total (np.ndarray): ``|P| + |G|``, shape (N, K).
        class_names (Sequence[str]): the K class names.
        empty_score (float): the Dice where GT and prediction are both empty.

    Returns:
        dict: ``per_class`` (dict name -> mean Dice over images), ``per_image`` (np.ndarray
        (N,), the pooled Dice of each image) and ``mean`` (float).
    """
    inter, total = np.asarray(inter), np.asarray(total)
    if inter.ndim != 2 or inter.shape[1] != len(class_names) or total.shape != inter.shape:
        raise ValueError(f'inter and total must have shape (N, {len(class_names)}) for '
                         f'class_names {list(class_names)}; got {inter.shape} and '
                         f'{total.shape}')
    per_class = _nanmean(dice_from_counts(inter, total, empty_score), axis=0)
    per_image = dice_from_counts(inter.sum(axis=1), total.sum(axis=1), empty_score)
    return dict(per_class={name: float(v) for name, v in zip(class_names, per_class)},
                per_image=per_image, mean=float(_nanmean(per_image, axis=0)))
