"""Loading transform: a chest X-ray file of any format -> a normalised float image, or its
stored integers with the normalisation deferred to the first resize; from a prepared image
store or a reduced decoding, at a smaller size than the original's, whose scale the
results carry (``decoded_shape``, ``scale_factor``)."""
import logging
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.fileio import get_local_path
from mmengine.logging import print_log

from fxmm.registry import TRANSFORMS
from ..image_io import CXRImageError, apply_linear, mapped_range, read_cxr_image


#: results key of a pending :class:`DeferredNorm`
DEFERRED_NORM_KEY = 'deferred_norm'
#: results key of the (h, w) of an image decoded smaller than its original (``ori_shape``)
DECODED_SHAPE_KEY = 'decoded_shape'


def decoded_scale(results: dict) -> Optional[Tuple[float, float]]:
    """The (w, h) scale of an image that is still as :class:`LoadCXRImage` decoded it, at a
    reduced size (a store image, a reduced decoding): ``scale_factor``, image pixels per
    original pixel. None for an image decoded whole, or once a transform resized or cropped
    it. Annotations loaded then (boxes, masks) and random crops drawn then are mapped from
    the original pixels onto the decoded image with it.
    """
    shape = results.get(DECODED_SHAPE_KEY)
    if shape is None or tuple(results['img_shape'][:2]) != tuple(shape):
        return None
    return results['scale_factor']


def rescale_onto(img: np.ndarray, low: float, high: float,
                 out_range: Tuple[float, float]) -> np.ndarray:
    """Map ``low`` -> ``out_range[0]`` and ``high`` -> ``out_range[1]`` linearly, in place.

    Onto (0, 1) it is one correctly rounded division, exactly 1 at ``high``; onto another
    range the ends are clipped against float rounding. ``high <= low`` (no contrast) fills
    ``out_range[0]``.

    Args:
        img (np.ndarray): float image, any shape; overwritten.
        low (float): the value mapped onto ``out_range[0]``.
        high (float): the value mapped onto ``out_range[1]``.
        out_range (tuple[float, float]): (low, high) of the output.

    Returns:
        np.ndarray: ``img``.
    """
    out_low, out_high = out_range
    if not high > low:
        img.fill(out_low)
        return img
    img -= low
    if (out_low, out_high) == (0., 1.):
        img /= high - low
        return img
    img *= (out_high - out_low) / (high - low)
    img += out_low
    np.clip(img, out_low, out_high, out=img)
    return img


def to_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """A grey image (H, W) as is for ``channels=1``, as (H, W, 3) for ``channels=3``."""
    return np.repeat(img[..., None], 3, axis=2) if channels == 3 else img


@dataclass(frozen=True)
class DeferredNorm:
    """The min-max normalisation of a :class:`LoadCXRImage` with ``defer_norm=True``, left for
    the image's stored integers after cropping and resizing them.

    Called on stored values ``v`` (any crop, flip or resize of the loaded image), it returns
    ``rescale_onto(sign * v, low, high, out_range)`` in ``dtype``, the grey value repeated
    ``channels`` times: what the loader would have given at once for those pixels (up to the
    rounding of an integer resize: half a stored step, up to one for 8-bit images, which
    OpenCV resizes with fixed-point weights). The min-max normalisation of
    ``slope * v + intercept`` depends on ``v`` and the sign of ``slope`` only.

    Args:
        low (float): minimum of ``sign * v`` over the whole loaded image.
        high (float): its maximum (> ``low``).
        sign (int): 1, or -1 when higher stored values are darker (MONOCHROME1, JSRT).
        out_range (tuple[float, float]): as in :class:`LoadCXRImage`.
        dtype (type): ``np.float32`` or ``np.float64``.
        channels (int): 1 for (H, W), 3 for (H, W, 3).
    """

    low: float
    high: float
    sign: int
    out_range: Tuple[float, float]
    dtype: type
    channels: int

    def __call__(self, stored: np.ndarray) -> np.ndarray:
        """Normalise stored values (H, W) into a new float array (H, W) or (H, W, 3)."""
        img = stored.astype(self.dtype)
        if self.sign < 0:
            np.negative(img, out=img)
        return to_channels(rescale_onto(img, self.low, self.high, self.out_range),
                           self.channels)


def apply_deferred_norm(results: dict) -> None:
    """Normalise ``results['img']`` now if a :class:`DeferredNorm` is pending (the transforms
    whose result depends on the intensities call it first)."""
    deferred = results.pop(DEFERRED_NORM_KEY, None)
    if deferred is not None:
        results['img'] = deferred(results['img'])


@TRANSFORMS.register_module()
class LoadCXRImage(BaseTransform):
    """Load a chest X-ray (DICOM, PNG, JPEG, MHA/MHD/NRRD, JSRT ``.IMG``) and rescale it.

    The file is decoded by :func:`fxmm.datasets.image_io.read_cxr_image` (raw intensities,
    higher = brighter), then mapped linearly onto ``out_range``:

    - ``'minmax'``: image minimum -> ``out_range[0]``, maximum -> ``out_range[1]``.
    - ``'percentile'``: values are clipped to the ``percentiles`` of the image first, so a few
      burnt-in labels or collimator pixels do not squash the lung contrast.

    A constant image (no contrast) becomes ``out_range[0]`` everywhere.

    With ``defer_norm=True`` and ``'minmax'``, an image stored as integers with a linear map
    to its intensities (grey PNG/JPEG/MHA, JSRT, DICOM without LUT or window: most
    radiographs) stays in its stored type: ``img`` holds the stored values (uint8, uint16 or
    int16) and ``results['deferred_norm']`` the pending :class:`DeferredNorm`, with the
    minimum and maximum of the whole image. fxmm's geometric transforms crop, flip and resize
    those integers and normalise only the (small) resized result; ``CXRRandomRotate`` and
    ``PackCXRInputs`` normalise first when it is still pending. The whole image is never
    converted to float: at 2048 px that conversion and normalisation cost more than decoding
    the file. The resize then rounds to whole stored values (half a step, 1.2e-4 of the range
    at 12 bits; up to a step at 8 bits, as in mmdet, which resizes its uint8 images alike).
    Transforms of other libraries know nothing of the pending normalisation, so use it only
    in pipelines of fxmm transforms up to the first resize (as the configs of ``configs/``
    do).

    An image of a prepared store (``img_path`` inside a store folder, see
    :mod:`fxmm.datasets.image_store`) or decoded at a reduced scale (``min_decoded_side``)
    is smaller than the original, whose size stays ``ori_shape`` (and ``height``/``width``):
    ``img_shape`` and ``decoded_shape`` are the decoded size, ``scale_factor`` the decoded
    pixels per original pixel, so that ``LoadCXRAnnotations`` puts the boxes and masks on
    the decoded image, random crops cover what they cover in the original, and evaluation
    maps predictions back to the original pixels. A store image is normalised with the
    minimum and maximum of the whole original image (``'minmax'``), so it gives what the
    original gives up to resampling; ``'percentile'`` and a reduced decoding use the
    decoded image's values.

    Required Keys:

    - img_path
    - height (optional): checked against the decoded image
    - width (optional): checked against the decoded image

    Modified Keys:

    - height (added if missing)
    - width (added if missing)

    Added Keys:

    - img (np.ndarray): float32 (H, W), or (H, W, 3) with ``channels=3``, within ``out_range``;
      or the stored integers (H, W) with ``defer_norm``
    - deferred_norm (DeferredNorm): only with ``defer_norm``, for an image kept stored
    - ori_shape (tuple[int, int]): (H, W) of the original image
    - img_shape (tuple[int, int]): (h, w) as decoded
    - decoded_shape (tuple[int, int]): (h, w), only for an image decoded smaller than (H, W)
    - scale_factor (tuple[float, float]): (w / W, h / H), only then
    - pixel_spacing (tuple[float, float] | None): (row, col) in mm of the original pixels,
      None if the file lacks it

    Args:
        out_range (Sequence[float]): (low, high) the intensities are mapped onto.
            Defaults to (0., 1.).
        intensity_norm (str): ``'minmax'`` or ``'percentile'``. Defaults to ``'minmax'``.
        percentiles (Sequence[float]): (low, high) percentiles in [0, 100] to clip to, used with
            ``intensity_norm='percentile'``. Defaults to (0.5, 99.5).
        to_float32 (bool): Return ``img`` as float32; if False it keeps the float64 precision
            of the normalisation. Defaults to True.
        channels (int): 1 for a (H, W) image, 3 for (H, W, 3) with the grey value repeated.
            Defaults to 1.
        backend_args (dict, optional): Arguments to instantiate the mmengine file backend
            (e.g. for object storage). Remote files are fetched to a temporary local file, whose
            format is then found from its content. Defaults to None (local files).
        ignore_empty (bool): Return None (so that the dataset picks another sample) instead of
            raising when the file is missing or cannot be decoded; the reason is logged.
            A size mismatch with the annotation always raises. Defaults to False.
        defer_norm (bool): keep a linearly stored image in its stored type and leave the
            ``'minmax'`` normalisation to the first resize (see above). Ignored with
            ``'percentile'``. Defaults to False.
        min_decoded_side (int, optional): decode JPEG files, 8-bit JPEG baseline DICOM and
            JPEG 2000 DICOM at the smallest scale of 1/2, 1/4, 1/8 whose long side is still
            at least this many pixels (e.g. 512 for training at 224 px), for training from
            the originals; other formats are decoded whole. None: full resolution.
            Defaults to None.

    Raises:
        CXRImageError: The image cannot be read, or its size differs from the annotation's
            ``height``/``width``.
    """

    def __init__(self,
                 out_range: Sequence[float] = (0., 1.),
                 intensity_norm: str = 'minmax',
                 percentiles: Sequence[float] = (0.5, 99.5),
                 to_float32: bool = True,
                 channels: int = 1,
                 backend_args: Optional[dict] = None,
                 ignore_empty: bool = False,
                 defer_norm: bool = False,
                 min_decoded_side: Optional[int] = None) -> None:
        if len(out_range) != 2 or not out_range[0] < out_range[1]:
            raise ValueError(f'out_range must be (low, high) with low < high, got {out_range}')
        if intensity_norm not in ('minmax', 'percentile'):
            raise ValueError(
                f"intensity_norm must be 'minmax' or 'percentile', got {intensity_norm!r}")
        if len(percentiles) != 2 or not 0 <= percentiles[0] < percentiles[1] <= 100:
            raise ValueError(
                f'percentiles must be (low, high) with 0 <= low < high <= 100, got {percentiles}')
        if channels not in (1, 3):
            raise ValueError(f'channels must be 1 or 3, got {channels}')
        if min_decoded_side is not None and not (isinstance(min_decoded_side, int)
                                                 and min_decoded_side > 0):
            raise ValueError(f'min_decoded_side must be a positive int or None, got '
                             f'{min_decoded_side!r}')
        self.out_range = tuple(float(v) for v in out_range)
        self.intensity_norm = intensity_norm
        self.percentiles = tuple(float(v) for v in percentiles)
        self.to_float32 = to_float32
        self.channels = channels
        self.backend_args = backend_args.copy() if backend_args else None
        self.ignore_empty = ignore_empty
        self.defer_norm = defer_norm
        self.min_decoded_side = min_decoded_side

    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_path']`` into ``results['img']``.

        Args:
            results (dict): Result dict from :class:`fxmm.datasets.CXRDataset`.

        Returns:
            dict | None: The updated results, or None for an unreadable file when
            ``ignore_empty`` is True.
        """
        filename = results['img_path']
        try:
            with get_local_path(filename, backend_args=self.backend_args) as local_path:
                raw, meta = read_cxr_image(
                    local_path, keep_stored=self.defer_norm and self.intensity_norm == 'minmax',
                    min_decoded_side=self.min_decoded_side)
        except Exception as e:  # a missing or undecodable file; remote backends raise their own
            if not self.ignore_empty:
                raise
            print_log(f'LoadCXRImage skips {filename}: {e}', logger='current',
                      level=logging.WARNING)
            return None

        height, width = meta['original_shape']
        for key, size in (('height', height), ('width', width)):
            expected = results.get(key)
            if expected is not None and int(expected) != size:
                raise CXRImageError(
                    filename, f'the image is (H, W) = ({height}, {width}) but the annotation '
                    f'gives height={results.get("height")}, width={results.get("width")}, so its '
                    'boxes and masks would not line up')
        stored_map, value_range = meta['stored_map'], meta['value_range']
        deferred = self._deferred_norm(raw, stored_map, value_range)
        if deferred is not None:
            results['img'] = raw
            results[DEFERRED_NORM_KEY] = deferred
        else:
            if stored_map is not None:
                raw = apply_linear(raw, *stored_map)
                value_range = mapped_range(value_range, stored_map)
            results['img'] = to_channels(self._normalise(raw, inplace=True,
                                                         value_range=value_range),
                                         self.channels)
        results['ori_shape'] = (height, width)
        results['img_shape'] = raw.shape[:2]
        if raw.shape[:2] != (height, width):
            results[DECODED_SHAPE_KEY] = raw.shape[:2]
            results['scale_factor'] = meta['scale']
        results['pixel_spacing'] = meta['pixel_spacing']
        results.setdefault('height', height)
        results.setdefault('width', width)
        return results

    def _normalise(self, raw: np.ndarray, inplace: bool = False,
                   value_range: Optional[Tuple[float, float]] = None) -> np.ndarray:
        """Map raw intensities (H, W) linearly onto ``out_range``.

        ``value_range`` (the original's min and max, for a store image) replaces the
        image's own in ``'minmax'``.

        With ``to_float32`` the work is done in float32 (it differs from the float64
        computation only by float32 rounding; a min-max mapping onto (0, 1) is one correctly
        rounded division); without it, in float64. ``raw`` is left unchanged unless
        ``inplace`` is True and it already has the output dtype: then it is overwritten, which
        :meth:`transform` does with the fresh array it read (a second image-sized array costs
        more than the arithmetic: its pages are faulted in on first touch, 4 ms at 2048 px).
        """
        img = raw.astype(np.float32 if self.to_float32 else np.float64, copy=False)
        if img is raw and not (inplace and raw.flags.writeable):
            img = raw.copy()
        if self.intensity_norm == 'percentile':
            low, high = (float(v) for v in np.percentile(img, self.percentiles))
            np.clip(img, low, high, out=img)
        elif value_range is not None:
            low, high = value_range
        else:
            low, high = float(img.min()), float(img.max())
        return rescale_onto(img, low, high, self.out_range)

    def _deferred_norm(self, stored: np.ndarray, stored_map: Optional[Tuple[float, float]],
                       value_range: Optional[Tuple[float, float]] = None
                       ) -> Optional[DeferredNorm]:
        """The pending normalisation of stored values (H, W) whose intensities are
        ``slope * stored + intercept`` (``stored_map``), over their minimum and maximum
        (``value_range`` when given: a store image's original range); None when the image
        is float (not kept stored) or has no contrast."""
        if stored_map is None or stored_map[0] == 0:
            return None
        if value_range is None:
            low, high, _, _ = cv2.minMaxLoc(stored)  # one pass, in the stored type
        else:
            low, high = value_range
        if not high > low:
            return None
        sign = 1 if stored_map[0] > 0 else -1
        if sign < 0:
            low, high = -high, -low
        return DeferredNorm(low=low, high=high, sign=sign, out_range=self.out_range,
                            dtype=np.float32 if self.to_float32 else np.float64,
                            channels=self.channels)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(out_range={self.out_range}, '
                f'intensity_norm={self.intensity_norm!r}, percentiles={self.percentiles}, '
                f'to_float32={self.to_float32}, channels={self.channels}, '
                f'backend_args={self.backend_args}, ignore_empty={self.ignore_empty}, '
                f'defer_norm={self.defer_norm}, min_decoded_side={self.min_decoded_side})')
