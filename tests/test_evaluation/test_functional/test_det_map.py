"""Tests of fxmm.evaluation.functional.det_map.coco_map (pycocotools, 101-point AP)."""
import math

import numpy as np
import pytest

from fxmm.evaluation.functional.det_map import coco_map


def gt(*boxes, labels=None):
    boxes = np.array(boxes, dtype=float).reshape(-1, 4)
    return dict(bboxes=boxes, labels=np.zeros(len(boxes), int) if labels is None else labels)


def det(*boxes_scores, label=0):
    boxes = np.array([b for b, _ in boxes_scores], dtype=float).reshape(-1, 4)
    return dict(bboxes=boxes, scores=np.array([s for _, s in boxes_scores]),
                labels=np.full(len(boxes), label))


# image 0: GT (10, 20)-(50, 60) and a perfect detection;
# image 1: GT (5, 5)-(25, 25), area 400, and a detection (5, 5)-(25, 14), area 180: IoU 0.45
GTS = [gt([10, 20, 50, 60]), gt([5, 5, 25, 25])]
PERFECT, LOOSE = [10, 20, 50, 60], [5, 5, 25, 14]


def test_iou_between_thresholds_perfect_scored_higher():
    result = coco_map([det((PERFECT, 0.9)), det((LOOSE, 0.8))], GTS, num_classes=1)
    # IoU 0.4: both true positives -> precision 1 at every recall -> AP 1
    assert result['mAP40'] == pytest.approx(1.0)
    # IoU >= 0.5: TP then FP; recall 0.5 reached at precision 1 -> recall thresholds
    # 0.00..0.50 (51 of 101) have precision 1, the rest 0
    assert result['mAP50'] == pytest.approx(51 / 101)
    assert result['mAP'] == pytest.approx(51 / 101)  # the same at every threshold .5:.95


def test_iou_between_thresholds_loose_scored_higher():
    result = coco_map([det((PERFECT, 0.8)), det((LOOSE, 0.9))], GTS, num_classes=1)
    assert result['mAP40'] == pytest.approx(1.0)
    # IoU 0.5: FP (precision 0) then TP (precision 0.5, recall 0.5); interpolated precision
    # is 0.5 for the 51 recall thresholds <= 0.5
    assert result['mAP50'] == pytest.approx(0.5 * 51 / 101)


def test_false_positive_on_an_image_without_gt_lowers_precision():
    one = coco_map([det((PERFECT, 0.5))], GTS[:1], num_classes=1)
    assert one == pytest.approx({'mAP40': 1.0, 'mAP50': 1.0, 'mAP': 1.0})
    with_empty = coco_map([det((PERFECT, 0.5)), det(([0, 0, 8, 8], 0.9))],
                          [GTS[0], gt()], num_classes=1)
    # FP ranked first: precision 0.5 at recall 1 -> AP 0.5 at every threshold
    assert with_empty == pytest.approx({'mAP40': 0.5, 'mAP50': 0.5, 'mAP': 0.5})
    low_fp = coco_map([det((PERFECT, 0.5)), det(([0, 0, 8, 8], 0.1))],
                      [GTS[0], gt()], num_classes=1)
    assert low_fp['mAP40'] == pytest.approx(1.0)  # an FP ranked after full recall costs nothing


def test_wrong_class_and_class_without_gt():
    # class 1 has no GT anywhere: left out of the mean (not counted as 0)
    assert coco_map([det((PERFECT, 0.9))], GTS[:1], num_classes=2)['mAP40'] == pytest.approx(1.0)
    # the right box with the wrong label: class 0 is missed -> 0
    assert coco_map([det((PERFECT, 0.9), label=1)], GTS[:1], num_classes=2)['mAP40'] == 0.0


def test_custom_thresholds_and_no_gt_at_all():
    result = coco_map([det((LOOSE, 0.9))], GTS[1:], num_classes=1, iou_thrs=(0.3, 0.45))
    assert list(result) == ['mAP30', 'mAP45', 'mAP']
    assert result == pytest.approx({'mAP30': 1.0, 'mAP45': 1.0, 'mAP': 0.0})
    empty = coco_map([det((PERFECT, 0.9))], [gt()], num_classes=1)
    assert list(empty) == ['mAP40', 'mAP50', 'mAP']
    assert all(math.isnan(v) for v in empty.values())


@pytest.mark.parametrize('preds, gts, match', [
    ([det((PERFECT, 0.9))], GTS, 'got 1 predictions for 2'),
    ([det((PERFECT, 0.9), label=3)], GTS[:1], r'labels must lie in \[0, 1\)'),
    ([dict(bboxes=np.zeros((2, 4)), scores=np.ones(1), labels=np.zeros(2, int))], GTS[:1],
     r'predictions\[0\]: bboxes, labels \(and scores\) differ'),
])
def test_bad_input_is_named(preds, gts, match):
    with pytest.raises(ValueError, match=match):
        coco_map(preds, gts, num_classes=1)
