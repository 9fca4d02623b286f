"""Tests of CXRVisualizationHook with a Mock runner: where the images go, what they show
(box colours at the box locations, the low-score box left out), class names, validation."""
import os
import os.path as osp
from unittest.mock import Mock

import cv2
import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData, LabelData, PixelData

from fxmm.engine.hooks.visualization_hook import CXRVisualizationHook
from fxmm.registry import HOOKS
from fxmm.structures import CXRDataSample
from fxmm.visualization.drawing import PALETTE

H, W = 64, 80  # original image
TIMESTAMP = '20250101_000000'


def write_image(path) -> str:
    """A grey PNG of H x W with a horizontal ramp, so drawn colours stand out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ramp = np.tile(np.linspace(60, 200, W, dtype=np.uint8), (H, 1))
    cv2.imwrite(str(path), ramp)
    return str(path)


def make_runner(tmp_path, metainfo=None) -> Mock:
    runner = Mock()
    runner.model = torch.nn.Module()  # a plain model (no predict_on): no copy folder
    runner.work_dir = str(tmp_path)
    runner.timestamp = TIMESTAMP
    runner.iter = 7
    runner.test_dataloader.dataset.metainfo = metainfo if metainfo is not None else dict(
        classes={'phantom_ptx.loc': ['left ptx', 'right ptx'], 'phantom_seg.seg': ['lung']})
    runner.val_dataloader.dataset.metainfo = runner.test_dataloader.dataset.metainfo
    return runner


def loc_batch(img_path, sample_idx=0):
    """A loc sample: ground truth on a half-size input, predictions in original coords."""
    meta = dict(dataset='phantom_ptx', task='loc', img_path=img_path, sample_idx=sample_idx,
                ori_shape=(H, W), img_shape=(H // 2, W // 2), scale_factor=(0.5, 0.5))
    gt = CXRDataSample(metainfo=meta)
    gt.gt_instances = InstanceData(bboxes=torch.tensor([[4., 4., 20., 16.]]),
                                   labels=torch.tensor([0]))
    pred = CXRDataSample(metainfo=meta)
    pred.pred_instances = InstanceData(
        bboxes=torch.tensor([[10., 10., 50., 40.], [0., 0., 5., 5.]]),
        scores=torch.tensor([0.9, 0.1]), labels=torch.tensor([1, 0]))
    data_batch = dict(inputs=[torch.rand(1, H // 2, W // 2)], data_samples=[gt])
    return data_batch, [pred]


def rgb(path) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(int)


def is_colour(pixel, label) -> bool:
    return np.abs(pixel - PALETTE[label].astype(int)).max() <= 2


def test_test_iter_saves_gt_and_prediction_panels(tmp_path):
    img_path = write_image(tmp_path / 'images' / 'case1.png')
    runner = make_runner(tmp_path)
    hook = HOOKS.build(dict(type='CXRVisualizationHook', draw=True, test_out_dir='show'))
    assert isinstance(hook, CXRVisualizationHook)
    hook.before_test(runner)
    hook.after_test_iter(runner, 0, *loc_batch(img_path))

    out = osp.join(tmp_path, TIMESTAMP, 'show', 'phantom_ptx.loc', 'case1.png')
    assert osp.isfile(out)
    canvas = rgb(out)
    # ground truth panel (40 x 32 input scaled to the original's height) + prediction panel
    assert canvas.shape == (H, 2 * W, 3)
    pred = canvas[:, W:]
    # the kept box (label 1): its left and bottom edges in its class colour
    assert is_colour(pred[25, 10], 1) and is_colour(pred[40, 30], 1)
    # inside the box and at the dropped box (score 0.1 < 0.3): still the grey image
    for y, x in ((25, 30), (2, 5), (5, 2)):
        r, g, b = pred[y, x]
        assert r == g == b, (y, x, pred[y, x])
    # the ground-truth box [4, 4, 20, 16] drawn at input size, label 0 (red), x2 in the panel
    gt = canvas[:, :W]
    r, g, b = gt[20, 8]
    assert r - g > 100 and r - b > 100, gt[20, 8]
    r, g, b = gt[20, 24]
    assert r == g == b


def test_prediction_only_without_ground_truth(tmp_path):
    img_path = write_image(tmp_path / 'case2.png')
    runner = make_runner(tmp_path)
    data_batch, outputs = loc_batch(img_path)
    for show_gt, batch in ((True, dict(inputs=data_batch['inputs'],
                                       data_samples=[CXRDataSample()])),
                           (False, data_batch)):
        hook = CXRVisualizationHook(draw=True, test_out_dir=str(tmp_path / f'out{show_gt}'),
                                    show_gt=show_gt)
        hook.before_test(runner)
        hook.after_test_iter(runner, 0, batch, outputs)
        canvas = rgb(str(tmp_path / f'out{show_gt}' / 'phantom_ptx.loc' / 'case2.png'))
        assert canvas.shape == (H, W, 3)
        assert is_colour(canvas[25, 10], 1)


def test_seg_masks_drawn_and_stem_collision(tmp_path):
    paths = [write_image(tmp_path / d / 'view1.png') for d in ('p1', 'p2')]
    runner = make_runner(tmp_path)
    hook = CXRVisualizationHook(draw=True, test_out_dir='show', show_gt=False)
    hook.before_test(runner)
    outputs = []
    for idx, path in enumerate(paths):
        sample = CXRDataSample(metainfo=dict(dataset='phantom_seg', task='seg', img_path=path,
                                             sample_idx=10 + idx))
        mask = torch.zeros(1, H, W, dtype=torch.bool)
        mask[0, 40:60, 50:75] = True
        sample.pred_seg_masks = PixelData(data=mask)
        outputs.append(sample)
    hook.after_test_iter(runner, 0, {}, outputs)
    folder = osp.join(tmp_path, TIMESTAMP, 'show', 'phantom_seg.seg')
    assert sorted(os.listdir(folder)) == ['view1.png', 'view1_11.png']
    canvas = rgb(osp.join(folder, 'view1.png'))
    r, g, b = canvas[58, 52]  # inside the mask, away from its legend at the centroid
    assert r - g > 60 and r - b > 40
    r, g, b = canvas[20, 20]  # outside
    assert r == g == b


def test_mask_size_must_match_original(tmp_path):
    path = write_image(tmp_path / 'case3.png')
    sample = CXRDataSample(metainfo=dict(dataset='phantom_seg', task='seg', img_path=path))
    sample.pred_seg_masks = PixelData(data=torch.zeros(1, H // 2, W // 2, dtype=torch.bool))
    hook = CXRVisualizationHook(draw=True, test_out_dir='show')
    runner = make_runner(tmp_path)
    hook.before_test(runner)
    with pytest.raises(ValueError, match=r'case3\.png.*original image coordinates'):
        hook.after_test_iter(runner, 0, {}, [sample])


def test_missing_metainfo_is_named(tmp_path):
    hook = CXRVisualizationHook(draw=True, test_out_dir='show')
    runner = make_runner(tmp_path)
    hook.before_test(runner)
    with pytest.raises(ValueError, match=r"\['img_path'\].*PackCXRInputs"):
        hook.after_test_iter(runner, 0, {}, [CXRDataSample(
            metainfo=dict(dataset='a', task='cls'))])


def test_class_names_from_metainfo_or_indices(tmp_path):
    path = write_image(tmp_path / 'case4.png')
    sample = CXRDataSample(metainfo=dict(dataset='phantom_cls', task='cls', img_path=path))
    sample.pred_cls = LabelData(score=torch.tensor([0.2, 0.9, 0.5]))
    runner = make_runner(tmp_path, metainfo=dict(
        dataset='phantom_cls', cls_classes=['effusion', 'nodule', 'mass']))
    hook = CXRVisualizationHook(draw=True)
    hook.before_test(runner)
    assert hook._class_names(runner, 'test', 'phantom_cls', 'cls', sample) == [
        'effusion', 'nodule', 'mass']
    other = make_runner(tmp_path, metainfo={})
    hook.before_test(other)
    assert hook._class_names(other, 'test', 'phantom_cls', 'cls', sample) == ['0', '1', '2']
    # without test_out_dir, test images go to the visualizer's backends
    hook.after_test_iter(other, 0, {}, [sample])
    name, canvas = other.visualizer.add_image.call_args.args
    assert name == 'test.phantom_cls.cls.case4'
    assert canvas.shape == (H, W, 3) and canvas.dtype == np.uint8
    # the findings are written in white on the grey image
    assert (canvas == 255).all(axis=2).any()


def test_val_iter_interval_and_draw_flag(tmp_path):
    img_path = write_image(tmp_path / 'case5.png')
    runner = make_runner(tmp_path)
    hook = CXRVisualizationHook(draw=True, interval=2)
    for batch_idx in range(3):
        hook.after_val_iter(runner, batch_idx, *loc_batch(img_path))
    calls = runner.visualizer.add_image.call_args_list
    assert [c.args[0] for c in calls] == ['val.phantom_ptx.loc.case5'] * 2
    assert all(c.kwargs['step'] == 7 for c in calls)
    assert calls[0].args[1].shape == (H, 2 * W, 3)

    off = make_runner(tmp_path)
    hook = CXRVisualizationHook(test_out_dir='show')  # draw=False by default
    hook.before_test(off)
    hook.after_test_iter(off, 0, *loc_batch(img_path))
    hook.after_val_iter(off, 0, *loc_batch(img_path))
    off.visualizer.add_image.assert_not_called()
    assert not osp.exists(osp.join(tmp_path, TIMESTAMP))


def test_bad_arguments():
    with pytest.raises(ValueError, match='interval'):
        CXRVisualizationHook(interval=0)
    with pytest.raises(ValueError, match='score_thr'):
        CXRVisualizationHook(score_thr=1.5)


def test_gt_masks_at_the_original_size_are_drawn_on_the_input(tmp_path):
    """Test pipelines load the GT masks after the resize (original size) while the GT panel
    shows the network input: the masks are brought to the input for drawing."""
    img_path = write_image(tmp_path / 'case3.png')
    runner = make_runner(tmp_path)
    meta = dict(dataset='phantom_seg', task='seg', img_path=img_path, sample_idx=0,
                ori_shape=(H, W), img_shape=(H // 2, W // 2), scale_factor=(0.5, 0.5))
    mask = torch.zeros(1, H, W, dtype=torch.uint8)
    mask[0, 40:60, 50:75] = 1
    gt, pred = CXRDataSample(metainfo=meta), CXRDataSample(metainfo=meta)
    gt.gt_seg_masks = PixelData(data=mask)
    pred.pred_seg_masks = PixelData(data=mask.bool())
    hook = CXRVisualizationHook(draw=True, test_out_dir='show')
    hook.before_test(runner)
    hook.after_test_iter(runner, 0, dict(inputs=[torch.rand(1, H // 2, W // 2)],
                                         data_samples=[gt]), [pred])
    canvas = rgb(osp.join(tmp_path, TIMESTAMP, 'show', 'phantom_seg.seg', 'case3.png'))
    assert canvas.shape == (H, 2 * W, 3)
    for panel in (canvas[:, :W], canvas[:, W:]):  # GT (input scaled up) and prediction
        r, g, b = panel[50, 55]
        assert max(r, g, b) - min(r, g, b) > 30, panel[50, 55]  # tinted by the mask
    r, g, b = canvas[:, W:][10, 10]
    assert r == g == b


def test_teacher_student_copies_get_their_folders_and_padding_is_drawn_once(tmp_path):
    """TeacherStudentTestLoop tests the student, then the teacher: each copy writes its own
    folder, and a sample repeated by a distributed sampler's padding is drawn once."""
    img_path = write_image(tmp_path / 'case4.png')
    runner = make_runner(tmp_path)
    runner.model.predict_on = 'student'
    hook = CXRVisualizationHook(draw=True, test_out_dir='show')
    hook.before_test(runner)
    data_batch, outputs = loc_batch(img_path, sample_idx=3)
    for copy in ('student', 'teacher'):
        runner.model.predict_on = copy
        hook.after_test_iter(runner, 0, data_batch, outputs)
        hook.after_test_iter(runner, 1, data_batch, outputs)  # the padding repeat
    show = osp.join(tmp_path, TIMESTAMP, 'show')
    for copy in ('student', 'teacher'):
        assert os.listdir(osp.join(show, copy, 'phantom_ptx.loc')) == ['case4.png']
    assert sorted(os.listdir(show)) == ['student', 'teacher']
