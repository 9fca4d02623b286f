"""Draw a chest X-ray with its labels or predictions: boxes, coloured masks, top findings."""
from typing import Dict, Optional, Sequence

import cv2
import numpy as np

# distinct RGB colours, reused cyclically
PALETTE = np.array([(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200),
                    (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230),
                    (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255)],
                   dtype=np.uint8)


def to_rgb_uint8(img: np.ndarray) -> np.ndarray:
    """A grey image (H, W) or (H, W, 1|3) of any range -> uint8 RGB (H, W, 3), min-max scaled."""
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 3:
        img = img.mean(axis=2) if img.shape[2] == 3 else img[..., 0]
    lo, hi = float(img.min()), float(img.max())
    img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    grey = (img * 255).round().astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def draw_cxr(img: np.ndarray,
             boxes: Optional[np.ndarray] = None,
             box_labels: Optional[Sequence[int]] = None,
             box_scores: Optional[Sequence[float]] = None,
             det_classes: Sequence[str] = (),
             masks: Optional[np.ndarray] = None,
             seg_classes: Sequence[str] = (),
             cls_scores: Optional[Dict[str, float]] = None,
             top_k: int = 3,
             alpha: float = 0.4) -> np.ndarray:
    """Render one image with its annotations or predictions.

    Args:
        img (np.ndarray): grey image, shape (H, W) (or (H, W, C)), any intensity range.
        boxes (np.ndarray, optional): xyxy pixel boxes, shape (N, 4).
        box_labels (Sequence[int], optional): class index into ``det_classes`` per box.
        box_scores (Sequence[float], optional): confidence per box, written after the name.
        det_classes (Sequence[str]): detection class names.
        masks (np.ndarray, optional): binary masks, shape (K, H, W), one per seg class.
        seg_classes (Sequence[str]): segmentation class names (legend).
        cls_scores (dict, optional): class name -> probability; the ``top_k`` highest are
            written in the top-left corner.
        top_k (int): how many findings to write.
        alpha (float): mask opacity.

    Returns:
        np.ndarray: uint8 RGB canvas, shape (H, W, 3).
    """
    canvas = to_rgb_uint8(img)
    h, w = canvas.shape[:2]
    scale = max(h, w) / 512.
    font, thick = 0.4 * max(scale, 0.5), max(1, int(round(scale)))
    if masks is not None and len(masks):
        masks = np.asarray(masks, dtype=bool)
        overlay = canvas.astype(np.float32)
        for k, mask in enumerate(masks):  # blend every mask first ...
            colour = PALETTE[k % len(PALETTE)].astype(np.float32)
            overlay[mask] = (1 - alpha) * overlay[mask] + alpha * colour
        canvas = overlay.clip(0, 255).astype(np.uint8)
        for k, mask in enumerate(masks[:len(seg_classes)]):  # ... then label (uint8 canvas)
            if mask.any():
                ys, xs = np.nonzero(mask)
                _put_text(canvas, seg_classes[k], (int(xs.mean()), int(ys.mean())),
                          PALETTE[k % len(PALETTE)], font, thick)
    if boxes is not None:
        for i, box in enumerate(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)):
            label = int(box_labels[i]) if box_labels is not None else 0
            colour = tuple(int(c) for c in PALETTE[label % len(PALETTE)])
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thick)
            text = det_classes[label] if label < len(det_classes) else str(label)
            if box_scores is not None:
                text += f' {float(box_scores[i]):.2f}'
            _put_text(canvas, text, (x1, max(y1 - 2, 8)), colour, font, thick)
    if cls_scores:
        top = sorted(cls_scores.items(), key=lambda kv: -kv[1])[:top_k]
        for row, (name, score) in enumerate(top):
            _put_text(canvas, f'{name}: {score:.2f}', (4, int(14 * max(scale, 0.7)) * (row + 1)),
                      (255, 255, 255), font, thick)
    return canvas


def _put_text(canvas, text, origin, colour, font_scale, thickness):
    """Write ``text`` with a dark outline so it stays readable on any background.

    The outline is the same text at the same thickness shifted by one pixel around the
    origin (a thicker stroke would be spaced wider by OpenCV and run ahead of the text).
    """
    colour = tuple(int(c) for c in colour)
    x, y = origin
    for dx, dy in ((-1, -1), (-1, 1), (1, -1), (1, 1), (0, -1), (0, 1), (-1, 0), (1, 0)):
        cv2.putText(canvas, text, (x + dx, y + dy), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    (0, 0, 0), thickness, cv2.LINE_AA)
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale, colour, thickness,
                cv2.LINE_AA)


def draw_data_sample(img: np.ndarray, data_sample, meta: dict, pred: bool = False) -> np.ndarray:
    """Draw a :class:`~fxmm.structures.CXRDataSample`'s ground truth (or predictions).

    Args:
        img (np.ndarray): the image the sample's coordinates refer to, shape (H, W).
        data_sample (CXRDataSample): packed sample (gt_* fields) or model output (pred_*).
        meta (dict): class lists ``cls_classes``, ``det_classes``, ``seg_classes``.
        pred (bool): draw ``pred_*`` fields instead of ``gt_*``.
    """
    kind = 'pred' if pred else 'gt'
    kwargs = dict(det_classes=meta.get('det_classes', ()),
                  seg_classes=meta.get('seg_classes', ()))
    instances = data_sample.get(f'{kind}_instances')
    if instances is not None and 'bboxes' in instances:
        kwargs.update(boxes=_numpy(instances.bboxes), box_labels=_numpy(instances.labels))
        if pred and 'scores' in instances:
            kwargs['box_scores'] = _numpy(instances.scores)
    masks = data_sample.get(f'{kind}_seg_masks')
    if masks is not None:
        kwargs['masks'] = _numpy(masks.data)
    cls = data_sample.get(f'{kind}_cls')
    if cls is not None:
        values = _numpy(cls.score if pred else cls.label)
        names = meta.get('cls_classes', ())
        kwargs['cls_scores'] = {n: float(v) for n, v in zip(names, values) if v == v}
    return draw_cxr(img, **kwargs)


def _numpy(x):
    return x.detach().cpu().numpy() if hasattr(x, 'detach') else np.asarray(x)
