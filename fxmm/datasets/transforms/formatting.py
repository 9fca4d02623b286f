"""``PackCXRInputs``: the last transform, turning a results dict into model inputs."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import InstanceData, LabelData, PixelData

from fxmm.registry import TRANSFORMS
from fxmm.structures import CXRDataSample
from .loading import apply_deferred_norm

# metainfo a packed sample carries by default (docs/design.md)
DEFAULT_META_KEYS = ('dataset', 'task', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                     'flip', 'sample_idx')
# values of metainfo keys whose transform did not run: no flip, no resize
_META_DEFAULTS = {'flip': False, 'scale_factor': (1.0, 1.0)}


def _tensor(array: np.ndarray, dtype: np.dtype) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=dtype))


@TRANSFORMS.register_module()
class PackCXRInputs(BaseTransform):
    """Pack an image and its labels into ``inputs`` and a :class:`CXRDataSample`.

    Only what the results hold is packed:

    - ``img`` (H, W) or (H, W, C) -> ``inputs``: float32 tensor, shape (1, H, W) or (C, H, W);
      normalised first if a ``deferred_norm`` of ``LoadCXRImage`` is still pending.
    - ``gt_cls_label`` (C,) -> ``gt_cls.label``: float32 tensor (C,).
    - ``gt_bboxes`` (N, 4) and ``gt_bboxes_labels`` (N,) -> ``gt_instances.bboxes``: float32
      tensor (N, 4) and ``gt_instances.labels``: int64 tensor (N,).
    - ``gt_seg_masks`` (K, H, W) -> ``gt_seg_masks.data``: uint8 tensor (K, H, W), also
      when K = 0.
    - the ``meta_keys`` present -> metainfo; ``flip`` defaults to False and ``scale_factor``
      to (1.0, 1.0) when no transform set them.

    Args:
        meta_keys (Sequence[str]): results keys copied to the metainfo. Defaults to
            :data:`DEFAULT_META_KEYS`.
    """

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS):
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        """Pack ``results``.

        Args:
            results (dict): the output of the pipeline so far.

        Returns:
            dict: ``'inputs'`` (Tensor, when ``img`` is present) and ``'data_samples'``
            (:class:`CXRDataSample`).
        """
        packed = {}
        apply_deferred_norm(results)
        if 'img' in results:
            img = np.asarray(results['img'])
            if img.ndim not in (2, 3):
                raise ValueError(f"{type(self).__name__}: results['img'] must have shape "
                                 f'(H, W) or (H, W, C), got {img.shape}')
            # (H, W) -> (1, H, W); (H, W, C) -> (C, H, W)
            img = img[None] if img.ndim == 2 else img.transpose(2, 0, 1)
            packed['inputs'] = _tensor(img, np.float32)

        sample = CXRDataSample()
        if 'gt_cls_label' in results:
            sample.gt_cls = LabelData(label=_tensor(results['gt_cls_label'], np.float32))
        if 'gt_bboxes' in results:
            if 'gt_bboxes_labels' not in results:
                raise KeyError(f"{type(self).__name__}: results has 'gt_bboxes' but no "
                               "'gt_bboxes_labels'")
            sample.gt_instances = InstanceData(
                bboxes=_tensor(results['gt_bboxes'], np.float32).reshape(-1, 4),
                labels=_tensor(results['gt_bboxes_labels'], np.int64))
        if 'gt_seg_masks' in results:
            sample.gt_seg_masks = PixelData(data=_tensor(results['gt_seg_masks'], np.uint8))

        meta = {key: results[key] for key in self.meta_keys if key in results}
        for key, default in _META_DEFAULTS.items():
            if key in self.meta_keys:
                meta.setdefault(key, default)
        sample.set_metainfo(meta)
        packed['data_samples'] = sample
        return packed

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'
