"""Geometric transforms that move a chest X-ray's image, boxes and per-class masks together.

Every transform here reads and writes the results dict of ``docs/design.md``:

- ``img`` (np.ndarray): float32, shape (H, W) or (H, W, C); or stored integers (H, W) with a
  pending ``deferred_norm`` (``LoadCXRImage(defer_norm=True)``), which crops and flips keep
  and the resize applies to its output (:func:`resize_results`);
- ``gt_bboxes`` (np.ndarray, optional): float32, shape (N, 4), xyxy in pixels (edges: a box
  covering pixel columns ``a..b-1`` has ``x1 = a, x2 = b``);
- ``gt_bboxes_labels`` (np.ndarray, optional): int64, shape (N,), kept aligned with the boxes;
- ``gt_seg_masks`` (np.ndarray, optional): uint8, shape (K, H, W), one binary mask per seg class;

and updates ``img_shape`` (H, W) and ``scale_factor`` (w_scale, h_scale), composed with any
previous ``scale_factor``; ``ori_shape`` is left as it is. The horizontal flip, which must also
swap left/right classes, lives in :mod:`fxmm.datasets.transforms.flip`.

Random transforms draw from :attr:`LocalRandomTransform.rng`: in training, the generator of
the sample being loaded (:mod:`fxmm.datasets.sample_rng`, seeded from the sample's place in
training, so a resumed run draws the same augmentations); elsewhere a per-process
:class:`numpy.random.Generator` seeded from the global NumPy RNG on first use. Their random
draws sit in methods decorated with mmcv's :func:`~mmcv.transforms.utils.cache_randomness`, so
``cache_random_params`` works.
"""
import math
import os
from typing import Callable, Optional, Sequence, Tuple, Union

import cv2
import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmdet.structures.bbox import HorizontalBoxes

from fxmm.datasets.sample_rng import current_sample_rng
from fxmm.registry import TRANSFORMS
from .loading import apply_deferred_norm, decoded_scale


def check_results(results: dict, transform: str) -> Tuple[int, int]:
    """Check the shapes of the geometric fields of ``results`` and return the image size.

    Args:
        results (dict): the results dict (``img`` required; ``gt_bboxes``,
            ``gt_bboxes_labels``, ``gt_seg_masks`` optional).
        transform (str): the calling transform's name, for the error messages.

    Returns:
        tuple[int, int]: the image height and width.

    Raises:
        ValueError: naming the field whose type or shape is wrong.
    """
    img = results.get('img')
    if not isinstance(img, np.ndarray) or img.ndim not in (2, 3):
        got = f'shape {img.shape}' if isinstance(img, np.ndarray) else type(img).__name__
        raise ValueError(f"{transform}: results['img'] must be an array of shape (H, W) or "
                         f'(H, W, C), got {got}')
    h, w = img.shape[:2]
    boxes = results.get('gt_bboxes')
    if boxes is not None and (not isinstance(boxes, np.ndarray) or boxes.ndim != 2
                              or boxes.shape[1] != 4):
        raise ValueError(f"{transform}: results['gt_bboxes'] must be an array of shape (N, 4), "
                         f'got {getattr(boxes, "shape", type(boxes).__name__)}')
    labels = results.get('gt_bboxes_labels')
    if labels is not None and (boxes is None or len(labels) != len(boxes)):
        raise ValueError(f"{transform}: results['gt_bboxes_labels'] has {len(labels)} entries "
                         f"but results['gt_bboxes'] has "
                         f'{"none" if boxes is None else len(boxes)}')
    masks = results.get('gt_seg_masks')
    if masks is not None and (not isinstance(masks, np.ndarray) or masks.ndim != 3
                              or masks.shape[1:] != (h, w)):
        raise ValueError(f"{transform}: results['gt_seg_masks'] must be an array of shape "
                         f'(K, {h}, {w}) to match the image, got '
                         f'{getattr(masks, "shape", type(masks).__name__)}')
    return h, w


def map_channels(masks: np.ndarray, func: Callable[[np.ndarray], np.ndarray],
                 out_hw: Tuple[int, int]) -> np.ndarray:
    """Apply a 2-D warp to every mask channel.

    Args:
        masks (np.ndarray): uint8, shape (K, H, W); K may be 0.
        func (callable): maps one (H, W) mask to one (H', W') mask.
        out_hw (tuple[int, int]): (H', W'), the output size when K is 0.

    Returns:
        np.ndarray: uint8, shape (K, H', W').
    """
    if len(masks) == 0:
        return np.zeros((0, *out_hw), dtype=masks.dtype)
    return np.stack([func(np.ascontiguousarray(m)) for m in masks])


def keep_instances(results: dict, keep: np.ndarray) -> None:
    """Keep only the boxes selected by ``keep`` (bool, shape (N,)) and their labels."""
    results['gt_bboxes'] = results['gt_bboxes'][keep]
    if 'gt_bboxes_labels' in results:
        results['gt_bboxes_labels'] = results['gt_bboxes_labels'][keep]


def compose_scale_factor(results: dict, w_scale: float, h_scale: float) -> None:
    """Multiply ``results['scale_factor']`` (default (1, 1)) by (w_scale, h_scale)."""
    prev_w, prev_h = results.get('scale_factor', (1., 1.))
    results['scale_factor'] = (float(prev_w) * w_scale, float(prev_h) * h_scale)


def clip_boxes(boxes: np.ndarray, h: int, w: int) -> np.ndarray:
    """Clip xyxy boxes (N, 4) to an (h, w) image, as float32; a box wholly outside gets zero
    area."""
    limits = np.array([w, h, w, h], dtype=np.float32)
    return np.clip(boxes.astype(np.float32, copy=False), 0, limits)


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """Areas (N,) of xyxy boxes (N, 4)."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


#: interpolations whose output can leave the input range (negative kernel lobes)
OVERSHOOTING_INTERPOLATIONS = ('bicubic', 'lanczos')


def resize_results(results: dict, out_w: int, out_h: int, interpolation: str) -> None:
    """Resize ``img`` (``interpolation``), ``gt_seg_masks`` and ``gt_bboxes`` to (out_w, out_h).

    Masks use pixel-centre aligned nearest neighbour (``cv2.INTER_NEAREST_EXACT``), which keeps
    them on the same grid as the image and the scaled boxes. Updates ``img_shape`` and composes
    ``scale_factor``. Stored integers with a pending ``deferred_norm`` are resized as they
    are and only the result is normalised, unless the interpolation can overshoot the input
    range ('bicubic', 'lanczos'), which the stored type would clip: then it is normalised
    first.
    """
    if interpolation in OVERSHOOTING_INTERPOLATIONS:
        apply_deferred_norm(results)
    img = results['img']
    h, w = img.shape[:2]
    # cv2 reads a crop view with its row stride: no copy of the (larger) input
    resized = mmcv.imresize(img, (out_w, out_h), interpolation=interpolation)
    results['img'] = resized.reshape(out_h, out_w, *img.shape[2:])
    apply_deferred_norm(results)
    w_scale, h_scale = out_w / w, out_h / h
    if results.get('gt_seg_masks') is not None:
        results['gt_seg_masks'] = map_channels(
            results['gt_seg_masks'],
            lambda m: cv2.resize(m, (out_w, out_h), interpolation=cv2.INTER_NEAREST_EXACT),
            (out_h, out_w))
    if results.get('gt_bboxes') is not None:
        scale = np.array([w_scale, h_scale, w_scale, h_scale], dtype=np.float32)
        results['gt_bboxes'] = clip_boxes(results['gt_bboxes'] * scale, out_h, out_w)
    results['img_shape'] = (out_h, out_w)
    compose_scale_factor(results, w_scale, h_scale)


def _to_size(scale: Union[int, Sequence[int]], name: str) -> Tuple[int, int]:
    """Turn an ``int`` or ``(W, H)`` argument into a (W, H) tuple of positive ints."""
    size = (scale, scale) if isinstance(scale, int) else tuple(scale)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f'{name}: scale must be a positive int or (W, H) of positive ints, '
                         f'got {scale!r}')
    return size


def _check_interpolation(interpolation: str, name: str) -> str:
    if interpolation not in mmcv.image.geometric.cv2_interp_codes:
        raise ValueError(f'{name}: interpolation must be one of '
                         f'{sorted(mmcv.image.geometric.cv2_interp_codes)}, '
                         f'got {interpolation!r}')
    return interpolation


class LocalRandomTransform(BaseTransform):
    """Base of fxmm's random transforms: draws from the sample's generator, else from a
    per-process NumPy generator.

    - Inside :func:`~fxmm.datasets.sample_rng.sample_rng` (``MultiTaskDataset`` loading an
      index of ``MultiTaskSampler``): the sample's generator, shared by the transforms of
      its pipeline in pipeline order. The draws are a function of the sample's seed only.
    - Elsewhere (a pipeline called directly, another sampler): the transform's own generator,
      created on first use, and again after a fork (a dataloader worker), from a seed drawn
      from the global NumPy RNG, which mmengine seeds (``randomness=dict(seed=...)`` and, per
      worker, its ``worker_init_fn``). Seeding ``np.random`` before building and using a
      transform therefore reproduces its draws.
    """

    @property
    def rng(self) -> np.random.Generator:
        """np.random.Generator: the current sample's generator, else this process's generator
        of the transform."""
        sample = current_sample_rng()
        if sample is not None:
            return sample
        if getattr(self, '_rng_pid', None) != os.getpid():
            self._rng = np.random.default_rng(np.random.randint(np.iinfo(np.int64).max))
            self._rng_pid = os.getpid()
        return self._rng


@TRANSFORMS.register_module()
class CXRResize(BaseTransform):
    """Resize the image, masks and boxes to a fixed size.

    Required keys: ``img``. Modified keys: ``img``, ``gt_bboxes``, ``gt_seg_masks`` (each if
    present). Added keys: ``img_shape``, ``scale_factor`` (composed with a previous one).

    Args:
        scale (int | tuple[int, int]): output size (W, H); an int means (s, s).
        keep_ratio (bool): keep the aspect ratio, making the image as large as possible with
            its long edge <= max(scale) and its short edge <= min(scale) (mmcv's
            ``rescale_size``). Defaults to False.
        interpolation (str): image interpolation, one of mmcv's cv2 names ('nearest',
            'bilinear', 'bicubic', 'area', 'lanczos'); masks always use nearest.
            Defaults to 'bilinear'.
    """

    def __init__(self, scale: Union[int, Tuple[int, int]], keep_ratio: bool = False,
                 interpolation: str = 'bilinear'):
        self.scale = _to_size(scale, type(self).__name__)
        self.keep_ratio = keep_ratio
        self.interpolation = _check_interpolation(interpolation, type(self).__name__)

    def transform(self, results: dict) -> dict:
        h, w = check_results(results, type(self).__name__)
        if self.keep_ratio:
            out_w, out_h = mmcv.rescale_size((w, h), self.scale)
        else:
            out_w, out_h = self.scale
        resize_results(results, out_w, out_h, self.interpolation)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scale={self.scale}, keep_ratio={self.keep_ratio}, '
                f'interpolation={self.interpolation!r})')


@TRANSFORMS.register_module()
class CXRRandomResizedCrop(LocalRandomTransform):
    """Crop a random area and aspect ratio, then resize it to a fixed size (torchvision style).

    The crop covers ``area_range`` of the image area with width/height ratio in
    ``ratio_range`` (log-uniform); after 10 failed draws it falls back to the largest central
    crop within ``ratio_range``. On an image decoded smaller than its original (a store
    image, a reduced decoding: :func:`~fxmm.datasets.transforms.loading.decoded_scale`) the
    crop is drawn in the original's pixels and rounded onto the decoded ones, so the same
    draws crop the same part of the image from the store as from the original file. Boxes
    are shifted and clipped to the crop; a box keeping less than ``min_box_visibility`` of
    its area is dropped with its label (boxes left with no area, and boxes of zero area, are
    always dropped). Masks are cropped and resized with nearest neighbour.

    Required keys: ``img``. Modified keys: ``img``, ``gt_bboxes``, ``gt_bboxes_labels``,
    ``gt_seg_masks`` (each if present). Added keys: ``img_shape``, ``scale_factor`` (composed
    with the crop's resize, output pixels per input pixel).

    Args:
        scale (int | tuple[int, int]): output size (W, H); an int means (s, s).
        area_range (tuple[float, float]): fraction of the image area the crop covers.
            Defaults to (0.8, 1.0), the paper's setting.
        ratio_range (tuple[float, float]): crop width/height range. Defaults to (3/4, 4/3).
        min_box_visibility (float): fraction of a box's area that must stay inside the crop
            for the box to be kept. Defaults to 0.5.
        interpolation (str): image interpolation (see :class:`CXRResize`).
            Defaults to 'bilinear'.
    """

    max_attempts = 10

    def __init__(self, scale: Union[int, Tuple[int, int]],
                 area_range: Tuple[float, float] = (0.8, 1.0),
                 ratio_range: Tuple[float, float] = (3 / 4, 4 / 3),
                 min_box_visibility: float = 0.5, interpolation: str = 'bilinear'):
        name = type(self).__name__
        self.scale = _to_size(scale, name)
        if not 0 < area_range[0] <= area_range[1] <= 1:
            raise ValueError(f'{name}: area_range must satisfy 0 < low <= high <= 1, '
                             f'got {area_range!r}')
        if not 0 < ratio_range[0] <= ratio_range[1]:
            raise ValueError(f'{name}: ratio_range must satisfy 0 < low <= high, '
                             f'got {ratio_range!r}')
        if not 0 <= min_box_visibility <= 1:
            raise ValueError(f'{name}: min_box_visibility must be in [0, 1], '
                             f'got {min_box_visibility!r}')
        self.area_range = tuple(area_range)
        self.ratio_range = tuple(ratio_range)
        self.min_box_visibility = min_box_visibility
        self.interpolation = _check_interpolation(interpolation, name)

    @cache_randomness
    def sample_crop(self, h: int, w: int) -> Tuple[int, int, int, int]:
        """Draw a crop (x0, y0, crop_w, crop_h) inside an (h, w) image."""
        rng = self.rng
        log_ratio = (math.log(self.ratio_range[0]), math.log(self.ratio_range[1]))
        for _ in range(self.max_attempts):
            target_area = h * w * rng.uniform(*self.area_range)
            ratio = math.exp(rng.uniform(*log_ratio))
            crop_w = int(round(math.sqrt(target_area * ratio)))
            crop_h = int(round(math.sqrt(target_area / ratio)))
            if 0 < crop_w <= w and 0 < crop_h <= h:
                x0 = int(rng.integers(0, w - crop_w + 1))
                y0 = int(rng.integers(0, h - crop_h + 1))
                return x0, y0, crop_w, crop_h
        crop_w, crop_h = w, h
        if w / h < self.ratio_range[0]:
            crop_h = int(round(w / self.ratio_range[0]))
        elif w / h > self.ratio_range[1]:
            crop_w = int(round(h * self.ratio_range[1]))
        return (w - crop_w) // 2, (h - crop_h) // 2, crop_w, crop_h

    def transform(self, results: dict) -> dict:
        h, w = check_results(results, type(self).__name__)
        scale = decoded_scale(results)
        if scale is None:
            x0, y0, crop_w, crop_h = self.sample_crop(h, w)
        else:
            x0, y0, crop_w, crop_h = _onto_grid(
                self.sample_crop(*results['ori_shape'][:2]), scale, h, w)
        results['img'] = results['img'][y0:y0 + crop_h, x0:x0 + crop_w]
        if results.get('gt_seg_masks') is not None:
            results['gt_seg_masks'] = results['gt_seg_masks'][:, y0:y0 + crop_h,
                                                              x0:x0 + crop_w]
        if results.get('gt_bboxes') is not None:
            boxes = results['gt_bboxes'] - np.array([x0, y0, x0, y0], dtype=np.float32)
            clipped = clip_boxes(boxes, crop_h, crop_w)
            visible = box_areas(clipped) / np.maximum(box_areas(boxes), 1e-6)
            results['gt_bboxes'] = clipped
            keep_instances(results, visible >= max(self.min_box_visibility, 1e-6))
        resize_results(results, *self.scale, self.interpolation)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scale={self.scale}, area_range={self.area_range}, '
                f'ratio_range={self.ratio_range}, '
                f'min_box_visibility={self.min_box_visibility}, '
                f'interpolation={self.interpolation!r})')


def _onto_grid(crop: Tuple[int, int, int, int], scale: Tuple[float, float], h: int,
               w: int) -> Tuple[int, int, int, int]:
    """A crop (x0, y0, crop_w, crop_h) in original pixels, its edges rounded onto an (h, w)
    image of ``scale`` (w, h) pixels per original pixel; at least one pixel wide and high."""
    x0, y0, crop_w, crop_h = crop
    x1, y1 = (min(max(round(v * s), 1), n) for v, s, n in ((x0 + crop_w, scale[0], w),
                                                           (y0 + crop_h, scale[1], h)))
    x0, y0 = (min(round(v * s), n - 1) for v, s, n in ((x0, scale[0], x1), (y0, scale[1], y1)))
    return x0, y0, x1 - x0, y1 - y0


@TRANSFORMS.register_module()
class CXRRandomRotate(LocalRandomTransform):
    """Rotate by a small random angle about the image centre, keeping the image size.

    The angle is uniform in [-max_angle, max_angle] degrees (positive = clockwise on screen).
    Masks are rotated with nearest neighbour and a 0 border. Each box becomes the box
    enclosing its 4 rotated corners, clipped to the image. This slightly *enlarges* boxes: a
    w x h box becomes (w|cos a| + h|sin a|) x (w|sin a| + h|cos a|), e.g. about 11% wider and
    taller for a square at 7 degrees, because the object inside need not reach the rotated
    box's corners. Boxes rotated completely out of the image are dropped with their labels.

    Required keys: ``img``. Modified keys: ``img``, ``gt_bboxes``, ``gt_bboxes_labels``,
    ``gt_seg_masks`` (each if present). ``img_shape`` and ``scale_factor`` are unchanged.

    Args:
        max_angle (float): largest absolute angle in degrees. Defaults to 7, the paper's.
        prob (float): probability of rotating. Defaults to 1.
        border_value (float): image value outside the rotated image, in every channel (cv2
            fills at most 4 channels). Defaults to 0.
        interpolation (str): image interpolation (see :class:`CXRResize`).
            Defaults to 'bilinear'.
    """

    def __init__(self, max_angle: float = 7., prob: float = 1.0, border_value: float = 0.,
                 interpolation: str = 'bilinear'):
        name = type(self).__name__
        if max_angle < 0:
            raise ValueError(f'{name}: max_angle must be >= 0, got {max_angle!r}')
        if not 0 <= prob <= 1:
            raise ValueError(f'{name}: prob must be in [0, 1], got {prob!r}')
        self.max_angle = float(max_angle)
        self.prob = prob
        self.border_value = float(border_value)
        self.interpolation = _check_interpolation(interpolation, name)

    @cache_randomness
    def sample_angle(self) -> Optional[float]:
        """Draw the angle in degrees, or None when this call does not rotate."""
        if self.rng.random() >= self.prob:
            return None
        return float(self.rng.uniform(-self.max_angle, self.max_angle))

    def transform(self, results: dict) -> dict:
        h, w = check_results(results, type(self).__name__)
        angle = self.sample_angle()
        if angle is None:
            return results
        apply_deferred_norm(results)  # the border value is a normalised intensity
        img = results['img']
        # a cv2 scalar per channel: a bare float would fill only the first channel
        rotated = mmcv.imrotate(img, angle, border_value=(self.border_value, ) * 4,
                                interpolation=self.interpolation)
        results['img'] = rotated.reshape(img.shape)
        if results.get('gt_seg_masks') is not None:
            results['gt_seg_masks'] = map_channels(
                results['gt_seg_masks'],
                lambda m: mmcv.imrotate(m, angle, border_value=0, interpolation='nearest'),
                (h, w))
        if results.get('gt_bboxes') is not None:
            # mmcv rotates pixel centres about ((w-1)/2, (h-1)/2); in the boxes' edge
            # coordinates (pixel centre + 0.5) the same rotation is about (w/2, h/2).
            # mmdet's rotate_ takes the box enclosing the 4 rotated corners.
            boxes = HorizontalBoxes(results['gt_bboxes'])
            boxes.rotate_((w / 2, h / 2), angle)
            boxes.clip_((h, w))
            results['gt_bboxes'] = boxes.numpy()
            keep_instances(results, boxes.areas.numpy() > 0)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(max_angle={self.max_angle}, prob={self.prob}, '
                f'border_value={self.border_value}, interpolation={self.interpolation!r})')
