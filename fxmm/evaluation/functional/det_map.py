"""Detection: COCO-style mAP at chosen IoU thresholds (the paper's Loc mAP40) via pycocotools."""
import contextlib
import io
import logging
from typing import Dict, List, Sequence

import numpy as np
from mmengine.logging import print_log
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

# COCO's standard IoU grid 0.50:0.05:0.95, over which 'mAP' is averaged.
COCO_IOU_THRS = np.linspace(0.5, 0.95, 10)


def map_name(thr: float) -> str:
    """The result key of IoU threshold ``thr``: ``0.4 -> 'mAP40'``, ``0.425 -> 'mAP42.5'``."""
    return f'mAP{round(thr * 100, 4):g}'


def _xyxy_to_xywh(bboxes: np.ndarray) -> np.ndarray:
    """(M, 4) x1, y1, x2, y2 -> (M, 4) x, y, w, h (COCO's box layout)."""
    return np.concatenate([bboxes[:, :2], bboxes[:, 2:] - bboxes[:, :2]], axis=1)


def _annotations(items: Sequence[dict], num_classes: int, kind: str) -> List[dict]:
    """COCO annotation dicts of every box of ``items`` (one dict per image)."""
    anns = []
    for img_id, item in enumerate(items):
        bboxes = np.asarray(item['bboxes'], dtype=np.float64).reshape(-1, 4)
        labels = np.asarray(item['labels'], dtype=np.int64).reshape(-1)
        scores = (np.asarray(item['scores'], dtype=np.float64).reshape(-1)
                  if kind == 'predictions' else np.ones(len(labels)))
        if not len(bboxes) == len(labels) == len(scores):
            raise ValueError(f'{kind}[{img_id}]: bboxes, labels (and scores) differ in length '
                             f'({len(bboxes)}, {len(labels)}, {len(scores)})')
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f'{kind}[{img_id}]: labels must lie in [0, {num_classes}); got '
                             f'{labels.min()}..{labels.max()}')
        for box, label, score in zip(_xyxy_to_xywh(bboxes), labels, scores):
            anns.append(dict(id=len(anns) + 1,  # COCOeval treats id 0 as "unmatched"
                             image_id=img_id, category_id=int(label), bbox=box.tolist(),
                             area=float(box[2] * box[3]), iscrowd=0, score=float(score)))
    return anns


def _coco(images: List[dict], categories: List[dict], anns: List[dict]) -> COCO:
    """A pycocotools COCO object built in memory (no JSON file)."""
    coco = COCO()
    coco.dataset = dict(images=images, categories=categories, annotations=anns)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_map(predictions: Sequence[dict],
             ground_truths: Sequence[dict],
             num_classes: int,
             iou_thrs: Sequence[float] = (0.4, 0.5),
             max_dets: int = 100) -> Dict[str, float]:
    """COCO bbox mAP (pycocotools ``COCOeval``) at ``iou_thrs`` and over 0.50:0.95.

    ``COCOeval.params.iouThrs`` is set to ``iou_thrs`` joined with COCO's standard grid, so
    one evaluation yields every number: ``mAP<100*t>`` for each ``t`` in ``iou_thrs`` (the
    mean over classes of the 101-point interpolated AP at IoU ``t``) and ``mAP``, averaged
    over the standard 10 thresholds, both on area range 'all' with ``max_dets`` detections
    per image and class. Every image counts, including those without GT boxes: detections there are
    false positives. Classes without any GT box are left out of the means (as COCO does).

    Args:
        predictions (Sequence[dict]): one dict per image with ``bboxes`` (M, 4) x1, y1, x2, y2
            in pixels, ``scores`` (M,), ``labels`` (M,) in [0, num_classes).
        ground_truths (Sequence[dict]): one dict per image (same order) with ``bboxes``
            (N, 4) x1, y1, x2, y2 in the same pixel grid as the predictions, ``labels`` (N,).
        num_classes (int): number of detection classes.
        iou_thrs (Sequence[float]): thresholds reported individually. Defaults to
            (0.4, 0.5): the paper's mAP40 and mAP50.
        max_dets (int): COCOeval's ``maxDets``: detections kept per image and class (the
            highest scores). Defaults to 100.

    Returns:
        dict: ``mAP40``, ``mAP50`` (one key per threshold) and ``mAP``, fractions in [0, 1];
        all nan (with a warning) when there is no GT box at all.
    """
    if len(predictions) != len(ground_truths):
        raise ValueError(f'got {len(predictions)} predictions for {len(ground_truths)} '
                         'ground-truth images; expected one of each per image')
    iou_thrs = [float(t) for t in iou_thrs]
    if not all(0. < t <= 1. for t in iou_thrs):
        raise ValueError(f'iou_thrs must lie in (0, 1]; got {iou_thrs}')
    keys = [map_name(t) for t in iou_thrs] + ['mAP']
    gt_anns = _annotations(ground_truths, num_classes, 'ground_truths')
    dt_anns = _annotations(predictions, num_classes, 'predictions')
    if not gt_anns:
        print_log(f'coco_map: no ground-truth box in {len(ground_truths)} images; mAP is nan',
                  logger='current', level=logging.WARNING)
        return {key: float('nan') for key in keys}

    images = [dict(id=i) for i in range(len(ground_truths))]
    categories = [dict(id=k) for k in range(num_classes)]
    coco_eval = COCOeval(_coco(images, categories, gt_anns), _coco(images, categories, dt_anns),
                         iouType='bbox')
    all_thrs = np.unique(np.round(np.concatenate([iou_thrs, COCO_IOU_THRS]), 6))
    coco_eval.params.imgIds = [img['id'] for img in images]
    coco_eval.params.catIds = [cat['id'] for cat in categories]
    coco_eval.params.iouThrs = all_thrs
    coco_eval.params.maxDets = [max_dets]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval.evaluate()
        coco_eval.accumulate()
    # (T, R, K, A, M) -> (T, R, K): area range 'all', the one max_dets setting
    precision = coco_eval.eval['precision'][:, :, :, 0, -1]

    def mean_ap(thrs: np.ndarray) -> float:
        rows = [int(np.flatnonzero(np.isclose(all_thrs, t))[0]) for t in thrs]
        p = precision[rows]
        return float(p[p > -1].mean()) if (p > -1).any() else float('nan')

    results = {map_name(t): mean_ap([t]) for t in iou_thrs}
    results['mAP'] = mean_ap(COCO_IOU_THRS)
    print_log('coco_map: {} images, {} GT boxes, {} detections: {}'.format(
        len(images), len(gt_anns), len(dt_anns),
        ', '.join(f'{k}={v:.4f}' for k, v in results.items())), logger='current')
    return results
