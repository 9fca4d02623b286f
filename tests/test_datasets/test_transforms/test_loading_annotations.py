import json

import numpy as np
import pytest

from fxmm.datasets.cxr_dataset import ANNOTATION_VERSION, CXRDataset
from fxmm.datasets.transforms.loading_annotations import LoadCXRAnnotations
from fxmm.registry import TRANSFORMS
from fxmm.structures.mask_rle import encode_mask

H, W = 24, 30


def _results(**changes):
    lung = np.zeros((H, W), dtype=np.uint8)
    lung[3:20, 2:12] = 1
    results = dict(
        img_path='a.png', height=H, width=W, sample_idx=4,
        cls_label=np.array([1, -1, np.nan], dtype=np.float32),
        instances=[dict(bbox=[1.0, 2.0, 8.0, 9.5], bbox_label=1),
                   dict(bbox=[10.0, 0.0, 30.0, 24.0], bbox_label=0, reader='R2')],
        seg={'Right Lung': encode_mask(lung)},
        seg_classes=['Left Lung', 'Right Lung', 'Heart'])
    results.update(changes)
    return results, lung


def test_loads_all_kinds_with_design_dtypes_and_shapes():
    results, lung = _results()
    out = LoadCXRAnnotations()(results)
    assert out['gt_cls_label'].dtype == np.float32
    np.testing.assert_array_equal(out['gt_cls_label'], [1, -1, np.nan])
    assert out['gt_bboxes'].dtype == np.float32
    np.testing.assert_array_equal(out['gt_bboxes'], [[1, 2, 8, 9.5], [10, 0, 30, 24]])
    assert out['gt_bboxes_labels'].dtype == np.int64
    np.testing.assert_array_equal(out['gt_bboxes_labels'], [1, 0])
    masks = out['gt_seg_masks']
    assert masks.dtype == np.uint8 and masks.shape == (3, H, W)
    np.testing.assert_array_equal(masks[1], lung)
    assert masks[0].sum() == 0 and masks[2].sum() == 0  # classes absent from seg: empty


def test_empty_shapes():
    results, _ = _results(cls_label=[], instances=[], seg={}, seg_classes=[])
    out = LoadCXRAnnotations()(results)
    assert out['gt_cls_label'].shape == (0,)
    assert out['gt_bboxes'].shape == (0, 4) and out['gt_bboxes'].dtype == np.float32
    assert out['gt_bboxes_labels'].shape == (0,)
    assert out['gt_bboxes_labels'].dtype == np.int64
    assert out['gt_seg_masks'].shape == (0, H, W)


def test_with_flags_skip_kinds():
    results, _ = _results()
    out = LoadCXRAnnotations(with_cls=False, with_seg=False)(results)
    assert 'gt_cls_label' not in out and 'gt_seg_masks' not in out
    assert out['gt_bboxes'].shape == (2, 4)


def test_cls_label_list_with_none():
    results, _ = _results(cls_label=[0, None, -1])
    out = LoadCXRAnnotations(with_bbox=False, with_seg=False)(results)
    np.testing.assert_array_equal(out['gt_cls_label'], [0, np.nan, -1])


def test_label_policy_is_fixed_per_sample():
    transform = LoadCXRAnnotations(label_policy=dict(type='lsr', missing_as_zero=True), seed=1)
    first = transform(_results()[0])['gt_cls_label']
    assert first[0] == 1 and first[2] == 0
    assert 0.55 <= first[1] <= 0.85  # the method's LSR range
    again = transform(_results()[0])['gt_cls_label']
    assert again[1] == first[1]
    other_sample = transform(_results(sample_idx=5)[0])['gt_cls_label']
    assert other_sample[1] != first[1]
    ones = LoadCXRAnnotations(label_policy='ones')(_results()[0])['gt_cls_label']
    np.testing.assert_array_equal(ones, [1, 1, np.nan])
    results, _ = _results()
    del results['sample_idx']
    with pytest.raises(ValueError, match="needs results\\['sample_idx'\\]"):
        transform(results)


def test_mask_errors_name_the_image():
    results, _ = _results(img_shape=(H, W + 2))
    with pytest.raises(ValueError, match=r'a.png: the image is \(24, 32\) but its annotation '
                                         r'says \(height, width\) = \(24, 30\)'):
        LoadCXRAnnotations()(results)
    results, _ = _results(seg={'Spleen': encode_mask(np.ones((H, W)))})
    with pytest.raises(ValueError, match=r"seg has classes \['Spleen'\]"):
        LoadCXRAnnotations()(results)
    results, _ = _results(seg={'Heart': {'size': [H, W], 'counts': '0'}})
    with pytest.raises(ValueError, match='cover 0 pixels'):
        LoadCXRAnnotations()(results)


def test_masks_loaded_after_a_resize_stay_at_the_original_size():
    """The test pipelines' order: boxes follow the resize, masks loaded after it keep the
    original resolution (the size check reads ori_shape, which the resize leaves alone)."""
    results, lung = _results(img=np.zeros((H, W), np.float32), ori_shape=(H, W),
                             img_shape=(H, W))
    pipeline = [LoadCXRAnnotations(with_seg=False),
                TRANSFORMS.build(dict(type='CXRResize', scale=(15, 12))),
                LoadCXRAnnotations(with_cls=False, with_bbox=False)]
    for transform in pipeline:
        results = transform(results)
    assert results['img'].shape == (12, 15) and results['img_shape'] == (12, 15)
    np.testing.assert_allclose(results['gt_bboxes'][0], [0.5, 1.0, 4.0, 4.75])
    assert results['gt_seg_masks'].shape == (3, H, W)
    np.testing.assert_array_equal(results['gt_seg_masks'][1], lung)
    results, _ = _results(ori_shape=(H + 1, W), img_shape=(12, 15))
    with pytest.raises(ValueError, match=r'the image is \(25, 30\)'):
        LoadCXRAnnotations()(results)


def test_built_from_registry_and_repr():
    transform = TRANSFORMS.build(dict(type='LoadCXRAnnotations', with_seg=False,
                                      label_policy='zeros'))
    assert isinstance(transform, LoadCXRAnnotations)
    assert "label_policy={'type': 'zeros', 'missing_as_zero': False}" in repr(transform)
    with pytest.raises(ValueError, match='unknown label policy'):
        LoadCXRAnnotations(label_policy='maybe')


def test_after_cxr_dataset(tmp_path):
    """The transform reads what CXRDataset gives (clipped boxes, pruned masks)."""
    heart = np.zeros((H, W), dtype=np.uint8)
    heart[10:18, 8:20] = 1
    ann = dict(
        metainfo=dict(dataset='toy', tasks=['loc', 'seg'], det_classes=['Heart'],
                      seg_classes=['Heart', 'Spine'], converter_version=ANNOTATION_VERSION),
        data_list=[dict(img_path='x.png', height=H, width=W,
                        instances=[dict(bbox=[8, 10, 31, 18], bbox_label=0)],
                        seg={'Heart': encode_mask(heart),
                             'Spine': encode_mask(np.zeros((H, W)))})])
    path = tmp_path / 'ann.json'
    path.write_text(json.dumps(ann))
    ds = CXRDataset(str(path), task='seg', pipeline=[LoadCXRAnnotations()])
    out = ds[0]
    np.testing.assert_array_equal(out['gt_bboxes'], [[8, 10, 30, 18]])
    np.testing.assert_array_equal(out['gt_seg_masks'], np.stack([heart, np.zeros_like(heart)]))
    assert out['gt_cls_label'].shape == (0,)
