"""A random flip for chest X-rays that keeps left/right labels true to the anatomy.

On a frontal chest X-ray the patient's right side appears on the image's left. Mirroring the
image horizontally moves the region labelled "right lung" to the image's right, where a
(mirrored) patient's *left* lung belongs, so every label that names a side must be swapped
with its partner: mask channels, box labels and image-level class entries alike. The pairs
come from the dataset's ``lr_pairs`` metainfo (``docs/design.md``) or the transform's own
``lr_pairs`` argument; a class list with lateral names that no pair covers is refused, since
flipping it would silently teach the model the wrong side.
"""
from typing import Dict, Optional, Sequence, Union

import mmcv
import numpy as np
from mmcv.transforms.utils import cache_randomness
from mmdet.structures.bbox import HorizontalBoxes

from fxmm.registry import TRANSFORMS
from fxmm.structures import CLASS_KEYS
from fxmm.structures.laterality import lr_permutation, normalise_lr_pairs
from .geometric import LocalRandomTransform, check_results

# (class list key, label key) of every label kind a horizontal flip relabels.
LABEL_KINDS = ((CLASS_KEYS['cls'], 'gt_cls_label'), (CLASS_KEYS['loc'], 'gt_bboxes_labels'),
               (CLASS_KEYS['seg'], 'gt_seg_masks'))
_CLASSES_OF = {label_key: classes_key for classes_key, label_key in LABEL_KINDS}
FLIP_DIRECTIONS = ('horizontal', 'vertical', 'diagonal')


@TRANSFORMS.register_module()
class CXRRandomFlip(LocalRandomTransform):
    """Randomly flip the image, boxes and masks, swapping left/right classes on a mirror.

    A horizontal (or diagonal) flip mirrors ``img``, ``gt_bboxes`` and ``gt_seg_masks`` and
    relabels with the left/right pairs: mask channels (``seg_classes``), box labels
    (``det_classes``) and ``gt_cls_label`` entries (``cls_classes``) of a pair swap places.
    Before every call - flipped or not, so a bad config fails at once - the class lists in
    ``results`` are checked: a lateral class name (see
    :func:`~fxmm.structures.laterality.is_lateral`) or a paired name whose partner is missing
    from the same list raises a ValueError listing them, unless
    ``allow_laterality_without_pairs``. A vertical flip swaps no classes and is used only when
    asked for in ``direction``.

    Required keys: ``img``; the class list of each label kind present (``cls_classes``,
    ``det_classes``, ``seg_classes``) for horizontal flips. Modified keys: ``img``,
    ``gt_bboxes``, ``gt_bboxes_labels``, ``gt_seg_masks``, ``gt_cls_label`` (each if present).
    Added keys: ``flip`` (bool), ``flip_direction`` (str or None).

    Args:
        prob (float): probability of flipping. Defaults to 0.5.
        direction (str | Sequence[str]): 'horizontal', 'vertical' or 'diagonal', or a list of
            them of which one is drawn uniformly for each flip. Defaults to 'horizontal'.
        lr_pairs (Sequence[Sequence[str]], optional): ``[[left_name, right_name], ...]`` by
            class name; overrides ``results['lr_pairs']`` (the dataset's metainfo), which is
            used when this is None. Defaults to None.
        allow_laterality_without_pairs (bool): flip lateral classes that no pair covers
            without relabelling them (and class lists missing from ``results``). Defaults to
            False.
    """

    def __init__(self, prob: float = 0.5, direction: Union[str, Sequence[str]] = 'horizontal',
                 lr_pairs: Optional[Sequence[Sequence[str]]] = None,
                 allow_laterality_without_pairs: bool = False):
        name = type(self).__name__
        if not 0 <= prob <= 1:
            raise ValueError(f'{name}: prob must be in [0, 1], got {prob!r}')
        directions = (direction, ) if isinstance(direction, str) else tuple(direction)
        if not directions or any(d not in FLIP_DIRECTIONS for d in directions):
            raise ValueError(f'{name}: direction must be one or a list of {FLIP_DIRECTIONS}, '
                             f'got {direction!r}')
        self.prob = prob
        self.directions = directions
        self.lr_pairs = None if lr_pairs is None else normalise_lr_pairs(
            lr_pairs, f'{name}(lr_pairs=...)')
        self.allow_laterality_without_pairs = allow_laterality_without_pairs

    @cache_randomness
    def sample_direction(self) -> Optional[str]:
        """Draw the flip direction, or None when this call does not flip."""
        if self.rng.random() >= self.prob:
            return None
        return self.directions[int(self.rng.integers(len(self.directions)))]

    def lr_permutations(self, results: dict) -> Dict[str, np.ndarray]:
        """The label permutation of each label kind in ``results`` under a horizontal flip.

        Returns:
            dict[str, np.ndarray]: label key (e.g. 'gt_seg_masks') -> int64 permutation
            (see :func:`~fxmm.structures.laterality.lr_permutation`), for each class list
            present in ``results``.

        Raises:
            ValueError: when a class list has unpaired lateral classes, or a label kind is
                present without its class list (unless ``allow_laterality_without_pairs``).
        """
        name = type(self).__name__
        pairs = self.lr_pairs
        if pairs is None:
            pairs = normalise_lr_pairs(results.get('lr_pairs') or (),
                                       f"{name}: results['lr_pairs']")
        perms, unpaired = {}, []
        for classes_key, label_key in LABEL_KINDS:
            classes = results.get(classes_key)
            if classes is None:
                labels = results.get(label_key)
                if (labels is not None and len(labels)
                        and not self.allow_laterality_without_pairs):
                    raise ValueError(
                        f"{name}: results has '{label_key}' but no '{classes_key}', so a "
                        f'horizontal flip cannot tell which labels to swap left/right; give '
                        f'the class list or set allow_laterality_without_pairs=True')
                continue
            perm, missing = lr_permutation(tuple(classes), pairs)
            if missing:
                unpaired.append(f'{classes_key}: {list(missing)}')
            perms[label_key] = np.asarray(perm, dtype=np.int64)
        if unpaired and not self.allow_laterality_without_pairs:
            raise ValueError(
                f'{name}: a horizontal flip would mislabel the sides of lateral classes that '
                f"no left/right pair covers ({'; '.join(unpaired)}; pairs: {list(pairs)}). Add "
                f"them to the dataset's lr_pairs metainfo or to lr_pairs=[[left, right], ...], "
                f'or set allow_laterality_without_pairs=True to flip without relabelling')
        return perms

    def transform(self, results: dict) -> dict:
        h, w = check_results(results, type(self).__name__)
        mirrors = any(d != 'vertical' for d in self.directions)
        perms = self.lr_permutations(results) if mirrors else {}
        direction = self.sample_direction()
        results['flip'] = direction is not None
        results['flip_direction'] = direction
        if direction is None:
            return results
        results['img'] = np.ascontiguousarray(mmcv.imflip(results['img'], direction))
        if results.get('gt_seg_masks') is not None:
            axes = {'horizontal': (2, ), 'vertical': (1, ), 'diagonal': (1, 2)}[direction]
            results['gt_seg_masks'] = np.ascontiguousarray(
                np.flip(results['gt_seg_masks'], axis=axes))
        if results.get('gt_bboxes') is not None:
            boxes = HorizontalBoxes(results['gt_bboxes'])
            boxes.flip_((h, w), direction)
            results['gt_bboxes'] = boxes.numpy()
        if direction != 'vertical':
            self._swap_sides(results, perms)
        return results

    def _swap_sides(self, results: dict, perms: Dict[str, np.ndarray]) -> None:
        """Relabel the label kinds of ``results`` with their left/right permutations."""
        name = type(self).__name__
        for key, perm in perms.items():
            labels = results.get(key)
            if labels is None:
                continue
            if key == 'gt_bboxes_labels':
                if len(labels) and not 0 <= labels.min() <= labels.max() < len(perm):
                    raise ValueError(f"{name}: results['gt_bboxes_labels'] must index "
                                     f'det_classes (0..{len(perm) - 1}), got {labels.tolist()}')
                results[key] = perm[labels].astype(labels.dtype, copy=False)
            else:
                if len(labels) != len(perm):
                    raise ValueError(f"{name}: results['{key}'] has {len(labels)} entries but "
                                     f'{_CLASSES_OF[key]} has {len(perm)} classes')
                results[key] = labels[perm]

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(prob={self.prob}, direction={self.directions}, '
                f'lr_pairs={self.lr_pairs}, '
                f'allow_laterality_without_pairs={self.allow_laterality_without_pairs})')
