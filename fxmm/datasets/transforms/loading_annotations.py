"""``LoadCXRAnnotations``: turn a ``CXRDataset`` entry's labels into arrays."""
from typing import Union

import numpy as np
from mmcv.transforms import BaseTransform

from fxmm.registry import TRANSFORMS
from fxmm.structures.mask_rle import decode_mask, decode_mask_sampled
from ..label_policies import apply_label_policy, check_label_policy
from .loading import decoded_scale


def nearest_pixels(size: int, scale: float, full_size: int) -> np.ndarray:
    """The original pixel each of ``size`` pixels of a grid of ``scale`` pixels per original
    pixel samples: the one its centre falls in, ``floor((i + 0.5) / scale)`` (as
    ``cv2.INTER_NEAREST_EXACT``; an explicit scale also fits a reduced decoding, whose size
    rounds up), clipped to ``full_size - 1``.

    Returns:
        np.ndarray: int64, shape (size,), non-decreasing.
    """
    return np.minimum(((np.arange(size) + 0.5) / scale).astype(np.int64), full_size - 1)


@TRANSFORMS.register_module()
class LoadCXRAnnotations(BaseTransform):
    """Load image labels, boxes and per-class masks of a :class:`CXRDataset` sample.

    Required keys: ``height``, ``width``; ``cls_label`` (list or array over ``cls_classes``
    of 1 / 0 / -1 / None-or-nan), ``instances`` (``bbox``, ``bbox_label``), ``seg`` (class
    name -> COCO RLE), ``seg_classes``, each when its kind is loaded; ``sample_idx`` for
    random label policies. Absent ``cls_label`` / ``instances`` / ``seg`` mean no labels.

    Added keys:

    - ``gt_cls_label`` (np.ndarray): float32, shape (C,); 1 / 0 / -1 uncertain / nan missing,
      after ``label_policy``.
    - ``gt_bboxes`` (np.ndarray): float32 ``[x1, y1, x2, y2]`` in pixels, shape (N, 4); on
      an image decoded smaller than the original (a store image, a reduced decoding, see
      :func:`~fxmm.datasets.transforms.loading.decoded_scale`) scaled onto it.
    - ``gt_bboxes_labels`` (np.ndarray): int64 indices into ``det_classes``, shape (N,).
    - ``gt_seg_masks`` (np.ndarray): uint8 0/1, shape (K, H, W) with K = len(seg_classes),
      at the annotation's (``height``, ``width``), the original image size; a class without
      an RLE in ``seg`` gets an all-zero mask. Loaded before a resize, the masks follow it
      (training); loaded after it (``with_seg`` in a second ``LoadCXRAnnotations`` after
      ``CXRResize``, as the configs' test pipelines do) they stay at the original size, so
      that the Dice is computed at the original resolution, as mmseg's test pipelines do.
      On an image still as decoded smaller than the original, they are sampled onto it
      (:func:`nearest_pixels`) straight from the RLE (``decode_mask_sampled``).

    Args:
        with_cls (bool): load ``gt_cls_label``. Defaults to True.
        with_bbox (bool): load ``gt_bboxes`` and ``gt_bboxes_labels``. Defaults to True.
        with_seg (bool): load ``gt_seg_masks``. Defaults to True.
        label_policy (str | dict): what uncertain / missing labels become (see
            :mod:`fxmm.datasets.label_policies`). Apply a policy either here or in
            ``CXRDataset``, not both. Defaults to 'ignore'.
        seed (int): with ``sample_idx``, seeds the RNG of random policies, so a sample always
            gets the same values, in every worker. Defaults to 0.
    """

    def __init__(self,
                 with_cls: bool = True,
                 with_bbox: bool = True,
                 with_seg: bool = True,
                 label_policy: Union[str, dict] = 'ignore',
                 seed: int = 0):
        self.with_cls = with_cls
        self.with_bbox = with_bbox
        self.with_seg = with_seg
        self.label_policy = check_label_policy(label_policy)
        self.seed = seed

    def _load_cls(self, results: dict) -> None:
        label = np.array(results.get('cls_label', []), dtype=np.float32)
        if self.label_policy['type'] != 'ignore' or self.label_policy['missing_as_zero']:
            if 'sample_idx' not in results:
                raise ValueError(f'{type(self).__name__}: label policy {self.label_policy} '
                                 f"needs results['sample_idx'] (set by CXRDataset)")
            rng = np.random.default_rng([self.seed, results['sample_idx']])
            label = apply_label_policy(label, self.label_policy, rng)
        results['gt_cls_label'] = label

    @staticmethod
    def _load_bboxes(results: dict) -> None:
        instances = results.get('instances', [])
        boxes = np.array([inst['bbox'] for inst in instances], dtype=np.float32).reshape(-1, 4)
        scale = decoded_scale(results)
        if scale is not None:
            boxes *= np.array([*scale, *scale], dtype=np.float32)
        results['gt_bboxes'] = boxes
        results['gt_bboxes_labels'] = np.array([inst['bbox_label'] for inst in instances],
                                               dtype=np.int64)

    @staticmethod
    def _load_seg(results: dict) -> None:
        height, width = results['height'], results['width']
        # the decoded size (ori_shape), which a resize before this transform leaves alone
        decoded = results.get('ori_shape', results.get('img_shape'))
        if decoded is not None and tuple(decoded[:2]) != (height, width):
            raise ValueError(f"{results.get('img_path')}: the image is "
                             f"{tuple(decoded[:2])} but its annotation says "
                             f'(height, width) = ({height}, {width}); masks would not align')
        seg = results.get('seg', {})
        classes = results.get('seg_classes', [])
        unknown = set(seg) - set(classes)
        if unknown:
            raise ValueError(f"{results.get('img_path')}: seg has classes {sorted(unknown)} "
                             f'that are not in seg_classes {classes}')
        scale = decoded_scale(results)
        if scale is None:
            masks = np.zeros((len(classes), height, width), dtype=np.uint8)
            for k, name in enumerate(classes):
                if name in seg:
                    masks[k] = decode_mask(seg[name], height, width)
        else:  # only the pixels the decoded grid samples: never the whole original mask
            out_h, out_w = results['img_shape'][:2]
            rows = nearest_pixels(out_h, scale[1], height)
            cols = nearest_pixels(out_w, scale[0], width)
            masks = np.zeros((len(classes), out_h, out_w), dtype=np.uint8)
            for k, name in enumerate(classes):
                if name in seg:
                    masks[k] = decode_mask_sampled(seg[name], rows, cols, height, width)
        results['gt_seg_masks'] = masks

    def transform(self, results: dict) -> dict:
        """Add ``gt_cls_label``, ``gt_bboxes``/``gt_bboxes_labels``, ``gt_seg_masks``.

        Args:
            results (dict): a sample from :class:`CXRDataset` (after image loading or not).

        Returns:
            dict: ``results`` with the loaded keys added.
        """
        if self.with_cls:
            self._load_cls(results)
        if self.with_bbox:
            self._load_bboxes(results)
        if self.with_seg:
            self._load_seg(results)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(with_cls={self.with_cls}, with_bbox={self.with_bbox}, '
                f'with_seg={self.with_seg}, label_policy={self.label_policy}, '
                f'seed={self.seed})')
