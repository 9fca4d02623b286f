"""Tests of fxmm.evaluation.metrics.multi_task_metric.MultiTaskMetric."""
import math
from unittest.mock import patch

import pytest
import torch
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.evaluator import Evaluator
from mmengine.structures import InstanceData, LabelData, PixelData

from fxmm.evaluation.metrics.multi_task_metric import MultiTaskMetric
from fxmm.registry import METRICS
from fxmm.structures.cxr_data_sample import CXRDataSample

NAN = float('nan')
CLS_CLASSES = ['Atelectasis', 'Cardiomegaly', 'Pleural Effusion']
DATASET_META = dict(datasets=dict(
    phantom_cls=dict(cls_classes=CLS_CLASSES, det_classes=[], seg_classes=[]),
    phantom_ptx=dict(cls_classes=['pneumothorax'], det_classes=['pneumothorax'],
                     seg_classes=['pneumothorax']),
    phantom_seg=dict(cls_classes=[], det_classes=[], seg_classes=['heart', 'left lung'])))


def data_sample(dataset, task, idx, ori_shape=(16, 16), img_shape=(8, 8)):
    scale = (img_shape[1] / ori_shape[1], img_shape[0] / ori_shape[0])  # (w, h)
    return CXRDataSample(metainfo=dict(dataset=dataset, task=task, sample_idx=idx,
                                       ori_shape=ori_shape, img_shape=img_shape,
                                       scale_factor=scale))


def cls_samples():
    """AUC: Atelectasis pos {.9, .6} vs neg {.2, .7} -> 3/4; Pleural Effusion
    pos {.8, .9} vs neg {.7, .1} -> 1; Cardiomegaly is outside auc_classes."""
    labels = [[1, 0, 1], [0, 1, 0], [1, 0, 0], [0, NAN, 1]]
    scores = [[.9, .1, .8], [.2, .8, .7], [.6, .3, .1], [.7, .5, .9]]
    samples = []
    for idx, (label, score) in enumerate(zip(labels, scores)):
        s = data_sample('phantom_cls', 'cls', idx)
        s.gt_cls = LabelData(label=torch.tensor(label))
        s.pred_cls = LabelData(score=torch.tensor(score))
        samples.append(s)
    return samples


def loc_samples():
    """Original 64 x 128 (h x w), resized to 32 x 32: scale_factor (w, h) = (0.25, 0.5).
    Image 0: GT (4, 4, 12, 20) resized = (16, 8, 48, 40) original, predicted exactly.
    Image 1: GT (0, 0, 5, 10) resized = (0, 0, 20, 20) original; prediction (0, 0, 20, 9),
    IoU 0.45. Image 2: no GT, no prediction."""
    gts = [[[4, 4, 12, 20]], [[0, 0, 5, 10]], []]
    preds = [([[16, 8, 48, 40]], [.9]), ([[0, 0, 20, 9]], [.8]), ([], [])]
    samples = []
    for idx, (gt, (boxes, scores)) in enumerate(zip(gts, preds)):
        s = data_sample('phantom_ptx', 'loc', idx, ori_shape=(64, 128), img_shape=(32, 32))
        gt = torch.tensor(gt, dtype=torch.float32).reshape(-1, 4)
        s.gt_instances = InstanceData(bboxes=HorizontalBoxes(gt) if idx == 0 else gt,
                                      labels=torch.zeros(len(gt), dtype=torch.long))
        s.pred_instances = InstanceData(
            bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            scores=torch.tensor(scores), labels=torch.zeros(len(scores), dtype=torch.long))
        samples.append(s)
    return samples


def seg_samples():
    """GT at 8x8 (resized), predictions at the original 16x16.
    Image 0: heart GT rows 0-3 (-> rows 0-7), predicted exactly: 1; left lung empty in
    both: 1 (empty_score). Image 1: heart GT rows 0-1 (-> 0-3, 64 px) vs predicted rows
    0-7 (128 px): 2*64/192 = 2/3; left lung GT cols 0-3 (-> 0-7, 128 px), nothing predicted:
    0; pooled: 2*64 / (192 + 128) = 0.4."""
    gt = torch.zeros(2, 2, 8, 8, dtype=torch.uint8)
    pred = torch.zeros(2, 2, 16, 16, dtype=torch.bool)
    gt[0, 0, :4], pred[0, 0, :8] = 1, True
    gt[1, 0, :2], pred[1, 0, :8] = 1, True
    gt[1, 1, :, :4] = 1
    samples = []
    for idx in range(2):
        s = data_sample('phantom_seg', 'seg', idx)
        s.gt_seg_masks = PixelData(data=gt[idx])
        s.pred_seg_masks = PixelData(data=pred[idx], score=pred[idx].float())
        samples.append(s)
    return samples


def evaluate(metric, samples, dataset_meta=DATASET_META):
    evaluator = Evaluator(metric)
    evaluator.dataset_meta = dataset_meta
    evaluator.process(data_samples=samples)  # converts to dicts, as in a real val loop
    return evaluator.evaluate(len(samples))


def test_end_to_end_three_pairs_with_padding_repeats():
    cls, loc, seg = cls_samples(), loc_samples(), seg_samples()
    # a distributed sampler pads with repeats; each repeat would change its pair's result
    samples = cls + loc + seg + [cls[1], loc[1], seg[0]]
    metric = MultiTaskMetric(auc_classes=dict(phantom_cls=['Atelectasis', 'Pleural Effusion']))
    metrics = evaluate(metric, samples)
    expected = {
        'phantom_cls.cls/AUC': 0.875,
        'phantom_cls.cls/AUC_Atelectasis': 0.75,
        'phantom_cls.cls/AUC_Pleural_Effusion': 1.0,
        'phantom_ptx.loc/mAP40': 1.0,
        'phantom_ptx.loc/mAP50': 51 / 101,
        'phantom_ptx.loc/mAP': 51 / 101,
        'phantom_seg.seg/Dice': (1 + 0.4) / 2,
        'phantom_seg.seg/Dice_heart': (1 + 2 / 3) / 2,
        'phantom_seg.seg/Dice_left_lung': 0.5,
        'cls/mAUC': 0.875,
        'loc/mmAP40': 1.0,
        'seg/mDice': 0.7,
        'score': (0.875 + 1.0 + 0.7) / 3,
    }
    assert metrics == pytest.approx(expected)
    assert metric.results == []  # cleared after evaluation


def test_empty_score_nan_and_class_names_by_index():
    metrics = evaluate(MultiTaskMetric(dice_empty_score=NAN), seg_samples(), dataset_meta=None)
    # left lung of image 0 (empty in both) is left out of its class's Dice; the pooled Dice
    # of the images (1 and 0.4) have pixels to count
    assert metrics == pytest.approx({
        'phantom_seg.seg/Dice': 0.7, 'phantom_seg.seg/Dice_0': 5 / 6,
        'phantom_seg.seg/Dice_1': 0.0, 'seg/mDice': 0.7, 'score': 0.7})


def test_single_dataset_meta_prefix_and_registry_build():
    metric = METRICS.build(dict(type='MultiTaskMetric', det_iou_thrs=(0.3, ), prefix='val'))
    meta = dict(dataset='phantom_ptx', det_classes=['pneumothorax'])
    metrics = evaluate(metric, loc_samples(), dataset_meta=meta)
    assert metrics == pytest.approx({'val/phantom_ptx.loc/mAP30': 1.0,
                                     'val/phantom_ptx.loc/mAP': 51 / 101,
                                     'val/loc/mmAP30': 1.0, 'val/score': 1.0})


def test_pair_without_positives_gives_nan_left_out_of_score():
    samples = cls_samples()
    for s in samples:
        s.gt_cls.label = torch.zeros(3)
    metrics = evaluate(MultiTaskMetric(), samples + seg_samples())
    assert math.isnan(metrics['phantom_cls.cls/AUC']) and math.isnan(metrics['cls/mAUC'])
    assert metrics['score'] == pytest.approx(0.7)  # seg/mDice alone


def test_bad_samples_are_named():
    bad = cls_samples()[:1]
    del bad[0].pred_cls
    with pytest.raises(KeyError, match=r"phantom_cls.cls#0 has no 'pred_cls.score'"):
        MultiTaskMetric().process(None, [bad[0].to_dict()])
    no_task = {'dataset': 'x', 'sample_idx': 0}
    with pytest.raises(KeyError, match="has no 'task'"):
        MultiTaskMetric().process(None, [no_task])
    with pytest.raises(ValueError, match="unknown task 'det'"):
        MultiTaskMetric().process(None, [dict(no_task, task='det')])
    meta = dict(datasets=dict(phantom_seg=dict(seg_classes=['heart'])))
    with pytest.raises(ValueError, match=r'phantom_seg.seg: dataset_meta gives 1 seg_classes'):
        evaluate(MultiTaskMetric(), seg_samples(), dataset_meta=meta)


def test_evaluate_keeps_results_beyond_dataset_size():
    """Per-pair padding makes the results list longer than the dataset; none is cut."""

    def evaluate(batches):
        metric = MultiTaskMetric()
        metric.dataset_meta = DATASET_META
        for batch in batches:
            metric.process({}, [s.to_dict() for s in batch])
        return metric.evaluate(size=4)['phantom_cls.cls/AUC']

    samples = cls_samples()
    full = evaluate([samples])
    # sample 2 padded (repeated) before the pair's last real sample arrives
    padded = evaluate([samples[:3] + [samples[2]], samples[3:]])
    without_last = evaluate([samples[:3]])
    assert padded == full
    assert without_last != full


def test_gt_masks_at_the_original_size_are_used_as_they_are():
    """GT masks loaded after the resize (the configs' test pipelines) are compared without
    resampling; GT masks of the resized image are resized back, with one warning."""
    resized = seg_samples()
    original = seg_samples()
    for sample in original:  # the same GT at 16 x 16, as nearest upsampling makes it
        up = sample.gt_seg_masks.data.repeat_interleave(2, 1).repeat_interleave(2, 2)
        sample.gt_seg_masks = PixelData(data=up)
    with patch('fxmm.evaluation.metrics.multi_task_metric.print_log') as log:
        assert evaluate(MultiTaskMetric(), original) == evaluate(MultiTaskMetric(), resized)
    warnings = [c.args[0] for c in log.call_args_list if 'GT masks' in c.args[0]]
    assert len(warnings) == 1 and 'are (8, 8), not the original (16, 16)' in warnings[0]


def test_auc_classes_of_a_dataset_not_evaluated_are_warned_about():
    with patch('fxmm.evaluation.metrics.multi_task_metric.print_log') as log:
        evaluate(MultiTaskMetric(auc_classes=dict(phantom_clz=['Atelectasis'])), cls_samples())
    assert any("auc_classes names ['phantom_clz'], which this evaluation has no cls pair of"
               in c.args[0] for c in log.call_args_list)
