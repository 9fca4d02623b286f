"""Overlays of :class:`~fxmm.apis.FXInferencer` results: one panel per dataset, in a grid."""
import math
from typing import Dict, Optional

import cv2
import numpy as np

from fxmm.structures.mask_rle import decode_mask
from fxmm.visualization import draw_cxr

# header bar above each overlay panel: height as a fraction of the panel width (min 16 px)
_HEADER_FRACTION = 0.06


def draw_overlay(img: np.ndarray,
                 result: dict,
                 class_names: Dict[str, Dict[str, list]],
                 panel_size: Optional[int] = 512,
                 max_cols: int = 4) -> np.ndarray:
    """Draw one image's results, one panel per dataset, panels in a grid.

    Each panel is the image with that dataset's masks (coloured, labelled at their centre),
    boxes (with label and score) and its 3 most probable classes (top left), under a header
    bar with the dataset's name. A result without datasets gives one panel of the bare image.

    Layout: the image is resized so that its long side is ``panel_size`` (keeping its aspect
    ratio; ``None`` keeps the original size, so panel pixels are original pixels); a panel is
    then ``(header + h, w)`` with ``header = max(16, round(0.06 * w))``; ``min(n, max_cols)``
    panels per row, rows top to bottom, in the order of ``result['datasets']``.

    Args:
        img (np.ndarray): The original image, shape (H, W), any intensity range.
        result (dict): One result of :class:`~fxmm.apis.FXInferencer` (boxes and masks in (H, W)).
        class_names (dict): Dataset -> ``dict(cls_classes=..., det_classes=...,
            seg_classes=...)`` (``FoundationX.class_names``), for colours by class index.
        panel_size (int, optional): Long side of a panel's image. Defaults to 512.
        max_cols (int): Panels per row at most. Defaults to 4.

    Returns:
        np.ndarray: uint8 RGB canvas, shape (rows * (header + h), cols * w, 3).
    """
    ori_h, ori_w = img.shape[:2]
    scale = 1. if panel_size is None else panel_size / max(ori_h, ori_w)
    w, h = max(1, round(ori_w * scale)), max(1, round(ori_h * scale))
    if (w, h) != (ori_w, ori_h):
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        img = cv2.resize(np.asarray(img, dtype=np.float32), (w, h), interpolation=interp)
    # (sx, sy, sx, sy): original -> panel pixels, exact per axis after rounding the size
    box_scale = np.array([w / ori_w, h / ori_h] * 2, dtype=np.float32)
    panels = []
    for name, preds in result['datasets'].items():
        classes = class_names[name]
        kwargs = dict(det_classes=classes['det_classes'], seg_classes=classes['seg_classes'])
        if 'cls' in preds:
            kwargs['cls_scores'] = preds['cls']
        if preds.get('loc'):
            kwargs.update(
                boxes=np.array([box['bbox'] for box in preds['loc']], dtype=np.float32)
                * box_scale,
                box_labels=[classes['det_classes'].index(box['label']) for box in preds['loc']],
                box_scores=[box['score'] for box in preds['loc']])
        if 'seg' in preds:
            masks = np.zeros((len(classes['seg_classes']), h, w), dtype=np.uint8)
            for k, seg_class in enumerate(classes['seg_classes']):
                if seg_class in preds['seg']:
                    mask = decode_mask(preds['seg'][seg_class]['rle'], ori_h, ori_w)
                    masks[k] = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
            kwargs['masks'] = masks
        panels.append((name, draw_cxr(img, **kwargs)))
    if not panels:
        panels.append(('no outputs', draw_cxr(img)))

    header = max(16, round(_HEADER_FRACTION * w))
    cols = min(len(panels), max_cols)
    rows = math.ceil(len(panels) / cols)
    canvas = np.zeros((rows * (header + h), cols * w, 3), dtype=np.uint8)
    font = header / 40.
    for i, (name, panel) in enumerate(panels):
        top, left = (i // cols) * (header + h), (i % cols) * w
        canvas[top:top + header, left:left + w] = 40  # dark grey bar
        cv2.putText(canvas, name, (left + 4, top + int(header * 0.75)),
                    cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), max(1, round(font * 2)),
                    cv2.LINE_AA)
        canvas[top + header:top + header + h, left:left + w] = panel
    return canvas


def overlay_png(canvas: np.ndarray) -> bytes:
    """PNG encoding of an RGB uint8 canvas (H, W, 3)."""
    ok, png = cv2.imencode('.png', cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f'OpenCV could not encode a {canvas.shape} overlay as PNG')
    return png.tobytes()
