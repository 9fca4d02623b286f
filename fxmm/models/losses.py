"""Losses of Foundation X's classification and segmentation paths.

- :class:`MaskedBCEWithLogitsLoss`: multi-label BCE over the *annotated* entries only (a
  dataset's labels may be missing (nan) or uncertain (-1) per class and image).
- :class:`MultiLabelDiceLoss`: mmseg's :class:`~mmseg.models.losses.DiceLoss` applied to
  each (image, class) mask separately, for multi-label sigmoid masks that may overlap;
  optionally only to the masks that are present (``ignore_empty``).
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.models.losses import DiceLoss
from torch import Tensor

from fxmm.registry import MODELS


@MODELS.register_module()
class MaskedBCEWithLogitsLoss(nn.Module):
    """Binary cross-entropy with logits that ignores unannotated targets.

    A target entry takes part in the loss when it is a number in ``[0, 1]`` (hard or soft
    label, e.g. the LSR value of an uncertain CheXpert label). Entries that are ``nan``
    (missing) or negative (``-1``: uncertain, left as such by the label policy) are ignored.
    The loss is the mean over the annotated entries::

        loss = loss_weight * sum(valid * bce(logits, target)) / max(sum(valid), 1)

    so a batch without any annotated entry gives 0 (still attached to the graph).

    Args:
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        loss_name (str): Key of the loss in the loss dict; must start with ``loss_`` for the
            loss to be back-propagated by mmengine. Defaults to ``'loss_bce'``.
    """

    def __init__(self, loss_weight: float = 1.0, loss_name: str = 'loss_bce'):
        super().__init__()
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        """str: Key of this loss in the loss dict."""
        return self._loss_name

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Compute the masked loss.

        Args:
            logits (Tensor): Raw scores, any shape, e.g. (B, C) or (B, K, H, W).
            target (Tensor): Targets of the same shape: values in [0, 1], or nan / -1 for
                entries to ignore.

        Returns:
            Tensor: The scalar loss.
        """
        if logits.shape != target.shape:
            raise ValueError(f'MaskedBCEWithLogitsLoss: logits of shape {tuple(logits.shape)} '
                             f'and target of shape {tuple(target.shape)} differ')
        target = target.to(logits.dtype)
        valid = ~torch.isnan(target) & (target >= 0)
        safe_target = torch.where(valid, target, torch.zeros_like(target))
        loss = F.binary_cross_entropy_with_logits(logits, safe_target, reduction='none')
        loss = (loss * valid).sum() / valid.sum().clamp(min=1)
        return self.loss_weight * loss


@MODELS.register_module()
class MultiLabelDiceLoss(DiceLoss):
    """Dice loss per image and per class for multi-label (sigmoid) masks.

    mmseg's :class:`~mmseg.models.losses.DiceLoss` computes one Dice per image over all
    classes flattened together, so a large organ (lungs) outweighs a small one (clavicles).
    This subclass reshapes ``(N, K, H, W)`` to ``(N*K, 1, H, W)`` so that every (image, class)
    mask is one Dice term, then averages the ``N*K`` terms (``reduction='mean'``).

    The defaults differ from mmseg's: the *naive* Dice (first-power denominator) with
    ``eps=1`` smoothing, per (image, class) with ``p = sigmoid(pred)``, ``g`` the target::

        loss = 1 - (2 * sum(p * g) + eps) / (sum(p) + sum(g) + eps)

    With this form an empty target mask (most SIIM-ACR images) still pushes ``p`` to 0,
    whereas the V-Net form (squared denominator, mmseg's default) gives an empty mask a
    constant loss and no gradient.

    That push is strong: on an empty mask ``d loss / d p_i = 1 / (sum(p) + eps)^2``, about 1
    per pixel while little is predicted, against about ``2 / (sum(p) + sum(g))`` per pixel on
    a present mask of ``sum(g)`` pixels. Where half the images have no mask (pneumothorax),
    the empty ones win and the head learns to predict nothing. ``ignore_empty=True`` leaves
    the (image, class) terms with an empty target out of the mean (they give 0 with
    ``reduction='none'``): the Dice then shapes the masks that exist, and a pixel-wise loss
    beside it (``MaskedBCEWithLogitsLoss``) teaches the empty ones.

    Args:
        use_sigmoid (bool): Apply a sigmoid to ``pred``. Defaults to True.
        activate (bool): Activate ``pred`` at all (False if it holds probabilities).
            Defaults to True.
        reduction (str): ``'mean'``, ``'sum'`` or ``'none'`` over the ``N*K`` terms.
            Defaults to ``'mean'``.
        naive_dice (bool): Naive (True) or V-Net (False) Dice. Defaults to True.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        eps (float): Smoothing term. Defaults to 1.0.
        loss_name (str): Key of the loss in the loss dict. Defaults to ``'loss_dice'``.
        ignore_empty (bool): leave out the terms whose target mask is empty; the mean is
            over the others (0 when there are none). Defaults to False.
    """

    def __init__(self,
                 use_sigmoid: bool = True,
                 activate: bool = True,
                 reduction: str = 'mean',
                 naive_dice: bool = True,
                 loss_weight: float = 1.0,
                 eps: float = 1.0,
                 loss_name: str = 'loss_dice',
                 ignore_empty: bool = False):
        super().__init__(use_sigmoid=use_sigmoid, activate=activate, reduction=reduction,
                         naive_dice=naive_dice, loss_weight=loss_weight, ignore_index=None,
                         eps=eps, loss_name=loss_name)
        self.ignore_empty = ignore_empty

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[int] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): Mask logits, shape (N, K, H, W).
            target (Tensor): Binary masks, shape (N, K, H, W).
            weight (Tensor, optional): Weight of each (image, class) term, shape (N*K,).
            avg_factor (int, optional): Divisor of the summed terms instead of ``N*K`` (or,
                with ``ignore_empty``, the number of present masks).
            reduction_override (str, optional): Overrides ``reduction``.

        Returns:
            Tensor: The scalar loss, or the (N*K,) terms if the reduction is ``'none'``.
        """
        if pred.shape != target.shape or pred.dim() != 4:
            raise ValueError('MultiLabelDiceLoss expects pred and target of the same shape '
                             f'(N, K, H, W), got {tuple(pred.shape)} and {tuple(target.shape)}')
        # (N, K, H, W) -> (N*K, 1, H, W): one Dice term per image and class
        pred, target = pred.flatten(0, 1).unsqueeze(1), target.flatten(0, 1).unsqueeze(1)
        if not self.ignore_empty:
            return super().forward(pred, target, weight=weight, avg_factor=avg_factor,
                                   reduction_override=reduction_override)
        present = target.flatten(1).any(dim=1).to(pred.dtype)  # (N*K, )
        terms = present * super().forward(pred, target, weight=weight,
                                          reduction_override='none')
        reduction = reduction_override or self.reduction
        if reduction == 'none':
            return terms
        if reduction == 'sum':
            return terms.sum()
        divisor = avg_factor if avg_factor is not None else present.sum().clamp(min=1)
        return terms.sum() / divisor
