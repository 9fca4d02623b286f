"""Masks and boxes from the official annotations: polygons, mask images, mask components.

Conventions (those of the annotation format, ``docs/design.md``):

- A polygon vertex ``(x, y)`` is a pixel *centre*, and the pixels on the outline are part of
  the polygon (``cv2.fillPoly``, as the datasets' own tools draw them): the rectangle with
  vertices (2, 3), (6, 3), (6, 7), (2, 7) covers columns 2..6 and rows 3..7. Fractional
  vertices go to the nearest pixel (x = 3.4 -> column 3, 3.6 -> column 4); cv2's 1/16 px
  fixed point keeps slanted edges where they are.
- Boxes are ``[x1, y1, x2, y2]`` on pixel *edges*: a single pixel (r, c) is ``[c, r, c+1, r+1]``
  (as :func:`fxmm.structures.mask_rle.masks_to_boxes` gives).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from fxmm.structures.mask_rle import encode_mask, masks_to_boxes

# cv2 fixed-point precision of polygon vertices (1/16 px)
_SHIFT = 4


def rasterise_polygons(polygons: Sequence[Sequence[Sequence[float]]], height: int, width: int,
                       what: str = 'polygon') -> np.ndarray:
    """Fill polygons (their union) on an (H, W) grid.

    Args:
        polygons (Sequence): Each polygon a sequence of >= 3 ``(x, y)`` vertices in pixels.
        height (int): Grid height H.
        width (int): Grid width W.
        what (str): Names the annotation in error messages.

    Returns:
        np.ndarray: uint8 mask of 0/1, shape (H, W).

    Raises:
        ValueError: A polygon with fewer than 3 vertices or non-finite coordinates.
    """
    mask = np.zeros((height, width), dtype=np.uint8)
    for i, polygon in enumerate(polygons):
        try:
            points = np.asarray(polygon, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f'{what}[{i}]: vertices must be (x, y) numbers, got {polygon!r:.80}')
        if points.ndim != 2 or points.shape[1] != 2 or len(points) < 3:
            raise ValueError(f'{what}[{i}]: a polygon needs >= 3 (x, y) vertices, '
                             f'got shape {points.shape}')
        if not np.isfinite(points).all():
            raise ValueError(f'{what}[{i}]: non-finite vertex coordinates')
        fixed = np.round(points * (1 << _SHIFT)).astype(np.int32)
        # one polygon at a time: the union, whatever the overlap or winding
        cv2.fillPoly(mask, [fixed], 1, cv2.LINE_8, _SHIFT)
    return mask


def read_mask_image(path: str) -> np.ndarray:
    """Read a mask image (GIF, PNG, ...) with Pillow as a binary mask (any value > 0 is set).

    Returns:
        np.ndarray: uint8 mask of 0/1, shape (H, W).

    Raises:
        OSError: The file is missing or not an image Pillow can decode.
    """
    with Image.open(path) as img:
        img.seek(0)
        if img.mode == 'P':  # palette (GIF): the palette index is not the grey value
            img = img.convert('L')
        arr = np.asarray(img)
    if arr.ndim == 3:
        arr = arr[..., :3].max(axis=2) if arr.shape[2] >= 3 else arr[..., 0]
    return (arr > 0).astype(np.uint8)


def component_instances(mask: np.ndarray, label: int) -> List[dict]:
    """One box per 8-connected component of ``mask``, as annotation instances.

    Args:
        mask (np.ndarray): binary mask, shape (H, W).
        label (int): ``bbox_label`` of every box.

    Returns:
        list[dict]: ``{'bbox': [x1, y1, x2, y2], 'bbox_label': label}`` in raster order.
    """
    return [dict(bbox=[float(v) for v in box], bbox_label=label)
            for box in masks_to_boxes(mask, connectivity=8)]


def mask_extent(mask: np.ndarray) -> Optional[List[float]]:
    """The box around all set pixels of ``mask`` (edge coordinates), None if it is empty."""
    rows, cols = np.nonzero(mask)
    if not rows.size:
        return None
    return [float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1)]


def encode_masks(masks: Dict[str, np.ndarray]) -> Dict[str, dict]:
    """COCO RLEs of the non-empty masks (an absent class means an all-zero mask)."""
    return {name: encode_mask(mask) for name, mask in masks.items() if mask.any()}


def check_box(box: Sequence[float], height: int, width: int, what: str = 'box',
              tolerance: float = 2.0) -> List[float]:
    """Validate an ``[x1, y1, x2, y2]`` box against the image and clip it to the image.

    Args:
        box (Sequence[float]): The box in pixels.
        height (int): Image height.
        width (int): Image width.
        what (str): Names the box in error messages.
        tolerance (float): Pixels a box may reach outside the image before it is an error
            (annotation tools round outwards); within it, the box is clipped.

    Returns:
        list[float]: The clipped box.

    Raises:
        ValueError: Not four numbers, non-finite values, x2 <= x1 or y2 <= y1, or a box
            outside the image by more than ``tolerance``.
    """
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f'{what} {box!r}: needs four numbers x1, y1, x2, y2') from None
    if not np.isfinite([x1, y1, x2, y2]).all() or not (x1 < x2 and y1 < y2):
        raise ValueError(f'{what} {list(box)}: needs finite x1 < x2 and y1 < y2')
    if min(x1, y1) < -tolerance or x2 > width + tolerance or y2 > height + tolerance:
        raise ValueError(f'{what} {list(box)} lies outside the {width}x{height} (WxH) image')
    return [max(x1, 0.), max(y1, 0.), min(x2, float(width)), min(y2, float(height))]


def xywh_to_xyxy(x: float, y: float, w: float, h: float) -> Tuple[float, float, float, float]:
    """``(x, y, width, height)`` -> ``(x1, y1, x2, y2)``."""
    return x, y, x + w, y + h
